"""The full offline verdict: key lifecycle, issuer scope, and status from signed lists, each failure named."""

from __future__ import annotations

import doctest
import importlib.util
import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from conftest import (
    CERTIFICATE_IAT,
    STATUS_INDEX,
    STATUS_URI,
    TRUST_NOW,
    TRUST_T0,
    TrustWorld,
)

import crypto
from crypto import (
    CLOCK_SKEW,
    KeySigningWindow,
    KeyState,
    KeyUse,
    Operation,
    Status,
    _cbor,
    cose,
    offline,
    verify_offline,
)

IDX = STATUS_INDEX & 0x1FFFF


def _verdict(
    world: TrustWorld,
    qr_text: str | None = None,
    lists: list[bytes] | None = None,
    *,
    keys: tuple[crypto.TrustListKey, ...] | None = None,
    now: datetime = TRUST_NOW,
    allow_stale: bool = False,
) -> crypto.OfflineVerdict:
    """The offline verdict on ``qr_text`` (default a genuine certificate) with ``lists`` (default one fresh list)."""
    return verify_offline(
        qr_text if qr_text is not None else world.certificate(),
        world.trust_list(world.content(keys)),
        [world.status_list()] if lists is None else lists,
        now=now,
        allow_stale=allow_stale,
    )


def test_genuine_certificate_with_a_fresh_list_is_accepted(trust_world: TrustWorld) -> None:
    """A valid certificate with its current list: accept, status valid, as of the list's iat, from the list."""
    verdict = _verdict(trust_world)

    assert verdict.decision == "accept"
    assert verdict.reasons == ()
    assert verdict.status is Status.VALID
    assert verdict.status_source == "list"
    assert verdict.status_as_of == TRUST_NOW - timedelta(minutes=10)
    assert (verdict.status_list_uri, verdict.status_list_idx) == (STATUS_URI, IDX)
    assert verdict.stale_by is None
    assert verdict.issuer is not None
    assert verdict.issuer.code == "CN-44"


@pytest.mark.parametrize(
    ("status", "code"),
    [(Status.REVOKED, "revoked"), (Status.SUSPENDED, "suspended"), (Status.SUPERSEDED, "superseded")],
)
def test_list_entry_rejects(trust_world: TrustWorld, status: Status, code: str) -> None:
    """Entry values 1, 2 and 3 reject as revoked, suspended and superseded."""
    lists = [trust_world.status_list({IDX: status})]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.decision == "reject"
    assert verdict.reasons == (code,)
    assert verdict.status is status


def test_only_the_certificates_own_entry_counts(trust_world: TrustWorld) -> None:
    """Revoking the neighbouring entries leaves this certificate valid."""
    lists = [trust_world.status_list({IDX - 1: Status.REVOKED, IDX + 1: Status.REVOKED})]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.decision == "accept"


def test_newest_list_wins(trust_world: TrustWorld) -> None:
    """Given an older valid list and a newer one that revokes, the newer one decides, whatever the order."""
    older = trust_world.status_list(iat=TRUST_NOW - timedelta(hours=2))
    newer = trust_world.status_list({IDX: Status.REVOKED}, iat=TRUST_NOW - timedelta(hours=1))

    verdicts = [_verdict(trust_world, lists=lists) for lists in ([older, newer], [newer, older])]

    assert [verdict.reasons for verdict in verdicts] == [("revoked",), ("revoked",)]


def test_missing_list_is_status_unknown(trust_world: TrustWorld) -> None:
    """No list at all: ``status_unknown``, status source ``none``."""
    verdict = _verdict(trust_world, lists=[])

    assert verdict.reasons == ("status_unknown",)
    assert verdict.status is None
    assert verdict.status_source == "none"
    assert verdict.status_list_uri == STATUS_URI


def test_certificate_without_status_index_is_status_unknown(trust_world: TrustWorld) -> None:
    """A certificate with no status index cannot be looked up offline: ``status_unknown``."""
    qr_text = trust_world.certificate(status_index=None)

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("status_unknown",)


