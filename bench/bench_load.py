"""Load bench: an issuance burst, latency during it, status races and a frozen database link, SQLite and PostgreSQL.

One run, figures side by side (not a test). For each backend it starts real `certseal serve` processes
on a database migrated with `certseal db upgrade` (SQLite: one server on a temporary file; PostgreSQL:
two servers on one fresh database at 127.0.0.1:5432, dropped afterwards) and measures:

* 200 simultaneous POST /v1/certificates: how many answered 201, how many 5xx, the wall time;
* GET /healthz and POST /v1/verify (with the holder's right ID number) p50/p99, sampled by a separate
  process, one request at a time per endpoint, during that burst;
* rounds (default 100) of revoke racing reinstate on a suspended certificate: how many certificates had
  a revoke answered 200 yet ended valid (must be 0);
* PostgreSQL only: with the server's link to the database frozen by a TCP proxy (no byte either way,
  no socket closed), the answer and time of verify and the slowest /healthz; after thaw, the time until
  verify accepts again.

The proxy and server-starting code is the concurrency tests' (tests/concurrency/harness.py).

Run: python3 bench/bench_load.py [--rounds 100] [--burst 200] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402 -- after the path setup

from tests.concurrency.harness import (  # noqa: E402
    Answer,
    Call,
    Deployment,
    Provisioner,
    certificate_body,
    deploy,
    describe,
    fire,
    fire_together,
    fire_while_sampling,
    holder_name_for,
    id_number,
    percentile,
    poll_until,
    tally,
)

HEALTHZ_P99_TARGET_MS = 100.0
VERIFY_P99_TARGET_MS = 250.0
VERIFY_DEADLINE_MS = 1000
FROZEN_SLACK_SECONDS = 2.0
RECOVERY_WITHIN_SECONDS = 15.0
SAMPLE_PAUSE_SECONDS = 0.01
BURST_TIMEOUT_SECONDS = 60.0


# ---------------------------------------------------------------------------------------------------
# The latency sampler: a separate process, so the burst's client does not delay its measurements.
# ---------------------------------------------------------------------------------------------------


async def _sample_loop(
    method: str, urls: list[str], body: dict[str, Any] | None, start: Any, stop: Any
) -> list[tuple[float, str]]:
    results: list[tuple[float, str]] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for url in urls:  # open a connection to every server before the burst
            await client.request(method, url, json=body)
        while not start.is_set():
            await asyncio.sleep(0.001)
        n = 0
        while not stop.is_set():
            url = urls[n % len(urls)]
            n += 1
            sent = time.perf_counter()
            try:
                response = await client.request(method, url, json=body)
                answer = Answer.of("sample", response, time.perf_counter() - sent)
            except httpx.HTTPError as exc:
                answer = Answer("sample", None, None, None, time.perf_counter() - sent, type(exc).__name__)
            results.append((answer.seconds, answer.outcome))
            await asyncio.sleep(SAMPLE_PAUSE_SECONDS)
    return results


def sampler_process(
    base_urls: list[str], verify_body: dict[str, Any], start: Any, stop: Any, ready: Any, out: Any
) -> None:
    """Sample /healthz and verify, one request at a time each, from ``start`` to ``stop``; results to ``out``."""

    async def run() -> dict[str, list[tuple[float, str]]]:
        healthz = asyncio.create_task(_sample_loop("GET", [f"{u}/healthz" for u in base_urls], None, start, stop))
        verify = asyncio.create_task(
            _sample_loop("POST", [f"{u}/v1/verify" for u in base_urls], verify_body, start, stop)
        )
        await asyncio.sleep(0.5)
        ready.set()
        return {"healthz": await healthz, "verify": await verify}

    out.put(asyncio.run(run()))


# ---------------------------------------------------------------------------------------------------
# Measurements.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one backend measured."""

    backend: str
    servers: int = 0
    burst: Counter[str] = field(default_factory=Counter)
    burst_wall: float = float("nan")
    burst_slowest: float = float("nan")
    healthz_ms: list[float] = field(default_factory=list)
    healthz_bad: Counter[str] = field(default_factory=Counter)
    verify_ms: list[float] = field(default_factory=list)
    verify_bad: Counter[str] = field(default_factory=Counter)
    race_rounds: int = 0
    revoked_ending_valid: int = 0
    revoked_not_final: int = 0
    race_5xx: int = 0
    race_answers: Counter[str] = field(default_factory=Counter)
    frozen: Counter[str] | None = None
    frozen_slowest: float = float("nan")
    frozen_healthz_max: float = float("nan")
    recovery: float | None = float("nan")
    failures: list[str] = field(default_factory=list)

    def phase(self, name: str, measure: Any, *args: Any) -> None:
        """Run one measurement; a failure is recorded (and its targets reported as not met), not raised."""
        try:
            measure(*args)
        except (httpx.HTTPError, AssertionError, RuntimeError, OSError, queue.Empty) as exc:
            self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")


