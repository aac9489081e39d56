"""Fault isolation in the stream processor (issue 18, findings 1 and 5, no-data alert).

The batch handler is driven directly (no broker), as ``heartline bench stream-profile`` does:
each test hands one batch of MQTT messages to :meth:`StreamProcessor._handle` and checks what
was stored, quarantined and acknowledged. Fake MQTT clients record the PUBACKs.
"""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from heartline.ingestion.broker import BrokerAddress
from heartline.ingestion.payloads import Frame
from heartline.ingestion.processor import StreamProcessor, _Message
from heartline.ingestion.topics import TOPIC_PREFIX, frames_topic, partition_for
from heartline.storage import make_engine, make_session_factory, session_scope, upgrade_database
from heartline.storage.repository import register_device, register_patient
from heartline.storage.tables import Alert, FrameRecord, QuarantinedPayload

PARTS = 4
_MIDS = itertools.count(1)


class FakeClient:
    """Records PUBACKs and publications instead of talking to a broker."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.published.append((topic, payload))


def _frame(device_id: str, seq: int, *, leads: int = 2, start_time_s: float | None = None):
    rng = np.random.default_rng(seq)
    return Frame.from_counts(
        rng.integers(950, 1100, size=(360, leads)),
        device_id=device_id,
        seq=seq,
        start_time_s=1_700_000_000.0 + seq if start_time_s is None else start_time_s,
        fs_hz=360.0,
        lead_names=("MLII", "V5")[:leads],
        adc_bits=11,
        adc_gain=(200.0,) * leads,
        adc_baseline=(1024,) * leads,
    )


def _msg(frame_or_bytes, *, topic: str | None = None, device_id: str | None = None) -> _Message:
    if isinstance(frame_or_bytes, Frame):
        payload = frame_or_bytes.to_json()
        device_id = frame_or_bytes.device_id
    else:
        payload = frame_or_bytes
    topic = topic or frames_topic(str(device_id), partitions=PARTS)
    return _Message(topic, payload, next(_MIDS), 1, time.monotonic(), 0)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'iso.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        for d in ("good-1", "good-2", "good-3", "bad-1"):
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()
    return url


def _processor(url: str, model, **kw) -> tuple[StreamProcessor, FakeClient]:
    proc = StreamProcessor(
        address=BrokerAddress("127.0.0.1", 1),  # never connected
        database_url=url,
        model=model,
        partitions=range(PARTS),
        n_partitions=PARTS,
        unknown_devices="quarantine",
        client_id=f"iso-{uuid.uuid4().hex[:6]}",
        **kw,
    )
    fake = FakeClient()
    proc._clients = [fake] * PARTS
    proc._client = fake
    return proc, fake


def _rows(url: str, table, *cols):
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(*[getattr(table, x) for x in cols])).all()
    engine.dispose()
    return sorted(tuple(r) for r in rows)


# ------------------------------------------------------------------ finding 1: one bad frame
def test_a_one_lead_frame_does_not_stop_the_other_devices_of_its_batch(db_url, tiny_model):
    """Issue 18 finding 1: a frame the pipeline cannot take failed the whole batch (nothing
    stored, nothing acknowledged, so the broker stopped delivering the partition)."""
    proc, fake = _processor(db_url, tiny_model)
    batch = [_msg(_frame(d, s)) for s in range(3) for d in ("good-1", "good-2", "good-3")]
    batch.insert(4, _msg(_frame("bad-1", 0, leads=1)))
    proc._handle(batch)
    stored = _rows(db_url, FrameRecord, "device_id", "seq")
    assert stored == sorted((d, s) for d in ("good-1", "good-2", "good-3") for s in range(3))
    assert _rows(db_url, QuarantinedPayload, "device_id", "reason") == [("bad-1", "unprocessable")]
    assert sorted(fake.acked) == sorted(m.mid for m in batch)  # every message handled
    c = proc.counters()
    assert c.frames_stored == 9 and c.quarantined == {"unprocessable": 1}
    # the next batch of the good devices is analysed as usual
    proc._handle([_msg(_frame("good-1", 3)), _msg(_frame("bad-1", 1, leads=1))])
    assert ("good-1", 3) in _rows(db_url, FrameRecord, "device_id", "seq")
    assert proc.device_states()["good-1"]["last_seq"] == 3


def test_a_topic_on_the_wrong_partition_is_quarantined(db_url, tiny_model):
    """A device may not choose its partition: the topic's must be its id's hash."""
    proc, fake = _processor(db_url, tiny_model)
    right = partition_for("bad-1", partitions=PARTS)
    wrong = (right + 1) % PARTS
    m = _msg(_frame("bad-1", 0), topic=f"{TOPIC_PREFIX}/{wrong}/bad-1/frames")
    proc._handle([m, _msg(_frame("good-1", 0))])
    assert _rows(db_url, FrameRecord, "device_id", "seq") == [("good-1", 0)]
    assert _rows(db_url, QuarantinedPayload, "reason") == [("wrong_partition",)]
    assert m.mid in fake.acked


def test_a_device_that_keeps_sending_bad_frames_is_rate_limited_and_flagged(db_url, tiny_model):
    proc, fake = _processor(
        db_url,
        tiny_model,
        device_strike_limit=5,
        device_strike_window_s=60.0,
        device_backoff_s=60.0,
    )
    bad = [_msg(b'{"not": "a frame"}', device_id="bad-1") for _ in range(20)]
    for i in range(0, 20, 4):
        proc._handle([*bad[i : i + 4], _msg(_frame("good-1", i))])
    c = proc.counters()
    # refusals are counted per batch: the limit is reached in the second batch of four
    assert c.quarantined["schema"] == 8
    assert c.quarantined["rate_limited"] == 12  # dropped cheaply, not stored
    assert len(_rows(db_url, QuarantinedPayload, "id")) == 8
    assert {m.mid for m in bad} <= set(fake.acked)  # every one acknowledged as handled
    flags = _rows(db_url, Alert, "patient_id", "type", "device_id")
    assert flags == [("p-bad-1", "device_faulty", "bad-1")]
    assert _rows(db_url, FrameRecord, "device_id") == [("good-1",)] * 5
    assert proc.counters().devices_flagged == 1


def test_a_batch_that_fails_anyway_is_handled_device_by_device(db_url, tiny_model, monkeypatch):
    """Any other failure (here: a write the database refuses for one device's frames) costs
    only that device: the batch is handled again device by device, the failing device's
    messages are quarantined as ``processing_error``, every message is acknowledged."""
    proc, fake = _processor(db_url, tiny_model)
    write = proc._write

    def refuse_bad_1(to_store, *args, **kwargs):
        if any(f.device_id == "bad-1" for _m, f, _s in to_store):
            raise ValueError("a value the database refuses")
        return write(to_store, *args, **kwargs)

    monkeypatch.setattr(proc, "_write", refuse_bad_1)
    batch = [_msg(_frame(d, s)) for s in range(3) for d in ("good-1", "bad-1", "good-2")]
    proc._handle(batch)
    assert _rows(db_url, FrameRecord, "device_id", "seq") == [
        (d, s) for d in ("good-1", "good-2") for s in range(3)
    ]
    assert (
        _rows(db_url, QuarantinedPayload, "device_id", "reason")
        == [("bad-1", "processing_error")] * 3
    )
    assert sorted(fake.acked) == sorted(m.mid for m in batch)
    assert proc.counters().quarantined == {"processing_error": 3}


# ------------------------------------------------------------------ finding 5: time sanity
def test_a_frame_dated_2099_is_quarantined_and_never_the_latest(db_url, tiny_model):
    """Issue 18 finding 5: one frame dated 2099 became the dashboard's "latest" ECG."""
    proc, _ = _processor(db_url, tiny_model, max_clock_ahead_s=300.0)
    now = time.time()
    future = _frame("good-1", 1, start_time_s=4_070_908_800.0)  # 2099-01-01
    proc._handle([_msg(_frame("good-1", 0, start_time_s=now - 5)), _msg(future)])
    assert _rows(db_url, FrameRecord, "device_id", "seq") == [("good-1", 0)]
    assert _rows(db_url, QuarantinedPayload, "reason") == [("clock_skew",)]


def test_frames_older_than_the_allowed_age_are_quarantined(db_url, tiny_model):
    proc, _ = _processor(db_url, tiny_model, max_frame_age_s=3600.0)
    now = time.time()
    proc._handle(
        [
            _msg(_frame("good-1", 0, start_time_s=now - 7200)),
            _msg(_frame("good-2", 0, start_time_s=now - 60)),
        ]
    )
    assert _rows(db_url, FrameRecord, "device_id") == [("good-2",)]
    assert _rows(db_url, QuarantinedPayload, "reason") == [("clock_skew",)]


# ------------------------------------------------------------------ no data
def test_a_silent_patient_raises_a_no_data_alert_closed_when_data_resumes(db_url, tiny_model):
    proc, _ = _processor(db_url, tiny_model, no_data_alert_s=0.3)
    proc._handle([_msg(_frame("good-1", 0)), _msg(_frame("good-2", 0))])
    proc._check_no_data(time.monotonic())
    assert _rows(db_url, Alert, "type") == []
    time.sleep(0.4)
    proc._handle([_msg(_frame("good-2", 1))])  # good-2 keeps sending
    proc._check_no_data(time.monotonic())
    rows = _rows(db_url, Alert, "patient_id", "type", "severity")
    assert rows == [("p-good-1", "no_data", "high")]
    engine = make_engine(db_url)
    with engine.connect() as c:
        alert = c.execute(select(Alert)).one()
    assert alert.end_time is None and alert.evidence["category"] == "technical"
    proc._handle([_msg(_frame("good-1", 1))])
    proc._check_no_data(time.monotonic())
    with engine.connect() as c:
        alert = c.execute(select(Alert)).one()
    engine.dispose()
    assert alert.end_time is not None  # closed when the data came back
    proc._check_no_data(time.monotonic())
    assert len(_rows(db_url, Alert, "id")) == 1  # not raised again while data flows


def test_bad_settings_are_refused(db_url, tiny_model):
    with pytest.raises(ValueError, match="no_data_alert_s"):
        _processor(db_url, tiny_model, no_data_alert_s=0.0)
    with pytest.raises(ValueError, match="max_clock_ahead_s"):
        _processor(db_url, tiny_model, max_clock_ahead_s=-1.0)


# ------------------------------------------------------------------ finding 1, end to end
def test_a_hostile_device_cannot_freeze_another_patients_partition(tmp_path, tiny_model):
    """Issue 18 finding 1 as reported: 110 one-lead frames from one registered device, aimed at
    another patient's partition (and at its own), with a real broker: the other patient's
    frames are all stored, the hostile ones quarantined, nothing is left unacknowledged.

    No wall-clock race: every publication is confirmed by the broker (PUBACK) before the test
    waits, and the wait ends on the processor's own counters (every message accounted for,
    then idle); the time limit only guards against a hang."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from heartline.ingestion.broker import MosquittoSupervisor

    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        for d in ("good-1", "bad-1"):
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=tiny_model,
            partitions=range(PARTS),
            n_partitions=PARTS,
            client_id=f"e2e-{uuid.uuid4().hex[:6]}",
            device_strike_limit=10_000,  # no block: every hostile frame reaches analysis
            device_rate_factor=None,  # no frame budget either
        ).start(wait_s=120)
        assert proc.connected
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:6]}")
        pub.connect(broker.address.host, broker.address.port)
        pub.loop_start()
        infos = []
        try:
            target = partition_for("good-1", partitions=PARTS)
            for seq in range(110):
                hostile = _frame("bad-1", seq, leads=1).to_json()
                for topic in (
                    f"{TOPIC_PREFIX}/{target}/bad-1/frames",  # aimed at good-1's partition
                    frames_topic("bad-1", partitions=PARTS),
                ):
                    infos.append(pub.publish(topic, hostile, qos=1))
                if seq % 5 == 0:
                    good = _frame("good-1", seq // 5).to_json()
                    infos.append(pub.publish(frames_topic("good-1", partitions=PARTS), good, qos=1))
            for info in infos:  # the broker holds all 242 for the processor's sessions
                info.wait_for_publish(120)
            assert all(info.is_published() for info in infos)
            guard = time.monotonic() + 600  # a hang guard, not a race: the loop ends on counts
            while time.monotonic() < guard:
                c = proc.counters()
                if c.quarantined_total + c.frames_stored >= 242 and proc.wait_idle(1.0):
                    break
                time.sleep(0.2)
        finally:
            pub.disconnect()
            pub.loop_stop()
            proc.stop()
    assert _rows(url, FrameRecord, "device_id", "seq") == [("good-1", s) for s in range(22)]
    c = proc.counters()
    assert c.quarantined == {"wrong_partition": 110, "unprocessable": 110}, c.quarantined
    assert c.frames_stored == 22


# ------------------------------------------------------------------ frame budget (flood)
class FakeMonotonic:
    """The processor's budget clock, moved by the test (no wall-clock race)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _budget_processor(url: str, model, **kw):
    proc, fake = _processor(url, model, **kw)
    clock = FakeMonotonic()
    proc._monotonic = clock
    return proc, fake, clock


def test_a_flooding_device_does_not_delay_or_lose_the_honest_frames_of_its_batch(
    db_url, tiny_model, monkeypatch
):
    """Issue 18 (bench faults, 2026-12-06): a registered device flooding well-formed frames
    (3,000/s, all dated "now") had every frame parsed, analysed and stored, and the honest
    devices of its worker waited minutes behind it. With a frame budget the flood's excess is
    quarantined as ``rate_limited`` (acknowledged, not stored), most of it before parsing, and
    every honest frame of the batch is stored."""
    import heartline.ingestion.processor as processor_mod

    parsed: list[int] = []
    real_parse = processor_mod.parse_frame

    def counting_parse(payload, **kw):
        parsed.append(1)
        return real_parse(payload, **kw)

    monkeypatch.setattr(processor_mod, "parse_frame", counting_parse)
    proc, fake, clock = _budget_processor(db_url, tiny_model)
    now = time.time()
    honest = ("good-1", "good-2", "good-3")
    flood = [_msg(_frame("bad-1", s, start_time_s=now - 1)) for s in range(400)]
    batch: list[_Message] = []
    for s in range(2):
        batch.extend(_msg(_frame(d, s, start_time_s=now - 3 + s)) for d in honest)
        batch.extend(flood[200 * s : 200 * (s + 1)])
    proc._handle(batch)
    stored = _rows(db_url, FrameRecord, "device_id", "seq")
    assert [x for x in stored if x[0] != "bad-1"] == sorted(
        (d, s) for d in honest for s in range(2)
    )
    n_flood_stored = sum(x[0] == "bad-1" for x in stored)
    # a device first seen gets device_initial_burst_s (60 s) of signal: 60 one-second frames
    assert n_flood_stored == 60
    c = proc.counters()
    assert c.quarantined == {"rate_limited": 400 - 60}
    assert sorted(fake.acked) == sorted(m.mid for m in batch)  # every message handled
    # the excess was refused before parsing: the batch's work is the honest frames + the burst
    assert len(parsed) == 6 + 60
    # ... and the device is flagged as persistent bad-frame senders are
    assert _rows(db_url, Alert, "patient_id", "type", "device_id") == [
        ("p-bad-1", "device_faulty", "bad-1")
    ]
    assert c.devices_flagged == 1 and c.devices_blocked == 1
    # the next second: the honest devices go on, the flood is dropped unparsed
    clock.t += 1.0
    parsed.clear()
    nxt = [_msg(_frame(d, 2, start_time_s=now - 1)) for d in honest]
    more = [_msg(_frame("bad-1", s, start_time_s=now)) for s in range(400, 500)]
    proc._handle(nxt + more)
    assert len(parsed) == 3
    stored = _rows(db_url, FrameRecord, "device_id", "seq")
    assert {(d, 2) for d in honest} <= set(stored)
    assert sum(x[0] == "bad-1" for x in stored) == 60
    assert proc.counters().quarantined == {"rate_limited": 440}


def test_a_store_and_forward_backlog_after_a_link_drop_is_not_rate_limited(db_url, tiny_model):
    """Resends after a link drop are legitimate: a device silent for 120 s sends its 120 queued
    frames at once with the live one, and a device first seen with a 300 s old backlog (e.g.
    after a processor restart) sends 300; none is refused."""
    proc, _fake, clock = _budget_processor(db_url, tiny_model)
    now = time.time()
    proc._handle([_msg(_frame("good-1", s, start_time_s=now - 125 + s)) for s in range(5)])
    clock.t += 120.0  # silent: the link is down, the device queues 120 frames
    backlog = [_msg(_frame("good-1", s, start_time_s=now - 125 + s)) for s in range(5, 126)]
    first_seen = [_msg(_frame("good-2", s, start_time_s=now - 300 + s)) for s in range(300)]
    proc._handle(backlog + first_seen)
    stored = _rows(db_url, FrameRecord, "device_id", "seq")
    assert stored == sorted(
        [("good-1", s) for s in range(126)] + [("good-2", s) for s in range(300)]
    )
    assert proc.counters().quarantined == {}
    assert ("device_faulty",) not in _rows(db_url, Alert, "type")


def test_over_budget_frames_of_an_honest_device_are_sent_again_and_stored(db_url, tiny_model):
    """Nothing over the budget is lost for a store-and-forward device: the refused frames get
    no storage acknowledgement, so the device sends them again, and they are stored once its
    bucket has refilled (device_rate_factor seconds of signal per second)."""
    proc, fake, clock = _budget_processor(db_url, tiny_model, device_strike_limit=10_000)
    now = time.time()
    frames = [_frame("good-1", s, start_time_s=now - 1) for s in range(80)]  # 80 s at once
    proc._handle([_msg(f) for f in frames])
    first = {s for _d, s in _rows(db_url, FrameRecord, "device_id", "seq")}
    assert len(first) == 60 and proc.counters().quarantined == {"rate_limited": 20}
    proc._send_acks(None)
    acked = set()
    for _topic, payload in fake.published:
        from heartline.ingestion.acks import StorageAck

        for lo, hi in StorageAck.from_json(payload).ranges:
            acked.update(range(lo, hi))
    assert acked == first  # the refused ones are not acknowledged as stored
    clock.t += 5.0  # 5 s at 4 s of signal per second: 20 s of budget back
    proc._handle([_msg(f) for f in frames if f.seq not in acked])
    assert len(_rows(db_url, FrameRecord, "seq")) == 80


def test_one_lead_frames_count_towards_the_block(db_url, tiny_model):
    """Frames that fail analysis (a one-lead frame for the two-lead model) are refusals like
    any other: a device that keeps sending them is blocked and flagged."""
    proc, _fake, _clock = _budget_processor(db_url, tiny_model, device_strike_limit=5)
    now = time.time()
    proc._handle([_msg(_frame("bad-1", s, leads=1, start_time_s=now - 20 + s)) for s in range(5)])
    c = proc.counters()
    assert c.quarantined == {"unprocessable": 5} and c.devices_blocked == 1
    assert _rows(db_url, Alert, "type", "device_id") == [("device_faulty", "bad-1")]
    proc._handle([_msg(_frame("bad-1", 5, start_time_s=now - 1))])
    assert proc.counters().quarantined == {"unprocessable": 5, "rate_limited": 1}


def test_bad_budget_settings_are_refused(db_url, tiny_model):
    with pytest.raises(ValueError, match="device_rate_factor"):
        _processor(db_url, tiny_model, device_rate_factor=0.5)
    with pytest.raises(ValueError, match="device_initial_burst_s"):
        _processor(db_url, tiny_model, device_initial_burst_s=700.0)


def test_a_fast_simulation_turns_the_budget_off_and_real_time_keeps_it(tmp_path, tiny_model):
    """Simulated devices replayed as fast as possible run ahead of real time by design; a real
    time system (``heartline serve``) keeps the settings' budget."""
    from heartline.ingestion.live import LiveSystem
    from heartline.settings import load_settings

    settings = load_settings(state_dir=tmp_path / "state")
    fast = LiveSystem(settings, model=tiny_model, patients=0, realtime=False)
    assert fast._processor_options()["device_rate_factor"] is None
    live = LiveSystem(settings, model=tiny_model, patients=0)
    assert live._processor_options()["device_rate_factor"] == settings.device_rate_factor == 4.0


def test_the_rhythm_cadence_of_the_settings_reaches_every_processor(
    tmp_path, tiny_model, tiny_model_path
):
    """``heartline serve --rhythm-interval-s`` sets the settings field; in-process processors and
    the supervised worker processes (``--options``) get it from the same options."""
    from heartline.ingestion.live import LiveSystem
    from heartline.settings import load_settings

    settings = load_settings(state_dir=tmp_path / "state", rhythm_interval_s=15)
    live = LiveSystem(settings, model=tiny_model_path, patients=0, processes=True)
    assert live._processor_options()["rhythm_interval_s"] == 15.0
    default = LiveSystem(load_settings(state_dir=tmp_path / "s2"), model=tiny_model, patients=0)
    assert default._processor_options()["rhythm_interval_s"] == 5.0
