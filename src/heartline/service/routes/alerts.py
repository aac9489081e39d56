"""Alerts: list and filter (by time or priority), read one, acknowledge (409 when already
acknowledged), silence for a set time (audited), explain (by alarm type)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from heartline.alerts.describe import alarm_sort_key
from heartline.service.deps import CurrentUser, SessionDep
from heartline.service.routes._common import (
    PatientIdPath,
    access_patient,
    authorize_or_hide,
    not_found,
    resolve_window,
)
from heartline.service.routes.explain import build_explanation
from heartline.service.routes.patients import DAY_S, End, Start
from heartline.service.schemas import AlertExplanation, AlertPublic, AlertState, SilenceCreate
from heartline.service.security import audit_action, require_role
from heartline.storage import repository as repo
from heartline.storage.station_tables import AlarmSilence
from heartline.storage.tables import ALERT_SEVERITIES, Alert

router = APIRouter(tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: One of :data:`~heartline.storage.tables.ALERT_SEVERITIES` (in the spec, so clients know).
Severity = Literal[ALERT_SEVERITIES]  # type: ignore[valid-type]


def request_now(request: Request) -> datetime:
    """The service's clock: ``app.state.clock()`` when set (tests simulate time), else now."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def visible_alert(session: Session, *, user, alert_id: int) -> Alert:
    """The alert if ``user`` may see its patient; the same 404 when it is missing or foreign.

    Alert ids are sequential: answering 403 for foreign alerts and 404 for missing ones would let
    anyone count the alerts of other patients, so both answer ``404 alert not found``.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise not_found("alert")
    authorize_or_hide(session, user=user, patient_id=alert.patient_id, hidden=not_found("alert"))
    return alert


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
    order: Annotated[
        Literal["time", "priority"],
        Query(description="time: newest first; priority: IEC 60601-1-8 priority, then newest"),
    ] = "time",
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
    out = public_alerts(session, list(reversed(rows)), now=request_now(request))  # newest first
    return priority_order(out) if order == "priority" else out


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
    audit_action(
        session,
        user=user,
        request=request,
        action="acknowledge",
        resource=f"alert/{alert.id}",
        patient_id=alert.patient_id,
        at=alert.acknowledged_at,
    )
    return AlertPublic.from_row(alert)


def silenced_until(session: Session, *, alert_ids: list[int], now: datetime) -> dict[int, datetime]:
    """Latest silence end per alert id, for the silences still running at ``now``."""
    if not alert_ids:
        return {}
    rows = session.execute(
        select(AlarmSilence.alert_id, func.max(AlarmSilence.until))
        .where(AlarmSilence.alert_id.in_(alert_ids), AlarmSilence.until > now)
        .group_by(AlarmSilence.alert_id)
    ).all()
    return {int(a): u for a, u in rows}


def public_alerts(session: Session, rows: list[Alert], *, now: datetime) -> list[AlertPublic]:
    """``AlertPublic`` of ``rows`` with their running silences."""
    silences = silenced_until(session, alert_ids=[a.id for a in rows], now=now)
    return [AlertPublic.from_row(a, silenced_until=silences.get(a.id)) for a in rows]


def priority_order(alerts: list[AlertPublic]) -> list[AlertPublic]:
    """Alerts by IEC 60601-1-8 priority, physiological before technical, open before closed,
    unacknowledged first, then newest first (:func:`heartline.alerts.describe.alarm_sort_key`)."""
    return sorted(
        alerts,
        key=lambda a: alarm_sort_key(
            priority=a.priority,
            category=a.category,
            is_open=a.open,
            acknowledged=a.acknowledged_at is not None,
            start=a.start_time,
        ),
    )


@router.post(
    "/alerts/{alert_id}/silence",
    response_model=AlertPublic,
    responses={
        403: {"description": "patients cannot silence; foreign patient"},
        404: {"description": "no such alert"},
    },
)
def silence(
    alert_id: AlertId,
    body: SilenceCreate,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
) -> AlertPublic:
    """Silence an alarm's audible and flashing cue for ``minutes`` (1-30); audited.

    The alarm stays listed and coloured by its priority; only its cue pauses (IEC 60601-1-8
    "audio paused"). A new silence replaces the running one's end.
    """
    require_role(user, "admin", "clinician")
    alert = visible_alert(session, user=user, alert_id=alert_id)
    now = request_now(request)
    until = now + timedelta(minutes=body.minutes)
    session.add(
        AlarmSilence(alert_id=alert.id, silenced_by=user.username, silenced_at=now, until=until)
    )
    audit_action(
        session,
        user=user,
        request=request,
        action="silence",
        resource=f"alert/{alert.id} for {body.minutes} min",
        patient_id=alert.patient_id,
        at=now,
    )
    session.flush()
    return AlertPublic.from_row(alert, silenced_until=until)


@router.get("/alerts/{alert_id}/explanation", response_model=AlertExplanation, responses=_ALERT_404)
def explain(
    alert_id: AlertId, request: Request, user: CurrentUser, session: SessionDep
) -> AlertExplanation:
    """Why the alarm fired, by alarm type (see :mod:`heartline.service.routes.explain`).

    Rhythm alarms: RR tachogram (``rr``) with the statistics that fired and their thresholds;
    beat alarms: a short strip with only the involved beats highlighted; NEWS2: the score by
    vital sign (``news2``); VF/VT: ``onset`` and ``offset``. ``attributions`` holds per-sample
    attributions when an explanation model provides them.
    """
    alert = _alert_for(
        session, user=user, request=request, alert_id=alert_id, resource="alert-explanation"
    )
    now = request_now(request)
    until = silenced_until(session, alert_ids=[alert.id], now=now).get(alert.id)
    return build_explanation(session, alert, silenced_until=until)
