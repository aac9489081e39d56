"""Alerts: list and filter, read one, acknowledge (409 when already acknowledged), explain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from sqlalchemy.orm import Session

from heartline.service.deps import CurrentUser, SessionDep
from heartline.service.routes._common import (
    PatientIdPath,
    access_patient,
    resolve_window,
)
from heartline.service.routes.patients import DAY_S, End, Start, ecg_window
from heartline.service.schemas import AlertExplanation, AlertPublic, AlertState, BeatPublic
from heartline.service.security import authorize_patient, require_role
from heartline.storage import repository as repo
from heartline.storage.tables import ALERT_SEVERITIES, Alert, Beat

router = APIRouter(tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: One of :data:`~heartline.storage.tables.ALERT_SEVERITIES` (in the spec, so clients know).
Severity = Literal[ALERT_SEVERITIES]  # type: ignore[valid-type]

#: Seconds of ECG shown before the first and after the last evidence of an alert.
EXPLAIN_MARGIN_S = 3.0
#: Longest strip an explanation shows.
EXPLAIN_MAX_S = 60.0


def visible_alert(session: Session, *, user, alert_id: int) -> Alert:
    """The alert if ``user`` may see its patient; the same 404 when it is missing or foreign.

    Alert ids are sequential: answering 403 for foreign alerts and 404 for missing ones would let
    anyone count the alerts of other patients, so both answer ``404 alert not found``.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise _alert_not_found()
    try:
        authorize_patient(session, user=user, patient_id=alert.patient_id)
    except HTTPException:
        raise _alert_not_found() from None
    return alert


def _alert_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="alert not found")


def _alert_for(session: Session, *, user, request: Request, alert_id: int, resource: str) -> Alert:
    """The alert (404 when missing or foreign, alike), after auditing the read."""
    alert = visible_alert(session, user=user, alert_id=alert_id)
    access_patient(
        session, user=user, request=request, patient_id=alert.patient_id, resource=resource
    )
    return alert


@router.get(
    "/patients/{patient_id}/alerts",
    response_model=list[AlertPublic],
    responses={403: {"description": "not your patient"}, 404: {"description": "no such patient"}},
)
def list_alerts(
    patient_id: PatientIdPath,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    severity: Annotated[
        list[Severity] | None, Query(description=f"any of {', '.join(ALERT_SEVERITIES)}")
    ] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    state: AlertState | None = None,
) -> list[AlertPublic]:
    """Alerts starting in ``[start, end)`` (default: the last 7 days; at most 366), filtered."""
    access_patient(session, user=user, request=request, patient_id=patient_id, resource="alerts")
    start, end = resolve_window(start, end, default_s=7 * DAY_S, max_s=366 * DAY_S)
    rows = repo.alerts_between(
        session,
        patient_id=patient_id,
        start=start,
        stop=end,
        unacknowledged_only=state == "unacknowledged",
        severities=severity,
    )
    if kind is not None:
        rows = [a for a in rows if a.type == kind]
    if state == "open":
        rows = [a for a in rows if a.end_time is None]
    elif state == "closed":
        rows = [a for a in rows if a.end_time is not None]
    elif state == "acknowledged":
        rows = [a for a in rows if a.acknowledged_at is not None]
    return [AlertPublic.from_row(a) for a in reversed(rows)]  # newest first


_ALERT_404 = {404: {"description": "no such alert, or one of a patient you may not see"}}


@router.get("/alerts/{alert_id}", response_model=AlertPublic, responses=_ALERT_404)
def read_alert(
    alert_id: AlertId, request: Request, user: CurrentUser, session: SessionDep
) -> AlertPublic:
    """One alert."""
    return AlertPublic.from_row(
        _alert_for(session, user=user, request=request, alert_id=alert_id, resource="alert")
    )


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertPublic,
    responses={
        403: {"description": "patients cannot acknowledge"},
        404: {"description": "no such alert, or one of a patient you may not see"},
        409: {"description": "already acknowledged"},
    },
)
def acknowledge(
    alert_id: AlertId, request: Request, user: CurrentUser, session: SessionDep
) -> AlertPublic:
    """Acknowledge an alert (clinicians of the patient, admins); 409 if already acknowledged."""
    require_role(user, "admin", "clinician")
    alert = visible_alert(session, user=user, alert_id=alert_id)
    if alert.acknowledged_at is not None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"already acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at.isoformat()}",
        )
    alert = repo.acknowledge_alert(session, alert_id=alert_id, user=user.username)
    return AlertPublic.from_row(alert)


