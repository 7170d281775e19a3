"""From exam to card: training institutions, exam points, sessions, results, certificate batches.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

New tables ``training_institutions``, ``exam_points``, ``exam_point_exclusions`` (教考分离: whom an exam
point may not examine), ``exam_sessions``, ``exam_results`` (never a full ID number: keyed HMAC, masked
form, birth date) and ``certificate_batches`` (background issuance jobs with a row lease).
``certificates`` gains its provenance: ``basis``, ``exam_result_id`` (unique: one certificate per passed
exam), ``exam_session_id``, ``exam_point_id``, ``supersedes_id`` and ``batch_id``; rows issued before
keep null there. Downgrade drops all of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    """Upgrade the schema."""
    op.create_table(
        "training_institutions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_training_institutions_issuer_id", "training_institutions", ["issuer_id"])
    op.create_table(
        "exam_points",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("operations", sa.JSON(), nullable=False),
        sa.Column("capacity_per_session", sa.Integer(), nullable=False),
        sa.Column("accredited_from", sa.Date(), nullable=False),
        sa.Column("accredited_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_from", sa.Date(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_exam_points_issuer_id", "exam_points", ["issuer_id"])
    op.create_table(
        "exam_point_exclusions",
        sa.Column("exam_point_id", sa.String(), nullable=False),
        sa.Column("training_institution_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["exam_point_id"], ["exam_points.id"]),
        sa.ForeignKeyConstraint(["training_institution_id"], ["training_institutions.id"]),
        sa.PrimaryKeyConstraint("exam_point_id", "training_institution_id"),
    )
    op.create_table(
        "exam_sessions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("exam_point_id", sa.String(), nullable=False),
        sa.Column("operation", sa.String(length=8), nullable=False),
        sa.Column("exam_date", sa.Date(), nullable=False),
        sa.Column("theory_exam", sa.Boolean(), nullable=False),
        sa.Column("practical_exam", sa.Boolean(), nullable=False),
        sa.Column("real_equipment", sa.Boolean(), nullable=False),
        sa.Column("proctor_ids", sa.JSON(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(["exam_point_id"], ["exam_points.id"]),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exam_sessions_issuer_id", "exam_sessions", ["issuer_id"])
    op.create_index("ix_exam_sessions_exam_point_id", "exam_sessions", ["exam_point_id"])
    op.create_table(
        "exam_results",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("holder_name", sa.String(length=64), nullable=False),
        sa.Column("masked_id", sa.String(length=8), nullable=False),
        sa.Column("id_hmac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("id_hmac_version", sa.Integer(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("theory_score", sa.Integer(), nullable=False),
        sa.Column("practical_score", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("training_institution_code", sa.String(length=32), nullable=True),
        sa.Column("training_institution_registered", sa.Boolean(), nullable=False),
        sa.Column("usable_until", sa.Date(), nullable=False),
        sa.Column("photo", sa.LargeBinary(), nullable=True),
        sa.Column("photo_type", sa.String(length=20), nullable=True),
        sa.Column("bar_override_reason", sa.String(length=500), nullable=True),
        sa.Column("bar_override_by", sa.String(length=64), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["exam_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "id_hmac", name="uq_exam_results_session_candidate"),
    )
    op.create_index("ix_exam_results_session_id", "exam_results", ["session_id"])
    op.create_index("ix_exam_results_issuer_id", "exam_results", ["issuer_id"])
    op.create_index("ix_exam_results_id_hmac", "exam_results", ["id_hmac"])
    op.create_table(
        "certificate_batches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("issuer_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("result_ids", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _created_at(),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["exam_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer_id", "idempotency_key", name="uq_certificate_batches_idempotency"),
    )
    op.create_index("ix_certificate_batches_issuer_id", "certificate_batches", ["issuer_id"])
    op.create_index("ix_certificate_batches_session_id", "certificate_batches", ["session_id"])
    op.create_index("ix_certificate_batches_status", "certificate_batches", ["status"])
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("basis", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("exam_result_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("exam_session_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("exam_point_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("supersedes_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("batch_id", sa.String(), nullable=True))
        batch.create_unique_constraint("uq_certificates_exam_result_id", ["exam_result_id"])
        batch.create_foreign_key("fk_certificates_exam_result_id", "exam_results", ["exam_result_id"], ["id"])
        batch.create_foreign_key("fk_certificates_exam_session_id", "exam_sessions", ["exam_session_id"], ["id"])
        batch.create_foreign_key("fk_certificates_exam_point_id", "exam_points", ["exam_point_id"], ["id"])
        batch.create_foreign_key("fk_certificates_supersedes_id", "certificates", ["supersedes_id"], ["id"])
        batch.create_foreign_key("fk_certificates_batch_id", "certificate_batches", ["batch_id"], ["id"])
        batch.create_index("ix_certificates_exam_session_id", ["exam_session_id"])
        batch.create_index("ix_certificates_exam_point_id", ["exam_point_id"])
        batch.create_index("ix_certificates_supersedes_id", ["supersedes_id"])
        batch.create_index("ix_certificates_batch_id", ["batch_id"])


def downgrade() -> None:
    """Downgrade the schema (exam points, sessions, results, batches and certificates' provenance are dropped)."""
    with op.batch_alter_table("certificates") as batch:
        for index in ("batch_id", "supersedes_id", "exam_point_id", "exam_session_id"):
            batch.drop_index(f"ix_certificates_{index}")
        for key in ("batch_id", "supersedes_id", "exam_point_id", "exam_session_id", "exam_result_id"):
            batch.drop_constraint(f"fk_certificates_{key}", type_="foreignkey")
        batch.drop_constraint("uq_certificates_exam_result_id", type_="unique")
        for column in ("batch_id", "supersedes_id", "exam_point_id", "exam_session_id", "exam_result_id", "basis"):
            batch.drop_column(column)
    for table in (
        "certificate_batches",
        "exam_results",
        "exam_sessions",
        "exam_point_exclusions",
        "exam_points",
        "training_institutions",
    ):
        op.drop_table(table)
