"""An issuer's service phone, shown to a site manager beside a refused certificate.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``issuers.service_phone``: the number a site manager calls about a refused certificate (null: none
given); set with ``PATCH /v1/issuers/{code}`` or ``certseal issuer update``. Downgrade drops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade the schema."""
    with op.batch_alter_table("issuers") as batch:
        batch.add_column(sa.Column("service_phone", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Downgrade the schema (service phones are dropped)."""
    with op.batch_alter_table("issuers") as batch:
        batch.drop_column("service_phone")
