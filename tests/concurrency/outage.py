"""What the outage tests share: the bounds, the verify mix fired during an outage, and how answers are judged."""

from __future__ import annotations

from .harness import Answer, Call, Deployment, IssuedCertificate, wrong_id_numbers

VERIFY_DEADLINE_MS = 1000
VERIFY_BOUND_SECONDS = VERIFY_DEADLINE_MS / 1000 + 2.0  # the deadline plus slack for a busy 2-core machine
HEALTHZ_BOUND_SECONDS = 0.5
RECOVERY_WITHIN_SECONDS = 15.0
CLIENT_TIMEOUT_SECONDS = 10.0  # far past every bound: a hang shows as a ReadTimeout, not a stuck test


def outage_calls(deployment: Deployment, certificate: IssuedCertificate, per_server: int = 2) -> list[Call]:
    """Per server: plain verifies, verifies with the right ID number and with wrong ones (a counter write)."""
    wrong = iter(wrong_id_numbers(certificate.holder_id_number, per_server * len(deployment.servers)))
    calls = []
    for server in range(len(deployment.servers)):
        url = f"{deployment.url(server)}/v1/verify"
        for _ in range(per_server):
            calls += [
                Call("POST", url, json={"qr": certificate.qr_text}, label="plain"),
                Call(
                    "POST",
                    url,
                    json={"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number},
                    label="right holder",
                ),
                Call(
                    "POST", url, json={"qr": certificate.qr_text, "holder_id_number": next(wrong)}, label="wrong holder"
                ),
            ]
    return calls


def bounded_verify_problems(answers: list[Answer], *, allow_200: bool) -> list[str]:
    """Verify answers that are neither (200 or) 503 registry_unavailable, or came later than the bound."""
    problems = []
    for answer in answers:
        allowed = answer.code == "registry_unavailable" and answer.status == 503
        if allow_200 and answer.status == 200:
            allowed = True
        if not allowed or answer.seconds >= VERIFY_BOUND_SECONDS:
            problems.append(f"{answer.label}: {answer.outcome} after {answer.seconds:.2f} s")
    return problems


def slow_healthz(samples: list[Answer]) -> list[str]:
    """/healthz samples that failed or took HEALTHZ_BOUND_SECONDS or more."""
    return [
        f"{sample.outcome} after {sample.seconds:.2f} s"
        for sample in samples
        if sample.status != 200 or sample.seconds >= HEALTHZ_BOUND_SECONDS
    ]


def accepted(answer: Answer) -> bool:
    """A 200 accept."""
    return answer.outcome == "200 accept"
