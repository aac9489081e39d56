"""Helpers shared by the routers: time windows and the authorise-then-audit step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request, status
from sqlalchemy.orm import Session

from heartline.service.security import audit_read, authorize_patient
from heartline.storage.security_tables import User
from heartline.storage.tables import Patient


def not_found(what: str) -> HTTPException:
    """HTTP 404."""
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


def unprocessable(
    msg: str, *, loc: tuple[str, ...] = ("query",), type_: str = "value_error"
) -> HTTPException:
    """HTTP 422 shaped like FastAPI's own validation errors (``detail`` a list of errors)."""
    return HTTPException(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"type": type_, "loc": list(loc), "msg": msg}],
    )


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    *,
    default_s: float,
    max_s: float,
    default_end: datetime | None = None,
) -> tuple[datetime, datetime]:
    """``[start, end)`` with defaults (``end``: ``default_end`` or now; ``start``: ``end - default_s``).

    Raises 422 when ``end <= start`` or the window is longer than ``max_s``.
    """
    if end is None:
        end = default_end if default_end is not None else datetime.now(UTC)
        if start is not None and start >= end:
            end = start + timedelta(seconds=default_s)
    if start is None:
        start = end - timedelta(seconds=default_s)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise unprocessable("end must be after start", loc=("query", "end"))
    if (end - start).total_seconds() > max_s:
        raise unprocessable(f"window longer than {max_s:g} s", loc=("query", "start"))
    return start, end


def access_patient(
    session: Session, *, user: User, request: Request, patient_id: str, resource: str
) -> Patient:
    """Authorise ``user`` on ``patient_id`` (403), find it (404), then write the audit row.

    Authorisation comes first so that a foreign patient id reveals nothing (403 whether or not
    it exists); only those allowed (admins, or the patient's own people) can get a 404.
    """
    authorize_patient(session, user=user, patient_id=patient_id)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise not_found(f"patient {patient_id!r}")
    audit_read(session, user=user, request=request, resource=resource, patient_id=patient_id)
    return patient
