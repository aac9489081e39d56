"""Core routes, one test per failure mode, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from heartline.service.security import create_access_token
from heartline.storage.security_tables import AuditLog
from heartline.storage.tables import Alert, FrameRecord

from .conftest import PASSWORD, T0, make_frame, migrated_db_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_db_url(request, tmp_path)


def basic(device: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{device}:{secret}".encode()).decode()}


# ------------------------------------------------------------------------------------- auth
def test_login_returns_working_token(client):
    r = client.post("/api/v1/login/access-token", data={"username": "clin1", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["token_type"] == "bearer"
        and body["role"] == "clinician"
        and body["expires_in"] == 15 * 60
    )
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "clin1"


@pytest.mark.parametrize(
    ("username", "password"), [("clin1", "wrong password!!"), ("nobody", PASSWORD)]
)
def test_login_wrong_credentials_401(client, username, password):
    r = client.post("/api/v1/login/access-token", data={"username": username, "password": password})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_login_missing_field_422(client):
    assert client.post("/api/v1/login/access-token", data={"username": "clin1"}).status_code == 422


def test_no_token_401(client):
    r = client.get("/api/v1/patients")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_expired_token_401(client, world):
    token, _ = create_access_token(
        settings=world.settings,
        user_id=world.user_ids["admin"],
        token_key=world.token_keys["admin"],
        role="admin",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["detail"] == "token expired"


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_invalid_token_401(client, token):
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid token"


def test_token_signed_with_other_key_401(client, world):
    import jwt

    forged = jwt.encode(
        {
            "sub": str(world.user_ids["admin"]),
            "role": "admin",
            "iat": 1,
            "exp": 4102444800,
            "jti": "x",
            "typ": "access",
        },
        "another-secret-another-secret-123456",
        algorithm="HS256",
    )
    assert (
        client.get("/api/v1/patients", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_unsigned_token_401(client, world):
    import jwt

    unsigned = jwt.encode(
        {
            "sub": str(world.user_ids["admin"]),
            "exp": 4102444800,
            "iat": 1,
            "jti": "x",
            "typ": "access",
        },
        None,
        algorithm="none",
    )
    assert (
        client.get("/api/v1/patients", headers={"Authorization": f"Bearer {unsigned}"}).status_code
        == 401
    )


def test_login_rate_limit_429(client):
    for _ in range(5):
        assert (
            client.post(
                "/api/v1/login/access-token",
                data={"username": "clin1", "password": "bad password 1"},
            ).status_code
            == 401
        )
    r = client.post("/api/v1/login/access-token", data={"username": "clin1", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 60
    # another user from the same address is not locked out
    assert (
        client.post(
            "/api/v1/login/access-token", data={"username": "clin2", "password": PASSWORD}
        ).status_code
        == 200
    )


# ------------------------------------------------------------------------------------ users
def test_admin_creates_clinician_and_assigns(client, world):
    body = {"username": "clin3", "password": "a long enough password", "role": "clinician"}
    r = client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert (
        client.put(f"/api/v1/users/{uid}/patients/p2", headers=world.auth("admin")).status_code
        == 204
    )
    tok = client.post(
        "/api/v1/login/access-token", data={"username": "clin3", "password": body["password"]}
    ).json()["access_token"]
    ids = [
        p["id"]
        for p in client.get("/api/v1/patients", headers={"Authorization": f"Bearer {tok}"}).json()
    ]
    assert ids == ["p2"]
    assert (
        client.delete(f"/api/v1/users/{uid}/patients/p2", headers=world.auth("admin")).status_code
        == 204
    )
    assert (
        client.get("/api/v1/patients/p2", headers={"Authorization": f"Bearer {tok}"}).status_code
        == 403
    )


def test_create_user_failures(client, world):
    ok = {
        "username": "new.user",
        "password": "a long enough password",
        "role": "patient",
        "patient_id": "p1",
    }
    assert client.post("/api/v1/users", json=ok, headers=world.auth("clin1")).status_code == 403
    assert (
        client.post(
            "/api/v1/users", json={**ok, "username": "clin1"}, headers=world.auth("admin")
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/users", json={**ok, "patient_id": "nope"}, headers=world.auth("admin")
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/users", json={**ok, "password": "short"}, headers=world.auth("admin")
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/users", json={**ok, "patient_id": None}, headers=world.auth("admin")
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/users", json={**ok, "role": "root"}, headers=world.auth("admin")
        ).status_code
        == 422
    )


def test_assign_failures(client, world):
    a = world.auth("admin")
    assert (
        client.put(
            f"/api/v1/users/{world.user_ids['clin1']}/patients/p2", headers=world.auth("clin1")
        ).status_code
        == 403
    )
    assert client.put("/api/v1/users/99999/patients/p1", headers=a).status_code == 404
    assert (
        client.put(f"/api/v1/users/{world.user_ids['clin1']}/patients/nope", headers=a).status_code
        == 404
    )
    assert (
        client.put(f"/api/v1/users/{world.user_ids['pat1']}/patients/p1", headers=a).status_code
        == 409
    )
    assert (
        client.delete(f"/api/v1/users/{world.user_ids['clin1']}/patients/p2", headers=a).status_code
        == 404
    )


# --------------------------------------------------------------------------------- patients
def test_patient_lists_are_scoped(client, world):
    def ids(who: str) -> list[str]:
        return [p["id"] for p in client.get("/api/v1/patients", headers=world.auth(who)).json()]

    assert ids("admin") == ["p1", "p2"]
    assert ids("clin1") == ["p1"]
    assert ids("pat2") == ["p2"]


def test_create_patient(client, world):
    body = {"id": "p3", "display_name": "Three"}
    assert (
        client.post("/api/v1/patients", json=body, headers=world.auth("clin1")).status_code == 403
    )
    assert (
        client.post("/api/v1/patients", json=body, headers=world.auth("admin")).status_code == 201
    )
    assert (
        client.post("/api/v1/patients", json=body, headers=world.auth("admin")).status_code == 409
    )
    assert (
        client.post(
            "/api/v1/patients", json={"id": "bad/id"}, headers=world.auth("admin")
        ).status_code
        == 422
    )


def test_patient_404_for_admin_403_for_others(client, world):
    assert client.get("/api/v1/patients/nope", headers=world.auth("admin")).status_code == 404
    assert client.get("/api/v1/patients/nope", headers=world.auth("clin1")).status_code == 403


def test_ecg_window_and_latest(client, world, window):
    r = client.get("/api/v1/patients/p1/ecg", params=window, headers=world.auth("clin1"))
    assert r.status_code == 200
    segs = r.json()["segments"]
    assert [s["seq"] for s in segs] == [0, 1, 2, 3, 4]
    assert len(segs[0]["samples_mv"]) == 2 and len(segs[0]["samples_mv"][0]) == 360
    assert max(segs[0]["samples_mv"][0]) == pytest.approx(1.1, abs=0.01)
    latest = client.get(
        "/api/v1/patients/p1/ecg", params={"seconds": 2}, headers=world.auth("clin1")
    ).json()
    assert datetime.fromisoformat(latest["end"]) == T0 + timedelta(seconds=5)
    assert [s["seq"] for s in latest["segments"]] == [3, 4]


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-01-05T12:00:10+00:00", "end": "2026-01-05T12:00:00+00:00"},
        {"start": "2026-01-05T12:00:00+00:00", "end": "2026-01-05T13:00:00+00:00"},
        {"start": "2026-01-05T12:00:00"},
        {"start": "yesterday"},
    ],
)
def test_ecg_bad_window_422(client, world, params):
    assert (
        client.get(
            "/api/v1/patients/p1/ecg", params=params, headers=world.auth("clin1")
        ).status_code
        == 422
    )


def test_vitals_and_beats(client, world, window):
    v = client.get("/api/v1/patients/p1/vitals", params=window, headers=world.auth("pat1")).json()
    assert len(v) == 5 and v[0]["hr_bpm"] == 75.0 and v[0]["sbp_mmhg"] == 120.0
    beats = client.get(
        "/api/v1/patients/p1/beats", params=window, headers=world.auth("pat1")
    ).json()
    assert len(beats) >= 5 and {b["label"] for b in beats} == {"N", "V"}
    only_v = client.get(
        "/api/v1/patients/p1/beats", params={**window, "label": "V"}, headers=world.auth("pat1")
    ).json()
    assert only_v and all(b["label"] == "V" for b in only_v)
    assert (
        client.get(
            "/api/v1/patients/p1/beats", params={**window, "label": "X"}, headers=world.auth("pat1")
        ).status_code
        == 422
    )


def test_summary(client, world, window):
    s = client.get("/api/v1/patients/p1/summary", params=window, headers=world.auth("clin1")).json()
    n_v = len(
        client.get(
            "/api/v1/patients/p1/beats",
            params={**window, "label": "V"},
            headers=world.auth("clin1"),
        ).json()
    )
    assert s["beat_counts"]["V"] == n_v and s["beat_counts"]["N"] > 0
    assert s["open_alerts"] == 1 and s["alerts_in_window"] == 2
    assert s["hr_bpm"] == pytest.approx(75.0, abs=1)  # beats every 0.8 s; vitals say 75 too
    assert s["last_update"] is not None


def test_monitoring_status(client, world):
    rows = client.get("/api/v1/monitoring", headers=world.auth("clin2")).json()
    assert [r["id"] for r in rows] == ["p2"] and rows[0]["open_alerts"] == 1


# ----------------------------------------------------------------------------------- alerts
def test_alert_filters(client, world, window):
    url = "/api/v1/patients/p1/alerts"
    h = world.auth("clin1")
    assert {a["kind"] for a in client.get(url, params=window, headers=h).json()} == {
        "v_couplet",
        "tachycardia",
    }
    assert [
        a["kind"]
        for a in client.get(url, params={**window, "severity": "critical"}, headers=h).json()
    ] == ["tachycardia"]
    assert [
        a["kind"] for a in client.get(url, params={**window, "kind": "v_couplet"}, headers=h).json()
    ] == ["v_couplet"]
    assert [
        a["kind"] for a in client.get(url, params={**window, "state": "open"}, headers=h).json()
    ] == ["v_couplet"]
    assert [
        a["kind"] for a in client.get(url, params={**window, "state": "closed"}, headers=h).json()
    ] == ["tachycardia"]
    assert (
        client.get(url, params={**window, "severity": "apocalyptic"}, headers=h).status_code == 422
    )
    assert client.get(url, params={**window, "state": "sideways"}, headers=h).status_code == 422


def test_acknowledge_then_409(client, world):
    aid = world.alert_ids["p1"]
    r = client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=world.auth("clin1"))
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "clin1"
    again = client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=world.auth("admin"))
    assert again.status_code == 409 and "clin1" in again.json()["detail"]
    with world.factory() as s:
        assert s.get(Alert, aid).acknowledged_by == "clin1"


def test_acknowledge_failures(client, world):
    aid = world.alert_ids["p1"]
    assert client.post(f"/api/v1/alerts/{aid}/acknowledge").status_code == 401
    assert (
        client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=world.auth("pat1")).status_code
        == 403
    )
    assert (
        client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=world.auth("clin2")).status_code
        == 404  # a foreign alert answers like a missing one
    )
    assert (
        client.post("/api/v1/alerts/999999/acknowledge", headers=world.auth("clin1")).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/alerts/notanumber/acknowledge", headers=world.auth("clin1")
        ).status_code
        == 422
    )


def test_alert_explanation_highlights_trigger_beats(client, world):
    aid = world.alert_ids["p1"]
    r = client.get(f"/api/v1/alerts/{aid}/explanation", headers=world.auth("clin1"))
    assert r.status_code == 200
    body = r.json()
    hl = set(body["highlighted_beat_ids"])
    assert hl and {b["id"] for b in body["beats"] if b["label"] == "V"} == hl
    assert body["ecg"]["segments"], "the strip around the alert holds ECG"
    assert (
        client.get("/api/v1/alerts/999999/explanation", headers=world.auth("admin")).status_code
        == 404
    )


# ---------------------------------------------------------------------------------- devices
def test_device_register_rotate(client, world):
    a = world.auth("admin")
    r = client.post("/api/v1/devices", json={"id": "d9", "patient_id": "p1"}, headers=a)
    assert r.status_code == 201
    secret = r.json()["secret"]
    frame = make_frame("d9", 0)
    assert (
        client.post(
            "/api/v1/ingest/frames", content=frame.to_json(), headers=basic("d9", secret)
        ).status_code
        == 201
    )
    rot = client.post("/api/v1/devices/d9/credentials", headers=a)
    assert rot.status_code == 200 and rot.json()["secret"] != secret
    assert (
        client.post(
            "/api/v1/ingest/frames",
            content=make_frame("d9", 1).to_json(),
            headers=basic("d9", secret),
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/api/v1/ingest/frames",
            content=make_frame("d9", 1).to_json(),
            headers=basic("d9", rot.json()["secret"]),
        ).status_code
        == 201
    )
    devs = client.get("/api/v1/patients/p1/devices", headers=world.auth("clin1")).json()
    assert {d["id"] for d in devs} == {"d1", "d9"} and "secret" not in json.dumps(devs)


def test_device_failures(client, world):
    a = world.auth("admin")
    assert (
        client.post(
            "/api/v1/devices", json={"id": "d9", "patient_id": "p1"}, headers=world.auth("clin1")
        ).status_code
        == 403
    )
    assert (
        client.post("/api/v1/devices", json={"id": "d1", "patient_id": "p1"}, headers=a).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/devices", json={"id": "d9", "patient_id": "nope"}, headers=a
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/devices", json={"id": "bad/id", "patient_id": "p1"}, headers=a
        ).status_code
        == 422
    )
    assert client.post("/api/v1/devices/nope/credentials", headers=a).status_code == 404
    assert (
        client.post("/api/v1/devices/d1/credentials", headers=world.auth("clin1")).status_code
        == 403
    )


# -------------------------------------------------------------------------------- ingestion
def test_ingest_idempotent(client, world):
    h = basic("d1", world.device_secrets["d1"])
    frame = make_frame("d1", 100)
    first = client.post("/api/v1/ingest/frames", content=frame.to_json(), headers=h)
    assert first.status_code == 201 and first.json() == {
        "device_id": "d1",
        "seq": 100,
        "stored": True,
    }
    again = client.post("/api/v1/ingest/frames", content=frame.to_json(), headers=h)
    assert again.status_code == 200 and again.json()["stored"] is False
    with world.factory() as s:
        assert (
            len(
                s.scalars(
                    select(FrameRecord).where(FrameRecord.device_id == "d1", FrameRecord.seq == 100)
                ).all()
            )
            == 1
        )


def test_ingest_device_writes_only_its_own_stream(client, world):
    r = client.post(
        "/api/v1/ingest/frames",
        content=make_frame("d2", 100).to_json(),
        headers=basic("d1", world.device_secrets["d1"]),
    )
    assert r.status_code == 403
    with world.factory() as s:
        assert (
            s.scalars(
                select(FrameRecord).where(FrameRecord.device_id == "d2", FrameRecord.seq == 100)
            ).first()
            is None
        )


@pytest.mark.parametrize(
    "headers", [{}, basic("d1", "wrong"), basic("ghost", "whatever"), {"Authorization": "Bearer x"}]
)
def test_ingest_401(client, headers):
    assert (
        client.post(
            "/api/v1/ingest/frames", content=make_frame("d1", 101).to_json(), headers=headers
        ).status_code
        == 401
    )


def test_ingest_user_token_is_not_device_credential(client, world):
    assert (
        client.post(
            "/api/v1/ingest/frames",
            content=make_frame("d1", 101).to_json(),
            headers=world.auth("admin"),
        ).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'{"seq": 1}', "schema"),
        (b"x" * (600 * 1024), "oversized"),
    ],
)
def test_ingest_422_reason(client, world, payload, reason):
    r = client.post(
        "/api/v1/ingest/frames", content=payload, headers=basic("d1", world.device_secrets["d1"])
    )
    assert r.status_code == 422 and r.json()["detail"]["reason"] == reason


def test_ingest_out_of_range_reason(client, world):
    data = json.loads(make_frame("d1", 102).to_json())
    data["vitals"][0]["hr_bpm"] = 900.0
    r = client.post(
        "/api/v1/ingest/frames",
        content=json.dumps(data).encode(),
        headers=basic("d1", world.device_secrets["d1"]),
    )
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "out_of_range"


def test_ingest_unassigned_device_409(client, world):
    from heartline.storage import repository as repo
    from heartline.storage.engine import session_scope

    with session_scope(world.factory) as s:
        repo.register_device(s, device_id="d1", patient_id=None)
    r = client.post(
        "/api/v1/ingest/frames",
        content=make_frame("d1", 103).to_json(),
        headers=basic("d1", world.device_secrets["d1"]),
    )
    assert r.status_code == 409


# ------------------------------------------------------------------------------- audit etc.
def test_reads_write_audit_rows(client, world, window):
    client.get("/api/v1/patients/p1/ecg", params=window, headers=world.auth("clin1"))
    client.get("/api/v1/patients/p1/vitals", params=window, headers=world.auth("pat1"))
    client.get("/api/v1/patients/p2/vitals", params=window, headers=world.auth("clin1"))  # denied
    with world.factory() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    got = [(r.actor, r.actor_role, r.action, r.resource, r.patient_id) for r in rows]
    assert got == [
        ("clin1", "clinician", "read", "ecg", "p1"),
        ("pat1", "patient", "read", "vitals", "p1"),
    ]
    assert all(r.time is not None and r.path and r.client_ip for r in rows)
    audit = client.get(
        "/api/v1/audit", params={"patient_id": "p1"}, headers=world.auth("admin")
    ).json()
    assert [a["resource"] for a in audit] == ["vitals", "ecg"]
    assert client.get("/api/v1/audit", headers=world.auth("clin1")).status_code == 403


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200


def test_ready_503_when_database_unreachable(tmp_path):
    from fastapi.testclient import TestClient

    from heartline.service import create_app

    from .conftest import make_settings

    app = create_app(make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path))
    with TestClient(app) as c:
        assert c.get("/ready").status_code == 503
        assert c.get("/health").status_code == 200


def test_security_headers_and_openapi(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and "/api/v1/ingest/frames" in r.json()["paths"]
    assert r.headers["x-content-type-options"] == "nosniff"
    d = client.get("/dashboard/")
    assert d.status_code == 200 and "default-src 'self'" in d.headers["content-security-policy"]
