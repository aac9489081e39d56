"""FHIR R4 endpoints (``application/fhir+json``), with the API's authorisation and audit.

* ``GET /fhir/Patient/{id}`` and ``GET /fhir/Device/{id}``
* ``GET /fhir/Observation?patient=ID&date=geT1&date=ltT2[&code=C]``: vital-sign Observations
  (``code`` one of the LOINC codes 8867-4, 59408-5, 2708-6, 39106-0 (skin temperature), 85354-9), or the ECG
  (``code=131328``, window at most ``max_ecg_window_s``) as a ``searchset`` Bundle.
* ``GET /fhir/DiagnosticReport?patient=ID&date=geT1&date=ltT2``: the monitoring report of the
  period with its result Observations (``search.mode = include``).
* ``GET /fhir/Patient/{id}/$everything?start=&end=`` (alias ``GET /fhir/Bundle?patient=&start=&end=``):
  a ``collection`` Bundle with the Patient, Devices, vital-sign Observations, the monitoring
  DiagnosticReport and its results (ECG with ``include_ecg=true``).

``date`` takes the FHIR prefixes ``ge``, ``gt``, ``le``, ``lt`` (``eq`` or none: that instant
or, for a bare date, that day). Errors are ``OperationOutcome`` resources.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from heartline import fhir
from heartline.service import queries
from heartline.service.deps import CurrentUser, SessionDep, SettingsDep
from heartline.service.routes._common import (
    EARLIEST_TIME,
    LATEST_TIME,
    DeviceIdPath,
    PatientIdPath,
    PatientIdQuery,
    access_patient,
    check_time,
    not_found,
    resolve_window,
)
from heartline.service.security import audit_read, authorize_patient
from heartline.storage import repository as repo
from heartline.storage.tables import Device

router = APIRouter(prefix="/fhir", tags=["fhir"])

FHIR_JSON = "application/fhir+json"
DAY_S = 86400.0
VITAL_CODES = {
    "8867-4": "hr",
    "59408-5": "spo2",
    "2708-6": "spo2",
    "39106-0": "temp",
    "85354-9": "bp",
}
ECG_CODE = "131328"
#: Codes ``GET /fhir/Observation`` searches by (in the spec, so clients know).
ObservationCode = Literal[(*VITAL_CODES, ECG_CODE)]  # type: ignore[valid-type]
_RESP: dict[int | str, dict[str, Any]] = {
    200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}, "description": "FHIR resource"},
    401: {"description": "not authenticated"},
    403: {"description": "not your patient"},
    404: {"description": "not found"},
    422: {
        "content": {FHIR_JSON: {"schema": {"type": "object"}}},
        "description": "invalid parameters (OperationOutcome)",
    },
}


class FhirResponse(Response):
    media_type = FHIR_JSON


def _send(resource: Any) -> FhirResponse:
    return FhirResponse(content=resource.model_dump_json(exclude_none=True))


def operation_outcome(status_code: int, detail: Any) -> dict[str, Any]:
    """An OperationOutcome body for an HTTP error."""
    code = {
        400: "invalid",
        401: "login",
        403: "forbidden",
        404: "not-found",
        409: "conflict",
        422: "invalid",
        429: "throttled",
    }.get(status_code, "exception")
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": str(detail)}],
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def parse_date_params(
    values: list[str] | None, *, default_s: float, max_s: float
) -> tuple[datetime, datetime]:
    """``[start, end)`` from FHIR ``date`` search parameters (422 on bad values)."""
    start: datetime | None = None
    end: datetime | None = None
    for raw in values or []:
        prefix, text = (
            (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        )
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise HTTPException(
                status_code=422, detail=f"date={raw!r} is not a FHIR date or dateTime"
            ) from None
        is_day = len(text) == 10
        if t.tzinfo is None:
            if not is_day:
                raise HTTPException(status_code=422, detail=f"date={raw!r} needs a time zone")
            t = t.replace(tzinfo=UTC)
        try:
            t = check_time(t, name="date")
        except HTTPException:
            raise HTTPException(
                status_code=422,
                detail=f"date={raw!r} is out of range: dates must lie in "
                f"[{EARLIEST_TIME.date()}, {LATEST_TIME.date()})",
            ) from None
        if prefix in {"ge", "gt"}:
            start = t + (timedelta(days=1) if is_day and prefix == "gt" else timedelta(0))
        elif prefix in {"le", "lt"}:
            end = t + (timedelta(days=1) if is_day and prefix == "le" else timedelta(0))
        else:
            start, end = t, t + (timedelta(days=1) if is_day else timedelta(milliseconds=1))
    return resolve_window(start, end, default_s=default_s, max_s=max_s)


def _vital_resources(
    session: Session, *, patient_id: str, start: datetime, end: datetime, code: str | None
) -> list[Any]:
    want = VITAL_CODES.get(code) if code else None
    out = []
    for v in repo.vitals_between(session, patient_id=patient_id, start=start, stop=end):
        values = {
            "hr_bpm": v.hr_bpm if want in (None, "hr") else None,
            "spo2_pct": v.spo2_pct if want in (None, "spo2") else None,
            "temp_c": v.temp_c if want in (None, "temp") else None,
            "sbp_mmhg": v.sbp_mmhg if want in (None, "bp") else None,
            "dbp_mmhg": v.dbp_mmhg if want in (None, "bp") else None,
        }
        out += fhir.vital_observations(
            vital_id=v.id, patient_id=patient_id, device_id=v.device_id, time=v.time, **values
        )
    return out


def _ecg_resources(
    session: Session, *, patient_id: str, start: datetime, end: datetime
) -> list[Any]:
    return [
        fhir.ecg_observation(
            obs_id=f"ecg-{s.device_id}-{s.seq}-{s.first_sample_idx}",
            patient_id=patient_id,
            device_id=s.device_id,
            start_time=s.start_time,
            fs=s.fs,
            lead_names=s.lead_names,
            signal_mv=s.signal_mv,
        )
        for s in repo.ecg_between(session, patient_id=patient_id, start=start, stop=end)
    ]


def _report(session: Session, *, patient_id: str, start: datetime, end: datetime):
    counts = queries.beat_counts(session, patient_id=patient_id, start=start, stop=end)
    alerts = [
        {
            "id": a.id,
            "kind": a.type,
            "severity": a.severity,
            "start": a.start_time,
            "end": a.end_time,
            "acknowledged_by": a.acknowledged_by,
        }
        for a in repo.alerts_between(session, patient_id=patient_id, start=start, stop=end)
    ]
    return fhir.monitoring_report(
        fhir.MonitoringPeriod(
            patient_id=patient_id, start=start, end=end, beat_counts=counts, alerts=alerts
        )
    )


@router.get("/Patient/{patient_id}", response_class=FhirResponse, responses=_RESP)
def fhir_patient(
    patient_id: PatientIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> FhirResponse:
    """The FHIR Patient."""
    p = access_patient(
        session, user=user, request=request, patient_id=patient_id, resource="fhir-patient"
    )
    return _send(fhir.patient_resource(patient_id=p.id, display_name=p.display_name))


@router.get("/Device/{device_id}", response_class=FhirResponse, responses=_RESP)
def fhir_device(
    device_id: DeviceIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> FhirResponse:
    """The FHIR Device (readable by whoever may read its patient)."""
    device = session.get(Device, device_id)
    if device is None or device.patient_id is None:
        if user.role != "admin":
            raise HTTPException(status_code=403, detail="this device is not accessible to you")
        if device is None:
            raise not_found(f"device {device_id!r}")
    else:
        authorize_patient(session, user=user, patient_id=device.patient_id)
    audit_read(
        session, user=user, request=request, resource="fhir-device", patient_id=device.patient_id
    )
    return _send(
        fhir.device_resource(device_id=device.id, patient_id=device.patient_id, kind=device.kind)
    )


@router.get("/Observation", response_class=FhirResponse, responses=_RESP)
def fhir_observations(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    patient: PatientIdQuery,
    date: Annotated[
        list[str] | None, Query(description="FHIR date with prefix, e.g. ge2024-01-01T00:00:00Z")
    ] = None,
    code: Annotated[
        ObservationCode | None,
        Query(description="LOINC code of a vital sign, or 131328 for the ECG"),
    ] = None,
) -> FhirResponse:
    """Observations of a patient (default: the last 24 h of vital signs) as a searchset Bundle."""
    access_patient(
        session, user=user, request=request, patient_id=patient, resource="fhir-observation"
    )
    if code == ECG_CODE:
        start, end = parse_date_params(date, default_s=10.0, max_s=settings.max_ecg_window_s)
        matches = _ecg_resources(session, patient_id=patient, start=start, end=end)
    else:
        start, end = parse_date_params(date, default_s=DAY_S, max_s=31 * DAY_S)
        matches = _vital_resources(session, patient_id=patient, start=start, end=end, code=code)
    return _send(
        fhir.searchset_bundle(matches, base_url=_base(request), timestamp=datetime.now(UTC))
    )


@router.get("/DiagnosticReport", response_class=FhirResponse, responses=_RESP)
def fhir_reports(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    patient: PatientIdQuery,
    date: Annotated[
        list[str] | None, Query(description="the monitoring period, e.g. date=ge...&date=lt...")
    ] = None,
) -> FhirResponse:
    """The monitoring DiagnosticReport of the period (default: last 24 h) with its results."""
    access_patient(session, user=user, request=request, patient_id=patient, resource="fhir-report")
    start, end = parse_date_params(date, default_s=DAY_S, max_s=31 * DAY_S)
    report, results = _report(session, patient_id=patient, start=start, end=end)
    return _send(
        fhir.searchset_bundle(
            [report], base_url=_base(request), timestamp=datetime.now(UTC), included=results
        )
    )


def _everything(
    request: Request,
    user,
    session: Session,
    settings,
    patient_id: str,
    start,
    end,
    include_ecg: bool,
) -> FhirResponse:
    p = access_patient(
        session, user=user, request=request, patient_id=patient_id, resource="fhir-everything"
    )
    start, end = resolve_window(start, end, default_s=DAY_S, max_s=31 * DAY_S)
    if include_ecg and (end - start).total_seconds() > settings.max_ecg_window_s:
        raise HTTPException(
            status_code=422,
            detail=f"include_ecg needs a window of at most {settings.max_ecg_window_s:g} s",
        )
    devices = session.scalars(select(Device).where(Device.patient_id == p.id).order_by(Device.id))
    resources: list[Any] = [fhir.patient_resource(patient_id=p.id, display_name=p.display_name)]
    resources += [
        fhir.device_resource(device_id=d.id, patient_id=d.patient_id, kind=d.kind) for d in devices
    ]
    resources += _vital_resources(session, patient_id=p.id, start=start, end=end, code=None)
    if include_ecg:
        resources += _ecg_resources(session, patient_id=p.id, start=start, end=end)
    report, results = _report(session, patient_id=p.id, start=start, end=end)
    resources += [report, *results]
    return _send(
        fhir.patient_bundle(resources, base_url=_base(request), timestamp=datetime.now(UTC))
    )


Start = Annotated[AwareDatetime | None, Query(description="period start (default: end - 24 h)")]
End = Annotated[AwareDatetime | None, Query(description="period end (default: now)")]


@router.get("/Patient/{patient_id}/$everything", response_class=FhirResponse, responses=_RESP)
def fhir_everything(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    start: Start = None,
    end: End = None,
    include_ecg: bool = False,
) -> FhirResponse:
    """Export of one patient and period as a ``collection`` Bundle."""
    return _everything(request, user, session, settings, patient_id, start, end, include_ecg)


@router.get("/Bundle", response_class=FhirResponse, responses=_RESP)
def fhir_bundle(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    patient: PatientIdQuery,
    start: Start = None,
    end: End = None,
    include_ecg: bool = False,
) -> FhirResponse:
    """Same as ``/fhir/Patient/{patient}/$everything``."""
    return _everything(request, user, session, settings, patient, start, end, include_ecg)


__all__ = ["FHIR_JSON", "operation_outcome", "parse_date_params", "router"]
