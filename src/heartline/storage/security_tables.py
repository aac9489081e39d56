"""Security tables of the service: users, clinician assignments, audit log, login attempts.

They live on the same :class:`~heartline.storage.tables.Base` (and naming convention) as the
live-pipeline tables and are created by the alembic revision ``0002_security``. Device
credentials need no table of their own: :attr:`heartline.storage.tables.Device.credential_hash`
holds the hash of each device's secret.

Roles are ``admin`` (manages users, patients, devices), ``clinician`` (sees the patients assigned
to them) and ``patient`` (sees their own record, :attr:`User.patient_id`).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from heartline.storage.tables import Base, utcnow

__all__ = ["ROLES", "AuditLog", "ClinicianAssignment", "LoginAttempt", "User", "new_token_key"]

#: Every user role.
ROLES: tuple[str, ...] = ("admin", "clinician", "patient")

# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


def new_token_key() -> str:
    """A fresh random per-user token key (128 bits, 32 hex characters)."""
    return secrets.token_hex(16)


class User(Base):
    """A person who signs in (password hash only: argon2id, see ``heartline.service.security``).

    ``token_key`` is a random value drawn when the user is created and carried by each of their
    access tokens (claim ``uid``); a token is accepted only while it matches. A token therefore
    never works for another user who later gets the same numeric id (SQLite reuses the ids of
    deleted rows), and replacing the key revokes every token of the user at once.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'clinician', 'patient')", name="role_valid"),
        CheckConstraint("(role = 'patient') = (patient_id IS NOT NULL)", name="patient_link_valid"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), index=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Nullable only so the column could be added to existing rows (revision 0005 fills them).
    token_key: Mapped[str | None] = mapped_column(String(32), default=new_token_key)


class ClinicianAssignment(Base):
    """Clinician ``user_id`` may see patient ``patient_id``."""

    __tablename__ = "clinician_assignments"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """One access to patient data: who (``actor``/``actor_role``), what, when, which patient.

    ``patient_id`` is a plain string (no foreign key) so that the trail outlives any record.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_patient_time", "patient_id", "time"),
        Index("ix_audit_log_actor_time", "actor", "time"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    resource: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(512))
    client_ip: Mapped[str | None] = mapped_column(String(64))


class LoginAttempt(Base):
    """One password login attempt (rate limits per username and address, per address, global)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_user_ip_time", "username", "client_ip", "time"),
        Index("ix_login_attempts_ip_time", "client_ip", "time"),
        Index("ix_login_attempts_time", "time"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean)
