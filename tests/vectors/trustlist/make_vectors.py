"""Regenerate the offline-verdict vectors ``tests/vectors/trustlist/offline.json``.

Run from the project root: ``PYTHONPATH=. python3 tests/vectors/trustlist/make_vectors.py``. The
output is reproducible byte for byte: fixed TEST-ONLY keys (``keys/*.pem`` here and
``../certseal/keys/*.pem``, encrypted under the public passphrase below), fixed claims and times,
deterministic ECDSA (RFC 6979) normalised to low S. Every case is checked against
``crypto.verify_offline`` before the file is written; a disagreement stops the script.

The file holds one trust list (signed by the anchor) and cases, each a QR text, the Status List
Tokens given, the verification time and the expected verdict. The format is in ``README.md``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import crypto  # noqa: E402
from crypto import CST, CertificateClaims, KeyState, KeyUse, Operation, SigningKey, Status  # noqa: E402
from crypto._algorithms import P256_ORDER  # noqa: E402

HERE = Path(__file__).resolve().parent
TEST_PASSPHRASE = b"certseal-test-vectors-only"
BASE = "https://cert.example.gov.cn"
STATUS_BASE = f"{BASE}/v1/status-lists/CN-44"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)
LIST_IAT = NOW - timedelta(minutes=10)
INDEX = (1 << 17) + 42  # list 1, entry 42


class DeterministicKey:
    """A fixed test key that signs as certseal does, but with deterministic ECDSA (same bytes every run)."""

    def __init__(self, path: Path) -> None:
        self._key = SigningKey.from_pem(path.read_bytes(), TEST_PASSPHRASE)
        self._private = self._key._private
        self.alg, self.kid, self.public_key = self._key.alg, self._key.kid, self._key.public_key

    def public_pem(self) -> bytes:
        return self._key.public_pem()

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._private, ec.EllipticCurvePrivateKey):
            der = self._private.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
            r, s = decode_dss_signature(der)
            return r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")
        return self._key.sign(message)


def _load(path: Path) -> Any:
    return DeterministicKey(path)


ANCHOR = _load(HERE / "keys" / "es256-anchor.pem")
STATUS_KEY = _load(HERE / "keys" / "es256-status-list.pem")
CURRENT = _load(ROOT / "tests" / "vectors" / "certseal" / "keys" / "es256-issuer.pem")
RETIRED = _load(ROOT / "tests" / "vectors" / "certseal" / "keys" / "eddsa-issuer.pem")
COMPROMISED = _load(ROOT / "tests" / "vectors" / "certseal" / "keys" / "es256-other.pem")


def _key(signing: Any, use: KeyUse = KeyUse.CERTIFICATE, **fields: Any) -> crypto.TrustListKey:
    values: dict[str, Any] = {"not_before": T0, "not_after": None, "verify_until": None, "state": KeyState.ACTIVE}
    values.update(fields)
    return crypto.TrustListKey(kid=signing.kid, use=use, public_key=signing.public_key, **values)


CONTENT = crypto.TrustListContent(
    (
        crypto.TrustListIssuer(
            code="CN-44",
            name="广东省应急管理厅",
            region="广东",
            operations=("2.1", "2.2"),
            status_base=STATUS_BASE,
            keys=(
                _key(CURRENT),
                _key(RETIRED, not_before=datetime(2024, 1, 1, tzinfo=UTC), not_after=T0, state=KeyState.RETIRED),
                _key(
                    COMPROMISED,
                    not_before=datetime(2024, 1, 1, tzinfo=UTC),
                    not_after=T0,
                    state=KeyState.COMPROMISED,
                    compromised_at=T0,
                ),
                _key(STATUS_KEY, KeyUse.STATUS_LIST),
            ),
        ),
    )
)


def _certificate(
    key: Any = CURRENT,
    *,
    issued_at: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    operation: Operation = Operation(2, 1),  # noqa: B008 -- an immutable named tuple
    issuer: str = "CN-44",
) -> str:
    claims = CertificateClaims.issue(
        issuer=issuer,
        holder_name="欧阳晓峰",
        masked_id="4401123X",
        operation=operation,
        valid_from=issued_at.astimezone(CST).date(),
        valid_until=date(2032, 2, 28),
        status_index=INDEX,
        serial=bytes.fromhex("5a17c0de00000042"),
        issued_at=issued_at,
    )
    return crypto.encode_qr_text(crypto.sign_certificate(claims, key), BASE)


def _list(
    value: Status = Status.VALID, *, key: Any = STATUS_KEY, uri: str = f"{STATUS_BASE}/1", iat: datetime = LIST_IAT
) -> str:
    status_list = crypto.StatusList.new()
    status_list.set(INDEX & 0x1FFFF, value)
    return crypto.sign_status_list(status_list, key, uri=uri, iat=iat).hex()


def _cases() -> list[dict[str, Any]]:
    stale_iat = NOW - timedelta(hours=30)
    return [
        {"name": "accept-valid", "qr_text": _certificate(), "status_lists_hex": [_list()]},
        {"name": "reject-revoked", "qr_text": _certificate(), "status_lists_hex": [_list(Status.REVOKED)]},
        {"name": "reject-suspended", "qr_text": _certificate(), "status_lists_hex": [_list(Status.SUSPENDED)]},
        {"name": "reject-superseded", "qr_text": _certificate(), "status_lists_hex": [_list(Status.SUPERSEDED)]},
        {"name": "reject-no-list", "qr_text": _certificate(), "status_lists_hex": []},
        {"name": "reject-stale-list", "qr_text": _certificate(), "status_lists_hex": [_list(iat=stale_iat)]},
        {
            "name": "accept-stale-list-allowed",
            "qr_text": _certificate(),
            "status_lists_hex": [_list(iat=stale_iat)],
            "allow_stale": True,
        },
        {
            "name": "reject-list-of-another-uri",
            "qr_text": _certificate(),
            "status_lists_hex": [_list(uri=f"{STATUS_BASE}/2")],
        },
        {
            "name": "reject-list-signed-by-certificate-key",
            "qr_text": _certificate(),
            "status_lists_hex": [_list(key=CURRENT)],
        },
        {
            "name": "reject-certificate-signed-by-status-list-key",
            "qr_text": _certificate(STATUS_KEY),
            "status_lists_hex": [_list()],
        },
        {
            "name": "accept-retired-key-inside-its-window",
            "qr_text": _certificate(RETIRED, issued_at=T0 - timedelta(days=30)),
            "status_lists_hex": [_list()],
        },
        {
            "name": "reject-retired-key-after-its-window",
            "qr_text": _certificate(RETIRED, issued_at=T0 + timedelta(minutes=6)),
            "status_lists_hex": [_list()],
        },
        {
            "name": "reject-iat-before-not-before",
            "qr_text": _certificate(issued_at=T0 - timedelta(minutes=6)),
            "status_lists_hex": [_list()],
        },
        {
            "name": "reject-compromised-key",
            "qr_text": _certificate(COMPROMISED, issued_at=T0 - timedelta(days=30)),
            "status_lists_hex": [_list()],
        },
        {
            "name": "reject-operation-outside-issuer-scope",
            "qr_text": _certificate(operation=Operation(1, 1)),
            "status_lists_hex": [_list()],
        },
        {
            "name": "reject-iss-of-another-issuer",
            "qr_text": _certificate(issuer="CN-11"),
            "status_lists_hex": [_list()],
        },
    ]


def _expected(verdict: crypto.OfflineVerdict) -> dict[str, Any]:
    return {
        "decision": verdict.decision,
        "reasons": list(verdict.reasons),
        "status": None if verdict.status is None else verdict.status.name.lower(),
        "status_source": verdict.status_source,
        "status_as_of": None if verdict.status_as_of is None else verdict.status_as_of.isoformat(),
        "stale_by_seconds": None if verdict.stale_by is None else int(verdict.stale_by.total_seconds()),
    }


def build() -> dict[str, Any]:
    """The vector file's content, every case run through ``crypto.verify_offline``."""
    signed = crypto.sign_trust_list(
        CONTENT, ANCHOR, sequence=1, iat=NOW - timedelta(hours=1), exp=NOW + timedelta(days=29)
    )
    trust_list = crypto.verify_trust_list(signed, ANCHOR.public_key, now=NOW)
    cases = []
    for case in _cases():
        case.setdefault("allow_stale", False)
        verdict = crypto.verify_offline(
            case["qr_text"],
            trust_list,
            [bytes.fromhex(item) for item in case["status_lists_hex"]],
            now=NOW,
            allow_stale=case["allow_stale"],
        )
        case["expected"] = _expected(verdict)
        if case["name"].startswith("accept") != (verdict.decision == "accept"):
            raise SystemExit(f"{case['name']}: verify_offline says {verdict.decision} {verdict.reasons}")
        cases.append(case)
    return {
        "description": "Offline verdicts against one trust list (docs/credential-format.md §12.5)",
        "anchor_public_key_pem": ANCHOR.public_pem().decode("ascii"),
        "trust_list_hex": signed.hex(),
        "now": NOW.isoformat(),
        "cases": cases,
    }


def main() -> None:
    """Write ``offline.json``."""
    path = HERE / "offline.json"
    path.write_text(json.dumps(build(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