def test_expired_list_is_status_unknown(trust_world: TrustWorld) -> None:
    """A list past its exp is ``status_unknown``; the verdict still says how stale it is."""
    lists = [trust_world.status_list(iat=TRUST_NOW - timedelta(hours=30))]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.reasons == ("status_unknown",)
    assert verdict.status_source == "none"
    assert verdict.stale_by == timedelta(hours=6)


def test_expired_list_allowed_stale_is_used_and_says_how_stale(trust_world: TrustWorld) -> None:
    """With ``allow_stale`` the expired list decides, source ``stale`` and ``stale_by`` = now - exp."""
    iat = TRUST_NOW - timedelta(hours=30)
    fine = [trust_world.status_list(iat=iat)]
    revoked = [trust_world.status_list({IDX: Status.REVOKED}, iat=iat)]

    accepted = _verdict(trust_world, lists=fine, allow_stale=True)
    rejected = _verdict(trust_world, lists=revoked, allow_stale=True)

    assert accepted.decision == "accept"
    assert accepted.status_source == "stale"
    assert accepted.stale_by == timedelta(hours=6)
    assert accepted.status_as_of == iat
    assert rejected.reasons == ("revoked",)


def test_list_for_another_uri_is_subject_mismatch(trust_world: TrustWorld) -> None:
    """Only another list of the same issuer given: ``status_list_subject_mismatch``."""
    lists = [trust_world.status_list(uri=STATUS_URI[:-1] + "2")]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.reasons == ("status_list_subject_mismatch",)


def test_list_signed_by_a_certificate_key_is_refused(trust_world: TrustWorld) -> None:
    """A list token signed by the issuer's certificate key (not a status-list key) is refused: ``unknown_key``."""
    lists = [trust_world.status_list(key=trust_world.certificate_key)]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.decision == "reject"
    assert verdict.reasons == ("unknown_key",)
    assert verdict.status is None


def test_list_signed_by_another_issuers_key_is_refused(trust_world: TrustWorld) -> None:
    """A list for CN-44's URI signed by a key of CN-11 is refused: ``unknown_key``."""
    lists = [trust_world.status_list(key=trust_world.other_issuer_key)]

    verdict = _verdict(trust_world, lists=lists)

    assert verdict.reasons == ("unknown_key",)


def test_forged_valid_list_beside_the_real_one_does_not_help(trust_world: TrustWorld) -> None:
    """A revoked certificate stays revoked when a forged "valid" list (wrong signer, newer) is passed too."""
    real = trust_world.status_list({IDX: Status.REVOKED})
    forged = trust_world.status_list(key=trust_world.certificate_key, iat=TRUST_NOW - timedelta(minutes=1))

    verdict = _verdict(trust_world, lists=[forged, real])

    assert verdict.reasons == ("revoked",)


def test_list_signed_by_a_compromised_status_key_is_refused(trust_world: TrustWorld) -> None:
    """A list whose status-list key is compromised is not trusted."""
    keys = (
        trust_world.key(trust_world.certificate_key),
        trust_world.key(
            trust_world.status_key,
            KeyUse.STATUS_LIST,
            state=KeyState.COMPROMISED,
            compromised_at=TRUST_NOW - timedelta(days=1),
        ),
    )

    verdict = _verdict(trust_world, keys=keys)

    assert verdict.decision == "reject"
    assert verdict.reasons == ("unknown_key",)


def test_certificate_signed_by_a_status_list_key_is_unknown_key(trust_world: TrustWorld) -> None:
    """A certificate signed by the status-list key is ``unknown_key``: that key verifies lists only."""
    qr_text = trust_world.certificate(trust_world.status_key)

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("unknown_key",)
    assert verdict.certificate is None


def test_certificate_signed_by_an_unlisted_key_is_unknown_key(trust_world: TrustWorld) -> None:
    """A certificate signed by a key the trust list does not hold is ``unknown_key``."""
    qr_text = trust_world.certificate(trust_world.anchor)

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("unknown_key",)


def test_not_a_certificate_is_malformed(trust_world: TrustWorld) -> None:
    """Garbage QR text is ``malformed`` and says what is wrong."""
    verdict = _verdict(trust_world, "https://cert.example.gov.cn/c1#0000")

    assert verdict.decision == "reject"
    assert verdict.reasons == ("malformed",)
    assert verdict.message


