"""Certificate batches: the certificates of many passed exam results, issued by a background job.

A batch is submitted once (an ``Idempotency-Key`` makes a retried submission answer with the same
batch: the unique ``(issuer_id, idempotency_key)`` settles even two submissions racing each other) and
freezes its targets then: the explicit result ids, or the passed, uncertified results of the session.

A worker takes a batch by a conditional update of its lease (queued, or running with a lease that ran
out: its process died; or released: its process stopped) and issues it chunk by chunk. Each chunk is
one transaction that locks the issuer row first (as single issuance does), re-checks every result's
eligibility, draws the status indexes in bulk, signs, inserts the certificates and their ``issued``
events with executemany, and moves ``done`` and the lease on, conditionally on the batch still being
this worker's at the same ``done``. A crash loses at most the uncommitted chunk; a second worker that
ever overlaps finds ``done`` moved and stops; and the unique ``certificates.exam_result_id`` turns any
remaining race into a rolled-back chunk, never a second certificate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

import crypto
from crypto import CST, CertificateClaims, Operation
from schemas.dates import add_years, default_valid_until

from ..clock import Clock
from ..db import read_transaction, write_transaction
from ..keyring import Keyring
from ..models import (
    Certificate,
    CertificateBatch,
    ExamResult,
    ExamSession,
    Issuer,
    StatusEvent,
    could_be_id,
    new_id,
)
from ..settings import Settings
from .errors import (
    BatchConflict,
    BatchNotFound,
    ExamResultCertified,
    ExamResultExpired,
    ExamResultNotFound,
    ExamResultNotPassed,
    ExamSessionNotFound,
    IssuerNotFound,
    OperationNotAllowed,
    ReapplicationBarred,
    ServiceError,
)
from .idempotency import check_idempotency_key
from .issuance import active_key, barred_holders
from .signing_pool import SigningPool, default_processes
from .status_lists import draw_status_indexes

log = logging.getLogger("certseal.batches")

CHUNK_SIZE = 1000
"""Results per chunk transaction: the issuer row stays locked for one chunk (well under the 2 s lock timeout)."""
MAX_CHUNK_RETRIES = 3
"""A chunk that loses a race (unique index) is retried; after this many it fails the batch."""
POLL_SECONDS = 1.0
"""How often an idle runner looks for batches submitted elsewhere or left behind by a dead process."""


@dataclass(frozen=True)
class BatchRequest:
    """What a batch issues: every passed, uncertified result of one session, or an explicit list of results."""

    session_id: str | None = None
    result_ids: tuple[str, ...] | None = None

    def digest(self) -> str:
        """The request's fingerprint: the same key with another request is a conflict."""
        body = {"session": self.session_id} if self.session_id is not None else {"results": list(self.result_ids or ())}
        return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


