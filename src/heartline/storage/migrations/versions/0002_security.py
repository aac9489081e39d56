"""security tables: users, clinician assignments, audit log, login attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 (hand-written from heartline.storage.security_tables)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'clinician', 'patient')", name=op.f("ck_users_role_valid")
        ),
        sa.CheckConstraint(
            "(role = 'patient') = (patient_id IS NOT NULL)",
            name=op.f("ck_users_patient_link_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_users_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_index(op.f("ix_users_patient_id"), "users", ["patient_id"], unique=False)
    op.create_table(
        "clinician_assignments",
        sa.Column("user_id", _BIGID, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_clinician_assignments_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_clinician_assignments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "patient_id", name=op.f("pk_clinician_assignments")),
    )
    op.create_index(
        op.f("ix_clinician_assignments_patient_id"),
        "clinician_assignments",
        ["patient_id"],
        unique=False,
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("path", sa.String(length=512), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor_time", "audit_log", ["actor", "time"], unique=False)
    op.create_index("ix_audit_log_patient_time", "audit_log", ["patient_id", "time"], unique=False)
    op.create_table(
        "login_attempts",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(
        "ix_login_attempts_user_ip_time",
        "login_attempts",
        ["username", "client_ip", "time"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_login_attempts_user_ip_time", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_audit_log_patient_time", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_time", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_clinician_assignments_patient_id"), table_name="clinician_assignments")
    op.drop_table("clinician_assignments")
    op.drop_index(op.f("ix_users_patient_id"), table_name="users")
    op.drop_table("users")
