"""The central station: one tile per visible patient, sorted by the priority of its top alarm.

``GET /api/v1/station`` answers the tiles once; ``GET /api/v1/stream`` pushes them
(:mod:`heartline.service.routes.stream`). A tile carries the heart rate, SpO2 (with the time it
was measured) and the highest *active* alarm: open, or (IEC 60601-1-8 latching) a high-priority
alarm that ended but was not acknowledged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from heartline.alerts.describe import PRIORITIES
from heartline.service import queries
from heartline.service.deps import CurrentUser, SessionDep
from heartline.service.routes.alerts import priority_order, public_alerts, request_now
from heartline.service.schemas import AlertPublic
from heartline.service.security import audit_read
from heartline.storage import security_repository as srepo
from heartline.storage.security_tables import User
from heartline.storage.tables import Alert, VitalSign

__all__ = ["StationTile", "router", "station_tiles"]

router = APIRouter(tags=["station"])

#: How far back an unacknowledged alarm can still be active (s).
ACTIVE_LOOKBACK_S = 24 * 3600.0
#: Vitals older than this are not shown on a tile (s).
VITALS_MAX_AGE_S = 15 * 60.0


class VitalValue(BaseModel):
    """A vital sign with its unit and time of measurement."""

    value: float
    unit: str
    time: datetime


class StationTile(BaseModel):
    """One patient on the central station."""

    patient_id: str
    display_name: str | None
    hr_bpm: float | None = Field(
        description="latest heart rate: the device's, else from the beats (newer by 60 s wins)"
    )
    spo2: VitalValue | None
    skin_temp: VitalValue | None = Field(description="skin temperature (not core temperature)")
    last_update: datetime | None
    priority: Literal["high", "medium", "low"] | None = Field(
        description="priority of the top active physiological alarm (null: none)"
    )
    technical: bool = Field(description="a technical alarm (signal, no data) is active")
    top_alarm: AlertPublic | None
    active_alarms: int


def active_alerts(session: Session, *, patient_id: str, now: datetime) -> list[Alert]:
    """Open alerts, and unacknowledged ones of the last 24 h (latching is decided by priority)."""
    since = now - timedelta(seconds=ACTIVE_LOOKBACK_S)
    stmt = select(Alert).where(
        Alert.patient_id == patient_id,
        or_(
            Alert.end_time.is_(None),
            (Alert.start_time >= since) & Alert.acknowledged_at.is_(None),
        ),
    )
    return list(session.scalars(stmt))


def _latest_vital(rows: list[VitalSign], attr: str, unit: str) -> VitalValue | None:
    for r in reversed(rows):
        v = getattr(r, attr)
        if v is not None:
            return VitalValue(value=float(v), unit=unit, time=r.time)
    return None


def station_tiles(session: Session, *, user: User, now: datetime) -> list[StationTile]:
    """The tiles of every patient ``user`` may see, most urgent first (no audit rows)."""
    tiles = []
    for p in srepo.patients_visible(session, user=user):
        rows = active_alerts(session, patient_id=p.id, now=now)
        alerts = [
            a
            for a in public_alerts(session, rows, now=now)
            if a.open or (a.priority == "high" and a.acknowledged_at is None)
        ]
        ordered = priority_order(alerts)
        physio = [a for a in ordered if a.category == "physiological"]
        vitals = list(
            session.scalars(
                select(VitalSign)
                .where(
                    VitalSign.patient_id == p.id,
                    VitalSign.time >= now - timedelta(seconds=VITALS_MAX_AGE_S),
                )
                .order_by(VitalSign.time.desc(), VitalSign.id.desc())
                .limit(20)
            )
        )[::-1]
        tiles.append(
            StationTile(
                patient_id=p.id,
                display_name=p.display_name,
                hr_bpm=queries.latest_heart_rate(session, patient_id=p.id),
                spo2=_latest_vital(vitals, "spo2_pct", "%"),
                skin_temp=_latest_vital(vitals, "temp_c", "°C"),
                last_update=queries.last_update(session, patient_id=p.id),
                priority=physio[0].priority if physio else None,  # type: ignore[arg-type]
                technical=any(a.category == "technical" for a in ordered),
                top_alarm=ordered[0] if ordered else None,
                active_alarms=len(ordered),
            )
        )
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    tiles.sort(
        key=lambda t: (
            rank.get(t.priority or "", len(PRIORITIES)),
            0 if t.technical else 1,
            -(t.top_alarm.start_time.timestamp() if t.top_alarm else 0.0),
            t.display_name or t.patient_id,
        )
    )
    return tiles


@router.get("/station", response_model=list[StationTile])
def read_station(request: Request, user: CurrentUser, session: SessionDep) -> list[StationTile]:
    """Central-station tiles of every visible patient, most urgent alarm first (audited)."""
    tiles = station_tiles(session, user=user, now=request_now(request))
    for t in tiles:
        audit_read(session, user=user, request=request, resource="station", patient_id=t.patient_id)
    return tiles