def measure_burst(
    deployment: Deployment, provision: Provisioner, issuer: dict[str, str], burst: int, fig: Figures
) -> None:
    """Fire ``burst`` issuances at once while a separate process samples /healthz and verify."""
    certificate = provision.issue(issuer)
    verify_body = {"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number}
    context = multiprocessing.get_context("spawn")
    start, stop, ready, out = context.Event(), context.Event(), context.Event(), context.Queue()
    urls = [server.base_url for server in deployment.servers]
    sampler = context.Process(target=sampler_process, args=(urls, verify_body, start, stop, ready, out))
    sampler.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the sampler did not start")
        calls = [
            Call(
                "POST",
                f"{deployment.url(n)}/v1/certificates",
                json=certificate_body(id_number(), name=holder_name_for(n)),
                headers=issuer,
                label="issue",
            )
            for n in range(burst)
        ]
        start.set()
        began = time.perf_counter()
        answers = fire_together(calls, timeout=BURST_TIMEOUT_SECONDS)
        fig.burst_wall = time.perf_counter() - began
        fig.burst = tally(answers)
        fig.burst_slowest = max(answer.seconds for answer in answers)
        stop.set()
        samples = out.get(timeout=60)
    finally:
        stop.set()
        sampler.join(30)
        if sampler.is_alive():
            sampler.kill()
    fig.healthz_ms = [seconds * 1000 for seconds, _ in samples["healthz"]]
    fig.healthz_bad = Counter(outcome for _, outcome in samples["healthz"] if outcome != "200")
    fig.verify_ms = [seconds * 1000 for seconds, _ in samples["verify"]]
    fig.verify_bad = Counter(outcome for _, outcome in samples["verify"] if outcome != "200 accept")


def measure_races(
    deployment: Deployment, provision: Provisioner, issuer: dict[str, str], rounds: int, fig: Figures
) -> None:
    """Revoke racing reinstate on a suspended certificate, ``rounds`` times; count revokes that did not stick."""
    certificates = [provision.issue(issuer) for _ in range(rounds)]
    for certificate in certificates:
        provision.change_status(issuer, certificate.id, "suspend")
    fig.race_rounds = 0
    for n, certificate in enumerate(certificates):
        base = f"/v1/certificates/{certificate.id}"
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(n)}{base}/revoke",
                    json={"reason": "bench"},
                    headers=issuer,
                    label="revoke",
                ),
                Call(
                    "POST",
                    f"{deployment.url(n + 1)}{base}/reinstate",
                    json={"reason": "bench"},
                    headers=issuer,
                    label="reinstate",
                ),
            ]
        )
        fig.race_answers.update(tally(answers, by_label=True))
        fig.race_5xx += sum(1 for answer in answers if answer.status is None or answer.status >= 500)
        final = provision.certificate(issuer, certificate.id)["status"]
        if any(answer.label == "revoke" and answer.status == 200 for answer in answers) and final != "revoked":
            fig.revoked_not_final += 1
            fig.revoked_ending_valid += final == "valid"
        fig.race_rounds += 1


