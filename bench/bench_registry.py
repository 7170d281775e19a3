"""Registry size: verify p50/p99 with 10,000,000 certificates in PostgreSQL against 1,000, side by side in one run.

Two PostgreSQL databases, each migrated to head with ``certseal db upgrade`` and holding the same 32
provincial issuers (each with a retired and an active ES256 key, made by the real keyring):

* small: ``--small`` (1,000) genuine certificates, issued through ``issuance.issue_certificate``;
* large: ``--rows`` (10,000,000) certificates: ``--verified`` (1,000) genuine ones issued the same way,
  and filler rows streamed in with COPY. Filler rows have the shape and size of real ones (random
  distinct 8-byte serials and 16-byte ids, a 32-byte id HMAC, envelopes of the genuine envelopes' lengths with their
  SHA-256, dates, statuses ~97/2/1 % valid/suspended/revoked, spread over the 32 issuers and their two
  keys by population). The genuine rows, read back exactly as the service wrote them, are interleaved
  into the COPY stream at random positions, so they sit anywhere in the heap and (random serials) in
  the serial index. The migration's indexes and constraints on ``certificates`` are read from the
  catalogue, dropped around the COPY and recreated from their own definitions, then VACUUM (FREEZE,
  ANALYZE), so the verify query runs against the real indexes, hint bits set, statistics fresh.

Then one ``certseal serve`` per database (real secrets, not demo mode, the verify rate limit lifted)
and wrk (1 thread, ``--connections`` 16) posting ``/v1/verify`` with every genuine QR text in turn,
alternating rounds small/large/small/large..., after a warm-up of each. It prints p50/p99 and
requests/s per round and the median over rounds per side, the ratio large/small (goal: p99 ≤ 1.2),
the verify registry query's EXPLAIN (ANALYZE, BUFFERS) on both sizes, and how much of the large
table and its serial index sits in shared_buffers (pg_buffercache) and in the OS page cache (fincore).

Run:  python3 bench/bench_registry.py [--rows 10000000] [--small 1000] [--keep] [--drop]
      --keep reuses databases already generated (checked by row count); --drop drops them at the end.
Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), wrk, and root for fincore's figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402 -- after the path setup
from benchlib import check_accepts, free_port, run_wrk, wait_until_healthy, write_verify_script  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from api.db import write_transaction  # noqa: E402
from api.models import Issuer  # noqa: E402
from api.runtime import load_settings, runtime  # noqa: E402
from api.services import issuance  # noqa: E402
from api.services.verify_store import _REGISTRY_SQL  # noqa: E402
from crypto import (  # noqa: E402
    LIST_SIZE,
    encode_qr_text,
)
from schemas.api import CertificateCreate  # noqa: E402
from schemas.dates import add_years, default_valid_until  # noqa: E402
from tests.concurrency.harness import id_number  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
PUBLIC_BASE_URL = "https://cert.bench.example"
# Bench-only secrets, fixed so a kept database's encrypted keys still open on a rerun. Never deploy them.
SECRETS = {
    "CERTSEAL_ADMIN_TOKEN": "bench-registry-admin-Qm4vT9xK2pLr7sWd",
    "CERTSEAL_KEY_PASSPHRASE": "bench-registry-keys-Zh8nB3yF6cJq1tVe",
    "CERTSEAL_ID_HMAC_KEY": "bench-registry-hmac-Wg5rD0uM7kXa4nPs",
    "CERTSEAL_URL_SIGNING_KEY": "bench-registry-urls-Ly2eH9oC5vRb8fTj",
}
GENUINE_TABLE = "bench_registry_genuine"  # serials of the genuine certificates (a bench-only side table)
OPERATIONS = ["1.1", "1.2", "2.1", "2.2", "2.3", "3.1", "4.1", "5.1", "6.1", "7.1", "9.1", "10.1"]
# 31 provinces + the Xinjiang Production and Construction Corps: 32 issuers, weighted by population (millions).
PROVINCES = [
    ("11", "北京市", 22),
    ("12", "天津市", 14),
    ("13", "河北省", 74),
    ("14", "山西省", 35),
    ("15", "内蒙古自治区", 24),
    ("21", "辽宁省", 42),
    ("22", "吉林省", 24),
    ("23", "黑龙江省", 31),
    ("31", "上海市", 25),
    ("32", "江苏省", 85),
    ("33", "浙江省", 66),
    ("34", "安徽省", 61),
    ("35", "福建省", 42),
    ("36", "江西省", 45),
    ("37", "山东省", 101),
    ("41", "河南省", 98),
    ("42", "湖北省", 58),
    ("43", "湖南省", 66),
    ("44", "广东省", 127),
    ("45", "广西壮族自治区", 50),
    ("46", "海南省", 10),
    ("50", "重庆市", 32),
    ("51", "四川省", 84),
    ("52", "贵州省", 39),
    ("53", "云南省", 47),
    ("54", "西藏自治区", 4),
    ("61", "陕西省", 40),
    ("62", "甘肃省", 25),
    ("63", "青海省", 6),
    ("64", "宁夏回族自治区", 7),
    ("65", "新疆维吾尔自治区", 26),
    ("66", "新疆生产建设兵团", 3),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华玉兰萍红建国志文斌辉鹏飞宇浩然欣怡子涵梓轩"


def database_url(name: str) -> str:
    """The SQLAlchemy URL of a bench database."""
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def connect(name: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to a bench database (or ``postgres``)."""
    return psycopg.connect(f"{SERVER}/{name}", **kwargs)


