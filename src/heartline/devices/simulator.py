"""Virtual wearables replaying MIT-BIH records as live ~1 s frames, with vitals and faults.

Each :class:`VirtualWearable` replays one MIT-BIH record (both leads at the native 360 Hz) as
the raw 11-bit ADC counts of the database (gain 200 counts/mV, baseline 1024, as an AD8232
front end into a microcontroller ADC would produce them), cut into frames with a device id,
a monotonically increasing ``seq`` and a device-clock timestamp. Alongside the ECG it reports:

* heart rate and SpO2 at 1 Hz (a pulse oximeter): HR is 60 / mean RR of the record's annotated
  beats in the last 8 s, so it follows the ECG's own rhythm, plus 1 bpm Gaussian noise; SpO2 is
  a per-patient baseline (95-99 %) with a slow AR(1) wander, reported as integers;
* skin temperature every 10 s (33-35 degC baseline, slow drift, 0.05 degC noise);
* blood pressure every 60 s (per-patient baseline, 4/3 mmHg noise).

Single-lead wearables: a ``record`` of the form ``"221:MLII@250"`` replays one lead of a
MIT-BIH record resampled to 250 Hz (what a cheaper chest patch would send), and
``"cinc2017/A00004"`` a CinC 2017 AliveCor recording (one lead, 300 Hz; Clifford et al.,
"AF classification from a short single lead ECG recording: the PhysioNet/Computing in
Cardiology Challenge 2017"), looped; see :func:`parse_record_spec`.

Optional faults: real NSTDB noise (``em`` electrode motion, ``ma`` muscle, ``bw`` baseline
wander; Moody, Muldrow & Mark, "A noise stress test for arrhythmia detectors", Computers in
Cardiology 1984) added at a chosen SNR, frames lost before they reach the queue (their ``seq``
is consumed: a real permanent gap), a device clock offset and skew, and scheduled radio
disconnects (the frames keep queueing in store-and-forward). Everything is deterministic given
``seed``; pacing (real time or as fast as possible) is :func:`run_simulation`'s job.
"""

from __future__ import annotations

import functools
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heartline.ingestion.payloads import PAYLOAD_VERSIONS, VITAL_RANGES, Frame, VitalReading

__all__ = [
    "DEFAULT_RECORDS",
    "NOISE_KINDS",
    "Disconnect",
    "NoiseSpec",
    "RecordSpec",
    "SimFrame",
    "VirtualWearable",
    "WearableConfig",
    "parse_record_spec",
    "run_simulation",
]

log = logging.getLogger(__name__)

#: NSTDB noise records.
NOISE_KINDS: tuple[str, ...] = ("em", "ma", "bw")
#: Records handed out to simulated patients in turn (varied rhythms: normal, PVCs, AF, blocks).
DEFAULT_RECORDS: tuple[str, ...] = (
    "100",
    "119",
    "201",
    "203",
    "208",
    "210",
    "213",
    "221",
    "223",
    "233",
    "105",
    "106",
)
_HR_WINDOW_S = 8.0
#: Databases a wearable can replay.
SIM_DATABASES: tuple[str, ...] = ("mitdb", "cinc2017")
#: ADC of CinC 2017 replays (their files hold 1000 counts/mV, 16 bits signed): 15 bits with a
#: mid-scale baseline, so that the counts fit the frame's unsigned range.
_CINC_ADC = (1000.0, 16384, 15)


@dataclass(frozen=True)
class RecordSpec:
    """What a wearable replays: ``database/record[:LEAD][@FS]`` parsed.

    Attributes
    ----------
    database : str
        ``"mitdb"`` (default) or ``"cinc2017"``.
    record : str
    lead : str or None
        One lead only (a single-lead device); ``None``: every lead of the record.
    fs_hz : float or None
        Resample to this rate (the device's own rate); ``None``: the record's.
    """

    database: str
    record: str
    lead: str | None = None
    fs_hz: float | None = None


