"""Capacity of `heartline serve` itself, one fresh serve per step, at a given rhythm cadence.

Reproduces the procedure of ``docs/results/stream.md`` in one command: for every number of
patients, a fresh state directory, ``heartline admin create-user``, ``heartline serve
--workers 2 [--rhythm-interval-s S]``, then ``heartline bench stream --parts capacity
--patients N --duration D --serve-url ...`` against it, then the serve is stopped (SIGINT, then
SIGKILL after 30 s). Each step's report (``stream_serve.json/.md``, as
``stream_serve_<N>x<D>s.json/.md``) is copied to
``--out`` with the serve's log, and ``summary.jsonl`` gets one line per step.

Usage (on a quiet machine: the load generator, the broker, the API and both workers share the
cores)::

    .venv/bin/python benchmarks/serve_capacity/run.py --out DIR \\
        --patients 400 500 600 --duration 60 [--rhythm-interval-s 15]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HEARTLINE = [str(Path(sys.executable).with_name("heartline"))]  # the same environment's CLI


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> str:
    """Wait for the serve's API to answer; return its broker URL from the log."""
    deadline = time.monotonic() + timeout_s
    broker = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: see {log}")
        text = log.read_text(errors="replace")
        m = re.search(r"broker\s+(mqtts?://\S+)", text)
        broker = m.group(1) if m else None
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200 and broker:
                    return broker
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"serve not ready after {timeout_s} s: see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_step(
    n: int, *, duration: int, interval: float | None, port: int, out: Path, data_dir: str | None
) -> dict[str, object]:
    state = Path(tempfile.mkdtemp(prefix="servecap."))
    password = secrets.token_urlsafe(18)
    env = {**os.environ}
    create = [*HEARTLINE, "admin", "create-user", "--username", "benchadmin"]
    subprocess.run(
        [*create, "--password-stdin", "--state-dir", str(state)],
        input=password.encode(),
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    log = out / f"serve_{n}.log"
    cmd = [*HEARTLINE, "serve", "--state-dir", str(state), "--port", str(port), "--workers", "2"]
    if interval is not None:
        cmd += ["--rhythm-interval-s", f"{interval:g}"]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        broker = _wait_ready(url, proc, log, timeout_s=180)
        bench_out = state / "bench"
        bench = [
            *HEARTLINE, "bench", "stream", "--out", str(bench_out), "--parts", "capacity",
            "--patients", str(n), "--duration", str(duration), "--serve-url", url,
            "--serve-broker-url", broker,
            "--serve-database-url", f"sqlite:///{state / 'heartline.db'}",
            "--serve-user", "benchadmin",
        ]  # fmt: skip
        if data_dir:
            bench += ["--data-dir", data_dir]
        t0 = time.time()
        subprocess.run(bench, check=True, env={**env, "HEARTLINE_SERVE_PASSWORD": password})
        wall = time.time() - t0
        load = os.getloadavg()
    finally:
        _stop(proc)
    stem = f"stream_serve_{n}x{duration}s"
    for suffix in (".json", ".md"):
        shutil.copyfile(bench_out / f"stream_serve{suffix}", out / f"{stem}{suffix}")
    rep = json.loads((out / f"{stem}.json").read_text())
    shutil.rmtree(state, ignore_errors=True)
    return {"patients": n, "duration_s": duration, "rhythm_interval_s": interval or 5.0,
            "wall_s": round(wall, 1), "load_average_end": load, "report": rep}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patients", type=int, nargs="+", required=True)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--rhythm-interval-s", type=float, default=None)
    ap.add_argument("--port", type=int, default=8093)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for n in a.patients:
        row = run_step(
            n,
            duration=a.duration,
            interval=a.rhythm_interval_s,
            port=a.port,
            out=a.out,
            data_dir=a.data_dir,
        )
        with (a.out / "summary.jsonl").open("a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "report"}), flush=True)


if __name__ == "__main__":
    main()
