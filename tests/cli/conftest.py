"""One running ``heartline serve`` (own Mosquitto, SQLite, worker processes, API) for the CLI
tests that need the whole system: started once for this package (``tests/cli``), stopped with
Ctrl-C after its last test.

Starting serve is the expensive part (each worker process loads ONNX Runtime and the model), so
``test_serve.py`` and ``test_serve_adaptation.py`` share it; neither depends on what the other
did (the first only reads, the second adapts and rolls back patient ``p-sim-0001``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

#: Simulated patients of the shared serve, and the MIT-BIH records they replay.
SERVE_PATIENTS = ("p-sim-0001", "p-sim-0002")
SERVE_RECORDS = "119,208"
#: Worker processes load ONNX Runtime and the model before serve prints the logins; on a shared,
#: loaded 2-core machine that alone can take minutes.
START_TIMEOUT_S = 420.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A running ``heartline serve``: its address, the clinician's password, its state dir."""

    base_url: str
    password: str
    state_dir: Path
    proc: subprocess.Popen
    output: list[str]

    def login(self, client: httpx.Client) -> dict[str, str]:
        """The clinician's ``Authorization`` header."""
        tok = client.post(
            "/api/v1/login/access-token",
            data={"username": "clinician", "password": self.password},
        )
        assert tok.status_code == 200, tok.text
        return {"Authorization": f"Bearer {tok.json()['access_token']}"}


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``heartline serve --patients 2 --records 119,208 --workers 1`` in development mode, ready
    (logins printed, ``/ready`` answers 200); stopped with SIGINT afterwards (it must stop)."""
    port = free_port()
    state = tmp_path_factory.mktemp("serve") / "state"
    env = {**os.environ, "HEARTLINE_ENVIRONMENT": "development"}
    args = ["serve", "--patients", str(len(SERVE_PATIENTS)), "--records", SERVE_RECORDS]
    args += ["--port", str(port), "--state-dir", str(state), "--workers", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from heartline.cli.main import app; app()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    out: list[str] = []
    logins = threading.Event()
    passwords: list[str] = []

    def drain() -> None:  # read all of serve's output, so that a full pipe never blocks it
        for line in proc.stdout:  # type: ignore[union-attr]
            out.append(line)
            m = re.match(r"\s*clinician\s+clinician\s+(\S+)", line)
            if m and not passwords:
                passwords.append(m.group(1))
                logins.set()
        logins.set()  # serve exited

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        logins.wait(START_TIMEOUT_S)
        assert passwords, "serve did not print the demo logins:\n" + "".join(out)
        base_url = f"http://127.0.0.1:{port}"
        ready = False
        with httpx.Client(base_url=base_url, timeout=5) as client:
            while time.monotonic() < deadline and not ready:
                try:
                    ready = client.get("/ready").status_code == 200
                except httpx.TransportError:
                    pass
                if not ready:
                    time.sleep(0.3)
        assert ready, "serve's /ready never answered 200:\n" + "".join(out)
        yield Served(
            base_url=base_url, password=passwords[0], state_dir=state, proc=proc, output=out
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve did not stop on Ctrl-C")
        finally:
            reader.join(timeout=10)