def server_environment() -> dict[str, str]:
    """This environment without inherited CERTSEAL_* variables, plus the bench secrets and settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(SECRETS)
    env["CERTSEAL_PUBLIC_BASE_URL"] = PUBLIC_BASE_URL
    env["CERTSEAL_VERIFY_RATE_PER_MINUTE"] = str(10**9)  # the per-client limiter would stop wrk's one address
    return env


# ---------------------------------------------------------------------------------------------------
# Generation.
# ---------------------------------------------------------------------------------------------------


def kept_counts(name: str) -> tuple[int, int] | None:
    """Certificates and genuine ones in a kept database, or None if it does not exist or is not one of ours."""
    with connect("postgres", autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return None
    with connect(name) as conn:
        if conn.execute("SELECT to_regclass(%s)", (GENUINE_TABLE,)).fetchone() == (None,):
            return None
        row = conn.execute(
            f"SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM {GENUINE_TABLE})"  # noqa: S608
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def create_database(name: str) -> None:
    """Drop ``name`` if it exists, create it and migrate it to head with the CLI."""
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "upgrade", "--database", database_url(name)],
        cwd=ROOT,
        env=server_environment(),
        check=True,
        capture_output=True,
    )


def provision(name: str, genuine: int) -> None:
    """Create the 32 issuers (a retired and an active key each) and issue ``genuine`` certificates for real."""
    settings = load_settings(demo=False, database_url=database_url(name), **_settings_overrides())
    rng = random.Random(7)
    with runtime(settings) as rt, Session(rt.engine, expire_on_commit=False) as session:
        now = datetime.now(UTC)
        with write_transaction(session):
            for code, region, _ in PROVINCES:
                issuer, _key = issuance.create_issuer(
                    session,
                    rt.keyring,
                    code=f"CN-{code}",
                    name=f"{region}应急管理厅",
                    region=region,
                    operations=OPERATIONS,
                    alg="ES256",
                    catalogue=rt.catalogue,
                    now=now - timedelta(days=3 * 365),
                )
                session.flush()
                issuance.rotate_key(session, rt.keyring, issuer=issuer, now=now - timedelta(days=365))
        issuers = session.exec(select(Issuer).order_by(Issuer.code)).all()
        session.commit()  # end the read's transaction: each batch below is one write transaction
        serials: list[str] = []
        today = now.date()
        for start in range(0, genuine, 200):
            with write_transaction(session):
                for i in range(start, min(start + 200, genuine)):
                    birth = date(1968 + rng.randrange(32), 1 + rng.randrange(12), 1 + rng.randrange(28))
                    request = CertificateCreate(
                        holder_name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                        holder_id_number=id_number(birth, rng.randrange(1000)),
                        operation=rng.choice(OPERATIONS),
                        issue_date=today - timedelta(days=rng.randrange(900)),  # all still valid and reviewed
                    )
                    certificate = issuance.issue_certificate(
                        session,
                        rt.keyring,
                        issuer=issuers[i % len(issuers)],
                        request=request,
                        settings=settings,
                        catalogue=rt.catalogue,
                        now=datetime.now(UTC),
                    )
                    serials.append(certificate.serial)
        with write_transaction(session):
            session.connection().exec_driver_sql(f"CREATE TABLE {GENUINE_TABLE} (serial varchar(32) PRIMARY KEY)")
            session.connection().exec_driver_sql(
                f"INSERT INTO {GENUINE_TABLE} (serial) VALUES (%(s)s)",  # noqa: S608 -- a constant name
                [{"s": s} for s in serials],
            )


def _settings_overrides() -> dict[str, Any]:
    return {
        key.removeprefix("CERTSEAL_").lower(): value
        for key, value in server_environment().items()
        if key.startswith("CERTSEAL_")
    }


def _filler_shape(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What the filler rows copy from the provisioned database: keys by issuer, genuine envelope lengths."""
    keys = conn.execute(
        "SELECT i.id, k.kid, k.state, i.code FROM signing_keys k JOIN issuers i ON i.id = k.issuer_id ORDER BY i.code"
    ).fetchall()
    weight = {f"CN-{code}": people for code, _, people in PROVINCES}
    # 70 % of a province's certificates under its active key, 30 % under the key it retired a year ago.
    return {
        "keys": [(issuer_id, kid, code.removeprefix("CN-")) for issuer_id, kid, _, code in keys],
        "weights": [weight[code] * (0.7 if state == "active" else 0.3) for _, _, state, code in keys],
        "lengths": [int(n) for (n,) in conn.execute("SELECT octet_length(envelope) FROM certificates").fetchall()],
    }


