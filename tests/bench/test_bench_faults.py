"""`heartline bench faults --quick`: a real run (own Mosquitto, SQLite, worker processes) that
fails when an honest frame is lost, the no-data alert is late or missing, or memory grows."""

from __future__ import annotations

import json

from heartline.bench.faults import ATTACKS, run_faults_bench


def test_faults_quick(tmp_path, tiny_model_path, data_dir) -> None:
    res = run_faults_bench(
        tmp_path / "faults", model=tiny_model_path, quick=True, honest=2, data_dir=data_dir
    )
    on_disk = json.loads((tmp_path / "faults" / "faults.json").read_text())
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
    assert res["hostile_device"]["frames_stored"] < res["attacks"]["flood"]["messages"]
    q = res["quarantined_by_reason"]["processor_counters"]
    assert sum(q.values()) > 0
    assert res["worker_restarts"] == 0  # no attack crashed a worker
