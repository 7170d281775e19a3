"""Alembic environment for certseal's schema; configured in code by :func:`api.migrate.alembic_config`.

Online migrations run on the connection handed over in ``config.attributes["connection"]`` (what
:mod:`api.migrate` does, inside its lock and transaction); without one they open the URL in the
``sqlalchemy.url`` option. Offline (``--sql``) mode renders the SQL for the URL's dialect.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import String, create_engine, pool
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from api import models  # noqa: F401 -- registers the tables on SQLModel.metadata

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_: str, item: Any, autogen_context: Any) -> str | bool:
    """Render column types as plain SQLAlchemy types, so a revision never imports sqlmodel or the models.

    SQLModel's ``AutoString`` becomes ``sa.String`` and a ``TypeDecorator`` (``UtcDateTime``) its
    implementation: a revision must stay as it was written when the models change later.
    """
    if type_ != "type":
        return False
    if isinstance(item, AutoString):
        return f"sa.{String(length=item.length)!r}"
    if isinstance(item, TypeDecorator):
        return f"sa.{item.impl_instance!r}"
    return False


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # SQLite alters a table by copying it: autogenerate writes ALTERs as batch operations, which
        # copy on SQLite and run as plain ALTER TABLE on PostgreSQL, whichever database it compared.
        "render_as_batch": True,
        "compare_type": True,
        "render_item": render_item,
    }


def run_migrations_offline() -> None:
    """Emit the migration SQL for the configured URL without connecting."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no sqlalchemy.url for offline migrations")
    context.configure(url=url, literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or open one to the configured URL."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("give config.attributes['connection'] or the sqlalchemy.url option")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as fresh:
            _run(fresh)
            fresh.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
