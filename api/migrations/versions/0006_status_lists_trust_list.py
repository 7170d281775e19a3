"""Status lists and the trust list: key uses and lifecycle, random status indexes, signed lists.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

- ``signing_keys.use``: ``certificate`` (every existing key) or ``status_list``; one active key per
  issuer *and use* (the partial unique index is rebuilt on both columns).
- A revoked key is now a *compromised* key (``state`` widened to 12 characters): state ``revoked``
  becomes ``compromised``, ``revoked_at`` becomes ``compromised_at`` and ``revocation_reason``
  becomes ``compromise_reason``. Online, only certificates registered at or after ``compromised_at``
  are refused; the earlier ones are listed for reissue.
- ``issuers.next_status_index`` becomes ``random_indexes_drawn``, 0 for everyone: indexes issued so
  far stay where they are (sequential: list 0, and further lists for an issuer past 131,072); new
  ones are drawn at random from ``first_random_list`` (the list after the last sequential one) on,
  and the count of draws decides how many lists are open.
- ``certificates``: one status index per issuer (unique); a partial index over the certificates
  that are not valid, which is all a status list is built from; and (kid, valid_until), so a retired
  key's ``verify_until`` (its certificates' last valid day) is one index lookup.
- ``status_lists``: each list's compressed array and its newest signed token.
- ``trust_lists``: every trust list published, by sequence number.

Downgrade turns compromised keys back into revoked ones and drops status-list keys, lists and trust lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade the schema."""
    op.drop_index("uq_signing_keys_one_active_per_issuer", table_name="signing_keys")
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("use", sa.String(length=12), nullable=False, server_default="certificate"))
        batch.alter_column("revoked_at", new_column_name="compromised_at")
        batch.alter_column("revocation_reason", new_column_name="compromise_reason")
        batch.alter_column("state", type_=sa.String(length=12), existing_type=sa.String(length=10))
    op.execute("UPDATE signing_keys SET state = 'compromised' WHERE state = 'revoked'")
    op.create_index(
        "uq_signing_keys_one_active_per_issuer_use",
        "signing_keys",
        ["issuer_id", "use"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    with op.batch_alter_table("issuers") as batch:
        batch.alter_column("next_status_index", new_column_name="random_indexes_drawn")
        batch.add_column(sa.Column("first_random_list", sa.Integer(), nullable=False, server_default="1"))
    # 131072 entries per list (crypto.LIST_SIZE), written out so that this revision never changes.
    op.execute(
        "UPDATE issuers SET random_indexes_drawn = 0, first_random_list = 1 + COALESCE("
        "(SELECT MAX(status_index) FROM certificates WHERE certificates.issuer_id = issuers.id), 0) / 131072"
    )
    op.create_index("uq_certificates_issuer_status_index", "certificates", ["issuer_id", "status_index"], unique=True)
    op.create_index("ix_certificates_kid_valid_until", "certificates", ["kid", "valid_until"])
    op.create_index(
        "ix_certificates_not_valid",
        "certificates",
        ["issuer_id", "status_index", "status"],
        sqlite_where=sa.text("status <> 'valid'"),
        postgresql_where=sa.text("status <> 'valid'"),
    )
    op.create_table(
        "status_lists",
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("lst", sa.LargeBinary(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("iat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.PrimaryKeyConstraint("issuer_id", "number"),
    )
    op.create_table(
        "trust_lists",
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("iat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )


def downgrade() -> None:
    """Downgrade the schema (status-list keys, status lists and trust lists are dropped)."""
    op.drop_table("trust_lists")
    op.drop_table("status_lists")
    op.drop_index("ix_certificates_not_valid", table_name="certificates")
    op.drop_index("ix_certificates_kid_valid_until", table_name="certificates")
    op.drop_index("uq_certificates_issuer_status_index", table_name="certificates")
    op.execute("UPDATE certificates SET status = 'revoked' WHERE status = 'superseded'")
    # Sequential allocation resumes after the highest index any certificate of the issuer holds.
    op.execute(
        "UPDATE issuers SET random_indexes_drawn = COALESCE("
        "(SELECT MAX(status_index) + 1 FROM certificates WHERE certificates.issuer_id = issuers.id), 0)"
    )
    with op.batch_alter_table("issuers") as batch:
        batch.drop_column("first_random_list")
        batch.alter_column("random_indexes_drawn", new_column_name="next_status_index")
    op.drop_index("uq_signing_keys_one_active_per_issuer_use", table_name="signing_keys")
    op.execute("DELETE FROM signing_keys WHERE use = 'status_list'")
    op.execute("UPDATE signing_keys SET state = 'revoked' WHERE state = 'compromised'")
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("compromise_reason", new_column_name="revocation_reason")
        batch.alter_column("compromised_at", new_column_name="revoked_at")
        batch.drop_column("use")
        batch.alter_column("state", type_=sa.String(length=10), existing_type=sa.String(length=12))
    op.create_index(
        "uq_signing_keys_one_active_per_issuer",
        "signing_keys",
        ["issuer_id"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