def _filler_lines(
    shape: dict[str, Any], columns: list[str], count: int, first_status_index: int
) -> Iterator[list[str]]:
    """Batches of COPY text lines of ``count`` filler certificates shaped like the genuine ones."""
    pairs, weights, lengths = shape["keys"], shape["weights"], shape["lengths"]
    rng = random.Random(20261201)
    names = [rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))) for _ in range(5000)]
    today = date.today()
    day_rows = []  # (issue_date, valid_until, review_due, created_at)
    for back in range(6 * 365):
        issued = today - timedelta(days=back)
        day_rows.append(
            (
                issued.isoformat(),
                default_valid_until(issued, 6).isoformat(),
                add_years(issued, 3).isoformat(),
                f"{issued} 02:00:00+00",
            )
        )
    statuses = ["valid"] * 97 + ["suspended"] * 2 + ["revoked"]
    changed = {
        "valid": "\\N\t\\N",
        "suspended": "核查中\t2026-06-01 02:00:00+00",
        "revoked": "证书作废\t2026-03-01 02:00:00+00",
    }
    known = {
        "id", "serial", "issuer_id", "kid", "holder_name", "masked_id", "id_hmac", "id_hmac_version", "operation",
        "issue_date", "valid_until", "review_due", "photo", "photo_type", "photo_digest", "status_index", "status",
        "status_reason", "status_changed_at", "envelope", "envelope_sha256", "created_at",
    }  # fmt: skip
    missing = set(columns) - known
    if missing:
        raise RuntimeError(f"the filler knows no value for certificates.{', '.join(sorted(missing))}")
    # One format string in the table's column order; the per-row work is random slicing and this format.
    template = "\t".join("{" + column + "}" for column in columns)
    template = template.replace("{status_reason}\t{status_changed_at}", "{changed}")
    if "{changed}" not in template:
        raise RuntimeError("status_reason and status_changed_at are expected next to each other")
    sha256 = hashlib.sha256
    batch = 20_000
    done = 0
    while done < count:
        n = min(batch, count - done)
        ids = os.urandom(24 * n).hex()  # per row: a 16-byte id (uuid4 hex) and an 8-byte serial (cti hex)
        hmacs = os.urandom(32 * n).hex()
        chosen = rng.choices(pairs, weights, k=n)
        sizes = rng.choices(lengths, k=n)
        blob = os.urandom(sum(sizes))
        days = rng.choices(day_rows, k=n)
        stat = rng.choices(statuses, k=n)
        ops = rng.choices(OPERATIONS, k=n)
        who = rng.choices(names, k=n)
        masks = rng.choices(range(10000), k=n)
        lines = []
        offset = 0
        for j in range(n):
            size = sizes[j]
            envelope = blob[offset : offset + size]
            offset += size
            issuer_id, kid, province = chosen[j]
            day = days[j]
            status = stat[j]
            lines.append(
                template.format(
                    id=ids[48 * j : 48 * j + 32],
                    serial=ids[48 * j + 32 : 48 * j + 48],
                    issuer_id=issuer_id,
                    kid=kid,
                    holder_name=who[j],
                    masked_id=f"{province}{masks[j] % 100:02d}{masks[j]:04d}",
                    id_hmac="\\\\x" + hmacs[64 * j : 64 * j + 64],
                    id_hmac_version="1",
                    operation=ops[j],
                    issue_date=day[0],
                    valid_until=day[1],
                    review_due=day[2],
                    photo="\\N",
                    photo_type="\\N",
                    photo_digest="\\N",
                    status_index=first_status_index + done + j,
                    status=status,
                    changed=changed[status],
                    envelope="\\\\x" + envelope.hex(),
                    envelope_sha256=sha256(envelope).hexdigest(),
                    created_at=day[3],
                )
            )
        done += n
        yield lines