def parse_record_spec(spec: str) -> RecordSpec:
    """``"201"``, ``"221:MLII@250"``, ``"cinc2017/A00004"`` -> :class:`RecordSpec`.

    Raises
    ------
    ValueError
        An unknown database, an empty record, or a rate outside 100-1000 Hz.
    """
    text = str(spec).strip()
    fs_hz = None
    if "@" in text:
        text, fs_txt = text.rsplit("@", 1)
        try:
            fs_hz = float(fs_txt)
        except ValueError:
            raise ValueError(f"record spec {spec!r}: rate {fs_txt!r} is not a number") from None
        if not 100.0 <= fs_hz <= 1000.0:
            raise ValueError(f"record spec {spec!r}: rate must be 100-1000 Hz, got {fs_hz:g}")
    lead = None
    if ":" in text:
        text, lead = text.split(":", 1)
        lead = lead.strip() or None
    database, record = ("mitdb", text) if "/" not in text else text.split("/", 1)
    if database not in SIM_DATABASES:
        raise ValueError(f"record spec {spec!r}: database must be one of {SIM_DATABASES}")
    if not record.strip():
        raise ValueError(f"record spec {spec!r}: no record named")
    return RecordSpec(database, record.strip(), lead, fs_hz)


@dataclass(frozen=True)
class NoiseSpec:
    """Real NSTDB noise ``kind`` added to both leads at ``snr_db`` (signal/noise power ratio)."""

    kind: str = "em"
    snr_db: float = 12.0

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {self.kind!r}")
        if not np.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be finite, got {self.snr_db}")


@dataclass(frozen=True)
class Disconnect:
    """Radio link down from ``start_s`` for ``duration_s`` seconds (simulation time)."""

    start_s: float
    duration_s: float

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.duration_s


@dataclass(frozen=True)
class WearableConfig:
    """Configuration of one virtual wearable.

    Attributes
    ----------
    device_id : str
    record : str
        MIT-BIH record name (``"100"``...) or a single-lead spec (``"221:MLII@250"``,
        ``"cinc2017/A00004"``; :func:`parse_record_spec`).
    frame_s : float
        Frame length in seconds.
    start_offset_s : float or None
        Where in the record to start (``None``: chosen from ``seed``).
    noise : NoiseSpec or None
    drop_frame_prob : float
        Probability that a frame is lost before reaching the queue.
    clock_offset_s, clock_skew_ppm : float
        Device clock = true time x (1 + skew x 1e-6) + offset.
    disconnects : tuple of Disconnect
    seed : int
    start_seq : int
        First sequence number (continue after the queue's ``last_seq`` across runs).
    payload_version : int
        Wire encoding of the ECG (:data:`heartline.ingestion.payloads.PAYLOAD_VERSIONS`): 1,
        JSON integer lists; 2, base64 little-endian int16 per lead (a third smaller, cheaper
        to build and to parse).
    """

    device_id: str
    record: str = "100"
    frame_s: float = 1.0
    start_offset_s: float | None = None
    noise: NoiseSpec | None = None
    drop_frame_prob: float = 0.0
    clock_offset_s: float = 0.0
    clock_skew_ppm: float = 0.0
    disconnects: tuple[Disconnect, ...] = ()
    seed: int = 0
    start_seq: int = 0
    payload_version: int = 1

    def __post_init__(self) -> None:
        parse_record_spec(self.record)  # a clear error for a bad spec
        if not 0.1 <= self.frame_s <= 10.0:
            raise ValueError(f"frame_s must be in [0.1, 10] s, got {self.frame_s}")
        if not 0.0 <= self.drop_frame_prob < 1.0:
            raise ValueError(f"drop_frame_prob must be in [0, 1), got {self.drop_frame_prob}")
        if self.start_seq < 0:
            raise ValueError(f"start_seq must be >= 0, got {self.start_seq}")
        if self.payload_version not in PAYLOAD_VERSIONS:
            raise ValueError(
                f"payload_version must be one of {PAYLOAD_VERSIONS}, got {self.payload_version!r}"
            )