def test_iss_of_another_issuer_is_issuer_not_authorized(trust_world: TrustWorld) -> None:
    """A certificate claiming CN-11 but signed by a CN-44 key is ``issuer_not_authorized``."""
    qr_text = trust_world.certificate(issuer="CN-11")

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("issuer_not_authorized",)


def test_operation_outside_the_issuers_scope_is_issuer_not_authorized(trust_world: TrustWorld) -> None:
    """CN-44 may certify 2.1 and 2.2 only: a 1.1 certificate it signed is ``issuer_not_authorized``."""
    qr_text = trust_world.certificate(operation=Operation(1, 1))

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("issuer_not_authorized",)


def test_retired_key_still_verifies_what_it_signed_in_its_window(trust_world: TrustWorld) -> None:
    """Rotation: the Ed25519 key retired at TRUST_T0 still verifies a certificate it signed before then."""
    qr_text = trust_world.certificate(trust_world.retired_key, issued_at=TRUST_T0 - timedelta(days=30))

    verdict = _verdict(trust_world, qr_text)

    assert verdict.decision == "accept"


def test_retired_key_signing_after_its_window_is_key_not_valid_at_issue(trust_world: TrustWorld) -> None:
    """A certificate the retired key claims to have signed after not_after + skew is ``key_not_valid_at_issue``."""
    qr_text = trust_world.certificate(trust_world.retired_key, issued_at=TRUST_T0 + CLOCK_SKEW + timedelta(seconds=1))

    verdict = _verdict(trust_world, qr_text)

    assert verdict.reasons == ("key_not_valid_at_issue",)


def test_retired_key_signing_within_the_skew_is_accepted(trust_world: TrustWorld) -> None:
    """Up to the clock skew past not_after is still inside the window."""
    qr_text = trust_world.certificate(trust_world.retired_key, issued_at=TRUST_T0 + CLOCK_SKEW)

    verdict = _verdict(trust_world, qr_text)

    assert verdict.decision == "accept"


@pytest.mark.parametrize(
    ("issued_at", "decision"),
    [
        (TRUST_T0 - CLOCK_SKEW - timedelta(seconds=1), "reject"),
        (TRUST_T0 - CLOCK_SKEW, "accept"),
        (TRUST_T0, "accept"),
    ],
    ids=["before-skew", "at-skew", "at-not-before"],
)
def test_iat_before_not_before(trust_world: TrustWorld, issued_at: datetime, decision: str) -> None:
    """Before not_before - skew the active key could not have signed: ``key_not_valid_at_issue``."""
    qr_text = trust_world.certificate(issued_at=issued_at)

    verdict = _verdict(trust_world, qr_text)

    assert verdict.decision == decision
    assert verdict.reasons == (() if decision == "accept" else ("key_not_valid_at_issue",))


@pytest.mark.parametrize("issued_at", [CERTIFICATE_IAT, TRUST_T0 - timedelta(days=400)], ids=["after", "before"])
def test_compromised_key_rejects_everything_it_signed_offline(trust_world: TrustWorld, issued_at: datetime) -> None:
    """Offline every certificate of a compromised key is ``key_revoked``, before or after compromised_at."""
    keys = (
        trust_world.key(
            trust_world.certificate_key,
            not_before=datetime(2024, 1, 1, tzinfo=UTC),
            state=KeyState.COMPROMISED,
            compromised_at=TRUST_T0,
        ),
        trust_world.key(trust_world.status_key, KeyUse.STATUS_LIST),
    )
    qr_text = trust_world.certificate(issued_at=issued_at)

    verdict = _verdict(trust_world, qr_text, keys=keys)

    assert verdict.reasons == ("key_revoked",)


def test_after_verify_until_nothing_the_key_signed_is_accepted(trust_world: TrustWorld) -> None:
    """Past the key's verify_until its certificates are ``expired``, whatever their own dates say."""
    keys = (
        trust_world.key(trust_world.certificate_key, verify_until=TRUST_NOW),
        trust_world.key(trust_world.status_key, KeyUse.STATUS_LIST),
    )

    before = _verdict(trust_world, keys=keys, now=TRUST_NOW - timedelta(seconds=1))
    after = _verdict(trust_world, keys=keys)

    assert before.decision == "accept"
    assert after.reasons == ("expired",)


