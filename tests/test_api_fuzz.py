"""Hostile request bodies and paths: always a clean 4xx or a verdict, never a 500 or an echo of the input."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
VERIFY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "qr": JSON_VALUES | st.text(max_size=600),
        "holder_id_number": JSON_VALUES,
        "purpose": JSON_VALUES | st.just("hot_work"),
        "operation": JSON_VALUES | st.sampled_from(["2.1", "1.2", "99.99", "0.1"]),
    },
)


def _assert_clean(response, sent: str) -> None:
    assert response.status_code in (200, 400, 413, 422, 429), response.text
    body = response.json()
    verdict_keys = {"decision", "reasons", "checks", "checked_at", "certificate", "message"}
    assert set(body) == verdict_keys or set(body) == {"error"}
    if "error" in body and len(sent) > 12:
        assert sent not in response.text


@FUZZ
@given(VERIFY_FIELDS)
def test_verify_with_arbitrary_fields_answers_cleanly(app_client, fields):
    """Any JSON object with any of verify's fields (any types) gets a verdict or a clean 4xx."""
    response = app_client.post("/v1/verify", json=fields)

    _assert_clean(response, json.dumps(fields.get("holder_id_number")))


@FUZZ
@given(st.binary(max_size=300))
def test_verify_with_arbitrary_bytes_answers_cleanly(app_client, raw):
    """Random bytes as the body get a clean 400 or 422."""
    response = app_client.post("/v1/verify", content=raw, headers={"Content-Type": "application/json"})

    _assert_clean(response, raw.decode("latin-1"))


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=60))
def test_certificate_paths_with_arbitrary_ids_answer_cleanly(app_client, certificate_id):
    """Unknown or odd certificate ids give 404 (or 422), never a 500."""
    assume(certificate_id not in {".", ".."})  # dot segments are path navigation: the client resolves them away
    certificate_id = quote(certificate_id, safe="")

    responses = [
        app_client.get(f"/v1/certificates/{certificate_id}/qr.png"),
        app_client.get(f"/v1/certificates/{certificate_id}/qr.svg"),
        app_client.get(f"/v1/certificates/{certificate_id}/photo", params={"expires": "1", "sig": "x"}),
    ]

    assert all(r.status_code in (403, 404, 422) for r in responses), [r.text for r in responses]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/issuers/CN%0044"),
        ("GET", "/v1/issuers/%00/api-keys"),
        ("DELETE", "/v1/issuers/CN-44/api-keys/%00"),
        ("DELETE", "/v1/apps/api-keys/%00abc"),
        ("POST", "/v1/issuers/CN-44/keys/%00/compromise"),
        ("GET", "/v1/certificates/%00"),
        ("POST", "/v1/certificates/%00/revoke"),
    ],
)
def test_a_nul_character_in_any_path_parameter_is_a_4xx(app_client, admin_headers, issuer, method, path):
    """A NUL in a path segment (text PostgreSQL cannot even compare) is a clean 4xx on every route, never a 500."""
    headers = issuer.headers if path.startswith("/v1/certificates") else admin_headers

    response = app_client.request(method, path, headers=headers, json={"reason": "test"})

    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error"}
