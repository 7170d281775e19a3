"""Every verify reason code, each reached by a real case through POST /v1/verify."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from conftest import TEST_TODAY, high_s_twin
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlmodel import Session, select

import crypto
from api.models import SigningKeyRow
from crypto import Operation, SigningKey, _cbor, cose
from schemas.api import REASON_CODES

BASE_CHECKS = ["format", "signature", "validity", "key_window", "key_status", "issuer", "registry"]
ACCEPT_CHECKS = [*BASE_CHECKS, "status", "review"]
ES256K = -47  # COSE alg of ECDSA on secp256k1 (RFC 8812): registered, but not one certseal implements


def qr_of(envelope: bytes, settings) -> str:
    """The QR text of an envelope under the deployment's base URL."""
    return crypto.encode_qr_text(envelope, settings.public_base_url, allow_insecure_localhost=True)


def years_ago(years: int) -> date:
    """The same calendar day as the test clock's ``years`` earlier."""
    return TEST_TODAY.replace(year=TEST_TODAY.year - years)


def test_genuine_certificate_is_accepted(issuer, issue, verify):
    """A freshly issued certificate is accepted with every standard check listed."""
    certificate = issue(issuer)

    verdict = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("accept", [], ACCEPT_CHECKS)


def test_malformed(issuer, issue, verify):
    """Tampered digits and garbage are malformed after the format check alone; a bad envelope after the signature."""
    qr = issue(issuer)["qr_text"]
    base, _, digits = qr.partition("#")
    bad_text = [qr + "7", f"{base}#{digits[:-1]}x", "not a certificate", f"{base}#"]

    verdicts = [verify(text) for text in bad_text]
    bad_envelope = verify("12345")  # digits of two bytes, which are no COSE_Sign1

    for verdict in verdicts:
        assert (verdict["decision"], verdict["reasons"]) == ("reject", ["malformed"])
        assert (verdict["checks"], verdict["certificate"]) == (["format"], None)
    assert (bad_envelope["reasons"], bad_envelope["checks"]) == (["malformed"], ["format", "signature"])


def test_malformed_high_s_twin_of_a_genuine_certificate(settings, issuer, issue, verify):
    """The issued certificate with its ES256 ``s`` replaced by ``n - s`` verifies, but is rejected as malformed."""
    certificate = issue(issuer)
    twin = high_s_twin(crypto.envelope_from_qr_text(certificate["qr_text"]))

    verdict = verify(qr_of(twin, settings))

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["malformed"])
    assert (verdict["checks"], verdict["certificate"]) == (["format", "signature"], None)


def test_unsupported_format(verify):
    """A URL path other than /c1 (also /C1) or a %23 for # is unsupported_format, after the format check alone."""
    verdicts = [verify(text) for text in ["https://x/c2#123", "https://x/C1#123", "https://x/c1%23123"]]

    for verdict in verdicts:
        assert (verdict["decision"], verdict["reasons"]) == ("reject", ["unsupported_format"])
        assert (verdict["checks"], verdict["certificate"]) == (["format"], None)
    assert [verdict["message"] for verdict in verdicts] == [
        "URL path is not a known credential version (it must end with /c1)",
        "URL path must end with /c1: the version path is case-sensitive",
        "%23 is not a fragment: the digits must follow a literal '#'",
    ]


def test_wechat_rewritten_url_is_accepted(issuer, issue, verify):
    """WeChat's query before the fragment and a trailing zero-width space change nothing."""
    base, _, digits = issue(issuer)["qr_text"].partition("#")

    verdict = verify(f"{base}?from=singlemessage&isappinstalled=0#{digits}\u200b")

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("accept", [], ACCEPT_CHECKS)
    assert verdict["message"] is None


