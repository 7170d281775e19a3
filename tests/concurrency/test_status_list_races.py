"""Races on one status list: concurrent status changes in the same list never lose an update in the served list.

Every round fires suspends, reinstates and revokes at once on certificates that share a list, split over
every server of the deployment (two on PostgreSQL); then the list each server serves, decoded with plain
``cbor2`` and ``zlib``, must hold exactly the status the registry reports for every certificate.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from typing import Any

import cbor2
import httpx
import pytest

from .harness import Call, Deployment, IssuedCertificate, Provisioner, describe, fire_together, race_rounds, tally

pytestmark = pytest.mark.slow

ROUNDS = race_rounds(8)
POOL = 24
RACERS = 8
ACTIONS = ["suspend", "reinstate", "suspend", "reinstate", "suspend", "revoke"]
FETCHERS = 2
STATUS_VALUE = {"valid": 0, "revoked": 1, "suspended": 2, "superseded": 3}


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """The shortest ttl the settings allow, so lists are also re-signed while the changes race."""
    return {"settings": {"CERTSEAL_STATUS_LIST_TTL_SECONDS": "10"}}


def served_entries(deployment: Deployment, server: int, number: int, indexes: list[int]) -> list[int]:
    """The two-bit entries at ``indexes`` of list ``number`` of CN-44 as server ``server`` serves it now."""
    response = httpx.get(f"{deployment.url(server)}/v1/status-lists/CN-44/{number}", timeout=30)
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
