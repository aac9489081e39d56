"""The stream benchmark's load generator builds valid frames and its report renders."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.bench.stream import stream_markdown
from heartline.bench.stream_load import FramePool
from heartline.ingestion.payloads import parse_frame


def test_pool_payloads_are_valid_frames_of_the_record(data_dir) -> None:
    pool = FramePool(("208", "119"), 3, data_dir)
    raw = pool.payload(0, 4, "cap-00001", 17, 1_763_000_000.0)  # wraps to second 1 of 208
    f = parse_frame(raw)
    assert (f.device_id, f.seq, f.n_samples, f.fs_hz) == ("cap-00001", 17, 360, 360.0)
    assert f.start_time_s == 1_763_000_000.0
    assert all(abs(v.time_s - f.start_time_s) <= 1.0 for v in f.vitals) and f.vitals
    from heartline.data.paths import record_path
    from heartline.io import read_record

    rec = read_record(record_path("mitdb", "208", data_dir=data_dir))
    np.testing.assert_allclose(f.signal_mv(), rec.signal[360:720], atol=1e-9)


def test_pool_payloads_of_every_fleet_record_are_valid_frames(data_dir) -> None:
    """The fleet includes a single-lead 250 Hz wearable (``210:MLII@250``, since commit
    6fe6200): its payloads were built with the two-lead 360 Hz header, so every frame of a
    device whose id hashed to that record was refused (``lead_mismatch``). With the bench's
    random device ids that lost 0, 1 or 2 of 3 devices per fixed-load step (4-8 of 12 frames
    stored), which looked like a failure under load."""
    from itertools import islice

    from heartline.devices.simulator import VirtualWearable, WearableConfig
    from heartline.ingestion.live import ARRHYTHMIA_RECORDS

    pool = FramePool(ARRHYTHMIA_RECORDS, 2, data_dir)
    assert "210:MLII@250" in ARRHYTHMIA_RECORDS
    for i, rec in enumerate(ARRHYTHMIA_RECORDS):
        f = parse_frame(pool.payload(i, 1, "cap-00003", 5, 1_763_000_000.0))
        w = VirtualWearable(
            WearableConfig(device_id="pool", record=rec, start_offset_s=0.0, seed=0),
            start_time_s=1.7e9,
            data_dir=data_dir,
        )
        ref = list(islice(w.frames(), 2))[1].frame
        assert (f.fs_hz, f.lead_names, f.n_samples) == (ref.fs_hz, ref.lead_names, ref.n_samples)
        np.testing.assert_array_equal(f.ecg_counts(), ref.ecg_counts())


def test_pool_encodings_give_the_same_frames(data_dir) -> None:
    v1 = FramePool(("208",), 2, data_dir, payload_version=1)
    v2 = FramePool(("208",), 2, data_dir)  # version 2 by default
    for k in range(2):
        a = parse_frame(v1.payload(0, k, "cap-00002", k, 1_763_000_000.0 + k))
        b = parse_frame(v2.payload(0, k, "cap-00002", k, 1_763_000_000.0 + k))
        assert (a.v, b.v) == (1, 2)
        np.testing.assert_array_equal(a.ecg_counts(), b.ecg_counts())
        assert a.model_dump(exclude={"v", "ecg"}) == b.model_dump(exclude={"v", "ecg"})


def test_markdown_report_renders() -> None:
    step = {
        "patients": 10,
        "duration_s": 5,
        "frames_sent": 50,
        "frames_stored": 50,
        "frames_lost": 0,
        "p50_latency_s": 0.1,
        "p99_latency_s": 0.2,
        "p99_receipt_to_commit_s": 0.1,
        "generator_lag_p99_s": 0.0,
        "beats_total": 60,
        "passed": True,
    }
    cap = {
        "patients": 10,
        "p99_latency_s": 0.2,
        "frames_lost": 0,
        "target_patients": 1000,
        "target_met": False,
        "steps": [step],
    }
    r = {
        "config": {
            "workers": 2,
            "partitions": 8,
            "cpu_count": 2,
            "latency": "x",
            "p99_limit_s": 1.0,
            "model": "m.onnx",
        },
        "capacity": {"default": cap, "mosquitto_postgres": {"error": "no broker"}},
        "resilience": {
            "patients": 2,
            "duration_s": 10.0,
            "frames_sent": 20,
            "frames_stored": 20,
            "frames_lost": 0,
            "duplicate_rows": 0,
            "duplicates_received_and_dropped": 3,
            "device_replays": 2,
            "passed": True,
            "events": {
                "broker_sigkill_at_s": 2.0,
                "processor_sigkill_restart_at_s": 4.0,
                "device_offline": {"device": "res-0000", "start_s": 5.0, "duration_s": 2.0},
            },
        },
        "agreement": {
            "records": ["208"],
            "duration_s": 10,
            "offline_beats": 9,
            "same_sample_pct": 100.0,
            "agreement_pct": 100.0,
            "per_record": {
                "208": {"offline_beats": 9, "same_sample_pct": 100.0, "same_label_pct": 100.0}
            },
        },
        "elapsed_s": 1.0,
    }
    md = stream_markdown(r)
    assert "| default | 10 | 0.200 | 0 | no (target 1000) |" in md
    assert "error: no broker" in md and "| 208 | 9 | 100.00 | 100.00 |" in md
    assert "Where the CPU goes" not in md  # no CPU figures in this run
    # with CPU figures: the live worker stages at the capacity step beside the profile
    step["cpu_us_per_frame"] = {
        "frames": 40,
        "processors": 2500.0,
        "worker": 2200.0,
        "generator": 300.0,
        "stages": {"parse": 100.0, "alerts": 700.0},
    }
    r["profile"] = {
        "stages": [
            {"stage": "parse", "us_per_frame": 90.0},
            {"stage": "alerts", "us_per_frame": 800.0},
        ],
        "worker_us_per_frame": 2000.0,
    }
    md = stream_markdown(r)
    assert "| alerts | 800 | 700 |" in md and "| **worker total** | 2000 | 2200 |" in md
    assert "| 2500 | 300 | yes |" in md


def testresilience_plan_keeps_a_device_offline_through_both_crashes() -> None:
    from heartline.bench.stream import resilience_plan

    kill, restart, offline, total = resilience_plan(90.0, 600.0)  # the full benchmark
    assert offline.duration_s == 600.0
    assert offline.covers(kill) and offline.covers(restart)  # both crashes while it is offline
    assert total == offline.start_s + 600.0 + 18.0  # the run goes on after it reconnects
    kill, restart, offline, total = resilience_plan(40.0, 8.0)  # --quick
    assert (kill, restart, offline.start_s, total) == (10.0, 18.0, 8.0, 40.0)
    with pytest.raises(ValueError, match="outage_s"):
        resilience_plan(40.0, 0.0)


def test_markdown_report_renders_a_fixed_load_alone() -> None:
    run = {
        "patients": 4,
        "duration_s": 5,
        "frames_sent": 20,
        "frames_stored": 20,
        "frames_lost": 0,
        "p50_latency_s": 0.1,
        "p99_latency_s": 0.3,
        "p99_receipt_to_commit_s": 0.1,
        "generator_lag_p99_s": 0.0,
        "beats_total": 25,
        "passed": True,
        "cpu_us_per_frame": {"processors": 2100.0, "generator": 300.0},
    }
    r = {
        "config": {
            "workers": 2,
            "partitions": 8,
            "cpu_count": 2,
            "latency": "x",
            "p99_limit_s": 1.0,
            "model": "m.onnx",
        },
        "capacity": {},
        "fixed": run,
        "fixed_repeats": [run, dict(run, p99_latency_s=1.2, passed=False)],
        "elapsed_s": 1.0,
    }
    md = stream_markdown(r)
    assert "| (not run) |" in md and "Resilience" not in md and "Agreement" not in md
    assert "| 1 | 4 | 5 | 20 | 20 | 0 | 0.100 | 0.300 | 0.100 | 2100 | 300 | yes |" in md
    assert "| 2 | 4 | 5 | 20 | 20 | 0 | 0.100 | 1.200 | 0.100 | 2100 | 300 | no |" in md


def test_bench_stream_refuses_unknown_parts_and_bad_repeat(tmp_path) -> None:
    from typer.testing import CliRunner

    from heartline.bench.stream import run_stream_bench
    from heartline.cli.main import app

    runner = CliRunner()
    res = runner.invoke(
        app, ["bench", "stream", "--out", str(tmp_path), "--parts", "capacity,nope"]
    )
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["bench", "stream", "--out", str(tmp_path), "--repeat", "2"])
    assert res.exit_code == 2 and "--patients" in res.output
    with pytest.raises(ValueError, match="parts"):
        run_stream_bench(tmp_path, model=tmp_path / "m.onnx", parts=["bogus"])
    with pytest.raises(ValueError, match="repeat"):
        run_stream_bench(tmp_path, model=tmp_path / "m.onnx", repeat=3)


def test_bench_stream_fixed_load_end_to_end(tmp_path, data_dir) -> None:
    """A small fixed load through the real processes (own Mosquitto, SQLite, shipped model)."""
    import json

    from typer.testing import CliRunner

    from heartline.cli.main import app

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "bench", "stream", "--out", str(out), "--parts", "capacity", "--patients", "3",
            "--duration", "4", "--repeat", "2", "--data-dir", str(data_dir),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads((out / "stream.json").read_text())
    assert r["capacity"] == {} and "resilience" not in r and "profile" not in r
    assert len(r["fixed_repeats"]) == 2 and r["fixed"] == r["fixed_repeats"][0]
    for f in r["fixed_repeats"]:
        assert f["patients"] == 3 and f["frames_sent"] == 12
        assert f["frames_stored"] == 12 and f["frames_lost"] == 0
    assert "## Fixed load" in (out / "stream.md").read_text()


def test_capacity_search_doubles_then_bisects_and_steps_pass_on_loss_and_p99() -> None:
    """The step accounting shared by ``bench stream`` and ``bench stream --serve-url``."""
    from heartline.bench.stream_load import capacity_search, step_passed, wait_stored

    assert step_passed(0, 0.5) and not step_passed(1, 0.5)
    assert not step_passed(0, 1.5) and not step_passed(0, float("nan"))
    ran: list[int] = []

    def step(n: int) -> dict:
        ran.append(n)
        ok = n <= 300
        return {
            "patients": n,
            "passed": ok,
            "p99_latency_s": n / 1000,
            "frames_lost": 0 if ok else 3,
        }

    r = capacity_search(step, start=100, target=1000, max_steps=8, settle_s=0.0)
    assert ran[:3] == [100, 200, 400] and ran[3] == 300  # doubles, then bisects 200..400
    assert r["patients"] == max(n for n in ran if n <= 300) and not r["target_met"]
    assert r["p99_latency_s"] == r["patients"] / 1000 and r["frames_lost"] == 0
    assert len(r["steps"]) == len(ran) <= 8
    one = capacity_search(step, start=50, target=1000, max_steps=1, settle_s=0.0)
    assert one["patients"] == 50 and len(one["steps"]) == 1
    readings = iter([(1, "a"), (3, "b"), (5, "c")])
    assert wait_stored(lambda: next(readings), 3, 10.0, count=lambda g: g[0]) == (3, "b")


def test_capacity_searches_both_setups_alike(tmp_path, monkeypatch) -> None:
    """``bench stream``'s two set-ups (own Mosquitto + SQLite; system Mosquitto + PostgreSQL)
    get the same processor pool settings and the same capacity search, each pool stopped."""
    import contextlib
    from types import SimpleNamespace

    import heartline.bench.stream as bs
    import heartline.ingestion.broker as broker_mod
    import heartline.storage as storage

    own = SimpleNamespace(host="127.0.0.1", port=18830)

    class FakeBroker:
        def __init__(self, path) -> None:
            self.address = own

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    pools: list = []

    class FakePool:
        def __init__(self, **kw) -> None:
            self.kw, self.stopped = kw, False
            pools.append(self)

        def stop(self) -> None:
            self.stopped = True

    searches: list = []

    def fake_search(setup, frames, **kw):
        searches.append((setup.name, setup.db_url, setup.pool, kw))
        return {"patients": len(searches)}

    @contextlib.contextmanager
    def fake_pg(admin_url: str):
        yield "postgresql+psycopg://scratch"

    def report(msg: str) -> None:
        pass

    monkeypatch.setattr(broker_mod, "MosquittoSupervisor", FakeBroker)
    monkeypatch.setattr(broker_mod, "wait_for_port", lambda *a, **k: True)
    monkeypatch.setattr(storage, "upgrade_database", lambda url: None)
    monkeypatch.setattr(bs, "_ProcessorPool", FakePool)
    monkeypatch.setattr(bs, "_search", fake_search)
    monkeypatch.setattr(bs, "_scratch_pg", fake_pg)
    result: dict = {"capacity": {}}
    bs._capacity(
        result, tmp_path, None, model=tmp_path / "m.onnx", quick=True, patients=None,
        duration_s=None, repeat=1, step_s=5, max_steps=3, postgres_admin_url="postgresql://a",
        system_broker_url="mqtt://10.0.0.9:1884", workers=2, n_partitions=4, target=100,
        report=report,
    )  # fmt: skip
    assert result["capacity"] == {"default": {"patients": 1}, "mosquitto_postgres": {"patients": 2}}
    db_default = f"sqlite:///{tmp_path / 'capacity_default' / 'heartline.db'}"
    assert [s[:2] for s in searches] == [
        ("default", db_default),
        ("mosquitto_postgres", "postgresql+psycopg://scratch"),
    ]
    steps = dict(start=50, target=100, duration_s=5, n_partitions=4, max_steps=3, drain_s=20)
    assert searches[0][3] == searches[1][3] == {**steps, "report": report}
    assert [s[2] for s in searches] == pools and all(p.stopped for p in pools)
    common = {"model": tmp_path / "m.onnx", "workers": 2, "n_partitions": 4}
    assert [p.kw for p in pools] == [
        {"host": "127.0.0.1", "port": 18830, "db_url": db_default, **common},
        {"host": "10.0.0.9", "port": 1884, "db_url": "postgresql+psycopg://scratch", **common},
    ]
