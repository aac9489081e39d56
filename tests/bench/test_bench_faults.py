"""`heartline bench faults --quick`: a real run (own Mosquitto, SQLite, worker processes) that
fails when an honest frame is lost, the no-data alert is late or missing, or memory grows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from heartline.bench.faults import ATTACKS


def test_faults_quick(tmp_path, tiny_model_path, data_dir) -> None:
    # the command in its own process, as users run it: the memory cap of "the bench process"
    # is about that process, not about a test runner that has imported half the suite
    cli = Path(sys.executable).with_name("heartline")
    out = tmp_path / "faults"
    args = ["bench", "faults", "--out", str(out), "--quick", "--honest", "2"]
    run = subprocess.run(
        [str(cli), *args, "--model", str(tiny_model_path), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # exit 1 = a target missed: the latency targets depend on the machine, checked below
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]
    on_disk = json.loads((out / "faults.json").read_text())
    res = on_disk
    assert (tmp_path / "faults" / "faults.md").read_text().startswith("# Fault-injection")
    for key, typ in (
        ("honest_frames_sent", int),
        ("honest_frames_stored", int),
        ("honest_p99_latency_s", float),
        ("no_data_alert_fired", bool),
        ("attacks", dict),
    ):
        assert isinstance(on_disk[key], typ), key
    assert set(on_disk["attacks"]) == set(ATTACKS)
    assert all(a["messages"] > 0 for a in res["attacks"].values())
    # targets that do not depend on the machine's speed
    assert res["honest_frames_sent"] >= 2 * 40
    assert res["honest_frames_lost"] == 0, res["per_device"]
    assert res["passed"]["no_data_alert_in_time"], res["no_data_alert_delay_s"]
    assert res["passed"]["memory_bounded"], res["memory"]
    assert set(res["memory"]) == {"bench (honest devices)", "workers", "broker"}
    att = res["attacks"]
    # no malformed frame reaches storage; each is quarantined with its reason
    for name in ("wrong_leads", "nan", "oversized", "wrong_partition", "future_dated"):
        assert att[name]["frames_stored"] == 0, (name, att[name])
    assert "non_finite" in att["nan"]["quarantined_rows_by_reason"]
    assert "wrong_partition" in att["wrong_partition"]["quarantined_rows_by_reason"]
    assert "unprocessable" in att["wrong_leads"]["quarantined_rows_by_reason"]
    assert set(att["future_dated"]["quarantined_rows_by_reason"]) <= {"clock_skew", "out_of_range"}
    assert att["future_dated"]["quarantined_rows_by_reason"]
    assert res["worker_restarts"] == 0  # no attack crashed a worker
