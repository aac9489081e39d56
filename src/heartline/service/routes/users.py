"""Users (admin only): create clinicians/patients/admins, assign patients, read the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from heartline.service.deps import CurrentUser, HasherDep, SessionDep
from heartline.service.routes._common import PatientIdPath, not_found
from heartline.service.schemas import AuditEntryPublic, UserCreate, UserPublic
from heartline.service.security import hash_password, require_role
from heartline.storage import security_repository as srepo
from heartline.storage.tables import Patient

router = APIRouter(prefix="/users", tags=["users"])
audit_router = APIRouter(prefix="/audit", tags=["audit"])
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "no such patient (patient_id)"},
        409: {"description": "username taken"},
    },
)
def create_user(
    body: UserCreate, user: CurrentUser, session: SessionDep, hasher: HasherDep
) -> UserPublic:
    """Create a user (admin only)."""
    require_role(user, "admin")
    if body.patient_id is not None and session.get(Patient, body.patient_id) is None:
        raise not_found(f"patient {body.patient_id!r}")
    if srepo.get_user_by_username(session, username=body.username) is not None:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="username taken")
    created = srepo.create_user(
        session,
        username=body.username,
        password_hash=hash_password(hasher, body.password),
        role=body.role,
        patient_id=body.patient_id,
        full_name=body.full_name,
    )
    return UserPublic.model_validate(created)


@router.get("", response_model=list[UserPublic])
def list_users(user: CurrentUser, session: SessionDep) -> list[UserPublic]:
    """All users (admin only)."""
    require_role(user, "admin")
    return [UserPublic.model_validate(u) for u in srepo.list_users(session)]


@router.put(
    "/{user_id}/patients/{patient_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"description": "no such user or patient"},
        409: {"description": "user is not a clinician"},
    },
)
def assign_patient(
    user_id: UserId, patient_id: PatientIdPath, user: CurrentUser, session: SessionDep
) -> Response:
    """Assign a patient to a clinician (admin only; idempotent)."""
    require_role(user, "admin")
    target = srepo.get_user(session, user_id=user_id)
    if target is None:
        raise not_found(f"user {user_id}")
    if session.get(Patient, patient_id) is None:
        raise not_found(f"patient {patient_id!r}")
    if target.role != "clinician":
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail="only clinicians are assigned patients"
        )
    srepo.assign_patient(session, user_id=user_id, patient_id=patient_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{user_id}/patients/{patient_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such assignment"}},
)
def unassign_patient(
    user_id: UserId, patient_id: PatientIdPath, user: CurrentUser, session: SessionDep
) -> Response:
    """Remove a clinician's assignment (admin only)."""
    require_role(user, "admin")
    if not srepo.unassign_patient(session, user_id=user_id, patient_id=patient_id):
        raise not_found("assignment")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{user_id}/patients",
    response_model=list[str],
    responses={
        403: {"description": "not an admin or this clinician"},
        404: {"description": "no such user"},
    },
)
def list_assignments(user_id: UserId, user: CurrentUser, session: SessionDep) -> list[str]:
    """Patient ids assigned to a clinician (admin, or the clinician themself)."""
    if user.role != "admin" and user.id != user_id:
        require_role(user, "admin")
    if srepo.get_user(session, user_id=user_id) is None:
        raise not_found(f"user {user_id}")
    return srepo.assigned_patient_ids(session, user_id=user_id)


@audit_router.get("", response_model=list[AuditEntryPublic])
def read_audit(
    user: CurrentUser,
    session: SessionDep,
    patient_id: str | None = None,
    actor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[AuditEntryPublic]:
    """Audit rows, newest first (admin only)."""
    require_role(user, "admin")
    rows = srepo.audit_entries(session, patient_id=patient_id, actor=actor, limit=limit)
    return [AuditEntryPublic.model_validate(r) for r in rows]
