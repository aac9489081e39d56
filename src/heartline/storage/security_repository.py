"""Keyword-only repository functions of the security tables (users, assignments, audit, logins).

Like :mod:`heartline.storage.repository`, every function takes the caller's session and **does
not commit**. Hashing is not done here: callers pass hashes (``heartline.service.security``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from heartline.storage.repository import StorageError
from heartline.storage.security_tables import (
    ROLES,
    AuditLog,
    ClinicianAssignment,
    LoginAttempt,
    User,
    new_token_key,
)
from heartline.storage.tables import Device, Patient, utcnow

__all__ = [
    "DuplicateUserError",
    "assign_patient",
    "assigned_patient_ids",
    "audit_entries",
    "count_login_failures",
    "create_user",
    "get_user",
    "get_user_by_username",
    "is_assigned",
    "list_users",
    "patients_visible",
    "record_audit",
    "record_login_attempt",
    "set_device_credential",
    "unassign_patient",
]


class DuplicateUserError(StorageError):
    """A user with that username already exists."""


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------------------- users
def create_user(
    session: Session,
    *,
    username: str,
    password_hash: str,
    role: str,
    patient_id: str | None = None,
    full_name: str | None = None,
) -> User:
    """Create a user.

    Raises
    ------
    ValueError
        ``role`` is unknown, or ``patient_id`` is given for a non-patient / missing for a patient.
    StorageError
        ``patient_id`` is not a registered patient.
    DuplicateUserError
        ``username`` is taken.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not username or len(username) > 64:
        raise ValueError(f"username must be 1..64 characters, got {username!r}")
    if (role == "patient") != (patient_id is not None):
        raise ValueError("patient_id is required for role 'patient' and only for it")
    if patient_id is not None and session.get(Patient, patient_id) is None:
        raise StorageError(f"patient_id {patient_id!r} is not registered")
    if get_user_by_username(session, username=username) is not None:
        raise DuplicateUserError(f"username {username!r} is taken")
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        patient_id=patient_id,
        full_name=full_name,
        is_active=True,
        token_key=new_token_key(),
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, *, user_id: int) -> User | None:
    """The user with ``user_id`` or ``None``."""
    return session.get(User, user_id)


def get_user_by_username(session: Session, *, username: str) -> User | None:
    """The user named ``username`` or ``None``."""
    return session.scalars(select(User).where(User.username == username)).first()


def list_users(session: Session, *, role: str | None = None) -> list[User]:
    """All users (optionally of one role), by id."""
    stmt = select(User).order_by(User.id)
    if role is not None:
        stmt = stmt.where(User.role == role)
    return list(session.scalars(stmt))


# ----------------------------------------------------------------------------------- assignments
def assign_patient(session: Session, *, user_id: int, patient_id: str) -> bool:
    """Let clinician ``user_id`` see ``patient_id``; ``False`` when already assigned.

    Raises
    ------
    StorageError
        The user does not exist or is not a clinician, or the patient is not registered.
    """
    user = session.get(User, user_id)
    if user is None or user.role != "clinician":
        raise StorageError(f"user {user_id} is not a clinician")
    if session.get(Patient, patient_id) is None:
        raise StorageError(f"patient_id {patient_id!r} is not registered")
    if session.get(ClinicianAssignment, (user_id, patient_id)) is not None:
        return False
    session.add(ClinicianAssignment(user_id=user_id, patient_id=patient_id))
    session.flush()
    return True


def unassign_patient(session: Session, *, user_id: int, patient_id: str) -> bool:
    """Remove an assignment; ``False`` when there was none."""
    result = session.execute(
        delete(ClinicianAssignment).where(
            ClinicianAssignment.user_id == user_id, ClinicianAssignment.patient_id == patient_id
        )
    )
    return bool(result.rowcount)


def is_assigned(session: Session, *, user_id: int, patient_id: str) -> bool:
    """Whether clinician ``user_id`` is assigned ``patient_id``."""
    return session.get(ClinicianAssignment, (user_id, patient_id)) is not None