@dataclass(frozen=True)
class SimFrame:
    """One tick of a wearable.

    ``frame`` is ``None`` when it was lost (``drop_frame_prob``); ``seq`` is consumed anyway.
    ``elapsed_s`` is the true simulation time at the end of the frame; ``link_up`` says whether
    the radio link is up at that moment.
    """

    seq: int
    elapsed_s: float
    frame: Frame | None
    link_up: bool


@dataclass(frozen=True)
class _Source:
    counts: np.ndarray  # (n, 2) int16
    fs: float
    lead_names: tuple[str, ...]
    gains: tuple[float, ...]
    baselines: tuple[int, ...]
    adc_bits: int
    beat_times_s: np.ndarray = field(repr=False)


@functools.lru_cache(maxsize=16)
def _load_mv(path: str) -> tuple[np.ndarray, float, tuple[str, ...]]:
    from heartline.io import read_record

    rec = read_record(path)
    return rec.signal, rec.fs, rec.lead_names


@functools.lru_cache(maxsize=16)
def _load_header(path: str) -> tuple[tuple[float, ...], tuple[int, ...], int]:
    import wfdb

    h = wfdb.rdheader(path)
    return (
        tuple(float(g) for g in h.adc_gain),
        tuple(int(b) for b in h.baseline),
        int(max(h.adc_res)),
    )


def _build_source(
    config: WearableConfig, data_dir: Path | None, rng: np.random.Generator
) -> _Source:
    from heartline.data.paths import record_path
    from heartline.io import read_annotations

    spec = parse_record_spec(config.record)
    if spec.database == "cinc2017":
        from heartline.data.paths import resolve_data_dir

        path = str(resolve_data_dir(data_dir) / "cinc2017" / spec.record)
    else:
        path = str(record_path(spec.database, spec.record, data_dir=data_dir))
    signal_mv, fs, leads = _load_mv(path)
    if spec.database == "cinc2017":
        g, b, adc_bits = _CINC_ADC
        gains, baselines = (g,) * len(leads), (b,) * len(leads)
    else:
        gains, baselines, adc_bits = _load_header(path)
    signal_mv = np.nan_to_num(signal_mv, nan=0.0)
    if spec.lead is not None:
        if spec.lead not in leads:
            raise ValueError(f"record {spec.record}: no lead {spec.lead!r}; it has {list(leads)}")
        j = leads.index(spec.lead)
        signal_mv, leads = signal_mv[:, [j]], (spec.lead,)
        gains, baselines = (gains[j],), (baselines[j],)
    beat_fs = fs
    if spec.fs_hz is not None and spec.fs_hz != fs:
        from fractions import Fraction

        from scipy.signal import resample_poly

        ratio = Fraction(spec.fs_hz / fs).limit_denominator(1000)
        signal_mv = resample_poly(signal_mv, ratio.numerator, ratio.denominator, axis=0)
        fs = float(spec.fs_hz)
    if config.noise is not None:
        noise_mv, noise_fs, _ = _load_mv(
            str(record_path("nstdb", config.noise.kind, data_dir=data_dir))
        )
        if noise_fs != fs:  # a wearable at its own rate: the noise resampled to it
            from fractions import Fraction

            from scipy.signal import resample_poly

            r = Fraction(fs / noise_fs).limit_denominator(1000)
            noise_mv = resample_poly(noise_mv, r.numerator, r.denominator, axis=0)
        n = signal_mv.shape[0]
        start = int(rng.integers(0, max(1, noise_mv.shape[0] - 1)))
        idx = (start + np.arange(n)) % noise_mv.shape[0]
        noise = noise_mv[idx][:, : signal_mv.shape[1]]
        noise = noise - noise.mean(axis=0)
        p_signal = np.var(signal_mv, axis=0)
        p_noise = np.var(noise, axis=0)
        scale = np.sqrt(p_signal / (p_noise * 10 ** (config.noise.snr_db / 10)))
        signal_mv = signal_mv + noise * scale
    counts = np.rint(signal_mv * np.asarray(gains) + np.asarray(baselines))
    counts = np.clip(counts, 0, 2**adc_bits - 1).astype(np.int16)  # the ADC saturates
    if spec.database == "mitdb":
        beat_times_s = read_annotations(path).beats().sample_idx / beat_fs
    else:  # no beat annotations: the pulse oximeter reports no heart rate
        beat_times_s = np.zeros(0)
    return _Source(counts, fs, leads, gains, baselines, adc_bits, beat_times_s)


