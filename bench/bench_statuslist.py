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
   revoked with 1 % and suspended with 0.5 % probability; unused entries of the last list are 0:
   sizes, and the time to build, compress and sign them all.
4. The registry rebuild, as the service does it on every status change (``build_status_list``: read
   the certificates of one list that are not valid, set their entries) from a SQLite database holding
   ``--registry-certificates`` certificates of one issuer (default 10^6; fewer if inserting them takes
   longer than ``--setup-budget`` seconds), spread at random over lists 1 and up as the service draws
   them: per list, the rebuild alone and rebuild + compress + sign.
5. From a revoke to a new list served, on a real ``certseal serve --demo`` (SQLite): how long the
   revoke call takes (it rebuilds and re-signs the list in its transaction), and the time from the
   revoke returning until a GET of the list returns a token whose entry reads 1 (revoked).
Sections 4 and 5 are skipped with ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cbor2
import httpx

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
    parser.add_argument("--registry-certificates", type=int, default=10**6, help="certificates in the registry (4.)")
    parser.add_argument("--setup-budget", type=float, default=120.0, help="seconds at most to insert them (4.)")
    parser.add_argument("--revokes", type=int, default=20, help="revocations timed on the real server (5.)")
    parser.add_argument("--quick", action="store_true", help="skip the registry and server sections (4., 5.)")
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
    print("| certificates | lists | all lst | all tokens | largest token | build + compress + sign, all lists |")
    print("|---:|---:|---:|---:|---:|---:|")
    for certificates in (10**6, 10**7):
        lists = math.ceil(certificates / LIST_SIZE)
        total_lst = total_token = largest = 0
        seconds = 0.0
        for number in range(lists):
            occupied = min(LIST_SIZE, certificates - number * LIST_SIZE)
            statuses = [rng.random() for _ in range(occupied)]  # drawn outside the timed part
            start = time.perf_counter()
            status_list = StatusList.new()
            for index, draw in enumerate(statuses):
                if draw < 0.01:
                    status_list.set(index, Status.REVOKED)
                elif draw < 0.015:
                    status_list.set(index, Status.SUSPENDED)
            signed = sign_status_list(status_list, key, uri=f"{URI[:-2]}/{number}", iat=IAT)
            seconds += time.perf_counter() - start
            total_lst += len(status_list.compressed())
            total_token += len(signed)
            largest = max(largest, len(signed))
        print(
            f"| {certificates:,} | {lists} | {human(total_lst)} | {human(total_token)} | {human(largest)} "
            f"| {seconds:,.2f} s ({seconds / lists * 1e3:,.1f} ms a list) |"
        )

    if args.quick:
        return
    print()
    registry_rebuild(args.registry_certificates, args.setup_budget, rng, key)
    print()
    revoke_to_served(args.revokes)