def assigned_patient_ids(session: Session, *, user_id: int) -> list[str]:
    """Patient ids assigned to clinician ``user_id``, sorted."""
    stmt = (
        select(ClinicianAssignment.patient_id)
        .where(ClinicianAssignment.user_id == user_id)
        .order_by(ClinicianAssignment.patient_id)
    )
    return list(session.scalars(stmt))


# --------------------------------------------------------------------------------------- devices
def set_device_credential(session: Session, *, device_id: str, credential_hash: str) -> Device:
    """Replace a device's credential hash (rotation invalidates the previous secret).

    Raises
    ------
    StorageError
        The device is not registered.
    """
    device = session.get(Device, device_id)
    if device is None:
        raise StorageError(f"device {device_id!r} is not registered")
    device.credential_hash = credential_hash
    session.flush()
    return device


# ----------------------------------------------------------------------------------------- audit
def record_audit(
    session: Session,
    *,
    actor: str,
    actor_role: str,
    action: str,
    resource: str,
    patient_id: str | None,
    path: str | None = None,
    client_ip: str | None = None,
    at: datetime | None = None,
) -> AuditLog:
    """Append one audit row (who, what, when, which patient)."""
    row = AuditLog(
        time=_aware("at", at) if at is not None else utcnow(),
        actor=actor[:64],
        actor_role=actor_role[:16],
        action=action[:16],
        resource=resource[:64],
        patient_id=patient_id[:64] if patient_id else None,
        path=path[:512] if path else None,
        client_ip=client_ip[:64] if client_ip else None,
    )
    session.add(row)
    session.flush()
    return row


def audit_entries(
    session: Session,
    *,
    patient_id: str | None = None,
    actor: str | None = None,
    limit: int = 1000,
) -> list[AuditLog]:
    """Audit rows, newest first (optionally of one patient and/or one actor)."""
    stmt = select(AuditLog).order_by(AuditLog.time.desc(), AuditLog.id.desc()).limit(limit)
    if patient_id is not None:
        stmt = stmt.where(AuditLog.patient_id == patient_id)
    if actor is not None:
        stmt = stmt.where(AuditLog.actor == actor)
    return list(session.scalars(stmt))


# ---------------------------------------------------------------------------------------- logins
def record_login_attempt(
    session: Session, *, username: str, client_ip: str, success: bool, at: datetime | None = None
) -> LoginAttempt:
    """Append one login attempt."""
    row = LoginAttempt(
        time=_aware("at", at) if at is not None else utcnow(),
        username=username[:64],
        client_ip=client_ip[:64],
        success=success,
    )
    session.add(row)
    session.flush()
    return row


def count_login_failures(
    session: Session,
    *,
    since: datetime,
    username: str | None = None,
    client_ip: str | None = None,
) -> int:
    """Failed attempts at or after ``since``: of ``username`` and/or from ``client_ip`` when
    given, over all usernames and addresses when not."""
    stmt = select(func.count(LoginAttempt.id)).where(
        LoginAttempt.success.is_(False),
        LoginAttempt.time >= _aware("since", since),
    )
    if username is not None:
        stmt = stmt.where(LoginAttempt.username == username[:64])
    if client_ip is not None:
        stmt = stmt.where(LoginAttempt.client_ip == client_ip[:64])
    return int(session.scalar(stmt) or 0)


def patients_visible(session: Session, *, user: User) -> Sequence[Patient]:
    """Patients ``user`` may see: all (admin), assigned ones (clinician), itself (patient)."""
    stmt = select(Patient).order_by(Patient.id)
    if user.role == "clinician":
        stmt = stmt.join(ClinicianAssignment, ClinicianAssignment.patient_id == Patient.id).where(
            ClinicianAssignment.user_id == user.id
        )
    elif user.role == "patient":
        stmt = stmt.where(Patient.id == user.patient_id)
    return list(session.scalars(stmt))
