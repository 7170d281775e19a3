"""Schema migrations: Alembic owns certseal's tables, on SQLite and PostgreSQL alike.

The Alembic environment lives in the package (``api/migrations``) and is configured here in code, so
no ``alembic.ini`` is needed at run time and an installed wheel migrates as well as a checkout.
Nothing creates tables at start-up any more: the service and the admin commands call
:func:`require_current_schema` and refuse a database that is not at the newest revision; ``certseal
db upgrade`` (:func:`upgrade`) brings it there.

A database made before migrations existed (certseal's tables, no ``alembic_version``) has the schema
of revision ``0001``: :func:`upgrade` stamps it so and carries on, keeping its data.

An upgrade or downgrade runs in one transaction. On PostgreSQL it first takes a transaction-level
advisory lock, so replicas starting ``certseal db upgrade`` at once migrate one after the other (the
later ones find the database at head and do nothing). On SQLite the transaction takes the write
lock up front, and foreign keys are switched off for its duration so that batch operations can copy
a table that others refer to; ``PRAGMA foreign_key_check`` must come back empty before it commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from .db import mark_writer

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"
# A table every certseal database has had since the first release: its presence without an
# ``alembic_version`` table marks a database made by ``create_all`` before migrations.
LEGACY_MARKER_TABLE = "issuers"
# pg_advisory_xact_lock key: "certseal" in ASCII, as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"certseal", "big", signed=True)
# PostgreSQL limits for the migration transaction: no statement or idle timeout (a revision may rewrite a
# large table, or transform rows in Python) but a bounded wait for the advisory lock and for table locks
# held by running queries.
MIGRATION_LOCK_TIMEOUT = "60s"
UPGRADE_COMMAND = "certseal db upgrade"


class SchemaNotCurrent(RuntimeError):
    """The database is not at this certseal's newest revision; ``certseal db upgrade`` fixes that.

    ``current`` is the database's revision (None: no ``alembic_version``), ``head`` the code's newest,
    ``legacy`` whether the database was made before migrations, ``unknown`` whether its revision is
    not one this code knows (made by a newer certseal).
    """

    def __init__(self, *, current: str | None, head: str, legacy: bool = False, unknown: bool = False) -> None:
        self.current, self.head, self.legacy, self.unknown = current, head, legacy, unknown
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: where the database is, where it should be, and what to run."""
        if self.unknown:
            return (
                f"the database schema is at revision {self.current}, which this certseal does not know "
                f"(head {self.head}); was it migrated by a newer version? Run that version, or restore a "
                f"database this one knows and run `{UPGRADE_COMMAND}`"
            )
        if self.legacy:
            where = "was created before schema migrations (no revision recorded)"
        elif self.current is None:
            where = "is empty (no certseal schema)"
        else:
            where = f"is at revision {self.current}, behind head {self.head}"
        return f"the database schema {where}: run `{UPGRADE_COMMAND}` (with --database or CERTSEAL_DATABASE_URL)"


@dataclass(frozen=True)
class MigrationResult:
    """What an upgrade or downgrade did: the revision before and after, and whether a legacy database was stamped.

    After a stamp, ``before`` is the baseline revision the database was stamped at.
    """

    before: str | None
    after: str | None
    stamped_legacy: bool = False


def alembic_config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic configuration for ``api/migrations``, built in code (no ``alembic.ini``).

    ``connection`` is what the migrations run on (``config.attributes["connection"]``); without one,
    env.py connects to ``url``. ``%`` is escaped, because Alembic's options are interpolated.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows (the one the models describe)."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
    return head


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _is_legacy(connection: Connection) -> bool:
    """Certseal's tables without an ``alembic_version`` table: made by ``create_all`` before migrations."""
    inspector = inspect(connection)
    return inspector.has_table(LEGACY_MARKER_TABLE) and not inspector.has_table("alembic_version")


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has none (empty, or made before migrations)."""
    with engine.connect() as connection:
        return _revision_of(connection)


def require_current_schema(engine: Engine) -> None:
    """Return if the database is at :func:`head_revision`; raise :class:`SchemaNotCurrent` otherwise.

    Start-up calls this instead of creating tables, so a database is only ever changed by
    ``certseal db upgrade`` (or ``serve --demo``, which upgrades its own SQLite file).
    """
    head = head_revision()
    with engine.connect() as connection:
        current = _revision_of(connection)
        if current == head:
            return
        legacy = current is None and _is_legacy(connection)
    unknown = False
    if current is not None:
        try:
            unknown = _script().get_revision(current) is None
        except CommandError:
            unknown = True
    raise SchemaNotCurrent(current=current, head=head, legacy=legacy, unknown=unknown)


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction, holding the migration lock (see the module docstring)."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        # SQLite: the write lock from BEGIN on (engines from api.db.make_engine honour this option).
        mark_writer(connection)
        raw = connection.connection.driver_connection
        if sqlite and raw is not None:
            # Only possible outside a transaction, so on the DB-API connection before SQLAlchemy begins one.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SET LOCAL statement_timeout = 0"))
                    connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
                    connection.execute(text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        tables = sorted({str(row[0]) for row in broken})
                        raise RuntimeError(f"migration left foreign keys broken in {', '.join(tables)}; rolled back")
        finally:
            if sqlite and raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys=ON")
                except sqlite3.Error:
                    connection.invalidate()  # never back into the pool with foreign keys off


def upgrade(engine: Engine, *, revision: str = "head") -> MigrationResult:
    """Upgrade the database to ``revision`` (default: the newest), in one locked transaction.

    A database made before migrations is stamped at the baseline revision first, keeping its data.
    Upgrading a database already at ``revision`` changes nothing.
    """
    with _migration_transaction(engine) as connection:
        config = alembic_config(connection=connection)
        stamped = _is_legacy(connection)
        if stamped:
            command.stamp(config, BASELINE_REVISION)
        before = _revision_of(connection)
        command.upgrade(config, revision)
        after = _revision_of(connection)
    return MigrationResult(before, after, stamped)


def downgrade(engine: Engine, *, revision: str) -> MigrationResult:
    """Downgrade the database to ``revision``: an id, ``base`` (no tables), or relative as ``-1``."""
    with _migration_transaction(engine) as connection:
        config = alembic_config(connection=connection)
        before = _revision_of(connection)
        command.downgrade(config, revision)
        after = _revision_of(connection)
    return MigrationResult(before, after)