def test_every_failure_is_listed(trust_world: TrustWorld) -> None:
    """An out-of-scope certificate of a compromised key, revoked in its list, lists all three reasons in order."""
    keys = (
        trust_world.key(
            trust_world.certificate_key, state=KeyState.COMPROMISED, compromised_at=TRUST_NOW - timedelta(days=1)
        ),
        trust_world.key(trust_world.status_key, KeyUse.STATUS_LIST),
    )
    qr_text = trust_world.certificate(operation=Operation(1, 1))
    lists = [trust_world.status_list({IDX: Status.REVOKED})]

    verdict = _verdict(trust_world, qr_text, lists, keys=keys)

    assert verdict.reasons == ("key_revoked", "issuer_not_authorized", "revoked")


def test_expired_certificate_is_expired(trust_world: TrustWorld) -> None:
    """The validity period still applies: after valid_until the verdict is ``expired``."""
    verdict = _verdict(trust_world, now=datetime(2032, 3, 1, tzinfo=UTC), allow_stale=True)

    assert "expired" in verdict.reasons


def test_expired_trust_list_is_refused_unless_stale_allowed(trust_world: TrustWorld) -> None:
    """A trust list past its exp is ``trust_list_expired``; allowed stale, the rest decides."""
    trust_list = crypto.verify_trust_list(
        trust_world.signed(iat=TRUST_NOW - timedelta(days=31)),
        trust_world.anchor.public_key,
        now=TRUST_NOW,
        allow_expired=True,
    )
    qr_text, lists = trust_world.certificate(), [trust_world.status_list()]

    strict = verify_offline(qr_text, trust_list, lists, now=TRUST_NOW)
    stale = verify_offline(qr_text, trust_list, lists, now=TRUST_NOW, allow_stale=True)

    assert strict.reasons == ("trust_list_expired",)
    assert stale.decision == "accept"


def test_extra_checks_run(trust_world: TrustWorld) -> None:
    """Caller checks (here: a different operation required) add their reasons."""
    verdict = verify_offline(
        trust_world.certificate(),
        trust_world.trust_list(),
        [trust_world.status_list()],
        now=TRUST_NOW,
        checks=[crypto.CoversOperation(Operation(2, 2))],
    )

    assert verdict.reasons == ("operation_not_covered",)


def test_key_signing_window_check_alone(trust_world: TrustWorld) -> None:
    """``KeySigningWindow`` is a policy check named ``key_window`` that judges iat, not now."""
    store = crypto.TrustStore()
    store.add(trust_world.certificate_key.public_key)
    certificate = crypto.verify_qr_text(trust_world.certificate(), store, now=TRUST_NOW)
    window = KeySigningWindow(TRUST_T0, CERTIFICATE_IAT - timedelta(minutes=6))

    with pytest.raises(crypto.KeyNotValidAtIssue):
        window.verify(certificate, TRUST_T0)

    assert KeySigningWindow.name == "key_window"
    KeySigningWindow(TRUST_T0, None).verify(certificate, datetime(2099, 1, 1, tzinfo=UTC))


OFFLINE_VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "trustlist" / "offline.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", OFFLINE_VECTORS["cases"], ids=[case["name"] for case in OFFLINE_VECTORS["cases"]])
def test_offline_vector(case: dict[str, Any]) -> None:
    """Each committed offline vector gives exactly its expected verdict (decision, reasons, status and its source)."""
    now = datetime.fromisoformat(OFFLINE_VECTORS["now"])
    anchor = crypto.load_public_key(OFFLINE_VECTORS["anchor_public_key_pem"].encode())
    trust_list = crypto.verify_trust_list(bytes.fromhex(OFFLINE_VECTORS["trust_list_hex"]), anchor, now=now)

    verdict = verify_offline(
        case["qr_text"],
        trust_list,
        [bytes.fromhex(item) for item in case["status_lists_hex"]],
        now=now,
        allow_stale=case["allow_stale"],
    )

    assert verdict.decision == case["expected"]["decision"]
    assert list(verdict.reasons) == case["expected"]["reasons"]
    assert (verdict.status.name.lower() if verdict.status is not None else None) == case["expected"]["status"]
    assert verdict.status_source == case["expected"]["status_source"]
    assert (verdict.status_as_of.isoformat() if verdict.status_as_of else None) == case["expected"]["status_as_of"]
    stale_by = int(verdict.stale_by.total_seconds()) if verdict.stale_by else None
    assert stale_by == case["expected"]["stale_by_seconds"]


