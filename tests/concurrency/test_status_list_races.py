"""Races on status lists and the trust list: no concurrent change is lost from what is served.

Every round fires suspends, reinstates and revokes at once on certificates that share a list, split over
every server of the deployment (two on PostgreSQL); then the list each server serves, decoded with plain
``cbor2`` and ``zlib``, must hold exactly the status the registry reports for every certificate.
Simultaneous key rotations of several issuers, with the servers holding the trust anchor, each publish
one trust list of their own, and the last one lists every key as /v1/keys does.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest

import crypto
from crypto import SigningKey

from .harness import Call, Deployment, IssuedCertificate, Provisioner, describe, fire_together, race_rounds, tally

pytestmark = pytest.mark.slow

ROUNDS = race_rounds(8)
POOL = 24
RACERS = 8
ACTIONS = ["suspend", "reinstate", "suspend", "reinstate", "suspend", "revoke"]
FETCHERS = 2
STATUS_VALUE = {"valid": 0, "revoked": 1, "suspended": 2, "superseded": 3}


ANCHOR_PASSPHRASE = "concurrency tests trust anchor"
TRUST_ISSUERS = ("TL-A", "TL-B", "TL-C")
ROTATIONS_PER_ISSUER = 2


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path]:
    """A trust anchor the servers hold (they sign a trust list on every key change) and its key file."""
    key = SigningKey.generate("ES256")
    path = tmp_path_factory.mktemp("anchor") / "anchor.key.pem"
    path.write_bytes(key.to_pem(ANCHOR_PASSPHRASE.encode()))
    return key, path


@pytest.fixture(scope="module")
def deployment_options(anchor: tuple[SigningKey, Path]) -> dict[str, Any]:
    """The shortest ttl the settings allow (lists are also re-signed while changes race), and a trust anchor."""
    return {
        "settings": {
            "CERTSEAL_STATUS_LIST_TTL_SECONDS": "10",
            "CERTSEAL_TRUST_ANCHOR_KEY_FILE": str(anchor[1]),
            "CERTSEAL_TRUST_ANCHOR_PASSPHRASE": ANCHOR_PASSPHRASE,
        }
    }


def served_entries(
    deployment: Deployment, server: int, number: int, indexes: list[int], code: str = "CN-44"
) -> list[int]:
    """The two-bit entries at ``indexes`` of list ``number`` of ``code`` as server ``server`` serves it now."""
    response = httpx.get(f"{deployment.url(server)}/v1/status-lists/{code}/{number}", timeout=30)
    assert response.status_code == 200, response.text
    claims = cbor2.loads(cbor2.loads(response.content).value[2])
    array = zlib.decompressobj().decompress(claims[65533]["lst"], 32768)
    return [(array[(i & 0x1FFFF) >> 2] >> (2 * (i & 3))) & 3 for i in indexes]


def test_concurrent_changes_in_one_list_are_all_in_the_served_list(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], figure
) -> None:
    """After every round of simultaneous changes (and fetches) in one list, each server's list equals the registry."""
    pool: list[IssuedCertificate] = [provision.issue(issuer_headers) for _ in range(POOL)]
    numbers = {certificate.status_index >> 17 for certificate in pool}
    rng = random.Random(2026)  # noqa: S311 - a reproducible sequence of races, not a secret
    servers = len(deployment.servers)
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        calls = [
            Call(
                "POST",
                f"{deployment.url(n % servers)}/v1/certificates/{certificate.id}/{action}",
                json={"reason": f"list race {round_}"},
                headers=issuer_headers,
                label=action,
            )
            for n, (certificate, action) in enumerate((rng.choice(pool), rng.choice(ACTIONS)) for _ in range(RACERS))
        ]
        fetches = [
            Call("GET", f"{deployment.url(n)}/v1/status-lists/CN-44/{number}", label="fetch")
            for n in range(FETCHERS)
            for number in numbers
        ]
        answers = fire_together(calls + fetches)
        overall.update(tally(answers, by_label=True))
        registry = [STATUS_VALUE[provision.certificate(issuer_headers, c.id)["status"]] for c in pool]
        for server in range(servers):
            for number in numbers:
                members = [(i, c) for i, c in enumerate(pool) if c.status_index >> 17 == number]
                served = served_entries(deployment, server, number, [c.status_index for _, c in members])
                expected = [registry[i] for i, _ in members]
                if served != expected:
                    problems.append(f"round {round_}, server {server}, list {number}: served {served} != {expected}")
        unexpected = [
            a.outcome for a in answers if a.status != 200 and (a.status, a.code) != (409, "invalid_transition")
        ]
        if unexpected:
            problems.append(f"round {round_}: unexpected answers {unexpected}")

    figure("status changes raced", f"{ROUNDS} rounds x {RACERS} on {deployment.backend}: {describe(overall)}")
    assert len(numbers) == 1, f"the pool spans lists {numbers}: with few draws every index is in list 1"
    assert sum(count for outcome, count in overall.items() if outcome.endswith(": 200") and "fetch" not in outcome)
    assert not problems, f"{len(problems)} lost updates on {deployment.backend}:\n" + "\n".join(problems[:20])


