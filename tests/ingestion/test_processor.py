"""StreamProcessor and LiveSystem against real brokers and databases.

Every bad input is quarantined with its reason and counted while good frames keep flowing; the
default set-up (own Mosquitto + SQLite) and the system Mosquitto + PostgreSQL run end to end;
a hard broker kill and a processor crash lose nothing thanks to storage acknowledgements and
manual MQTT acks after the commit.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from heartline.devices.publisher import FramePublisher
from heartline.devices.simulator import VirtualWearable, WearableConfig
from heartline.devices.store_forward import StoreForwardQueue
from heartline.ingestion.broker import BrokerAddress, MosquittoSupervisor, wait_for_port
from heartline.ingestion.live import LiveSystem
from heartline.ingestion.payloads import Frame
from heartline.ingestion.processor import StreamProcessor
from heartline.ingestion.topics import frames_topic
from heartline.settings import load_settings
from heartline.storage import make_engine, make_session_factory, session_scope, upgrade_database
from heartline.storage.repository import register_device, register_patient
from heartline.storage.tables import Alert, Beat, FrameRecord, QuarantinedPayload, VitalSign

PARTS = 2
SYSTEM_BROKER = BrokerAddress("127.0.0.1", 1883)


def _frame(device_id: str, seq: int, *, n: int = 360, rng_seed: int = 0, **kw) -> Frame:
    rng = np.random.default_rng(rng_seed + seq)
    return Frame.from_counts(
        rng.integers(950, 1100, size=(n, 2)),
        device_id=device_id,
        seq=seq,
        start_time_s=1_700_000_000.0 + seq,
        fs_hz=360.0,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
        **kw,
    )


class RawPublisher:
    """Publishes arbitrary bytes with QoS 1 (what a broken or hostile device would send)."""

    def __init__(self, address: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}"
        )
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade_database(url)
    return url


def _register(url: str, *device_ids: str) -> None:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        for d in device_ids:
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()


def _wait(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _stored_seqs(url: str, device_id: str) -> list[int]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = (
            c.execute(select(FrameRecord.seq).where(FrameRecord.device_id == device_id))
            .scalars()
            .all()
        )
    engine.dispose()
    return sorted(rows)


# ------------------------------------------------------------------------------- bad input
def test_every_bad_input_is_quarantined_and_good_frames_survive(tmp_path, tiny_model) -> None:
    url = _db(tmp_path)
    good = "good-1"
    _register(url, good)
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=tiny_model,
            partitions=range(PARTS),
            n_partitions=PARTS,
            unknown_devices="quarantine",
            max_payload_bytes=64 * 1024,
            client_id=f"proc-{uuid.uuid4().hex[:6]}",
        ).start()
        raw = RawPublisher(broker.address)
        topic = frames_topic(good, partitions=PARTS)
        ok = [_frame(good, s).to_json() for s in range(10)]
        as_dict = json.loads(ok[0])
        wrong_len = dict(as_dict, ecg=[lead[:100] for lead in as_dict["ecg"]])
        out_of_range = dict(as_dict, ecg=[[5000] * 360, as_dict["ecg"][1]])
        bad_vital = dict(as_dict, vitals=[{"time_s": as_dict["start_time_s"], "hr_bpm": 900.0}])
        unequal = dict(as_dict, ecg=[as_dict["ecg"][0], as_dict["ecg"][1][:-1]])
        nan_text = (
            ok[0].decode().replace('"start_time_s":1700000000.0', '"start_time_s":NaN').encode()
        )
        assert b"NaN" in nan_text
        bad = [
            (topic, b"{not json", "malformed_json"),
            (topic, b"\xff\xfe\x00garbage", "malformed_json"),
            (topic, b'{"seq": 1}', "schema"),
            (topic, json.dumps(wrong_len).encode(), "length_mismatch"),
            (topic, json.dumps(unequal).encode(), "lead_mismatch"),
            (topic, nan_text, "non_finite"),
            (topic, json.dumps(out_of_range).encode(), "out_of_range"),
            (topic, json.dumps(bad_vital).encode(), "out_of_range"),
            (topic, b"{" + b" " * (70 * 1024) + b"}", "oversized"),
            (
                frames_topic("ghost-1", partitions=PARTS),
                _frame("ghost-1", 0).to_json(),
                "unknown_device",
            ),
            (frames_topic("ghost-2", partitions=PARTS), ok[0], "topic_mismatch"),
        ]
        # good frames out of order, with duplicates, interleaved with the bad ones
        order = [0, 1, 2, 4, 5, 3, 5, 6, 0, 7, 9, 9]
        sent = 0
        for i, s in enumerate(order):
            raw.send(topic, ok[s])
            sent += 1
            if i < len(bad):
                raw.send(bad[i][0], bad[i][1])
                sent += 1
        assert _wait(lambda: proc.counters().frames_in >= sent, 30), proc.counters()
        assert proc.wait_idle(10)
        raw.send(topic, ok[8])  # fills the gap after 9 was processed: late, stored
        sent += 1
        assert _wait(lambda: proc.counters().frames_in >= sent, 30), proc.counters()
        assert proc.wait_idle(10)
        c = proc.counters()
        raw.close()
        assert proc._worker is not None and proc._worker.is_alive()
        proc.stop()
    expected = collections.Counter(r for _, _, r in bad)
    assert c.quarantined == dict(expected)
    assert c.frames_stored == 10 and c.frames_duplicate == 3 and c.frames_late >= 1
    assert _stored_seqs(url, good) == list(range(10))
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(QuarantinedPayload.reason, QuarantinedPayload.payload)).all()
    engine.dispose()
    assert collections.Counter(r for r, _ in rows) == expected
    assert {p for _, p in rows} >= {b"{not json", b'{"seq": 1}'}  # kept verbatim


# ------------------------------------------------------------------------------- end to end
def _check_live_db(
    url: str, device_ids: list[str], frames_per_device: int, live: LiveSystem
) -> None:
    engine = make_engine(url)
    with engine.connect() as c:
        for d in device_ids:
            seqs = sorted(
                c.execute(select(FrameRecord.seq).where(FrameRecord.device_id == d)).scalars()
            )
            assert seqs == list(range(frames_per_device)), (d, seqs[:5], len(seqs))
        n_beats = c.execute(
            select(func.count()).select_from(Beat).where(Beat.device_id.in_(device_ids))
        ).scalar()
        n_vitals = c.execute(
            select(func.count()).select_from(VitalSign).where(VitalSign.device_id.in_(device_ids))
        ).scalar()
        patients = [f"p-{d}" for d in device_ids]
        n_alerts = c.execute(
            select(func.count()).select_from(Alert).where(Alert.patient_id.in_(patients))
        ).scalar()
        labels = set(c.execute(select(Beat.label).where(Beat.device_id.in_(device_ids))).scalars())
    engine.dispose()
    # ~60-110 bpm records: at least ~0.8 beats per second of signal reach storage
    assert n_beats >= 0.8 * frames_per_device * len(device_ids) - 10 * len(device_ids), n_beats
    assert labels <= set("NSVFQ")
    assert n_vitals >= frames_per_device * len(device_ids)  # 1 Hz pulse oximetry at least
    assert n_alerts >= 1
    assert all(len(p.queue) == 0 for p in live.publishers)  # every frame storage-acknowledged


def test_default_path_own_mosquitto_and_sqlite(tmp_path, tiny_model_path, data_dir) -> None:
    settings = load_settings(state_dir=tmp_path / "state", mqtt_partitions=4)
    assert settings.broker_url is None and settings.database_url is None
    with LiveSystem(
        settings,
        model=tiny_model_path,
        workers=2,
        patients=3,
        realtime=False,
        duration_s=40,
        data_dir=data_dir,
    ) as live:
        assert live.sim_done.wait(60)
        assert live.wait_drained(60), live.status()
        st = live.status()
        assert st.frames_stored == 120 and st.quarantined == 0
        assert {p.device_id for p in st.patients} == {"sim-0001", "sim-0002", "sim-0003"}
        _check_live_db(
            settings.resolved_database_url(), ["sim-0001", "sim-0002", "sim-0003"], 40, live
        )
        assert live.broker is not None and "sqlite" in settings.resolved_database_url()


def test_system_mosquitto_and_postgresql(tmp_path, tiny_model_path, data_dir, pg_url) -> None:
    if not wait_for_port(SYSTEM_BROKER.host, SYSTEM_BROKER.port, timeout_s=2):
        pytest.fail(
            "the system Mosquitto at 127.0.0.1:1883 is not running (start it; .ci/run does)"
        )
    tag = uuid.uuid4().hex[:6]
    settings = load_settings(
        state_dir=tmp_path / "state",
        broker_url="mqtt://127.0.0.1:1883",
        database_url=pg_url,
        mqtt_partitions=4,
    )
    with LiveSystem(
        settings,
        model=tiny_model_path,
        workers=2,
        patients=2,
        realtime=False,
        duration_s=30,
        data_dir=data_dir,
        device_prefix=f"pg{tag}",
        instance=tag,
    ) as live:
        assert live.broker is None
        assert live.sim_done.wait(60)
        assert live.wait_drained(60), live.status()
        _check_live_db(pg_url, [f"pg{tag}-0001", f"pg{tag}-0002"], 30, live)


# ------------------------------------------------------------------------------- failures
def _devices(tmp_path: Path, address: BrokerAddress, n: int, data_dir: Path, prefix: str):
    wearables, pubs = [], []
    for i in range(n):
        d = f"{prefix}-{i}"
        q = StoreForwardQueue(tmp_path / "dev" / f"{d}.sqlite", synchronous="NORMAL")
        wearables.append(
            VirtualWearable(
                WearableConfig(
                    device_id=d, record=("208", "119", "233")[i % 3], start_offset_s=0.0, seed=i
                ),
                start_time_s=time.time(),
                data_dir=data_dir,
            )
        )
        pubs.append(
            FramePublisher(
                q,
                address=address,
                device_id=d,
                partitions=PARTS,
                delete_on="storage",
                storage_ack_timeout_s=3.0,
            ).start()
        )
    return wearables, pubs


def _stream(wearables, pubs, n_frames: int, *, tick_s: float, at: int, action) -> None:
    streams = [w.frames() for w in wearables]
    for k in range(n_frames):
        if k == at:
            action()
        for s, p in zip(streams, pubs, strict=True):
            p.publish(next(s).frame)
        time.sleep(tick_s)


def test_hard_broker_kill_loses_nothing_with_storage_acks(tmp_path, tiny_model, data_dir) -> None:
    url = _db(tmp_path)
    n_frames = 60
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=tiny_model,
            partitions=range(PARTS),
            n_partitions=PARTS,
        ).start()
        wearables, pubs = _devices(tmp_path, broker.address, 3, data_dir, "kill")
        try:
            _stream(
                wearables, pubs, n_frames, tick_s=0.04, at=25, action=broker.kill
            )  # SIGKILL mid-stream
            assert _wait(lambda: broker.restarts >= 1, 10)
            assert all(p.flush(60) for p in pubs), [p.counters() for p in pubs]
        finally:
            for p in pubs:
                p.stop()
                p.queue.close()
        proc.wait_idle(10)
        proc.stop()
    for w in wearables:
        assert _stored_seqs(url, w.device_id) == list(range(n_frames))


def test_processor_crash_and_restart_loses_nothing_and_duplicates_nothing(
    tmp_path, tiny_model, data_dir
) -> None:
    url = _db(tmp_path)
    n_frames = 50
    cid = f"proc-{uuid.uuid4().hex[:6]}"
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        procs = [
            StreamProcessor(
                address=broker.address,
                database_url=url,
                model=tiny_model,
                partitions=range(PARTS),
                n_partitions=PARTS,
                client_id=cid,
            ).start()
        ]
        wearables, pubs = _devices(tmp_path, broker.address, 3, data_dir, "crash")

        def crash_and_restart() -> None:
            procs[0].kill()
            threading.Timer(
                1.0,
                lambda: procs.append(
                    StreamProcessor(
                        address=broker.address,
                        database_url=url,
                        model=tiny_model,
                        partitions=range(PARTS),
                        n_partitions=PARTS,
                        client_id=cid,
                    ).start()
                ),
            ).start()

        try:
            _stream(wearables, pubs, n_frames, tick_s=0.04, at=20, action=crash_and_restart)
            assert _wait(lambda: len(procs) == 2, 10)
            assert all(p.flush(60) for p in pubs), [p.counters() for p in pubs]
        finally:
            for p in pubs:
                p.stop()
                p.queue.close()
        procs[-1].wait_idle(10)
        procs[-1].stop()
    engine = make_engine(url)
    with engine.connect() as c:
        total = c.execute(select(func.count()).select_from(FrameRecord)).scalar()
        beats = c.execute(select(Beat.device_id, Beat.seq, Beat.sample_idx)).all()
    engine.dispose()
    assert total == 3 * n_frames
    for w in wearables:
        assert _stored_seqs(url, w.device_id) == list(range(n_frames))
    assert len(beats) == len(set(beats)) and len(beats) > 0


def test_stop_stores_the_alert_extensions_still_held_back(tmp_path, tiny_model) -> None:
    from heartline.alerts.engine import AlertEngine, EngineConfig
    from heartline.alerts.rules import Beat as EngineBeat

    url = _db(tmp_path)
    _register(url, "dev-a")
    proc = StreamProcessor(
        address=SYSTEM_BROKER,
        database_url=url,
        model=tiny_model,
        partitions=range(PARTS),
        n_partitions=PARTS,
    )  # never started: the alert path only
    eng = AlertEngine("p-dev-a", config=EngineConfig(report_interval_s=10.0))
    proc._engines["p-dev-a"] = eng

    def beats(t0: float, n: int, label: str) -> list[EngineBeat]:
        return [
            EngineBeat(t0 + 0.4 * i, int((t0 + 0.4 * i) * 360), label, 1.0, True) for i in range(n)
        ]

    opened = eng.add_beats(beats(0.0, 10, "N") + beats(4.0, 8, "V"), now_s=8.0)
    assert any(u.change == "opened" for u in opened)
    rows: dict[str, int] = {}
    with proc._factory() as s, s.begin():
        proc._write_alerts(s, opened, rows)
    proc._alert_rows.update(rows)
    # the episode goes on for 2 s more: held back by the 10 s report interval
    assert eng.add_beats(beats(7.2, 5, "V"), now_s=10.0) == []
    proc.stop()
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        stored = {a.evidence["alert_id"]: a for a in s.scalars(select(Alert))}
    engine.dispose()
    assert eng.active_alerts()
    for ev in eng.active_alerts():
        assert stored[ev.id].evidence["revision"] == ev.revision


# ------------------------------------------------------------------------ storage ack coalescing
class _AckListener:
    """Collects the storage acknowledgements the processor publishes (all devices)."""

    def __init__(self, address: BrokerAddress) -> None:
        from heartline.ingestion.acks import ACKS_SUBSCRIPTION, StorageAck

        self.acks: list = []
        self._parse = StorageAck.from_json
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"acks-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda _c, _u, msg: self.acks.append(self._parse(msg.payload))
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe(ACKS_SUBSCRIPTION, qos=1)
        assert self._ready.wait(5)

    def seqs(self, device_id: str) -> list[int]:
        return sorted(s for a in self.acks if a.device_id == device_id for s in a.seqs())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _ack_run(tmp_path: Path, tiny_model, *, ack_interval_s: float, n: int, stop_early: bool):
    url = _db(tmp_path)
    dev = "ackdev-1"
    _register(url, dev)
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        listener = _AckListener(broker.address)
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=tiny_model,
            partitions=range(PARTS),
            n_partitions=PARTS,
            ack_interval_s=ack_interval_s,
            batch_wait_s=0.0,
            batch_idle_s=0.001,
            client_id=f"proc-{uuid.uuid4().hex[:6]}",
        ).start()
        raw = RawPublisher(broker.address)
        try:
            for s in range(n):
                raw.send(frames_topic(dev, partitions=PARTS), _frame(dev, s).to_json())
                time.sleep(0.05)
            assert _wait(lambda: len(_stored_seqs(url, dev)) == n, 20)
            if not stop_early:
                assert _wait(lambda: len(listener.seqs(dev)) == n, 10)
        finally:
            raw.close()
            proc.stop()
        _wait(lambda: len(listener.seqs(dev)) == n, 5)
        listener.close()
        return listener, proc.counters(), dev


def test_storage_acks_are_coalesced_per_device_and_cover_every_frame(tmp_path, tiny_model) -> None:
    n = 12
    listener, counters, dev = _ack_run(
        tmp_path, tiny_model, ack_interval_s=0.4, n=n, stop_early=False
    )
    assert listener.seqs(dev) == list(range(n))  # every stored frame acknowledged exactly once
    # 12 frames 50 ms apart committed one by one, acknowledged about every 0.4 s
    assert 1 <= len(listener.acks) <= 4, [a.ranges for a in listener.acks]
    assert counters.storage_acks == len(listener.acks)


def test_storage_acks_uncoalesced_with_interval_zero(tmp_path, tiny_model) -> None:
    n = 6
    listener, _, dev = _ack_run(tmp_path, tiny_model, ack_interval_s=0.0, n=n, stop_early=False)
    assert listener.seqs(dev) == list(range(n))
    assert len(listener.acks) >= n - 1  # frames 50 ms apart: (nearly) one commit and ack each


def test_stop_sends_the_pending_storage_acks(tmp_path, tiny_model) -> None:
    n = 5
    listener, _, dev = _ack_run(tmp_path, tiny_model, ack_interval_s=3600.0, n=n, stop_early=True)
    assert listener.seqs(dev) == list(range(n))
    assert len(listener.acks) == 1


def test_bad_ack_interval_is_refused(tmp_path, tiny_model) -> None:
    with pytest.raises(ValueError, match="ack_interval_s"):
        StreamProcessor(
            address=BrokerAddress("127.0.0.1", 1),
            database_url=_db(tmp_path),
            model=tiny_model,
            partitions=[0],
            n_partitions=1,
            ack_interval_s=-1.0,
        )
