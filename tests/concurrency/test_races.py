"""Races on real servers: status changes, key rotation, issuer creation and an issuance burst.

Every round fires its requests at once (released by one event), split over every server of the
deployment (two on PostgreSQL), then checks what the service answered and what it stored.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest

from .harness import (
    Answer,
    Call,
    Deployment,
    Provisioner,
    certificate_body,
    describe,
    fire_together,
    holder_name_for,
    id_number,
    issuer_body,
    race_rounds,
    tally,
)

pytestmark = pytest.mark.slow

ROUNDS = race_rounds(20)
SAME_ACTION_RACERS = 4
ROTATION_RACERS = 4
ISSUER_CREATE_RACERS = 6
BURST = 200
BURST_TIMEOUT_SECONDS = 60.0

# The state each action needs to start from, and the state it leads to.
START_STATE = {"suspend": "valid", "reinstate": "suspended", "revoke": "valid"}
TARGET_STATE = {"suspend": "suspended", "reinstate": "valid", "revoke": "revoked"}


def _status_call(deployment: Deployment, headers: dict[str, str], certificate_id: str, action: str, n: int) -> Call:
    return Call(
        "POST",
        f"{deployment.url(n)}/v1/certificates/{certificate_id}/{action}",
        json={"reason": f"race {action} {n}"},
        headers=headers,
        label=action,
    )


def _only_200_or_conflict(answers: list[Answer]) -> list[str]:
    """Outcomes other than 200 and 409 invalid_transition."""
    return [
        f"{answer.label}: {answer.outcome}"
        for answer in answers
        if answer.status != 200 and (answer.status, answer.code) != (409, "invalid_transition")
    ]


def _rejected_as_revoked(verdict: Answer) -> bool:
    body = verdict.body if isinstance(verdict.body, dict) else {}
    return verdict.status == 200 and body.get("decision") == "reject" and "revoked" in body.get("reasons", [])


@pytest.mark.parametrize("action", ["suspend", "reinstate", "revoke"])
def test_identical_status_changes_have_exactly_one_winner(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], action: str
) -> None:
    """Four simultaneous identical status changes give one 200 and three 409 invalid_transition, every round."""
    certificates = [provision.issue(issuer_headers) for _ in range(ROUNDS)]
    if START_STATE[action] == "suspended":
        for certificate in certificates:
            provision.change_status(issuer_headers, certificate.id, "suspend")
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_, certificate in enumerate(certificates):
        answers = fire_together(
            [_status_call(deployment, issuer_headers, certificate.id, action, n) for n in range(SAME_ACTION_RACERS)]
        )
        final = provision.certificate(issuer_headers, certificate.id)["status"]

        counts = tally(answers)
        overall.update(counts)
        if counts["200"] != 1 or counts["409 invalid_transition"] != SAME_ACTION_RACERS - 1:
            problems.append(f"round {round_}: {describe(counts)}")
        if final != TARGET_STATE[action]:
            problems.append(f"round {round_}: final status {final}, expected {TARGET_STATE[action]}")

    assert not problems, (
        f"{action} x{SAME_ACTION_RACERS} at once, {ROUNDS} rounds on {deployment.backend}: "
        f"{len(problems)} problems (overall {describe(overall)}):\n" + "\n".join(problems[:20])
    )


def test_revoke_is_final_under_racing_reinstates_and_suspends(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str]
) -> None:
    """On a suspended certificate, 2 revokes racing 2 reinstates and 1 suspend: one revoke wins and it stays revoked."""
    certificates = [provision.issue(issuer_headers) for _ in range(ROUNDS)]
    for certificate in certificates:
        provision.change_status(issuer_headers, certificate.id, "suspend")
    racers = ["revoke", "reinstate", "revoke", "reinstate", "suspend"]
    problems: list[str] = []
    overall: Counter[str] = Counter()
    revoked_but_not_final = 0

    for round_, certificate in enumerate(certificates):
        answers = fire_together(
            [_status_call(deployment, issuer_headers, certificate.id, action, n) for n, action in enumerate(racers)]
        )
        finals = {provision.certificate(issuer_headers, certificate.id, server=n)["status"] for n in range(2)}
        verdict = provision.verify({"qr": certificate.qr_text}, server=round_)

        counts = tally(answers, by_label=True)
        overall.update(counts)
        if unexpected := _only_200_or_conflict(answers):
            problems.append(f"round {round_}: unexpected answers {unexpected}")
        revokes_won = counts["revoke: 200"]
        if revokes_won != 1:
            problems.append(f"round {round_}: {revokes_won} revokes answered 200 ({describe(counts)})")
        if revokes_won and finals != {"revoked"}:
            revoked_but_not_final += 1
            problems.append(f"round {round_}: a revoke answered 200 but the status reads {finals} ({describe(counts)})")
        if not _rejected_as_revoked(verdict):
            problems.append(f"round {round_}: verify after the race: {verdict.outcome}")

    assert not problems, (
        f"{ROUNDS} rounds of {racers} on {deployment.backend}: {revoked_but_not_final} certificates revoked "
        f"(200) but not revoked at the end; overall {describe(overall)}:\n" + "\n".join(problems[:20])
    )


def test_concurrent_key_rotations_leave_exactly_one_active_key(deployment: Deployment, provision: Provisioner) -> None:
    """Four simultaneous key rotations answer 201 or 409 (never 5xx) and leave one active key that signs."""
    code = f"KR-{uuid.uuid4().hex[:6].upper()}"
    provision.create_issuer(code)
    headers = provision.issuer_key(code)
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(n)}/v1/issuers/{code}/keys/rotate",
                    headers=deployment.admin_headers,
                    label="rotate",
                )
                for n in range(ROTATION_RACERS)
            ]
        )
        keys = [key for key in provision.issuer(code)["keys"] if key["use"] == "certificate"]
        active = [key["kid"] for key in keys if key["state"] == "active"]
        created = {answer.body["kid"] for answer in answers if answer.status == 201}

        counts = tally(answers)
        overall.update(counts)
        if any(answer.status not in (201, 409) for answer in answers) or not created:
            problems.append(f"round {round_}: {describe(counts)}")
        if len(active) != 1:
            problems.append(f"round {round_}: {len(active)} active keys {active} ({describe(counts)})")
        elif active[0] not in created:
            problems.append(f"round {round_}: active key {active[0]} is none of the rotations answered 201 {created}")
        else:
            certificate = provision.issue(headers)
            verdict = provision.verify({"qr": certificate.qr_text}, server=round_)
            if verdict.outcome != "200 accept":
                problems.append(f"round {round_}: a certificate signed after the race verifies as {verdict.outcome}")

    assert not problems, (
        f"rotate x{ROTATION_RACERS} at once, {ROUNDS} rounds on {deployment.backend} "
        f"(overall {describe(overall)}):\n" + "\n".join(problems[:20])
    )


def test_compromising_the_active_key_while_rotating_never_fails(deployment: Deployment, provision: Provisioner) -> None:
    """A key compromise racing a rotation of the same issuer answers 200 and the rotation 201, every round."""
    code = f"RR-{uuid.uuid4().hex[:6].upper()}"
    provision.create_issuer(code)
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        certificate_keys = [key for key in provision.issuer(code)["keys"] if key["use"] == "certificate"]
        active = next(key["kid"] for key in certificate_keys if key["state"] == "active")
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(0)}/v1/issuers/{code}/keys/{active}/compromise",
                    json={"reason": f"race {round_}"},
                    headers=deployment.admin_headers,
                    label="compromise",
                ),
                Call(
                    "POST",
                    f"{deployment.url(1)}/v1/issuers/{code}/keys/rotate",
                    headers=deployment.admin_headers,
                    label="rotate",
                ),
            ]
        )
        keys = {key["kid"]: key["state"] for key in provision.issuer(code)["keys"] if key["use"] == "certificate"}

        counts = tally(answers, by_label=True)
        overall.update(counts)
        if sorted(answer.status for answer in answers) != [200, 201]:
            problems.append(f"round {round_}: {describe(counts)}")
        if keys.get(active) != "compromised" or list(keys.values()).count("active") != 1:
            problems.append(f"round {round_}: key states {keys} after compromising {active}")

    assert not problems, (
        f"compromise vs rotate, {ROUNDS} rounds on {deployment.backend} (overall {describe(overall)}):\n"
        + "\n".join(problems[:20])
    )


def test_concurrent_creation_of_one_issuer_code_has_one_winner(deployment: Deployment, provision: Provisioner) -> None:
    """Six simultaneous POST /v1/issuers with one code give one 201 and five 409 issuer_exists, every round."""
    codes = [f"IC-{uuid.uuid4().hex[:8].upper()}" for _ in range(ROUNDS)]
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_, code in enumerate(codes):
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(n)}/v1/issuers",
                    json=issuer_body(code),
                    headers=deployment.admin_headers,
                    label="create",
                )
                for n in range(ISSUER_CREATE_RACERS)
            ]
        )
        keys = provision.issuer(code)["keys"]

        counts = tally(answers)
        overall.update(counts)
        if counts["201"] != 1 or counts["409 issuer_exists"] != ISSUER_CREATE_RACERS - 1:
            problems.append(f"round {round_}: {describe(counts)}")
        if sorted((key["use"], key["state"]) for key in keys) != [("certificate", "active"), ("status_list", "active")]:
            problems.append(f"round {round_}: issuer {code} has keys {[(k['use'], k['state']) for k in keys]}")

    assert not problems, (
        f"create x{ISSUER_CREATE_RACERS} at once, {ROUNDS} rounds on {deployment.backend} "
        f"(overall {describe(overall)}):\n" + "\n".join(problems[:20])
    )


def test_burst_of_200_issuances_all_succeed(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], figure: Any
) -> None:
    """Two hundred simultaneous POST /v1/certificates all answer 201 in time, with distinct status indexes."""
    calls = [
        Call(
            "POST",
            f"{deployment.url(n)}/v1/certificates",
            json=certificate_body(id_number(), name=holder_name_for(n)),
            headers=issuer_headers,
            label="issue",
        )
        for n in range(BURST)
    ]

    started = time.perf_counter()
    answers = fire_together(calls, timeout=BURST_TIMEOUT_SECONDS)
    wall = time.perf_counter() - started

    counts = tally(answers)
    slowest = max(answer.seconds for answer in answers)
    figure("200 concurrent issuances", f"wall {wall:.2f} s, slowest answer {slowest:.2f} s; {describe(counts)}")
    indexes = [answer.body["status_index"] for answer in answers if answer.status == 201]
    assert counts["201"] == BURST, (
        f"{BURST} issuances at once on {deployment.backend} in {wall:.1f} s: {describe(counts)}\n{deployment.logs()}"
    )
    assert len(set(indexes)) == BURST, f"status indexes repeat: {sorted(Counter(indexes).items())[:10]}"
    assert len({answer.body["id"] for answer in answers}) == BURST, "certificate ids repeat"
