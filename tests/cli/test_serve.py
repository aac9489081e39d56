"""`heartline serve`: the one-command system (own Mosquitto, SQLite, processors, API) end to end."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from heartline.cli.serve import prepare_demo
from heartline.service.config import load_service_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def test_serve_runs_the_whole_system(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HEARTLINE_ENVIRONMENT": "development"}
    args = [
        "serve",
        "--patients",
        "2",
        "--records",
        "119,208",
        "--port",
        str(port),
        "--state-dir",
        str(tmp_path / "state"),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from heartline.cli.main import app; app()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    out_lines: list[str] = []
    try:
        # serve starts its workers as processes (each loads ONNX Runtime and the model) before it
        # prints the logins; on the shared 2-core machine that alone can take a minute
        deadline = time.monotonic() + 180
        password = None
        while time.monotonic() < deadline and password is None:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                if proc.poll() is not None:
                    break
                continue
            out_lines.append(line)
            m = re.match(r"\s*clinician\s+clinician\s+(\S+)", line)
            if m:
                password = m.group(1)
        assert password, "serve did not print the demo logins:\n" + "".join(out_lines)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            tok = client.post(
                "/api/v1/login/access-token", data={"username": "clinician", "password": password}
            )
            assert tok.status_code == 200, tok.text
            headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            seen_beats = False
            while time.monotonic() < deadline and not seen_beats:
                rows = client.get("/api/v1/monitoring", headers=headers).json()
                assert {r["id"] for r in rows} == {"p-sim-0001", "p-sim-0002"}
                summary = client.get("/api/v1/patients/p-sim-0001/summary", headers=headers).json()
                seen_beats = sum(summary["beat_counts"].values()) > 0
                time.sleep(1.0)
            assert seen_beats, "no beats were classified and stored by the live pipeline"
            assert client.get("/dashboard/").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve did not stop on Ctrl-C")
