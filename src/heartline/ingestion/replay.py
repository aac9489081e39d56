"""Replay recorded ECG through the stream processor's own code path, without broker or database.

:class:`ReplayProcessor` is a :class:`~heartline.ingestion.processor.StreamProcessor` whose
batches come from a recording instead of MQTT and whose storage and acknowledgement stages keep
the alerts in memory. Everything in between is the processor's code, unchanged: the frames are
encoded as the device would send them (:meth:`~heartline.ingestion.payloads.Frame.from_counts`,
wire JSON) and go through parsing, sequencing, the per-device beat pipeline (detector, quality,
beat model chosen from the leads), the rhythm model, and the patient's alert engine. So the
alarms of ``heartline alarms`` are those the live system raises for the same frames
(``tests/ingestion/test_replay.py`` holds a real :class:`StreamProcessor` to that).

Frames are handed over one device-second at a time (``frame_s``) in batches of
``frames_per_batch``; the processor's results do not depend on batching (rhythm windows are due
by device time, the engine sees beats in time order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartline.alerts.engine import AlertEvent, AlertUpdate
from heartline.ingestion.broker import BrokerAddress
from heartline.ingestion.payloads import Frame
from heartline.ingestion.processor import StreamProcessor, _Batch, _Message
from heartline.ingestion.topics import frames_topic

__all__ = [
    "REPLAY_ADC",
    "AlarmRow",
    "ReplayProcessor",
    "alarm_rows",
    "record_frames",
    "replay_signal",
]

log = logging.getLogger(__name__)

#: ADC of replayed frames: 15 bits, 1000 counts/mV (1 µV steps), baseline mid-scale (±16 mV).
REPLAY_ADC: dict[str, Any] = {"adc_bits": 15, "adc_gain_per_mv": 1000.0, "adc_baseline": 16384}
#: Start of the replayed device clock (Unix seconds; alarm times are reported from 0).
REPLAY_T0_S = 1_700_000_000.0
_PARTITIONS = 1


@dataclass(frozen=True)
class AlarmRow:
    """One alarm of a replayed record (a row of ``heartline alarms``).

    Attributes
    ----------
    record : str
    start_s, end_s : float
        Seconds from the start of the record (``end_s``: last evidence when still open).
    type : str
        Alert kind (``af_like``, ``vt``, ``signal_quality``, ``no_data``...).
    severity : str
    technical : bool
        True for technical notices (signal quality, no data), False for physiological alarms.
    """

    record: str
    start_s: float
    end_s: float
    type: str
    severity: str
    technical: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "type": self.type,
            "severity": self.severity,
            "technical": self.technical,
        }


def record_frames(
    signal_mv: np.ndarray,
    *,
    fs: float,
    lead_names: Sequence[str],
    device_id: str,
    start_time_s: float = REPLAY_T0_S,
    frame_s: float = 1.0,
) -> Iterator[Frame]:
    """Cut a recording ``(n_samples, n_leads)`` in mV into device frames (ADC counts, v2).

    NaN samples become the baseline (0 mV; a device sends a number for every sample); values
    beyond the ADC's ±16 mV range are clipped, as the ADC would.
    """
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != len(lead_names):
        raise ValueError(
            f"signal_mv must be (n_samples, {len(lead_names)}) for leads {list(lead_names)},"
            f" got {x.shape}"
        )
    gain, base, bits = (
        REPLAY_ADC["adc_gain_per_mv"],
        REPLAY_ADC["adc_baseline"],
        REPLAY_ADC["adc_bits"],
    )
    counts = np.nan_to_num(x, nan=0.0) * gain + base
    counts = np.clip(np.rint(counts), 0, 2**bits - 1).astype(np.int64)
    step = max(1, round(frame_s * fs))
    for seq, a in enumerate(range(0, counts.shape[0], step)):
        chunk = counts[a : a + step]
        yield Frame.from_counts(
            chunk,
            device_id=device_id,
            seq=seq,
            start_time_s=start_time_s + a / fs,
            fs_hz=fs,
            lead_names=list(lead_names),
            adc_bits=bits,
            adc_gain=[gain] * len(lead_names),
            adc_baseline=[base] * len(lead_names),
            version=2,
        )


class ReplayProcessor(StreamProcessor):
    """A stream processor fed by :meth:`feed` instead of MQTT, keeping alerts in memory.

    Only the storage and acknowledgement stages differ (nothing to store, nobody to
    acknowledge); every other stage is :class:`StreamProcessor`'s own. Unknown devices are
    registered to a patient ``p-<device_id>``. Keywords are :class:`StreamProcessor`'s.
    """

    def __init__(self, *, model: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_clock_ahead_s", None)
        kwargs.setdefault("device_rate_factor", None)  # a recording replays faster than real time
        super().__init__(
            address=BrokerAddress("127.0.0.1", 1),  # never connected
            model=model,
            partitions=range(_PARTITIONS),
            n_partitions=_PARTITIONS,
            session_factory=_no_database,  # type: ignore[arg-type]
            unknown_devices="register",
            **kwargs,
        )
        self._clients = []
        #: every alert update the engines reported, in order
        self.updates: list[AlertUpdate] = []
        self._mid = 0

    def feed(self, frames: Sequence[Frame]) -> list[AlertUpdate]:
        """One batch of frames through the processor's stages; the alert updates it caused."""
        msgs = []
        for f in frames:
            self._mid += 1
            msgs.append(
                _Message(
                    topic=frames_topic(f.device_id, partitions=self.n_partitions),
                    payload=f.to_json(),
                    mid=self._mid,
                    qos=0,
                    received=time.monotonic(),
                )
            )
        n = len(self.updates)
        self._handle(msgs)
        return self.updates[n:]

    def alerts(self) -> list[AlertEvent]:
        """Every alert of every patient, in its latest state (engine order)."""
        out: list[AlertEvent] = []
        for eng in self._engines.values():
            out.extend(eng.alerts())
        return out

    # ------------------------------------------------------------------ stages replaced
    def _resolve_devices(self, device_ids: set[str]) -> None:
        for d in device_ids:
            self._known[d] = f"p-{d}"

    def _store(self, b: _Batch) -> int | None:
        b.clock.lap("storage")
        return len(b.to_store)

    def _acknowledge(self, b: _Batch, n_stored: int) -> None:
        n_beats = sum(len(v) for v in b.beat_rows.values())
        with self._lock:
            self._c["frames_stored"] += n_stored
            self._c["beats"] += n_beats
            self._c["alert_updates"] += len(b.updates)
            for _m, reason, _d in b.bad:
                self._quarantined[reason] += 1
        self.updates.extend(b.updates)

    def _send_acks(self, now: float | None) -> None:
        return None


