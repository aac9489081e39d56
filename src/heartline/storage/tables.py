"""Typed SQLAlchemy 2 ORM tables of the live pipeline.

Time columns are timezone-aware UTC (:class:`UtcDateTime`, also on SQLite). ECG is stored
compactly as the device's raw ADC counts: one ``ecg_blocks`` row per frame holding all leads as
little-endian int16 bytes in lead-major order (``n_leads * n_samples * 2`` bytes), with the
per-lead gain (counts per mV) and baseline (counts at 0 mV) needed to decode it:
``mV = (count - baseline) / gain``.

Idempotence lives in the schema: ``frames`` is UNIQUE on ``(device_id, seq)``, ``ecg_blocks``
on ``frame_id`` (one block per frame; blocks are only inserted for frames just inserted, with
the frame's ``device_id`` and ``seq``) and ``beats`` on ``(device_id, seq, sample_idx)``, so
replays from the devices' store-and-forward queues and processor restarts never store a sample
twice. Every other index serves a query by patient and time (or a foreign key): each
patient-keyed index costs a write-heavy store one B-tree leaf per device and commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ALERT_SEVERITIES",
    "Alert",
    "Base",
    "Beat",
    "Device",
    "EcgBlock",
    "FrameRecord",
    "Patient",
    "QuarantinedPayload",
    "UtcDateTime",
    "VitalSign",
    "utcnow",
]

#: Allowed ``alerts.severity`` values, least to most severe.
ALERT_SEVERITIES: tuple[str, ...] = ("info", "warning", "high", "critical")

# Stable constraint names, so that alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that always returns aware UTC datetimes.

    Naive datetimes are refused on the way in (ambiguous); SQLite, which stores no zone, gets
    UTC values and has UTC attached on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value!r}: Heartline stores timezone-aware UTC times only"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the project's constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Patient(Base):
    """A monitored patient (``id`` is the hospital's or the deployment's identifier)."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Device(Base):
    """A wearable; ``credential_hash`` is filled by the service's device-authentication code."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="ecg-patch")
    credential_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FrameRecord(Base):
    """The receipt ledger: one row per distinct ``(device_id, seq)`` ever stored."""

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("device_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    device_time: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload_bytes: Mapped[int | None] = mapped_column(Integer)


class EcgBlock(Base):
    """The ECG of one frame: raw int16 ADC counts of every lead plus their scale.

    UNIQUE on ``frame_id`` only: ``(device_id, seq)`` is the frame's, unique in ``frames``
    (migration 0003 dropped the second, redundant unique index).
    """

    __tablename__ = "ecg_blocks"
    __table_args__ = (
        Index("ix_ecg_blocks_patient_time", "patient_id", "start_time"),
        CheckConstraint("fs_hz > 0", name="fs_positive"),
        CheckConstraint("n_samples > 0", name="n_samples_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    start_time: Mapped[datetime]
    fs_hz: Mapped[float] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(Integer)
    lead_names: Mapped[list[Any]]
    gains: Mapped[list[Any]]
    baselines: Mapped[list[Any]]
    data: Mapped[bytes] = mapped_column(LargeBinary)


class VitalSign(Base):
    """One vital-sign reading set (any subset of HR, SpO2, temperature, blood pressure)."""

    __tablename__ = "vitals"
    __table_args__ = (Index("ix_vitals_patient_time", "patient_id", "time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    time: Mapped[datetime]
    hr_bpm: Mapped[float | None] = mapped_column(Float)
    spo2_pct: Mapped[float | None] = mapped_column(Float)
    temp_c: Mapped[float | None] = mapped_column(Float)
    sbp_mmhg: Mapped[float | None] = mapped_column(Float)
    dbp_mmhg: Mapped[float | None] = mapped_column(Float)


class Beat(Base):
    """A detected (and possibly classified) beat.

    ``(device_id, seq, sample_idx)`` locates the R peak in the stored ECG: ``sample_idx`` is the
    index inside the ``ecg_blocks`` row of frame ``seq``. ``label`` is an AAMI class
    (``N S V F Q``) or ``None`` before classification; ``probabilities`` maps class to probability.
    """

    __tablename__ = "beats"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", "sample_idx"),
        Index("ix_beats_patient_time", "patient_id", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sample_idx: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime]
    label: Mapped[str | None] = mapped_column(String(8))
    probabilities: Mapped[dict[str, Any] | None]
    confidence: Mapped[float | None] = mapped_column(Float)
    #: Version of the model that labelled the beat (base or a patient's adapted model; 0008).
    model_version: Mapped[str | None] = mapped_column(String(96))


class Alert(Base):
    """A clinical or technical alert.

    ``evidence`` is free JSON, by convention ``{"beats": [beat ids or (seq, sample_idx)],
    "strip": {"device_id": ..., "start": iso, "stop": iso}, ...}``.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_patient_start", "patient_id", "start_time"),
        CheckConstraint(
            "severity IN ('info', 'warning', 'high', 'critical')", name="severity_valid"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime | None]
    evidence: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None]


class QuarantinedPayload(Base):
    """A payload that was refused (kept verbatim for inspection, never processed)."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    topic: Mapped[str | None] = mapped_column(String(255))
    device_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