def _parse_time(value: Any) -> datetime | None:
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str):
            t = datetime.fromisoformat(value)
            return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def evidence_window(alert: Alert) -> tuple[datetime, datetime]:
    """The strip to show for an alert, from its evidence (see :func:`explain`)."""
    ev = alert.evidence or {}
    strip = ev.get("strip") if isinstance(ev.get("strip"), dict) else None
    if strip:
        a, b = _parse_time(strip.get("start")), _parse_time(strip.get("stop") or strip.get("end"))
        if a is not None and b is not None and b > a:
            return a, min(b, a + timedelta(seconds=EXPLAIN_MAX_S))
    times = [t for t in (_parse_time(x) for x in _evidence_list(ev, "times_s")) if t is not None]
    if times:
        a, b = (
            min(times) - timedelta(seconds=EXPLAIN_MARGIN_S),
            max(times) + timedelta(seconds=EXPLAIN_MARGIN_S),
        )
    else:
        a = alert.start_time - timedelta(seconds=2 * EXPLAIN_MARGIN_S)
        b = (alert.end_time or alert.start_time) + timedelta(seconds=2 * EXPLAIN_MARGIN_S)
    return a, min(b, a + timedelta(seconds=EXPLAIN_MAX_S))


def _evidence_list(ev: dict[str, Any], key: str) -> list[Any]:
    out: list[Any] = []
    for part in ("trigger", "peak", "latest"):
        sub = ev.get(part)
        if isinstance(sub, dict) and isinstance(sub.get(key), list):
            out.extend(sub[key])
    if isinstance(ev.get(key), list):
        out.extend(ev[key])
    return out


def _highlighted(ev: dict[str, Any], beats: list[Beat]) -> list[int]:
    ids = {x for x in _evidence_list(ev, "beat_ids") if isinstance(x, int)}
    pairs: set[tuple[int, int]] = set()
    for item in ev.get("beats", []) if isinstance(ev.get("beats"), list) else []:
        if isinstance(item, int):
            ids.add(item)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.add((int(item[0]), int(item[1])))
        elif isinstance(item, dict) and "seq" in item and "sample_idx" in item:
            pairs.add((int(item["seq"]), int(item["sample_idx"])))
    times = [
        t.timestamp()
        for t in (_parse_time(x) for x in _evidence_list(ev, "times_s"))
        if t is not None
    ]
    out = []
    for b in beats:
        ts = b.time.timestamp()
        if b.id in ids or (b.seq, b.sample_idx) in pairs or any(abs(ts - t) < 0.005 for t in times):
            out.append(b.id)
    return out


@router.get("/alerts/{alert_id}/explanation", response_model=AlertExplanation, responses=_ALERT_404)
def explain(
    alert_id: AlertId, request: Request, user: CurrentUser, session: SessionDep
) -> AlertExplanation:
    """The evidence of an alert: the ECG strip around it and its beats, the triggering ones flagged.

    The strip comes from ``evidence["strip"]`` (``start``/``stop`` ISO times) when present, else
    spans the evidence beat times (``times_s`` of ``trigger``/``peak``/``latest``, epoch seconds)
    with a 3 s margin, else the alert's own start/end. Triggering beats are matched by database
    id (``beat_ids``, or integers in ``beats``), by ``(seq, sample_idx)`` pairs in ``beats``, or
    by evidence time. The strip is capped at 60 s.
    """
    alert = _alert_for(
        session, user=user, request=request, alert_id=alert_id, resource="alert-explanation"
    )
    start, end = evidence_window(alert)
    beats = repo.beats_between(session, patient_id=alert.patient_id, start=start, stop=end)
    return AlertExplanation(
        alert=AlertPublic.from_row(alert),
        ecg=ecg_window(session, patient_id=alert.patient_id, start=start, end=end),
        beats=[BeatPublic.model_validate(b) for b in beats],
        highlighted_beat_ids=_highlighted(alert.evidence or {}, beats),
    )