class VirtualWearable:
    """One simulated patient's wearable (see the module docstring).

    Parameters
    ----------
    config : WearableConfig
    start_time_s : float
        True Unix time of the first sample (the device clock adds offset and skew).
    data_dir : path-like, optional
        PhysioNet data directory (see :mod:`heartline.data.paths`).
    """

    def __init__(
        self, config: WearableConfig, *, start_time_s: float, data_dir: str | Path | None = None
    ) -> None:
        self.config = config
        self.start_time_s = float(start_time_s)
        self._rng = np.random.default_rng([config.seed, zlib.crc32(config.device_id.encode())])
        self.source = _build_source(
            config, Path(data_dir) if data_dir is not None else None, self._rng
        )
        n = self.source.counts.shape[0]
        self.record_s = n / self.source.fs
        if config.start_offset_s is None:
            self._offset_idx = int(self._rng.integers(0, n))
        else:
            self._offset_idx = round(config.start_offset_s * self.source.fs) % n
        self.samples_per_frame = round(config.frame_s * self.source.fs)
        # Per-patient vital baselines.
        self._spo2_base = float(self._rng.uniform(95.0, 99.0))
        self._spo2_dev = 0.0
        self._temp_base = float(self._rng.uniform(33.0, 35.0))
        self._sbp_base = float(self._rng.uniform(110.0, 135.0))
        self._dbp_base = float(self._rng.uniform(68.0, 85.0))
        self._next_temp_s = 0.0
        self._next_bp_s = float(self._rng.uniform(0.0, 60.0))
        self._next_pulse_s = 0.0

    @property
    def device_id(self) -> str:
        return self.config.device_id

    def device_clock(self, elapsed_s: float) -> float:
        """Device timestamp of true elapsed time ``elapsed_s``."""
        c = self.config
        return self.start_time_s + elapsed_s * (1.0 + c.clock_skew_ppm * 1e-6) + c.clock_offset_s

    def link_up(self, elapsed_s: float) -> bool:
        """Whether the radio link is up at ``elapsed_s``."""
        return not any(d.covers(elapsed_s) for d in self.config.disconnects)

    def heart_rate_at(self, elapsed_s: float) -> float | None:
        """HR (bpm) from the annotated beats in the last 8 s of record time, or ``None``."""
        src = self.source
        t_rec = (self._offset_idx / src.fs + elapsed_s) % self.record_s
        beats = src.beat_times_s
        if t_rec < _HR_WINDOW_S:  # window wraps around the record's end
            beats = np.concatenate(
                [beats[beats > self.record_s - (_HR_WINDOW_S - t_rec)] - self.record_s, beats]
            )
        win = beats[(beats > t_rec - _HR_WINDOW_S) & (beats <= t_rec)]
        if win.size < 2:
            return None
        return float(60.0 / np.mean(np.diff(win)))

    def _vitals(self, t0: float, t1: float) -> list[VitalReading]:
        out: list[VitalReading] = []
        rng = self._rng
        lo_hr, hi_hr = VITAL_RANGES["hr_bpm"]
        while self._next_pulse_s < t1:
            t = self._next_pulse_s
            hr = self.heart_rate_at(t)
            self._spo2_dev = 0.95 * self._spo2_dev + rng.normal(0.0, 0.3)
            spo2 = float(np.clip(round(self._spo2_base + self._spo2_dev), 85, 100))
            hr_v = (
                None
                if hr is None
                else float(np.clip(round(hr + rng.normal(0.0, 1.0)), lo_hr, hi_hr))
            )
            out.append(VitalReading(time_s=self.device_clock(t), hr_bpm=hr_v, spo2_pct=spo2))
            self._next_pulse_s += 1.0
        while self._next_temp_s < t1:
            t = self._next_temp_s
            temp = self._temp_base + 0.3 * np.sin(2 * np.pi * t / 3600.0) + rng.normal(0.0, 0.05)
            out.append(VitalReading(time_s=self.device_clock(t), temp_c=round(float(temp), 2)))
            self._next_temp_s += 10.0
        while self._next_bp_s < t1:
            t = self._next_bp_s
            sbp = round(self._sbp_base + rng.normal(0.0, 4.0))
            dbp = round(min(self._dbp_base + rng.normal(0.0, 3.0), sbp - 15))
            out.append(
                VitalReading(time_s=self.device_clock(t), sbp_mmhg=float(sbp), dbp_mmhg=float(dbp))
            )
            self._next_bp_s += 60.0
        return sorted(out, key=lambda v: v.time_s)

    def frames(self) -> Iterator[SimFrame]:
        """Endless frames (the record wraps around); stop with ``itertools.islice``."""
        src = self.source
        n_total = src.counts.shape[0]
        spf = self.samples_per_frame
        k = 0
        while True:
            t0 = k * spf / src.fs
            t1 = (k + 1) * spf / src.fs
            idx = (self._offset_idx + k * spf + np.arange(spf)) % n_total
            seq = self.config.start_seq + k
            vitals = self._vitals(t0, t1)
            dropped = (
                self.config.drop_frame_prob > 0 and self._rng.random() < self.config.drop_frame_prob
            )
            frame = None
            if not dropped:
                frame = Frame.from_counts(
                    src.counts[idx],
                    device_id=self.device_id,
                    seq=seq,
                    start_time_s=self.device_clock(t0),
                    fs_hz=src.fs,
                    lead_names=src.lead_names,
                    adc_bits=src.adc_bits,
                    adc_gain=src.gains,
                    adc_baseline=src.baselines,
                    vitals=vitals,
                    version=self.config.payload_version,
                )
            yield SimFrame(seq=seq, elapsed_s=t1, frame=frame, link_up=self.link_up(t1))
            k += 1