def test_offline_vectors_are_reproducible() -> None:
    """Regenerating the vectors gives the committed file byte for byte (fixed keys, deterministic ECDSA)."""
    script = Path(__file__).parent / "vectors" / "trustlist" / "make_vectors.py"
    spec = importlib.util.spec_from_file_location("trustlist_make_vectors", script)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    built = json.dumps(generator.build(), ensure_ascii=False, indent=2) + "\n"

    assert built == (Path(__file__).parent / "vectors" / "trustlist" / "offline.json").read_text(encoding="utf-8")


def test_package_doctest() -> None:
    """The examples in the ``crypto`` package docstring (signing, and the full offline verdict) still run."""
    result = doctest.testmod(crypto, verbose=False)

    assert result.attempted > 0
    assert result.failed == 0


def _with_lst(world: TrustWorld, lst: bytes) -> bytes:
    """A token for the certificate's list, validly signed by the status-list key, whose ``lst`` is ``lst``."""
    claims = {2: STATUS_URI, 4: int(TRUST_NOW.timestamp()) + 3600, 6: int(TRUST_NOW.timestamp()) - 600,
              65533: {"bits": 2, "lst": lst}, 65534: 600}  # fmt: skip
    protected = _cbor.dumps({1: -7, 4: world.status_key.kid, 16: crypto.TYP_STATUS_LIST})
    payload = _cbor.dumps(claims)
    signature = world.status_key.sign(cose.sig_structure(protected, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


@pytest.mark.parametrize(
    ("lst", "code"),
    [
        (zlib.compress(bytes(32768))[:-6], "status_list_malformed"),
        (zlib.compress(bytes(10 * 32768)), "status_list_too_large"),
        (zlib.compress(bytes(100)), "status_list_malformed"),
    ],
    ids=["truncated", "zlib-bomb", "too-short"],
)
def test_damaged_list_of_the_certificate_names_the_damage(trust_world: TrustWorld, lst: bytes, code: str) -> None:
    """The certificate's own list, validly signed but with a damaged ``lst``, rejects with what is wrong with it."""
    verdict = _verdict(trust_world, lists=[_with_lst(trust_world, lst)])

    assert verdict.reasons == (code,)
    assert verdict.status is None


def test_list_in_non_deterministic_cbor_is_malformed(trust_world: TrustWorld) -> None:
    """The certificate's list re-encoded with a non-shortest integer is ``malformed``, not silently ignored."""
    protected, _unprotected, payload, signature = cbor2.loads(trust_world.status_list()).value
    # The same message with its empty unprotected map written b8 00 (a one-byte length) instead of a0.
    tampered = b"\xd2\x84" + cbor2.dumps(protected) + b"\xb8\x00" + cbor2.dumps(payload) + cbor2.dumps(signature)

    verdict = _verdict(trust_world, lists=[tampered])

    assert verdict.reasons == ("malformed",)


def test_a_store_verifies_each_list_once_and_judges_its_expiry_on_every_call(
    trust_world: TrustWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A StatusListStore verifies and decompresses a list once; later calls still see revocations and expiry."""
    store = crypto.StatusListStore([trust_world.status_list({IDX: Status.REVOKED})])
    trust_list = trust_world.trust_list(trust_world.content())
    calls = []
    real = offline.verify_status_list_token
    monkeypatch.setattr(offline, "verify_status_list_token", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = verify_offline(trust_world.certificate(), trust_list, store, now=TRUST_NOW)
    second = verify_offline(trust_world.certificate(), trust_list, store, now=TRUST_NOW)
    later = verify_offline(trust_world.certificate(), trust_list, store, now=TRUST_NOW + timedelta(days=2))

    assert (first.reasons, second.reasons) == (("revoked",), ("revoked",))
    assert "status_unknown" in later.reasons
    assert len(calls) == 1
