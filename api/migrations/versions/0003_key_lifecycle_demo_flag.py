"""API keys with an expiry and a last-used time; the database remembers that it holds demo data.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

- ``api_keys.expires_at`` (None: never) and ``api_keys.last_used_at`` (written at most once a minute
  per key and process, off the request path).
- ``deployment_flags``: facts about the whole database. ``demo_data`` (value: the demo issuer's id)
  is set when ``certseal serve --demo`` seeds its data; outside demo mode the service and the admin
  commands refuse such a database until ``certseal demo purge``. A database seeded before this
  revision is recognised by the published demo issuer API key's row and flagged here, so the flag
  also covers data seeded by earlier versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEMO_DATA = "demo_data"
# The lookup prefix of the published demo issuer API key (api.settings.DEMO_ISSUER_API_KEY), written out
# so that this revision never changes with the code.
DEMO_ISSUER_API_KEY_PREFIX = "de0de0de0de0"


def upgrade() -> None:
    """Upgrade the schema, flagging a database that already holds the demo data."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "deployment_flags",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    now = sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True))
    op.get_bind().execute(
        sa.text(
            """
            INSERT INTO deployment_flags (name, value, set_at)
            SELECT :name, issuer_id, :now FROM api_keys WHERE prefix = :prefix AND issuer_id IS NOT NULL
            """
        ).bindparams(now, name=DEMO_DATA, prefix=DEMO_ISSUER_API_KEY_PREFIX)
    )


def downgrade() -> None:
    """Downgrade the schema (expiries, last-used times and the demo flag are dropped)."""
    op.drop_table("deployment_flags")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
