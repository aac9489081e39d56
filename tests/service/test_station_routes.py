"""Routes of the central station: alarm descriptions and priorities, silence and acknowledge
(audited), station tiles, explanations by alarm type, the event stream, refresh tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.service.conftest import T0, make_settings, seed_world

from heartline.alerts.describe import alarm_priority, describe_alert, format_duration
from heartline.service import create_app
from heartline.service.routes.session import hash_refresh_token
from heartline.storage import repository as repo
from heartline.storage.engine import session_scope
from heartline.storage.security_tables import AuditLog
from heartline.storage.station_tables import RefreshToken


@pytest.fixture
def world(db_url, tmp_path):
    return seed_world(make_settings(db_url, tmp_path))


@pytest.fixture
def app(world):
    app = create_app(world.settings)
    app.state.clock = lambda: T0 + timedelta(seconds=30)
    return app


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


# ------------------------------------------------------------------------------- describe
@pytest.mark.parametrize(
    ("kind", "severity", "values", "title", "priority"),
    [
        ("frequent_pvc", "warning", {"max_per_min": 14.2}, "Frequent PVCs: 14/min", "low"),
        ("vt", "high", {"n_beats": 7, "rate_bpm": 182.3}, "VT: 7 beats at 182 bpm", "high"),
        (
            "vt",
            "critical",
            {"n_beats": 90, "rate_bpm": 160, "sustained": True},
            "Sustained VT: 90 beats at 160 bpm",
            "high",
        ),
        ("v_couplet", "warning", {"rate_bpm": 150}, "Ventricular couplet: at 150 bpm", "low"),
        ("pause", "high", {"rr_s": 2.4, "asystole": False}, "Pause: no beat for 2.4 s", "medium"),
        (
            "pause",
            "critical",
            {"rr_s": 4.1, "asystole": True},
            "Asystole: no beat for 4.1 s",
            "high",
        ),
        (
            "tachycardia",
            "high",
            {"extreme_bpm": 156, "mean_bpm": 150},
            "Tachycardia: 156 bpm",
            "medium",
        ),
        ("ventricular_bigeminy", "warning", {"cycles": 5}, "Ventricular bigeminy: 5 cycles", "low"),
        (
            "news2",
            "critical",
            {"total": 9, "band": "high", "complete": True},
            "NEWS2 9 (high clinical risk)",
            "high",
        ),
        (
            "news2",
            "high",
            {"total": 5, "band": "medium", "complete": False},
            "NEWS2 5 (medium clinical risk), partial",
            "medium",
        ),
        ("signal_quality", "warning", {}, "Poor ECG signal", "low"),
        ("something_new", "info", {"x": 1}, "Something new", "low"),
    ],
)
def test_describe_alert_names_values_and_priorities(kind, severity, values, title, priority):
    d = describe_alert(kind, severity, {"peak": {"values": values}})
    assert d.title == title and d.priority == priority
    assert d.category == ("technical" if kind == "signal_quality" else "physiological")


def test_describe_alert_durations_come_from_the_alert_span():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    d = describe_alert(
        "af_like",
        "warning",
        {"peak": {"values": {"mean_bpm": 96}}},
        start=start,
        end=start + timedelta(seconds=130),
    )
    assert d.title == "AF for 2 min 10 s (mean 96 bpm)"
    d = describe_alert(
        "vf", "critical", {"last_evidence_s": start.timestamp() + 12}, start=start
    )  # open
    assert d.title == "VF for 12 s" and d.priority == "high"
    assert format_duration(3900) == "1 h 05 min"
    with pytest.raises(ValueError, match="unknown severity"):
        alarm_priority("vt", "urgent")


# ------------------------------------------------------------------------- alarms, station
def test_alerts_by_priority_with_titles(client, world):
    with session_scope(world.factory) as s:
        vf = repo.add_alert(
            s,
            patient_id="p1",
            type="vf",
            severity="critical",
            start=T0 + timedelta(seconds=1),
            end=T0 + timedelta(seconds=9),
            evidence={},
        )
        news = repo.add_alert(
            s,
            patient_id="p1",
            type="news2",
            severity="warning",
            start=T0 + timedelta(seconds=20),
            evidence={"peak": {"values": {"total": 5, "band": "low-medium"}}},
        )
    r = client.get(
        "/api/v1/patients/p1/alerts",
        params={"order": "priority", "start": T0.isoformat()},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 200
    rows = r.json()
    ids = [a["id"] for a in rows]
    assert ids.index(vf.id) < ids.index(news.id)  # a finished VF sits above a NEWS2 warning
    by = {a["id"]: a for a in rows}
    assert by[vf.id]["title"] == "VF for 8 s" and by[vf.id]["priority"] == "high"
    assert by[news.id]["title"].startswith("NEWS2 5") and by[news.id]["priority"] == "low"
    default = client.get(
        "/api/v1/patients/p1/alerts", params={"start": T0.isoformat()}, headers=world.auth("clin1")
    ).json()
    assert next(a["id"] for a in default) == news.id  # default order: newest first


def test_silence_and_acknowledge_are_audited(client, world):
    aid = world.alert_ids["p1"]
    assert (
        client.post(
            f"/api/v1/alerts/{aid}/silence", json={"minutes": 2}, headers=world.auth("pat1")
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/alerts/{aid}/silence", json={"minutes": 2}, headers=world.auth("clin2")
        ).status_code
        == 404  # a foreign alert answers like a missing one (no id enumeration)
    )
    for bad in (31, True, "5", 2.5):  # out of range, or not a JSON integer (schemathesis ST201)
        assert (
            client.post(
                f"/api/v1/alerts/{aid}/silence", json={"minutes": bad}, headers=world.auth("clin1")
            ).status_code
            == 422
        ), bad
    assert (
        client.post(
            "/api/v1/alerts/999999/silence", json={"minutes": 2}, headers=world.auth("admin")
        ).status_code
        == 404
    )
    r = client.post(
        f"/api/v1/alerts/{aid}/silence", json={"minutes": 2}, headers=world.auth("clin1")
    )
    assert r.status_code == 200
    assert datetime.fromisoformat(r.json()["silenced_until"]) == T0 + timedelta(seconds=150)
    listed = client.get(f"/api/v1/alerts/{aid}/explanation", headers=world.auth("clin1")).json()[
        "alert"
    ]
    assert listed["silenced_until"] is not None
    assert (
        client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=world.auth("clin1")).status_code
        == 200
    )
    with world.factory() as s:
        rows = list(
            s.scalars(select(AuditLog).where(AuditLog.action.in_(["silence", "acknowledge"])))
        )
    assert {(r.actor, r.action, r.patient_id) for r in rows} == {
        ("clin1", "silence", "p1"),
        ("clin1", "acknowledge", "p1"),
    }
    assert all(r.resource.startswith(f"alert/{aid}") for r in rows)


def test_station_tiles_sorted_by_priority_and_scoped(client, world):
    with session_scope(world.factory) as s:
        repo.add_alert(
            s,
            patient_id="p2",
            type="vf",
            severity="critical",
            start=T0 + timedelta(seconds=5),
            end=T0 + timedelta(seconds=10),
            evidence={},
        )
        # an acknowledged alarm that has ended is no longer active (a high-priority one that
        # has not been acknowledged stays, latched)
        repo.acknowledge_alert(s, alert_id=world.alert_ids["p1-closed"], user="admin")
    tiles = client.get("/api/v1/station", headers=world.auth("admin")).json()
    assert [t["patient_id"] for t in tiles] == [
        "p2",
        "p1",
    ]  # latched VF (high) before a couplet (low)
    assert tiles[0]["priority"] == "high" and tiles[0]["top_alarm"]["title"].startswith("VF")
    assert tiles[1]["priority"] == "low" and tiles[1]["spo2"]["unit"] == "%"
    assert tiles[1]["skin_temp"]["unit"] == "°C"
    mine = client.get("/api/v1/station", headers=world.auth("clin1")).json()
    assert [t["patient_id"] for t in mine] == ["p1"]
    assert client.get("/api/v1/station").status_code == 401


# ---------------------------------------------------------------------------- explanations
def test_explanation_views(client, world):
    with session_scope(world.factory) as s:
        af = repo.add_alert(
            s,
            patient_id="p1",
            type="af_like",
            severity="warning",
            start=T0,
            end=T0 + timedelta(seconds=4),
            evidence={
                "peak": {
                    "values": {
                        "nrmssd": 0.2,
                        "tpr": 0.66,
                        "shannon_entropy": 0.9,
                        "mean_bpm": 80,
                        "method": "dash2009",
                    },
                    "times_s": [T0.timestamp() + 0.4],
                }
            },
        )
        news = repo.add_alert(
            s,
            patient_id="p1",
            type="news2",
            severity="high",
            start=T0 + timedelta(seconds=3),
            evidence={
                "peak": {
                    "values": {
                        "total": 6,
                        "band": "medium",
                        "complete": False,
                        "missing": ["consciousness"],
                        "subscores": {
                            "spo2": {"value": 92, "score": 2},
                            "pulse": {"value": 118, "score": 2},
                        },
                    }
                }
            },
        )
        vf = repo.add_alert(
            s,
            patient_id="p1",
            type="vf",
            severity="critical",
            start=T0 + timedelta(seconds=1),
            end=T0 + timedelta(seconds=3),
            evidence={},
        )
    h = world.auth("clin1")
    e = client.get(f"/api/v1/alerts/{af.id}/explanation", headers=h).json()
    assert e["view"] == "rhythm" and e["highlighted_beat_ids"] == [] and len(e["rr"]["rr_ms"]) >= 3
    stats = {s["name"]: s for s in e["statistics"]}
    assert (
        stats["normalised RMSSD"]["threshold"] == 0.1 and stats["normalised RMSSD"]["fired"] is True
    )
    assert stats["Shannon entropy"]["threshold"] == 0.7
    assert e["attributions"] is None
    e = client.get(f"/api/v1/alerts/{news.id}/explanation", headers=h).json()
    rows = {r["parameter"]: r for r in e["news2"]["rows"]}
    assert e["view"] == "news2" and e["news2"]["total"] == 6 and len(rows) == 7
    assert (
        rows["spo2"]["unit"] == "%"
        and rows["spo2"]["score"] == 2
        and rows["consciousness"]["value"] is None
    )
    e = client.get(f"/api/v1/alerts/{vf.id}/explanation", headers=h).json()
    assert e["view"] == "episode" and e["onset"] and e["offset"]
    e = client.get(f"/api/v1/alerts/{world.alert_ids['p1']}/explanation", headers=h).json()
    assert e["view"] == "beats" and len(e["highlighted_beat_ids"]) >= 1
    assert (
        client.get(f"/api/v1/alerts/{af.id}/explanation", headers=world.auth("clin2")).status_code
        == 404  # a foreign alert answers like a missing one
    )


# ---------------------------------------------------------------------------------- stream
def _events(body: str) -> list[tuple[str, dict]]:
    out = []
    for block in body.split("\n\n"):
        ev = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if ev:
            out.append((ev, data))
    return out


def test_stream_pushes_station_ecg_beats_alerts_vitals(client, world, app):
    app.state.clock = lambda: T0 + timedelta(seconds=5)
    r = client.get(
        "/api/v1/stream",
        params={"focus": "p1", "max_s": 1.2, "viewer": "t1"},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    kinds = [e for e, _d in events]
    assert {"station", "ecg", "beats", "alerts", "vitals"} <= set(kinds)
    ecg = next(d for e, d in events if e == "ecg")
    assert (
        ecg["patient_id"] == "p1" and len(ecg["segments"][0]["samples_mv"]) == 2
    )  # focus: all leads
    assert kinds.count("station") == 1  # unchanged tiles are not sent again
    alerts = next(d for e, d in events if e == "alerts")["alerts"]
    assert alerts[0]["title"]
    vitals = next(d for e, d in events if e == "vitals")["vitals"]
    assert vitals["skin_temp"]["unit"] == "°C" and vitals["spo2"]["time"]


def test_stream_needs_a_token_and_the_patient(client, world):
    assert client.get("/api/v1/stream").status_code == 401
    assert (
        client.get(
            "/api/v1/stream", params={"focus": "p2"}, headers=world.auth("clin1")
        ).status_code
        == 403
    )
    assert (
        client.get(
            "/api/v1/stream", params={"viewer": "bad viewer"}, headers=world.auth("clin1")
        ).status_code
        == 422
    )


def test_stream_ends_when_the_token_expires(client, world, app):
    app.state.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    r = client.get("/api/v1/stream", params={"max_s": 5}, headers=world.auth("clin1"))
    assert [e for e, _d in _events(r.text)] == ["expired"]


# -------------------------------------------------------------------------- refresh tokens
def test_refresh_tokens_rotate_and_reuse_revokes(client, world, app):
    now = [datetime.now(UTC)]
    app.state.clock = lambda: now[0]
    assert client.post("/api/v1/session/refresh-token").status_code == 401
    r = client.post("/api/v1/session/refresh-token", headers=world.auth("clin1"))
    assert r.status_code == 200
    rt0 = r.json()["refresh_token"]
    with world.factory() as s:
        row = s.scalar(select(RefreshToken))
        assert row.token_hash == hash_refresh_token(rt0) and rt0 not in row.token_hash
    r = client.post("/api/v1/session/refresh", json={"refresh_token": rt0})
    assert r.status_code == 200
    body = r.json()
    assert (
        body["expires_in"] == 15 * 60
        and body["refresh_token"] != rt0
        and body["role"] == "clinician"
    )
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        ).json()["username"]
        == "clin1"
    )
    rt1 = body["refresh_token"]
    # reusing the spent token revokes the whole family, the current one included
    assert client.post("/api/v1/session/refresh", json={"refresh_token": rt0}).status_code == 401
    assert client.post("/api/v1/session/refresh", json={"refresh_token": rt1}).status_code == 401
    assert (
        client.post("/api/v1/session/refresh", json={"refresh_token": "x" * 43}).status_code == 401
    )


def test_refresh_tokens_expire_when_idle_and_on_revoke(client, world, app):
    now = [datetime.now(UTC)]
    app.state.clock = lambda: now[0]
    rt = client.post("/api/v1/session/refresh-token", headers=world.auth("clin1")).json()[
        "refresh_token"
    ]
    now[0] += timedelta(minutes=61)
    assert client.post("/api/v1/session/refresh", json={"refresh_token": rt}).status_code == 401
    rt = client.post("/api/v1/session/refresh-token", headers=world.auth("clin1")).json()[
        "refresh_token"
    ]
    assert client.post("/api/v1/session/revoke", json={"refresh_token": rt}).status_code == 204
    assert client.post("/api/v1/session/refresh", json={"refresh_token": rt}).status_code == 401


def test_api_docs_are_vendored(client):
    r = client.get("/api/docs", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/dashboard/docs/"
    page = client.get("/dashboard/docs/")
    assert page.status_code == 200 and "https://" not in page.text
    js = client.get("/dashboard/vendor/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert "Apache License" in client.get("/dashboard/vendor/swagger-ui/LICENSE").text
