"""The stream processor: frames in over MQTT, frames/vitals/beats/alerts stored, storage acks out.

One :class:`StreamProcessor` owns some topic partitions (:mod:`heartline.ingestion.topics`);
every device hashes to exactly one partition, so each device's state (sequence tracking, beat
pipeline, alert engine) lives in exactly one worker. Several workers split the load by partition.

Per batch of received messages (at most ``batch_max`` or ``batch_wait_s`` old):

1. **Parse** (:func:`~heartline.ingestion.payloads.parse_frame`): a refused payload is
   quarantined verbatim with its reason (``oversized``, ``malformed_json``, ``schema``,
   ``non_finite``, ``lead_mismatch``, ``length_mismatch``, ``out_of_range``, ``bad_fs``, plus
   ``topic_mismatch`` when the payload's device is not the topic's and ``unknown_device``) and
   counted; the processor never stops on bad input.
2. **Unknown devices**: registered automatically (a patient ``p-<device_id>``) when
   ``unknown_devices="register"`` (the development default), quarantined otherwise.
3. **Sequencing** (:class:`~heartline.ingestion.sequencing.SequenceTracker`): duplicates are not
   stored again; new, gap and late frames are stored (``store_frame`` is idempotent anyway).
4. **Analysis**, per device in ``seq`` order: the frame's ECG goes through the device's
   :class:`~heartline.pipeline.BeatPipeline`; the beats of all devices of the batch are
   classified in one ONNX call; beats, signal-quality verdicts and vitals feed the patient's
   :class:`~heartline.alerts.engine.AlertEngine`.

   *Beat model per device*: each device's beat model is chosen from its frames' leads
   (:func:`~heartline.edge.model_select.select_beat_model`: the two-lead model for MLII + V1..V5,
   the single-lead model for one lead); the beats of a batch are classified in one ONNX call per
   model (:meth:`StreamProcessor._beat_model_for`).

   *Rhythm*: every ``rhythm_interval_s`` of a device's data, its last ``rhythm_window_s`` of
   ECG (one lead, the beat model's first; once its own R-peak detector and the beat
   pipeline's agree, with the pipeline's R peaks: the lead is not detected twice) is queued;
   the queued windows of all devices are
   classified by the rhythm model (N / A / O / ~) in one ONNX call per batch
   (:meth:`StreamProcessor._rhythm`). ``A`` raises the AF alarm, ``~`` marks the window noisy
   (no rhythm alarms from it; a signal-quality notice instead): see
   :meth:`~heartline.alerts.engine.AlertEngine.add_rhythm`.

   *Wearable start-up*: quality verdicts of the first ``quality_warmup_s`` of a segment (the
   filters' start-up transient) are not reported nor put into the rhythm windows, and the
   first ``startup_beats`` beats of a segment are never ``V`` for the alarm rules (stored as
   classified), nor are beats the beat artefact model calls motion artefacts
   (:data:`BEAT_ARTEFACT`): see :meth:`StreamProcessor._engine_label`. The engines count a ``V`` beat as
   ectopy only when it is premature (:data:`V_PREMATURITY`), and the rhythm model raises AF
   only from a full 30 s window (``EngineConfig.af_model_min_window_s``), confirmed by the
   window's RR intervals unless the model is sure (:data:`AF_MODEL_RR_CHECK`). The
   signal-quality notice needs 10 s of unusable signal or a full 30 s ``~`` window
   (:data:`QUALITY_SUSTAIN_WINDOW_S`, :data:`NOISY_NOTICE_MIN_WINDOW_S`), and low-priority
   episodes wait for the rhythm verdict on their beats (:data:`RHYTHM_CONFIRM_S`).

   *Gap handling*: a frame after a gap (lost frames) starts a new pipeline segment (the signal
   is discontinuous; beat windows never straddle a gap); the alert engine keeps its history.
   A late frame (older than the newest frame analysed) is stored but not analysed, since its
   beats would arrive out of time order. A change of ``fs`` or leads also starts a new segment.
5. **Storage**, one transaction: frames (ECG + vitals), beats, alerts (upserted: the engine's
   alert id is kept in ``evidence["alert_id"]``, one row per engine alert).
6. After the commit: the MQTT messages are acknowledged (manual PUBACK, so the broker redelivers
   anything not committed after a processor crash: persistent session, ``clean_session=False``),
   and each device gets a storage acknowledgement (:mod:`heartline.ingestion.acks`) for the
   frames now durably stored, so that it can delete them from its queue.

Counters (:meth:`StreamProcessor.counters`): frames in/stored/duplicate/late/gaps, quarantined
by reason, beats, alerts, and the latency from frame receipt to committed result (p50/p99).

Fault isolation (one device never hurts another patient)
---------------------------------------------------------
* **Per frame**: a frame that cannot be analysed (a one-lead frame for a two-lead model, any
  exception in its device's pipeline) is quarantined as ``unprocessable`` and acknowledged;
  the other frames of the batch are stored and analysed as usual. Should a batch still fail
  (a bug, a value the database refuses), it is handled again device by device, and the
  messages of a device that fails alone are quarantined as ``processing_error``.
* **Partition from the server side**: a frames topic whose partition is not
  ``crc32(device_id) mod n_partitions`` (:func:`~heartline.ingestion.topics.partition_for`) is
  quarantined as ``wrong_partition``: a device cannot aim at another patient's partition.
* **Time sanity**: a frame dated more than ``max_clock_ahead_s`` after the processor's clock, or
  ending more than ``max_frame_age_s`` before it, is quarantined as ``clock_skew`` (a frame
  dated 2099 never becomes the "latest" ECG).
* **Misbehaving devices**: ``device_strike_limit`` refused frames within
  ``device_strike_window_s`` block the device for ``device_backoff_s``: its messages are then
  acknowledged and dropped before parsing (counted as quarantined ``rate_limited``, not stored),
  and the device is flagged once to the admins: a technical ``device_faulty`` alert on its
  patient (with the reasons counted), visible through the alerts API and the dashboard.
* **Frame budget per device** (``device_rate_factor``): each device has a token bucket of
  *seconds of signal* (a frame costs its ``duration_s``, i.e. ``n_samples / fs_hz`` as it
  declares them), refilled at ``device_rate_factor`` seconds per second of the processor's
  clock and holding at most ``device_burst_s``. A device seen for the first time starts with
  ``device_initial_burst_s``, or more when its first frame is older (a store-and-forward
  backlog, e.g. after a processor restart: as much as the frame's age, up to
  ``device_burst_s``); a silent device earns its bucket back while it is silent, so the
  resend of a link drop's backlog passes. A frame over the budget is quarantined as
  ``rate_limited`` (counted, acknowledged, not stored: an honest device keeps it in its
  store-and-forward queue, gets no storage acknowledgement for it and sends it again later,
  when its bucket has refilled, so nothing is lost), and counts as a refusal towards the
  device's block below. Once a device's bucket holds less than its last frame's length, its
  messages are refused before parsing, so a flood costs a topic split and a few lookups per
  message and the batch's time stays with the other devices.
* **No data**: with ``no_data_alert_s``, a patient whose frames stop arriving for that long gets
  a technical ``no_data`` alert (severity ``high``), stored like any alert and closed
  (``end_time``) when frames arrive again.
* **Bounded**: the inbox holds at most ``inbox_max`` messages (the MQTT network thread waits
  when it is full); quarantined payloads are kept up to ``max_payload_bytes``.

Why this file is long (about 2,000 lines): it is one class, whose batch stages (``_parse`` ..
``_acknowledge``) and isolation steps share the per-device state (sequence tracker, pipelines,
alert engines, strikes) of the partitions it owns; each stage is a method of its own and can
be read alone.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from heartline.alerts.engine import AlertEngine, AlertUpdate, EngineConfig
from heartline.alerts.rules import BeatSeries, RuleConfig
from heartline.defaults import (
    DEFAULT_QUALITY_WARMUP_S,
    DEFAULT_RHYTHM_INTERVAL_S,
    DEFAULT_RHYTHM_MIN_S,
)
from heartline.edge.adapt import apply_batches
from heartline.edge.model_select import (
    ASSETS_DIR,
    BeatModelSpec,
    LeadMismatchError,
    beat_model_specs,
    select_beat_model,
    spec_for_onnx,
)
from heartline.ingestion.acks import StorageAck, acks_topic, seq_ranges
from heartline.ingestion.broker import BrokerAddress, configure_client
from heartline.ingestion.payloads import (
    MAX_FRAME_BYTES,
    Frame,
    FrameRejected,
    check_frame_time,
    parse_frame,
)
from heartline.ingestion.sequencing import SeqStatus, SequenceTracker
from heartline.ingestion.topics import parse_frames_topic, partition_for, partition_subscription
from heartline.pipeline.beat_pipeline import (
    BeatBatch,
    BeatPipeline,
    classify_batches,
    prepare_many,
)
from heartline.signal.artefact import BeatArtefactModel
from heartline.storage import make_engine, make_session_factory
from heartline.storage.repository import (
    BeatIn,
    add_alert,
    add_beats_by_patient,
    quarantine,
    store_frames,
    update_alerts,
)
from heartline.storage.tables import Alert, Device

__all__ = [
    "UNKNOWN_DEVICE_POLICIES",
    "ProcessorCounters",
    "StreamProcessor",
    "alert_severity",
    "tune_gc",
]

log = logging.getLogger(__name__)

#: What to do with frames from devices that are not registered.
UNKNOWN_DEVICE_POLICIES: tuple[str, ...] = ("register", "quarantine")
#: Engine severity -> storage severity (the same names: storage keeps "high" since it has its
#: own level; the engine's severity is also kept in ``evidence["severity"]``).
_SEVERITY = {"info": "info", "warning": "warning", "high": "high", "critical": "critical"}
_LATENCY_KEEP = 20_000
#: Database errors worth retrying (the connection or a lock); others come from the batch's data.
_TRANSIENT_DB_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
#: Alert types the processor itself raises (technical alerts, outside the alert engine).
NO_DATA_ALERT = "no_data"
DEVICE_FAULTY_ALERT = "device_faulty"


#: Least length of unusable signal that raises the ``signal_quality`` notice in the processor's
#: engines (the rules' own default is 2 s: one 2 s quality window). On wearable recordings a
#: single 2 s window failing the quality check is common and brief (measured with
#: ``heartline bench alarms``, docs/results/alarms.md); 5 s of noise still raises it.
QUALITY_NOTICE_MIN_S = 5.0
#: The notice is a sustained condition in the processor's engines (``RuleConfig.
#: quality_sustain_window_s`` / ``quality_sustain_fraction``): unusable signal over the whole
#: of the last 10 s (2 s quality windows every second: one usable window between failing ones
#: leaves no gap). Failing windows scattered through a usable handheld recording (baseline
#: wander, a movement) no longer raise it; their beats are still left out of the rules.
QUALITY_SUSTAIN_WINDOW_S = 10.0
QUALITY_SUSTAIN_FRACTION = 1.0
#: A ``~`` rhythm window shorter than this (a segment's first windows) masks its beats for the
#: rules but raises no notice itself (``EngineConfig.noisy_notice_min_window_s``), as a short
#: window raises no AF.
NOISY_NOTICE_MIN_WINDOW_S = 30.0

#: Prematurity a beat labelled V needs to count as ventricular ectopy in the processor's
#: engines (:func:`heartline.alerts.rules.ventricular.premature_beats`): an RR interval before
#: it below 85 % of the reference (normal-to-normal) RR. A premature ventricular complex is
#: premature by definition; on single-lead wearable signal most V labels on beats arriving on
#: the sinus timing are a normal beat after a noise spike or a T wave taken for a beat
#: (``heartline bench alarms``, docs/results/alarms.md).
V_PREMATURITY = 0.85

#: The rhythm model's ``A`` windows raise the AF alarm in the processor's engines only when
#: the window's RR intervals agree (``EngineConfig.af_model_rr_check``: at least 16 usable
#: intervals, V beats left out, irregular by Dash et al. 2009's tests). On the MIT-BIH AF
#: records the model alone raised AF on ventricular trigeminy (record 201; ``heartline bench
#: alarms``, docs/results/alarms.md).
AF_MODEL_RR_CHECK = True
#: ... except for a window the model is this sure of (``EngineConfig.af_model_confident_p``):
#: on single-lead CinC AF recordings the beat model calls many aberrant or noisy beats ``V``,
#: which leaves too few usable intervals for the check.
AF_MODEL_CONFIDENT_P = 0.9

#: With a rhythm model, low-priority physiological episodes (couplets, ectopy counts and
#: patterns, rate episodes of ``warning`` severity) wait at most this long (data time) for the
#: model's verdict on their beats (``EngineConfig.rhythm_confirm_s``): a ``~`` verdict
#: suppresses them (issue 19: the noisy class suppresses rhythm alarms). Windows are due
#: every 5 s, the first 15 s into a segment.
RHYTHM_CONFIRM_S = 15.0

#: A rhythm window whose ``~`` probability reaches this masks its beats from the arrhythmia
#: rules even when another class wins (``EngineConfig.noisy_mask_p``; no notice). Chosen
#: from 0.3 / 0.2 / off on the development half of the CinC records (``heartline bench alarms``,
#: ``split_summary``; docs/results/alarms.md): noisy records with a physiological alarm 8.9 ->
#: 6.7 % there, held-out half 4.4 -> 4.4 %, normal records 4.0 -> 3.8 %.
NOISY_MASK_P = 0.2

#: Beats the beat artefact model (:mod:`heartline.signal.artefact`, shipped
#: ``assets/models/beat_artefact.json``) calls motion artefacts are never ``V`` for the alarm
#: rules of the processor's engines (``StreamProcessor(artefact_model="auto")``). Handheld
#: single-lead recordings: motion spikes taken for beats and labelled V raised most of the
#: remaining false ventricular alarms. Chosen on the development half of the CinC records
#: (``heartline bench alarms --half dev``: normal records with a physiological alarm 6 -> 5 of
#: 403, noisy 6 -> 4 of 90); held-out half 15 -> 11 of 397 and 4 -> 3 of 91; MIT-BIH
#: ventricular alarms 220 -> 219, AF episodes unchanged (docs/results/alarms.md).
BEAT_ARTEFACT = True

#: Generation-0 threshold of :func:`tune_gc` (CPython's default is 700).
GC_THRESHOLD0 = 10_000


def tune_gc(*, threshold0: int = GC_THRESHOLD0) -> tuple[int, int, int]:
    """Set the cyclic garbage collector up for a long-running stream-processing process.

    Call it once, after the imports and the model are loaded and before the processors start.
    It (1) collects, then moves every object alive at that point (modules, functions, classes,
    the ONNX session: ~300,000 objects that never become garbage) to the permanent generation
    (:func:`gc.freeze`), so that later full collections do not traverse them; and (2) raises the
    generation-0 threshold from 700 to ``threshold0`` net container allocations. The per-frame
    work frees its objects by reference counting, so collections find little garbage; what they
    cost is the traversal, and a full one is a stop-the-world pause of the worker: measured with
    the stream-profile harness (300 patients, one processor, 18,000 frames;
    ``gc_pauses.py``, in git at commit ``6a1731f``), 5 full collections of up to
    167 ms each and 1.2 s of collector time with the defaults, against 8 collections of at most
    15 ms and 0.05 s after this call. Those pauses land directly in the frame-to-result latency.

    Cyclic garbage is still collected, later (objects frozen here were alive, so nothing
    collectable is frozen). Returns the previous thresholds.
    """
    if threshold0 < 700:
        raise ValueError(f"threshold0 must be >= 700 (CPython's default), got {threshold0}")
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold0, old[1], old[2])
    return old


def alert_severity(engine_severity: str) -> str:
    """Storage severity of an engine severity."""
    try:
        return _SEVERITY[engine_severity]
    except KeyError:
        raise ValueError(
            f"engine_severity must be one of {sorted(_SEVERITY)}, got {engine_severity!r}"
        ) from None


@dataclass(frozen=True)
class ProcessorCounters:
    """Counters of one processor since it started.

    ``latency_p50_s``/``latency_p99_s``: frame receipt -> its results committed (NaN before the
    first frame). ``e2e_latency_*``: end of the frame on the device clock
    (``start_time_s + duration_s``) -> results committed, by the server's wall clock (meaningful
    when device clocks are synchronised, e.g. simulated devices on the same machine).
    ``quarantined`` maps reason -> count. ``storage_acks``: acknowledgements published (each
    covers the frames of one device committed within ``ack_interval_s``).
    ``devices_flagged``: devices flagged to admins for repeated bad frames; ``devices_blocked``:
    those blocked now; ``no_data_alerts``: ``no_data`` alerts raised; ``rhythm_windows``:
    windows the rhythm model classified (every ``rhythm_interval_s`` per device);
    ``beats_af_gated``: ``S`` calls stored as ``N`` by the AF gate (``af_gate``).
    """

    frames_in: int
    frames_stored: int
    frames_duplicate: int
    frames_late: int
    gap_events: int
    quarantined: dict[str, int]
    beats: int
    beats_low_quality: int
    alerts_opened: int
    alert_updates: int
    devices: int
    batches: int
    db_errors: int
    engine_errors: int
    latency_p50_s: float
    latency_p99_s: float
    latency_max_s: float
    e2e_latency_p50_s: float = float("nan")
    e2e_latency_p99_s: float = float("nan")
    storage_acks: int = 0
    devices_flagged: int = 0
    devices_blocked: int = 0
    no_data_alerts: int = 0
    rhythm_windows: int = 0
    beats_af_gated: int = 0

    @property
    def quarantined_total(self) -> int:
        return int(sum(self.quarantined.values()))

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["quarantined_total"] = self.quarantined_total
        return d


@dataclass
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float  # monotonic
    client: int = 0  # index of the MQTT session that received it


#: Public name of a received message, for tools that feed :meth:`StreamProcessor.handle`.
Message = _Message


@dataclass
class _FrameRef:
    seq: int
    abs_start: int
    n: int
    start_time_s: float


@dataclass
class _DeviceState:
    device_id: str
    patient_id: str
    pipeline: BeatPipeline | None = None
    fs: float = 0.0
    leads: tuple[str, ...] = ()
    last_analysed_seq: int | None = None
    frames: collections.deque[_FrameRef] = field(
        default_factory=lambda: collections.deque(maxlen=120)
    )
    segment: int = 0
    rules_pending: bool = False  # quality/VF spans recorded since the engine last ran its rules
    beat_model: Any = None  # the beat model chosen for the device's leads
    segment_start_idx: int = 0  # pipeline sample index where the segment started (always 0)
    segment_beats: int = 0  # beats of the current segment given to the engine
    # rhythm: the last rhythm_window_s of one lead (mV) and the device time of its end
    rhythm_stream: Any = None  # RhythmStream: the incrementally prepared rhythm input
    rhythm_offset: int = 0  # pipeline sample index of the rhythm stream's first sample
    rhythm_due: bool = False  # a rhythm window is due once the current frame's peaks are in
    rhythm_end_s: float = math.nan
    rhythm_due_s: float = math.nan
    rhythm_seg_start_s: float = math.nan  # device time of the segment's first sample
    # the segment's latest rhythm verdicts (device time of the window's end, label), oldest first
    rhythm_verdicts: collections.deque[tuple[float, str]] = field(
        default_factory=lambda: collections.deque(maxlen=4)
    )


@dataclass
class _Budget:
    """A device's frame budget: a token bucket of seconds of signal (see the module docstring)."""

    level_s: float  # seconds of signal the device may still send now
    at: float  # monotonic time of ``level_s``
    need_s: float  # length of its last frame (a message is refused unparsed below this)

    def refill(self, now: float, rate: float, cap_s: float) -> float:
        if now > self.at:
            self.level_s = min(cap_s, self.level_s + (now - self.at) * rate)
            self.at = now
        return self.level_s


