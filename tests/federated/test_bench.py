"""``heartline bench federated --quick`` end to end, and its SIGTERM path (real deployments).

Both run the real CLI in a child process: the quick benchmark must finish and write the
report's schema; a SIGTERM in the middle of a federation must stop every process the benchmark
started (SuperLink, SuperNodes, ``flwr run`` and Flower's own helpers), none left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")

import heartline
from heartline.federated.deployment import pid_alive, process_tree

pytestmark = pytest.mark.slow

_SRC = str(Path(heartline.__file__).resolve().parents[1])  # this checkout's code in the child
_ENTRY = "from heartline.cli.main import main; main()"


def _bench(out: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """The CLI in a child process, its output in ``log`` (a file: a pipe could fill up)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    argv = ["bench", "federated", "--quick", "--out", str(out), *extra]
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-c", _ENTRY, *argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _assert_none_alive(seen: dict[int, int], grace_s: float = 15.0) -> None:
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p, s) for p, s in seen.items()):
        time.sleep(0.2)
    alive = {p: _cmdline(p) for p, s in seen.items() if pid_alive(p, s)}
    assert not alive, f"processes left running: {alive}"


def test_bench_quick_writes_the_report_schema(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    log_path = tmp_path / "bench.log"
    child = _bench(out, log_path)
    seen: dict[int, int] = {}
    try:
        while child.poll() is None:
            seen.update(process_tree([child.pid]))
            time.sleep(0.5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert child.returncode == 0, log[-3000:]
    seen.pop(child.pid, None)
    _assert_none_alive(seen)

    report = json.loads((out / "federated.json").read_text(encoding="utf-8"))
    assert report["engine"] == "flower-deployment"
    assert set(report["tasks"]) == {"beats", "rhythm"}
    beats, rhythm = report["tasks"]["beats"], report["tasks"]["rhythm"]
    assert {"central", "fedavg", "dp_eps3"} <= set(beats), beats.keys()
    assert {"central", "fedavg"} <= set(rhythm), rhythm.keys()
    for task, entries in report["tasks"].items():
        for name, e in entries.items():
            assert "error" not in e, f"{task} {name}: {e.get('error')}"
            for key in ("macro_f1", "rounds", "bytes_total", "seconds"):
                assert key in e, f"{task} {name} lacks {key}"
            assert 0.0 <= e["macro_f1"] <= 1.0
            assert e["seconds"] > 0
            if name == "central":
                assert e["rounds"] == 0 and e["bytes_total"] == 0
            else:  # a real federation: 2 rounds, weights went both ways
                assert e["rounds"] == 2, f"{task} {name}: {e['rounds']} rounds"
                assert e["bytes_total"] > 0
            if name.startswith("dp_"):
                assert e["epsilon"] == 3.0
    assert (out / "federated.md").is_file()
    assert (out / "curves_beats.png").is_file() and (out / "curves_rhythm.png").is_file()


def test_bench_sigterm_stops_every_federation(tmp_path: Path) -> None:
    # one beats federation only (no central training, no rhythm task, 1 round, 4 DS2 records):
    # the first SuperNode starts within seconds, and the run is long enough to be interrupted
    # (its ClientApps each load a hospital's records) but never waited for to the end
    out = tmp_path / "bench"
    log_path = tmp_path / "bench.log"
    child = _bench(
        out, log_path, "--beats-runs", "fedavg", "--rhythm-runs", "none", "--rounds", "1"
    )
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 300
        supernode_seen_at = None
        while time.monotonic() < deadline and child.poll() is None:
            seen.update(process_tree([child.pid]))
            if supernode_seen_at is None and any("flower-supernode" in _cmdline(p) for p in seen):
                supernode_seen_at = time.monotonic()
            # a few seconds in: the SuperNodes run and Flower may have spawned its helpers
            if supernode_seen_at is not None and time.monotonic() - supernode_seen_at > 5:
                break
            time.sleep(0.3)
        assert child.poll() is None, "the benchmark ended before a federation ran"
        assert supernode_seen_at is not None, "no SuperNode started within 300 s"
        seen.update(process_tree([child.pid]))
        n_flower = sum(1 for p, s in seen.items() if pid_alive(p, s) and "flower-" in _cmdline(p))
        assert n_flower >= 2  # a SuperLink and at least one SuperNode
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the benchmark did not exit within 120 s of SIGTERM")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert child.returncode == 130, log[-3000:]
    assert "interrupted" in log
    seen.pop(child.pid, None)
    _assert_none_alive(seen)
