"""Database tables (SQLModel). Request and response shapes live in ``schemas.api``, apart from these.

No column holds a full ID number: certificates keep the masked form and a keyed HMAC, with the
version of the HMAC key that made it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random, non-sequential identifier."""
    return uuid.uuid4().hex


def could_be_id(text: str) -> bool:
    """Whether ``text`` has the shape :func:`new_id` gives (32 lowercase hex digits).

    Ids from a URL are checked before any query: anything else names no row, and some values (a NUL
    character) are not even valid text to PostgreSQL.
    """
    return len(text) == 32 and all(character in "0123456789abcdef" for character in text)


class Issuer(SQLModel, table=True):
    """An issuing authority, e.g. a provincial emergency-management department."""

    __tablename__ = "issuers"

    id: str = Field(default_factory=new_id, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=16)
    name: str = Field(max_length=200)
    region: str = Field(max_length=100)
    # Whom a site manager calls about a refused certificate (shown by the verify answer and the page).
    service_phone: str | None = Field(default=None, max_length=32)
    # Operation item codes ("2.1", ...) this issuer may certify; checked at issuance and at verification.
    operations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Status indexes drawn at random so far: decides how many lists, from first_random_list on, are open.
    random_indexes_drawn: int = 0
    # The first list of random draws: 1, or the list after the sequential indexes issued before 0006.
    first_random_list: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class SigningKeyRow(SQLModel, table=True):
    """An issuer's signing key; the private half encrypted as PKCS#8 PEM under the key passphrase.

    ``use`` keeps the two kinds apart: a ``certificate`` key signs certificates only, a ``status_list``
    key (always ES256) signs the issuer's status lists only. ``not_before``/``not_after`` are the
    signing window a certificate's ``iat`` must fall in.
    """

    __tablename__ = "signing_keys"
    # One active key per issuer and use, enforced by the database: concurrent rotations cannot leave two.
    __table_args__ = (
        Index(
            "uq_signing_keys_one_active_per_issuer_use",
            "issuer_id",
            "use",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    kid: str = Field(primary_key=True, max_length=16)  # hex of the 8-byte kid
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    alg: str = Field(max_length=10)
    use: str = Field(default="certificate", max_length=12, sa_column_kwargs={"server_default": "certificate"})
    state: str = Field(default="active", max_length=12)  # active | retired | compromised
    public_key_pem: str
    encrypted_private_key: str
    not_before: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    not_after: datetime | None = Field(default=None, sa_type=UtcDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    compromised_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    compromise_reason: str | None = Field(default=None, max_length=500)


class ApiKey(SQLModel, table=True):
    """An API key, stored only as its SHA-256; scoped to one issuer or to a third-party app."""

    __tablename__ = "api_keys"

    id: str = Field(default_factory=new_id, primary_key=True)
    prefix: str = Field(index=True, unique=True, max_length=16)
    secret_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    scope: str = Field(max_length=10)  # issuer | app
    issuer_id: str | None = Field(default=None, foreign_key="issuers.id", index=True)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # From this moment on the key is refused (None: it does not expire).
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # When the key last authenticated, written at most once a minute per key and process, off the request path.
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Certificate(SQLModel, table=True):
    """A signed certificate in the registry."""

    __tablename__ = "certificates"
    __table_args__ = (
        # A status index names one entry of one of the issuer's status lists: never two certificates.
        Index("uq_certificates_issuer_status_index", "issuer_id", "status_index", unique=True),
        # A retired or compromised key's verify_until is its certificates' last valid day: one index lookup.
        Index("ix_certificates_kid_valid_until", "kid", "valid_until"),
        # A status list is built from the certificates that are not valid; this index finds just those.
        Index(
            "ix_certificates_not_valid",
            "issuer_id",
            "status_index",
            "status",
            sqlite_where=text("status <> 'valid'"),
            postgresql_where=text("status <> 'valid'"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    serial: str = Field(index=True, unique=True, max_length=32)  # hex of cti
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    kid: str = Field(foreign_key="signing_keys.kid", index=True)
    holder_name: str = Field(max_length=64)
    masked_id: str = Field(max_length=8)
    id_hmac: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, index=True))
    id_hmac_version: int
    operation: str = Field(index=True, max_length=8)
    issue_date: date
    valid_until: date
    review_due: date | None = None
    photo: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    photo_type: str | None = Field(default=None, max_length=20)
    photo_digest: str | None = Field(default=None, max_length=32)
    status_index: int
    status: str = Field(default="valid", index=True, max_length=10)  # valid | suspended | revoked | superseded
    status_reason: str | None = Field(default=None, max_length=500)
    status_changed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    envelope_sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UtcDateTime)
    # Provenance (0008). ``basis``: exam | reissue | renewal | legacy_migration | direct (null: issued before
    # 0008). The unique exam_result_id is what makes "one certificate per passed exam" hold under any race.
    basis: str | None = Field(default=None, max_length=20)
    exam_result_id: str | None = Field(default=None, foreign_key="exam_results.id", unique=True)
    exam_session_id: str | None = Field(default=None, foreign_key="exam_sessions.id", index=True)
    exam_point_id: str | None = Field(default=None, foreign_key="exam_points.id", index=True)
    # The certificate this one replaces (reissue): the old one is superseded in the same transaction.
    supersedes_id: str | None = Field(default=None, foreign_key="certificates.id", index=True)
    batch_id: str | None = Field(default=None, foreign_key="certificate_batches.id", index=True)


class TrainingInstitution(SQLModel, table=True):
    """A training institution (培训机构), registered by the issuer of its province; codes are unique nationwide."""

    __tablename__ = "training_institutions"

    id: str = Field(default_factory=new_id, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    name: str = Field(max_length=200)
    region: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ExamPoint(SQLModel, table=True):
    """An exam point (考试点): where, for which items, how many per session, and whether it may examine now.

    ``status``: active | suspended (no new sessions) | closed (final; certificates it produced with an
    issue date from ``review_from`` on are listed for review, never revoked automatically).
    """

    __tablename__ = "exam_points"

    id: str = Field(default_factory=new_id, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    name: str = Field(max_length=200)
    region: str = Field(max_length=100)
    address: str = Field(max_length=300)
    operations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    capacity_per_session: int
    accredited_from: date
    accredited_until: date | None = None
    status: str = Field(default="active", max_length=10)
    status_reason: str | None = Field(default=None, max_length=500)
    status_changed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    review_from: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ExamPointExclusion(SQLModel, table=True):
    """教考分离: the exam point may not examine candidates trained by this institution (e.g. its own training arm)."""

    __tablename__ = "exam_point_exclusions"

    exam_point_id: str = Field(foreign_key="exam_points.id", primary_key=True)
    training_institution_id: str = Field(foreign_key="training_institutions.id", primary_key=True)


class ExamSession(SQLModel, table=True):
    """One exam session of one operation item at one exam point on one day."""

    __tablename__ = "exam_sessions"

    id: str = Field(default_factory=new_id, primary_key=True)
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    exam_point_id: str = Field(foreign_key="exam_points.id", index=True)
    operation: str = Field(max_length=8)
    exam_date: date
    theory_exam: bool = True  # the computer-based theory exam was held
    practical_exam: bool = True
    real_equipment: bool = False  # the practical exam ran on real equipment
    proctor_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ExamResult(SQLModel, table=True):
    """One candidate's result in one session; never the full ID number (keyed HMAC, masked form, birth date).

    Unique per session and candidate (by keyed hash): importing the same rows again changes nothing.
    """

    __tablename__ = "exam_results"
    __table_args__ = (UniqueConstraint("session_id", "id_hmac", name="uq_exam_results_session_candidate"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="exam_sessions.id", index=True)
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    holder_name: str = Field(max_length=64)
    masked_id: str = Field(max_length=8)  # as on certificates: crypto.mask_visible
    id_hmac: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, index=True))
    id_hmac_version: int
    birth_date: date
    theory_score: int
    practical_score: int
    passed: bool
    attempt: int = 1  # 2 for the one retake
    training_institution_code: str | None = Field(default=None, max_length=32)
    training_institution_registered: bool = False
    usable_until: date  # a pass is usable for issuance until this day (exam date + 12 months by default)
    photo: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    photo_type: str | None = Field(default=None, max_length=20)
    # An admin lifted the 3-year bar after a revocation for this result (why, and who).
    bar_override_reason: str | None = Field(default=None, max_length=500)
    bar_override_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class CertificateBatch(SQLModel, table=True):
    """A background job issuing the certificates of many exam results; one worker at a time holds its lease.

    ``status``: queued | running | done | failed. A worker takes the batch by a conditional update of
    ``lease_owner``/``lease_expires_at`` and renews the lease after every chunk; a batch whose lease ran
    out (its process died) is taken again, and the unique ``certificates.exam_result_id`` keeps every
    result certified exactly once.
    """

    __tablename__ = "certificate_batches"
    __table_args__ = (UniqueConstraint("issuer_id", "idempotency_key", name="uq_certificate_batches_idempotency"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    issuer_id: str = Field(foreign_key="issuers.id", index=True)
    session_id: str | None = Field(default=None, foreign_key="exam_sessions.id", index=True)
    result_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str = Field(default="", max_length=64)
    status: str = Field(default="queued", index=True, max_length=10)
    total: int = 0
    done: int = 0
    errors: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempts: int = 0
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class StatusListRow(SQLModel, table=True):
    """One status list of an issuer: its compressed array and the newest token signed over it.

    ``lst`` is rebuilt in the transaction that changes a status in the list (under this row's lock), so
    it always matches the registry; the token is re-signed from ``lst`` whenever it is older than the
    list's ``ttl``, so a verifier's "status as of" is never older than that.
    """

    __tablename__ = "status_lists"

    issuer_id: str = Field(foreign_key="issuers.id", primary_key=True)
    number: int = Field(primary_key=True)
    lst: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    kid: str = Field(max_length=16)
    iat: datetime = Field(sa_type=UtcDateTime)
    exp: datetime = Field(sa_type=UtcDateTime)
    built_at: datetime = Field(sa_type=UtcDateTime)


class TrustListRow(SQLModel, table=True):
    """A published trust list: signed by the service's trust anchor, or signed offline and uploaded."""

    __tablename__ = "trust_lists"

    sequence: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    iat: datetime = Field(sa_type=UtcDateTime)
    exp: datetime = Field(sa_type=UtcDateTime)
    source: str = Field(max_length=10)  # service | uploaded
    published_at: datetime = Field(sa_type=UtcDateTime)


class StatusEvent(SQLModel, table=True):
    """One status change of a certificate (issued, suspended, reinstated, revoked, reviewed)."""

    __tablename__ = "status_events"

    id: str = Field(default_factory=new_id, primary_key=True)
    certificate_id: str = Field(foreign_key="certificates.id", index=True)
    action: str = Field(max_length=12)
    reason: str | None = Field(default=None, max_length=500)
    actor: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class VerificationEvent(SQLModel, table=True):
    """One verification: what was decided and why; never the holder's ID number."""

    __tablename__ = "verification_events"

    id: str = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(index=True, sa_type=UtcDateTime)
    serial: str | None = Field(default=None, index=True, max_length=32)
    issuer_code: str | None = Field(default=None, max_length=16)
    decision: str = Field(max_length=8)
    reasons: str = Field(default="", max_length=400)
    purpose: str | None = Field(default=None, max_length=20)
    holder_checked: bool = False
    client: str | None = Field(default=None, max_length=40)  # API key id of a third-party app


class VerificationDaily(SQLModel, table=True):
    """Verifications per China Standard Time day, issuer, decision and reasons: what pruned events leave behind.

    Verification events older than ``CERTSEAL_EVENT_RETENTION_DAYS`` are counted in here and deleted in one
    transaction (``api.services.retention``). ``issuer_code`` is ``""`` when the credential named no issuer
    (it could not be read); ``reasons`` is the event's reason list as recorded (comma-separated, ``""`` for
    an accept), so the counts of a day add up to the verifications of that day.
    """

    __tablename__ = "verification_daily"

    day: date = Field(primary_key=True)
    issuer_code: str = Field(primary_key=True, max_length=16)
    decision: str = Field(primary_key=True, max_length=8)
    reasons: str = Field(primary_key=True, max_length=400)
    count: int


class HolderCheckCounter(SQLModel, table=True):
    """Wrong holder ID numbers for one certificate from one client in one time window.

    ``client`` is an API key id, a client address, or ``*`` for the ceiling over all clients. Rows are
    counted up by one conditional upsert, so the check and the count are one atomic statement.
    """

    __tablename__ = "holder_check_counters"

    certificate_id: str = Field(foreign_key="certificates.id", primary_key=True)
    client: str = Field(primary_key=True, max_length=64)
    window_start: int = Field(primary_key=True)  # Unix seconds at the start of the window
    failures: int = 0
    expires_at: int = Field(index=True)  # Unix seconds after which the row may be pruned


class IdempotencyRecord(SQLModel, table=True):
    """The stored response of a request made with an ``Idempotency-Key``, replayed on retry."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    principal: str = Field(max_length=64)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Indexed for pruning (CERTSEAL_IDEMPOTENCY_RETENTION_HOURS).
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UtcDateTime)


class DeploymentFlag(SQLModel, table=True):
    """A fact about the whole database, e.g. ``demo_data``: it holds the demo data set (value: the demo issuer's id).

    A database with the ``demo_data`` flag is refused outside demo mode until ``certseal demo purge``.
    """

    __tablename__ = "deployment_flags"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(default="", max_length=200)
    set_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