class _Clock:
    """Per-stage CPU time of the worker thread (no-op without a target dict)."""

    __slots__ = ("last", "tm")

    def __init__(self, tm: collections.defaultdict[str, float] | None) -> None:
        self.tm = tm
        self.last = time.thread_time() if tm is not None else 0.0

    def lap(self, stage: str) -> None:
        """Charge the CPU time since the last lap to ``stage``."""
        if self.tm is not None:
            now = time.thread_time()
            self.tm[stage] += now - self.last
            self.last = now

    def skip(self) -> None:
        """Charge the time since the last lap to nobody (a callee timed it)."""
        if self.tm is not None:
            self.last = time.thread_time()


_EngineRow = tuple[float, int, str, float, bool]


@dataclass
class _Batch:
    """What the stages of one batch hand each other (see :meth:`StreamProcessor._handle_batch`)."""

    messages: list[_Message]
    clock: _Clock
    now_utc: datetime
    #: refused messages: (message, reason, device id when known)
    bad: list[tuple[_Message, str, str | None]] = field(default_factory=list)
    #: parsed frames, before the device lookup
    good: list[tuple[_Message, Frame]] = field(default_factory=list)
    #: frames to store (new, gap or late), per device in seq order
    to_store: list[tuple[_Message, Frame, SeqStatus]] = field(default_factory=list)
    duplicates: list[tuple[_Message, Frame]] = field(default_factory=list)
    #: devices analysed in this batch
    analysed: dict[str, _DeviceState] = field(default_factory=dict)
    #: beats awaiting classification, in the order of ``to_store``
    pending: list[tuple[_DeviceState, BeatBatch]] = field(default_factory=list)
    #: per device, its state and its classified beats as engine rows
    engine_beats_of: dict[str, tuple[_DeviceState, list[_EngineRow]]] = field(default_factory=dict)
    beat_rows: dict[str, list[BeatIn]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    updates: list[AlertUpdate] = field(default_factory=list)
    #: messages of blocked devices: acknowledged and dropped unparsed
    dropped: list[_Message] = field(default_factory=list)
    #: messages over their device's frame budget: (message, device id); acknowledged, not stored
    limited: list[tuple[_Message, str]] = field(default_factory=list)
    #: positions in ``to_store`` whose analysis failed (quarantined, not stored)
    failed: set[int] = field(default_factory=set)
    #: devices to flag to the admins in this batch's transaction: (device, patient, reasons)
    flags: list[tuple[str, str, dict[str, int]]] = field(default_factory=list)
    #: rhythm windows due: (device state, model inputs or why unusable, fs, start_s, end_s)
    rhythm_jobs: list[tuple[_DeviceState, Any, float, float, float]] = field(default_factory=list)


def _af_gated(beat: Any) -> Any:
    """``beat`` (an ``S`` call in atrial fibrillation) as ``N``: its ``S`` probability moved to
    ``N`` (:func:`heartline.edge.af_gate.apply_af_gate` on one beat)."""
    p = dict(beat.probabilities)
    p["N"] = p.get("N", 0.0) + p.pop("S", 0.0)
    p["S"] = 0.0
    return replace(beat, label="N", probabilities=p, confidence=p["N"])


class StreamProcessor:
    """A stream-processing worker (see the module docstring).

    Parameters
    ----------
    address : BrokerAddress
        The MQTT broker.
    database_url : str
        SQLAlchemy URL of a migrated database (or pass ``session_factory``).
    model : OnnxBeatClassifier or path
        Beat classifier (an :class:`~heartline.edge.runtime.OnnxBeatClassifier` or its path).
    partitions : sequence of int
        Partitions this worker owns.
    n_partitions : int
        Total partitions (devices and processors must agree).
    unknown_devices : {"register", "quarantine"}
        Policy for frames from unregistered devices.
    client_id : str, optional
        Prefix of the MQTT client ids (one session per partition, ``<client_id>-p<k>``); keep it
        stable across restarts so the broker keeps the sessions' queues.
    batch_max : int
        Messages per transaction, at most.
    batch_wait_s : float
        Longest wait for a batch to fill. Larger batches cost less CPU per frame (the
        per-device filters, the ONNX call and the transaction are shared by the batch), but the
        wait adds to the frame-to-result latency: at 300 patients on the 2-core bench machine,
        p99 0.66 s with 0.2 s against 0.20 s with 0.05 s.
    batch_idle_s : float
        A batch also closes when no message arrived for this long (e.g. the broker's in-flight
        window of the sessions is full until this batch is acknowledged).
    ack_interval_s : float
        Storage acknowledgements are coalesced per device: a device's committed sequence
        numbers are published in one acknowledgement at most ``ack_interval_s`` after the first
        of them was committed (``0``: one acknowledgement per device after every commit). With
        1 s frames this sends about one acknowledgement per device every ``ack_interval_s``
        instead of one per frame, which saves the broker, the processor's network threads and
        the devices the same number of QoS 1 round trips. Keep it well below the devices'
        ``storage_ack_timeout_s`` (10 s by default), or they replay frames that are stored but
        not yet acknowledged (harmless, storage is idempotent, but wasted work). A crash loses
        only pending acknowledgements, never frames: the devices replay and storage finds the
        frames already stored.
    max_payload_bytes : int
        Payloads above this are quarantined as ``oversized``.
    session_factory : sessionmaker, optional
        Instead of ``database_url``.
    pipeline_options : dict, optional
        Extra :class:`~heartline.pipeline.BeatPipeline` keywords.
    on_alert : callable, optional
        Called with every :class:`~heartline.alerts.engine.AlertUpdate` after its commit.
    max_clock_ahead_s : float or None
        Frames starting more than this after the processor's clock are quarantined
        (``clock_skew``); ``None``: no limit.
    max_frame_age_s : float or None
        Frames ending more than this before the processor's clock are quarantined
        (``clock_skew``); ``None`` (default): no limit (replays of old recordings are stored).
    device_strike_limit, device_strike_window_s, device_backoff_s : int, float, float
        A device with ``device_strike_limit`` refused frames within ``device_strike_window_s``
        is blocked for ``device_backoff_s`` and flagged (see the module docstring).
    device_rate_factor : float or None
        Per-device frame budget (see the module docstring): seconds of signal a device may send
        per second, beyond its burst (default 4: an honest device sends 1, and resends a
        backlog at up to 3 s of signal per second beyond the burst); ``None``: no budget
        (replays of recordings, profiling).
    device_burst_s : float
        Most seconds of signal a device may send at once (its bucket's size).
    device_initial_burst_s : float
        Bucket of a device seen for the first time (more when its first frame is older, up to
        ``device_burst_s``).
    no_data_alert_s : float or None
        Raise a ``no_data`` alert for a patient whose frames stopped arriving this long ago
        (``None``, the default here: off; ``heartline serve`` turns it on, see
        :class:`~heartline.settings.Settings`).
    inbox_max : int
        Messages received and not yet handled, at most.
    beat_models : "auto", mapping of int to model, or None
        Beat models by number of leads, chosen per device from its leads
        (:func:`~heartline.edge.model_select.select_beat_model`). ``"auto"`` (default): when
        ``model`` is a shipped model, the other installed shipped models join it (a one-lead
        wearable gets the single-lead model); a user-given ``model`` stays the only one.
    rhythm_model : "auto", OnnxRhythmClassifier, path or None
        The rhythm classifier (:class:`~heartline.edge.rhythm.OnnxRhythmClassifier`); ``"auto"``:
        the shipped one when ``model`` is shipped, else none; ``None``: off.
    rhythm_interval_s, rhythm_window_s, rhythm_min_s : float
        Every ``rhythm_interval_s`` of a device's data (default 5 s), its last
        ``rhythm_window_s`` (30 s) are classified once at least ``rhythm_min_s`` (10 s) of the
        segment are there.
    quality_warmup_s : float
        Unusable-signal verdicts within this long of a segment's start are not reported (the
        band-pass filter's start-up transient flagged the first window of 60 % of CinC 2017
        records, issue 19).
    startup_beats : int
        The first beats of a segment that the alarm rules never see as ``V`` (relabelled ``Q``
        for the engine only): 26 % of the first three beats of CinC 2017 records are called V
        against 5.8 % of the others (issue 19).
    engine_config : EngineConfig, optional
        Configuration of the patients' alert engines (default: the engine's defaults with
        :data:`QUALITY_NOTICE_MIN_S` for the signal-quality notice).
    artefact_model : BeatArtefactModel, str, path or None
        Beat artefact model of the beat pipelines (:mod:`heartline.signal.artefact`): a beat it
        calls a motion artefact is never ``V`` for the alarm rules (relabelled ``Q`` for the
        engine only, as the start-up beats; stored as classified). ``"auto"`` (default): the
        shipped model when :data:`BEAT_ARTEFACT` is on, else none; ``"shipped"``: the shipped
        model; a path: that model; ``None``: off.
    af_gate : bool
        The atrial-fibrillation gate on ``S`` calls (:mod:`heartline.edge.af_gate`; AAMI EC57:
        a beat during AF is ``N``): a beat the beat model (or the patient's adapted model) calls
        ``S`` is stored and given to the alarm rules as ``N``, its ``S`` probability moved to
        ``N``, when the device's latest rhythm verdict whose window ended at or before the beat
        is ``A`` (and ended at most ``rhythm_window_s`` before it). Causal, as the offline gate
        of ``heartline evaluate --af-gate``. Off by default (chosen on DS1 for the prematurity
        discriminant only; ``docs/results/beat-classifier.md``); needs the rhythm model.
    profile : bool
        Accumulate the worker thread's CPU time per stage in :attr:`stage_times` (``parse``,
        ``sequencing``, ``dispatch``, ``decode``, ``detect``, ``clean``, ``quality``, ``beats``,
        ``classify``, ``results``, ``alerts``, ``storage``, ``acks``, plus ``total``); see
        ``heartline bench stream-profile``.
    """

    #: The rhythm input's R peaks: ``True``, the reference path, from a detector of the rhythm
    #: input's own, started at the end of the segment's warm-up; ``False`` (default), the same
    #: until the device's beat pipeline (whose detector runs on the same lead, at the same rate
    #: and settings, from the segment's start) has given the same peaks over the whole span the
    #: rhythm input keeps (33 s), and the pipeline's peaks after that: one detector per lead
    #: once both have settled (:class:`~heartline.edge.rhythm.RhythmStream`, ``handover``;
    #: ``tests/ingestion/test_rhythm_peaks.py`` and ``benchmarks/rhythm_peaks/compare.py``
    #: compare the two paths).
    rhythm_own_detector: bool = False

    def __init__(
        self,
        *,
        address: BrokerAddress,
        model: Any,
        partitions: Sequence[int],
        n_partitions: int,
        database_url: str | None = None,
        session_factory: sessionmaker[Session] | None = None,
        unknown_devices: str = "register",
        client_id: str | None = None,
        batch_max: int = 500,
        batch_wait_s: float = 0.05,
        batch_idle_s: float = 0.025,
        ack_interval_s: float = 2.0,
        max_payload_bytes: int = MAX_FRAME_BYTES,
        pipeline_options: dict[str, Any] | None = None,
        on_alert: Callable[[AlertUpdate], None] | None = None,
        max_clock_ahead_s: float | None = 300.0,
        max_frame_age_s: float | None = None,
        device_strike_limit: int = 20,
        device_strike_window_s: float = 60.0,
        device_backoff_s: float = 60.0,
        device_rate_factor: float | None = 4.0,
        device_burst_s: float = 600.0,
        device_initial_burst_s: float = 60.0,
        no_data_alert_s: float | None = None,
        inbox_max: int = 10_000,
        beat_models: Any = "auto",
        rhythm_model: Any = "auto",
        rhythm_interval_s: float = DEFAULT_RHYTHM_INTERVAL_S,
        rhythm_window_s: float = 30.0,
        rhythm_min_s: float = DEFAULT_RHYTHM_MIN_S,
        quality_warmup_s: float = DEFAULT_QUALITY_WARMUP_S,
        startup_beats: int = 3,
        engine_config: EngineConfig | None = None,
        profile: bool = False,
        patient_models: Any = None,
        artefact_model: Any = "auto",
        af_gate: bool = False,
    ) -> None:
        if unknown_devices not in UNKNOWN_DEVICE_POLICIES:
            raise ValueError(
                f"unknown_devices must be one of {UNKNOWN_DEVICE_POLICIES}, got {unknown_devices!r}"
            )
        if not partitions:
            raise ValueError("partitions must name at least one partition")
        bad = [p for p in partitions if not 0 <= int(p) < n_partitions]
        if bad:
            raise ValueError(f"partitions {bad} outside 0..{n_partitions - 1}")
        if (database_url is None) == (session_factory is None):
            raise ValueError("give exactly one of database_url and session_factory")
        if batch_max < 1 or batch_wait_s < 0 or batch_idle_s <= 0 or not ack_interval_s >= 0:
            raise ValueError(
                "need batch_max >= 1, batch_wait_s >= 0, batch_idle_s > 0 and ack_interval_s >= 0,"
                f" got {batch_max}, {batch_wait_s}, {batch_idle_s}, {ack_interval_s}"
            )
        for name, value in (
            ("max_clock_ahead_s", max_clock_ahead_s),
            ("max_frame_age_s", max_frame_age_s),
            ("no_data_alert_s", no_data_alert_s),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0 s or None, got {value!r}")
        if device_strike_limit < 1 or not device_strike_window_s > 0 or not device_backoff_s > 0:
            raise ValueError(
                "need device_strike_limit >= 1, device_strike_window_s > 0 and"
                f" device_backoff_s > 0, got {device_strike_limit}, {device_strike_window_s},"
                f" {device_backoff_s}"
            )
        if device_rate_factor is not None and not (
            math.isfinite(device_rate_factor) and device_rate_factor >= 1
        ):
            raise ValueError(
                f"device_rate_factor must be >= 1 (real time) or None, got {device_rate_factor!r}"
            )
        if not (
            math.isfinite(device_burst_s)
            and math.isfinite(device_initial_burst_s)
            and 0 < device_initial_burst_s <= device_burst_s
        ):
            raise ValueError(
                "need 0 < device_initial_burst_s <= device_burst_s, got"
                f" {device_initial_burst_s!r}, {device_burst_s!r}"
            )
        if inbox_max < 1:
            raise ValueError(f"inbox_max must be >= 1, got {inbox_max}")
        if isinstance(model, (str, Path)):
            from heartline.edge.runtime import OnnxBeatClassifier

            model = OnnxBeatClassifier(model)
        self.model = model
        #: Per-patient adapted models (:class:`heartline.edge.adapt.PatientModelRegistry`) or None.
        self.patient_models = patient_models
        self._setup_models(beat_models, rhythm_model)
        if not (rhythm_interval_s > 0 and rhythm_window_s > 0 and 0 < rhythm_min_s):
            raise ValueError(
                "need rhythm_interval_s, rhythm_window_s and rhythm_min_s > 0, got "
                f"{rhythm_interval_s}, {rhythm_window_s}, {rhythm_min_s}"
            )
        if quality_warmup_s < 0 or startup_beats < 0:
            raise ValueError(
                f"need quality_warmup_s >= 0 and startup_beats >= 0, got {quality_warmup_s},"
                f" {startup_beats}"
            )
        self.rhythm_interval_s = float(rhythm_interval_s)
        self.rhythm_window_s = float(rhythm_window_s)
        self.rhythm_min_s = float(max(rhythm_min_s, getattr(self.rhythm, "min_duration_s", 0)))
        self.quality_warmup_s = float(quality_warmup_s)
        self.startup_beats = int(startup_beats)
        if isinstance(artefact_model, str) and artefact_model == "auto":
            artefact_model = "shipped" if BEAT_ARTEFACT else None
        if isinstance(artefact_model, (str, Path)):
            artefact_model = BeatArtefactModel.load(
                None if artefact_model == "shipped" else artefact_model
            )
        #: The beat pipelines' artefact model (``None``: off).
        self.artefact_model = artefact_model
        #: The AF gate on ``S`` calls (see the class docstring).
        self.af_gate = bool(af_gate)
        self.engine_config = engine_config or EngineConfig(
            rules=RuleConfig(
                quality_min_duration_s=QUALITY_NOTICE_MIN_S,
                quality_sustain_window_s=QUALITY_SUSTAIN_WINDOW_S,
                quality_sustain_fraction=QUALITY_SUSTAIN_FRACTION,
                v_prematurity=V_PREMATURITY,
            ),
            af_model_rr_check=AF_MODEL_RR_CHECK,
            af_model_confident_p=AF_MODEL_CONFIDENT_P,
            noisy_mask_p=NOISY_MASK_P,
            noisy_notice_min_window_s=NOISY_NOTICE_MIN_WINDOW_S,
            rhythm_confirm_s=RHYTHM_CONFIRM_S if self.rhythm is not None else 0.0,
        )
        self.address = address
        self.partitions = tuple(sorted(int(p) for p in partitions))
        self.n_partitions = int(n_partitions)
        self.unknown_devices = unknown_devices
        self.batch_max = int(batch_max)
        self.batch_wait_s = float(batch_wait_s)
        self.batch_idle_s = float(batch_idle_s)
        self.ack_interval_s = float(ack_interval_s)
        self.max_payload_bytes = int(max_payload_bytes)
        self.pipeline_options = dict(pipeline_options or {})
        self.on_alert = on_alert
        self.max_clock_ahead_s = max_clock_ahead_s
        self.max_frame_age_s = max_frame_age_s
        self.device_strike_limit = int(device_strike_limit)
        self.device_strike_window_s = float(device_strike_window_s)
        self.device_backoff_s = float(device_backoff_s)
        self.device_rate_factor = None if device_rate_factor is None else float(device_rate_factor)
        self.device_burst_s = float(device_burst_s)
        self.device_initial_burst_s = float(device_initial_burst_s)
        self.no_data_alert_s = no_data_alert_s
        self._engine = None
        if session_factory is None:
            self._engine = make_engine(str(database_url))
            session_factory = make_session_factory(self._engine)
        self._factory = session_factory
        self.client_id = client_id or (
            f"heartline-proc-{'-'.join(map(str, self.partitions))}-of-{self.n_partitions}"
        )
        # One MQTT session per partition: each has its own in-flight window on the broker
        # (Mosquitto's default max_inflight_messages is 20), so batches can grow with the load.
        self._clients: list[mqtt.Client] = []
        for i, part in enumerate(self.partitions):
            c = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self.client_id}-p{part}",
                clean_session=False,
                protocol=mqtt.MQTTv311,
                userdata=i,
            )
            c.manual_ack_set(True)
            c.reconnect_delay_set(min_delay=1, max_delay=2)
            c.max_queued_messages_set(0)
            configure_client(c, address)  # credentials, TLS for mqtts:// addresses
            c.on_connect = self._on_connect
            c.on_disconnect = self._on_disconnect
            c.on_message = self._on_message
            c.on_subscribe = self._on_subscribe
            self._clients.append(c)
        self._client = self._clients[0]  # publishes the storage acknowledgements
        self._up: set[int] = set()
        self._subbed: set[int] = set()  # sessions whose subscription the broker confirmed
        self._inbox: queue.Queue[_Message] = queue.Queue(maxsize=int(inbox_max))
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._worker: threading.Thread | None = None
        self.tracker = SequenceTracker()
        self._devices: dict[str, _DeviceState] = {}
        self._known: dict[str, str | None] = {}  # device -> patient (None: unknown)
        self._engines: dict[str, AlertEngine] = {}
        self._alert_rows: dict[str, int] = {}  # engine alert id -> alerts.id
        # storage acknowledgements not yet sent: device -> committed seqs, and when they are due
        self._pending_acks: dict[str, list[int]] = {}
        self._ack_due: dict[str, float] = {}
        self._lock = threading.Lock()
        self._c: collections.Counter[str] = collections.Counter()
        self._quarantined: collections.Counter[str] = collections.Counter()
        self._latency: collections.deque[float] = collections.deque(maxlen=_LATENCY_KEEP)
        self._e2e: collections.deque[float] = collections.deque(maxlen=_LATENCY_KEEP)
        # misbehaving devices: recent refusal times, blocked-until (monotonic), flagged ones
        self._strikes: dict[str, collections.deque[float]] = {}
        self._strike_reasons: dict[str, collections.Counter[str]] = {}
        self._blocked: dict[str, float] = {}
        self._flagged: set[str] = set()
        # per-device frame budgets (device -> bucket); the clock is an attribute for tests
        self._budgets: dict[str, _Budget] = {}
        self._monotonic: Callable[[], float] = time.monotonic
        # no-data alerts: patient -> (monotonic, wall) time of its last stored frame; open rows
        self._last_data: dict[str, tuple[float, float]] = {}
        self._no_data_open: dict[str, int] = {}
        self._no_data_seen: set[str] = set()
        self._no_data_due = 0.0
        self.connects = 0
        self.last_error: str | None = None
        self.stage_times: collections.defaultdict[str, float] | None = (
            collections.defaultdict(float) if profile else None
        )

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("processor %s: broker refused the connection: %s", self.client_id, rc)
            return
        self.connects += 1
        client.subscribe(partition_subscription(self.partitions[userdata]), 1)
        self._up.add(userdata)
        if len(self._up) == len(self._clients):
            self._connected.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: Any, reason_codes: Any, props: Any
    ) -> None:
        # subscribed once the broker's SUBACK is here: frames published earlier than that find
        # no subscription (a clean start), so start() waits for it, not for the SUBSCRIBE sent
        if any(getattr(rc, "is_failure", False) for rc in reason_codes or ()):
            log.warning("processor %s: subscription refused: %s", self.client_id, reason_codes)
            return
        self._subbed.add(userdata)
        if len(self._subbed) == len(self._clients):
            self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        self._up.discard(userdata)
        self._connected.clear()
        log.info("processor %s: disconnected (%s)", self.client_id, rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: Any) -> None:
        self._inbox.put(
            _Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.monotonic(), userdata)
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_s: float = 10.0) -> StreamProcessor:
        """Connect, subscribe and start the worker thread (waits for the subscription)."""
        if self._worker is not None:
            return self
        self._stop.clear()
        for c in self._clients:
            c.connect_async(self.address.host, self.address.port, keepalive=15)
            c.loop_start()
        self._worker = threading.Thread(
            target=self._run, name=f"proc-{self.client_id}", daemon=True
        )
        self._worker.start()
        if wait_s and not self._subscribed.wait(wait_s):
            log.warning(
                "processor %s: not connected after %.0f s; retrying in the background",
                self.client_id,
                wait_s,
            )
        return self

    def stop(self, *, drain_s: float = 2.0) -> None:
        """Process what has arrived (up to ``drain_s``), then disconnect and stop."""
        deadline = time.monotonic() + drain_s
        while drain_s > 0 and not self._inbox.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        self._flush_alert_reports()
        self._send_acks(None)
        for c in self._clients:
            c.disconnect()
            c.loop_stop()
        if self._engine is not None:
            self._engine.dispose()

    def _flush_alert_reports(self) -> None:
        """Store the alert extensions the engines still hold back (``report_interval_s``)."""
        updates = [u for eng in self._engines.values() for u in eng.flush_reports()]
        if not updates:
            return
        new_rows: dict[str, int] = {}
        try:
            with self._factory() as s, s.begin():
                self._write_alerts(s, updates, new_rows)
        except Exception:  # stopping anyway: the rows keep their last reported state
            log.exception("processor %s: could not store the pending alert reports", self.client_id)
            return
        self._alert_rows.update(new_rows)
        self._notify(updates)

    def kill(self) -> None:
        """Stop abruptly, as a crash would: nothing more is processed or acknowledged."""
        self._stop.set()
        # drop the TCP connection without DISCONNECT (the broker keeps the session's messages)
        for c in self._clients:
            with contextlib.suppress(Exception):
                c._sock_close()
            c.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> StreamProcessor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every received message has been processed."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._inbox.empty() and self._c["in_progress"] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    # ------------------------------------------------------------------ counters
    def counters(self) -> ProcessorCounters:
        with self._lock:
            lat = np.asarray(self._latency, dtype=np.float64)
            e2e = np.asarray(self._e2e, dtype=np.float64)
            c = dict(self._c)
            q = dict(self._quarantined)
        p50, p99, mx = (
            (float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(lat.max()))
            if lat.size
            else (float("nan"),) * 3
        )
        return ProcessorCounters(
            frames_in=c.get("frames_in", 0),
            frames_stored=c.get("frames_stored", 0),
            frames_duplicate=c.get("frames_duplicate", 0),
            frames_late=c.get("frames_late", 0),
            gap_events=c.get("gap_events", 0),
            quarantined=q,
            beats=c.get("beats", 0),
            beats_low_quality=c.get("beats_low_quality", 0),
            alerts_opened=c.get("alerts_opened", 0),
            alert_updates=c.get("alert_updates", 0),
            devices=len(self._devices),
            batches=c.get("batches", 0),
            db_errors=c.get("db_errors", 0),
            engine_errors=c.get("engine_errors", 0),
            latency_p50_s=p50,
            latency_p99_s=p99,
            latency_max_s=mx,
            e2e_latency_p50_s=float(np.percentile(e2e, 50)) if e2e.size else float("nan"),
            e2e_latency_p99_s=float(np.percentile(e2e, 99)) if e2e.size else float("nan"),
            storage_acks=c.get("storage_acks", 0),
            devices_flagged=c.get("devices_flagged", 0),
            devices_blocked=sum(t > time.monotonic() for t in list(self._blocked.values())),
            no_data_alerts=c.get("no_data_alerts", 0),
            rhythm_windows=c.get("rhythm_windows", 0),
            beats_af_gated=c.get("beats_af_gated", 0),
        )

    def reset_latency(self) -> None:
        """Forget the latency samples (e.g. after a warm-up)."""
        with self._lock:
            self._latency.clear()
            self._e2e.clear()

    def device_states(self) -> dict[str, dict[str, Any]]:
        """Per-device snapshot for status displays."""
        out = {}
        for d, st in list(self._devices.items()):
            eng = self._engines.get(st.patient_id)
            out[d] = {
                "patient_id": st.patient_id,
                "last_seq": st.last_analysed_seq,
                "beats": st.pipeline.beats_emitted if st.pipeline else 0,
                "active_alerts": [a.kind for a in eng.active_alerts()] if eng else [],
            }
        return out

    # ------------------------------------------------------------------ worker
    def _next_batch(self) -> list[_Message]:
        try:
            first = self._inbox.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            # wait for the batch to fill, but not past a pause in the arrivals: with manual
            # acks the broker stops sending once a session's in-flight window is full, and the
            # messages held back come only after this batch is committed and acknowledged
            left = min(deadline - time.monotonic(), self.batch_idle_s)
            try:
                batch.append(
                    self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            now = time.monotonic()
            if now >= self._no_data_due:
                self._no_data_due = now + self._housekeeping_interval_s()
                try:
                    self._check_no_data(now)
                except Exception:  # the database may be down: try again at the next round
                    log.exception("processor %s: no-data check failed", self.client_id)
            if not batch:
                self._send_acks(now)
                continue
            self._c["in_progress"] = len(batch)
            try:
                self._handle(batch)
            except Exception as exc:  # never die on a batch: log, count, go on
                log.exception("processor %s: batch of %d failed", self.client_id, len(batch))
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._c["db_errors"] += 1
                self._forget_sequences()
            finally:
                self._c["in_progress"] = 0

    # ------------------------------------------------------------------ one batch
    def handle(self, batch: list[Message]) -> None:
        """Process one batch of received messages, as the worker thread does (profiling tools)."""
        self._handle(batch)

    def _handle(self, batch: list[_Message]) -> None:
        tm = self.stage_times
        t0 = time.thread_time()
        try:
            self._handle_batch(batch, tm)
        except Exception as exc:
            log.exception("processor %s: batch of %d failed", self.client_id, len(batch))
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._handle_by_device(batch, tm)
        if tm is not None:
            tm["total"] += time.thread_time() - t0

    def _handle_by_device(
        self, batch: list[_Message], tm: collections.defaultdict[str, float] | None
    ) -> None:
        """After a failed batch: its messages again, one device at a time.

        The messages of a device whose sub-batch fails too are quarantined as
        ``processing_error`` and acknowledged, so that neither that device nor the other
        devices of the partition are held up (issue 18, finding 1).
        """
        with self._lock:
            self._c["isolation_fallbacks"] += 1
        self._forget_sequences()  # the failed attempt's observations were not committed
        by_device: dict[str, list[_Message]] = collections.defaultdict(list)
        for m in batch:
            parts = m.topic.split("/")
            by_device[parts[3] if len(parts) == 5 else ""].append(m)
        for device_id, msgs in by_device.items():
            try:
                self._handle_batch(msgs, tm)
            except Exception as exc:
                log.warning(
                    "processor %s: %d message(s) of device %r fail alone (%s): quarantined",
                    self.client_id,
                    len(msgs),
                    device_id,
                    exc,
                )
                self._forget_sequences()
                self._quarantine_messages(msgs, "processing_error", device_id or None)

    def _handle_batch(
        self, batch: list[_Message], tm: collections.defaultdict[str, float] | None
    ) -> None:
        """One batch through the stages the module docstring lists, in order."""
        b = _Batch(messages=batch, clock=_Clock(tm), now_utc=datetime.now(UTC))
        with self._lock:
            self._c["frames_in"] += len(batch)
            self._c["batches"] += 1
        self._parse(b)
        self._sequence(b)
        self._analyse(b, tm)
        self._classify(b)
        self._rhythm(b)
        self._alert(b)
        self._isolate(b)
        n_stored = self._store(b)
        if n_stored is None:
            return  # not committed, so not acknowledged: the broker redelivers
        self._acknowledge(b, n_stored)

    # ------------------------------------------------------------------ batch stages
    def _parse(self, b: _Batch) -> None:
        """Stage 1: topic and payload of every message -> ``b.good`` frames or ``b.bad``.

        Messages of blocked devices go to ``b.dropped`` unparsed; the topic's partition must be
        the device's; a device over its frame budget has the message refused (``b.limited``),
        unparsed when its bucket is already short of its last frame's length; the frame's time
        must be within the allowed clock skew.
        """
        now_mono = time.monotonic()
        now_wall = time.time()
        ahead_s, age_s = self.max_clock_ahead_s, self.max_frame_age_s
        blocked = self._blocked
        rate = self.device_rate_factor
        budgets = self._budgets
        now_budget = self._monotonic() if rate is not None else 0.0
        for m in b.messages:
            device_from_topic = None
            try:
                topic = parse_frames_topic(m.topic)
            except ValueError:
                b.bad.append((m, "topic_mismatch", None))
                continue
            device_from_topic = topic.device_id
            if blocked and device_from_topic in blocked:
                if blocked[device_from_topic] > now_mono:
                    b.dropped.append(m)
                    continue
                del blocked[device_from_topic]
            if topic.partition != partition_for(device_from_topic, partitions=self.n_partitions):
                b.bad.append((m, "wrong_partition", device_from_topic))
                continue
            if rate is not None:
                bucket = budgets.get(device_from_topic)
                if (
                    bucket is not None
                    and bucket.refill(now_budget, rate, self.device_burst_s) < bucket.need_s
                ):
                    b.limited.append((m, device_from_topic))  # refused unparsed: cheap
                    continue
            try:
                frame = parse_frame(m.payload, max_bytes=self.max_payload_bytes)
            except FrameRejected as exc:
                b.bad.append((m, exc.reason, device_from_topic))
                continue
            if frame.device_id != device_from_topic:
                b.bad.append((m, "topic_mismatch", device_from_topic))
                continue
            try:
                check_frame_time(frame, now_s=now_wall, max_ahead_s=ahead_s, max_age_s=age_s)
            except FrameRejected as exc:
                b.bad.append((m, exc.reason, device_from_topic))
                continue
            if rate is not None and not self._spend(frame, now_budget, now_wall):
                b.limited.append((m, device_from_topic))
                continue
            b.good.append((m, frame))
        b.clock.lap("parse")

    def _spend(self, frame: Frame, now: float, now_wall: float) -> bool:
        """Charge ``frame``'s length to its device's frame budget; ``False``: over the budget.

        A device seen for the first time gets ``device_initial_burst_s``, or the age of this
        first frame when it is older (a store-and-forward backlog), up to ``device_burst_s``.
        """
        rate = self.device_rate_factor
        assert rate is not None
        length_s = float(frame.duration_s)
        bucket = self._budgets.get(frame.device_id)
        if bucket is None:
            age_s = now_wall - float(frame.start_time_s)
            level = min(self.device_burst_s, max(self.device_initial_burst_s, age_s))
            bucket = self._budgets[frame.device_id] = _Budget(level, now, length_s)
        else:
            bucket.refill(now, rate, self.device_burst_s)
        bucket.need_s = length_s
        if bucket.level_s + 1e-9 < length_s:
            return False
        bucket.level_s -= length_s
        return True

    def _sequence(self, b: _Batch) -> None:
        """Stages 2-3: unknown devices, then duplicate/gap/late tracking per device in seq order."""
        new_ids = {f.device_id for _, f in b.good if f.device_id not in self._known}
        if new_ids:
            self._resolve_devices(new_ids)
        kept: list[tuple[_Message, Frame]] = []
        for m, f in b.good:
            if self._known.get(f.device_id) is None:
                b.bad.append((m, "unknown_device", f.device_id))
            else:
                kept.append((m, f))
        kept.sort(key=lambda mf: (mf[1].device_id, mf[1].seq))
        for m, f in kept:
            obs = self.tracker.observe(f.device_id, f.seq)
            if obs.status is SeqStatus.DUPLICATE:
                b.duplicates.append((m, f))
            else:
                b.to_store.append((m, f, obs.status))
        b.clock.lap("sequencing")

    def _analyse(self, b: _Batch, tm: collections.defaultdict[str, float] | None) -> None:
        """Stage 4a: every new frame through its device's pipeline; quality, VF and vitals.

        Frames are analysed in rounds: round r holds the r-th frame of each patient in this
        batch, so a round has at most one frame per device and patient and its pipelines run
        together (prepare_many: the filters of all its devices in a few 2-D calls). Each
        patient's engine still sees its frames in seq order, and the results are gathered in
        the order of ``b.to_store``, as one frame at a time would give them.
        """
        clock = b.clock
        rounds: list[list[tuple[int, Frame, SeqStatus]]] = []
        seen: collections.Counter[str] = collections.Counter()
        for pos, (_m, f, status) in enumerate(b.to_store):
            r = seen[self._known[f.device_id] or f.device_id]
            seen[self._known[f.device_id] or f.device_id] += 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append((pos, f, status))
        pending_at: dict[int, BeatBatch] = {}
        updates_at: dict[int, list[AlertUpdate]] = {}
        for frames_r in rounds:
            jobs: list[tuple[int, _DeviceState, Frame, np.ndarray]] = []
            for pos, f, status in frames_r:
                st = self._device_state(f)
                if status is SeqStatus.LATE or (
                    st.last_analysed_seq is not None and f.seq <= st.last_analysed_seq
                ):
                    continue  # stored, not analysed (documented in the module docstring)
                try:
                    if status is SeqStatus.GAP or (
                        st.last_analysed_seq is not None and f.seq != st.last_analysed_seq + 1
                    ):
                        with self._lock:
                            self._c["gap_events"] += status is SeqStatus.GAP
                        self._new_segment(st, f)
                    if st.pipeline is None or st.fs != f.fs_hz or st.leads != tuple(f.lead_names):
                        self._new_segment(st, f)
                    assert st.pipeline is not None
                    st.pipeline.stage_times = tm
                    abs_start = st.pipeline.samples_seen
                    st.frames.append(_FrameRef(f.seq, abs_start, f.n_samples, f.start_time_s))
                    st.last_analysed_seq = f.seq
                    b.analysed[st.device_id] = st
                    clock.lap("dispatch")
                    x = f.signal_mv()
                    clock.lap("decode")
                    try:
                        self._rhythm_feed(st, f, x)
                    except Exception as exc:  # the rhythm stage never costs a frame
                        log.warning("device %s: rhythm buffer: %s", st.device_id, exc)
                    if self.rhythm is not None:
                        clock.lap(
                            "rhythm"
                        )  # the window is prepared once its frame's R peaks are known
                except Exception as exc:  # the frame cannot be analysed: quarantined alone
                    self._unprocessable(b, pos, st, f, exc)
                    continue
                jobs.append((pos, st, f, x))
            if not jobs:
                continue
            try:
                results = prepare_many(
                    [st.pipeline for _, st, _, _ in jobs],  # type: ignore[misc]
                    [x for _, _, _, x in jobs],
                )
            except Exception:  # the shared 2-D calls failed: each pipeline on its own
                results = []
                for _pos, st, _f, x in jobs:
                    try:
                        results.extend(prepare_many([st.pipeline], [x]))  # type: ignore[list-item]
                    except Exception as exc:
                        results.append(exc)
            clock.skip()  # timed by the pipelines (detect, clean, quality, beats)
            for (pos, st, f, _x), bb in zip(jobs, results, strict=True):
                if isinstance(bb, Exception):
                    self._unprocessable(b, pos, st, f, bb)
                    continue
                if len(bb):
                    pending_at[pos] = bb
                ups = self._quality_updates(st, f)
                ups.extend(self._vf_updates(st))
                ups.extend(self._vital_updates(st, f))
                updates_at[pos] = ups
            clock.lap("alerts")
            if self.rhythm is not None:
                # the frames' R peaks (found by the beat pipelines' detectors) to the rhythm
                # inputs, then the windows due, in frame order
                for _pos, st, _f, _x in jobs:
                    self._rhythm_window(b, st)
                clock.lap("rhythm")
        for pos, (_m, f, _status) in enumerate(b.to_store):
            if pos in pending_at:
                b.pending.append((self._devices[f.device_id], pending_at[pos]))
            b.updates.extend(updates_at.get(pos, ()))

    def _classify(self, b: _Batch) -> None:
        """Stage 4b: one ONNX call for the batch's beats -> storage rows and engine beats."""
        if not b.pending:
            return
        clock = b.clock
        pending = b.pending
        try:
            probs = self._classify_by_model(pending)
        except Exception:  # one device's beats must not cost the others theirs: one by one
            log.exception("processor %s: classification failed; per device", self.client_id)
            kept_pending, probs = [], []
            for st, bb in pending:
                try:
                    probs.extend(classify_batches(st.beat_model or self.model, [bb]))
                    kept_pending.append((st, bb))
                except Exception as exc:  # the frames are still stored; their beats are lost
                    log.warning("device %s: classification failed: %s", st.device_id, exc)
                    with self._lock:
                        self._c["engine_errors"] += 1
            pending = kept_pending
        # --- patient adaptation (heartline.edge.adapt): adapted probabilities, model version ---
        version_of: dict[int, str | None] = {}  # id(batch) -> version of the model used
        if self.patient_models is not None and pending:
            try:
                probs, versions = apply_batches(
                    self.patient_models,
                    [(st.patient_id, bb) for st, bb in pending],
                    probs,
                    models=[st.beat_model or self.model for st, _ in pending],
                )
                version_of = {id(bb): v for (_, bb), v in zip(pending, versions, strict=True)}
            except Exception:  # the base model's probabilities are kept
                log.exception("processor %s: patient adaptation failed", self.client_id)
        # --- end of patient adaptation ---
        clock.lap("classify")
        # engine beats as (time_s, sample_idx, label, confidence, quality_ok) rows
        for (st, bb), p in zip(pending, probs, strict=True):
            try:
                beats = st.pipeline.complete(bb, p)  # type: ignore[union-attr]
            except Exception as exc:  # the frames are still stored; these beats are lost
                log.warning("device %s: beats could not be completed: %s", st.device_id, exc)
                with self._lock:
                    self._c["engine_errors"] += 1
                continue
            engine_beats = []
            for beat in beats:
                ref = self._locate(st, beat.sample_idx)
                if ref is None:
                    continue
                seq, idx, t_s = ref
                if self.af_gate and beat.label == "S" and self._in_af(st, t_s):
                    beat = _af_gated(beat)
                    with self._lock:
                        self._c["beats_af_gated"] += 1
                b.beat_rows[st.patient_id].append(
                    BeatIn(
                        device_id=st.device_id,
                        seq=seq,
                        sample_idx=idx,
                        time=datetime.fromtimestamp(t_s, tz=UTC),
                        label=beat.label,
                        probabilities=beat.probabilities,
                        confidence=beat.confidence,
                        model_version=version_of.get(id(bb)),
                    )
                )
                engine_beats.append(
                    (
                        t_s,
                        beat.sample_idx,
                        self._engine_label(st, beat.label, artefact=beat.artefact),
                        beat.confidence,
                        beat.quality_ok,
                    )
                )
                if not beat.quality_ok:
                    self._c["beats_low_quality"] += 1
            # device clocks may step back: the engine wants time order (it drops repeats)
            engine_beats.sort(key=lambda row: row[0])
            _, merged = b.engine_beats_of.setdefault(st.device_id, (st, []))
            # frames in seq order: as separate engine calls would, drop the beats of a later
            # frame that are not after the last beat kept (the engine counts them)
            last = merged[-1][0] if merged else -math.inf
            kept = [row for row in engine_beats if row[0] > last]
            if len(kept) < len(engine_beats):
                self._engine_for(st.patient_id).dropped_beats += len(engine_beats) - len(kept)
            merged.extend(kept)
        clock.lap("results")

    def _alert(self, b: _Batch) -> None:
        """Stage 4c: one rules evaluation per device and batch (beats, or pending spans)."""
        clock = b.clock
        if b.pending:
            # one engine call (one rules evaluation) per device and batch, all its frames' beats
            for st, engine_beats in b.engine_beats_of.values():
                if engine_beats:
                    b.updates.extend(self._engine_call(st, "add_beats", _beat_series(engine_beats)))
                    st.rules_pending = False
            clock.lap("alerts")
        clock.lap("results")
        # quality and VF spans were recorded without running the rules: run them now for the
        # devices that got no beats in this batch (one rules evaluation per device and batch)
        for st in b.analysed.values():
            if st.rules_pending:
                st.rules_pending = False
                eng = self._engines.get(st.patient_id)
                if eng is not None and math.isfinite(eng.now_s):
                    b.updates.extend(self._engine_call(st, "advance", eng.now_s))
        clock.lap("alerts")

    def _store(self, b: _Batch) -> int | None:
        """Stage 5: one transaction, retried (everything in it is idempotent).

        Returns the number of frames newly stored, or None when nothing was committed.
        """
        n_stored = 0
        for attempt in range(5):
            try:
                n_stored = self._write(
                    b.to_store, b.bad, b.beat_rows, b.updates, b.now_utc, b.flags
                )
                break
            except _TRANSIENT_DB_ERRORS as exc:
                self._c["db_errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "processor %s: commit failed (%s); retry %d", self.client_id, exc, attempt + 1
                )
                if self._stop.is_set():
                    return None  # nothing acknowledged: the broker redelivers after a restart
                time.sleep(min(2.0, 0.2 * 2**attempt))
        else:
            log.error(
                "processor %s: giving up on a batch of %d (not acknowledged)",
                self.client_id,
                len(b.messages),
            )
            self._forget_sequences()
            return None
        b.clock.lap("storage")
        return n_stored

    def _acknowledge(self, b: _Batch, n_stored: int) -> None:
        """Stage 6, after the commit: MQTT PUBACKs, storage acknowledgements, counters."""
        stored_seqs: dict[str, list[int]] = collections.defaultdict(list)
        for _m, f, _s in b.to_store:
            stored_seqs[f.device_id].append(f.seq)
        for _m, f in b.duplicates:
            stored_seqs[f.device_id].append(f.seq)
        b.clock.lap("storage")
        done = time.monotonic()
        wall = time.time()
        for m in b.messages:
            if m.qos > 0:
                try:
                    self._clients[m.client].ack(m.mid, m.qos)
                except Exception:  # disconnected: the broker redelivers, storage dedups
                    pass
        for device_id, seqs in stored_seqs.items():
            pending = self._pending_acks.get(device_id)
            if pending is None:
                self._pending_acks[device_id] = list(seqs)
                self._ack_due[device_id] = done + self.ack_interval_s
            else:
                pending.extend(seqs)
        self._send_acks(done)
        for _m, f, _s in b.to_store:
            patient_id = self._known.get(f.device_id)
            if patient_id is not None:
                self._last_data[patient_id] = (done, wall)
        n_beats = sum(len(v) for v in b.beat_rows.values())
        with self._lock:
            self._c["frames_stored"] += n_stored
            self._c["frames_duplicate"] += len(b.duplicates) + (len(b.to_store) - n_stored)
            self._c["frames_late"] += sum(s is SeqStatus.LATE for _, _, s in b.to_store)
            self._c["beats"] += n_beats
            self._c["alert_updates"] += len(b.updates)
            self._c["alerts_opened"] += sum(u.change == "opened" for u in b.updates)
            for _m, reason, _d in b.bad:
                self._quarantined[reason] += 1
            if b.dropped or b.limited:
                self._quarantined["rate_limited"] += len(b.dropped) + len(b.limited)
            self._c["devices_flagged"] += len(b.flags)
            for m, f, _s in b.to_store:
                self._latency.append(done - m.received)
                self._e2e.append(wall - (f.start_time_s + f.duration_s))
            for m, _f in b.duplicates:
                self._latency.append(done - m.received)
        self._notify(b.updates)
        b.clock.lap("acks")

    def _send_acks(self, now: float | None) -> None:
        """Publish the storage acknowledgements due at ``now`` (``None``: all pending ones)."""
        if not self._pending_acks:
            return
        # insertion order is due order (each due time is its commit time + ack_interval_s), so
        # the scan stops at the first device not yet due instead of visiting every pending one
        due = []
        for d, t in self._ack_due.items():
            if now is not None and t > now:
                break
            due.append(d)
        for device_id in due:
            seqs = self._pending_acks.pop(device_id)
            del self._ack_due[device_id]
            ack = StorageAck(device_id, tuple(seq_ranges(seqs)))
            try:
                self._client.publish(acks_topic(device_id), ack.to_json(), qos=1)
            except Exception:  # the device times out and replays; storage finds them stored
                log.warning("processor %s: could not acknowledge %s", self.client_id, device_id)
        with self._lock:
            self._c["storage_acks"] += len(due)

    def _notify(self, updates: list[AlertUpdate]) -> None:
        """Hand committed alert updates to ``on_alert`` (a failing callback is logged)."""
        if self.on_alert is None:
            return
        for u in updates:
            try:
                self.on_alert(u)
            except Exception:
                log.exception("on_alert callback failed")

    # ------------------------------------------------------------------ helpers
    def _forget_sequences(self) -> None:
        """After a batch that was not committed: the tracker saw frames that are not stored, so
        it must not call their redeliveries duplicates (a fresh tracker answers LATE, and storage
        decides)."""
        self.tracker = SequenceTracker()

    def _resolve_devices(self, device_ids: set[str]) -> None:
        from heartline.storage.repository import register_device, register_patient

        with self._factory() as s, s.begin():
            for d in sorted(device_ids):
                dev = s.get(Device, d)
                if dev is not None and dev.patient_id is not None:
                    self._known[d] = dev.patient_id
                elif self.unknown_devices == "register":
                    pid = dev.patient_id if dev is not None and dev.patient_id else f"p-{d}"
                    register_patient(s, patient_id=pid)
                    register_device(s, device_id=d, patient_id=pid)
                    self._known[d] = pid
                    log.info("auto-registered device %s for patient %s", d, pid)
                else:
                    self._known[d] = None
        # an unknown device is looked up again later (it may be registered meanwhile)
        for d in device_ids:
            if self._known.get(d) is None:
                self._known.pop(d, None)

    def _unprocessable(
        self, b: _Batch, pos: int, st: _DeviceState, f: Frame, exc: BaseException
    ) -> None:
        """A frame whose analysis failed: quarantined (not stored), its device starts afresh."""
        log.warning(
            "device %s seq %d: cannot be analysed (%s); quarantined", f.device_id, f.seq, exc
        )
        b.failed.add(pos)
        st.pipeline = None  # the next frame starts a new segment
        st.fs, st.leads = 0.0, ()
        st.frames.clear()

    # ------------------------------------------------------------------ isolation
    def _isolate(self, b: _Batch) -> None:
        """Before the commit: failed frames to quarantine, refusals counted against devices."""
        if b.failed:
            for pos in sorted(b.failed):
                m, f, _s = b.to_store[pos]
                b.bad.append((m, "unprocessable", f.device_id))
            b.to_store = [x for i, x in enumerate(b.to_store) if i not in b.failed]
            b.failed = set()
        if not (b.bad or b.limited):
            return
        now = time.monotonic()
        refusals = [(reason, device_id) for _m, reason, device_id in b.bad]
        refusals.extend(("rate_limited", device_id) for _m, device_id in b.limited)
        for reason, device_id in refusals:
            if device_id is None:
                continue
            strikes = self._strikes.get(device_id)
            if strikes is None:
                strikes = self._strikes[device_id] = collections.deque(
                    maxlen=self.device_strike_limit
                )
                self._strike_reasons[device_id] = collections.Counter()
            strikes.append(now)
            reasons = self._strike_reasons[device_id]
            if len(reasons) < 32:  # bounded: reason names come from a fixed set anyway
                reasons[reason] += 1
            if (
                len(strikes) == self.device_strike_limit
                and now - strikes[0] <= self.device_strike_window_s
                and device_id not in self._blocked
            ):
                self._blocked[device_id] = now + self.device_backoff_s
                strikes.clear()
                log.warning(
                    "processor %s: device %s sent %d refused frames within %.0f s (%s);"
                    " blocked for %.0f s",
                    self.client_id,
                    device_id,
                    self.device_strike_limit,
                    self.device_strike_window_s,
                    dict(reasons),
                    self.device_backoff_s,
                )
                patient_id = self._known.get(device_id) or self._patient_of(device_id)
                if device_id not in self._flagged and patient_id is not None:
                    self._flagged.add(device_id)
                    b.flags.append((device_id, patient_id, dict(reasons)))

    def _patient_of(self, device_id: str) -> str | None:
        """The registered patient of ``device_id`` (a lookup; nothing is registered)."""
        try:
            with self._factory() as s:
                dev = s.get(Device, device_id)
                return dev.patient_id if dev is not None else None
        except Exception:
            log.exception("processor %s: cannot look device %s up", self.client_id, device_id)
            return None

    def _quarantine_messages(
        self, msgs: list[_Message], reason: str, device_id: str | None
    ) -> None:
        """Quarantine and acknowledge ``msgs`` (not acknowledged when the write fails)."""
        now_utc = datetime.now(UTC)
        try:
            with self._factory() as s, s.begin():
                for m in msgs:
                    quarantine(
                        s,
                        payload=m.payload[: self.max_payload_bytes],
                        reason=reason,
                        topic=m.topic,
                        device_id=device_id,
                        received_at=now_utc,
                    )
        except Exception:  # the database is down: not acknowledged, the broker redelivers
            log.exception(
                "processor %s: could not quarantine %d message(s)", self.client_id, len(msgs)
            )
            return
        for m in msgs:
            if m.qos > 0:
                with contextlib.suppress(Exception):
                    self._clients[m.client].ack(m.mid, m.qos)
        with self._lock:
            self._quarantined[reason] += len(msgs)

    # ------------------------------------------------------------------ no data
    def _housekeeping_interval_s(self) -> float:
        if self.no_data_alert_s is None:
            return 5.0
        return max(0.05, min(1.0, self.no_data_alert_s / 4))

    def _check_no_data(self, now: float) -> None:
        """Open ``no_data`` alerts for silent patients, close those whose data came back.

        Also forgets expired device blocks, old strikes and the frame budgets of devices that
        have been silent long enough to have a full bucket again (keeps the maps bounded).
        """
        for d in [d for d, until in self._blocked.items() if until <= now]:
            del self._blocked[d]
        if self.device_rate_factor is not None and self._budgets:
            full_after = self.device_burst_s / self.device_rate_factor
            t = self._monotonic()
            for d in [d for d, bk in self._budgets.items() if t - bk.at > full_after]:
                del self._budgets[d]
        old = now - self.device_strike_window_s
        for d in [d for d, q in self._strikes.items() if not q or q[-1] < old]:
            del self._strikes[d]
            self._strike_reasons.pop(d, None)
        if self.no_data_alert_s is None:
            return
        limit = self.no_data_alert_s
        wall_now = time.time()
        to_open: list[tuple[str, float]] = []
        to_close: list[tuple[str, int, float]] = []
        fresh = [p for p in self._last_data if p not in self._no_data_seen]
        for patient_id, (t_mono, t_wall) in self._last_data.items():
            row = self._no_data_open.get(patient_id)
            if now - t_mono >= limit:
                if row is None:
                    to_open.append((patient_id, t_wall))
            elif row is not None:
                to_close.append((patient_id, row, t_wall))
        if not (to_open or to_close or fresh):
            return
        opened: dict[str, int] = {}
        with self._factory() as s, s.begin():
            if fresh:  # alerts a previous processor left open for patients sending again
                for a in s.scalars(
                    select(Alert).where(
                        Alert.patient_id.in_(fresh),
                        Alert.type == NO_DATA_ALERT,
                        Alert.end_time.is_(None),
                    )
                ):
                    if a.patient_id not in self._no_data_open:
                        a.end_time = max(datetime.now(UTC), a.start_time)
            for patient_id, t_wall in to_open:
                start = datetime.fromtimestamp(t_wall, tz=UTC)
                row = add_alert(
                    s,
                    patient_id=patient_id,
                    type=NO_DATA_ALERT,
                    severity="high",
                    start=start,
                    end=None,
                    evidence={
                        "kind": NO_DATA_ALERT,
                        "category": "technical",
                        "severity": "high",
                        "message": f"no data for {limit:g} s (last frame received {start.isoformat()})",
                        "no_data_alert_s": limit,
                        "last_data_at": start.isoformat(),
                    },
                    device_id=self._patient_device(patient_id),
                )
                opened[patient_id] = row.id
            for _patient_id, row_id, t_wall in to_close:
                a = s.get(Alert, row_id)
                if a is not None and a.end_time is None:
                    a.end_time = max(
                        datetime.fromtimestamp(min(t_wall, wall_now), tz=UTC), a.start_time
                    )
        self._no_data_seen.update(fresh)
        self._no_data_open.update(opened)
        for patient_id, _row, _t in to_close:
            self._no_data_open.pop(patient_id, None)
        if opened:
            log.warning("no data for %g s from patient(s) %s", limit, sorted(opened))
            with self._lock:
                self._c["no_data_alerts"] += len(opened)

    def _device_state(self, f: Frame) -> _DeviceState:
        st = self._devices.get(f.device_id)
        if st is None:
            st = _DeviceState(device_id=f.device_id, patient_id=str(self._known[f.device_id]))
            self._devices[f.device_id] = st
        return st

    def _new_segment(self, st: _DeviceState, f: Frame) -> None:
        model = self._beat_model_for(tuple(f.lead_names))
        opts = {"artefact_model": self.artefact_model, **self.pipeline_options}
        st.pipeline = BeatPipeline(fs=f.fs_hz, lead_names=f.lead_names, model=model, **opts)
        st.beat_model = model
        st.fs, st.leads = f.fs_hz, tuple(f.lead_names)
        st.frames.clear()
        st.segment += 1
        st.segment_beats = 0
        st.rhythm_stream = None
        st.rhythm_end_s = math.nan
        st.rhythm_due_s = math.nan
        st.rhythm_seg_start_s = math.nan
        st.rhythm_verdicts.clear()

    # ------------------------------------------------------------------ models per device
    def _setup_models(self, beat_models: Any, rhythm_model: Any) -> None:
        """Beat models by lead count and the rhythm model (see the class docstring)."""
        path = getattr(self.model, "path", None)
        shipped = path is not None and Path(path).resolve().parent == ASSETS_DIR.resolve()
        n_main = int(getattr(self.model, "n_leads", 0) or 0)
        models: dict[int, Any] = {n_main: self.model}
        specs: dict[int, BeatModelSpec] = {}
        if isinstance(beat_models, str):
            if beat_models != "auto":
                raise ValueError(
                    f"beat_models must be 'auto', a mapping or None, got {beat_models!r}"
                )
            if shipped:
                from heartline.edge.runtime import OnnxBeatClassifier

                for spec in beat_model_specs():
                    if spec.installed and spec.n_leads not in models:
                        models[spec.n_leads] = OnnxBeatClassifier(spec.onnx_path)
        elif beat_models is not None:
            for n, m in dict(beat_models).items():
                models[int(n)] = m
        for n, m in models.items():
            p = getattr(m, "path", None)
            try:
                specs[n] = spec_for_onnx(p, n) if p is not None else None  # type: ignore[assignment]
            except (LeadMismatchError, FileNotFoundError):
                pass
        self._beat_models = models
        self._beat_specs = {n: sp for n, sp in specs.items() if sp is not None}
        self._model_of_spec = {id(sp): models[n] for n, sp in self._beat_specs.items()}
        if isinstance(rhythm_model, str) and rhythm_model == "auto":
            rhythm_model = "shipped" if shipped else None
        if isinstance(rhythm_model, (str, Path)):
            from heartline.edge.rhythm import OnnxRhythmClassifier

            rhythm_model = OnnxRhythmClassifier(None if rhythm_model == "shipped" else rhythm_model)
        self.rhythm = rhythm_model

    def _beat_model_for(self, leads: tuple[str, ...]) -> Any:
        """The beat model for a device with ``leads``: ``select_beat_model`` among the models
        this processor has, else the one with the most leads the device can feed (the
        processor's own ``model`` when none fits: its pipeline then refuses the frame)."""
        if len(self._beat_models) == 1:
            return self.model
        if len(self._beat_specs) == len(self._beat_models):
            try:
                choice = select_beat_model(
                    leads, specs=list(self._beat_specs.values()), source="device"
                )
                return self._model_of_spec[id(choice.spec)]
            except (LeadMismatchError, KeyError, FileNotFoundError):
                pass
        fits = [n for n in self._beat_models if n <= len(leads)]
        return self._beat_models[max(fits)] if fits else self.model

    def _classify_by_model(self, pending: list[tuple[_DeviceState, BeatBatch]]) -> list[np.ndarray]:
        """Beat probabilities of ``pending``, in order: one ONNX call per beat model."""
        groups: dict[int, list[int]] = {}
        models: dict[int, Any] = {}
        for i, (st, _bb) in enumerate(pending):
            m = st.beat_model or self.model
            groups.setdefault(id(m), []).append(i)
            models[id(m)] = m
        out: list[np.ndarray] = [np.zeros(0)] * len(pending)
        for key, idx in groups.items():
            probs = classify_batches(models[key], [pending[i][1] for i in idx])
            for i, p in zip(idx, probs, strict=True):
                out[i] = p
        return out

    def _engine_label(self, st: _DeviceState, label: str, *, artefact: bool = False) -> str:
        """The beat label the alarm rules see: ``Q`` for a ``V`` among a segment's first
        ``startup_beats`` beats (start-up artefacts) or one the beat artefact model calls an
        artefact (:data:`BEAT_ARTEFACT`); the stored beat keeps its label."""
        st.segment_beats += 1
        if label == "V" and (artefact or st.segment_beats <= self.startup_beats):
            return "Q"
        return label

    # ------------------------------------------------------------------ rhythm stage
    def _rhythm_feed(self, st: _DeviceState, f: Frame, x: np.ndarray) -> None:
        """Keep the device's last ``rhythm_window_s`` of one lead; note whether a window is due.

        Windows are due every ``rhythm_interval_s`` of device time, so they do not depend on
        how frames were batched (live and replay give the same windows). The due window is
        prepared by :meth:`_rhythm_window`, once the beat pipeline has run on the frame: the
        rhythm input takes the R peaks of the pipeline's detector (the same
        :class:`~heartline.signal.rpeaks.StreamingRPeakDetector`, rate and settings, on the
        same lead) once they agree with its own detector's, instead of detecting the lead a
        second time.
        """
        st.rhythm_due = False
        if self.rhythm is None or st.pipeline is None:
            return
        col = st.pipeline.columns[0]
        lead = x[:, col] if x.ndim == 2 else x
        # the segment's first quality_warmup_s (electrode and filter settling) are left out of
        # the rhythm windows, as they are out of the quality verdicts (_quality_updates)
        seen = st.pipeline.samples_seen  # samples of this segment before this frame
        warm = round(self.quality_warmup_s * st.fs)
        if seen < warm:
            lead = lead[warm - seen :]
            if lead.size == 0:
                return
        if st.rhythm_stream is None:
            from heartline.edge.rhythm import RhythmStream

            st.rhythm_stream = RhythmStream(
                self.rhythm,
                fs=st.fs,
                window_s=self.rhythm_window_s,
                handover=not self.rhythm_own_detector,
            )
            st.rhythm_offset = max(seen, warm)  # the stream's sample 0 in pipeline samples
        st.rhythm_stream.push(lead)
        st.rhythm_end_s = f.start_time_s + f.n_samples / st.fs
        seg_s = st.pipeline.samples_seen / st.fs + f.n_samples / st.fs  # after this frame
        if math.isnan(st.rhythm_due_s):
            # due every rhythm_interval_s from the segment start, the first once the window
            # holds rhythm_min_s after the warm-up
            st.rhythm_seg_start_s = st.rhythm_end_s - seg_s
            first = warm / st.fs + self.rhythm_min_s
            k = math.ceil(first / self.rhythm_interval_s - 1e-9)
            st.rhythm_due_s = st.rhythm_seg_start_s + k * self.rhythm_interval_s
        st.rhythm_due = st.rhythm_end_s + 1e-9 >= st.rhythm_due_s

    def _rhythm_window(self, b: _Batch, st: _DeviceState) -> None:
        """After the frame of :meth:`_rhythm_feed` went through the beat pipeline: its R peaks
        to the rhythm input, then the window if one is due (queued for :meth:`_rhythm`)."""
        stream = st.rhythm_stream
        if stream is None or st.pipeline is None:
            return
        try:
            peaks = st.pipeline.new_peaks
            if peaks.size and not self.rhythm_own_detector:
                stream.add_peaks(peaks - st.rhythm_offset)
        except Exception as exc:  # the rhythm stage never costs a frame
            log.warning("device %s: rhythm peaks: %s", st.device_id, exc)
        if st.rhythm_due:
            st.rhythm_due = False
            warm = round(self.quality_warmup_s * st.fs)
            n = min(stream.n_samples, stream.window_n)
            t0 = st.rhythm_end_s - n / st.fs
            if t0 - (warm + 1) / st.fs <= st.rhythm_seg_start_s:
                # the window holds the whole segment but its settling seconds: its verdict is
                # the segment's since its start (the span the engine sees)
                t0 = st.rhythm_seg_start_s
            try:  # prepared now: the stream moves on with the batch's next frames
                prepared = stream.window()
            except Exception as exc:  # never fatal: this window is unusable
                log.warning("device %s: rhythm window failed: %s", st.device_id, exc)
                prepared = str(exc)
            b.rhythm_jobs.append((st, prepared, st.fs, t0, st.rhythm_end_s))
            while st.rhythm_due_s <= st.rhythm_end_s + 1e-9:
                st.rhythm_due_s += self.rhythm_interval_s

    def _rhythm(self, b: _Batch) -> None:
        """Stage 4b': the batch's due rhythm windows in one ONNX call -> the patients' engines.

        The windows were prepared incrementally as their frames arrived
        (:class:`~heartline.edge.rhythm.RhythmStream`, in :meth:`_rhythm_window`). A window the
        model cannot use (flat, clipped, no beats) is given as ``~``.
        """
        if not b.rhythm_jobs or self.rhythm is None:
            return
        prepared: list[Any] = [p for _st, p, _fs, _t0, _t1 in b.rhythm_jobs]
        ok = [p for p in prepared if not isinstance(p, str)]
        probs: list[np.ndarray] = []
        if ok:
            xs = np.concatenate([p[0] for p in ok])
            ms = np.concatenate([p[1] for p in ok])
            rr = np.concatenate([p[2] for p in ok])
            out = self.rhythm.predict_windows(xs, ms, rr)
            start = 0
            for p in ok:
                k = p[0].shape[0]
                probs.append(out[start : start + k].mean(axis=0))
                start += k
        it = iter(probs)
        classes = ("N", "A", "O", "~")
        with self._lock:
            self._c["rhythm_windows"] += len(b.rhythm_jobs)
        for (st, _sig, _fs, t0, t1), p in zip(b.rhythm_jobs, prepared, strict=True):
            if isinstance(p, str):
                label, pr = "~", {"~": 1.0}
            else:
                v = next(it)
                label = classes[int(np.argmax(v))]
                pr = {c: float(x) for c, x in zip(classes, v, strict=True)}
            with self._lock:
                self._c[f"rhythm_{'noisy' if label == '~' else label}"] += 1
            st.rhythm_verdicts.append((t1, label))
            b.updates.extend(
                self._engine_call(
                    st, "add_rhythm", t0, t1, label=label, probabilities=pr, evaluate=False
                )
            )
            st.rules_pending = True
        b.clock.lap("rhythm")

    def _in_af(self, st: _DeviceState, t_s: float) -> bool:
        """The device's latest rhythm verdict ending at or before ``t_s`` (and at most
        ``rhythm_window_s`` before it) is ``A``."""
        for t1, label in reversed(st.rhythm_verdicts):
            if t1 <= t_s:
                return label == "A" and t_s - t1 <= self.rhythm_window_s
        return False

    @staticmethod
    def _locate(st: _DeviceState, abs_idx: int) -> tuple[int, int, float] | None:
        for ref in reversed(st.frames):
            if ref.abs_start <= abs_idx < ref.abs_start + ref.n:
                idx = abs_idx - ref.abs_start
                return ref.seq, idx, ref.start_time_s + idx / st.fs
        return None

    def _engine_call(
        self, st: _DeviceState, method: str, *args: Any, **kwargs: Any
    ) -> list[AlertUpdate]:
        """Call the patient's alert engine; a failure is logged and counted, never fatal."""
        try:
            return getattr(self._engine_for(st.patient_id), method)(*args, **kwargs)
        except Exception as exc:
            with self._lock:
                self._c["engine_errors"] += 1
            log.warning("alert engine of %s: %s failed: %s", st.patient_id, method, exc)
            return []

    def _engine_for(self, patient_id: str) -> AlertEngine:
        eng = self._engines.get(patient_id)
        if eng is None:
            eng = self._engines[patient_id] = AlertEngine(patient_id, config=self.engine_config)
        return eng

    def _quality_updates(self, st: _DeviceState, f: Frame) -> list[AlertUpdate]:
        assert st.pipeline is not None
        out: list[AlertUpdate] = []
        warmup = round(self.quality_warmup_s * st.fs)
        for wq in st.pipeline.drain_quality():
            if wq.usable or wq.stop_idx <= warmup:
                continue  # usable, or within the filters' start-up transient
            t0 = self._abs_time(st, wq.start_idx)
            t1 = self._abs_time(st, wq.stop_idx)
            if t0 is not None and t1 is not None and t1 >= t0:
                # the rules run once per device and batch, after its beats (see _handle_batch)
                out.extend(self._engine_call(st, "add_quality", t0, t1, ok=False, evaluate=False))
                st.rules_pending = True
        return out

    def _vf_updates(self, st: _DeviceState) -> list[AlertUpdate]:
        """VF episodes from the detector -> the engine's critical ``vf`` alarm (no beats in VF)."""
        assert st.pipeline is not None
        out: list[AlertUpdate] = []
        for start_idx, stop_idx in st.pipeline.drain_vf():
            t0 = self._abs_time(st, start_idx)
            t1 = None if stop_idx is None else self._abs_time(st, stop_idx)
            if t0 is None or (stop_idx is not None and (t1 is None or t1 < t0)):
                continue
            out.extend(self._engine_call(st, "add_vf", t0, t1, evaluate=False))
            st.rules_pending = True
        return out

    def _abs_time(self, st: _DeviceState, abs_idx: int) -> float | None:
        for ref in reversed(st.frames):
            if ref.abs_start <= abs_idx <= ref.abs_start + ref.n:
                return ref.start_time_s + (abs_idx - ref.abs_start) / st.fs
        if st.frames:  # before the frames still remembered: extrapolate from the oldest
            ref = st.frames[0]
            return ref.start_time_s + (abs_idx - ref.abs_start) / st.fs
        return None

    def _vital_updates(self, st: _DeviceState, f: Frame) -> list[AlertUpdate]:
        out: list[AlertUpdate] = []
        for v in f.vitals:
            out.extend(
                self._engine_call(
                    st,
                    "add_vitals",
                    time_s=v.time_s,
                    heart_rate_bpm=v.hr_bpm,
                    spo2_pct=v.spo2_pct,
                    temperature_c=v.temp_c,
                    systolic_bp_mmhg=v.sbp_mmhg,
                )
            )
        return out

    def _write(
        self,
        to_store: list[tuple[_Message, Frame, SeqStatus]],
        bad: list[tuple[_Message, str, str | None]],
        beat_rows: dict[str, list[BeatIn]],
        updates: list[AlertUpdate],
        now_utc: datetime,
        flags: Sequence[tuple[str, str, dict[str, int]]] = (),
    ) -> int:
        """One transaction: frames, quarantine, beats, alerts (bulk statements)."""
        new_rows: dict[str, int] = {}  # engine alert id -> alerts.id inserted in this transaction
        with self._factory() as s, s.begin():
            stored = store_frames(
                s,
                frames=[f for _m, f, _st in to_store],
                received_at=now_utc,
                payload_bytes=[len(m.payload) for m, _f, _st in to_store],
                patients={d: p for d, p in self._known.items() if p is not None},
            )
            for m, reason, device_id in bad:
                quarantine(
                    s,
                    payload=m.payload[: self.max_payload_bytes],  # an oversized one, truncated
                    reason=reason,
                    topic=m.topic,
                    device_id=device_id,
                    received_at=now_utc,
                )
            add_beats_by_patient(s, beats=beat_rows)  # one statement for every patient
            self._write_alerts(s, updates, new_rows)
            for device_id, patient_id, reasons in flags:
                add_alert(
                    s,
                    patient_id=patient_id,
                    type=DEVICE_FAULTY_ALERT,
                    severity="warning",
                    start=now_utc,
                    end=None,
                    evidence={
                        "kind": DEVICE_FAULTY_ALERT,
                        "category": "technical",
                        "severity": "warning",
                        "message": (
                            f"device {device_id} sent {self.device_strike_limit} refused frames"
                            f" within {self.device_strike_window_s:g} s; its frames are dropped"
                            f" for {self.device_backoff_s:g} s at a time"
                        ),
                        "reasons": reasons,
                    },
                    device_id=device_id,
                )
        # only now (committed) may the new rows' ids be reused by later batches
        self._alert_rows.update(new_rows)
        return len(stored)

    def _write_alerts(
        self, s: Session, updates: list[AlertUpdate], new_rows: dict[str, int]
    ) -> None:
        """Insert alerts the database has not seen, update the others to their latest revision.

        Several updates of one alert within a batch collapse into its last state (the stored row
        holds the alert's current state; its history is the engine's revision count).
        """
        latest: dict[str, AlertUpdate] = {}
        for u in updates:
            latest.pop(u.event.id, None)
            latest[u.event.id] = u  # re-inserted: dict order = order of the last update
        changes: list[dict[str, Any]] = []
        for alert_id, u in latest.items():
            ev = u.event
            evidence = {
                "alert_id": ev.id,
                "kind": ev.kind,
                "category": ev.category,
                "severity": ev.severity.value,
                "message": ev.message,
                "revision": ev.revision,
                **ev.to_dict()["evidence"],
            }
            end = datetime.fromtimestamp(ev.end_s, tz=UTC) if ev.end_s is not None else None
            row_id = self._alert_rows.get(alert_id)
            if row_id is None:
                device_id = self._patient_device(ev.patient_id)
                row = add_alert(
                    s,
                    patient_id=ev.patient_id,
                    type=ev.kind,
                    severity=alert_severity(ev.severity.value),
                    start=datetime.fromtimestamp(ev.start_s, tz=UTC),
                    end=end,
                    evidence=evidence,
                    device_id=device_id,
                )
                new_rows[alert_id] = row.id
            else:
                changes.append(
                    {
                        "id": row_id,
                        "severity": alert_severity(ev.severity.value),
                        "end": end,
                        "evidence": evidence,
                    }
                )
        update_alerts(s, changes=changes)

    def _patient_device(self, patient_id: str) -> str | None:
        return next(
            (st.device_id for st in self._devices.values() if st.patient_id == patient_id), None
        )


def _beat_series(rows: list[_EngineRow]) -> BeatSeries:
    """The engine's input built from columns (no per-beat objects; the series validates)."""
    t, idx, label, conf, ok = zip(*rows, strict=True)
    return BeatSeries(
        time_s=np.array(t, dtype=np.float64),
        label=np.array(label, dtype="<U1") if all(len(x) == 1 for x in label) else np.array(label),
        beat_id=np.arange(len(rows), dtype=np.int64),
        sample_idx=np.array(idx, dtype=np.int64),
        confidence=np.array(conf, dtype=np.float64),
        quality_ok=np.array(ok, dtype=bool),
    )


def new_client_suffix() -> str:
    """A short random suffix (tests use it to keep client ids apart on a shared broker)."""
    return uuid.uuid4().hex[:8]
