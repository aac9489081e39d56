"""Load shared by the stream benchmarks: pre-built frames, a paced MQTT load generator, and
registering/counting the simulated devices in the database.

Used by :mod:`heartline.bench.stream` (capacity, resilience, agreement),
:mod:`heartline.bench.stream_profile` and :mod:`heartline.bench.faults`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "P99_LIMIT_S",
    "WARMUP_S",
    "FramePool",
    "GenResult",
    "capacity_search",
    "count_frames",
    "generate",
    "record_of",
    "register_devices",
    "step_passed",
    "wait_stored",
]

#: A step passes when no frame is lost and the p99 latency is at most this (seconds).
P99_LIMIT_S = 1.0
#: Seconds of each step excluded from the latency statistics (never from loss counts).
WARMUP_S = 3.0


class FramePool:
    """Pre-built JSON fragments (ECG, vitals) of the first ``seconds`` of some records.

    Each record keeps the frame header its simulated wearable sends (``fs_hz``, ``duration_s``,
    ``lead_names``, ADC resolution, gains and baselines): a single-lead wearable such as
    ``"210:MLII@250"`` (one lead at 250 Hz) gets its own, not the two-lead 360 Hz one.

    ``payload_version`` picks the ECG encoding of the payloads (2: base64 int16, what the
    simulated fleet sends; 1: JSON integer lists, for servers that predate version 2).
    """

    def __init__(
        self,
        records: tuple[str, ...],
        seconds: int,
        data_dir: Path | None,
        *,
        payload_version: int = 2,
    ) -> None:
        from itertools import islice

        from heartline.devices.simulator import VirtualWearable, WearableConfig

        self.records = records
        self.payload_version = payload_version
        self.frames: list[list[tuple[str, list[dict[str, Any]]]]] = []
        #: per record, the header fields of its frames as a JSON fragment
        self.headers: list[str] = []
        for r in records:
            w = VirtualWearable(
                WearableConfig(
                    device_id="pool",
                    record=r,
                    start_offset_s=0.0,
                    seed=0,
                    payload_version=payload_version,
                ),
                start_time_s=1.7e9,
                data_dir=data_dir,
            )
            per = []
            header = ""
            for sf in islice(w.frames(), seconds):
                f = sf.frame
                header = (
                    header
                    or json.dumps(
                        {
                            "fs_hz": f.fs_hz,
                            "duration_s": f.duration_s,
                            "lead_names": list(f.lead_names),
                            "adc_bits": f.adc_bits,
                            "adc_gain": list(f.adc_gain),
                            "adc_baseline": list(f.adc_baseline),
                        },
                        separators=(",", ":"),
                    )[1:-1]
                )
                vit = [{k: v for k, v in x.model_dump().items() if v is not None} for x in f.vitals]
                for v in vit:
                    v["time_s"] = v["time_s"] - f.start_time_s
                per.append((json.dumps(f.ecg, separators=(",", ":")), vit))
            self.frames.append(per)
            self.headers.append(header)
        self.seconds = seconds

    def payload(
        self, record_idx: int, k: int, device_id: str, seq: int, start_time_s: float
    ) -> bytes:
        ecg, vit = self.frames[record_idx][k % self.seconds]
        vitals = [{**v, "time_s": round(start_time_s + v["time_s"], 3)} for v in vit]
        return (
            f'{{"v":{self.payload_version},"device_id":"{device_id}","seq":{seq},'
            f'"start_time_s":{start_time_s:.3f},'
            f'{self.headers[record_idx]},"ecg":{ecg},'
            f'"vitals":{json.dumps(vitals, separators=(",", ":"))}}}'
        ).encode()


def record_of(device_id: str, n_records: int) -> int:
    """Record replayed by a simulated device: a hash of its id unrelated to the topic partition
    (``crc32 % partitions``); with ``i % n_records`` the records were unevenly spread over the
    workers (sequential ids: crc32 is linear), loading one worker more than the other."""
    return int.from_bytes(hashlib.blake2b(device_id.encode(), digest_size=4).digest()) % n_records


@dataclass
class GenResult:
    sent: int
    acked: int
    lag_p99_s: float
    lag_max_s: float


def generate(
    address: Any,
    pool: FramePool,
    device_ids: list[str],
    *,
    duration_s: int,
    n_partitions: int,
    rate: float = 1.0,
    offsets: list[int] | None = None,
    record_idx: list[int] | None = None,
    clients: int = 4,
) -> GenResult:
    """Publish ``duration_s`` frames per device, device ``i`` phase-shifted by ``i/N`` s (QoS 1)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from heartline.ingestion.topics import frames_topic

    n = len(device_ids)
    cl = []
    acked = [0]
    lock = threading.Lock()

    def on_publish(*_a: Any) -> None:
        with lock:
            acked[0] += 1

    for c in range(min(clients, n)):
        m = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-gen-{uuid.uuid4().hex[:8]}-{c}"
        )
        m.max_inflight_messages_set(65535)
        m.max_queued_messages_set(0)
        m.on_publish = on_publish
        m.connect(address.host, address.port, keepalive=30)
        m.loop_start()
        cl.append(m)
    topics = [frames_topic(d, partitions=n_partitions) for d in device_ids]
    records = record_idx or [record_of(d, len(pool.records)) for d in device_ids]
    offsets = offsets if offsets is not None else [(7 * i) % pool.seconds for i in range(n)]
    period = 1.0 / rate
    t0_mono = time.monotonic() + 0.5
    t0_wall = time.time() + 0.5
    events = sorted(
        ((k + 1) * period + i * period / n, i, k) for k in range(duration_s) for i in range(n)
    )
    lags = []
    sent = 0
    j = 0
    while j < len(events):
        now = time.monotonic() - t0_mono
        due = events[j][0]
        if due > now:
            time.sleep(min(0.01, due - now))
            continue
        while j < len(events) and events[j][0] <= now:
            t_due, i, k = events[j]
            # the frame's first sample on the device clock: synchronised with ours in real time;
            # faster than real time the device clock still advances 1 s per frame
            start_time = t0_wall + (t_due - period if rate == 1.0 else k + i / n)
            p = pool.payload(records[i], offsets[i] + k, device_ids[i], k, start_time)
            cl[i % len(cl)].publish(topics[i], p, qos=1)
            lags.append(now - t_due)
            sent += 1
            j += 1
    deadline = time.monotonic() + 30
    while acked[0] < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    for m in cl:
        m.disconnect()
        m.loop_stop()
    lag = np.asarray(lags) if lags else np.zeros(1)
    return GenResult(sent, acked[0], float(np.percentile(lag, 99)), float(lag.max()))