def fill(name: str, rows: int) -> None:
    """Bring ``certificates`` up to ``rows`` with COPY, genuine rows interleaved; indexes rebuilt around it."""
    with connect(name) as conn:
        columns = [
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'certificates' "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
        with conn.cursor().copy(f"COPY certificates ({', '.join(columns)}) TO STDOUT") as copy:
            buffer = b"".join(bytes(chunk) for chunk in copy)
        genuine_lines = buffer.decode().removesuffix("\n").split("\n")  # exactly as the service wrote them
        shape = _filler_shape(conn)
        filler = rows - len(genuine_lines)
        if filler <= 0:
            return
        next_index = int(conn.execute("SELECT coalesce(max(status_index), 0) + 1 FROM certificates").fetchone()[0])  # type: ignore[index]
        # The migration's own definitions: constraints on certificates, foreign keys pointing at it, other indexes.
        own = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'certificates'::regclass "
            "ORDER BY contype = 'f', conname"  # the primary key before the foreign keys out of certificates
        ).fetchall()
        incoming = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE confrelid = 'certificates'::regclass AND contype = 'f'"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'certificates'::regclass AND indexrelid NOT IN "
            "(SELECT conindid FROM pg_constraint WHERE conrelid = 'certificates'::regclass)"
        ).fetchall()
        for table, constraint, _ in incoming:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
        for constraint, _ in reversed(own):
            conn.execute(f"ALTER TABLE certificates DROP CONSTRAINT {constraint}")
        for index, _ in indexes:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("TRUNCATE certificates")
        conn.commit()

        rng = random.Random(1)
        positions = sorted(rng.sample(range(rows), len(genuine_lines)))
        rng.shuffle(genuine_lines)
        started = time.perf_counter()
        written = 0
        with conn.cursor().copy(f"COPY certificates ({', '.join(columns)}) FROM STDIN") as copy:
            pending = iter(zip(positions, genuine_lines, strict=True))
            upcoming = next(pending, None)
            for lines in _filler_lines(shape, columns, filler, next_index):
                before = written
                # Genuine rows go in at their random positions among the filler rows.
                while upcoming is not None and upcoming[0] <= written + len(lines):
                    cut = upcoming[0] - written
                    copy.write("\n".join(lines[:cut]) + "\n" if cut else "")
                    copy.write(upcoming[1] + "\n")
                    written += cut + 1
                    lines = lines[cut:]
                    upcoming = next(pending, None)
                copy.write("\n".join(lines) + "\n" if lines else "")
                written += len(lines)
                if written // 1_000_000 != before // 1_000_000:
                    elapsed = time.perf_counter() - started
                    print(f"  {written:>11,} rows copied, {elapsed:6.0f} s", flush=True)
            for _, line in [upcoming, *pending] if upcoming is not None else []:
                copy.write(line + "\n")
                written += 1
        conn.commit()
        print(f"  COPY of {written:,} rows: {time.perf_counter() - started:.0f} s", flush=True)

        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        for constraint, definition in own:
            conn.execute(f"ALTER TABLE certificates ADD CONSTRAINT {constraint} {definition}")
        for _, definition in indexes:
            conn.execute(definition)
        for table, constraint, definition in incoming:
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {definition}")
        # Random draws start after the sequential filler's lists, as migration 0006 arranges for old data.
        conn.execute("UPDATE issuers SET first_random_list = %s", (1 + (next_index + filler) // LIST_SIZE,))
        conn.commit()
        print(f"  constraints and {len(indexes)} indexes rebuilt: {time.perf_counter() - started:.0f} s", flush=True)


def generate(name: str, rows: int, genuine: int) -> float:
    """Make database ``name`` with ``rows`` certificates, ``genuine`` of them real; return the seconds taken."""
    started = time.perf_counter()
    create_database(name)
    provision(name, genuine)
    print(f"  migrated, 32 issuers x 2 keys, {genuine:,} genuine certificates: {time.perf_counter() - started:.0f} s")
    fill(name, rows)
    vacuum_started = time.perf_counter()
    with connect(name, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
    print(f"  VACUUM (FREEZE, ANALYZE): {time.perf_counter() - vacuum_started:.0f} s")
    return time.perf_counter() - started


def sizes(name: str) -> dict[str, int]:
    """Bytes of the database, the certificates heap and its serial index and primary key."""
    with connect(name) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), pg_table_size('certificates'), "
            "pg_relation_size('ix_certificates_serial'), pg_indexes_size('certificates')"
        ).fetchone()
    assert row is not None
    return dict(zip(("database", "heap", "serial_index", "all_indexes"), map(int, row), strict=True))


def genuine_qr_texts(name: str) -> list[str]:
    """The QR texts of the genuine certificates, from their stored envelopes."""
    with connect(name) as conn:
        envelopes = conn.execute(
            f"SELECT c.envelope FROM {GENUINE_TABLE} g JOIN certificates c ON c.serial = g.serial "  # noqa: S608
            "ORDER BY g.serial"
        ).fetchall()
    return [encode_qr_text(bytes(envelope), PUBLIC_BASE_URL) for (envelope,) in envelopes]


# ---------------------------------------------------------------------------------------------------
# Measurement.
# ---------------------------------------------------------------------------------------------------


def genuine_keys(name: str) -> list[tuple[str, str]]:
    """(serial, kid) of the genuine certificates."""
    with connect(name) as conn:
        rows = conn.execute(
            f"SELECT c.serial, c.kid FROM {GENUINE_TABLE} g JOIN certificates c ON c.serial = g.serial"  # noqa: S608
        ).fetchall()
    return [(str(serial), str(kid)) for serial, kid in rows]


def untouched_keys(name: str, count: int) -> list[tuple[str, str]]:
    """(serial, kid) of about ``count`` filler certificates from a block sample (their index pages stay untouched)."""
    with connect(name) as conn:
        (rows,) = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'certificates'").fetchone()  # type: ignore[misc]
        percent = min(100.0, 100.0 * count / max(float(rows), 1.0))
        found = conn.execute(
            "SELECT serial, kid FROM certificates TABLESAMPLE SYSTEM (%s) LIMIT %s", (percent, count)
        ).fetchall()
    return [(str(serial), str(kid)) for serial, kid in found]


def explain(name: str, serial: str, kid: str, *, repeat: bool) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the verify registry query (``repeat``: the second execution, caches warm)."""
    with connect(name) as conn:
        sql = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + _REGISTRY_SQL.format(p="%s")
        if repeat:
            conn.execute(sql, (serial, kid))
        return "\n".join(line for (line,) in conn.execute(sql, (serial, kid)).fetchall())


def query_micros(name: str, keys: list[tuple[str, str]]) -> tuple[float, float]:
    """p50 and p99 µs of the registry query's execution inside PostgreSQL (EXPLAIN ANALYZE), each key once.

    Server-side times leave out the client, the network and the scheduling noise of a busy machine, so
    what differs between the sides is the index descent and the heap fetch.
    """
    times = []
    with connect(name, autocommit=True) as conn:
        sql = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + _REGISTRY_SQL.format(p="%s")
        for serial, kid in keys:
            ((plan,),) = conn.execute(sql, (serial, kid)).fetchall()
            document = plan if isinstance(plan, list) else json.loads(plan)
            times.append(float(document[0]["Execution Time"]) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def cache_residency(name: str) -> str:
    """How much of the certificates heap and serial index is in shared_buffers and in the OS page cache."""
    with connect(name, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
        lines = []
        for relation in ("certificates", "ix_certificates_serial"):
            size, path, buffers = conn.execute(  # type: ignore[misc]
                "SELECT pg_relation_size(%s), pg_relation_filepath(%s), "
                "(SELECT count(*) FROM pg_buffercache b WHERE b.relfilenode = pg_relation_filenode(%s) "
                " AND b.reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))",
                (relation, relation, relation),
            ).fetchone()
            cached = _os_cached(data / path)
            os_part = f"{cached / 2**20:,.0f} MiB in the OS page cache" if cached is not None else "OS cache: n/a"
            lines.append(
                f"{relation}: {size / 2**20:,.0f} MiB; {buffers * 8192 / 2**20:,.0f} MiB in shared_buffers; {os_part}"
            )
        return "; ".join(lines)


def _os_cached(first_segment: Path) -> int | None:
    """Bytes of a relation's segment files resident in the page cache (fincore; needs read access to them)."""
    if shutil.which("fincore") is None:
        return None
    segments = [first_segment, *sorted(first_segment.parent.glob(first_segment.name + ".*"), key=str)]
    segments = [s for s in segments if s.suffix.lstrip(".").isdigit() or s == first_segment]
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, segments)],  # noqa: S607 -- util-linux
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    return sum(int(value) for value in out.split())


