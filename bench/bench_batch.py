"""Batch issuance: certificates per second on SQLite and PostgreSQL, with the signing pool and without, and with
the batch's printable cards rendered (the PDF a batch's issuer downloads).

Not part of the test run. From the project root (PostgreSQL at 127.0.0.1:5432, as the tests use it):

    python3 bench/bench_batch.py                 # 10,000 results per run, pool of one process per CPU
    python3 bench/bench_batch.py -n 2000 --processes 2 --no-postgres

For each database (a migrated SQLite file; a fresh PostgreSQL database, dropped afterwards) it creates an
issuer and, per run, an exam session of N passed results with distinct holders (inserted directly), then
submits a session batch and times the worker issuing it to the end, exactly as the server's runner does
(chunks of CHUNK_SIZE in one transaction each: issuer lock, bulk status-index draw, signing, executemany
inserts). Runs alternate "no pool" (signed in the worker's thread) and "pool" (CERTSEAL_BATCH_SIGNING_PROCESSES
worker processes, spawned before the timing starts); the table shows the best of ``--rounds`` rounds.
After each "no pool" batch its cards PDF is rendered as ``GET /v1/certificate-batches/{id}/cards.pdf``
does (``cards.batch_cards``: read the certificates, build the faces, draw A4 sheets): "with PDF" is the
certificates per second from submission to a printable PDF, and the PDF's pages per second are printed
too (``--no-pdf`` skips it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pypdfium2
from sqlalchemy import create_engine, insert, text
from sqlmodel import Session

import crypto
from api import migrate
from api.clock import SystemClock
from api.db import make_engine
from api.keyring import Keyring
from api.models import ExamPoint, ExamResult, ExamSession, Issuer, new_id
from api.security import id_number_hmac
from api.services import batches, cards, issuance
from api.services.signing_pool import SigningPool
from api.settings import Settings
from schemas.catalogue import BUILTIN_CATALOGUE, load_catalogue
from schemas.idnumber import check_character

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CATALOGUE = load_catalogue(BUILTIN_CATALOGUE)


def id_number(n: int) -> str:
    """A distinct valid ID number for ``n``."""
    birth = date(1970, 1, 1) + timedelta(days=n // 1000)
    first17 = f"440106{birth:%Y%m%d}{n % 1000:03d}"
    return first17 + check_character(first17)


@contextmanager
def database(kind: str, folder: Path) -> Any:
    """A migrated database URL of ``kind`` (sqlite or postgresql), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    name = f"certseal_bench_batch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_session(engine: Any, settings: Settings, issuer: Issuer, point_id: str, count: int, first: int) -> str:
    """An exam session of ``count`` passed results with holders ``first`` .. ``first + count - 1``."""
    key = settings.id_hmac_keys[settings.id_hmac_key_version]
    exam = ExamSession(issuer_id=issuer.id, exam_point_id=point_id, operation="2.1", exam_date=date.today())
    with Session(engine) as session:
        session.add(exam)
        session.commit()
        exam_id = exam.id
    rows = []
    for n in range(first, first + count):
        number = id_number(n)
        rows.append(
            {
                "id": new_id(),
                "session_id": exam_id,
                "issuer_id": issuer.id,
                "holder_name": "工人" + "".join("零一二三四五六七八九"[int(d)] for d in str(n)),
                "masked_id": crypto.mask_visible(number),
                "id_hmac": id_number_hmac(number, key),
                "id_hmac_version": settings.id_hmac_key_version,
                "birth_date": date(1970, 1, 1),
                "theory_score": 92,
                "practical_score": 88,
                "passed": True,
                "attempt": 1,
                "training_institution_registered": False,
                "usable_until": date.today() + timedelta(days=300),
                "created_at": SystemClock().now(),
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(ExamResult), rows)
    return exam_id


def run_batch(worker: batches.BatchWorker, session_id: str, issuer: Issuer, engine: Any) -> tuple[float, str]:
    """Submit a session batch, run it to the end with ``worker``; the wall time from submission to done, the id."""
    with Session(engine, expire_on_commit=False, autobegin=False) as session:
        started = time.perf_counter()
        batch = batches.submit_batch(
            session,
            issuer=issuer,
            request=batches.BatchRequest(session_id=session_id),
            idempotency_key=None,
            actor="bench",
            now=worker.clock.now(),
            lease_owner=worker.owner,
        )
        progress = worker.run(batch.id)
        elapsed = time.perf_counter() - started
    if progress is None or progress.status != "done":
        raise RuntimeError(f"batch {batch.id} did not finish: {progress}")
    return elapsed, batch.id


def render_cards(engine: Any, batch_id: str, issuer: Issuer, settings: Settings) -> tuple[float, int]:
    """Render a finished batch's card sheets as the cards endpoint does; the seconds it took and the pages."""
    with Session(engine, expire_on_commit=False, autobegin=False) as session:
        started = time.perf_counter()
        batch = batches.find_batch(session, batch_id)
        assert batch is not None
        pdf = cards.batch_cards(session, batch=batch, issuer=issuer, catalogue=CATALOGUE, settings=settings)
        elapsed = time.perf_counter() - started
    return elapsed, len(pypdfium2.PdfDocument(pdf))


def bench_database(kind: str, count: int, rounds: int, processes: int, *, pdf: bool) -> dict[str, float]:
    """Best certificates per second of each mode on one database."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = stack.enter_context(database(kind, folder))
        settings = Settings.for_demo(database_url=url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        migrate.upgrade(engine)
        passphrase = settings.require("key_passphrase").encode()
        keyring = Keyring(engine, passphrase)
        clock = SystemClock()
        with Session(engine, expire_on_commit=False) as session:
            issuer, _key = issuance.create_issuer(
                session,
                keyring,
                code="CN-44",
                name="广东省应急管理厅",
                region="广东省",
                operations=["2.1"],
                alg="ES256",
                catalogue=CATALOGUE,
                now=clock.now(),
            )
            point = ExamPoint(
                code="EP-BENCH",
                issuer_id=issuer.id,
                name="考试点",
                region="广东省",
                address="广州市",
                operations=["2.1"],
                capacity_per_session=1_000_000,
                accredited_from=date(2020, 1, 1),
            )
            session.add(point)
            session.commit()
            point_id = point.id
        pools = {"no pool": SigningPool(keyring, passphrase, processes=1)}
        pools[f"pool ({processes} processes)"] = SigningPool(keyring, passphrase, processes=processes)
        for pool in pools.values():
            stack.callback(pool.close)
        best: dict[str, float] = {}
        first = 0
        for round_number in range(rounds):
            order = list(pools.items()) if round_number % 2 == 0 else list(reversed(pools.items()))
            for mode, pool in order:
                worker = batches.BatchWorker(engine, keyring, pool, settings=settings, clock=clock)
                # Warm the pool's processes (spawned, keys decrypted) outside the timing.
                with Session(engine) as session:
                    key_row = issuance.active_key(session, issuer)
                    pool.sign(key_row, [_warm_claims(n) for n in range(4 * processes)])
                session_id = seed_session(engine, settings, issuer, point_id, count, first)
                first += count
                seconds, batch_id = run_batch(worker, session_id, issuer, engine)
                rate = count / seconds
                best[mode] = max(best.get(mode, 0.0), rate)
                print(f"  {kind:10} {mode:22} round {round_number + 1}: {count:,} in {seconds:.2f} s = {rate:,.0f}/s")
                if pdf and mode == "no pool":
                    render_seconds, pages = render_cards(engine, batch_id, issuer, settings)
                    with_pdf = count / (seconds + render_seconds)
                    best["no pool, with PDF"] = max(best.get("no pool, with PDF", 0.0), with_pdf)
                    best["PDF pages/s"] = max(best.get("PDF pages/s", 0.0), pages / render_seconds)
                    print(
                        f"  {kind:10} {'cards PDF':22} round {round_number + 1}: {pages:,} pages in "
                        f"{render_seconds:.2f} s = {pages / render_seconds:,.1f} pages/s; with PDF {with_pdf:,.0f}/s"
                    )
    return best


def _warm_claims(n: int) -> crypto.CertificateClaims:
    return crypto.CertificateClaims.issue(
        issuer="CN-44",
        holder_name="预热",
        masked_id="44010000",
        operation=crypto.Operation(2, 1),
        valid_from=date.today(),
        valid_until=date.today() + timedelta(days=365),
        status_index=n,
    )


def main() -> int:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--results", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-pdf", action="store_true", help="skip rendering each batch's cards")
    args = parser.parse_args()
    kinds = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    pdf = not args.no_pdf
    table = {kind: bench_database(kind, args.results, args.rounds, args.processes, pdf=pdf) for kind in kinds}
    modes = list(next(iter(table.values())))
    cpus = os.cpu_count()
    print(f"\ncertificates per second, {args.results:,} per batch, best of {args.rounds} rounds ({cpus} CPUs):")
    print(f"| database | {' | '.join(modes)} |")
    print(f"|---|{'---:|' * len(modes)}")
    for kind, rates in table.items():
        cells = [f"{rates[mode]:,.1f}" if "pages" in mode else f"{rates[mode]:,.0f}" for mode in modes]
        print(f"| {kind} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
