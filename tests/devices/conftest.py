"""Live fixtures: a migrated SQLite store and a small subscriber that stores frames via the repository."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import copy_sqlite

from heartline.ingestion.broker import BrokerAddress, MosquittoSupervisor, wait_for_port
from heartline.ingestion.payloads import Frame, FrameRejected, parse_frame
from heartline.ingestion.sequencing import SequenceTracker
from heartline.ingestion.topics import TOPIC_PREFIX
from heartline.storage import make_engine, make_session_factory, session_scope
from heartline.storage.repository import quarantine, register_device, register_patient, store_frame

SYSTEM_BROKER = BrokerAddress("127.0.0.1", 1883)


class StoringSubscriber:
    """Subscribes (persistent session, QoS 1) to some devices' frames and stores each one.

    paho acknowledges a QoS 1 message after ``on_message`` returns, i.e. after the commit: at
    least once into storage, exactly once thanks to UNIQUE(device_id, seq).
    """

    def __init__(self, address: BrokerAddress, db_url: str, device_ids: list[str]) -> None:
        self.address = address
        self.engine = make_engine(db_url)
        self.factory = make_session_factory(self.engine)
        self.tracker = SequenceTracker()
        self.arrivals: list[tuple[str, int]] = []
        self.stored = 0
        self.db_duplicates = 0
        self.rejected = 0
        self.connects = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sink-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(1, 2)
        self.topics = [f"{TOPIC_PREFIX}/+/{d}/frames" for d in device_ids]
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(address.host, address.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "test subscriber could not subscribe"

    def _on_connect(self, client, userdata, flags, rc, props):
        self.connects += 1
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        try:
            frame = parse_frame(msg.payload)
        except FrameRejected as exc:
            with session_scope(self.factory) as s:
                quarantine(s, payload=msg.payload, reason=exc.reason, topic=msg.topic)
            self.rejected += 1
            return
        with self._lock:
            self.arrivals.append((frame.device_id, frame.seq))
            self.tracker.observe(frame.device_id, frame.seq)
            with session_scope(self.factory) as s:
                if store_frame(s, frame=frame, payload_bytes=len(msg.payload)):
                    self.stored += 1
                else:
                    self.db_duplicates += 1

    def wait_stored(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stored >= n:
                return True
            time.sleep(0.02)
        return self.stored >= n

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.engine.dispose()
        # Drop the persistent session so that no queue is left behind on a shared broker.
        with contextlib.suppress(OSError):
            wipe = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client._client_id.decode(),
                clean_session=True,
            )
            wipe.connect(self.address.host, self.address.port, keepalive=5)
            wipe.loop_start()
            time.sleep(0.1)
            wipe.disconnect()
            wipe.loop_stop()


@pytest.fixture
def db_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """A migrated, empty SQLite database (a copy of the one migrated once per run)."""
    copy_sqlite(migrated_sqlite, tmp_path / "live.db")
    return f"sqlite:///{tmp_path / 'live.db'}"


def register(db_url: str, device_ids: list[str]) -> None:
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        for d in device_ids:
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()


@pytest.fixture
def subscriber_factory(db_url) -> Iterator:
    subs: list[StoringSubscriber] = []

    def make(address: BrokerAddress, device_ids: list[str]) -> StoringSubscriber:
        register(db_url, device_ids)
        sub = StoringSubscriber(address, db_url, device_ids)
        subs.append(sub)
        return sub

    yield make
    for s in subs:
        s.close()


@pytest.fixture
def system_broker() -> BrokerAddress:
    if not wait_for_port(SYSTEM_BROKER.host, SYSTEM_BROKER.port, timeout_s=2):
        pytest.fail(
            "the system Mosquitto at 127.0.0.1:1883 is not running: start it "
            "(`mosquitto -d` after `apt-get install mosquitto`); .ci/run does this on CI"
        )
    return SYSTEM_BROKER


@pytest.fixture
def child_broker(tmp_path: Path) -> Iterator[MosquittoSupervisor]:
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        yield broker


def make_frame(device_id: str, seq: int, *, fs: float = 360.0, n: int = 360) -> Frame:
    rng = np.random.default_rng(seq)
    return Frame.from_counts(
        rng.integers(900, 1200, size=(n, 2)),
        device_id=device_id,
        seq=seq,
        start_time_s=1_700_000_000.0 + seq * n / fs,
        fs_hz=fs,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
    )


def unique_device(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def frame_maker():
    return make_frame


@pytest.fixture
def device_name():
    return unique_device