def test_unsupported_algorithm(settings, issuer, verify, issuer_signing_key, make_claims):
    """A credential under the issuer's kid but signed with ES256K (secp256k1), which certseal does not implement."""
    secp256k1 = ec.generate_private_key(ec.SECP256K1())
    protected = _cbor.dumps({cose.HEADER_ALG: ES256K, cose.HEADER_KID: issuer_signing_key("CN-44").kid})
    payload = _cbor.dumps(make_claims().to_cbor())
    r, s = decode_dss_signature(secp256k1.sign(cose.sig_structure(protected, b"", payload), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    envelope = b"\xd2\x84" + _cbor.dumps(protected) + b"\xa0" + _cbor.dumps(payload) + _cbor.dumps(signature)

    verdict = verify(qr_of(envelope, settings))

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["unsupported_algorithm"])
    assert (verdict["checks"], verdict["certificate"]) == (["format", "signature"], None)


def test_unknown_key(settings, issuer, verify, make_claims):
    """A well-formed credential signed by a key the service never had is rejected as unknown_key."""
    stranger = SigningKey.generate("ES256")
    qr = qr_of(crypto.sign_certificate(make_claims(), stranger), settings)

    verdict = verify(qr)

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == (
        "reject",
        ["unknown_key"],
        ["format", "signature"],
    )


def test_bad_signature(settings, issuer, issue, verify):
    """Flipping one signature byte of a genuine envelope and re-packing it gives bad_signature."""
    certificate = issue(issuer)
    envelope = bytearray(crypto.envelope_from_qr_text(certificate["qr_text"]))
    envelope[-1] ^= 0x01

    verdict = verify(qr_of(bytes(envelope), settings))

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["bad_signature"])
    assert verdict["checks"] == ["format", "signature"]


def test_not_yet_valid(issuer, issue, verify):
    """A certificate issued for tomorrow (the API allows one day ahead) is not yet valid today."""
    tomorrow = TEST_TODAY + timedelta(days=1)
    certificate = issue(issuer, issue_date=tomorrow.isoformat())

    verdict = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["not_yet_valid"], ACCEPT_CHECKS)


def test_issue_date_two_days_ahead_is_refused(app_client, issuer, certificate_body):
    """The API refuses an issue date more than one day in the future."""
    later = TEST_TODAY + timedelta(days=2)

    response = app_client.post(
        "/v1/certificates", json=certificate_body(issue_date=later.isoformat()), headers=issuer.headers
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_dates"


def test_expired(issuer, issue, verify):
    """A certificate valid 2020-01-01 through 2021-01-01 is expired (its review date is not yet due)."""
    review_due = (TEST_TODAY + timedelta(days=365)).isoformat()
    certificate = issue(issuer, issue_date="2020-01-01", valid_until="2021-01-01", review_due=review_due)

    verdict = verify(certificate["qr_text"])

    assert certificate["valid_until"] == "2021-01-01"
    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["expired"], ACCEPT_CHECKS)


def test_review_overdue_with_the_rule_on(issuer, issue, verify):
    """With the review rule on, a certificate whose review date has passed is rejected review_overdue."""
    certificate = issue(issuer, issue_date=years_ago(4).isoformat())

    verdict = verify(certificate["qr_text"])

    assert certificate["review_due"] == years_ago(1).isoformat()
    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["review_overdue"], ACCEPT_CHECKS)


class TestReviewRuleOff:
    """A deployment that switched the three-year review off."""

    @pytest.fixture
    def settings(self, make_settings):
        """Demo settings with ``review_required=False``."""
        return make_settings(review_required=False)

    def test_past_review_date_is_not_checked(self, issuer, issue, verify):
        """With the rule off, a past review date (even a signed one) does not reject and no review check runs."""
        certificate = issue(issuer, issue_date=years_ago(4).isoformat(), review_due=years_ago(1).isoformat())

        verdict = verify(certificate["qr_text"])

        assert certificate["review_due"] == years_ago(1).isoformat()
        assert (verdict["decision"], verdict["reasons"]) == ("accept", [])
        assert verdict["checks"] == [*BASE_CHECKS, "status"]

    def test_no_review_date_is_set_by_default(self, issuer, issue):
        """With the rule off, issuance sets no review date unless asked."""
        certificate = issue(issuer)

        assert certificate["review_due"] is None


