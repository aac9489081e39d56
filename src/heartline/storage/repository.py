"""Keyword-only repository functions: the only code that writes the live pipeline's tables.

Every function takes the caller's :class:`~sqlalchemy.orm.Session` and **does not commit**: the
caller owns the transaction (the stream processor commits once per MQTT message, before the
broker's PUBACK, so that a crash at any point replays instead of losing data). Idempotent writes
use ``INSERT .. ON CONFLICT DO NOTHING`` in the SQLite and PostgreSQL dialects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, make_transient_to_detached

from heartline.ingestion.payloads import Frame
from heartline.storage.bulk import alert_update, fast_insert
from heartline.storage.errors import StorageError
from heartline.storage.tables import (
    ALERT_SEVERITIES,
    Alert,
    Beat,
    Device,
    EcgBlock,
    FrameRecord,
    Patient,
    QuarantinedPayload,
    VitalSign,
    utcnow,
)

__all__ = [
    "AlertNotFoundError",
    "BeatIn",
    "EcgSegment",
    "StorageError",
    "UnknownDeviceError",
    "acknowledge_alert",
    "add_alert",
    "add_beats",
    "add_beats_by_patient",
    "alerts_between",
    "beats_between",
    "close_alert",
    "decode_block",
    "ecg_between",
    "quarantine",
    "register_device",
    "register_patient",
    "store_frame",
    "store_frames",
    "update_alerts",
    "vitals_between",
]

log = logging.getLogger(__name__)


class UnknownDeviceError(StorageError, LookupError):
    """A frame came from a device that is not registered (or not assigned to a patient)."""


class AlertNotFoundError(StorageError, LookupError):
    """No alert has the given id."""


@dataclass(frozen=True)
class EcgSegment:
    """Decoded ECG of one stored frame, trimmed to the requested window.

    Attributes
    ----------
    device_id : str
    seq : int
        The frame's sequence number.
    start_time : datetime
        Time of ``signal_mv[0]`` (device clock, aware UTC).
    fs : float
        Sampling rate in Hz.
    lead_names : tuple of str
    signal_mv : numpy.ndarray
        Shape ``(n_samples, n_leads)``, float64, mV.
    first_sample_idx : int
        Index of ``signal_mv[0]`` inside the stored frame (non-zero when trimmed).
    """

    device_id: str
    seq: int
    start_time: datetime
    fs: float
    lead_names: tuple[str, ...]
    signal_mv: np.ndarray
    first_sample_idx: int = 0


@dataclass(frozen=True)
class BeatIn:
    """One beat to store (see :class:`heartline.storage.tables.Beat`).

    ``probabilities`` maps AAMI class to probability; ``label``/``confidence`` may be ``None``
    for a detected but not yet classified beat.
    """

    device_id: str
    seq: int
    sample_idx: int
    time: datetime
    label: str | None = None
    probabilities: dict[str, float] | None = None
    confidence: float | None = None
    #: Version of the model that labelled the beat (``beats.model_version``, migration 0008).
    model_version: str | None = None


# --------------------------------------------------------------------------------------- helpers
def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def _window(start: datetime, stop: datetime) -> tuple[datetime, datetime]:
    start, stop = _aware("start", start), _aware("stop", stop)
    if stop <= start:
        raise ValueError(f"stop ({stop.isoformat()}) must be after start ({start.isoformat()})")
    return start, stop


# ------------------------------------------------------------------------------------ registry
def register_patient(
    session: Session, *, patient_id: str, display_name: str | None = None
) -> Patient:
    """Create a patient, or return the existing one (``display_name`` updated when given)."""
    if not patient_id or len(patient_id) > 64:
        raise ValueError(f"patient_id must be 1..64 characters, got {patient_id!r}")
    patient = session.get(Patient, patient_id)
    if patient is None:
        patient = Patient(id=patient_id, display_name=display_name)
        session.add(patient)
    elif display_name is not None:
        patient.display_name = display_name
    session.flush()
    return patient


def register_device(
    session: Session,
    *,
    device_id: str,
    patient_id: str | None,
    kind: str = "ecg-patch",
    credential_hash: str | None = None,
) -> Device:
    """Create a device or update its assignment; the patient must exist.

    Raises
    ------
    StorageError
        ``patient_id`` is not registered.
    """
    import re

    from heartline.ingestion.payloads import DEVICE_ID_PATTERN

    if not re.match(DEVICE_ID_PATTERN, device_id or ""):
        raise ValueError(f"device_id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    if patient_id is not None and session.get(Patient, patient_id) is None:
        raise StorageError(
            f"patient_id {patient_id!r} is not registered; call register_patient first"
        )
    device = session.get(Device, device_id)
    if device is None:
        device = Device(
            id=device_id, patient_id=patient_id, kind=kind, credential_hash=credential_hash
        )
        session.add(device)
    else:
        device.patient_id = patient_id
        device.kind = kind
        if credential_hash is not None:
            device.credential_hash = credential_hash
    session.flush()
    return device


# -------------------------------------------------------------------------------------- frames
_VITAL_FIELDS = ("hr_bpm", "spo2_pct", "temp_c", "sbp_mmhg", "dbp_mmhg")
_BLOCK_COLUMNS = (
    "frame_id",
    "device_id",
    "seq",
    "patient_id",
    "start_time",
    "fs_hz",
    "n_samples",
    "lead_names",
    "gains",
    "baselines",
    "data",
)
_BLOCK_PREBOUND = frozenset({"lead_names", "gains", "baselines", "start_time"})
_FRAME_TIMES = frozenset({"device_time", "received_at"})
_FRAME_COLUMNS = ("device_id", "seq", "patient_id", "device_time", "received_at", "payload_bytes")
_VITAL_COLUMNS = ("frame_id", "device_id", "patient_id", "time", *_VITAL_FIELDS)
_BEAT_COLUMNS = (
    "patient_id",
    "device_id",
    "seq",
    "sample_idx",
    "time",
    "label",
    "probabilities",
    "confidence",
    "model_version",
)


def store_frame(
    session: Session,
    *,
    frame: Frame,
    received_at: datetime | None = None,
    payload_bytes: int | None = None,
) -> bool:
    """Store one frame (ECG block and vitals) exactly once.

    Parameters
    ----------
    session : Session
        Caller's session; nothing is committed here.
    frame : Frame
        A validated frame (:func:`heartline.ingestion.payloads.parse_frame`).
    received_at : datetime, optional
        Server receipt time (default: now).
    payload_bytes : int, optional
        Size of the wire payload, kept for bandwidth statistics.

    Returns
    -------
    bool
        ``True`` if stored now, ``False`` if ``(device_id, seq)`` was already stored (a replay).

    Raises
    ------
    UnknownDeviceError
        The device is not registered or not assigned to a patient (quarantine the payload).
    """
    new = store_frames(
        session, frames=[frame], received_at=received_at, payload_bytes=[payload_bytes]
    )
    return (frame.device_id, frame.seq) in new


def store_frames(
    session: Session,
    *,
    frames: Sequence[Frame],
    received_at: datetime | None = None,
    payload_bytes: Sequence[int | None] | None = None,
    patients: dict[str, str] | None = None,
) -> set[tuple[str, int]]:
    """Store many frames (ECG blocks and vitals), each exactly once, in a few statements.

    One multi-row ``INSERT .. ON CONFLICT (device_id, seq) DO NOTHING .. RETURNING`` per
    batch of frames (SQLAlchemy's insertmanyvalues) finds out which frames are new; their ECG blocks and vitals then go in with one
    ``executemany`` per table. No ORM objects are created and nothing is flushed or committed.

    Parameters
    ----------
    session : Session
        Caller's session; nothing is committed here.
    frames : sequence of Frame
        Validated frames, any devices; a ``(device_id, seq)`` repeated within ``frames`` is
        stored once (the first occurrence).
    received_at : datetime, optional
        Server receipt time of all of them (default: now).
    payload_bytes : sequence of int or None, optional
        Wire payload sizes, aligned with ``frames``.
    patients : dict, optional
        ``device_id -> patient_id`` already known to the caller (e.g. the stream processor's
        cache); devices not in it are looked up (one query).

    Returns
    -------
    set of (str, int)
        The ``(device_id, seq)`` stored now; the others were stored before (replays).

    Raises
    ------
    UnknownDeviceError
        A device is not registered or not assigned to a patient (nothing is stored).
    """
    if payload_bytes is not None and len(payload_bytes) != len(frames):
        raise ValueError(
            f"payload_bytes must align with frames: {len(payload_bytes)} != {len(frames)}"
        )
    if not frames:
        return set()
    received_at = _aware("received_at", received_at) if received_at is not None else utcnow()
    owner = dict(patients or {})
    missing = {f.device_id for f in frames} - owner.keys()
    if missing:
        found: dict[str, str | None] = {
            d: pid
            for d, pid in session.execute(
                select(Device.id, Device.patient_id).where(Device.id.in_(sorted(missing)))
            )
        }
        for d in sorted(missing):
            if found.get(d) is None:
                what = "not registered" if d not in found else "not assigned to a patient"
                raise UnknownDeviceError(f"device {d!r} is {what}")
            owner[d] = found[d]
    unique: dict[tuple[str, int], tuple[Frame, int | None]] = {}
    for i, f in enumerate(frames):
        key = (f.device_id, f.seq)
        if key not in unique:
            unique[key] = (f, payload_bytes[i] if payload_bytes is not None else None)
    frame_insert = fast_insert(
        session,
        FrameRecord.__table__,
        _FRAME_COLUMNS,
        ("device_id", "seq"),
        ("id", "device_id", "seq"),
    )
    # times bound once: the batch's receipt time, and each frame's start (frames and blocks)
    bind_time = frame_insert.processor("device_time")
    received = frame_insert.processor("received_at")(received_at)
    starts = {key: bind_time(f.start_time) for key, (f, _n) in unique.items()}
    frame_rows = [
        (f.device_id, f.seq, owner[f.device_id], starts[key], received, nbytes)
        for key, (f, nbytes) in unique.items()
    ]
    returned = frame_insert.run_returning(session, frame_rows, prebound=_FRAME_TIMES)
    ids: dict[tuple[str, int], int] = {(dev, int(seq)): int(fid) for fid, dev, seq in returned}
    if len(ids) < len(unique):
        log.debug("%d duplicate frame(s) ignored", len(unique) - len(ids))
    if not ids:
        return set()
    block_insert = fast_insert(session, EcgBlock.__table__, _BLOCK_COLUMNS)
    # lead names, gains and baselines (JSON) are the same for most frames: bound once each
    scales: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
    json_names = tuple(block_insert.processor(c) for c in ("lead_names", "gains", "baselines"))
    blocks: list[tuple[Any, ...]] = []
    vitals: list[tuple[Any, ...]] = []
    for key in unique:  # in the order given (ids as the database assigned them)
        fid = ids.get(key)
        if fid is None:
            continue
        f = unique[key][0]
        patient_id = owner[f.device_id]
        scale_key = (*f.lead_names, None, *f.adc_gain, None, *f.adc_baseline)
        scale = scales.get(scale_key)
        if scale is None:
            scale = scales[scale_key] = (
                json_names[0](list(f.lead_names)),
                json_names[1]([float(g) for g in f.adc_gain]),
                json_names[2]([int(b) for b in f.adc_baseline]),
            )
        blocks.append(
            (
                fid,
                f.device_id,
                f.seq,
                patient_id,
                starts[key],
                float(f.fs_hz),
                f.n_samples,
                *scale,
                # (n_leads, n_samples), lead-major
                f.ecg_counts().astype("<i2").tobytes(),
            )
        )
        for vital in f.vitals:
            vitals.append(
                (
                    fid,
                    f.device_id,
                    patient_id,
                    datetime.fromtimestamp(vital.time_s, tz=UTC),
                    vital.hr_bpm,
                    vital.spo2_pct,
                    vital.temp_c,
                    vital.sbp_mmhg,
                    vital.dbp_mmhg,
                )
            )
    block_insert.run(session, blocks, prebound=_BLOCK_PREBOUND)
    fast_insert(session, VitalSign.__table__, _VITAL_COLUMNS).run(session, vitals)
    return set(ids)


def decode_block(block: EcgBlock) -> np.ndarray:
    """The ECG of a stored block in mV, shape ``(n_samples, n_leads)``, float64."""
    n_leads = len(block.lead_names)
    counts = np.frombuffer(block.data, dtype="<i2")
    if counts.size != n_leads * block.n_samples:
        raise StorageError(
            f"ecg_blocks row {block.id}: {counts.size} counts for {n_leads} x {block.n_samples}"
        )
    counts = counts.reshape(n_leads, block.n_samples).T.astype(np.float64)
    return (counts - np.asarray(block.baselines, dtype=np.float64)) / np.asarray(
        block.gains, dtype=np.float64
    )


def ecg_between(
    session: Session,
    *,
    patient_id: str,
    start: datetime,
    stop: datetime,
    device_id: str | None = None,
) -> list[EcgSegment]:
    """Decoded ECG of a patient in the half-open window ``[start, stop)`` (device clock).

    Returns one :class:`EcgSegment` per stored frame overlapping the window, ordered by device
    and time, each trimmed to the window. Gaps (lost frames) show as missing segments: nothing is
    interpolated.
    """
    start, stop = _window(start, stop)
    # A frame is at most MAX_FRAME_DURATION_S long: look that far back for overlapping blocks.
    from heartline.ingestion.payloads import MAX_FRAME_DURATION_S

    stmt = select(EcgBlock).where(
        EcgBlock.patient_id == patient_id,
        EcgBlock.start_time < stop,
        EcgBlock.start_time >= start - timedelta(seconds=MAX_FRAME_DURATION_S),
    )
    if device_id is not None:
        stmt = stmt.where(EcgBlock.device_id == device_id)
    stmt = stmt.order_by(EcgBlock.device_id, EcgBlock.start_time, EcgBlock.seq)
    out: list[EcgSegment] = []
    for block in session.scalars(stmt):
        t0 = block.start_time
        i0 = max(0, int(np.ceil((start - t0).total_seconds() * block.fs_hz - 1e-9)))
        i1 = min(block.n_samples, int(np.ceil((stop - t0).total_seconds() * block.fs_hz - 1e-9)))
        if i1 <= i0:
            continue
        signal = decode_block(block)[i0:i1]
        out.append(
            EcgSegment(
                device_id=block.device_id,
                seq=int(block.seq),
                start_time=t0 + timedelta(seconds=i0 / block.fs_hz),
                fs=float(block.fs_hz),
                lead_names=tuple(block.lead_names),
                signal_mv=signal,
                first_sample_idx=i0,
            )
        )
    return out


def vitals_between(
    session: Session, *, patient_id: str, start: datetime, stop: datetime
) -> list[VitalSign]:
    """Vital-sign rows of a patient with ``start <= time < stop``, oldest first."""
    start, stop = _window(start, stop)
    stmt = (
        select(VitalSign)
        .where(VitalSign.patient_id == patient_id, VitalSign.time >= start, VitalSign.time < stop)
        .order_by(VitalSign.time, VitalSign.id)
    )
    return list(session.scalars(stmt))


# --------------------------------------------------------------------------------------- beats
def add_beats(session: Session, *, patient_id: str, beats: Iterable[BeatIn]) -> int:
    """Store beats idempotently (``(device_id, seq, sample_idx)`` unique).

    Returns
    -------
    int
        Number of beats newly stored (replayed ones are skipped).
    """
    return add_beats_by_patient(session, beats={patient_id: beats})


def add_beats_by_patient(session: Session, *, beats: Mapping[str, Iterable[BeatIn]]) -> int:
    """:func:`add_beats` for several patients in one statement (``patient_id -> beats``)."""
    rows: list[tuple[Any, ...]] = []
    for patient_id, patient_beats in beats.items():
        _beat_rows(rows, patient_id, patient_beats)
    return _insert_beat_rows(session, rows)


def _beat_rows(rows: list[tuple[Any, ...]], patient_id: str, beats: Iterable[BeatIn]) -> None:
    for b in beats:
        if b.sample_idx < 0:
            raise ValueError(f"sample_idx must be >= 0, got {b.sample_idx}")
        if b.confidence is not None and not 0.0 <= b.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {b.confidence}")
        rows.append(
            (
                patient_id,
                b.device_id,
                b.seq,
                b.sample_idx,
                _aware("time", b.time),
                b.label,
                dict(b.probabilities) if b.probabilities is not None else None,
                b.confidence,
                b.model_version,
            )
        )


def _insert_beat_rows(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """Insert beat rows (:data:`_BEAT_COLUMNS` order); conflicting (replayed) rows are skipped."""
    # one DBAPI executemany; the database counts the rows it inserted (not the skipped ones)
    return fast_insert(
        session, Beat.__table__, _BEAT_COLUMNS, ("device_id", "seq", "sample_idx")
    ).run(session, rows)


def beats_between(
    session: Session, *, patient_id: str, start: datetime, stop: datetime, label: str | None = None
) -> list[Beat]:
    """Beats of a patient with ``start <= time < stop`` (optionally one label), oldest first."""
    start, stop = _window(start, stop)
    stmt: Select[tuple[Beat]] = select(Beat).where(
        Beat.patient_id == patient_id, Beat.time >= start, Beat.time < stop
    )
    if label is not None:
        stmt = stmt.where(Beat.label == label)
    return list(session.scalars(stmt.order_by(Beat.time, Beat.id)))


# -------------------------------------------------------------------------------------- alerts
def add_alert(
    session: Session,
    *,
    patient_id: str,
    type: str,
    severity: str,
    start: datetime,
    end: datetime | None = None,
    evidence: dict[str, Any] | None = None,
    device_id: str | None = None,
) -> Alert:
    """Store a new alert and return it (its ``id`` is set)."""
    if severity not in ALERT_SEVERITIES:
        raise ValueError(f"severity must be one of {ALERT_SEVERITIES}, got {severity!r}")
    if not type or len(type) > 64:
        raise ValueError(f"type must be 1..64 characters, got {type!r}")
    start = _aware("start", start)
    if end is not None and _aware("end", end) < start:
        raise ValueError("end must not be before start")
    values = {
        "patient_id": patient_id,
        "device_id": device_id,
        "type": type,
        "severity": severity,
        "start_time": start,
        "end_time": _aware("end", end) if end is not None else None,
        "evidence": dict(evidence or {}),
        "created_at": utcnow(),
        "acknowledged_by": None,
        "acknowledged_at": None,
    }
    # one INSERT .. RETURNING id instead of a unit-of-work flush (the stream processor adds
    # alerts one by one); the returned object is then made persistent in the session as if
    # loaded, every attribute set, so that later changes to it flush as UPDATEs
    insert = fast_insert(session, Alert.__table__, _ALERT_COLUMNS, returning=("id",))
    ((alert_id,),) = insert.run_returning(session, [tuple(values[c] for c in _ALERT_COLUMNS)])
    alert = Alert(id=int(alert_id), **values)
    make_transient_to_detached(alert)
    session.add(alert)
    return alert


def close_alert(session: Session, *, alert_id: int, end: datetime) -> Alert:
    """Set the end time of an ongoing alert."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFoundError(f"no alert with id {alert_id}")
    end = _aware("end", end)
    if end < alert.start_time:
        raise ValueError("end must not be before the alert's start")
    alert.end_time = end
    session.flush()
    return alert


def acknowledge_alert(
    session: Session, *, alert_id: int, user: str, at: datetime | None = None
) -> Alert:
    """Record that ``user`` acknowledged an alert; the first acknowledgement is kept.

    Raises
    ------
    AlertNotFoundError
        No alert has ``alert_id``.
    """
    if not user:
        raise ValueError("user must name who acknowledges the alert")
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFoundError(f"no alert with id {alert_id}")
    if alert.acknowledged_at is None:
        alert.acknowledged_by = user
        alert.acknowledged_at = _aware("at", at) if at is not None else utcnow()
        session.flush()
    return alert


def alerts_between(
    session: Session,
    *,
    patient_id: str | None,
    start: datetime,
    stop: datetime,
    unacknowledged_only: bool = False,
    severities: Sequence[str] | None = None,
) -> list[Alert]:
    """Alerts starting in ``[start, stop)`` (all patients when ``patient_id`` is None), oldest first."""
    start, stop = _window(start, stop)
    stmt = select(Alert).where(Alert.start_time >= start, Alert.start_time < stop)
    if patient_id is not None:
        stmt = stmt.where(Alert.patient_id == patient_id)
    if unacknowledged_only:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    if severities is not None:
        stmt = stmt.where(Alert.severity.in_(list(severities)))
    return list(session.scalars(stmt.order_by(Alert.start_time, Alert.id)))


# ---------------------------------------------------------------------------------- quarantine
def quarantine(
    session: Session,
    *,
    payload: bytes,
    reason: str,
    topic: str | None = None,
    device_id: str | None = None,
    received_at: datetime | None = None,
) -> QuarantinedPayload:
    """Keep a refused payload verbatim with the reason it was refused."""
    row = QuarantinedPayload(
        payload=bytes(payload),
        reason=reason,
        topic=topic[:255] if topic else None,
        device_id=device_id[:64] if device_id else None,
        received_at=_aware("received_at", received_at) if received_at is not None else utcnow(),
    )
    session.add(row)
    session.flush()
    return row


_ALERT_COLUMNS = (
    "patient_id",
    "device_id",
    "type",
    "severity",
    "start_time",
    "end_time",
    "evidence",
    "created_at",
    "acknowledged_by",
    "acknowledged_at",
)


def update_alerts(session: Session, *, changes: Sequence[dict[str, Any]]) -> None:
    """Update many stored alerts in one ``executemany`` (no ORM objects loaded).

    Parameters
    ----------
    session : Session
        Caller's session; nothing is committed here.
    changes : sequence of dict
        Each with ``id`` (``alerts.id``), ``severity``, ``end`` (aware datetime or ``None``)
        and ``evidence`` (dict): the alert's new state. An ``id`` that does not exist changes
        nothing.
    """
    rows: dict[int, tuple[Any, ...]] = {}  # the last change of an id wins, as in sequence
    for c in changes:
        if c["severity"] not in ALERT_SEVERITIES:
            raise ValueError(f"severity must be one of {ALERT_SEVERITIES}, got {c['severity']!r}")
        end = c.get("end")
        alert_id = int(c["id"])
        rows.pop(alert_id, None)
        rows[alert_id] = (
            alert_id,
            c["severity"],
            _aware("end", end) if end is not None else None,
            dict(c.get("evidence") or {}),
        )
    if rows:
        alert_update(session).run(session, list(rows.values()))
