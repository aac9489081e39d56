"""Pydantic schemas of the API, named by role (``...Create`` in, ``...Public`` out).

Times are timezone-aware ISO 8601 (UTC); ECG samples are mV; vital-sign fields carry their
units in their names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from heartline.ingestion.payloads import DEVICE_ID_PATTERN

__all__ = [
    "AlertExplanation",
    "AlertPublic",
    "AuditEntryPublic",
    "BeatPublic",
    "DeviceCreate",
    "DeviceCredentials",
    "DevicePublic",
    "EcgSegmentPublic",
    "EcgWindowPublic",
    "FrameRejectedError",
    "FrameRejectedPublic",
    "IngestResult",
    "MonitoringSummary",
    "PatientCreate",
    "PatientPublic",
    "PatientStatus",
    "Role",
    "Token",
    "UserCreate",
    "UserPublic",
    "VitalsPublic",
]

Role = Literal["admin", "clinician", "patient"]
PatientId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Token(BaseModel):
    """OAuth2 token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    role: Role


class UserCreate(BaseModel):
    """A user created by an admin (``patient_id`` required for, and only for, patients)."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[
        str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    ]
    password: Annotated[str, StringConstraints(min_length=12, max_length=256)]
    role: Role
    patient_id: PatientId | None = None
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None

    @model_validator(mode="after")
    def _patient_link(self) -> UserCreate:
        if (self.role == "patient") != (self.patient_id is not None):
            raise ValueError("patient_id is required for role 'patient' and only for it")
        return self


class FrameRejectedPublic(BaseModel):
    """Why an uploaded frame was refused (``reason`` as in ``heartline.ingestion.payloads``)."""

    reason: str
    detail: str


class FrameRejectedError(BaseModel):
    """The 422 body of the ingestion endpoint."""

    detail: FrameRejectedPublic


class UserPublic(_Out):
    """A user, without secrets."""

    id: int
    username: str
    role: Role
    patient_id: str | None
    full_name: str | None
    is_active: bool


class PatientCreate(BaseModel):
    """A patient registered by an admin."""

    model_config = ConfigDict(extra="forbid")

    id: PatientId
    display_name: Annotated[str, StringConstraints(max_length=200)] | None = None


class PatientPublic(_Out):
    """A patient."""

    id: str
    display_name: str | None
    created_at: datetime


class PatientStatus(BaseModel):
    """Live status of one patient for the dashboard's list."""

    id: str
    display_name: str | None
    hr_bpm: float | None = Field(description="latest heart rate (vitals, else from beats)")
    open_alerts: int
    last_update: datetime | None = Field(description="receipt time of the latest frame")


class DeviceCreate(BaseModel):
    """A device registered by an admin for a patient."""

    model_config = ConfigDict(extra="forbid")

    id: DeviceId
    patient_id: PatientId
    kind: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "ecg-patch"


class DevicePublic(_Out):
    """A device (never its credential)."""

    id: str
    patient_id: str | None
    kind: str
    created_at: datetime
    has_credentials: bool


class DeviceCredentials(BaseModel):
    """A device's secret: shown once, at registration or rotation (only its hash is stored)."""

    device_id: str
    secret: str
    auth: Literal["basic"] = "basic"


class EcgSegmentPublic(BaseModel):
    """ECG of one stored frame within the requested window."""

    device_id: str
    seq: int
    start_time: datetime
    fs_hz: float
    lead_names: list[str]
    first_sample_idx: int
    samples_mv: list[list[float]] = Field(description="one list per lead, mV")


class EcgWindowPublic(BaseModel):
    """ECG of a patient in ``[start, end)``."""

    patient_id: str
    start: datetime
    end: datetime
    segments: list[EcgSegmentPublic]


class VitalsPublic(_Out):
    """One vital-sign reading set."""

    time: datetime
    device_id: str
    hr_bpm: float | None
    spo2_pct: float | None
    temp_c: float | None
    sbp_mmhg: float | None
    dbp_mmhg: float | None


class BeatPublic(_Out):
    """One beat (``seq``/``sample_idx`` locate its R peak in the stored ECG)."""

    id: int
    device_id: str
    seq: int
    sample_idx: int
    time: datetime
    label: str | None
    confidence: float | None
    probabilities: dict[str, float] | None


AlertState = Literal["open", "closed", "acknowledged", "unacknowledged"]


class AlertPublic(BaseModel):
    """An alert (``kind`` is the stored ``type``; ``open`` while it has no end time)."""

    id: int
    patient_id: str
    device_id: str | None
    kind: str
    severity: str
    start_time: datetime
    end_time: datetime | None
    open: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    evidence: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> AlertPublic:
        return cls(
            id=row.id,
            patient_id=row.patient_id,
            device_id=row.device_id,
            kind=row.type,
            severity=row.severity,
            start_time=row.start_time,
            end_time=row.end_time,
            open=row.end_time is None,
            acknowledged_by=row.acknowledged_by,
            acknowledged_at=row.acknowledged_at,
            evidence=dict(row.evidence or {}),
        )


class AlertExplanation(BaseModel):
    """Evidence of an alert: the ECG strip around it and the beats, triggering ones flagged."""

    alert: AlertPublic
    ecg: EcgWindowPublic
    beats: list[BeatPublic]
    highlighted_beat_ids: list[int]


class MonitoringSummary(BaseModel):
    """Monitoring summary of one patient over ``[start, end)``."""

    patient_id: str
    start: datetime
    end: datetime
    beat_counts: dict[str, int] = Field(
        description="beats per AAMI class (N S V F Q, 'unclassified')"
    )
    hr_bpm: float | None
    open_alerts: int
    alerts_in_window: int
    last_update: datetime | None


class IngestResult(BaseModel):
    """Result of an HTTP frame upload."""

    device_id: str
    seq: int
    stored: bool = Field(description="false when (device_id, seq) was already stored (replay)")


class AuditEntryPublic(_Out):
    """One audit row."""

    id: int
    time: datetime
    actor: str
    actor_role: str
    action: str
    resource: str
    patient_id: str | None
    path: str | None
    client_ip: str | None


TimeParam = AwareDatetime
