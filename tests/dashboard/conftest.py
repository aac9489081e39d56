"""A live ward for the browser tests: uvicorn over a seeded SQLite database, a writer thread that
stores one second of ECG and beats per patient every second (as the stream processor would),
the alert engine's own alarms, and a server clock the tests can move forward.

Environment: ``HEARTLINE_SCREENSHOTS=DIR`` also writes the screenshots there (the committed ones
in ``docs/images`` come from it); ``HEARTLINE_DASHBOARD_RESULTS=DIR`` writes the measured frame
times and heap sizes there as JSON.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import jwt
import numpy as np
import pytest
import uvicorn
from fastapi import Depends, HTTPException
from tests.conftest import copy_sqlite
from tests.dashboard.scenario import (
    Rhythm,
    beats_in,
    engine_alarms,
    frame_at,
    store_alarm,
    store_history,
    utc,
)
from tests.service.conftest import PASSWORD, make_settings

from heartline.ingestion.payloads import VitalReading
from heartline.service import create_app
from heartline.service.deps import SessionDep, SettingsDep, get_current_user, oauth2_scheme
from heartline.service.security import hash_device_secret, hash_password, make_password_hasher
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo
from heartline.storage.engine import make_engine, make_session_factory, session_scope
from heartline.storage.migrations import upgrade_database
from heartline.storage.security_tables import User

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--enable-precise-memory-info",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artefact_dirs(tmp_path: Path) -> list[Path]:
    out = [tmp_path]
    extra = os.environ.get("HEARTLINE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        out.append(Path(extra))
    return out


def screenshot(page, tmp_path: Path, name: str, **kw) -> Path:
    """Save a screenshot in the test's tmp dir (and ``HEARTLINE_SCREENSHOTS`` unless ``tmp-*``)."""
    first = None
    dirs = artefact_dirs(tmp_path)
    for d in dirs if not name.startswith("tmp-") else dirs[:1]:
        path = d / name
        page.screenshot(path=str(path), **kw)
        first = first or path
    return first


@dataclass
class Ward:
    base: str
    factory: object
    clock_offset_s: list[float]
    alarms: dict[str, int] = field(default_factory=dict)  # name -> alert row id
    expected_order: list[str] = field(default_factory=list)
    n_patients: int = 0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s[0])