def test_key_revoked_for_certificates_registered_after_the_compromise(
    app_client, admin_headers, issuer, issue, clock, verify
):
    """A key compromised since T: certificates registered at or after T are key_revoked, earlier ones still accepted."""
    before = issue(issuer, holder_name="刘洋")
    clock.advance(hours=1)
    since = clock.now()
    after = issue(issuer)
    clock.advance(hours=1)

    reported = app_client.post(
        f"/v1/issuers/CN-44/keys/{after['kid']}/compromise",
        json={"reason": "key copied", "compromised_at": since.isoformat()},
        headers=admin_headers,
    )

    assert reported.status_code == 200
    assert reported.json()["state"] == "compromised"
    assert datetime.fromisoformat(reported.json()["compromised_at"]) == since
    verdict = verify(after["qr_text"])
    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["key_revoked"], ACCEPT_CHECKS)
    assert verify(before["qr_text"])["decision"] == "accept"


def test_key_revoked_certificates_before_the_compromise_are_listed_for_reissue(
    app_client, admin_headers, issuer, issue, clock
):
    """The reissue listing names exactly the compromised key's certificates registered before the compromise."""
    early = [issue(issuer, holder_name=name) for name in ("刘洋", "赵敏")]
    clock.advance(hours=1)
    late = issue(issuer)
    app_client.post(
        f"/v1/issuers/CN-44/keys/{late['kid']}/compromise",
        json={"reason": "key copied", "compromised_at": clock.now().isoformat()},
        headers=admin_headers,
    )

    listed = app_client.get(f"/v1/issuers/CN-44/keys/{late['kid']}/reissue", headers=issuer.headers)

    assert listed.status_code == 200
    assert sorted(item["id"] for item in listed.json()["items"]) == sorted(c["id"] for c in early)
    assert listed.json()["next_after"] is None


def test_key_compromise_in_the_future_is_refused(app_client, admin_headers, issuer, issue, clock):
    """A compromise time after now is a 422 with a code, and the key stays active."""
    certificate = issue(issuer)

    reported = app_client.post(
        f"/v1/issuers/CN-44/keys/{certificate['kid']}/compromise",
        json={"reason": "x", "compromised_at": (clock.now() + timedelta(hours=1)).isoformat()},
        headers=admin_headers,
    )

    assert (reported.status_code, reported.json()["error"]["code"]) == (422, "invalid_dates")


def test_key_not_valid_at_issue_for_a_certificate_dated_before_its_key(app, app_client, issuer, settings):
    """A certificate whose iat precedes its key's not_before (beyond the skew) is key_not_valid_at_issue."""
    with Session(app.state.engine) as session:
        row = session.exec(
            select(SigningKeyRow).where(SigningKeyRow.use == "certificate", SigningKeyRow.state == "active")
        ).one()
    key = app.state.keyring.signing_key(row)
    claims = crypto.CertificateClaims.issue(
        issuer="CN-44",
        holder_name="张伟",
        masked_id="1101123X",
        operation=Operation(2, 1),
        valid_from=TEST_TODAY - timedelta(days=30),
        valid_until=TEST_TODAY + timedelta(days=300),
        status_index=5,
        issued_at=row.not_before - crypto.CLOCK_SKEW - timedelta(seconds=1),
    )

    response = app_client.post("/v1/verify", json={"qr": qr_of(crypto.sign_certificate(claims, key), settings)})

    assert "key_not_valid_at_issue" in response.json()["reasons"]
    assert response.json()["decision"] == "reject"


def test_superseded(app_client, issuer, issue, verify):
    """A certificate marked superseded (reissued) is rejected superseded and reads so in its summary."""
    certificate = issue(issuer)

    changed = app_client.post(
        f"/v1/certificates/{certificate['id']}/supersede",
        json={"reason": "reissued under a new key"},
        headers=issuer.headers,
    )
    verdict = verify(certificate["qr_text"])

    assert changed.status_code == 200
    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["superseded"])
    assert verdict["certificate"]["status"] == "superseded"