def _no_database() -> Any:
    raise RuntimeError("a ReplayProcessor has no database")


def alarm_rows(
    events: Sequence[AlertEvent], *, record: str, t0_s: float = REPLAY_T0_S
) -> list[AlarmRow]:
    """Alarm rows of ``events`` (times from ``t0_s``), by start time."""
    rows = []
    for ev in events:
        last = ev.evidence.get("last_evidence_s") if isinstance(ev.evidence, dict) else None
        end = ev.end_s if ev.end_s is not None else (last if last is not None else ev.start_s)
        rows.append(
            AlarmRow(
                record=record,
                start_s=float(ev.start_s) - t0_s,
                end_s=float(end) - t0_s,
                type=ev.kind,
                severity=ev.severity.value,
                technical=ev.category == "technical",
            )
        )
    return sorted(rows, key=lambda r: (r.start_s, r.type))


def replay_signal(
    signal_mv: np.ndarray,
    *,
    fs: float,
    lead_names: Sequence[str],
    record: str,
    processor: ReplayProcessor | None = None,
    model: Any = None,
    frames_per_batch: int = 5,
    device_id: str | None = None,
    **processor_options: Any,
) -> list[AlarmRow]:
    """Alarms the live system raises for one recording (``(n_samples, n_leads)`` in mV).

    A fresh :class:`ReplayProcessor` is made from ``model`` (and ``processor_options``) unless
    ``processor`` is given (one device per record: give each record its own ``device_id``).
    """
    if processor is None:
        if model is None:
            raise ValueError("give model or processor")
        processor = ReplayProcessor(model=model, **processor_options)
    dev = device_id or _device_id(record)
    batch: list[Frame] = []
    for f in record_frames(signal_mv, fs=fs, lead_names=lead_names, device_id=dev):
        batch.append(f)
        if len(batch) >= frames_per_batch:
            processor.feed(batch)
            batch = []
    if batch:
        processor.feed(batch)
    eng = processor._engines.get(f"p-{dev}")
    if eng is not None:
        processor.updates.extend(eng.flush_reports())
    events = [ev for ev in processor.alerts() if ev.patient_id == f"p-{dev}"]
    return alarm_rows(events, record=record)


def _device_id(record: str) -> str:
    import re

    d = re.sub(r"[^A-Za-z0-9_-]+", "-", record).strip("-")[-48:] or "record"
    return f"replay-{d}"


def shipped_beat_model() -> Any:
    """The shipped two-lead beat model (the processor adds the single-lead one for one-lead
    devices, see ``StreamProcessor(beat_models="auto")``)."""
    from heartline.edge.model_select import beat_model_specs
    from heartline.edge.runtime import OnnxBeatClassifier

    specs = [s for s in beat_model_specs() if s.installed]
    if not specs:
        raise FileNotFoundError("no shipped beat classifier is installed")
    return OnnxBeatClassifier(max(specs, key=lambda s: s.n_leads).onnx_path)


def replay_record(
    path: str | Any,
    *,
    model: Any,
    fs: float | None = None,
    record: str | None = None,
    **processor_options: Any,
) -> list[AlarmRow]:
    """Alarms of one record file (WFDB, EDF or CSV, read by :func:`heartline.io.readers.read_ecg`).

    Raises the reader's errors (:class:`~heartline.errors.HeartlineError`, ``ValueError``,
    ``OSError``) for a record that cannot be read.
    """
    import warnings
    from pathlib import Path

    from heartline.io.readers import read_ecg

    p = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = read_ecg(p, fs=fs if p.suffix.lower() in (".csv", ".tsv", ".txt") else None)
    return replay_signal(
        rec.signal,
        fs=rec.fs,
        lead_names=tuple(rec.lead_names),
        record=record or p.name,
        model=model,
        **processor_options,
    )