def _clocked_user(offset: list[float]):
    """get_current_user with token expiry judged by the test's server clock (real time + offset)."""

    def current_user(
        session: SessionDep,
        settings: SettingsDep,
        token: Annotated[str | None, Depends(oauth2_scheme)],
    ) -> User:
        if not token:
            raise HTTPException(401, "not authenticated")
        try:
            data = jwt.decode(
                token,
                settings.jwt_secret.get_secret_value(),
                algorithms=[settings.jwt_algorithm],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            raise HTTPException(401, "invalid token") from None
        now = datetime.now(UTC).timestamp() + offset[0]
        if data["exp"] <= now:
            raise HTTPException(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
        user = session.get(User, int(data["sub"]))
        if user is None or not user.is_active:
            raise HTTPException(401, "invalid token")
        return user

    return current_user


def build_ward(
    tmp_path: Path, *, n_patients: int, migrated: Path | None = None
) -> tuple[Ward, object, list[threading.Thread], threading.Event]:
    """The ward of ``n_patients`` over SQLite in ``tmp_path`` (``migrated``: a migrated empty
    database to copy instead of running the migrations)."""
    url = f"sqlite:///{tmp_path / 'heartline.db'}"
    if migrated is not None:
        copy_sqlite(migrated, tmp_path / "heartline.db")
    else:
        upgrade_database(url)
    settings = make_settings(url, tmp_path)
    factory = make_session_factory(make_engine(url))
    hasher = make_password_hasher(settings)
    now_s = float(int(time.time()))
    rng = np.random.default_rng(7)
    pids = [f"p{i:02d}" for i in range(1, n_patients + 1)]
    rhythms: dict[str, Rhythm] = {}
    hr: dict[str, float] = {"p01": 75.0}
    ward = Ward(base="", factory=factory, clock_offset_s=[0.0], n_patients=n_patients)
    with session_scope(factory) as s:
        pw = hash_password(hasher, PASSWORD)
        admin = srepo.create_user(s, username="admin", password_hash=pw, role="admin")
        clin = srepo.create_user(s, username="clin1", password_hash=pw, role="clinician")
        for i, pid in enumerate(pids):
            repo.register_patient(s, patient_id=pid, display_name=f"Bed {i + 1}")
            repo.register_device(
                s,
                device_id=f"d{pid}",
                patient_id=pid,
                credential_hash=hash_device_secret(f"secret-{pid}-0123456789"),
            )
            srepo.assign_patient(s, user_id=clin.id, patient_id=pid)
        del admin
        # Bed 1: 7 minutes of history with AF, a VT run, VF and a NEWS2 alarm, then sinus rhythm
        t0 = now_s - 420.0
        r1 = Rhythm(t0).sinus(60).af(150, rng=rng).sinus(50).v_run(7).sinus(37).vf_span(12)
        r1.sinus(now_s - r1.t_s + 3600)
        rhythms["p01"] = r1
        store_history(s, device_id="dp01", patient_id="p01", rhythm=r1, start_s=t0, stop_s=now_s)
        events = engine_alarms(
            "p01",
            r1,
            now_s=now_s,
            vitals=dict(
                heart_rate_bpm=115,
                spo2_pct=91,
                temperature_c=34.8,
                temperature_site="skin",
                systolic_bp_mmhg=95,
                respiration_rate_per_min=24,
            ),
            vitals_at_s=now_s - 20,
        )
        for ev in events.values():
            ward.alarms[ev["kind"]] = store_alarm(s, ev, device_id="dp01")
        # the others: sinus at different rates, a few seconds of history
        for i, pid in enumerate(pids[1:], start=2):
            rr_s = 0.6 + 0.05 * (i % 8)
            r = Rhythm(now_s - 12.0).sinus(3600 + 12, rr_s=rr_s)
            hr[pid] = 60.0 / rr_s
            if pid == "p03":
                r.r_mv = 3.2  # large complexes: clipped at 10 mm/mV in a 30 mm band
            rhythms[pid] = r
            store_history(
                s, device_id=f"d{pid}", patient_id=pid, rhythm=r, start_s=now_s - 12.0, stop_s=now_s
            )

        def alarm(
            pid: str,
            kind: str,
            severity: str,
            ago_s: float,
            *,
            dur_s: float | None = None,
            ack: bool = False,
            values: dict | None = None,
            category: str = "physiological",
        ) -> int:
            start = utc(now_s - ago_s)
            a = repo.add_alert(
                s,
                patient_id=pid,
                device_id=f"d{pid}",
                type=kind,
                severity=severity,
                start=start,
                end=None if dur_s is None else start + timedelta(seconds=dur_s),
                evidence={
                    "category": category,
                    "peak": {"values": values or {}},
                    "last_evidence_s": now_s - 1,
                },
            )
            if ack:
                repo.acknowledge_alert(s, alert_id=a.id, user="admin")
            return a.id

        if n_patients == 8:
            ward.alarms["p02_tachy"] = alarm(
                "p02", "tachycardia", "high", 50, values={"extreme_bpm": 156, "mean_bpm": 151}
            )
            ward.alarms["p03_news2"] = alarm(
                "p03",
                "news2",
                "warning",
                300,
                values={"total": 5, "band": "low-medium", "complete": True, "subscores": {}},
            )
            ward.alarms["p04_quality"] = alarm(
                "p04",
                "signal_quality",
                "warning",
                30,
                values={"duration_s": 25},
                category="technical",
            )
            ward.alarms["p06_vf"] = alarm(
                "p06", "vf", "critical", 60, dur_s=14, values={"duration_s": 14}
            )
            ward.alarms["p07_vf_acked"] = alarm(
                "p07", "vf", "critical", 200, dur_s=10, ack=True, values={"duration_s": 10}
            )
            ward.alarms["p08_pvc"] = alarm(
                "p08", "frequent_pvc", "warning", 100, values={"max_per_min": 14}
            )
            ward.expected_order = ["p01", "p06", "p02", "p08", "p03", "p04", "p05", "p07"]
        else:  # spread alarms over the station: every 4th bed high, every 4th medium...
            for i, pid in enumerate(pids[1:], start=2):
                if i % 4 == 0:
                    alarm(
                        pid, "vt", "high", 40 + i, dur_s=3, values={"n_beats": 6, "rate_bpm": 170}
                    )
                elif i % 4 == 1:
                    alarm(pid, "tachycardia", "high", 40 + i, values={"extreme_bpm": 155})
                elif i % 4 == 2:
                    alarm(pid, "frequent_pvc", "warning", 40 + i, values={"max_per_min": 9})

    app = create_app(settings)
    app.state.clock = ward.now
    app.dependency_overrides[get_current_user] = _clocked_user(ward.clock_offset_s)
    stop = threading.Event()

    def writer() -> None:  # one second of ECG and beats per patient, every second
        k = 0
        while not stop.is_set():
            start = now_s + k
            while not stop.is_set() and time.time() < start + 1.0:
                stop.wait(0.05)
            if stop.is_set():
                return
            with session_scope(factory) as s:
                for pid in pids:
                    vit = (
                        VitalReading(
                            time_s=start,
                            hr_bpm=round(hr[pid], 1),
                            spo2_pct=96.0 + (k % 3),
                            temp_c=34.6,
                            sbp_mmhg=118.0,
                            dbp_mmhg=76.0,
                        )
                        if k % 5 == 0
                        else None
                    )
                    repo.store_frame(
                        s,
                        frame=frame_at(
                            f"d{pid}", rhythms[pid], seq=100_000 + k, start_s=start, vitals=vit
                        ),
                    )
                    repo.add_beats(
                        s,
                        patient_id=pid,
                        beats=beats_in(f"d{pid}", rhythms[pid], seq=100_000 + k, start_s=start),
                    )
            k += 1

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threads = [
        threading.Thread(target=server.run, daemon=True),
        threading.Thread(target=writer, daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    ward.base = f"http://127.0.0.1:{port}"
    return ward, server, threads, stop


@pytest.fixture
def ward(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Ward]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    w, server, threads, stop = build_ward(tmp_path, n_patients=8, migrated=migrated_sqlite)
    yield w
    stop.set()
    server.should_exit = True
    for t in threads:
        t.join(timeout=10)


@pytest.fixture
def ward32(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Ward]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    w, server, threads, stop = build_ward(tmp_path, n_patients=32, migrated=migrated_sqlite)
    yield w
    stop.set()
    server.should_exit = True
    for t in threads:
        t.join(timeout=10)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module (launching it is the slow part)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser(chromium):
    """The module's Chromium for one test: every context (``new_context``, ``new_page``) the
    test opens is closed after it, so no page, cookie or script outlives its test."""
    yield chromium
    for ctx in list(chromium.contexts):
        ctx.close()


def sign_in(page, base: str, user: str = "clin1") -> None:
    page.goto(base + "/")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#station-grid .tile")
