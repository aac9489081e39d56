"""adaptation: beat reviews, per-patient adapted models, the model version of every beat

Revision ID: 0008_adaptation
Revises: 0006_station
Create Date: 2026-12-06 (hand-written from heartline.storage.adaptation_tables)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_adaptation"
down_revision: str | None = "0006_station"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "beat_reviews",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "beat_id",
            _BigId,
            sa.ForeignKey("beats.id", ondelete="CASCADE", name="fk_beat_reviews_beat_id_beats"),
            nullable=False,
        ),
        sa.Column(
            "patient_id",
            sa.String(64),
            sa.ForeignKey("patients.id", name="fk_beat_reviews_patient_id_patients"),
            nullable=False,
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("old_label", sa.String(8), nullable=True),
        sa.Column("new_label", sa.String(8), nullable=False),
        sa.Column("cluster", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "new_label IN ('N', 'S', 'V', 'F', 'Q')", name="ck_beat_reviews_label_valid"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_beat_reviews"),
    )
    op.create_index("ix_beat_reviews_patient_time", "beat_reviews", ["patient_id", "time"])
    op.create_index("ix_beat_reviews_beat", "beat_reviews", ["beat_id"])
    op.create_table(
        "patient_models",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "patient_id",
            sa.String(64),
            sa.ForeignKey("patients.id", name="fk_patient_models_patient_id_patients"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("base_sha256", sa.String(64), nullable=False),
        sa.Column("artefact", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient_models"),
        sa.UniqueConstraint("patient_id", "version", name="uq_patient_models_patient_id_version"),
    )
    op.create_index("ix_patient_models_patient_active", "patient_models", ["patient_id", "active"])
    op.add_column("beats", sa.Column("model_version", sa.String(96), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("beats") as batch:
        batch.drop_column("model_version")
    op.drop_index("ix_patient_models_patient_active", table_name="patient_models")
    op.drop_table("patient_models")
    op.drop_index("ix_beat_reviews_beat", table_name="beat_reviews")
    op.drop_index("ix_beat_reviews_patient_time", table_name="beat_reviews")
    op.drop_table("beat_reviews")
