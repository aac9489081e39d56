"""``heartline bench faults``: honest patients keep being monitored while one device attacks.

A live system as ``heartline serve`` runs it (own Mosquitto in development mode, so the
broker's ACL does not stop the attacks that production would refuse at the broker; SQLite;
stream processors as supervised ``heartline worker`` processes), ``honest`` simulated wearables
with the real device code (store-and-forward queues, storage acknowledgements) replaying MIT-BIH
records in real time, one device that goes silent (``silent_after_s``) and one hostile device
that, one attack after the other:

``wrong_leads``
    one-lead frames, to its own partition and aimed at every other partition;
``nan``
    ``NaN``/``Infinity`` in the ECG and vitals;
``oversized``
    a 1 MiB payload (over the processor's limit) and a 3 MiB one (over the broker's);
``wrong_partition``
    well-formed frames published to another partition's topic;
``huge_acks``
    ``{"ranges": [[0, 999999999]]}`` and thousands of ranges published to every honest
    device's acknowledgement topic;
``future_dated``
    frames dated 2099 and 1970;
``flood``
    well-formed frames of its own as fast as one MQTT client publishes them.

Measured, into ``OUT/faults.json`` and ``OUT/faults.md``: honest frames sent (enqueued on the
devices) and stored, per-device latency (end of the frame on the device clock -> its row
written, ``frames.received_at``, in the transaction that stores it), the ``no_data`` alert of
the silent device and how long after its last frame it was opened, every alert raised, the
quarantine counts by reason, and the resident memory (RSS) of every process sampled every
0.25 s (peaks before and during the attacks).

Pass: no honest frame lost, p99 <= 1 s for every honest device, the ``no_data`` alert opened at
most ``no_data_alert_s`` + 2 s (the processors check once a second at most) after the silent
device's last frame, and every process's RSS peak under its role's cap
(:data:`MEMORY_CAP_BYTES`: 1 GiB for a worker or the bench process, 256 MiB for the broker).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from heartline.revision import git_head

__all__ = ["ATTACKS", "faults_markdown", "run_faults_bench"]

log = logging.getLogger(__name__)

#: The hostile device's attacks, in the order they run.
ATTACKS: tuple[str, ...] = (
    "wrong_leads",
    "nan",
    "oversized",
    "wrong_partition",
    "huge_acks",
    "future_dated",
    "flood",
)
P99_LIMIT_S = 1.0
NO_DATA_SLACK_S = 2.0
#: Resident memory any one process of a role may reach (the ack finding grew serve to 22.7 GB).
MEMORY_CAP_BYTES: dict[str, int] = {
    "bench (honest devices)": 1024 * 2**20,
    "workers": 1024 * 2**20,
    "broker": 256 * 2**20,
}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` from ``/proc`` (``None`` where unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _MemorySampler:
    """RSS of named processes every ``interval_s`` (peaks per phase), and their CPU time per
    phase (user + system seconds, from ``/proc``; a restarted process counts from its start)."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]], interval_s: float = 0.25) -> None:
        from heartline.ingestion.worker import read_rss_bytes

        self._rss = read_rss_bytes
        self.pids = pids
        self.interval_s = interval_s
        self.phase = "before"
        #: phase the CPU time is charged to (finer than ``phase``: one per attack)
        self.cpu_phase = "before"
        self.peaks: dict[str, dict[str, int]] = {}
        self.samples = 0
        #: role -> phase -> pid -> (first, last) CPU seconds seen in that phase
        self._cpu: dict[str, dict[str, dict[int, tuple[float, float]]]] = {}
        self.phase_wall_s: dict[str, float] = {}
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, name="faults-memory", daemon=True)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval_s):
            phase, cpu_phase = self.phase, self.cpu_phase
            now = time.monotonic()
            self.phase_wall_s[cpu_phase] = self.phase_wall_s.get(cpu_phase, 0.0) + (now - last)
            last = now
            for role, pids in self.pids().items():
                rss = max((self._rss(p) for p in pids), default=0)  # its largest process
                ph = self.peaks.setdefault(role, {})
                ph[phase] = max(ph.get(phase, 0), rss)
                cpu = self._cpu.setdefault(role, {}).setdefault(cpu_phase, {})
                for p in pids:
                    t = _cpu_seconds(p)
                    if t is not None:
                        cpu[p] = (cpu.get(p, (t, t))[0], t)
            self.samples += 1

    def cpu_by_phase(self) -> dict[str, dict[str, float]]:
        """role -> phase -> CPU seconds used (all the role's processes) while sampled."""
        return {
            role: {ph: round(sum(b - a for a, b in d.values()), 2) for ph, d in phases.items()}
            for role, phases in self._cpu.items()
        }

    def __enter__(self) -> _MemorySampler:
        self._th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._th.join(5)


