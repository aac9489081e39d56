"""Pydantic schemas of the API, named by role (``...Create`` in, ``...Public`` out).

Times are timezone-aware ISO 8601 (UTC); ECG samples are mV; vital-sign fields carry their
units in their names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from heartline.alerts.describe import describe_alert
from heartline.ingestion.payloads import DEVICE_ID_PATTERN

__all__ = [
    "AlarmValuePublic",
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
    "SilenceCreate",
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


def _json_integer(value: Any) -> Any:
    """A JSON Schema ``integer``: a number with no fraction (``15`` or ``15.0``), never a
    boolean or a string (pydantic's lax mode would take ``true`` as 1 and ``"5"`` as 5)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a JSON integer")
    return value


#: Marks an integer request field as JSON Schema defines it (OpenAPI ``type: integer``); put it
#: last in ``Annotated[int, Field(...), JSON_INTEGER]`` so the constraints stay in the schema.
JSON_INTEGER = BeforeValidator(_json_integer)
JsonInt = Annotated[int, JSON_INTEGER]


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
    #: The model that labelled the beat: ``<base>@<sha256[:12]>``, plus
    #: ``+<method>:<patient>/v<version>`` when the patient's adapted model did.
    model_version: str | None = None


AlertState = Literal["open", "closed", "acknowledged", "unacknowledged"]


class AlarmValuePublic(BaseModel):
    """One measured value of an alarm with its unit (``""`` for counts)."""

    name: str
    value: float | int | str | bool
    unit: str = ""


Priority = Literal["high", "medium", "low"]


class AlertPublic(BaseModel):
    """An alert (``kind`` is the stored ``type``; ``open`` while it has no end time).

    ``title``, ``priority`` and ``category`` come from :func:`heartline.alerts.describe.describe_alert`
    (IEC 60601-1-8 priorities: high, medium, low; technical alarm conditions apart).
    """

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
    name: str = Field("", description="display name of the alarm kind ('VT', 'Frequent PVCs')")
    title: str = Field("", description="name with its values ('VT: 7 beats at 182 bpm')")
    priority: Priority = Field("low", description="IEC 60601-1-8 priority")
    category: Literal["physiological", "technical"] = "physiological"
    values: list[AlarmValuePublic] = Field(default_factory=list)
    silenced_until: datetime | None = Field(
        None, description="the alarm's cue is silenced until then (null: not silenced)"
    )

    @classmethod
    def from_row(cls, row: Any, *, silenced_until: datetime | None = None) -> AlertPublic:
        evidence = dict(row.evidence or {})
        d = describe_alert(row.type, row.severity, evidence, start=row.start_time, end=row.end_time)
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
            evidence=evidence,
            name=d.name,
            title=d.title,
            priority=d.priority,
            category=d.category,
            values=[AlarmValuePublic(name=v.name, value=v.value, unit=v.unit) for v in d.values],
            silenced_until=silenced_until,
        )


class SilenceCreate(BaseModel):
    """Silence an alarm's cue for ``minutes``."""

    minutes: JsonInt = Field(2, ge=1, le=30, description="1-30 minutes (default 2)")


class RrSeriesPublic(BaseModel):
    """RR intervals of the explained strip: ``time`` of the beat closing each interval."""

    time: list[datetime]
    rr_ms: list[float]


class ExplanationStatistic(BaseModel):
    """A statistic that fired (or not) against its threshold."""

    name: str
    value: float | None
    threshold: float | None = None
    comparison: Literal[">", "<", "within", ""] = ""
    unit: str = ""
    fired: bool | None = None
    reference: str = ""


class News2RowPublic(BaseModel):
    """One NEWS2 parameter: measured value, its unit and its sub-score (0-3)."""

    parameter: str
    value: float | str | bool | None
    unit: str
    score: int | None
    note: str | None = None


class News2BreakdownPublic(BaseModel):
    """The NEWS2 aggregate of an alert broken down by vital sign (RCP 2017)."""

    total: int | None
    band: str | None
    complete: bool | None
    missing: list[str]
    rows: list[News2RowPublic]


class AttributionOverlay(BaseModel):
    """Per-sample attributions over the strip (hook: filled by an explanation model when present).

    ``segments[i][j]`` is the attribution of sample ``j`` of ``ecg.segments[i]``'s lead
    ``lead_index``, in ``[-1, 1]`` after normalisation.
    """

    method: str
    lead_index: int = 0
    segments: list[list[float]]


class AlertExplanation(BaseModel):
    """Evidence of an alert, by alarm type.

    ``view`` says what explains it: ``"rhythm"`` (RR tachogram and, for AF, Poincare plot with
    the statistics that fired and their thresholds), ``"beats"`` (only the beats involved,
    with labels and probabilities), ``"news2"`` (score by vital sign), ``"episode"`` (VF/VT
    onset and offset on the strip) or ``"generic"``.
    """

    alert: AlertPublic
    ecg: EcgWindowPublic
    beats: list[BeatPublic]
    highlighted_beat_ids: list[int]
    view: Literal["rhythm", "beats", "news2", "episode", "generic"] = "generic"
    onset: datetime | None = None
    offset: datetime | None = None
    rr: RrSeriesPublic | None = None
    statistics: list[ExplanationStatistic] = Field(default_factory=list)
    news2: News2BreakdownPublic | None = None
    attributions: AttributionOverlay | None = Field(
        None, description="per-sample attributions (null until an explanation model provides them)"
    )


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