def measure_frozen_link(folder: Path, fig: Figures) -> None:
    """One server reaching PostgreSQL through the proxy: verify and /healthz while frozen, recovery after thaw."""
    settings = {"CERTSEAL_VERIFY_DB_DEADLINE_MS": str(VERIFY_DEADLINE_MS)}
    with deploy("postgresql", folder, settings=settings, server_count=1, via_proxy=True) as deployment:
        assert deployment.proxy is not None
        with Provisioner(deployment) as provision:
            provision.create_issuer("CN-44")
            issuer = provision.issuer_key("CN-44")
            certificate = provision.issue(issuer)
            warm = provision.verify({"qr": certificate.qr_text})
            if warm.outcome != "200 accept":
                raise RuntimeError(f"verify before the freeze: {warm.outcome}")
            url = f"{deployment.url()}/v1/verify"
            calls = [
                Call("POST", url, json={"qr": certificate.qr_text}, label="plain"),
                Call(
                    "POST",
                    url,
                    json={"qr": certificate.qr_text, "holder_id_number": certificate.holder_id_number},
                    label="holder",
                ),
            ] * 3
            deployment.proxy.freeze()
            try:
                answers, samples = asyncio.run(fire_while_sampling(calls, [f"{deployment.url()}/healthz"], timeout=30))
            finally:
                deployment.proxy.thaw()
            recovered, _seen = asyncio.run(
                poll_until(
                    url,
                    {"qr": certificate.qr_text},
                    ok=lambda answer: answer.outcome == "200 accept",
                    within=RECOVERY_WITHIN_SECONDS,
                )
            )
    fig.frozen = tally(answers)
    fig.frozen_slowest = max(answer.seconds for answer in answers)
    fig.frozen_healthz_max = max(sample.seconds for sample in samples)
    fig.recovery = recovered


def run_backend(backend: str, args: argparse.Namespace, folder: Path) -> Figures:
    """Every measurement on one backend."""
    fig = Figures(backend)
    with deploy(backend, folder / "load") as deployment, Provisioner(deployment) as provision:
        fig.servers = len(deployment.servers)
        provision.create_issuer("CN-44")
        issuer = provision.issuer_key("CN-44")
        asyncio.run(fire([Call("GET", f"{server.base_url}/healthz") for server in deployment.servers]))  # warm-up
        print(f"[{backend}] burst of {args.burst} issuances ...", file=sys.stderr, flush=True)
        fig.phase("burst", measure_burst, deployment, provision, issuer, args.burst, fig)
        print(f"[{backend}] {args.rounds} revoke/reinstate race rounds ...", file=sys.stderr, flush=True)
        fig.phase("races", measure_races, deployment, provision, issuer, args.rounds, fig)
    if backend == "postgresql":
        print(f"[{backend}] frozen link ...", file=sys.stderr, flush=True)
        fig.phase("frozen link", measure_frozen_link, folder / "frozen", fig)
    return fig


# ---------------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f} ms" if values else "no samples"


