"""What the database remembers about itself: whether it holds the demo data set, and removing that data.

``certseal serve --demo`` (or ``CERTSEAL_DEMO=true``) seeds a demo issuer with a *published* API key and
sets the ``demo_data`` flag in the same transaction. Outside demo mode the service, the app's lifespan
and the admin commands call :func:`require_no_demo_data` and refuse such a database until ``certseal
demo purge`` (:func:`purge_demo_data`) has removed the demo issuer and everything that hangs off it.
A row with the demo API key's prefix counts as demo data even without the flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Connection, Engine

from .db import begin_write, make_engine
from .keyring import Keyring
from .migrate import require_current_schema
from .models import (
    ApiKey,
    Certificate,
    CertificateBatch,
    DeploymentFlag,
    ExamPoint,
    ExamPointExclusion,
    ExamResult,
    ExamSession,
    HolderCheckCounter,
    IdempotencyRecord,
    Issuer,
    SigningKeyRow,
    StatusEvent,
    StatusListRow,
    TrainingInstitution,
    VerificationDaily,
    VerificationEvent,
    utcnow,
)
from .settings import DEMO_ISSUER_API_KEY_PREFIX, Settings

DEMO_DATA = "demo_data"
PURGE_COMMAND = "certseal demo purge"


class DemoDataPresent(RuntimeError):
    """The database holds the demo data set, whose API key is published; refused outside demo mode."""

    def __init__(self) -> None:
        super().__init__(
            "this database holds the demo data (it was started with --demo or CERTSEAL_DEMO=true), whose "
            f"API key and secrets are published: run `{PURGE_COMMAND}` (with --database or "
            "CERTSEAL_DATABASE_URL) to remove it, or start with --demo"
        )


class DemoIssuerConflict(RuntimeError):
    """The demo issuer's code is taken by an issuer that is not demo data: the demo needs its own database."""

    def __init__(self, code: str) -> None:
        super().__init__(
            f"issuer {code} exists in this database and is not demo data; demo mode needs a database of its own"
        )


def demo_issuer_ids(connection: Connection) -> set[str]:
    """The ids of the issuers that are demo data: the flagged one, and the demo API key's."""
    flagged = connection.execute(select(DeploymentFlag.value).where(DeploymentFlag.name == DEMO_DATA)).scalars()
    keyed = connection.execute(
        select(ApiKey.issuer_id).where(ApiKey.prefix == DEMO_ISSUER_API_KEY_PREFIX)  # type: ignore[call-overload]
    ).scalars()
    return {value for value in (*flagged, *keyed) if value}


def holds_demo_data(connection: Connection) -> bool:
    """True when the demo flag is set or the published demo API key has a row."""
    flag = connection.execute(select(DeploymentFlag.name).where(DeploymentFlag.name == DEMO_DATA)).first()
    key = connection.execute(select(ApiKey.id).where(ApiKey.prefix == DEMO_ISSUER_API_KEY_PREFIX)).first()
    return flag is not None or key is not None


def require_no_demo_data(engine: Engine) -> None:
    """Raise :class:`DemoDataPresent` if the database holds demo data (start-up outside demo mode)."""
    with engine.connect() as connection:
        present = holds_demo_data(connection)
    if present:
        raise DemoDataPresent()


def open_checked_database(settings: Settings) -> tuple[Engine, Keyring, int]:
    """Open the engine and keyring after the start-up checks; also return the number of active keys.

    Refuses a database not at the newest schema revision, one holding demo data outside demo mode,
    and any active signing key that does not decrypt (a missing key stops start-up, never made anew).
    """
    engine = make_engine(settings.database_url, limits=settings.database_limits)
    try:
        require_current_schema(engine)
        if not settings.demo:
            require_no_demo_data(engine)  # before the keys: the demo issuer's are under the demo passphrase
        keyring = Keyring(engine, settings.require("key_passphrase").encode())
        return engine, keyring, keyring.check_active_keys()
    except BaseException:
        engine.dispose()
        raise