def register_devices(db_url: str, device_ids: list[str]) -> None:
    from heartline.storage import make_engine, make_session_factory, session_scope
    from heartline.storage.repository import register_device, register_patient

    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        for d in device_ids:
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    engine.dispose()


def count_frames(db_url: str, prefix: str) -> tuple[int, int]:
    """(rows, distinct (device, seq)) of devices named ``prefix-*``."""
    from sqlalchemy import text

    from heartline.storage import make_engine

    engine = make_engine(db_url)
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT COUNT(*) FROM frames WHERE device_id LIKE :p"), {"p": f"{prefix}-%"}
        ).scalar()
        distinct = c.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, seq FROM frames WHERE device_id LIKE :p) t"
            ),
            {"p": f"{prefix}-%"},
        ).scalar()
    engine.dispose()
    return int(rows or 0), int(distinct or 0)


# ------------------------------------------------------------------------------ step accounting
# shared by the in-process capacity search (heartline.bench.stream) and the one against a
# running `heartline serve` (heartline.bench.stream_serve)
def wait_stored(
    stored: Callable[[], Any], sent: int, drain_s: float, *, count: Callable[[Any], int] = int
) -> Any:
    """Poll ``stored()`` every 0.5 s until ``count`` of it reaches ``sent`` or ``drain_s`` ends;
    returns the last reading."""
    deadline = time.monotonic() + drain_s
    got = stored()
    while count(got) < sent and time.monotonic() < deadline:
        time.sleep(0.5)
        got = stored()
    return got


def step_passed(frames_lost: int, p99_latency_s: float, limit_s: float = P99_LIMIT_S) -> bool:
    """A load step passes: no frame lost and a p99 latency (not NaN) within ``limit_s``."""
    return bool(frames_lost == 0 and p99_latency_s == p99_latency_s and p99_latency_s <= limit_s)


def capacity_search(
    step: Callable[[int], dict[str, Any]],
    *,
    start: int,
    target: int,
    max_steps: int,
    settle_s: float = 2.0,
) -> dict[str, Any]:
    """Patients held: double from ``start`` until a step fails or ``target`` passes, then bisect.

    ``step(n)`` runs ``n`` patients and returns its figures with ``passed``, ``p99_latency_s``
    and ``frames_lost``. Stops after ``max_steps`` steps or when the bracket is within 10 % (at
    least 10 patients); ``settle_s`` is slept between steps. Returns ``patients`` (the most that
    passed), its ``p99_latency_s`` and ``frames_lost``, ``target_patients``, ``target_met`` and
    the ``steps``.
    """
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    lo, hi = 0, None
    n = start
    while len(steps) < max_steps:
        r = step(n)
        steps.append(r)
        if r["passed"]:
            lo, best = n, r
        else:
            hi = n
        if hi is None:
            if n >= target:
                break
            n = min(target, n * 2)
        else:
            if hi - lo <= max(10, lo // 10):
                break
            n = (lo + hi) // 2
        time.sleep(settle_s)
    return {
        "patients": lo,
        "p99_latency_s": best["p99_latency_s"] if best else None,
        "frames_lost": best["frames_lost"] if best else None,
        "target_patients": target,
        "target_met": lo >= target,
        "steps": steps,
    }