def _frozen_answers(counts: Counter[str] | None) -> str:
    if counts is None:
        return "n/a"
    total = sum(counts.values())
    if set(counts) == {"503 registry_unavailable"}:
        return f"{total}/{total} 503"
    return describe(counts)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(figures: list[Figures], burst: int, rounds: int) -> None:
    """Print the figures side by side with their targets and whether each is met."""
    width = 20
    print(
        f"\ncertseal load bench — {os.cpu_count()} CPUs; "
        + ", ".join(f"{f.backend}: {f.servers} server(s)" for f in figures)
    )
    print(f"{'':<44}" + "".join(f"{f.backend:>{width}}" for f in figures) + "   target")

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:<44}" + "".join(f"{value:>{width}}" for value in values) + (f"   {target}" if target else ""))

    row(f"{burst} concurrent issuances: 201", [f"{f.burst['201']}/{burst}" for f in figures], f"{burst}/{burst}")
    row(
        "  5xx / other non-201",
        [
            f"{sum(n for o, n in f.burst.items() if o[:1] == '5')} / "
            f"{sum(n for o, n in f.burst.items() if o != '201' and o[:1] != '5')}"
            for f in figures
        ],
        "0 / 0",
    )
    row("  wall time / slowest answer", [f"{f.burst_wall:.1f} / {f.burst_slowest:.1f} s" for f in figures])
    row(
        "/healthz during the burst p50 / p99",
        [_ms(f.healthz_ms) for f in figures],
        f"p99 < {HEALTHZ_P99_TARGET_MS:.0f} ms",
    )
    row("  samples (non-200)", [f"{len(f.healthz_ms)} ({sum(f.healthz_bad.values())})" for f in figures])
    row(
        "verify (holder ID) during the burst p50 / p99",
        [_ms(f.verify_ms) for f in figures],
        f"p99 < {VERIFY_P99_TARGET_MS:.0f} ms",
    )
    row("  samples (not 200 accept)", [f"{len(f.verify_ms)} ({sum(f.verify_bad.values())})" for f in figures])
    row(
        "revoke vs reinstate: revoked, ending valid",
        [f"{f.revoked_ending_valid} of {f.race_rounds}" for f in figures],
        "0",
    )
    row("  revoke 200 not final / 5xx", [f"{f.revoked_not_final} / {f.race_5xx}" for f in figures], "0 / 0")
    row(
        "frozen PG link: verify answers",
        [_frozen_answers(f.frozen) for f in figures],
        "503 registry_unavailable",
    )
    row(
        "  slowest verify / slowest /healthz",
        [f"{f.frozen_slowest:.2f} / {f.frozen_healthz_max:.2f} s" if f.frozen is not None else "n/a" for f in figures],
        f"< {VERIFY_DEADLINE_MS / 1000:.1f} s + {FROZEN_SLACK_SECONDS:.0f} s slack / < 0.5 s",
    )
    row(
        "  verify accepts again after thaw",
        ["n/a" if f.frozen is None else ("never" if f.recovery is None else f"{f.recovery:.2f} s") for f in figures],
        f"< {RECOVERY_WITHIN_SECONDS:.0f} s",
    )
    print()
    for f in figures:
        verdicts = {
            "issuances all 201, no 5xx": f.burst["201"] == burst,
            f"/healthz p99 < {HEALTHZ_P99_TARGET_MS:.0f} ms": bool(f.healthz_ms)
            and percentile(f.healthz_ms, 0.99) < HEALTHZ_P99_TARGET_MS
            and not f.healthz_bad,
            f"verify p99 < {VERIFY_P99_TARGET_MS:.0f} ms": bool(f.verify_ms)
            and percentile(f.verify_ms, 0.99) < VERIFY_P99_TARGET_MS
            and not f.verify_bad,
            "revoke is final": f.race_rounds == rounds and f.revoked_not_final == 0 and f.race_5xx == 0,
        }
        if f.backend == "postgresql":
            verdicts["frozen → 503 in bound"] = (
                f.frozen is not None
                and set(f.frozen) == {"503 registry_unavailable"}
                and f.frozen_slowest < VERIFY_DEADLINE_MS / 1000 + FROZEN_SLACK_SECONDS
                and f.frozen_healthz_max < 0.5
            )
            verdicts["recovers after thaw"] = f.frozen is not None and f.recovery is not None
        print(f"{f.backend}: " + "; ".join(f"{name}: {_met(ok)}" for name, ok in verdicts.items()))
        for endpoint, bad in (("/healthz", f.healthz_bad), ("verify", f.verify_bad)):
            if bad:
                print(f"  {endpoint} samples that failed during the burst: {describe(bad)}")
        if f.burst and f.burst["201"] != burst:
            print(f"  burst answers: {describe(f.burst)}")
        for failure in f.failures:
            print(f"  measurement failed — {failure}")


def main() -> int:
    """Measure every backend, print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="revoke-vs-reinstate race rounds")
    parser.add_argument("--burst", type=int, default=200, help="simultaneous issuances")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory(prefix="certseal-bench-") as tmp:
        for backend in args.backends.split(","):
            figures.append(run_backend(backend.strip(), args, Path(tmp) / backend))
    report(figures, args.burst, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
