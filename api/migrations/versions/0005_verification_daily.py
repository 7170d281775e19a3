"""Daily verification counts, the aggregate that pruned verification events leave behind; an index to prune by.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``verification_daily``: verifications per China Standard Time day, issuer code, decision and reasons
(the event's comma-separated reason list), with their count. ``certseal db prune`` and the periodic
task of ``certseal serve`` count verification events older than the retention period in here and
delete them in the same transaction (``api/services/retention.py``). Downgrade drops the counts.

``ix_idempotency_records_created_at``: idempotency records are pruned by age, in batches oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade the schema."""
    op.create_table(
        "verification_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("issuer_code", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.String(length=400), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "issuer_code", "decision", "reasons"),
    )
    op.create_index(op.f("ix_idempotency_records_created_at"), "idempotency_records", ["created_at"], unique=False)


def downgrade() -> None:
    """Downgrade the schema (the daily counts are dropped)."""
    op.drop_index(op.f("ix_idempotency_records_created_at"), table_name="idempotency_records")
    op.drop_table("verification_daily")
