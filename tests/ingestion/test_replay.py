"""``heartline alarms`` replays records through the stream processor's own stages: the alarms
it reports must be those a real :class:`StreamProcessor` (real broker, real database) raises
for the same frames (issue 19, item 4)."""

from __future__ import annotations

import csv
import time
import uuid
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.ingestion.processor import StreamProcessor
from heartline.ingestion.replay import (
    REPLAY_T0_S,
    ReplayProcessor,
    record_frames,
    replay_record,
    replay_signal,
    shipped_beat_model,
)
from heartline.ingestion.topics import frames_topic
from heartline.io.readers import read_ecg
from heartline.storage import make_engine, make_session_factory, session_scope, upgrade_database
from heartline.storage.repository import register_device, register_patient
from heartline.storage.tables import Alert, FrameRecord

PARTS = 2


@pytest.fixture(scope="module")
def beat_model():
    return shipped_beat_model()


def _records(data_dir: Path) -> dict[str, Path]:
    # a CinC 2017 AF recording (one lead, 300 Hz) and 60 s of MIT-BIH 201 (AF, two leads)
    return {"A00004": data_dir / "cinc2017" / "A00004", "201": data_dir / "mitdb" / "201"}


def _signal(path: Path):
    rec = read_ecg(path)
    n = round(60 * rec.fs)
    return rec.signal[:n], rec.fs, tuple(rec.lead_names)


@pytest.mark.parametrize("artefact_model", ["auto", "shipped"])
def test_live_and_replay_raise_the_same_alarms(tmp_path, data_dir, beat_model, artefact_model):
    """Also with the beat artefact model on (``shipped``), whatever the default."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from heartline.ingestion.broker import MosquittoSupervisor

    records = _records(data_dir)
    devices = {name: f"dev-{name}" for name in records}
    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        for d in devices.values():
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()
    frames = {
        name: list(record_frames(sig, fs=fs, lead_names=leads, device_id=devices[name]))
        for name, (sig, fs, leads) in ((n, _signal(p)) for n, p in records.items())
    }
    n_frames = sum(len(v) for v in frames.values())
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=beat_model,
            partitions=range(PARTS),
            n_partitions=PARTS,
            client_id=f"replay-{uuid.uuid4().hex[:6]}",
            max_clock_ahead_s=None,
            artefact_model=artefact_model,
        ).start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
        pub.connect(broker.address.host, broker.address.port)
        pub.loop_start()
        try:
            # the two devices interleaved, as live devices send
            for k in range(max(len(v) for v in frames.values())):
                for fr in frames.values():
                    if k < len(fr):
                        topic = frames_topic(fr[k].device_id, partitions=PARTS)
                        pub.publish(topic, fr[k].to_json(), qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if proc.counters().frames_stored >= n_frames and proc.wait_idle(0.2):
                    break
                time.sleep(0.2)
        finally:
            pub.disconnect()
            pub.loop_stop()
            proc.stop()
    assert proc.counters().frames_stored == n_frames, proc.counters()
    # the single-lead device got the single-lead beat model, the two-lead one the two-lead model
    assert proc._devices["dev-A00004"].beat_model.n_leads == 1
    assert proc._devices["dev-201"].beat_model.n_leads == 2
    assert proc.counters().to_dict().get("quarantined") == {}
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(
            select(Alert.device_id, Alert.type, Alert.severity, Alert.start_time, Alert.evidence)
        ).all()
        assert c.execute(select(FrameRecord.seq)).all()
    engine.dispose()
    live: dict[str, list[tuple]] = {name: [] for name in records}
    by_device = {d: n for n, d in devices.items()}
    for device_id, kind, severity, start, evidence in rows:
        t0 = start.timestamp() if start.tzinfo else start.replace(tzinfo=UTC).timestamp()
        live[by_device[device_id]].append(
            (
                kind,
                severity,
                round(t0 - REPLAY_T0_S, 2),
                round(evidence["last_evidence_s"] - REPLAY_T0_S, 2),
            )
        )
    for name, path in records.items():
        sig, fs, leads = _signal(path)
        replayed = replay_signal(
            sig,
            fs=fs,
            lead_names=leads,
            record=name,
            model=beat_model,
            artefact_model=artefact_model,
        )
        got = sorted((r.type, r.severity, round(r.start_s, 2), round(r.end_s, 2)) for r in replayed)
        assert got == sorted(live[name]), name
    # the AF recordings raise the AF alarm (the rhythm model's, see docs/results/alarms.md)
    assert any(x[0] == "af_like" for x in live["A00004"])
    assert any(x[0] == "af_like" for x in live["201"])


def test_replay_does_not_depend_on_batching(data_dir, beat_model):
    sig, fs, leads = _signal(_records(data_dir)["A00004"])
    a = replay_signal(
        sig, fs=fs, lead_names=leads, record="a", model=beat_model, frames_per_batch=1
    )
    b = replay_signal(
        sig, fs=fs, lead_names=leads, record="a", model=beat_model, frames_per_batch=7
    )
    assert a == b and a


def test_rhythm_windows_batched_across_devices(data_dir, beat_model):
    """Two devices in one processor: their due rhythm windows go to the model together."""
    proc = ReplayProcessor(model=beat_model)
    calls = []
    real = proc.rhythm.predict_windows

    def spy(x, m, rr):
        calls.append(x.shape[0])
        return real(x, m, rr)

    proc.rhythm.predict_windows = spy  # type: ignore[method-assign]
    sig, fs, leads = _signal(_records(data_dir)["A00004"])
    fa = list(record_frames(sig, fs=fs, lead_names=leads, device_id="d-a"))
    fb = list(record_frames(sig, fs=fs, lead_names=leads, device_id="d-b"))
    for x, y in zip(fa, fb, strict=True):
        proc.feed([x, y])
    assert calls and all(n == 2 for n in calls)  # one call per due time, both devices in it
    assert proc.counters().to_dict()["quarantined"] == {}


def test_alarms_cli_writes_rows_and_error_rows(tmp_path, data_dir):
    out = tmp_path / "alarms.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = CliRunner().invoke(
        app,
        [
            "alarms",
            str(data_dir / "cinc2017" / "A00004"),
            str(bad),
            str(tmp_path / "missing"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert set(rows[0]) == {"record", "start_s", "end_s", "type", "severity", "technical", "error"}
    errors = {Path(r["record"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"bad.csv", "missing"}
    af = [r for r in rows if r["type"] == "af_like"]
    assert af and af[0]["technical"] == "False"
    expected = replay_record(data_dir / "cinc2017" / "A00004", model=shipped_beat_model())
    assert len([r for r in rows if not r["error"]]) == len(expected)


def test_rhythm_interval_sets_how_often_a_device_is_classified(data_dir, beat_model):
    """``rhythm_interval_s`` (``heartline serve --rhythm-interval-s``): a 10 s cadence runs
    about half the windows of the default 5 s on the same record."""
    sig, fs, leads = _signal(_records(data_dir)["A00004"])
    frames = list(record_frames(sig, fs=fs, lead_names=leads, device_id="d-a"))
    counts = {}
    for interval in (5.0, 10.0):
        proc = ReplayProcessor(model=beat_model, rhythm_interval_s=interval)
        for f in frames:
            proc.feed([f])
        counts[interval] = proc.counters().to_dict()["rhythm_windows"]
    assert counts[5.0] >= 3
    assert counts[10.0] < counts[5.0] <= 2 * counts[10.0] + 1