def run_simulation(
    wearables: Sequence[VirtualWearable],
    *,
    publish: Callable[[int, SimFrame], None],
    duration_s: float,
    realtime: bool,
    on_tick: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Step every wearable frame by frame and hand each tick to ``publish(i, sim_frame)``.

    Parameters
    ----------
    wearables : sequence of VirtualWearable
        All with the same ``frame_s``.
    publish : callable
        Called with the wearable's index and its :class:`SimFrame` (set the link, publish).
    duration_s : float
        Simulated seconds to run.
    realtime : bool
        Pace frames at wall-clock speed (``False``: as fast as possible).
    on_tick : callable, optional
        Called with the elapsed simulated time after each tick (status display).
    should_stop : callable, optional
        Polled every tick; ``True`` ends the run early.

    Returns
    -------
    int
        Number of ticks run.
    """
    if not wearables:
        raise ValueError("wearables must not be empty")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    frame_s = {w.samples_per_frame / w.source.fs for w in wearables}
    if len(frame_s) != 1:
        raise ValueError(f"all wearables need the same frame length, got {sorted(frame_s)}")
    step = frame_s.pop()
    n_ticks = int(np.ceil(duration_s / step - 1e-9))
    streams = [w.frames() for w in wearables]
    wall0 = time.monotonic()
    ticks = 0
    for k in range(n_ticks):
        if should_stop is not None and should_stop():
            break
        if realtime:
            delay = wall0 + (k + 1) * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for i, stream in enumerate(streams):
            publish(i, next(stream))
        ticks += 1
        if on_tick is not None:
            on_tick((k + 1) * step)
    return ticks