def test_suspended(app_client, issuer, issue, verify):
    """A suspended certificate is rejected suspended."""
    certificate = issue(issuer)
    app_client.post(f"/v1/certificates/{certificate['id']}/suspend", json={"reason": "暂扣"}, headers=issuer.headers)

    verdict = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["suspended"], ACCEPT_CHECKS)
    assert verdict["certificate"]["status"] == "suspended"


def test_revoked(app_client, issuer, issue, verify):
    """A revoked certificate is rejected revoked."""
    certificate = issue(issuer)
    app_client.post(f"/v1/certificates/{certificate['id']}/revoke", json={"reason": "吊销"}, headers=issuer.headers)

    verdict = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["revoked"], ACCEPT_CHECKS)
    assert verdict["certificate"]["status"] == "revoked"


def test_unknown_certificate(settings, issuer, issue, verify, issuer_signing_key, make_claims):
    """A credential signed with the issuer's real key but never registered is unknown_certificate."""
    issue(issuer)
    qr = qr_of(crypto.sign_certificate(make_claims(), issuer_signing_key("CN-44")), settings)

    verdict = verify(qr)

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["unknown_certificate"])
    assert verdict["checks"] == [*BASE_CHECKS, "review"]
    assert verdict["certificate"]["status"] is None


def test_claims_mismatch(settings, issuer, issue, verify, issuer_signing_key, make_claims):
    """A credential reusing a stored serial with other content, signed by the issuer's key, is claims_mismatch."""
    certificate = issue(issuer)
    forged = make_claims(serial=bytes.fromhex(certificate["serial"]), holder_name="冒用者")
    qr = qr_of(crypto.sign_certificate(forged, issuer_signing_key("CN-44")), settings)

    verdict = verify(qr)

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == (
        "reject",
        ["claims_mismatch"],
        ACCEPT_CHECKS,
    )
    assert verdict["certificate"]["photo_url"] is None


def test_issuer_not_authorized_for_another_issuers_name(
    settings, issuer, other_issuer, verify, issuer_signing_key, make_claims
):
    """Issuer A's key signing claims naming issuer B is issuer_not_authorized (and the serial is unknown)."""
    qr = qr_of(crypto.sign_certificate(make_claims(issuer="CN-11"), issuer_signing_key("CN-44")), settings)

    verdict = verify(qr)

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["issuer_not_authorized", "unknown_certificate"])
    assert verdict["checks"] == [*BASE_CHECKS, "review"]


def test_issuer_not_authorized_after_scope_narrowed(app_client, admin_headers, issuer, issue, verify):
    """When the admin removes an item from the issuer's scope, its certificates for that item are rejected."""
    certificate = issue(issuer, operation="2.2")
    narrowed = app_client.put(
        "/v1/issuers/CN-44/operations", json={"operations": ["2.1", "1.2"]}, headers=admin_headers
    )

    verdict = verify(certificate["qr_text"])

    assert narrowed.json()["operations"] == ["2.1", "1.2"]
    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == (
        "reject",
        ["issuer_not_authorized"],
        ACCEPT_CHECKS,
    )


def test_operation_not_covered_for_hot_work(issuer, issue, verify):
    """A low-voltage electrician (1.2) certificate does not cover hot work."""
    certificate = issue(issuer, operation="1.2")

    verdict = verify(certificate["qr_text"], purpose="hot_work")

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["operation_not_covered"])
    assert verdict["checks"] == [*ACCEPT_CHECKS, "hot_work"]
    assert verdict["certificate"]["operation"]["covers_hot_work"] is False


def test_welding_certificate_covers_hot_work(issuer, issue, verify):
    """A fusion welding (2.1) certificate is accepted for hot work."""
    certificate = issue(issuer, operation="2.1")

    verdict = verify(certificate["qr_text"], purpose="hot_work")

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("accept", [], [*ACCEPT_CHECKS, "hot_work"])