def start_server(name: str) -> tuple[subprocess.Popen[bytes], str]:
    """``certseal serve`` on database ``name`` on a free port; return it and its base URL once healthy."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--database", database_url(name), "--port", str(port)],
        cwd=ROOT,
        env=server_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(server, base)
    return server, base


def statio(name: str) -> tuple[int, int, int, int]:
    """certificates heap and index blocks hit / read (read: not in shared_buffers) so far."""
    with connect(name) as conn:
        row = conn.execute(
            "SELECT heap_blks_hit, heap_blks_read, idx_blks_hit, idx_blks_read FROM pg_statio_user_tables "
            "WHERE relname = 'certificates'"
        ).fetchone()
    assert row is not None
    return tuple(int(v or 0) for v in row)  # type: ignore[return-value]


def main() -> int:
    """Generate (or keep) both databases, serve both, measure interleaved, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="certificates in the large database")
    parser.add_argument("--small", type=int, default=1_000, help="certificates in the small database")
    parser.add_argument("--verified", type=int, default=1_000, help="genuine (verified) certificates per database")
    parser.add_argument("--keep", action="store_true", help="reuse databases already generated (same counts)")
    parser.add_argument("--drop", action="store_true", help="drop both databases at the end")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per side, alternating")
    parser.add_argument("--seconds", type=int, default=20, help="seconds per round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    sides = {  # name, certificates, genuine ones among them
        "small": (f"certseal_bench_registry_{args.small}", args.small, min(args.small, args.verified)),
        "large": (f"certseal_bench_registry_{args.rows}", args.rows, min(args.rows, args.verified)),
    }
    generation: dict[str, float | None] = {}
    for side, (name, rows, genuine) in sides.items():
        if args.keep and kept_counts(name) == (rows, genuine):
            print(f"{side}: keeping {name} ({rows:,} certificates, {genuine:,} genuine)")
            generation[side] = None
            continue
        print(f"{side}: generating {name} with {rows:,} certificates ({genuine:,} genuine) ...", flush=True)
        generation[side] = generate(name, rows, genuine)
        print(f"{side}: generated in {generation[side]:.0f} s", flush=True)
    size = {side: sizes(name) for side, (name, _, _) in sides.items()}
    texts = {side: genuine_qr_texts(name) for side, (name, _, _) in sides.items()}

    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    results: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
    io: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {
            side: write_verify_script(Path(tmp) / f"{side}.lua", [{"qr": t} for t in texts[side]]) for side in sides
        }
        try:
            for side, (name, _, _) in sides.items():
                servers[side] = start_server(name)
                check_accepts(servers[side][1], {"qr": texts[side][0]})
            for side in sides:  # warm-up: every genuine certificate verified a few times on both sides
                run_wrk(servers[side][1], seconds=5, script=scripts[side], connections=args.connections)
            before = {side: statio(name) for side, (name, _, _) in sides.items()}
            for round_ in range(args.rounds):
                order = ("small", "large") if round_ % 2 == 0 else ("large", "small")
                for side in order:
                    figures = run_wrk(
                        servers[side][1], seconds=args.seconds, script=scripts[side], connections=args.connections
                    )
                    results[side].append(figures)
                    print(
                        f"round {round_ + 1} {side:>5}: {figures['rate']:7.0f} req/s  p50 {figures['p50']:6.2f} ms  "
                        f"p99 {figures['p99']:6.2f} ms  non-2xx {figures['non2xx']:.0f}",
                        flush=True,
                    )
            after = {side: statio(name) for side, (name, _, _) in sides.items()}
            io = {side: [a - b for a, b in zip(after[side], before[side], strict=True)] for side in sides}
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=15)

    # The registry query alone: genuine certificates (the HTTP rounds' working set, hot) on both sides, then on
    # the large side filler certificates no verify touched, whose serial-index pages come from the OS page
    # cache or disk: what a national working set far larger than shared_buffers would pay per lookup.
    keys = {side: genuine_keys(name) for side, (name, _, _) in sides.items()}
    cold = untouched_keys(sides["large"][0], 3000)
    plans = {side: explain(name, *keys[side][0], repeat=True) for side, (name, _, _) in sides.items()}
    plans["large, an untouched filler certificate (first execution)"] = explain(
        sides["large"][0], *cold[-1], repeat=False
    )
    micros = {side: query_micros(name, keys[side]) for side, (name, _, _) in sides.items()}
    micros["large, untouched"] = query_micros(sides["large"][0], cold[:-1])
    residency = {side: cache_residency(name) for side, (name, _, _) in sides.items()}

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    small_rows, large_rows = sides["small"][1], sides["large"][1]
    print(
        f"\nverify over HTTP: wrk 1 thread, {args.connections} connections, {args.rounds} alternating rounds of "
        f"{args.seconds} s per side (medians over rounds), {len(texts['small'])} / {len(texts['large'])} "
        "genuine certificates in turn"
    )
    head = f"{'':<22}{f'{small_rows:,} certs':>16}{f'{large_rows:,} certs':>18}{'ratio':>9}"
    print(head)
    for label, key, fmt in (("p50 ms", "p50", "{:.2f}"), ("p99 ms", "p99", "{:.2f}"), ("requests/s", "rate", "{:.0f}")):
        a, b = median("small", key), median("large", key)
        print(f"{label:<22}{fmt.format(a):>16}{fmt.format(b):>18}{b / a:>9.2f}")
    errors = {side: sum(r["non2xx"] for r in results[side]) for side in sides}
    print(f"{'non-2xx answers':<22}{errors['small']:>16.0f}{errors['large']:>18.0f}")
    for side in sides:
        gen = generation[side]
        print(
            f"{'generation ' + side:<22}{'kept' if gen is None else f'{gen:.0f} s':>16}   "
            f"database {size[side]['database'] / 2**30:.2f} GiB, heap {size[side]['heap'] / 2**20:,.0f} MiB, "
            f"indexes {size[side]['all_indexes'] / 2**20:,.0f} MiB "
            f"(serial {size[side]['serial_index'] / 2**20:,.0f} MiB)"
        )
    # Each round's large/small ratio pairs two adjacent runs, so slow drifts of the shared machine cancel.
    paired = {
        key: statistics.median(b[key] / a[key] for a, b in zip(results["small"], results["large"], strict=True))
        for key in ("p50", "p99", "rate")
    }
    print(
        f"{'paired ratio':<22}{'':>34}   median of each round's large/small: p50 {paired['p50']:.2f}, "
        f"p99 {paired['p99']:.2f}, requests/s {paired['rate']:.2f}"
    )
    ratio = median("large", "p99") / median("small", "p99")
    print(
        f"\np99 ratio {large_rows:,} / {small_rows:,}: {ratio:.2f} "
        f"(goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
    )
    for side in sides:
        hit_h, read_h, hit_i, read_i = io[side]
        print(
            f"{side}: certificates blocks during the measured rounds: heap {hit_h:,} hit / {read_h:,} read, "
            f"indexes {hit_i:,} hit / {read_i:,} read (read = not in shared_buffers)"
        )
        print(f"{side}: after the run: {residency[side]}")
    print("\nthe verify registry query alone, execution time inside PostgreSQL (EXPLAIN ANALYZE), each key once:")
    for label, (p50, p99) in micros.items():
        count = len(cold) - 1 if label.endswith("untouched") else len(keys[label])
        print(f"  {label:<18} {count:>5} keys: p50 {p50:7.1f} µs  p99 {p99:7.1f} µs")
    for label, plan in plans.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the verify registry query, {label}:")
        print(plan)
    if args.drop:
        with connect("postgres", autocommit=True) as admin:
            for name, _, _ in sides.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print("\nboth databases dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
