"""One active signing key per issuer, and holder-check counters per certificate and client.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

- ``uq_signing_keys_one_active_per_issuer``: a partial unique index, so no interleaving of rotations
  can leave an issuer with two active keys. Databases that already have several (concurrent
  rotations before this revision could leave them) keep the newest active and retire the others
  first, as a rotation would have.
- ``holder_check_counters`` replaces ``holder_check_failures`` (one row per wrong guess, counted by a
  separate query): counters per certificate, client and window, moved by one conditional upsert.
  The old rows are only the last hour's lockouts and are not carried over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_ACTIVE = "uq_signing_keys_one_active_per_issuer"
ACTIVE = sa.text("state = 'active'")


def upgrade() -> None:
    """Upgrade the schema."""
    now = sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True))
    op.get_bind().execute(
        sa.text(
            """
            UPDATE signing_keys
            SET state = 'retired', retired_at = :now, not_after = COALESCE(not_after, :now)
            WHERE state = 'active' AND EXISTS (
                SELECT 1 FROM signing_keys AS newer
                WHERE newer.issuer_id = signing_keys.issuer_id AND newer.state = 'active'
                  AND (newer.not_before > signing_keys.not_before
                       OR (newer.not_before = signing_keys.not_before AND newer.kid > signing_keys.kid))
            )
            """
        ).bindparams(now)
    )
    op.create_index(
        ONE_ACTIVE, "signing_keys", ["issuer_id"], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE
    )
    op.create_table(
        "holder_check_counters",
        sa.Column("certificate_id", sa.String(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"]),
        sa.PrimaryKeyConstraint("certificate_id", "client", "window_start"),
    )
    op.create_index(op.f("ix_holder_check_counters_expires_at"), "holder_check_counters", ["expires_at"], unique=False)
    op.drop_index(op.f("ix_holder_check_failures_certificate_id"), table_name="holder_check_failures")
    op.drop_index(op.f("ix_holder_check_failures_at"), table_name="holder_check_failures")
    op.drop_table("holder_check_failures")


def downgrade() -> None:
    """Downgrade the schema (the counters are dropped; the old table starts empty)."""
    op.create_table(
        "holder_check_failures",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("certificate_id", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_holder_check_failures_at"), "holder_check_failures", ["at"], unique=False)
    op.create_index(
        op.f("ix_holder_check_failures_certificate_id"), "holder_check_failures", ["certificate_id"], unique=False
    )
    op.drop_index(op.f("ix_holder_check_counters_expires_at"), table_name="holder_check_counters")
    op.drop_table("holder_check_counters")
    op.drop_index(ONE_ACTIVE, table_name="signing_keys", sqlite_where=ACTIVE, postgresql_where=ACTIVE)