def _frame(
    device_id: str,
    seq: int,
    start_time_s: float,
    *,
    leads: int = 2,
    ecg: Any = None,
    vitals: list[dict[str, Any]] | None = None,
) -> bytes:
    """A version 1 frame (JSON integer ECG) built by hand, so that it can be made wrong."""
    if ecg is None:
        t = np.arange(360) / 360.0
        lead = (1024 + 150 * np.sin(2 * np.pi * 1.2 * t)).astype(int).tolist()
        ecg = [lead] * leads
    names = ["MLII", "V5", "V1", "V2"][:leads]
    return json.dumps(
        {
            "v": 1,
            "device_id": device_id,
            "seq": seq,
            "start_time_s": start_time_s,
            "fs_hz": 360.0,
            "duration_s": 1.0,
            "lead_names": names,
            "adc_bits": 11,
            "adc_gain": [200.0] * leads,
            "adc_baseline": [1024] * leads,
            "ecg": ecg,
            "vitals": vitals or [],
        },
        allow_nan=True,
    ).encode()


class _Hostile:
    """The hostile device's MQTT client and its attacks."""

    def __init__(self, address: Any, device_id: str, honest: list[str], n_partitions: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.device_id = device_id
        self.honest = honest
        self.n_partitions = n_partitions
        self.seq = 0
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{device_id}-{uuid.uuid4().hex[:6]}"
        )
        self.c.max_inflight_messages_set(1000)
        self.c.connect(address.host, address.port, keepalive=30)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def _own(self) -> str:
        from heartline.ingestion.topics import frames_topic

        return frames_topic(self.device_id, partitions=self.n_partitions)

    def _topic(self, partition: int) -> str:
        from heartline.ingestion.topics import TOPIC_PREFIX

        return f"{TOPIC_PREFIX}/{partition}/{self.device_id}/frames"

    def _pub(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def run(self, name: str) -> dict[str, Any]:
        t0 = time.time()
        n = getattr(self, f"attack_{name}")()
        return {"messages": n, "start_s": t0, "duration_s": time.time() - t0}

    def attack_wrong_leads(self) -> int:
        n = 0
        for _k in range(30):
            for part in range(self.n_partitions):
                self._pub(
                    self._topic(part),
                    _frame(self.device_id, self._next(), time.time() - 1, leads=1),
                )
                n += 1
        return n

    def attack_nan(self) -> int:
        n = 0
        for _ in range(30):
            ecg = [[float("nan")] * 360, [float("inf")] * 360]
            self._pub(self._own(), _frame(self.device_id, self._next(), time.time() - 1, ecg=ecg))
            vit = [{"time_s": time.time(), "spo2_pct": float("nan"), "pulse_bpm": float("inf")}]
            self._pub(
                self._own(), _frame(self.device_id, self._next(), time.time() - 1, vitals=vit)
            )
            n += 2
        return n

    def attack_oversized(self) -> int:
        for size in (1 * 2**20, 3 * 2**20):
            self.c.publish(self._own(), b"{" + b" " * size + b"}", qos=1).wait_for_publish(20)
        return 2

    def attack_wrong_partition(self) -> int:
        from heartline.ingestion.topics import partition_for

        own = partition_for(self.device_id, partitions=self.n_partitions)
        n = 0
        for _ in range(20):
            for part in range(self.n_partitions):
                if part != own:
                    self._pub(
                        self._topic(part), _frame(self.device_id, self._next(), time.time() - 1)
                    )
                    n += 1
        return n

    def attack_huge_acks(self) -> int:
        from heartline.ingestion.acks import MAX_ACK_RANGES, acks_topic

        n = 0
        for d in self.honest:
            payloads = [
                {"v": 1, "device_id": d, "ranges": [[0, 999_999_999]]},  # 49 bytes, 1e9 seqs
                {"v": 1, "device_id": d, "ranges": [[0, 2**62]]},
                # just under and over the range limit
                {
                    "v": 1,
                    "device_id": d,
                    "ranges": [[10**9 + 2 * k, 10**9 + 2 * k + 1] for k in range(MAX_ACK_RANGES)],
                },
                {
                    "v": 1,
                    "device_id": d,
                    "ranges": [[2 * k, 2 * k + 1] for k in range(2 * MAX_ACK_RANGES)],
                },
            ]
            for p in payloads:
                self._pub(acks_topic(d), json.dumps(p).encode())
                n += 1
        return n

    def attack_future_dated(self) -> int:
        n = 0
        for when in (4_070_908_800.0, 0.0):  # 2099-01-01, 1970-01-01
            for _ in range(10):
                self._pub(self._own(), _frame(self.device_id, self._next(), when))
                n += 1
        return n

    def attack_flood(self, seconds: float = 5.0) -> int:
        n = 0
        t_end = time.monotonic() + seconds
        infos = []
        while time.monotonic() < t_end:
            infos.append(
                self.c.publish(
                    self._own(), _frame(self.device_id, self._next(), time.time() - 1), qos=1
                )
            )
            n += 1
            if len(infos) >= 500:
                for i in infos:
                    i.wait_for_publish(10)
                infos.clear()
        for i in infos:
            i.wait_for_publish(10)
        return n


def _as_utc(t: datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def run_faults_bench(
    out: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    quick: bool = False,
    honest: int | None = None,
    workers: int = 2,
    n_partitions: int = 4,
    no_data_alert_s: float | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the fault-injection benchmark into ``out``; returns the JSON dict (see the module docstring).

    Parameters
    ----------
    out : path-like
        Run directory (created): ``faults.json``, ``faults.md``, the database and broker.
    model : path-like
        ONNX beat classifier.
    quick : bool
        4 honest devices and a 10 s no-data limit (about a minute); otherwise 20 and 30 s.
    honest : int, optional
        Honest devices (overrides ``quick``'s).
    workers, n_partitions : int
        Stream-processor processes and topic partitions.
    no_data_alert_s : float, optional
        The processors' no-data limit (overrides ``quick``'s).
    data_dir : path-like, optional
        PhysioNet data directory.
    """
    from sqlalchemy import select

    from heartline.ingestion.live import LiveSystem
    from heartline.settings import load_settings
    from heartline.storage import make_engine
    from heartline.storage.tables import Alert, FrameRecord, QuarantinedPayload

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_p = Path(model)
    if not model_p.is_file():
        raise FileNotFoundError(f"model: no ONNX model at {model_p}")
    report = report or (lambda msg: log.info(msg))
    n_honest = honest if honest is not None else (4 if quick else 20)
    if n_honest < 1:
        raise ValueError(f"honest must be >= 1, got {n_honest}")
    limit_s = float(no_data_alert_s if no_data_alert_s is not None else (10.0 if quick else 30.0))
    silent_after_s = 6.0
    warmup_s = 6.0
    tail_s = limit_s + NO_DATA_SLACK_S + 4.0
    t_begin = time.time()
    state = out_dir / f"run-{uuid.uuid4().hex[:6]}"
    settings = load_settings(state_dir=state, mqtt_partitions=n_partitions, no_data_alert_s=limit_s)
    hostile_id = "hostile"
    silent_id = "silent-0001"
    result: dict[str, Any] = {
        "config": {
            "quick": quick,
            "honest_devices": n_honest,
            "workers": workers,
            "partitions": n_partitions,
            "no_data_alert_s": limit_s,
            "silent_after_s": silent_after_s,
            "broker": "own Mosquitto, development mode (no ACL)",
            "database": "SQLite",
            "processors": "supervised `heartline worker` processes",
            "p99_limit_s": P99_LIMIT_S,
            "latency": "end of frame on the device clock -> frames.received_at (row written)",
            "git_revision": git_head(short=True),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
        }
    }
    # the honest fleet runs long enough to cover warm-up, attacks and the silent device's alert
    honest_s = int(warmup_s + 40 + tail_s)
    live = LiveSystem(
        settings,
        model=model_p,
        workers=workers,
        patients=n_honest,
        realtime=True,
        duration_s=honest_s,
        data_dir=data_dir,
        device_prefix="honest",
        processes=True,
    )
    attacks: dict[str, Any] = {}
    with live:
        assert live.address is not None and live.supervisor is not None
        sup, broker = live.supervisor, live.broker
        honest_ids = [p.device_id for p in live.publishers]

        def pids() -> dict[str, list[int]]:
            out = {"bench (honest devices)": [os.getpid()], "workers": sup.pids()}
            if broker is not None and broker.pid is not None:
                out["broker"] = [broker.pid]
            return out

        with _MemorySampler(pids) as mem:
            silent = _Hostile(
                live.address, silent_id, [], n_partitions
            )  # well-behaved, then silent
            silent_sent = 0
            t_start = time.time()
            report(f"faults: {n_honest} honest devices, warm-up {warmup_s:.0f} s")
            while time.time() - t_start < max(warmup_s, silent_after_s):
                from heartline.ingestion.topics import frames_topic

                silent._pub(
                    frames_topic(silent_id, partitions=n_partitions),
                    _frame(silent_id, silent_sent, time.time() - 1),
                )
                silent_sent += 1
                time.sleep(1.0)
            silent_last_s = time.time()
            silent.close()
            report(f"faults: {silent_id} silent from now; attacks start")
            mem.phase = "attack"
            # one hostile actor; each attack under its own device id, so that the block earned
            # by one attack does not hide the next one from the processors
            for k, name in enumerate(ATTACKS):
                evil = _Hostile(live.address, f"{hostile_id}-{k}", honest_ids, n_partitions)
                try:
                    report(f"faults: attack {name}")
                    mem.cpu_phase = name
                    attacks[name] = {"device": evil.device_id, **evil.run(name)}
                finally:
                    evil.close()
                time.sleep(1.0)
            mem.cpu_phase = "after_attacks"
            # wait for the silent device's alert (or its deadline), then for the honest fleet
            deadline = silent_last_s + limit_s + NO_DATA_SLACK_S + 5
            while time.time() < deadline:
                time.sleep(0.5)
            report("faults: waiting for the honest fleet to finish and drain")
            live.sim_done.wait(honest_s + 60)
            drained = live.wait_drained(120)
        sent = {p.device_id: p.queue.counters().enqueued_total for p in live.publishers}
        left = {p.device_id: len(p.queue) for p in live.publishers}
        restarts = sup.restarts
        counters = live.counters()
    quarantined: dict[str, int] = {}
    for c in counters:
        for k, v in c.quarantined.items():
            quarantined[k] = quarantined.get(k, 0) + v
    engine = make_engine(settings.resolved_database_url())
    with engine.connect() as c:
        frames = c.execute(
            select(
                FrameRecord.device_id,
                FrameRecord.seq,
                FrameRecord.device_time,
                FrameRecord.received_at,
            )
        ).all()
        alerts = c.execute(
            select(
                Alert.patient_id,
                Alert.device_id,
                Alert.type,
                Alert.severity,
                Alert.created_at,
                Alert.start_time,
            )
        ).all()
        q_rows = c.execute(select(QuarantinedPayload.device_id, QuarantinedPayload.reason)).all()
    engine.dispose()
    per_device: dict[str, Any] = {}
    lat_all: list[float] = []
    for d in honest_ids:
        rows = [r for r in frames if r.device_id == d]
        lat = np.asarray([_as_utc(r.received_at) - (_as_utc(r.device_time) + 1.0) for r in rows])
        seqs = {r.seq for r in rows}
        lat_all.extend(lat.tolist())
        per_device[d] = {
            "frames_sent": int(sent[d]),
            "frames_stored": len(seqs),
            "frames_lost": int(sent[d] - len(seqs)),
            "left_on_device": int(left[d]),
            "p50_latency_s": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p99_latency_s": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "max_latency_s": float(lat.max()) if lat.size else float("nan"),
        }
    # honest latency by phase: frames that ended before the attacks, during each (+2 s), after
    ends_lat = [
        (_as_utc(r.device_time) + 1.0, _as_utc(r.received_at) - _as_utc(r.device_time) - 1.0)
        for r in frames
        if r.device_id in per_device
    ]
    windows = {"before_attacks": (0.0, silent_last_s)}
    for name, a in attacks.items():
        windows[name] = (a["start_s"], a["start_s"] + a["duration_s"] + 2.0)
    windows["after_attacks"] = (max(w[1] for w in windows.values()), float("inf"))
    by_phase = {}
    for name, (t0, t1) in windows.items():
        lat_w = np.asarray([lt for e, lt in ends_lat if t0 <= e < t1])
        by_phase[name] = {
            "frames": int(lat_w.size),
            "p99_latency_s": float(np.percentile(lat_w, 99)) if lat_w.size else float("nan"),
            "max_latency_s": float(lat_w.max()) if lat_w.size else float("nan"),
        }
    silent_rows = [r for r in frames if r.device_id == silent_id]
    last_frame_s = max((_as_utc(r.received_at) for r in silent_rows), default=silent_last_s)
    nd = [
        a
        for a in alerts
        if a.type == "no_data" and (a.device_id == silent_id or silent_id in a.patient_id)
    ]
    nd_delay = (min(_as_utc(a.created_at) for a in nd) - last_frame_s) if nd else None
    hostile_stored = sum(1 for r in frames if (r.device_id or "").startswith(hostile_id))
    for a in attacks.values():
        a["frames_stored"] = sum(1 for r in frames if r.device_id == a["device"])
        reasons: dict[str, int] = {}
        for qr in q_rows:
            if qr.device_id == a["device"]:
                reasons[qr.reason] = reasons.get(qr.reason, 0) + 1
        a["quarantined_rows_by_reason"] = reasons
    honest_sent = sum(v["frames_sent"] for v in per_device.values())
    honest_stored = sum(v["frames_stored"] for v in per_device.values())
    p99 = float(np.percentile(lat_all, 99)) if lat_all else float("nan")
    worst_p99 = max((v["p99_latency_s"] for v in per_device.values()), default=float("nan"))
    memory = {
        role: {
            "peak_before_attacks_bytes": ph.get("before", 0),
            "peak_during_attacks_bytes": ph.get("attack", 0),
            "cap_bytes": MEMORY_CAP_BYTES[role],
            "bounded": max(ph.values(), default=0) <= MEMORY_CAP_BYTES[role],
        }
        for role, ph in mem.peaks.items()
    }
    alert_counts: dict[str, int] = {}
    for a in alerts:
        alert_counts[a.type] = alert_counts.get(a.type, 0) + 1
    q_db: dict[str, int] = {}
    for qr in q_rows:
        q_db[qr.reason] = q_db.get(qr.reason, 0) + 1
    result.update(
        {
            "honest_frames_sent": int(honest_sent),
            "honest_frames_stored": int(honest_stored),
            "honest_frames_lost": int(honest_sent - honest_stored),
            "honest_p99_latency_s": p99,
            "honest_worst_device_p99_latency_s": worst_p99,
            "drained": bool(drained),
            "no_data_alert_fired": bool(nd),
            "no_data_alert_delay_s": nd_delay,
            "silent_device": {
                "device": silent_id,
                "frames_sent": silent_sent,
                "frames_stored": len({r.seq for r in silent_rows}),
            },
            "hostile_device": {
                "devices": f"{hostile_id}-0..{len(ATTACKS) - 1}",
                "frames_stored": hostile_stored,
            },
            "attacks": attacks,
            "quarantined_by_reason": {"processor_counters": quarantined, "database_rows": q_db},
            "alerts": {
                "by_type": alert_counts,
                "rows": [
                    {
                        "patient_id": a.patient_id,
                        "device_id": a.device_id,
                        "type": a.type,
                        "severity": a.severity,
                        "created_at": str(a.created_at),
                    }
                    for a in alerts
                    if a.type in {"no_data", "device_flagged", "device_misbehaving"}
                    or (a.device_id or "").startswith(("hostile", "silent"))
                ],
            },
            "per_device": per_device,
            "honest_latency_by_phase": by_phase,
            "memory": memory,
            "memory_samples": mem.samples,
            "cpu_s_by_phase": mem.cpu_by_phase(),
            # receipt by a processor -> committed: what the processors add to the latency
            "processor_latency": [
                {
                    "p50_s": c.latency_p50_s,
                    "p99_s": c.latency_p99_s,
                    "max_s": c.latency_max_s,
                    "frames_stored": c.frames_stored,
                }
                for c in counters
            ],
            "phase_wall_s": {k: round(v, 1) for k, v in mem.phase_wall_s.items()},
            "worker_restarts": restarts,
        }
    )
    result["passed"] = {
        "no_honest_frame_lost": honest_sent == honest_stored and honest_sent > 0,
        "every_honest_p99_within_limit": bool(worst_p99 == worst_p99 and worst_p99 <= P99_LIMIT_S),
        "no_data_alert_in_time": nd_delay is not None and nd_delay <= limit_s + NO_DATA_SLACK_S,
        "memory_bounded": all(m["bounded"] for m in memory.values()),
    }
    result["passed"]["all"] = all(result["passed"].values())
    result["elapsed_s"] = time.time() - t_begin
    result["config"]["load_average_at_end"] = list(os.getloadavg())
    for a in attacks.values():
        a["start_s"] = round(a["start_s"] - t_begin, 2)
    (out_dir / "faults.json").write_text(json.dumps(result, indent=2, default=float))
    (out_dir / "faults.md").write_text(faults_markdown(result))
    return result


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def faults_markdown(r: dict[str, Any]) -> str:
    """The Markdown report of a :func:`run_faults_bench` result."""
    cfg = r["config"]
    ok = r["passed"]
    mib = 2**20
    lines = [
        "# Fault-injection benchmark",
        "",
        f"git `{cfg['git_revision'] or '?'}`; {cfg['honest_devices']} honest devices (real device code, "
        f"real time), one silent after {cfg['silent_after_s']:.0f} s, one hostile; {cfg['workers']} "
        f"worker processes, {cfg['partitions']} partitions; {cfg['broker']}; {cfg['database']}; "
        f"no-data limit {cfg['no_data_alert_s']:.0f} s; {cfg['cpu_count']} CPU cores, load average "
        f"{'/'.join(f'{x:.1f}' for x in cfg['load_average_at_start'])} at start (shared machine).",
        "",
        "| target | result | pass |",
        "|---|---|---|",
        f"| 0 honest frames lost | {r['honest_frames_sent']} sent, {r['honest_frames_stored']} stored | {'yes' if ok['no_honest_frame_lost'] else 'NO'} |",
        f"| p99 <= {cfg['p99_limit_s']} s for every honest device | worst device p99 {_f(r['honest_worst_device_p99_latency_s'])} s (all frames {_f(r['honest_p99_latency_s'])} s) | {'yes' if ok['every_honest_p99_within_limit'] else 'NO'} |",
        f"| no-data alert within {cfg['no_data_alert_s']:.0f} s (+{NO_DATA_SLACK_S:.0f} s check cadence) | fired: {r['no_data_alert_fired']}, {_f(r['no_data_alert_delay_s'], 1)} s after the last frame | {'yes' if ok['no_data_alert_in_time'] else 'NO'} |",
        f"| memory bounded (every process under its role's cap, below) | see below | {'yes' if ok['memory_bounded'] else 'NO'} |",
        "",
        "## Attacks",
        "",
        "| attack | device | messages | seconds | frames stored | quarantined rows by reason |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, a in r["attacks"].items():
        qr = ", ".join(f"{k} {v}" for k, v in sorted(a["quarantined_rows_by_reason"].items()))
        lines.append(
            f"| {name} | {a['device']} | {a['messages']} | {a['duration_s']:.1f} | "
            f"{a['frames_stored']} | {qr or '-'} |"
        )
    q = r["quarantined_by_reason"]["processor_counters"]
    lines += [
        "",
        f"Hostile frames stored: {r['hostile_device']['frames_stored']} (well-formed frames on its "
        f"own topic are its own data, stored under its own patient; a device blocked for repeated "
        f"bad frames has the rest dropped unparsed as rate_limited). Quarantined by reason "
        f"(processor counters): {', '.join(f'{k} {v}' for k, v in sorted(q.items())) or 'none'}. "
        f"Alerts by type: {', '.join(f'{k} {v}' for k, v in sorted(r['alerts']['by_type'].items())) or 'none'}. "
        f"Worker restarts: {r['worker_restarts']}.",
        "",
        "Honest latency by phase (frames that ended before the attacks, within each attack or "
        "2 s after it, after them):",
        "",
        "| phase | honest frames | p99 (s) | max (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, v in r["honest_latency_by_phase"].items():
        lines.append(
            f"| {name} | {v['frames']} | {_f(v['p99_latency_s'])} | {_f(v['max_latency_s'])} |"
        )
    lines += [
        "",
        "## Memory (RSS, sampled every 0.25 s)",
        "",
        "| process (largest of its role) | peak before attacks (MiB) | peak during attacks (MiB) | cap (MiB) | bounded |",
        "|---|---:|---:|---:|---|",
    ]
    for role, m in r["memory"].items():
        lines.append(
            f"| {role} | {m['peak_before_attacks_bytes'] / mib:.0f} | {m['peak_during_attacks_bytes'] / mib:.0f} | {m['cap_bytes'] / mib:.0f} | {'yes' if m['bounded'] else 'NO'} |"
        )
    cpu = r.get("cpu_s_by_phase") or {}
    if cpu:
        walls = r.get("phase_wall_s", {})
        roles = list(cpu)
        lines += [
            "",
            "## CPU time by phase (user + system seconds from /proc: not inflated by other load)",
            "",
            "| phase | wall (s) | " + " | ".join(f"{role} CPU (s)" for role in roles) + " |",
            "|---|---:|" + "---:|" * len(roles),
        ]
        for ph, wall in walls.items():
            cells = " | ".join(f"{cpu[role].get(ph, 0.0):.2f}" for role in roles)
            lines.append(f"| {ph} | {wall:.1f} | {cells} |")
    plat = r.get("processor_latency") or []
    if plat:
        lines += [
            "",
            "Receipt by a worker -> commit (what the workers add), per worker: "
            + "; ".join(
                f"p50 {_f(x['p50_s'])} s, p99 {_f(x['p99_s'])} s, max {_f(x['max_s'])} s"
                for x in plat
            )
            + ".",
        ]
    lines += [
        "",
        "## Honest devices",
        "",
        "| device | sent | stored | lost | p50 (s) | p99 (s) | max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d, v in r["per_device"].items():
        lines.append(
            f"| {d} | {v['frames_sent']} | {v['frames_stored']} | {v['frames_lost']} | {_f(v['p50_latency_s'])} | {_f(v['p99_latency_s'])} | {_f(v['max_latency_s'])} |"
        )
    lines += ["", f"Total run time {r['elapsed_s']:.0f} s.", ""]
    return "\n".join(lines)
