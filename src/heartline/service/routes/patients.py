"""Patients and their data: ECG, vitals, beats, monitoring summary and live status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime
from sqlalchemy import select

from heartline.ingestion.payloads import DEVICE_ID_PATTERN
from heartline.service import queries
from heartline.service.deps import CurrentUser, SessionDep, SettingsDep
from heartline.service.routes._common import PatientIdPath, access_patient, resolve_window
from heartline.service.schemas import (
    BeatPublic,
    DevicePublic,
    EcgSegmentPublic,
    EcgWindowPublic,
    MonitoringSummary,
    PatientCreate,
    PatientPublic,
    PatientStatus,
    VitalsPublic,
)
from heartline.service.security import audit_read, require_role
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo
from heartline.storage.tables import Device, Patient

router = APIRouter(tags=["patients"])

DAY_S = 86400.0
Start = Annotated[AwareDatetime | None, Query(description="window start (ISO 8601 with zone)")]
End = Annotated[AwareDatetime | None, Query(description="window end, exclusive")]
_DENIED = {
    401: {"description": "not authenticated"},
    403: {"description": "not your patient"},
    404: {"description": "no such patient"},
}


def device_public(device: Device) -> DevicePublic:
    return DevicePublic(
        id=device.id,
        patient_id=device.patient_id,
        kind=device.kind,
        created_at=device.created_at,
        has_credentials=device.credential_hash is not None,
    )


def ecg_window(
    session, *, patient_id: str, start: datetime, end: datetime, device_id: str | None = None
) -> EcgWindowPublic:
    segments = repo.ecg_between(
        session, patient_id=patient_id, start=start, stop=end, device_id=device_id
    )
    return EcgWindowPublic(
        patient_id=patient_id,
        start=start,
        end=end,
        segments=[
            EcgSegmentPublic(
                device_id=s.device_id,
                seq=s.seq,
                start_time=s.start_time,
                fs_hz=s.fs,
                lead_names=list(s.lead_names),
                first_sample_idx=s.first_sample_idx,
                samples_mv=[
                    [round(float(v), 4) for v in s.signal_mv[:, i]]
                    for i in range(s.signal_mv.shape[1])
                ],
            )
            for s in segments
        ],
    )


@router.get("/patients", response_model=list[PatientPublic])
def list_patients(request: Request, user: CurrentUser, session: SessionDep) -> list[PatientPublic]:
    """Patients visible to the caller (admin: all; clinician: assigned; patient: self)."""
    patients = srepo.patients_visible(session, user=user)
    for p in patients:
        audit_read(session, user=user, request=request, resource="patient", patient_id=p.id)
    return [PatientPublic.model_validate(p) for p in patients]


@router.post(
    "/patients",
    response_model=PatientPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "patient exists"}},
)
def create_patient(body: PatientCreate, user: CurrentUser, session: SessionDep) -> PatientPublic:
    """Register a patient (admin only)."""
    require_role(user, "admin")
    if session.get(Patient, body.id) is not None:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="patient exists")
    return PatientPublic.model_validate(
        repo.register_patient(session, patient_id=body.id, display_name=body.display_name)
    )


@router.get("/patients/{patient_id}", response_model=PatientPublic, responses=_DENIED)
def read_patient(
    patient_id: PatientIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> PatientPublic:
    """One patient."""
    return PatientPublic.model_validate(
        access_patient(
            session, user=user, request=request, patient_id=patient_id, resource="patient"
        )
    )


@router.get("/patients/{patient_id}/devices", response_model=list[DevicePublic], responses=_DENIED)
def list_patient_devices(
    patient_id: PatientIdPath, request: Request, user: CurrentUser, session: SessionDep
) -> list[DevicePublic]:
    """The patient's devices."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="device")
    rows = session.scalars(
        select(Device).where(Device.patient_id == patient_id).order_by(Device.id)
    )
    return [device_public(d) for d in rows]


@router.get("/patients/{patient_id}/ecg", response_model=EcgWindowPublic, responses=_DENIED)
def read_ecg(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    start: Start = None,
    end: End = None,
    seconds: Annotated[
        float, Query(gt=0, le=3600, description="window length when start is omitted")
    ] = 10.0,
    device_id: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
) -> EcgWindowPublic:
    """ECG (mV) in ``[start, end)``. Without ``end`` the window ends at the newest stored sample."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="ecg")
    default_end = queries.latest_ecg_end(session, patient_id=patient_id) if end is None else None
    start, end = resolve_window(
        start, end, default_s=seconds, max_s=settings.max_ecg_window_s, default_end=default_end
    )
    return ecg_window(session, patient_id=patient_id, start=start, end=end, device_id=device_id)


@router.get("/patients/{patient_id}/vitals", response_model=list[VitalsPublic], responses=_DENIED)
def read_vitals(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Start = None,
    end: End = None,
) -> list[VitalsPublic]:
    """Vital signs in ``[start, end)`` (default: the last hour; at most 31 days)."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="vitals")
    start, end = resolve_window(start, end, default_s=3600.0, max_s=31 * DAY_S)
    return [
        VitalsPublic.model_validate(v)
        for v in repo.vitals_between(session, patient_id=patient_id, start=start, stop=end)
    ]


@router.get("/patients/{patient_id}/beats", response_model=list[BeatPublic], responses=_DENIED)
def read_beats(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    label: Annotated[str | None, Query(pattern="^[NSVFQ]$")] = None,
) -> list[BeatPublic]:
    """Beats in ``[start, end)`` (default: the last 10 minutes; at most 1 day), optionally one class."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="beats")
    start, end = resolve_window(start, end, default_s=600.0, max_s=DAY_S)
    rows = repo.beats_between(session, patient_id=patient_id, start=start, stop=end, label=label)
    return [BeatPublic.model_validate(b) for b in rows]


@router.get("/patients/{patient_id}/summary", response_model=MonitoringSummary, responses=_DENIED)
def read_summary(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Start = None,
    end: End = None,
) -> MonitoringSummary:
    """Monitoring summary: beats per class, heart rate, open alerts (default: the last hour)."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="summary")
    start, end = resolve_window(start, end, default_s=3600.0, max_s=31 * DAY_S)
    counts = queries.beat_counts(session, patient_id=patient_id, start=start, stop=end)
    alerts = repo.alerts_between(session, patient_id=patient_id, start=start, stop=end)
    return MonitoringSummary(
        patient_id=patient_id,
        start=start,
        end=end,
        beat_counts=counts,
        hr_bpm=queries.latest_heart_rate(session, patient_id=patient_id, before=end),
        open_alerts=queries.count_open_alerts(session, patient_id=patient_id),
        alerts_in_window=len(alerts),
        last_update=queries.last_update(session, patient_id=patient_id),
    )


@router.get("/monitoring", response_model=list[PatientStatus])
def monitoring_status(
    request: Request, user: CurrentUser, session: SessionDep
) -> list[PatientStatus]:
    """Live status of every patient visible to the caller (the dashboard's list)."""
    out = []
    for p in srepo.patients_visible(session, user=user):
        audit_read(session, user=user, request=request, resource="status", patient_id=p.id)
        out.append(
            PatientStatus(
                id=p.id,
                display_name=p.display_name,
                hr_bpm=queries.latest_heart_rate(session, patient_id=p.id),
                open_alerts=queries.count_open_alerts(session, patient_id=p.id),
                last_update=queries.last_update(session, patient_id=p.id),
            )
        )
    return out
