"""A synthetic ward for the dashboard tests: ECG frames, classified beats and the alert engine's
own alarms (AF, VT, VF, NEWS2...) stored the way the stream processor stores them.

The ECG is a crude synthetic one (a Gaussian R wave per beat, a 5 Hz sine during VF), good for
checking what the dashboard draws, not for checking detectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from heartline.alerts.engine import AlertEngine
from heartline.alerts.rules import Beat
from heartline.ingestion.payloads import Frame, VitalReading
from heartline.storage import repository as repo

FS_HZ = 360.0
GAIN = 200.0  # counts per mV
BASELINE = 1024
LEADS = ("II", "V5")


@dataclass
class Rhythm:
    """Beat times (epoch s, on sample instants), labels and VF spans of one patient."""

    t0_s: float
    times_s: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    vf: list[tuple[float, float]] = field(default_factory=list)
    t_s: float = 0.0  # current end
    r_mv: float = 1.2  # R-wave amplitude

    def __post_init__(self) -> None:
        self.t_s = self.t0_s

    def _add(self, rr_s: float, label: str) -> None:
        t = self.t0_s + round((self.t_s + rr_s - self.t0_s) * FS_HZ) / FS_HZ
        self.times_s.append(t)
        self.labels.append(label)
        self.t_s = t

    def sinus(self, seconds: float, *, rr_s: float = 0.8) -> Rhythm:
        end = self.t_s + seconds
        while self.t_s + rr_s <= end:
            self._add(rr_s, "N")
        return self

    def af(self, seconds: float, *, rng: np.random.Generator) -> Rhythm:
        end = self.t_s + seconds
        while True:
            rr = float(rng.uniform(0.4, 0.9))
            if self.t_s + rr > end:
                break
            self._add(rr, "N")
        return self

    def v_run(self, n_beats: int, *, rr_s: float = 0.33) -> Rhythm:
        for _ in range(n_beats):
            self._add(rr_s, "V")
        self.t_s += 0.4  # compensatory pause
        return self

    def vf_span(self, seconds: float) -> Rhythm:
        self.vf.append((self.t_s + 0.3, self.t_s + 0.3 + seconds))
        self.t_s += seconds + 0.6
        return self


def ecg_counts(rhythm: Rhythm, *, start_s: float, n: int) -> np.ndarray:
    """Two leads of counts for samples ``start_s + i / fs`` (``i < n``)."""
    t = start_s + np.arange(n) / FS_HZ
    mv = np.full(n, -0.05)
    if getattr(rhythm, "_n_cached", -1) != len(rhythm.times_s):
        rhythm._times = np.asarray(rhythm.times_s)  # type: ignore[attr-defined]
        rhythm._is_v = np.asarray([x == "V" for x in rhythm.labels])  # type: ignore[attr-defined]
        rhythm._n_cached = len(rhythm.times_s)  # type: ignore[attr-defined]
    times, is_v = rhythm._times, rhythm._is_v  # type: ignore[attr-defined]
    a, b = np.searchsorted(times, [start_s - 0.4, start_s + n / FS_HZ + 0.4])
    for tb, wide in zip(times[a:b], is_v[a:b], strict=True):
        sigma = 0.035 if wide else 0.012
        amp = -1.1 if wide else rhythm.r_mv
        mv += amp * np.exp(-((t - tb) ** 2) / (2 * sigma**2))
        mv += 0.25 * np.exp(-((t - tb - 0.25) ** 2) / (2 * 0.04**2))  # T wave
    for a, b in rhythm.vf:
        inside = (t >= a) & (t < b)
        mv[inside] = 0.6 * np.sin(2 * np.pi * 5.0 * t[inside])
    c1 = np.clip(np.rint(BASELINE + GAIN * mv), 0, 2047)
    c2 = np.clip(np.rint(BASELINE + GAIN * 0.6 * mv), 0, 2047)
    return np.stack([c1, c2], axis=1).astype(np.int64)


def frame_at(
    device_id: str, rhythm: Rhythm, *, seq: int, start_s: float, vitals: VitalReading | None = None
) -> Frame:
    return Frame.from_counts(
        ecg_counts(rhythm, start_s=start_s, n=int(FS_HZ)),
        device_id=device_id,
        seq=seq,
        start_time_s=start_s,
        fs_hz=FS_HZ,
        lead_names=LEADS,
        adc_bits=11,
        adc_gain=(GAIN, GAIN),
        adc_baseline=(BASELINE, BASELINE),
        vitals=(vitals,) if vitals is not None else (),
    )


def beats_in(device_id: str, rhythm: Rhythm, *, seq: int, start_s: float) -> list[repo.BeatIn]:
    out = []
    a, b = np.searchsorted(np.asarray(rhythm.times_s), [start_s, start_s + 1.0])
    for t, label in zip(rhythm.times_s[a:b], rhythm.labels[a:b], strict=True):
        if start_s <= t < start_s + 1.0:
            p = 0.93 if label == "V" else 0.97
            out.append(
                repo.BeatIn(
                    device_id=device_id,
                    seq=seq,
                    sample_idx=round((t - start_s) * FS_HZ),
                    time=datetime.fromtimestamp(t, tz=UTC),
                    label=label,
                    probabilities={label: p, "N" if label != "N" else "S": round(1 - p, 2)},
                    confidence=p,
                )
            )
    return out


def store_history(
    session,
    *,
    device_id: str,
    patient_id: str,
    rhythm: Rhythm,
    start_s: float,
    stop_s: float,
    first_seq: int = 0,
) -> int:
    """Store 1 s frames and their beats over ``[start_s, stop_s)``; returns the next seq."""
    seq = first_seq
    t = start_s
    while t < stop_s:
        repo.store_frame(session, frame=frame_at(device_id, rhythm, seq=seq, start_s=t))
        repo.add_beats(
            session, patient_id=patient_id, beats=beats_in(device_id, rhythm, seq=seq, start_s=t)
        )
        seq += 1
        t += 1.0
    return seq


def engine_alarms(
    patient_id: str,
    rhythm: Rhythm,
    *,
    now_s: float,
    vitals: dict | None = None,
    vitals_at_s: float | None = None,
) -> dict[str, dict]:
    """Run the alert engine over the rhythm; the last state of each alarm (``AlertEvent.to_dict``)."""
    eng = AlertEngine(patient_id)
    latest: dict[str, dict] = {}
    beats = [
        Beat(t, round((t - rhythm.t0_s) * FS_HZ), label)
        for t, label in zip(rhythm.times_s, rhythm.labels, strict=True)
    ]
    # feed in 10 s chunks as the stream processor would (a VF span before the beats after it)
    i = 0
    vf = list(rhythm.vf)
    t = rhythm.t0_s
    while t < now_s:
        t = min(t + 10.0, now_s)
        while vf and vf[0][0] < t:
            a, b = vf.pop(0)
            for u in eng.add_vf(a, b, now_s=max(a, min(t, b)), evaluate=False):
                latest[u.event.id] = u.event.to_dict()
        chunk = []
        while i < len(beats) and beats[i].time_s < t:
            chunk.append(beats[i])
            i += 1
        for u in eng.add_beats(chunk, now_s=t) if chunk else eng.advance(t):
            latest[u.event.id] = u.event.to_dict()
    if vitals is not None:
        for u in eng.add_vitals(time_s=vitals_at_s or now_s, **vitals):
            latest[u.event.id] = u.event.to_dict()
    return latest


def store_alarm(session, ev: dict, *, device_id: str) -> int:
    """Store one engine alarm as the stream processor does; returns its row id."""
    evidence = {
        "alert_id": ev["id"],
        "kind": ev["kind"],
        "category": ev["category"],
        "severity": ev["severity"],
        "message": ev["message"],
        "revision": ev["revision"],
        **ev["evidence"],
    }
    row = repo.add_alert(
        session,
        patient_id=ev["patient_id"],
        device_id=device_id,
        type=ev["kind"],
        severity=ev["severity"],
        start=datetime.fromtimestamp(ev["start_s"], tz=UTC),
        end=None if ev["end_s"] is None else datetime.fromtimestamp(ev["end_s"], tz=UTC),
        evidence=evidence,
    )
    return row.id


def utc(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, tz=UTC)


def seconds_ago(s: float) -> float:
    return (datetime.now(UTC) - timedelta(seconds=s)).timestamp()