def test_operation_not_covered_for_another_item(issuer, issue, verify):
    """A 2.1 certificate does not cover a check asking for exactly 2.2."""
    certificate = issue(issuer, operation="2.1")

    verdict = verify(certificate["qr_text"], operation="2.2")
    same = verify(certificate["qr_text"], operation="2.1")

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["operation_not_covered"])
    assert verdict["checks"] == [*ACCEPT_CHECKS, "operation"]
    assert (same["decision"], same["reasons"]) == ("accept", [])


def test_holder_mismatch(issuer, issue, verify, make_id_number):
    """A valid ID number that is not the holder's is holder_mismatch."""
    certificate = issue(issuer, holder_id_number=make_id_number(date(1985, 3, 12)))

    verdict = verify(certificate["qr_text"], holder_id_number=make_id_number(date(1985, 3, 12), sequence=457))

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == (
        "reject",
        ["holder_mismatch"],
        [*ACCEPT_CHECKS, "holder"],
    )


def test_holder_match_is_accepted(issuer, issue, verify, make_id_number):
    """The holder's own ID number, lower-case x included, is accepted with the holder check listed."""
    holder = make_id_number(date(1979, 12, 31), check="X")
    certificate = issue(issuer, holder_id_number=holder)

    verdict = verify(certificate["qr_text"], holder_id_number=holder.lower())

    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("accept", [], [*ACCEPT_CHECKS, "holder"])


def test_holder_check_limited_after_five_wrong_numbers(app_client, settings, issuer, issue, verify, make_id_number):
    """After five wrong ID numbers in an hour, further holder checks of that certificate get 429, the right one too."""
    holder = make_id_number(date(1985, 3, 12))
    certificate = issue(issuer, holder_id_number=holder)
    wrong = [
        make_id_number(date(1985, 3, 12), sequence=200 + 2 * n) for n in range(settings.holder_check_failures_per_hour)
    ]
    misses = [verify(certificate["qr_text"], holder_id_number=number) for number in wrong]

    sixth = app_client.post(
        "/v1/verify",
        json={"qr": certificate["qr_text"], "holder_id_number": make_id_number(date(1985, 3, 12), sequence=300)},
    )
    right = app_client.post("/v1/verify", json={"qr": certificate["qr_text"], "holder_id_number": holder})
    without_holder = verify(certificate["qr_text"])

    assert settings.holder_check_failures_per_hour == 5
    assert all(miss["reasons"] == ["holder_mismatch"] for miss in misses)
    for limited in (sixth, right):
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "holder_check_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 3600
        assert limited.json()["error"]["message"].endswith(f"retry in {limited.headers['Retry-After']} seconds")
    assert (without_holder["decision"], without_holder["reasons"]) == ("accept", [])


def _app_key_headers(app_client, admin_headers, label: str) -> dict[str, str]:
    created = app_client.post("/v1/apps/api-keys", json={"label": label}, headers=admin_headers)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


def test_holder_check_limit_is_per_client(app_client, admin_headers, settings, issuer, issue, make_id_number):
    """A client over its limit gets 429 on that certificate while another client still gets right and wrong verdicts."""
    holder = make_id_number(date(1985, 3, 12))
    qr = issue(issuer, holder_id_number=holder)["qr_text"]
    guesser, site = (_app_key_headers(app_client, admin_headers, label) for label in ("guesser", "site"))
    wrong = [make_id_number(date(1985, 3, 12), sequence=200 + 2 * n) for n in range(6)]

    guesses = [
        app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": n}, headers=guesser).status_code
        for n in wrong
    ]
    right_by_site = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder}, headers=site)
    wrong_by_site = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": wrong[0]}, headers=site)
    right_by_guesser = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder}, headers=guesser)
    anonymous = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder})

    assert guesses == [200] * settings.holder_check_failures_per_hour + [429]
    assert (right_by_site.status_code, right_by_site.json()["decision"]) == (200, "accept")
    assert wrong_by_site.json()["reasons"] == ["holder_mismatch"]
    assert right_by_guesser.status_code == 429
    assert right_by_guesser.json()["error"]["code"] == "holder_check_limited"
    assert anonymous.json()["decision"] == "accept"


