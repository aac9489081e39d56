"""Helpers shared by the routers: time windows and the authorise-then-audit step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import HTTPException, Path, Query, Request, status
from sqlalchemy.orm import Session

from heartline.ingestion.payloads import DEVICE_ID_PATTERN
from heartline.service.security import audit_read, authorize_patient
from heartline.storage.security_tables import User
from heartline.storage.tables import Patient

#: Patient ids as :class:`heartline.service.schemas.PatientCreate` accepts them.
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: Path and query parameters naming a patient or a device: an id that could never have been
#: registered (control characters, spaces, 10 kB of text) is a 422 before anything is looked up.
PatientIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=PATIENT_ID_PATTERN, description="patient id")
]
PatientIdQuery = Annotated[
    str, Query(min_length=1, max_length=64, pattern=PATIENT_ID_PATTERN, description="patient id")
]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="device id")]


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


#: Earliest and latest instants a time parameter may name (outside: 422, never an overflow).
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def check_time(value: datetime, *, name: str) -> datetime:
    """``value`` in UTC; 422 naming ``name`` when it lies outside ``[EARLIEST_TIME, LATEST_TIME)``.

    Dates such as ``9999-12-31T23:59:59Z`` or ``0001-01-01`` are valid ISO 8601 but leave no room
    for window arithmetic (``datetime`` overflows), so they are refused up front.
    """
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST_TIME <= utc < LATEST_TIME:
        raise unprocessable(
            f"{name}={value.isoformat()} is out of range: times must lie in "
            f"[{EARLIEST_TIME.date()}, {LATEST_TIME.date()})",
            loc=("query", name),
        )
    return utc


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    *,
    default_s: float,
    max_s: float,
    default_end: datetime | None = None,
) -> tuple[datetime, datetime]:
    """``[start, end)`` with defaults (``end``: ``default_end`` or now; ``start``: ``end - default_s``).

    Raises 422 when ``start`` or ``end`` lies outside ``[EARLIEST_TIME, LATEST_TIME)``, when
    ``end <= start`` or when the window is longer than ``max_s``.
    """
    if start is not None:
        start = check_time(start, name="start")
    if end is not None:
        end = check_time(end, name="end")
    if default_end is not None:
        default_end = min(max(default_end.astimezone(UTC), EARLIEST_TIME), LATEST_TIME)
    if end is None:
        end = default_end if default_end is not None else datetime.now(UTC)
        if start is not None and start >= end:
            end = start + timedelta(seconds=default_s)
    if start is None:
        start = end - timedelta(seconds=default_s)
    start, end = check_time(start, name="start"), check_time(end, name="end")
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


def authorize_or_hide(
    session: Session, *, user: User, patient_id: str, hidden: HTTPException
) -> None:
    """Authorise ``user`` on ``patient_id``; a refusal raises ``hidden`` instead of its 403.

    For routes whose ids can be probed (sequential alert ids, patient ids on the adaptation
    routes): a foreign id must answer exactly as a missing one, so ``hidden`` is the route's own
    404 (``not_found("alert")``, ``not_found("patient")``).
    """
    try:
        authorize_patient(session, user=user, patient_id=patient_id)
    except HTTPException:
        raise hidden from None
