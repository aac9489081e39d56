"""``GET /api/v1/stream``: server-sent events for the dashboard (push, not polling).

One authenticated stream per viewer (a browser tab names itself with ``viewer``; a second
stream of the same user and viewer replaces the first) carries everything the dashboard
shows:

``station``
    The central-station tiles (:func:`heartline.service.routes.station.station_tiles`) whenever
    they change.
``ecg``
    New ECG of every visible patient: all leads for the ``focus`` patient, the first lead for
    the others (their tiles).
``beats``
    New classified beats of the focus patient (labels on its strip).
``alerts``
    The focus patient's alarms, by priority, whenever they change.
``vitals``
    The focus patient's latest vitals, each with its unit and time.
``expired``
    The access token has expired (the client refreshes it and reconnects); the stream ends.
``replaced``
    The same viewer opened a newer stream; this one ends.

The bearer token travels in the ``Authorization`` header (the dashboard reads the stream with
``fetch``, not ``EventSource``, which cannot send headers), so it never appears in a URL or a
log. The server reads the database every :data:`TICK_S` seconds for new rows (the stream
processor writes them there); browsers no longer poll four endpoints each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio
import jwt
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from heartline.service.deps import CurrentUser, SessionDep, SettingsDep, oauth2_scheme
from heartline.service.routes.alerts import priority_order, public_alerts, request_now
from heartline.service.routes.station import station_tiles
from heartline.service.security import audit_read, authorize_patient, decode_access_token
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo
from heartline.storage.tables import VitalSign

__all__ = ["MAX_STREAMS_PER_USER", "TICK_S", "router"]

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)

#: Seconds between two reads of the database by one stream.
TICK_S = 0.5
#: Ticks between two computations of the station tiles (ECG goes out every tick).
STATION_EVERY_TICKS = 4
#: Seconds between keep-alive comments when nothing else is sent.
KEEPALIVE_S = 15.0
#: Streams one user may hold at once (one per tab or station screen).
MAX_STREAMS_PER_USER = 8
#: Seconds of ECG sent when a stream starts: the focus patient's strip, and the tiles'.
BACKLOG_S = 20.0
TILE_BACKLOG_S = 6.0
#: Seconds of alarms listed for the focus patient.
ALERTS_WINDOW_S = 24 * 3600.0


def _registry(request: Request) -> dict[tuple[int, str], asyncio.Event]:
    reg = getattr(request.app.state, "streams", None)
    if reg is None:
        reg = {}
        request.app.state.streams = reg
    return reg


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


class _StreamState:
    """What one stream has already sent."""

    def __init__(self, focus: str | None) -> None:
        self.focus = focus
        self.ecg_end: dict[str, datetime] = {}
        self.sent_frames: set[tuple[str, int, str]] = set()
        self.last_beat: datetime | None = None
        self.digests: dict[str, str] = {}
        self.ticks = 0
        self.patients: list[str] = []

    def changed(self, key: str, payload: Any) -> bool:
        d = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        if self.digests.get(key) == d:
            return False
        self.digests[key] = d
        return True


def _tick(request: Request, user_id: int, st: _StreamState) -> list[tuple[str, Any]]:
    """One read of the database: the events to send (runs in a worker thread)."""
    from heartline.storage.security_tables import User

    out: list[tuple[str, Any]] = []
    now = request_now(request)
    factory = request.app.state.database.factory()
    with factory() as session:
        user = session.get(User, user_id)
        if user is None or not user.is_active:
            return [("expired", {"reason": "user no longer active"})]
        if st.ticks % STATION_EVERY_TICKS == 0:
            tiles = station_tiles(session, user=user, now=now)
            st.patients = [t.patient_id for t in tiles]
            payload = [t.model_dump(mode="json") for t in tiles]
            if st.changed("station", payload):
                out.append(("station", payload))
        st.ticks += 1
        for pid in st.patients:
            focus = pid == st.focus
            start = st.ecg_end.get(pid)
            if start is None:
                from heartline.service import queries

                end = queries.latest_ecg_end(session, patient_id=pid)
                start = (end or now) - timedelta(seconds=BACKLOG_S if focus else TILE_BACKLOG_S)
            segs = repo.ecg_between(
                session, patient_id=pid, start=start, stop=max(now, start) + timedelta(seconds=60)
            )
            new = []
            for s in segs:
                key = (s.device_id, s.seq, s.start_time.isoformat())
                if key in st.sent_frames:
                    continue
                st.sent_frames.add(key)
                leads = (
                    range(s.signal_mv.shape[1]) if focus else range(min(1, s.signal_mv.shape[1]))
                )
                new.append(
                    {
                        "device_id": s.device_id,
                        "seq": s.seq,
                        "start_time": s.start_time.isoformat(),
                        "fs_hz": s.fs,
                        "lead_names": [s.lead_names[i] for i in leads],
                        "samples_mv": [
                            [round(float(v), 3) for v in s.signal_mv[:, i]] for i in leads
                        ],
                    }
                )
                seg_end = s.start_time + timedelta(seconds=s.signal_mv.shape[0] / s.fs)
                if seg_end > st.ecg_end.get(pid, start):
                    st.ecg_end[pid] = seg_end
            st.ecg_end.setdefault(pid, start)
            if new:
                out.append(("ecg", {"patient_id": pid, "focus": focus, "segments": new}))
        if len(st.sent_frames) > 20_000:
            st.sent_frames.clear()
        if st.focus is not None:
            out.extend(_focus_events(session, st, now))
    return out


def _focus_events(session: Any, st: _StreamState, now: datetime) -> list[tuple[str, Any]]:
    from sqlalchemy import select

    pid = st.focus
    assert pid is not None
    out: list[tuple[str, Any]] = []
    since = st.last_beat or (st.ecg_end.get(pid, now) - timedelta(seconds=BACKLOG_S + 2))
    beats = repo.beats_between(
        session, patient_id=pid, start=since, stop=max(now, since) + timedelta(seconds=60)
    )
    beats = [b for b in beats if st.last_beat is None or b.time > st.last_beat]
    if beats:
        st.last_beat = beats[-1].time
        out.append(
            (
                "beats",
                {
                    "patient_id": pid,
                    "beats": [
                        {
                            "id": b.id,
                            "time": b.time.isoformat(),
                            "label": b.label,
                            "confidence": b.confidence,
                        }
                        for b in beats
                    ],
                },
            )
        )
    rows = repo.alerts_between(
        session,
        patient_id=pid,
        start=now - timedelta(seconds=ALERTS_WINDOW_S),
        stop=now + timedelta(days=1),
    )
    alerts = priority_order(public_alerts(session, list(reversed(rows)), now=now))
    payload = {"patient_id": pid, "alerts": [a.model_dump(mode="json") for a in alerts]}
    if st.changed("alerts", payload):
        out.append(("alerts", payload))
    vit = list(
        session.scalars(
            select(VitalSign)
            .where(VitalSign.patient_id == pid, VitalSign.time >= now - timedelta(hours=1))
            .order_by(VitalSign.time.desc(), VitalSign.id.desc())
            .limit(20)
        )
    )
    latest: dict[str, Any] = {}
    for name, attr, unit in (
        ("hr", "hr_bpm", "bpm"),
        ("spo2", "spo2_pct", "%"),
        ("skin_temp", "temp_c", "°C"),
        ("sbp", "sbp_mmhg", "mmHg"),
        ("dbp", "dbp_mmhg", "mmHg"),
    ):
        for r in vit:
            v = getattr(r, attr)
            if v is not None:
                latest[name] = {"value": float(v), "unit": unit, "time": _iso(r.time)}
                break
    payload = {"patient_id": pid, "vitals": latest}
    if st.changed("vitals", payload):
        out.append(("vitals", payload))
    return out


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        403: {"description": "focus patient not accessible"},
        429: {"description": "too many open streams for this user"},
    },
)
async def stream(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    viewer: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "default",
    focus: Annotated[str | None, Query(max_length=64)] = None,
    max_s: Annotated[float, Query(gt=0, le=3600, description="end the stream after max_s")] = 3600,
) -> StreamingResponse:
    """Server-sent events of the station and the focus patient (see the module docstring)."""
    if focus is not None:
        authorize_patient(session, user=user, patient_id=focus)
        audit_read(session, user=user, request=request, resource="stream", patient_id=focus)
    for p in srepo.patients_visible(session, user=user):
        if p.id != focus:
            audit_read(session, user=user, request=request, resource="stream", patient_id=p.id)
    try:
        claims = decode_access_token(settings=settings, token=token or "")
        expires_at = claims.expires_at
    except jwt.InvalidTokenError:  # get_current_user was overridden (tests): no expiry of ours
        expires_at = request_now(request) + timedelta(seconds=max_s)
    reg = _registry(request)
    key = (user.id, viewer)
    old = reg.get(key)
    if old is not None:
        old.set()
    elif sum(1 for u, _v in reg if u == user.id) >= MAX_STREAMS_PER_USER:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"at most {MAX_STREAMS_PER_USER} open streams per user",
        )
    cancel = asyncio.Event()
    reg[key] = cancel
    st = _StreamState(focus)
    user_id = user.id
    loop_start = anyio.current_time()

    async def events() -> AsyncIterator[bytes]:
        last_sent = anyio.current_time()
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                if cancel.is_set():
                    yield _sse("replaced", {})
                    return
                if request_now(request) >= expires_at:
                    yield _sse("expired", {"reason": "access token expired"})
                    return
                if anyio.current_time() - loop_start > max_s:
                    return
                if await request.is_disconnected():
                    return
                for name, data in await anyio.to_thread.run_sync(_tick, request, user_id, st):
                    yield _sse(name, data)
                    last_sent = anyio.current_time()
                    if name == "expired":
                        return
                if anyio.current_time() - last_sent > KEEPALIVE_S:
                    yield b": keep-alive\n\n"
                    last_sent = anyio.current_time()
                try:
                    await asyncio.wait_for(cancel.wait(), timeout=TICK_S)
                except TimeoutError:
                    pass
        finally:
            if reg.get(key) is cancel:
                del reg[key]

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
