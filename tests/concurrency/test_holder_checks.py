"""The holder-check guessing limits under simultaneous wrong guesses, split over every server of the deployment.

Per client (app API key, or the address of an anonymous client) and certificate: after
``HOLDER_CHECK_FAILURES_PER_HOUR`` wrong ID numbers every holder check of that client on that certificate
is 429 ``holder_check_limited``, right or wrong, while other clients still get verdicts. Per
certificate over all clients: at most ``HOLDER_CHECK_GLOBAL_FAILURES`` wrong numbers pass in the window.
The check and the count must be one atomic step: never more wrong guesses answered than the limit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .harness import (
    Call,
    Deployment,
    IssuedCertificate,
    Provisioner,
    describe,
    fire_together,
    race_rounds,
    tally,
    wrong_id_numbers,
)

pytestmark = pytest.mark.slow

ROUNDS = race_rounds(20)
PER_CLIENT_LIMIT = 5
GLOBAL_LIMIT = 30
GUESSES_FROM_ONE_CLIENT = 40
GUESSING_CLIENTS = 10  # x PER_CLIENT_LIMIT wrong guesses each = 50 > GLOBAL_LIMIT
MISMATCH = "200 reject holder_mismatch"
LIMITED = "429 holder_check_limited"


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """The limits under test, set explicitly (they are also the defaults)."""
    return {
        "settings": {
            "CERTSEAL_HOLDER_CHECK_FAILURES_PER_HOUR": str(PER_CLIENT_LIMIT),
            "CERTSEAL_HOLDER_CHECK_GLOBAL_FAILURES": str(GLOBAL_LIMIT),
            "CERTSEAL_HOLDER_CHECK_GLOBAL_WINDOW_SECONDS": "600",
            # Exact counting is under test, not the deadline: on a loaded 2-core machine 50 guesses
            # queued on SQLite's one writer can pass the 1 s default, and a 503 would hide the count.
            "CERTSEAL_VERIFY_DB_DEADLINE_MS": "5000",
        }
    }


@pytest.fixture(scope="module")
def app_keys(provision: Provisioner) -> list[dict[str, str]]:
    """Bearer headers of GUESSING_CLIENTS + 2 distinct third-party app keys."""
    return [provision.app_key(f"app {n}") for n in range(GUESSING_CLIENTS + 2)]


def _verify_call(
    deployment: Deployment, certificate: IssuedCertificate, number: str, n: int, headers: dict[str, str] | None
) -> Call:
    return Call(
        "POST",
        f"{deployment.url(n)}/v1/verify",
        json={"qr": certificate.qr_text, "holder_id_number": number},
        headers=headers,
        label=f"client {headers['Authorization'][-6:] if headers else 'anonymous'}",
    )


@pytest.mark.parametrize("guesser", ["app_key", "anonymous"])
def test_one_client_guessing_at_once_gets_exactly_its_limit(
    deployment: Deployment,
    provision: Provisioner,
    issuer_headers: dict[str, str],
    app_keys: list[dict[str, str]],
    guesser: str,
) -> None:
    """Forty simultaneous wrong ID numbers from one client: exactly the limit answered, the rest 429; others not."""
    certificates = [provision.issue(issuer_headers) for _ in range(ROUNDS)]
    guesser_headers = app_keys[0] if guesser == "app_key" else None
    other_headers = app_keys[1]
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_, certificate in enumerate(certificates):
        wrong = wrong_id_numbers(certificate.holder_id_number, GUESSES_FROM_ONE_CLIENT + 2)
        guesses = fire_together(
            [
                _verify_call(deployment, certificate, number, n, guesser_headers)
                for n, number in enumerate(wrong[:GUESSES_FROM_ONE_CLIENT])
            ]
        )
        after = {
            "guesser, right number": provision.verify(
                {"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number},
                server=round_,
                headers=guesser_headers,
            ),
            "guesser, wrong number": provision.verify(
                {"qr": certificate.qr_text, "holder_id_number": wrong[-1]}, server=round_ + 1, headers=guesser_headers
            ),
            "other client, right number": provision.verify(
                {"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number},
                server=round_,
                headers=other_headers,
            ),
            "other client, wrong number": provision.verify(
                {"qr": certificate.qr_text, "holder_id_number": wrong[-2]}, server=round_ + 1, headers=other_headers
            ),
        }

        counts = tally(guesses)
        overall.update(counts)
        if counts[MISMATCH] != PER_CLIENT_LIMIT or counts[LIMITED] != GUESSES_FROM_ONE_CLIENT - PER_CLIENT_LIMIT:
            problems.append(f"round {round_}: {describe(counts)}")
        expected = {
            "guesser, right number": LIMITED,
            "guesser, wrong number": LIMITED,
            "other client, right number": "200 accept",
            "other client, wrong number": MISMATCH,
        }
        for what, answer in after.items():
            if answer.outcome != expected[what]:
                problems.append(f"round {round_}: {what}: {answer.outcome}, expected {expected[what]}")

    assert not problems, (
        f"{GUESSES_FROM_ONE_CLIENT} wrong guesses at once from one {guesser} client, limit {PER_CLIENT_LIMIT}, "
        f"{ROUNDS} rounds on {deployment.backend} (overall {describe(overall)}):\n" + "\n".join(problems[:20])
    )


def test_many_clients_guessing_at_once_hit_the_global_ceiling_exactly(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], app_keys: list[dict[str, str]]
) -> None:
    """Ten clients x five simultaneous wrong ID numbers: exactly the global ceiling answered, then everyone is 429."""
    certificates = [provision.issue(issuer_headers) for _ in range(ROUNDS)]
    guessers = app_keys[:GUESSING_CLIENTS]
    latecomer = app_keys[GUESSING_CLIENTS]
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_, certificate in enumerate(certificates):
        wrong = wrong_id_numbers(certificate.holder_id_number, GUESSING_CLIENTS * PER_CLIENT_LIMIT)
        calls = [
            _verify_call(deployment, certificate, number, n, guessers[n % GUESSING_CLIENTS])
            for n, number in enumerate(wrong)
        ]
        guesses = fire_together(calls)
        late = provision.verify(
            {"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number},
            server=round_,
            headers=latecomer,
        )

        counts = tally(guesses)
        overall.update(counts)
        per_client = tally((answer for answer in guesses if answer.outcome == MISMATCH), by_label=True)
        if counts[MISMATCH] != GLOBAL_LIMIT or counts[LIMITED] != len(calls) - GLOBAL_LIMIT:
            problems.append(f"round {round_}: {describe(counts)}")
        if any(count > PER_CLIENT_LIMIT for count in per_client.values()):
            problems.append(f"round {round_}: a client got more than {PER_CLIENT_LIMIT} verdicts: {per_client}")
        if late.outcome != LIMITED:
            problems.append(f"round {round_}: a new client's right number after the ceiling: {late.outcome}")

    assert not problems, (
        f"{GUESSING_CLIENTS} clients x {PER_CLIENT_LIMIT} wrong guesses at once, ceiling {GLOBAL_LIMIT}, "
        f"{ROUNDS} rounds on {deployment.backend} (overall {describe(overall)}):\n" + "\n".join(problems[:20])
    )