def test_concurrent_rotations_publish_one_trust_list_each(
    deployment: Deployment, provision: Provisioner, anchor: tuple[SigningKey, Path], figure
) -> None:
    """Simultaneous rotations of several issuers' keys each publish their own sequence; the last lists every key."""
    for code in TRUST_ISSUERS:
        provision.create_issuer(code)
    servers = len(deployment.servers)
    first = trust_list(deployment, anchor[0])
    overall: Counter[str] = Counter()

    for _ in range(ROUNDS):
        calls = [
            Call(
                "POST",
                f"{deployment.url(n % servers)}/v1/issuers/{code}/keys/rotate",
                headers=deployment.admin_headers,
                label="rotate",
            )
            for n, code in enumerate(code for code in TRUST_ISSUERS for _ in range(ROTATIONS_PER_ISSUER))
        ]
        fetch = [Call("GET", f"{deployment.url(n)}/v1/trust-list", label="fetch") for n in range(servers)]
        overall.update(tally(fire_together(calls + fetch), by_label=True))
    last = trust_list(deployment, anchor[0])
    keys = httpx.get(f"{deployment.url()}/v1/keys", timeout=30).json()["keys"]

    figure("rotations raced", f"{ROUNDS} rounds on {deployment.backend}: {describe(overall)}")
    rotations = ROUNDS * len(TRUST_ISSUERS) * ROTATIONS_PER_ISSUER
    assert (overall["rotate: 201"], overall["fetch: 200"]) == (rotations, ROUNDS * servers), describe(overall)
    assert last.sequence == first.sequence + rotations
    listed = {(k.kid.hex(), str(k.use), str(k.state)) for issuer in last.content.issuers for k in issuer.keys}
    assert listed == {(k["kid"], k["use"], k["state"]) for k in keys}
    for code in TRUST_ISSUERS:
        states = Counter((str(k.use), str(k.state)) for k in last.issuer(code).keys)
        assert states == {
            ("certificate", "active"): 1,
            ("certificate", "retired"): ROUNDS * ROTATIONS_PER_ISSUER,
            ("status_list", "active"): 1,
        }, code


def trust_list(deployment: Deployment, anchor: SigningKey) -> crypto.TrustList:
    """The trust list served now, verified against the anchor."""
    response = httpx.get(f"{deployment.url()}/v1/trust-list", timeout=30)
    assert response.status_code == 200, response.text
    return crypto.verify_trust_list(response.content, anchor.public_key, now=datetime.now(UTC))


def test_status_changes_racing_a_list_key_compromise(deployment: Deployment, provision: Provisioner, figure) -> None:
    """Changes racing the compromise of the list key: no list is served until a rotation, then every change is."""
    provision.create_issuer("SL-R")
    headers = provision.issuer_key("SL-R")
    pool = [provision.issue(headers) for _ in range(POOL // 2)]
    number = pool[0].status_index >> 17
    url = f"{deployment.url()}/v1/status-lists/SL-R/{number}"
    rng = random.Random(7)  # noqa: S311 - a reproducible sequence of races, not a secret
    servers = len(deployment.servers)
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        kid = status_list_kid(deployment, "SL-R")
        changes = [
            Call(
                "POST",
                f"{deployment.url(n % servers)}/v1/certificates/{rng.choice(pool).id}/{rng.choice(ACTIONS)}",
                json={"reason": "compromise race"},
                headers=headers,
                label="change",
            )
            for n in range(RACERS // 2)
        ]
        compromise = Call(
            "POST",
            f"{deployment.url(round_)}/v1/issuers/SL-R/keys/{kid}/compromise",
            json={"reason": "race"},
            headers=deployment.admin_headers,
            label="compromise",
        )
        overall.update(tally(fire_together([*changes, compromise]), by_label=True))
        during = httpx.get(url, timeout=30)
        rotated = httpx.post(
            f"{deployment.url(round_ + 1)}/v1/issuers/SL-R/keys/rotate?use=status_list",
            headers=deployment.admin_headers,
            timeout=30,
        )
        after = httpx.get(url, timeout=30)
        registry = [STATUS_VALUE[provision.certificate(headers, c.id)["status"]] for c in pool]

        if (during.status_code, during.json()["error"]["code"]) != (404, "status_list_unavailable"):
            problems.append(f"round {round_}: with the key compromised the list answered {during.status_code}")
        if rotated.status_code != 201 or after.status_code != 200:
            problems.append(f"round {round_}: rotate {rotated.status_code}, then the list {after.status_code}")
            continue
        header = cbor2.loads(cbor2.loads(after.content).value[0])
        if header[4].hex() != rotated.json()["kid"]:
            problems.append(
                f"round {round_}: list signed by {header[4].hex()}, not the new key {rotated.json()['kid']}"
            )
        served = served_entries(deployment, round_, number, [c.status_index for c in pool], "SL-R")
        if served != registry:
            problems.append(f"round {round_}: served {served} != registry {registry}")

    figure("changes racing a list key compromise", f"{ROUNDS} rounds on {deployment.backend}: {describe(overall)}")
    assert overall["compromise: 200"] == ROUNDS, describe(overall)
    assert not problems, f"{len(problems)} problems on {deployment.backend}:\n" + "\n".join(problems[:20])


def status_list_kid(deployment: Deployment, code: str) -> str:
    """The kid of the issuer's active status-list key, from /v1/keys."""
    keys = httpx.get(f"{deployment.url()}/v1/keys", timeout=30).json()["keys"]
    (kid,) = [k["kid"] for k in keys if k["issuer"] == code and k["use"] == "status_list" and k["state"] == "active"]
    return kid
