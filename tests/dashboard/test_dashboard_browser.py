"""The dashboard in a real headless browser (Debian chromium via Playwright).

uvicorn serves the app on a free 127.0.0.1 port over a seeded SQLite database while a
background thread keeps storing new ECG frames and beats (like the stream processor would).
The test logs in, sees the live strip update, acknowledges an alert, opens "explain alert",
and checks the phone layout (390x844). Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright
from tests.service.conftest import PASSWORD, beats_for, make_frame, make_settings, seed_world

from heartline.service import create_app
from heartline.storage import repository as repo
from heartline.storage.engine import session_scope
from heartline.storage.migrations import upgrade_database
from heartline.storage.tables import Alert

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    url = f"sqlite:///{tmp_path / 'heartline.db'}"
    upgrade_database(url)
    settings = make_settings(url, tmp_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    world = seed_world(settings, n_frames=0)
    with session_scope(world.factory) as s:  # 20 s of history ending now, then keep streaming
        for seq in range(20):
            repo.store_frame(s, frame=make_frame("d1", seq, t0=t0))
            repo.add_beats(
                s,
                patient_id="p1",
                beats=beats_for("d1", seq, t0=t0, label="V" if seq == 17 else "N"),
            )
        v = repo.beats_between(
            s, patient_id="p1", start=t0 + timedelta(seconds=17), stop=t0 + timedelta(seconds=18)
        )
        alert = repo.add_alert(
            s,
            patient_id="p1",
            device_id="d1",
            type="v_couplet",
            severity="warning",
            start=v[0].time,
            evidence={"beats": [b.id for b in v]},
        )
    stop = threading.Event()

    def stream() -> None:
        seq = 20
        while not stop.is_set():
            with session_scope(world.factory) as s:
                repo.store_frame(s, frame=make_frame("d1", seq, t0=t0))
                repo.add_beats(s, patient_id="p1", beats=beats_for("d1", seq, t0=t0))
            seq += 1
            stop.wait(0.5)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threads = [
        threading.Thread(target=server.run, daemon=True),
        threading.Thread(target=stream, daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", world, alert.id, len(v)
    stop.set()
    server.should_exit = True
    for t in threads:
        t.join(timeout=10)


def test_dashboard_live_strip_and_acknowledge(live_server, tmp_path):
    base, world, alert_id, n_trigger = live_server
    assert n_trigger >= 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.fill("#username", "clin1")
            page.fill("#password", "wrong password")
            page.click("button[type=submit]")
            expect(page.locator("#login-error")).to_contain_text("Wrong")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("#patient-rows tr")).to_have_count(1)  # clin1 sees only p1
            canvas = page.locator("#ecg-canvas")
            expect(canvas).not_to_have_attribute("data-last-seq", "")
            first = canvas.get_attribute("data-last-seq")
            first_pixels = page.evaluate("document.getElementById('ecg-canvas').toDataURL()")
            expect(canvas).not_to_have_attribute(
                "data-last-seq", first, timeout=10000
            )  # new frames drawn
            assert (
                page.evaluate("document.getElementById('ecg-canvas').toDataURL()") != first_pixels
            )
            assert int(canvas.get_attribute("data-beats")) > 5
            expect(page.locator("#hr-value")).to_have_text("75")  # beats every 0.8 s
            item = page.locator(f"#alert-feed li[data-alert-id='{alert_id}']")
            item.locator("button.explain").click()
            expect(page.locator("#explain-canvas")).to_have_attribute(
                "data-highlighted", str(n_trigger)
            )
            page.screenshot(path=str(tmp_path / "dashboard-desktop.png"), full_page=True)
            item.locator("button.ack").click()
            expect(page.locator(f"#alert-feed li[data-alert-id='{alert_id}']")).to_contain_text(
                "acknowledged by clin1"
            )
            with world.factory() as s:
                assert s.get(Alert, alert_id).acknowledged_by == "clin1"
            # phone layout: one column, strip as wide as the screen, no horizontal scrolling
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(1200)
            box = canvas.bounding_box()
            assert box is not None and 330 <= box["width"] <= 390 and 150 <= box["height"] <= 260
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "dashboard-desktop.png").stat().st_size > 10_000
