"""`heartline serve`: the one-command system (own Mosquitto, SQLite, processors, API) end to end."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from tests.cli.conftest import SERVE_PATIENTS, Served

from heartline.cli.serve import prepare_demo
from heartline.service.config import load_service_settings


def test_prepare_demo_registers_patients_devices_and_users(tmp_path: Path) -> None:
    from heartline.storage import make_engine, make_session_factory
    from heartline.storage.tables import Device, Patient

    settings = load_service_settings(state_dir=tmp_path, environment="development")
    creds = prepare_demo(settings, patients=3, records=["119", "208"])
    assert creds is not None
    roles = {u.role for u in creds.users}
    assert roles == {"admin", "clinician", "patient"}
    assert all(u.password for u in creds.users)
    engine = make_engine(settings.resolved_database_url())
    with make_session_factory(engine)() as s:
        assert {p.id for p in s.query(Patient)} == {"p-sim-0001", "p-sim-0002", "p-sim-0003"}
        assert s.get(Device, "sim-0002").patient_id == "p-sim-0002"
    engine.dispose()
    # a second run keeps the users (passwords are not reset)
    again = prepare_demo(settings, patients=3, records=["119"])
    assert again is not None and all(u.password is None for u in again.users)


def test_serve_runs_the_whole_system(served: Served) -> None:
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=served.base_url, timeout=5) as client:
        headers = served.login(client)
        seen_beats = False
        while time.monotonic() < deadline and not seen_beats:
            rows = client.get("/api/v1/monitoring", headers=headers).json()
            assert {r["id"] for r in rows} == set(SERVE_PATIENTS)
            summary = client.get("/api/v1/patients/p-sim-0001/summary", headers=headers).json()
            seen_beats = sum(summary["beat_counts"].values()) > 0
            time.sleep(1.0)
        assert seen_beats, "no beats were classified and stored by the live pipeline"
        assert client.get("/dashboard/").status_code == 200
    assert served.proc.poll() is None, "serve stopped"