@pytest.mark.parametrize("settings", [{"holder_check_global_failures": 6}], indirect=True)
def test_holder_check_global_ceiling_stops_guessing_spread_over_clients(
    app_client, admin_headers, settings, issuer, issue, make_id_number
):
    """Wrong numbers from many clients together reach the per-certificate ceiling, and then every client gets 429."""
    holder = make_id_number(date(1985, 3, 12))
    qr = issue(issuer, holder_id_number=holder)["qr_text"]
    clients = [_app_key_headers(app_client, admin_headers, f"client-{n}") for n in range(4)]
    wrong = [make_id_number(date(1985, 3, 12), sequence=200 + 2 * n) for n in range(8)]

    statuses = [
        app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": number}, headers=clients[n % 3]).status_code
        for n, number in enumerate(wrong)
    ]
    fresh_client = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder}, headers=clients[3])
    without_holder = app_client.post("/v1/verify", json={"qr": qr}, headers=clients[3])

    assert statuses == [200] * 6 + [429] * 2
    assert fresh_client.status_code == 429
    assert without_holder.json()["decision"] == "accept"


def test_key_rotation(app, app_client, issuer, issue, verify):
    """After rotation new certificates use the new kid, old ones still verify, and the old key no longer signs."""
    old = issue(issuer)

    rotated = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=issuer.headers)
    new = issue(issuer, holder_name="刘洋")

    assert rotated.status_code == 201
    assert new["kid"] == rotated.json()["kid"] != old["kid"]
    assert (verify(old["qr_text"])["decision"], verify(new["qr_text"])["decision"]) == ("accept", "accept")
    with Session(app.state.engine) as session:
        old_row = session.get(SigningKeyRow, old["kid"])
        active = session.exec(
            select(SigningKeyRow).where(SigningKeyRow.state == "active", SigningKeyRow.use == "certificate")
        ).all()
    assert old_row.state == "retired"
    assert [row.kid for row in active] == [new["kid"]]
    with pytest.raises(crypto.KeyUnavailable):
        app.state.keyring.signing_key(old_row)
    keys = app_client.get("/v1/keys").json()["keys"]
    states = {key["kid"]: key["state"] for key in keys if key["use"] == "certificate"}
    assert states == {old["kid"]: "retired", new["kid"]: "active"}


def test_eddsa_issuer_certificates_verify(make_issuer, issue, verify):
    """An issuer with an Ed25519 key issues certificates the service verifies."""
    eddsa = make_issuer("CN-31", ["2.1"], alg="EdDSA")
    certificate = issue(eddsa)

    verdict = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"]) == ("accept", [])
    assert crypto.Operation.parse(verdict["certificate"]["operation"]["code"]) == Operation(2, 1)


def test_every_reason_code_has_its_own_test():
    """Each reason code the API can return is reached by a test in this module named after it."""
    tests = [name for name in globals() if name.startswith("test_")]

    missing = [code for code in REASON_CODES if not any(name.startswith(f"test_{code}") for name in tests)]

    assert missing == []


def test_key_compromise_time_without_a_zone_is_refused(app_client, admin_headers, issuer, issue):
    """A compromise time without a time zone is a 422 validation error, never a 500."""
    certificate = issue(issuer)

    reported = app_client.post(
        f"/v1/issuers/CN-44/keys/{certificate['kid']}/compromise",
        json={"reason": "x", "compromised_at": "2026-06-15T08:00:00"},
        headers=admin_headers,
    )

    assert (reported.status_code, reported.json()["error"]["code"]) == (422, "validation_error")