def flag_demo_data(connection: Connection, *, issuer_id: str) -> None:
    """Record, in the caller's transaction, that ``issuer_id`` is the demo issuer."""
    found = connection.execute(select(DeploymentFlag.name).where(DeploymentFlag.name == DEMO_DATA)).first()
    if found is None:
        connection.execute(
            DeploymentFlag.__table__.insert().values(name=DEMO_DATA, value=issuer_id, set_at=utcnow())  # type: ignore[attr-defined]
        )
    else:
        connection.execute(
            update(DeploymentFlag).where(DeploymentFlag.name == DEMO_DATA).values(value=issuer_id, set_at=utcnow())  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class PurgeResult:
    """What ``certseal demo purge`` removed."""

    issuers: list[str]
    certificates: int
    api_keys: int
    flagged: bool

    @property
    def removed_anything(self) -> bool:
        """False when the database held no demo data."""
        return bool(self.issuers or self.api_keys or self.flagged)


def purge_demo_data(engine: Engine) -> PurgeResult:
    """Remove, in one transaction, the demo issuers with their keys, API keys, certificates, exam data and the flag.

    With the certificates go their status events, holder-check counters and verification events, and
    with the issuers their idempotency records and daily verification counts (``verification_daily``,
    by issuer code: a real issuer given the code later starts from none). Nothing else is touched.
    """
    with begin_write(engine) as connection:
        issuer_ids = demo_issuer_ids(connection)
        flagged = connection.execute(delete(DeploymentFlag).where(DeploymentFlag.name == DEMO_DATA)).rowcount > 0  # type: ignore[arg-type]
        codes = list(connection.execute(select(Issuer.code).where(Issuer.id.in_(issuer_ids))).scalars())  # type: ignore[attr-defined]
        certificates = select(Certificate.id).where(Certificate.issuer_id.in_(issuer_ids))  # type: ignore[attr-defined]
        serials = select(Certificate.serial).where(Certificate.issuer_id.in_(issuer_ids))  # type: ignore[attr-defined]
        connection.execute(delete(StatusEvent).where(StatusEvent.certificate_id.in_(certificates)))  # type: ignore[attr-defined]
        connection.execute(delete(HolderCheckCounter).where(HolderCheckCounter.certificate_id.in_(certificates)))  # type: ignore[attr-defined]
        connection.execute(delete(VerificationEvent).where(VerificationEvent.serial.in_(serials)))  # type: ignore[union-attr]
        connection.execute(delete(VerificationDaily).where(VerificationDaily.issuer_code.in_(codes)))  # type: ignore[attr-defined]
        principals = [f"issuer:{issuer_id}" for issuer_id in issuer_ids]
        connection.execute(delete(IdempotencyRecord).where(IdempotencyRecord.principal.in_(principals)))  # type: ignore[attr-defined]
        removed_certificates = connection.execute(
            delete(Certificate).where(Certificate.issuer_id.in_(issuer_ids))  # type: ignore[attr-defined]
        ).rowcount
        removed_keys = connection.execute(
            delete(ApiKey).where(
                or_(ApiKey.issuer_id.in_(issuer_ids), ApiKey.prefix == DEMO_ISSUER_API_KEY_PREFIX)  # type: ignore[union-attr]
            )
        ).rowcount
        # The exam chain after the certificates that point into it, children before parents.
        own_points = select(ExamPoint.id).where(ExamPoint.issuer_id.in_(issuer_ids))  # type: ignore[attr-defined]
        for table in (CertificateBatch, ExamResult, ExamSession):
            connection.execute(delete(table).where(table.issuer_id.in_(issuer_ids)))  # type: ignore[attr-defined]
        connection.execute(delete(ExamPointExclusion).where(ExamPointExclusion.exam_point_id.in_(own_points)))  # type: ignore[attr-defined]
        for table in (ExamPoint, TrainingInstitution):
            connection.execute(delete(table).where(table.issuer_id.in_(issuer_ids)))  # type: ignore[attr-defined]
        connection.execute(delete(StatusListRow).where(StatusListRow.issuer_id.in_(issuer_ids)))  # type: ignore[attr-defined]
        connection.execute(delete(SigningKeyRow).where(SigningKeyRow.issuer_id.in_(issuer_ids)))  # type: ignore[attr-defined]
        connection.execute(delete(Issuer).where(Issuer.id.in_(issuer_ids)))  # type: ignore[attr-defined]
    return PurgeResult(sorted(codes), removed_certificates, removed_keys, flagged)
