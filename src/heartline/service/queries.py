"""Read-only queries of the service that the storage repository does not offer.

They read the live-pipeline tables (never write them) and take keyword-only arguments like the
repository functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from heartline.storage.tables import Alert, Beat, EcgBlock, FrameRecord, VitalSign

__all__ = [
    "beat_counts",
    "count_open_alerts",
    "heart_rate_from_beats",
    "last_update",
    "latest_ecg_end",
    "latest_heart_rate",
]


def latest_ecg_end(session: Session, *, patient_id: str) -> datetime | None:
    """End time (device clock) of the patient's newest stored ECG block."""
    block = session.execute(
        select(EcgBlock.start_time, EcgBlock.n_samples, EcgBlock.fs_hz)
        .where(EcgBlock.patient_id == patient_id)
        .order_by(EcgBlock.start_time.desc())
        .limit(1)
    ).first()
    if block is None:
        return None
    start, n, fs = block
    return start + timedelta(seconds=n / fs)


def last_update(session: Session, *, patient_id: str) -> datetime | None:
    """Server receipt time of the patient's newest frame."""
    return session.scalar(
        select(func.max(FrameRecord.received_at)).where(FrameRecord.patient_id == patient_id)
    )


def heart_rate_from_beats(times: list[datetime]) -> float | None:
    """Heart rate (bpm) from beat times: 60 / median RR of plausible intervals (0.2-3 s)."""
    if len(times) < 3:
        return None
    t = np.array([x.timestamp() for x in times])
    rr = np.diff(np.sort(t))
    rr = rr[(rr > 0.2) & (rr < 3.0)]
    if rr.size < 2:
        return None
    return float(60.0 / np.median(rr))


def latest_heart_rate(
    session: Session, *, patient_id: str, before: datetime | None = None, max_age_s: float = 60.0
) -> float | None:
    """Newest heart rate: the latest vital ``hr_bpm``, else the rate of the newest beats.

    Only data younger than ``max_age_s`` (relative to the newest beat/vital) counts.
    """
    stmt = (
        select(VitalSign.hr_bpm, VitalSign.time)
        .where(VitalSign.patient_id == patient_id, VitalSign.hr_bpm.is_not(None))
        .order_by(VitalSign.time.desc())
        .limit(1)
    )
    if before is not None:
        stmt = stmt.where(VitalSign.time < before)
    vital = session.execute(stmt).first()
    bstmt = select(Beat.time).where(Beat.patient_id == patient_id).order_by(Beat.time.desc())
    if before is not None:
        bstmt = bstmt.where(Beat.time < before)
    times = list(session.scalars(bstmt.limit(12)))
    beat_hr = None
    if times and (vital is None or times[0] > vital[1] + timedelta(seconds=max_age_s)):
        recent = [x for x in times if (times[0] - x).total_seconds() <= max_age_s]
        beat_hr = heart_rate_from_beats(recent)
    if beat_hr is not None:
        return beat_hr
    return float(vital[0]) if vital is not None else None


def beat_counts(
    session: Session, *, patient_id: str, start: datetime, stop: datetime
) -> dict[str, int]:
    """Number of beats per label in ``[start, stop)``; unlabelled beats count as ``unclassified``."""
    rows = session.execute(
        select(Beat.label, func.count(Beat.id))
        .where(Beat.patient_id == patient_id, Beat.time >= start, Beat.time < stop)
        .group_by(Beat.label)
    ).all()
    counts = {c: 0 for c in ("N", "S", "V", "F", "Q")}
    for label, n in rows:
        counts[label if label is not None else "unclassified"] = counts.get(
            label or "unclassified", 0
        ) + int(n)
    return counts


def count_open_alerts(session: Session, *, patient_id: str) -> int:
    """Alerts of the patient still open (no end time) and not acknowledged."""
    return int(
        session.scalar(
            select(func.count(Alert.id)).where(
                Alert.patient_id == patient_id,
                Alert.end_time.is_(None),
                Alert.acknowledged_at.is_(None),
            )
        )
        or 0
    )
