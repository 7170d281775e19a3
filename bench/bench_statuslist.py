#!/usr/bin/env python3
"""Benchmark certseal's status lists: compressed sizes and the cost of building, signing and reading one.

Run from the project root: ``python3 bench/bench_statuslist.py`` (options: ``--help``). Not part of
the test run. A list is certseal's: 131,072 entries of 2 bits (32,768 bytes before compression).

1. Sizes of one list at 0 %, and at 1 % revoked + 0.5 % suspended (random positions, fixed seed):
   the ZLIB ``lst`` and the whole signed Status List Token.
2. Timings on that list (median of ``--repeat`` runs): build it entry by entry, compress, sign a
   token (compress + CBOR + ES256), verify a token (signature + claims + bounded decompress), change
   one entry and re-sign, and one status lookup on a list already decoded (the cached case); and
   the ``lst`` size and compression time at zlib levels 1, 6 and 9 (the draft recommends the highest).
3. The total of all lists for 10^6 and 10^7 certificates (8 and 77 lists), each certificate's entry
   revoked with 1 % and suspended with 0.5 % probability; unused entries of the last list are 0.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crypto import (  # after the path set-up
    LIST_SIZE,
    SigningKey,
    Status,
    StatusList,
    TrustStore,
    sign_status_list,
    verify_status_list_token,
)

URI = "https://cert.example.gov.cn/v1/status-lists/1"
IAT = datetime(2026, 3, 1, tzinfo=UTC)
NOW = IAT + timedelta(hours=1)


def random_list(rng: random.Random, occupied: int, revoked: float, suspended: float) -> StatusList:
    """A list whose first ``occupied`` entries are certificates, each revoked or suspended at random."""
    status_list = StatusList.new()
    for index in range(occupied):
        draw = rng.random()
        if draw < revoked:
            status_list.set(index, Status.REVOKED)
        elif draw < revoked + suspended:
            status_list.set(index, Status.SUSPENDED)
    return status_list


def spread_list(rng: random.Random, revoked: float, suspended: float) -> StatusList:
    """A full list with exactly the given shares revoked and suspended, at random positions."""
    status_list = StatusList.new()
    positions = rng.sample(range(LIST_SIZE), round(LIST_SIZE * (revoked + suspended)))
    cut = round(LIST_SIZE * revoked)
    for index in positions[:cut]:
        status_list.set(index, Status.REVOKED)
    for index in positions[cut:]:
        status_list.set(index, Status.SUSPENDED)
    return status_list


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``run`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call(run: Callable[[], object], calls: int) -> float:
    """Seconds per call of a fast ``run``, over ``calls`` calls (best of 5)."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def human(size: int) -> str:
    return f"{size:,} B" if size < 10_000 else f"{size / 1000:,.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs per timing (median)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    key = SigningKey.generate("ES256")
    trusted = TrustStore().add(key.public_key)

    print(
        f"certseal status lists: {LIST_SIZE:,} entries x 2 bits; Python {platform.python_version()}, "
        f"zlib {zlib.ZLIB_RUNTIME_VERSION}, level 9"
    )
    print()
    print("| list | lst (ZLIB) | signed token |")
    print("|---|---:|---:|")
    empty = StatusList.new()
    typical = spread_list(rng, 0.01, 0.005)
    for name, status_list in (("0 %", empty), ("1 % revoked + 0.5 % suspended", typical)):
        token = sign_status_list(status_list, key, uri=URI, iat=IAT)
        print(f"| {name} | {human(len(status_list.compressed()))} | {human(len(token))} |")

    token = sign_status_list(typical, key, uri=URI, iat=IAT)
    parsed = verify_status_list_token(token, trusted, expected_uri=URI, now=NOW)
    revoked_at = next(i for i in range(LIST_SIZE) if typical.get(i) == Status.REVOKED)
    assert parsed.status(revoked_at) is Status.REVOKED
    positions = [i for i in range(LIST_SIZE) if typical.get(i)]

    def build() -> StatusList:
        fresh = StatusList.new()
        for index in positions:
            fresh.set(index, Status.REVOKED)
        return fresh

    def change_and_resign() -> bytes:
        typical.set(12_345, Status.SUSPENDED)
        return sign_status_list(typical, key, uri=URI, iat=IAT)

    lst = typical.compressed()
    lookups = [rng.randrange(LIST_SIZE) for _ in range(1000)]
    lookup_index = iter(lookups * 10_000)
    rows = [
        (f"build: {len(positions):,} entries set in a new list", median_seconds(build, args.repeat)),
        ("compress (zlib level 9)", median_seconds(typical.compressed, args.repeat)),
        (
            "decompress (bounded, StatusList.from_compressed)",
            median_seconds(lambda: StatusList.from_compressed(2, lst, max_entries=LIST_SIZE), args.repeat),
        ),
        (
            "sign a token (compress + CBOR + ES256)",
            median_seconds(lambda: sign_status_list(typical, key, uri=URI, iat=IAT), args.repeat),
        ),
        (
            "verify a token (ES256 + claims + decompress)",
            median_seconds(lambda: verify_status_list_token(token, trusted, expected_uri=URI, now=NOW), args.repeat),
        ),
        ("one change, then re-sign the list", median_seconds(change_and_resign, args.repeat)),
        (
            "one lookup on a decoded list (token.status(idx))",
            per_call(lambda: parsed.status(next(lookup_index)), 20_000),
        ),
    ]
    print()
    print("| operation (1 % + 0.5 % list) | time |")
    print("|---|---:|")
    for name, seconds in rows:
        shown = f"{seconds * 1e6:,.2f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"
        print(f"| {name} | {shown} |")

    print()
    print("| zlib level (the 1 % + 0.5 % list) | lst | compress time |")
    print("|---:|---:|---:|")
    data = typical.to_bytes()
    for level in (1, 6, 9):
        size = len(zlib.compress(data, level))
        seconds = median_seconds(lambda level=level: zlib.compress(data, level), args.repeat)
        print(f"| {level} | {human(size)} | {seconds * 1e3:,.2f} ms |")

    print()
    print("| certificates | lists | all lst | all tokens | largest token |")
    print("|---:|---:|---:|---:|---:|")
    for certificates in (10**6, 10**7):
        lists = math.ceil(certificates / LIST_SIZE)
        total_lst = total_token = largest = 0
        for number in range(lists):
            occupied = min(LIST_SIZE, certificates - number * LIST_SIZE)
            status_list = random_list(rng, occupied, 0.01, 0.005)
            signed = sign_status_list(status_list, key, uri=f"{URI[:-2]}/{number}", iat=IAT)
            total_lst += len(status_list.compressed())
            total_token += len(signed)
            largest = max(largest, len(signed))
        print(f"| {certificates:,} | {lists} | {human(total_lst)} | {human(total_token)} | {human(largest)} |")


if __name__ == "__main__":
    main()