def worker_name() -> str:
    """A lease owner naming this process uniquely (host, pid and a random part: pids are reused)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _by_key(session: Session, issuer_id: str, key: str) -> CertificateBatch | None:
    with read_transaction(session):
        return session.exec(
            select(CertificateBatch).where(
                CertificateBatch.issuer_id == issuer_id, CertificateBatch.idempotency_key == key
            )
        ).first()


def _replayed(batch: CertificateBatch, digest: str) -> CertificateBatch:
    if batch.request_hash != digest:
        raise BatchConflict("this Idempotency-Key was used with a different batch request")
    return batch


def _targets(session: Session, issuer_id: str, request: BatchRequest) -> list[str]:
    if request.result_ids is not None:
        return list(dict.fromkeys(request.result_ids))  # a result listed twice is issued once
    exam_session = session.get(ExamSession, request.session_id) if could_be_id(request.session_id or "") else None
    if exam_session is None or exam_session.issuer_id != issuer_id:
        raise ExamSessionNotFound()
    certified = select(Certificate.exam_result_id).where(
        Certificate.exam_session_id == exam_session.id,
        Certificate.exam_result_id.is_not(None),  # type: ignore[union-attr]
    )
    return list(
        session.exec(
            select(ExamResult.id)
            .where(
                ExamResult.session_id == exam_session.id,
                ExamResult.passed == True,  # noqa: E712 -- SQL comparison
                ExamResult.id.not_in(certified),  # type: ignore[attr-defined]
            )
            .order_by(ExamResult.created_at, ExamResult.id)  # type: ignore[arg-type]
        ).all()
    )


def submit_batch(
    session: Session,
    *,
    issuer: Issuer,
    request: BatchRequest,
    idempotency_key: str | None,
    actor: str,
    now: datetime,
    lease_owner: str | None = None,
    lease_seconds: int = 30,
) -> CertificateBatch:
    """Create a batch (queued; with ``lease_owner``, already running under that owner's lease) or, for a
    known ``idempotency_key`` and the same request, return the batch it made. Runs its own transactions.

    :class:`BatchConflict` for a known key with another request; :class:`ExamSessionNotFound` for a
    session that is not the issuer's. A session without eligible results makes a batch that is done at once.
    """
    check_idempotency_key(idempotency_key)
    digest = request.digest()
    # Read once, up front: the rollback of a losing insert expires every object of the session, and the
    # issuer (loaded by the request's authentication) could then not be reloaded outside a transaction.
    issuer_id = issuer.id
    if idempotency_key and (existing := _by_key(session, issuer_id, idempotency_key)):
        return _replayed(existing, digest)
    try:
        with write_transaction(session):
            targets = _targets(session, issuer_id, request)
            batch = CertificateBatch(
                issuer_id=issuer_id,
                session_id=request.session_id,
                result_ids=targets,
                idempotency_key=idempotency_key,
                request_hash=digest,
                total=len(targets),
                created_by=actor,
                created_at=now,
            )
            if not targets:
                batch.status, batch.finished_at = "done", now
            elif lease_owner is not None:
                batch.status, batch.started_at, batch.attempts = "running", now, 1
                batch.lease_owner, batch.lease_expires_at = lease_owner, now + timedelta(seconds=lease_seconds)
            session.add(batch)
            session.flush()  # a concurrent submission with the same key fails here, on the unique constraint
    except IntegrityError:
        existing = _by_key(session, issuer_id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replayed(existing, digest)
    return batch


def session_issuer(session: Session, session_id: str) -> Issuer:
    """The issuer an exam session belongs to (the command line acts for it); :class:`ExamSessionNotFound`."""
    with read_transaction(session):
        exam_session = session.get(ExamSession, session_id) if could_be_id(session_id) else None
        issuer = session.get(Issuer, exam_session.issuer_id) if exam_session is not None else None
    if issuer is None:
        raise ExamSessionNotFound()
    return issuer


def find_batch(session: Session, batch_id: str) -> CertificateBatch | None:
    """The batch with this id from a URL, or None (also for a string that cannot be an id)."""
    if not could_be_id(batch_id):
        return None
    with read_transaction(session):
        return session.get(CertificateBatch, batch_id)


@dataclass(frozen=True)
class BatchView:
    """A batch as its progress is reported."""

    batch: CertificateBatch
    certificate_ids: list[str]


def batch_view(session: Session, batch_id: str) -> BatchView:
    """The batch (fresh from the database) with the ids of the certificates it issued so far."""
    with read_transaction(session):
        batch = session.exec(
            select(CertificateBatch).where(CertificateBatch.id == batch_id).execution_options(populate_existing=True)
        ).first()
        if batch is None:
            raise BatchNotFound()
        ids = session.exec(
            select(Certificate.id).where(Certificate.batch_id == batch_id).order_by(Certificate.id)  # type: ignore[arg-type]
        ).all()
    return BatchView(batch, list(ids))


# ---------------------------------------------------------------------------------------------------
# The job: claiming a batch, issuing it chunk by chunk.
# ---------------------------------------------------------------------------------------------------


def _claimable(now: datetime, owner: str) -> Any:
    return or_(
        CertificateBatch.status == "queued",
        (CertificateBatch.status == "running")
        & or_(
            CertificateBatch.lease_owner.is_(None),  # type: ignore[union-attr]  # released by a worker that stopped
            CertificateBatch.lease_expires_at < now,  # type: ignore[operator]
            CertificateBatch.lease_owner == owner,
        ),
    )


def claim_batch(
    engine: Engine, *, owner: str, now: datetime, lease_seconds: int, batch_id: str | None = None
) -> str | None:
    """Take one batch (``batch_id``, or the oldest claimable) under ``owner``'s lease; its id, or None.

    A batch is claimable when queued, or running under no lease (released), a lease that ran out, or
    ``owner``'s own. The take is one conditional update, so of two workers racing for one batch exactly
    one gets it.
    """
    with Session(engine, expire_on_commit=False, autobegin=False) as session:
        with read_transaction(session):
            query = select(CertificateBatch.id).where(_claimable(now, owner))
            if batch_id is not None:
                query = query.where(CertificateBatch.id == batch_id)
            candidates = session.exec(query.order_by(CertificateBatch.created_at).limit(5)).all()  # type: ignore[arg-type]
        for candidate in candidates:
            with write_transaction(session):
                taken = session.execute(
                    update(CertificateBatch)
                    .where(CertificateBatch.id == candidate, _claimable(now, owner))  # type: ignore[arg-type]
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        attempts=CertificateBatch.attempts + 1,
                        started_at=func.coalesce(CertificateBatch.started_at, now),
                    )
                    .execution_options(synchronize_session=False)
                )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return candidate
    return None


@dataclass(frozen=True)
class Progress:
    """Where a batch stands after a chunk."""

    done: int
    total: int
    status: str


def _refusal(error: ServiceError, result_id: str) -> dict[str, Any]:
    return {"result_id": result_id, "code": error.code, "message": error.message}


@dataclass
class _Chunk:
    certificates: list[dict[str, Any]]
    events: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class BatchWorker:
    """Issues the chunks of batches it holds the lease of (the server's runner and the CLI both use one)."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        pool: SigningPool,
        *,
        settings: Settings,
        clock: Clock,
        owner: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.owner = owner or worker_name()
        self.chunk_size = chunk_size

    def claim(self, batch_id: str | None = None) -> str | None:
        """Take a batch under this worker's lease (see :func:`claim_batch`)."""
        return claim_batch(
            self.engine,
            owner=self.owner,
            now=self.clock.now(),
            lease_seconds=self.settings.batch_lease_seconds,
            batch_id=batch_id,
        )

    def run(
        self,
        batch_id: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Progress | None:
        """Issue chunks of a batch this worker holds until it is done or failed (or ``should_stop``);
        None if the lease was lost."""
        retries = 0
        progress: Progress | None = None
        while not should_stop():
            try:
                progress = self.run_chunk(batch_id)
            except IntegrityError:
                # A certificate for one of the results (or a status index) committed meanwhile: the chunk
                # rolled back whole; its retry sees that certificate and refuses the result instead.
                retries += 1
                if retries > MAX_CHUNK_RETRIES:
                    return self._fail(batch_id, "batch_conflict", "a chunk kept conflicting with concurrent issuance")
                continue
            except ServiceError as exc:  # no active key, issuer gone: nothing in the batch can be issued
                return self._fail(batch_id, exc.code, exc.message)
            retries = 0
            if progress is None or progress.status != "running":
                if progress is not None and on_progress is not None:
                    on_progress(progress)
                return progress
            if on_progress is not None:
                on_progress(progress)
        return progress

    def release(self) -> int:
        """Let go of the leases this worker holds, so another process resumes its batches at once; how many.

        Only for a worker that has stopped: a chunk still in flight would find the batch no longer its own
        and roll back (its commit is conditional on the lease), so nothing is issued twice either way.
        """
        with Session(self.engine, expire_on_commit=False, autobegin=False) as session, write_transaction(session):
            released = session.execute(
                update(CertificateBatch)
                .where(
                    CertificateBatch.lease_owner == self.owner,  # type: ignore[arg-type]
                    CertificateBatch.status == "running",  # type: ignore[arg-type]
                )
                .values(lease_owner=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
        return int(released.rowcount)  # type: ignore[attr-defined]

    def _fail(self, batch_id: str, code: str, message: str) -> Progress | None:
        now = self.clock.now()
        with Session(self.engine, expire_on_commit=False, autobegin=False) as session, write_transaction(session):
            batch = session.get(CertificateBatch, batch_id)
            if batch is None or batch.lease_owner != self.owner or batch.status != "running":
                return None
            batch.errors = [*batch.errors, {"result_id": None, "code": code, "message": message}]
            batch.status, batch.finished_at, batch.lease_owner, batch.lease_expires_at = "failed", now, None, None
            session.add(batch)
            log.warning("certificate batch %s failed: %s", batch_id, code)
            return Progress(batch.done, batch.total, batch.status)

    def run_chunk(self, batch_id: str) -> Progress | None:
        """Issue the next chunk of a batch in one transaction; None if this worker no longer holds it."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.batch_lease_seconds)
        with Session(self.engine, expire_on_commit=False, autobegin=False) as session, write_transaction(session):
            batch = session.get(CertificateBatch, batch_id)
            if batch is None or batch.status != "running" or batch.lease_owner != self.owner:
                return None
            # Issuer first, as single issuance, rotation and revocation lock it: one lock order.
            issuer = session.exec(
                select(Issuer)
                .where(Issuer.id == batch.issuer_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if issuer is None:
                raise IssuerNotFound()
            # Still ours, and nobody moved it on meanwhile: this row lock also makes an overlapping worker wait.
            held = session.execute(
                update(CertificateBatch)
                .where(
                    CertificateBatch.id == batch_id,  # type: ignore[arg-type]
                    CertificateBatch.lease_owner == self.owner,  # type: ignore[arg-type]
                    CertificateBatch.status == "running",  # type: ignore[arg-type]
                    CertificateBatch.done == batch.done,  # type: ignore[arg-type]
                )
                .values(lease_expires_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            if held.rowcount != 1:  # type: ignore[attr-defined]
                return None
            ids = (batch.result_ids or [])[batch.done : batch.done + self.chunk_size]
            chunk = self._issue(session, issuer, batch, ids, now=now)
            if chunk.certificates:
                session.execute(insert(Certificate), chunk.certificates)
                session.execute(insert(StatusEvent), chunk.events)
            done = batch.done + len(ids)
            finished = done >= batch.total
            session.execute(
                update(CertificateBatch)
                .where(CertificateBatch.id == batch_id)  # type: ignore[arg-type]
                .values(
                    done=done,
                    errors=[*batch.errors, *chunk.errors],
                    status="done" if finished else "running",
                    finished_at=now if finished else None,
                    lease_owner=None if finished else self.owner,
                    lease_expires_at=None if finished else lease_until,
                )
                .execution_options(synchronize_session=False)
            )
            return Progress(done, batch.total, "done" if finished else "running")

    def _issue(
        self, session: Session, issuer: Issuer, batch: CertificateBatch, ids: Sequence[str], *, now: datetime
    ) -> _Chunk:
        settings = self.settings
        issue_date = now.astimezone(CST).date()
        rows: dict[str, tuple[ExamResult, ExamSession]] = {}
        certified: set[str] = set()
        wanted = [result_id for result_id in ids if could_be_id(result_id)]
        for start in range(0, len(wanted), 500):  # bounded IN lists (SQLite's parameter limit)
            part = wanted[start : start + 500]
            for result, exam_session in session.exec(
                select(ExamResult, ExamSession)
                .join(ExamSession, ExamSession.id == ExamResult.session_id)  # type: ignore[arg-type]
                .where(ExamResult.id.in_(part), ExamResult.issuer_id == issuer.id)  # type: ignore[attr-defined]
            ).all():
                rows[result.id] = (result, exam_session)
            certified.update(
                session.exec(select(Certificate.exam_result_id).where(Certificate.exam_result_id.in_(part))).all()  # type: ignore[union-attr]
            )
        chunk = _Chunk([], [], [])
        eligible: list[tuple[ExamResult, ExamSession]] = []
        for result_id in ids:
            found = rows.get(result_id)
            refusal = _ineligible(found, certified, issuer, issue_date)
            if refusal is not None:
                chunk.errors.append(_refusal(refusal, result_id))
            elif found is not None:
                eligible.append(found)
        eligible = self._not_barred(session, eligible, chunk, now=now)
        if not eligible:
            return chunk
        indexes = draw_status_indexes(session, issuer, len(eligible))
        key_row = active_key(session, issuer)
        valid_until = default_valid_until(issue_date, settings.validity_years)
        review_due = add_years(issue_date, settings.review_interval_years) if settings.review_required else None
        claims: list[CertificateClaims] = []
        issued: list[tuple[ExamResult, ExamSession, CertificateClaims]] = []
        for (result, exam_session), status_index in zip(eligible, indexes, strict=True):
            try:
                one = CertificateClaims.issue(
                    issuer=issuer.code,
                    holder_name=result.holder_name,
                    masked_id=result.masked_id,
                    operation=Operation.parse(exam_session.operation),
                    valid_from=issue_date,
                    valid_until=valid_until,
                    review_due=review_due,
                    photo_digest=crypto.photo_digest(result.photo) if result.photo else None,
                    status_index=status_index,
                    issued_at=now,
                )
            except crypto.InvalidInput as exc:
                chunk.errors.append(
                    {
                        "result_id": result.id,
                        "code": "invalid_certificate",
                        "message": f"certificate fields are out of range ({exc.detail})",
                    }
                )
                continue
            claims.append(one)
            issued.append((result, exam_session, one))
        envelopes = self.pool.sign(key_row, claims)
        actor = batch.created_by
        for (result, exam_session, one), envelope in zip(issued, envelopes, strict=True):
            certificate_id = new_id()
            chunk.certificates.append(
                _certificate_row(
                    certificate_id,
                    result,
                    exam_session,
                    one,
                    envelope,
                    issuer_id=issuer.id,
                    kid=key_row.kid,
                    batch_id=batch.id,
                    issue_date=issue_date,
                    valid_until=valid_until,
                    review_due=review_due,
                    now=now,
                )
            )
            chunk.events.append(
                {
                    "id": new_id(),
                    "certificate_id": certificate_id,
                    "action": "issued",
                    "reason": None,
                    "actor": actor,
                    "at": now,
                }
            )
        return chunk

    def _not_barred(
        self, session: Session, eligible: list[tuple[ExamResult, ExamSession]], chunk: _Chunk, *, now: datetime
    ) -> list[tuple[ExamResult, ExamSession]]:
        by_operation: dict[str, set[bytes]] = {}
        for result, exam_session in eligible:
            if result.bar_override_reason is None:
                by_operation.setdefault(exam_session.operation, set()).add(result.id_hmac)
        barred = {
            (operation, holder)
            for operation, hashes in by_operation.items()
            for holder in barred_holders(
                session, operation=operation, id_hmacs=hashes, now=now, years=self.settings.reapplication_bar_years
            )
        }
        kept = []
        for result, exam_session in eligible:
            if result.bar_override_reason is None and (exam_session.operation, result.id_hmac) in barred:
                chunk.errors.append(_refusal(ReapplicationBarred(), result.id))
            else:
                kept.append((result, exam_session))
        return kept


def _ineligible(
    found: tuple[ExamResult, ExamSession] | None, certified: set[str], issuer: Issuer, issue_date: date
) -> ServiceError | None:
    """Why a result cannot be certified (the bar is checked in bulk afterwards), or None."""
    if found is None:
        return ExamResultNotFound()
    result, exam_session = found
    if not result.passed:
        return ExamResultNotPassed()
    if result.usable_until < issue_date:
        return ExamResultExpired()
    if result.id in certified:
        return ExamResultCertified()
    if exam_session.operation not in issuer.operations:
        return OperationNotAllowed(f"issuer {issuer.code} may not certify {exam_session.operation}")
    return None


def _certificate_row(
    certificate_id: str,
    result: ExamResult,
    exam_session: ExamSession,
    claims: CertificateClaims,
    envelope: bytes,
    *,
    issuer_id: str,
    kid: str,
    batch_id: str,
    issue_date: date,
    valid_until: date,
    review_due: date | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": certificate_id,
        "serial": claims.serial.hex(),
        "issuer_id": issuer_id,
        "kid": kid,
        "holder_name": claims.holder_name,
        "masked_id": result.masked_id,
        "id_hmac": result.id_hmac,
        "id_hmac_version": result.id_hmac_version,
        "operation": exam_session.operation,
        "issue_date": issue_date,
        "valid_until": valid_until,
        "review_due": review_due,
        "photo": result.photo,
        "photo_type": result.photo_type if result.photo else None,
        "photo_digest": claims.photo_digest.hex() if claims.photo_digest else None,
        "status_index": claims.status_index,
        "status": "valid",
        "status_reason": None,
        "status_changed_at": None,
        "envelope": envelope,
        "envelope_sha256": hashlib.sha256(envelope).hexdigest(),
        "created_at": now,  # a compromised key's certificates are judged by when they were registered
        "basis": "exam",
        "exam_result_id": result.id,
        "exam_session_id": exam_session.id,
        "exam_point_id": exam_session.exam_point_id,
        "supersedes_id": None,
        "batch_id": batch_id,
    }


class BatchRunner:
    """The server's background job: a thread that claims batches and runs them, woken by each submission.

    Idle, it looks every :data:`POLL_SECONDS` for batches submitted to another process or left behind
    by a dead one (their lease ran out). A database error is logged and the loop goes on: the lease
    runs out and this or another process takes the batch up again.
    """

    def __init__(self, worker: BatchWorker, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.worker = worker
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="certseal-batches", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (a batch was just submitted)."""
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the chunk in progress (it commits or rolls back whole), hand back the leases held (another
        process need not wait for them to run out), then stop the signing processes."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        try:
            released = self.worker.release()
        except SQLAlchemyError as exc:  # the lease runs out instead
            log.warning("certificate batches: leases not released on stop: %s", type(exc).__name__)
        else:
            if released:
                log.info("certificate batches: released %d lease(s) on stop", released)
        self.worker.pool.close()

    @classmethod
    def started(cls, engine: Engine, keyring: Keyring, *, settings: Settings, clock: Clock) -> BatchRunner:
        """A running runner with its signing pool (whose processes start with the first batch)."""
        pool = SigningPool(
            keyring,
            settings.require("key_passphrase").encode(),
            processes=default_processes(settings.batch_signing_processes),
        )
        runner = cls(BatchWorker(engine, keyring, pool, settings=settings, clock=clock))
        runner.start()
        return runner

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                batch_id = self.worker.claim()
                while batch_id is not None and not self._stopping.is_set():
                    self._run(batch_id)
                    batch_id = self.worker.claim()
            except SQLAlchemyError as exc:
                log.warning("certificate batches: database error, retrying: %s", type(exc).__name__)
            self._wake.wait(self._poll_seconds)
            self._wake.clear()

    def _run(self, batch_id: str) -> None:
        progress = self.worker.run(batch_id, should_stop=self._stopping.is_set)
        if progress is not None and progress.status != "running":
            log.info(
                "certificate batch %s %s: %d of %d results", batch_id, progress.status, progress.done, progress.total
            )