def registry_rebuild(wanted: int, budget: float, rng: random.Random, key: SigningKey) -> None:
    """Section 4: rebuild each list of one issuer from a SQLite registry of ``wanted`` certificates (or fewer)."""
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from api import migrate
    from api.db import make_engine
    from api.main import create_app
    from api.services.status_lists import DRAWS_PER_LIST, build_status_list
    from api.settings import DEMO_SECRETS, Settings
    from schemas.idnumber import check_character

    folder = Path(tempfile.mkdtemp(prefix="certseal-bench-registry-"))
    path = folder / "registry.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    with TestClient(create_app(Settings.for_demo(database_url=url))) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin).json()["token"]
        first17 = "44010619850312100"
        client.post(
            "/v1/certificates",
            json={
                "holder_name": "张伟",
                "holder_id_number": first17 + check_character(first17),
                "operation": "2.1",
                "issue_date": datetime.now(UTC).date().isoformat(),
            },
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    cursor = connection.execute("SELECT * FROM certificates")
    columns = [column[0] for column in cursor.description]
    template = dict(zip(columns, cursor.fetchone(), strict=True))
    issuer_id = template["issuer_id"]
    open_lists = max(1, math.ceil(wanted / DRAWS_PER_LIST))
    drawn = rng.sample(range(LIST_SIZE, LIST_SIZE * (1 + open_lists)), wanted)
    indexes = [template["status_index"], *(index for index in drawn if index != template["status_index"])][:wanted]
    insert = f"INSERT INTO certificates ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608 - the columns are the table's own
    start = time.monotonic()
    inserted, batch = 1, 20_000
    while inserted < wanted and time.monotonic() - start < budget:
        rows = []
        for index in indexes[inserted : inserted + batch]:
            draw = rng.random()
            status = "revoked" if draw < 0.01 else "suspended" if draw < 0.015 else "valid"
            row = {
                **template,
                "id": uuid.uuid4().hex,
                "serial": uuid.uuid4().hex[:16],
                "status_index": index,
                "status": status,
            }
            rows.append(tuple(row[column] for column in columns))
        connection.executemany(insert, rows)
        connection.commit()
        inserted += len(rows)
    connection.execute("UPDATE issuers SET random_indexes_drawn = ? WHERE id = ?", (inserted, issuer_id))
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    setup = time.monotonic() - start
    numbers = sorted({index >> 17 for index in indexes[:inserted]})

    engine = make_engine(url)
    build_ms, full_ms, not_valid = [], [], 0
    with Session(engine) as session:
        for number in numbers:
            start = time.perf_counter()
            status_list = build_status_list(session, issuer_id=issuer_id, number=number)
            build_ms.append((time.perf_counter() - start) * 1e3)
            sign_status_list(status_list, key, uri=f"{URI[:-2]}/{number}", iat=IAT)
            full_ms.append((time.perf_counter() - start) * 1e3)
            not_valid += sum(1 for i in range(LIST_SIZE) if status_list.get(i) != Status.VALID)
    engine.dispose()
    size = path.stat().st_size + sum(p.stat().st_size for p in folder.glob("registry.db-*"))
    print(
        f"registry: {inserted:,} certificates of one issuer in {len(numbers)} lists ({not_valid:,} not valid), "
        f"SQLite {size / 1e6:,.0f} MB, inserted in {setup:,.0f} s"
    )
    print()
    print("| per list (registry rebuild) | median | max |")
    print("|---|---:|---:|")
    print(
        f"| build_status_list (SELECT the not-valid rows, set entries) | {statistics.median(build_ms):,.1f} ms "
        f"| {max(build_ms):,.1f} ms |"
    )
    print(
        f"| build + compress + sign (what a status change adds) | {statistics.median(full_ms):,.1f} ms "
        f"| {max(full_ms):,.1f} ms |"
    )
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


SERVER_BOOT = "import sys\nfrom api.cli import main\nsys.exit(main(sys.argv[2:]))\n"


def revoke_to_served(revokes: int) -> None:
    """Section 5: on a real demo server, the revoke call and the time until the new list is served."""
    from benchlib import start_demo_server

    from api.settings import DEMO_ISSUER_API_KEY
    from schemas.idnumber import check_character

    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env |= {"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(10**9)}
    folder = Path(tempfile.mkdtemp(prefix="certseal-bench-revoke-"))
    server, base = start_demo_server(SERVER_BOOT, "revoke", folder, env)
    headers = {"Authorization": f"Bearer {DEMO_ISSUER_API_KEY}"}
    revoke_ms, served_ms, fetches, get_ms, not_modified_ms = [], [], [], [], []
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for number in range(revokes + 2):
                first17 = f"440106198503{12:02d}{200 + number:03d}"
                body = {
                    "holder_name": "张伟",
                    "holder_id_number": first17 + check_character(first17),
                    "operation": "2.1",
                    "issue_date": datetime.now(UTC).date().isoformat(),
                }
                issued = client.post("/v1/certificates", json=body, headers=headers)
                issued.raise_for_status()
                certificate = issued.json()
                index = certificate["status_index"]
                path = f"/v1/status-lists/CN-44/{index >> 17}"
                start = time.perf_counter()
                before = client.get(path)
                get_ms.append((time.perf_counter() - start) * 1e3)
                start = time.perf_counter()
                client.get(path, headers={"If-None-Match": before.headers["etag"]})
                not_modified_ms.append((time.perf_counter() - start) * 1e3)
                start = time.perf_counter()
                client.post(f"/v1/certificates/{certificate['id']}/revoke", json={"reason": "bench"}, headers=headers)
                returned = time.perf_counter()
                tries = 0
                while True:
                    tries += 1
                    token = client.get(path, headers={"If-None-Match": before.headers["etag"]})
                    if token.status_code == 200 and entry_of(token.content, index & (LIST_SIZE - 1)) == 1:
                        break
                    if time.perf_counter() - returned > 60:
                        raise RuntimeError("the revocation never reached the served list")
                if number >= 2:  # the first two warm the server up
                    revoke_ms.append((returned - start) * 1e3)
                    served_ms.append((time.perf_counter() - returned) * 1e3)
                    fetches.append(tries)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    print(f"real server (certseal serve --demo, SQLite), {revokes} revocations in one list:")
    print()
    print("| step | median | max |")
    print("|---|---:|---:|")
    print(f"| GET a list (200) | {statistics.median(get_ms):,.1f} ms | {max(get_ms):,.1f} ms |")
    print(
        f"| GET a list, If-None-Match (304) | {statistics.median(not_modified_ms):,.1f} ms "
        f"| {max(not_modified_ms):,.1f} ms |"
    )
    print(
        f"| POST revoke (rebuild + re-sign in its transaction) | {statistics.median(revoke_ms):,.1f} ms "
        f"| {max(revoke_ms):,.1f} ms |"
    )
    print(
        f"| revoke returned -> new signed list received (entry reads 1) | {statistics.median(served_ms):,.1f} ms "
        f"| {max(served_ms):,.1f} ms |"
    )
    print(f"| GETs needed until the change was served | {statistics.median(fetches):g} | {max(fetches)} |")


def entry_of(token: bytes, idx: int) -> int:
    """The entry at ``idx`` of a token, read with plain cbor2 + zlib (no signature check: timing only)."""
    claims = cbor2.loads(cbor2.loads(token).value[2])
    array = zlib.decompressobj().decompress(claims[65533]["lst"], LIST_SIZE // 4)
    return (array[idx >> 2] >> (2 * (idx & 3))) & 3


if __name__ == "__main__":
    main()
