"""Demo users for local runs (``make run``): :func:`seed_demo`.

Creates (idempotently) demo patients, an admin, a clinician assigned to the patients and one
patient user, each with a fresh random password returned to the caller (which prints them;
this library only logs).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from heartline.service.security import hash_password
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo

__all__ = ["DemoCredentials", "DemoUser", "seed_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoUser:
    """One demo login (``password`` is ``None`` when the user already existed)."""

    username: str
    role: str
    password: str | None
    patient_id: str | None = None


@dataclass(frozen=True)
class DemoCredentials:
    """The demo logins and the patients they see."""

    users: tuple[DemoUser, ...]
    patient_ids: tuple[str, ...]


def seed_demo(
    session: Session,
    *,
    hasher: PasswordHasher,
    patient_ids: Sequence[str] = ("demo-100", "demo-119", "demo-208"),
    admin: str = "admin",
    clinician: str = "clinician",
    patient: str = "patient",
    password: str | None = None,
) -> DemoCredentials:
    """Create demo patients and users (admin, clinician assigned to every patient, patient user).

    Parameters
    ----------
    session : Session
        Caller's session (not committed here).
    hasher : argon2.PasswordHasher
        Password hasher (``heartline.service.security.make_password_hasher(settings)``).
    patient_ids : sequence of str
        Demo patients to register; the patient user is linked to the first.
    admin, clinician, patient : str
        Usernames.
    password : str, optional
        One password for all three (default: a fresh random one per user).

    Returns
    -------
    DemoCredentials
        Usernames with their passwords (``None`` for users that already existed).
    """
    if not patient_ids:
        raise ValueError("patient_ids must name at least one patient")
    for pid in patient_ids:
        repo.register_patient(session, patient_id=pid, display_name=f"Demo patient {pid}")
    users = []
    for username, role, pid in (
        (admin, "admin", None),
        (clinician, "clinician", None),
        (patient, "patient", patient_ids[0]),
    ):
        existing = srepo.get_user_by_username(session, username=username)
        if existing is not None:
            users.append(
                DemoUser(
                    username=username,
                    role=existing.role,
                    password=None,
                    patient_id=existing.patient_id,
                )
            )
            continue
        pw = password or secrets.token_urlsafe(12)
        srepo.create_user(
            session,
            username=username,
            password_hash=hash_password(hasher, pw),
            role=role,
            patient_id=pid,
            full_name=f"Demo {role}",
        )
        users.append(DemoUser(username=username, role=role, password=pw, patient_id=pid))
    clin = srepo.get_user_by_username(session, username=clinician)
    if clin is not None and clin.role == "clinician":
        for pid in patient_ids:
            srepo.assign_patient(session, user_id=clin.id, patient_id=pid)
    log.info("demo users ready: %s", ", ".join(u.username for u in users))
    return DemoCredentials(users=tuple(users), patient_ids=tuple(patient_ids))
