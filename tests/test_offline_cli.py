"""``certseal verify`` offline with a freshly fetched trust list and status lists, against a real ``certseal serve``."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import certseal_environment, run_certseal

from api.demo import DEMO_TRUST_ANCHOR_FILE, demo_id_number
from api.settings import DEMO_ISSUER_API_KEY, DEMO_SECRETS
from crypto import SigningKey

DEMO_KEY_HEADERS = {"Authorization": f"Bearer {DEMO_ISSUER_API_KEY}"}


def fetch_lists(server, folder, anchor):
    """``certseal trust fetch`` then ``certseal status-list fetch`` into ``folder``; return the list files."""
    env = certseal_environment()
    trust = run_certseal(
        "trust", "fetch", "--url", f"{server.base_url}/v1/trust-list", "--out", "trust.cbor", "--anchor", anchor,
        env=env, cwd=folder,
    )  # fmt: skip
    lists = run_certseal(
        "status-list", "fetch", "--base-url", server.base_url, "--trust-list", "trust.cbor", "--anchor", anchor,
        "--out-dir", "lists", env=env, cwd=folder,
    )  # fmt: skip
    assert (trust.returncode, lists.returncode) == (0, 0), trust.stderr + lists.stderr
    return sorted(str(path) for path in (folder / "lists").iterdir())


def verify_offline(folder, anchor, list_files, qr_text):
    """``certseal verify --trust-list --status-list`` on a QR text; return (exit code, the JSON verdict)."""
    result = run_certseal(
        "verify", qr_text, "--trust-list", "trust.cbor", "--anchor", anchor,
        *(option for path in list_files for option in ("--status-list", path)),
        env=certseal_environment(), cwd=folder,
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.slow
def test_a_card_revoked_through_the_api_is_rejected_offline_with_freshly_fetched_lists(tmp_path, start_serve):
    """Accepted offline with lists fetched before the revocation, rejected `revoked` with lists fetched after it."""
    server = start_serve("--demo", "--database", f"sqlite:///{tmp_path / 'certseal.db'}", env=certseal_environment())
    passphrase = DEMO_SECRETS["trust_anchor_passphrase"].encode()
    anchor = tmp_path / "anchor.pub.pem"
    anchor.write_bytes(SigningKey.load(tmp_path / DEMO_TRUST_ANCHOR_FILE, passphrase).public_pem())
    with httpx.Client(base_url=server.base_url, headers=DEMO_KEY_HEADERS, timeout=30) as client:
        card = client.post(
            "/v1/certificates",
            json={
                "holder_name": "周强",
                "holder_id_number": demo_id_number("19900307", "517"),
                "operation": "2.1",
                "issue_date": "2026-01-05",
            },
        ).json()
        before = verify_offline(tmp_path, str(anchor), fetch_lists(server, tmp_path, str(anchor)), card["qr_text"])
        revoked = client.post(f"/v1/certificates/{card['id']}/revoke", json={"reason": "证件系伪造材料取得"})

    after = verify_offline(tmp_path, str(anchor), fetch_lists(server, tmp_path, str(anchor)), card["qr_text"])

    assert revoked.status_code == 200
    assert before[0] == 0, before
    assert (before[1]["decision"], before[1]["status_source"]) == ("accept", "list")
    assert after[0] == 1, after
    assert (after[1]["decision"], after[1]["reasons"], after[1]["status_source"]) == ("reject", ["revoked"], "list")
