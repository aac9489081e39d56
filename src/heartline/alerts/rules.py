"""Clinical alert rules: pure functions from a labelled beat series to detected episodes.

Every rule takes a :class:`BeatSeries` (beat times in seconds, AAMI labels ``N S V F Q``,
classifier confidences and per-beat signal-quality flags) and returns a tuple of
:class:`Episode` objects, each with a kind, a :class:`Severity`, its time span and the evidence
(beat ids, times and the measured values) that triggered it. Rules hold no state; the
:class:`~heartline.alerts.engine.AlertEngine` runs them on a sliding window and debounces them.

Signal-quality gating
---------------------
Arrhythmia rules only use *valid* beats and RR intervals: a beat whose ``quality_ok`` flag is
False, or an RR interval that touches such a beat or overlaps one of the series'
``noisy_spans_s``, is ignored (runs and patterns are broken there, rate windows skip it). Noisy
stretches raise a ``"signal_quality"`` *technical* alarm instead (:func:`detect_signal_quality`),
following the split between physiological and technical alarm conditions of IEC 60601-1-8 and
the ECG-monitor particular standard IEC 60601-2-27 (which asks that noise and lead-off be
signalled as technical alarms rather than as arrhythmias).

Severities and alarm priorities
-------------------------------
``info < warning < high < critical``. They map onto the IEC 60601-1-8 alarm priorities as
``critical`` -> high priority (immediate response: asystole, sustained VT, as the "lethal
arrhythmia" alarms of IEC 60601-2-27 201.7.9.2.9), ``high`` -> medium priority (prompt response),
``warning`` -> low priority (awareness), ``info`` -> information signal.

References
----------
IEC 60601-2-27:2011 Medical electrical equipment - Part 2-27: Particular requirements for the
basic safety and essential performance of electrocardiographic monitoring equipment.
IEC 60601-1-8:2006+A1:2012 General requirements, tests and guidance for alarm systems.
ANSI/AAMI EC57:2012 Testing and reporting performance results of cardiac rhythm and ST segment
measurement algorithms (beat classes, VT run definitions).
Al-Khatib SM et al. 2017 AHA/ACC/HRS Guideline for management of patients with ventricular
arrhythmias and the prevention of sudden cardiac death. Circulation 138:e272-e391 (2018)
(NSVT: >= 3 consecutive ventricular beats at > 100 bpm lasting < 30 s; sustained VT >= 30 s).
Kusumoto FM et al. 2018 ACC/AHA/HRS Guideline on the evaluation and management of patients with
bradycardia and cardiac conduction delay. Circulation 140:e382-e482 (2019) (bradycardia < 50
bpm; pauses > 3 s).
Dash S, Chon KH, Lu S, Raeder EA. Automatic real time detection of atrial fibrillation.
Ann Biomed Eng 37(9):1701-1709 (2009).
Hindricks G et al. 2020 ESC Guidelines for the diagnosis and management of atrial fibrillation.
Eur Heart J 42:373-498 (2021) (an AF episode lasts >= 30 s; lenient rate control < 110 bpm).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES, aami_class

__all__ = [
    "AF_METHODS",
    "KINDS",
    "SKIPPABLE_KINDS",
    "TECHNICAL_KINDS",
    "Beat",
    "BeatSeries",
    "Episode",
    "HeartRate",
    "Reported",
    "RuleConfig",
    "Severity",
    "detect_af_like",
    "detect_bradycardia",
    "detect_frequent_ectopy",
    "detect_pauses",
    "detect_signal_quality",
    "detect_tachycardia",
    "detect_ventricular_patterns",
    "detect_ventricular_runs",
    "evaluate_rules",
    "heart_rate",
]

logger = logging.getLogger(__name__)

#: Every episode kind the rules can emit.
KINDS: tuple[str, ...] = (
    "bradycardia",
    "tachycardia",
    "pause",
    "v_couplet",
    "v_run",
    "vt",
    "ventricular_bigeminy",
    "ventricular_trigeminy",
    "frequent_pvc",
    "frequent_sveb",
    "af_like",
    "vf",
    "signal_quality",
)
#: Kinds that are technical alarms (equipment / signal), not physiological ones.
TECHNICAL_KINDS: frozenset[str] = frozenset({"signal_quality"})

#: Number of evidence beats kept per episode (first and last halves) so evidence stays small.
MAX_EVIDENCE_BEATS = 64


class Severity(StrEnum):
    """Alert severity, ordered ``INFO < WARNING < HIGH < CRITICAL``.

    >>> Severity.HIGH > Severity.WARNING, max(Severity.INFO, Severity.CRITICAL).value
    (True, 'critical')
    """

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info ... 3 for critical."""
        return _SEVERITY_RANK[self.value]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK = {"info": 0, "warning": 1, "high": 2, "critical": 3}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _normalise_label(label: object, *, name: str = "label") -> str:
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        if not 0 <= int(label) < len(AAMI_CLASSES):
            raise ValueError(
                f"{name}={label} is not an AAMI class index 0..{len(AAMI_CLASSES) - 1}"
            )
        return AAMI_CLASSES[int(label)]
    text = str(label)
    if text in AAMI_CLASSES:
        return text
    try:  # accept raw MIT-BIH beat symbols too ("L", "E", "A"...)
        return aami_class(text)
    except ValueError:
        raise ValueError(
            f"{name}={label!r} is neither an AAMI class {list(AAMI_CLASSES)} nor a beat symbol"
        ) from None


@dataclass(frozen=True)
class Beat:
    """One detected and classified beat.

    Attributes
    ----------
    time_s : float
        Time of the R peak in seconds (device/data time, not wall-clock).
    sample_idx : int
        R-peak position in samples of the source stream.
    label : str
        AAMI class, one of ``"N" "S" "V" "F" "Q"`` (an integer class index or a MIT-BIH beat
        symbol is converted).
    confidence : float
        Classifier probability of ``label`` in ``[0, 1]``.
    quality_ok : bool
        False when the beat lies in a window flagged as noisy.
    """

    time_s: float
    sample_idx: int
    label: str
    confidence: float = 1.0
    quality_ok: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.time_s):
            raise ValueError(f"time_s must be finite, got {self.time_s}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")
        object.__setattr__(self, "label", _normalise_label(self.label))


@dataclass(frozen=True, eq=False)
class BeatSeries:
    """Beats of one patient as parallel arrays (what every rule consumes).

    Attributes
    ----------
    time_s : numpy.ndarray
        float64 beat times in seconds, non-decreasing.
    label : numpy.ndarray
        AAMI class letters (``<U1``).
    beat_id : numpy.ndarray
        int64 stable beat identifiers (stream-wide indices); evidence reports these.
    sample_idx : numpy.ndarray
        int64 R-peak sample positions (``-1`` when unknown).
    confidence : numpy.ndarray
        float64 classifier confidences.
    quality_ok : numpy.ndarray
        bool per beat; False marks beats inside noisy windows.
    noisy_spans_s : tuple of (float, float)
        Half-open time spans ``[start_s, stop_s)`` flagged as noisy (lead off, motion). RR
        intervals overlapping them are invalid even when no beat was detected inside.

    Use :meth:`from_beats`, :meth:`from_samples` or :meth:`from_annotations` to build one.
    """

    time_s: np.ndarray
    label: np.ndarray
    beat_id: np.ndarray
    sample_idx: np.ndarray
    confidence: np.ndarray
    quality_ok: np.ndarray
    noisy_spans_s: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        t = np.asarray(self.time_s, dtype=np.float64)
        n = t.shape[0] if t.ndim == 1 else -1
        if t.ndim != 1:
            raise ValueError(f"time_s must be 1-D, got shape {t.shape}")
        if not np.isfinite(t).all():
            raise ValueError("time_s holds NaN/inf values")
        if n > 1 and bool((t[1:] < t[:-1]).any()):  # np.diff(t) < 0 anywhere
            raise ValueError("time_s must be non-decreasing (beats in time order)")
        raw = np.asarray(self.label)
        if raw.dtype.kind == "U" and _all_aami(raw):
            label = raw.astype("<U1")
        else:
            label = np.array([_normalise_label(x) for x in raw.reshape(-1).tolist()], dtype="<U1")
            label = label.reshape(raw.shape) if raw.ndim == 1 else label
        arrays = {
            "label": label,
            "beat_id": np.asarray(self.beat_id, dtype=np.int64),
            "sample_idx": np.asarray(self.sample_idx, dtype=np.int64),
            "confidence": np.asarray(self.confidence, dtype=np.float64),
            "quality_ok": np.asarray(self.quality_ok, dtype=bool),
        }
        for name, arr in arrays.items():
            if arr.shape != (n,):
                raise ValueError(
                    f"{name} must have one entry per beat ({n}), got shape {arr.shape}"
                )
        spans = []
        for span in self.noisy_spans_s:
            start, stop = float(span[0]), float(span[1])
            if not (math.isfinite(start) and math.isfinite(stop)) or stop < start:
                raise ValueError(
                    f"noisy_spans_s entries must be finite (start_s, stop_s) with stop >= start, got {span}"
                )
            spans.append((start, stop))
        object.__setattr__(self, "time_s", t)
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "noisy_spans_s", tuple(sorted(spans)))
        # derived arrays computed once per series (every rule shares them; read-only)
        object.__setattr__(self, "_memo", {})

    @classmethod
    def _trusted(
        cls,
        time_s: np.ndarray,
        label: np.ndarray,
        beat_id: np.ndarray,
        sample_idx: np.ndarray,
        confidence: np.ndarray,
        quality_ok: np.ndarray,
        noisy_spans_s: Sequence[tuple[float, float]] = (),
    ) -> BeatSeries:
        """A series from arrays that already satisfy every check of ``__post_init__``.

        For :class:`~heartline.alerts.engine.AlertEngine`, whose window is made of series that
        were validated when they were added: float64 non-decreasing finite times, ``<U1`` AAMI
        labels, int64 ids and samples, float64 confidences, bool quality, finite spans.
        """
        self = object.__new__(cls)
        for name, arr in (
            ("time_s", time_s),
            ("label", label),
            ("beat_id", beat_id),
            ("sample_idx", sample_idx),
            ("confidence", confidence),
            ("quality_ok", quality_ok),
        ):
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "noisy_spans_s", tuple(sorted(noisy_spans_s)))
        object.__setattr__(self, "_memo", {})
        return self

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_beats(
        cls,
        beats: Iterable[Beat],
        *,
        first_beat_id: int = 0,
        noisy_spans_s: Sequence[tuple[float, float]] = (),
    ) -> BeatSeries:
        """Build a series from :class:`Beat` objects (ids ``first_beat_id, first_beat_id+1...``).

        >>> s = BeatSeries.from_beats([Beat(0.0, 0, "N"), Beat(0.8, 288, "V")])
        >>> len(s), s.label.tolist(), s.rr_s.tolist()
        (2, ['N', 'V'], [0.8])
        """
        beats = list(beats)
        return cls(
            time_s=np.array([b.time_s for b in beats], dtype=np.float64),
            label=np.array([b.label for b in beats], dtype="<U1"),
            beat_id=np.arange(first_beat_id, first_beat_id + len(beats), dtype=np.int64),
            sample_idx=np.array([b.sample_idx for b in beats], dtype=np.int64),
            confidence=np.array([b.confidence for b in beats], dtype=np.float64),
            quality_ok=np.array([b.quality_ok for b in beats], dtype=bool),
            noisy_spans_s=tuple(noisy_spans_s),
        )

    @classmethod
    def from_samples(
        cls,
        sample_idx: Sequence[int] | np.ndarray,
        labels: Sequence[str | int] | np.ndarray,
        *,
        fs: float,
        t0_s: float = 0.0,
        confidence: Sequence[float] | np.ndarray | None = None,
        quality_ok: Sequence[bool] | np.ndarray | None = None,
        first_beat_id: int = 0,
    ) -> BeatSeries:
        """Build a series from R-peak sample positions at sampling rate ``fs`` (Hz).

        >>> BeatSeries.from_samples([0, 360, 720], ["N", "N", 2], fs=360.0).time_s.tolist()
        [0.0, 1.0, 2.0]
        """
        if not (isinstance(fs, int | float) and math.isfinite(fs) and fs > 0):
            raise ValueError(f"fs must be a finite sampling rate > 0 Hz, got {fs!r}")
        idx = np.asarray(sample_idx, dtype=np.int64)
        n = idx.shape[0]
        return cls(
            time_s=t0_s + idx / float(fs),
            label=np.asarray(labels)
            if isinstance(labels, np.ndarray)
            else np.array([_normalise_label(x, name="labels") for x in labels], dtype="<U1"),
            beat_id=np.arange(first_beat_id, first_beat_id + n, dtype=np.int64),
            sample_idx=idx,
            confidence=np.ones(n)
            if confidence is None
            else np.asarray(confidence, dtype=np.float64),
            quality_ok=np.ones(n, dtype=bool)
            if quality_ok is None
            else np.asarray(quality_ok, dtype=bool),
        )

    @classmethod
    def from_annotations(cls, annotations: Any) -> BeatSeries:
        """Series of the annotated beats of a :class:`heartline.io.Annotations` (reference labels).

        Non-beat annotations (rhythm changes, noise markers) are dropped; the beat ids are the
        indices among the annotated beats.
        """
        beats = annotations.beats()
        return cls.from_samples(
            beats.sample_idx, np.asarray(beats.symbol), fs=float(annotations.fs)
        )

    @classmethod
    def empty(cls) -> BeatSeries:
        """A series with no beats."""
        z = np.zeros(0)
        return cls(
            z, np.zeros(0, dtype="<U1"), z.astype(np.int64), z.astype(np.int64), z, z.astype(bool)
        )

    # -- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    def select(self, mask_or_index: np.ndarray | slice) -> BeatSeries:
        """Sub-series (the noisy spans are kept)."""
        return BeatSeries(
            self.time_s[mask_or_index],
            self.label[mask_or_index],
            self.beat_id[mask_or_index],
            self.sample_idx[mask_or_index],
            self.confidence[mask_or_index],
            self.quality_ok[mask_or_index],
            self.noisy_spans_s,
        )

    @property
    def rr_s(self) -> np.ndarray:
        """RR intervals in seconds, ``rr_s[k] = time_s[k+1] - time_s[k]`` (length ``n - 1``).

        Computed once per series; the array is read-only.
        """
        rr = self._memo.get("rr_s")
        if rr is None:
            rr = self._memo["rr_s"] = _frozen(np.diff(self.time_s))
        return rr

    def _spans(self) -> tuple[np.ndarray, np.ndarray]:
        sp = np.asarray(self.noisy_spans_s, dtype=np.float64).reshape(-1, 2)
        return sp[:, 0], sp[:, 1]

    def beat_ok(self) -> np.ndarray:
        """Per-beat validity: ``quality_ok`` and not inside a noisy span (read-only, cached)."""
        ok = self._memo.get("beat_ok")
        if ok is None:
            ok = self.quality_ok.copy()
            if self.noisy_spans_s:
                start, stop = self._spans()
                t = self.time_s[:, None]
                ok &= ~((t >= start) & (t < stop)).any(axis=1)
            ok = self._memo["beat_ok"] = _frozen(ok)
        return ok

    def rr_valid(self) -> np.ndarray:
        """Validity of each RR interval (length ``n - 1``): both beats valid, no noisy overlap.

        Read-only, computed once per series.
        """
        valid = self._memo.get("rr_valid")
        if valid is None:
            ok = self.beat_ok()
            valid = ok[:-1] & ok[1:] if len(self) > 1 else np.zeros(0, dtype=bool)
            if self.noisy_spans_s and valid.size:
                start, stop = self._spans()
                overlap = (self.time_s[:-1, None] < stop) & (self.time_s[1:, None] > start)
                valid &= ~overlap.any(axis=1)
            valid = self._memo["rr_valid"] = _frozen(valid)
        return valid


_AAMI_SET = frozenset(AAMI_CLASSES)


def _all_aami(raw: np.ndarray) -> bool:
    """``np.all(np.isin(raw, AAMI_CLASSES))`` for a string array (a set test when small)."""
    if raw.size <= 1024:  # the stream processor's few beats per call: no isin set-up
        return _AAMI_SET.issuperset(raw.reshape(-1).tolist())
    return bool(np.all(np.isin(raw, AAMI_CLASSES)))


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a cached array shared by several rules)."""
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
class _JsonReady(dict):  # type: ignore[type-arg]
    """A dict whose content :func:`_json_value` has already converted (returned as is)."""


def _json_value(value: Any) -> Any:
    if isinstance(value, _JsonReady):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(v) for v in value]
    return value if value is None or isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Episode:
    """One detected episode of one rule.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    severity : Severity
    start_s, end_s : float
        Time span in seconds (first and last evidence beat, or the open gap for pauses).
    beat_ids : tuple of int
        Ids of the beats that triggered it (at most :data:`MAX_EVIDENCE_BEATS`: the first and
        last halves of a longer list; ``values["n_beats"]`` has the full count).
    times_s : tuple of float
        Times of those beats.
    sample_idx : tuple of int
        Their R-peak sample positions in the source stream.
    values : mapping
        Measured values (``rate_bpm``, ``rr_s``, ``n_beats``...), JSON-serialisable scalars.
    message : str
        Human-readable summary.
    category : str
        ``"physiological"`` or ``"technical"`` (IEC 60601-1-8 alarm condition categories).
    ongoing : bool
        True when the episode reaches the end of the analysed data and may continue.
    """

    kind: str
    severity: Severity
    start_s: float
    end_s: float
    beat_ids: tuple[int, ...] = ()
    times_s: tuple[float, ...] = ()
    sample_idx: tuple[int, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict, hash=False)
    message: str = ""
    category: str = "physiological"
    ongoing: bool = False

    @property
    def duration_s(self) -> float:
        """``end_s - start_s``."""
        return self.end_s - self.start_s

    def evidence(self) -> dict[str, Any]:
        """JSON-ready evidence: beat ids, times, sample positions and values.

        A fresh dict on every call; converting it again (``AlertEvent.to_dict``) is skipped.
        """
        return _JsonReady(
            {
                "beat_ids": [int(b) for b in self.beat_ids],
                "times_s": [round(float(t), 4) for t in self.times_s],
                "sample_idx": [int(i) for i in self.sample_idx],
                "values": _json_value(dict(self.values)),
            }
        )


def _episode(
    kind: str,
    severity: Severity,
    series: BeatSeries,
    idx: np.ndarray,
    values: dict[str, Any],
    message: str,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    ongoing: bool = False,
) -> Episode:
    idx = np.asarray(idx, dtype=np.int64)
    values = {"n_beats": int(idx.size), **values}
    if idx.size > MAX_EVIDENCE_BEATS:
        half = MAX_EVIDENCE_BEATS // 2
        idx = np.concatenate([idx[:half], idx[-half:]])
    times = series.time_s[idx]
    return Episode(
        kind=kind,
        severity=severity,
        start_s=float(start_s if start_s is not None else (times[0] if times.size else 0.0)),
        end_s=float(end_s if end_s is not None else (times[-1] if times.size else 0.0)),
        beat_ids=tuple(series.beat_id[idx].tolist()),
        times_s=tuple(times.tolist()),
        sample_idx=tuple(series.sample_idx[idx].tolist()),
        values=values,
        message=message,
        category="technical" if kind in TECHNICAL_KINDS else "physiological",
        ongoing=ongoing,
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` index ranges of the True runs of a boolean array."""
    if mask.size == 0 or not mask.any():
        return []
    padded = np.zeros(mask.size + 2, dtype=np.int8)
    padded[1:-1] = mask
    edges = (padded[1:] != padded[:-1]).nonzero()[0].tolist()  # np.diff(padded) != 0
    return list(zip(edges[::2], edges[1::2], strict=True))


def _check_positive(value: float, name: str) -> float:
    if type(value) is float and 0.0 < value < math.inf:
        return value  # the common case, as below
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Reported:
    """What a caller has already acted on for one episode kind (the alert engine's state).

    A rule given a ``reported`` mapping does not build the episodes that it *covers*: those
    the caller would ignore anyway. The alert engine ignores an episode that ends no later
    than the last evidence of a closed alert of its kind, or that lies within the debounce of
    the open alert of its kind (starts no later than ``open_until_s``), ends no later than its
    last evidence and is no more severe (see ``AlertEngine._apply``). The engine's state only
    moves these limits forward, so what is covered stays covered.

    Attributes
    ----------
    closed_end_s : float
        Last evidence of the latest closed alert (``-inf`` when none).
    open_last_s : float
        Last evidence of the open alert (``-inf`` when none).
    open_until_s : float
        ``open_last_s`` plus the hold-off: a later start is a new episode.
    open_severity : Severity or None
        Severity of the open alert (``None`` when none).
    """

    closed_end_s: float = -math.inf
    open_last_s: float = -math.inf
    open_until_s: float = -math.inf
    open_severity: Severity | None = None

    def covers(self, severity: Severity, start_s: float, end_s: float) -> bool:
        """Whether an episode with this severity and span is covered (``start_s <= end_s``)."""
        if end_s <= self.closed_end_s:
            return True
        return (
            self.open_severity is not None
            and start_s <= self.open_until_s
            and end_s <= self.open_last_s
            and not severity > self.open_severity
        )


def _covered(
    reported: Mapping[str, Reported] | None,
    kind: str,
    severity: Severity,
    start_s: float,
    end_s: float,
) -> bool:
    """Whether ``reported`` covers an episode (never when ``reported`` is ``None``)."""
    if reported is None:
        return False
    r = reported.get(kind)
    return r is not None and r.covers(severity, start_s, end_s)


def _span_of(series: BeatSeries, idx: np.ndarray | range) -> tuple[float, float]:
    """``(start_s, end_s)`` that :func:`_episode` gives an episode of the beats ``idx``."""
    return float(series.time_s[idx[0]]), float(series.time_s[idx[-1]])


# --------------------------------------------------------------------------------------------
# Heart rate
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HeartRate:
    """Heart rate at every beat.

    Attributes
    ----------
    time_s : numpy.ndarray
        Beat times (s).
    instantaneous_bpm : numpy.ndarray
        ``60 / RR`` of the interval ending at each beat; NaN for the first beat and for invalid
        (noisy) intervals.
    smoothed_bpm : numpy.ndarray
        ``60 / mean(RR)`` over the valid intervals ending in the averaging window at each beat;
        NaN while fewer than ``min_intervals`` valid intervals are available.
    """

    time_s: np.ndarray
    instantaneous_bpm: np.ndarray
    smoothed_bpm: np.ndarray


def heart_rate(
    series: BeatSeries,
    *,
    window_beats: int | None = 10,
    window_s: float | None = None,
    min_intervals: int = 4,
) -> HeartRate:
    """Instantaneous and smoothed heart rate.

    The smoothed rate averages RR intervals (not rates) over the last ``window_beats`` intervals
    or, when ``window_s`` is given, over the intervals ending in the last ``window_s`` seconds,
    which is the averaging that IEC 60601-2-27 (201.7.9.2.9.101 b, heart-rate averaging) asks
    monitors to disclose. Invalid intervals (noise) are skipped.

    Parameters
    ----------
    series : BeatSeries
    window_beats : int or None
        Number of RR intervals averaged (ignored when ``window_s`` is given).
    window_s : float or None
        Averaging window in seconds.
    min_intervals : int
        Fewest valid intervals needed for a smoothed value.

    Returns
    -------
    HeartRate

    >>> s = BeatSeries.from_samples([0, 360, 720, 1080, 1440, 1800], ["N"] * 6, fs=360.0)
    >>> hr = heart_rate(s, window_beats=4)
    >>> hr.instantaneous_bpm.tolist()[1:], hr.smoothed_bpm.tolist()[-1]
    ([60.0, 60.0, 60.0, 60.0, 60.0], 60.0)
    """
    if window_s is None and (window_beats is None or int(window_beats) < 1):
        raise ValueError(f"window_beats must be >= 1 (or give window_s), got {window_beats!r}")
    if window_s is not None:
        _check_positive(window_s, "window_s")
    if int(min_intervals) < 1:
        raise ValueError(f"min_intervals must be >= 1, got {min_intervals!r}")
    n = len(series)
    rr_end = np.full(n, np.nan)  # RR interval ending at each beat
    valid_end = np.zeros(n, dtype=bool)
    if n > 1:
        rr_end[1:] = series.rr_s
        valid_end[1:] = series.rr_valid() & (series.rr_s > 0)
    inst = np.where(valid_end, 60.0 / np.where(valid_end, rr_end, 1.0), np.nan)
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid_end, rr_end, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(valid_end)])
    stop = np.arange(1, n + 1)
    if window_s is not None:
        start = np.searchsorted(series.time_s, series.time_s - float(window_s), side="right")
        # the interval ending at beat k lies in the window when k >= start (k >= 1 implicitly)
    else:
        start = np.maximum(stop - int(window_beats), 0)  # type: ignore[arg-type]
    total = csum[stop] - csum[start]
    count = ccnt[stop] - ccnt[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = np.where(count >= int(min_intervals), 60.0 * count / total, np.nan)
    # round to 1e-6 bpm so that a rate exactly at a limit is not pushed across it by float error
    return HeartRate(series.time_s.copy(), np.round(inst, 6), np.round(smoothed, 6))


def _smoothed_rate(series: BeatSeries, window_beats: int) -> np.ndarray:
    """``heart_rate(...).smoothed_bpm`` of the rate rules, computed once per series (read-only).

    The same operations as :func:`heart_rate` (running sums of the valid RR intervals, the
    differences of those sums over the window, rounded to 1e-6 bpm), minus the instantaneous
    rate and the floating-point error state handling; a test checks equality.
    """
    key = ("smoothed_rate", int(window_beats))
    hit = series._memo.get(key)
    if hit is None:
        hit = series._memo[key] = _frozen(
            _smoothed_bpm(series, int(window_beats), min(4, int(window_beats)))
        )
    return hit


def _smoothed_bpm(series: BeatSeries, window_beats: int, min_intervals: int) -> np.ndarray:
    n = len(series)
    if n == 0:
        return np.zeros(0)
    csum = np.zeros(n + 1)
    ccnt = np.zeros(n + 1, dtype=np.int64)
    if n > 1:
        rr = series.rr_s
        valid = series.rr_valid() & (rr > 0)
        np.cumsum(np.where(valid, rr, 0.0), out=csum[2:])
        np.cumsum(valid, out=ccnt[2:])
    start = np.arange(1 - window_beats, n + 1 - window_beats)
    np.maximum(start, 0, out=start)
    total = csum[1:] - csum[start]
    count = ccnt[1:] - ccnt[start]
    ok = count >= min_intervals
    smoothed = np.full(n, np.nan)
    np.divide(60.0 * count, total, out=smoothed, where=ok)
    return np.round(smoothed, 6)


def _rate_episodes(
    kind: str,
    series: BeatSeries,
    condition: np.ndarray,
    smoothed: np.ndarray,
    *,
    min_duration_s: float,
    severity_of: Callable[[np.ndarray], Severity],
    describe: Callable[[np.ndarray], str],
    extreme: Callable[[np.ndarray], float],
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    out = []
    n = len(series)
    for a, b in _runs(condition):
        dur = float(series.time_s[b - 1] - series.time_s[a])
        if dur < min_duration_s:
            continue
        rates = smoothed[a:b]
        severity = severity_of(rates)
        if _covered(reported, kind, severity, *_span_of(series, range(a, b))):
            continue
        values = {
            "extreme_bpm": extreme(rates),
            "mean_bpm": float(np.mean(rates)),
            "duration_s": dur,
        }
        out.append(
            _episode(
                kind, severity, series, np.arange(a, b), values, describe(rates), ongoing=b == n
            )
        )
    return tuple(out)


def _rate_cannot_last(
    series: BeatSeries,
    threshold_bpm: float,
    *,
    below: bool,
    window_beats: int,
    min_duration_s: float,
) -> bool:
    """True when no smoothed-rate run below (``below``) or above the limit can last long enough.

    The smoothed rate at beat ``k`` (rounded to 1e-6 bpm) is ``60 / mean`` of the valid positive
    RR intervals among the ``window_beats`` intervals ending at beats ``k - window_beats + 1 ..
    k``, so it falls below ``threshold_bpm`` only if one of them is longer than ``60 /
    threshold_bpm`` (less float error) and rises above it only if one is shorter: call those
    intervals *offending* (with a 1 % margin that dwarfs the rounding and summation errors). An
    offending interval ``j`` (beats ``j``, ``j + 1``) enters the averages of beats ``j + 1 ..
    j + window_beats`` only, so every beat past the limit lies in one of those ranges, and a run
    of such beats in one chunk of overlapping or adjacent ranges. When every chunk spans less
    than ``min_duration_s`` (no offending interval at all: no chunk), no run lasts
    ``min_duration_s`` and the rule returns no episode, as the full computation would: an exact
    shortcut. Float subtraction is monotone, so a run's computed duration is at most its
    chunk's computed span.
    """
    rr = series.rr_s
    if rr.size == 0:
        return True  # fewer than two beats: no smoothed rate at all
    if below:
        offending = rr >= 0.99 * 60.0 / threshold_bpm  # > 0: positive
    else:
        if threshold_bpm < 1.0:
            return False
        offending = (rr < 1.01 * 60.0 / threshold_bpm) & (rr > 0)
    offending &= series.rr_valid()  # the intervals the smoothed rate averages
    j = offending.nonzero()[0]
    if j.size == 0:
        return True  # the smoothed rate never crosses the limit
    w = int(window_beats)
    if j.size > 32 or w < 1:
        return False  # many offending intervals: a long run is likely, compute it
    t = series.time_s
    last = t.size - 1
    idx = j.tolist()
    first = prev = idx[0]
    for x in idx[1:]:
        if x - prev > w:  # beat ranges [first + 1, prev + w] and [x + 1, ...] do not touch
            if float(t[min(prev + w, last)] - t[first + 1]) >= min_duration_s:
                return False
            first = x
        prev = x
    return float(t[min(prev + w, last)] - t[first + 1]) < min_duration_s


def detect_bradycardia(
    series: BeatSeries,
    *,
    threshold_bpm: float = 50.0,
    high_bpm: float = 40.0,
    min_duration_s: float = 10.0,
    window_beats: int = 10,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Sustained bradycardia: smoothed heart rate below ``threshold_bpm`` for ``min_duration_s``.

    Severity is ``warning``, ``high`` once the smoothed rate falls below ``high_bpm``. The 50 bpm
    default follows the 2018 ACC/AHA/HRS bradycardia guideline (Kusumoto et al. 2019), which
    defines sinus bradycardia as a rate < 50 bpm.

    Parameters
    ----------
    series : BeatSeries
    threshold_bpm : float
        Alarm limit (bpm).
    high_bpm : float
        Below this rate the episode is ``high`` severity.
    min_duration_s : float
        The rate must stay below the limit this long (s) (the alarm condition delay).
    window_beats : int
        RR intervals averaged for the smoothed rate (:func:`heart_rate`).
    reported : mapping of str to Reported, optional
        Episodes it covers are not built (see :class:`Reported`; the alert engine's state).

    Returns
    -------
    tuple of Episode
        Kind ``"bradycardia"``; ``values``: ``extreme_bpm`` (lowest), ``mean_bpm``, ``duration_s``.
    """
    _check_positive(threshold_bpm, "threshold_bpm")
    if _rate_cannot_last(
        series,
        threshold_bpm,
        below=True,
        window_beats=window_beats,
        min_duration_s=min_duration_s,
    ):
        return ()
    smoothed = _smoothed_rate(series, window_beats)
    cond = smoothed < threshold_bpm  # NaN (too few intervals) compares False
    return _rate_episodes(
        "bradycardia",
        series,
        cond,
        smoothed,
        min_duration_s=min_duration_s,
        severity_of=lambda r: Severity.HIGH if np.min(r) < high_bpm else Severity.WARNING,
        describe=lambda r: (
            f"Bradycardia: heart rate down to {np.min(r):.0f} bpm (limit {threshold_bpm:g})"
        ),
        extreme=lambda r: float(np.min(r)),
        reported=reported,
    )


def detect_tachycardia(
    series: BeatSeries,
    *,
    threshold_bpm: float = 120.0,
    high_bpm: float = 150.0,
    min_duration_s: float = 10.0,
    window_beats: int = 10,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Sustained tachycardia: smoothed heart rate above ``threshold_bpm`` for ``min_duration_s``.

    Severity ``warning``; ``high`` above ``high_bpm``. The 120 bpm default is a common adult
    monitor alarm limit (configurable, IEC 60601-2-27 201.12.1.101 lets the operator set it).

    ``reported``: as for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kind ``"tachycardia"``; ``values``: ``extreme_bpm`` (highest), ``mean_bpm``, ``duration_s``.
    """
    _check_positive(threshold_bpm, "threshold_bpm")
    if _rate_cannot_last(
        series,
        threshold_bpm,
        below=False,
        window_beats=window_beats,
        min_duration_s=min_duration_s,
    ):
        return ()
    smoothed = _smoothed_rate(series, window_beats)
    cond = smoothed > threshold_bpm  # NaN (too few intervals) compares False
    return _rate_episodes(
        "tachycardia",
        series,
        cond,
        smoothed,
        min_duration_s=min_duration_s,
        severity_of=lambda r: Severity.HIGH if np.max(r) > high_bpm else Severity.WARNING,
        describe=lambda r: (
            f"Tachycardia: heart rate up to {np.max(r):.0f} bpm (limit {threshold_bpm:g})"
        ),
        extreme=lambda r: float(np.max(r)),
        reported=reported,
    )


# --------------------------------------------------------------------------------------------
# Pauses
# --------------------------------------------------------------------------------------------
def detect_pauses(
    series: BeatSeries,
    *,
    pause_s: float = 2.0,
    asystole_s: float = 3.0,
    now_s: float | None = None,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Pauses and asystole: a valid RR interval longer than ``pause_s``.

    A pause longer than ``pause_s`` (2.0 s) is ``high`` severity; longer than ``asystole_s``
    (3.0 s, the pause length the 2018 ACC/AHA/HRS bradycardia guideline treats as significant)
    it is ``critical`` (IEC 60601-2-27 asystole alarm, high priority). When ``now_s`` is given,
    the open interval after the last beat is checked too, so asystole is reported while it is
    happening (the episode is then ``ongoing`` and ends at ``now_s``). Intervals that touch a
    noisy beat or overlap a noisy span are skipped (lead-off is not asystole). ``reported``: as
    for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kind ``"pause"``; ``values``: ``rr_s`` (longest gap), ``asystole`` (bool).
    """
    _check_positive(pause_s, "pause_s")
    _check_positive(asystole_s, "asystole_s")
    if asystole_s < pause_s:
        raise ValueError(f"asystole_s ({asystole_s}) must be >= pause_s ({pause_s})")
    out: list[Episode] = []
    n = len(series)

    def make(rr: float, idx: np.ndarray, start: float, end: float, ongoing: bool) -> Episode | None:
        asys = round(rr, 6) > asystole_s
        sev = Severity.CRITICAL if asys else Severity.HIGH
        if _covered(reported, "pause", sev, start, end):
            return None
        msg = f"{'Asystole' if asys else 'Pause'}: no beat for {rr:.1f} s"
        return _episode(
            "pause",
            sev,
            series,
            idx,
            {"rr_s": rr, "asystole": asys},
            msg,
            start_s=start,
            end_s=end,
            ongoing=ongoing,
        )

    if n > 1:
        rr = series.rr_s
        long = np.round(rr, 6) > pause_s
        hits = (series.rr_valid() & long).nonzero()[0] if long.any() else ()
        for k in hits:
            ep = make(
                float(rr[k]),
                np.array([k, k + 1]),
                float(series.time_s[k]),
                float(series.time_s[k + 1]),
                False,
            )
            if ep is not None:
                out.append(ep)
    if now_s is not None and n > 0:
        last = float(series.time_s[-1])
        gap = float(now_s) - last
        if round(gap, 6) > pause_s and series.beat_ok()[-1]:
            clean = not any(
                start < float(now_s) and stop > last for start, stop in series.noisy_spans_s
            )
            ep = make(gap, np.array([n - 1]), last, float(now_s), True) if clean else None
            if ep is not None:
                out.append(ep)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Ventricular ectopy
# --------------------------------------------------------------------------------------------
def _is_label(series: BeatSeries, label: str, min_confidence: float) -> np.ndarray:
    key = ("is_label", label, float(min_confidence))
    hit = series._memo.get(key)
    if hit is None:
        hit = series._memo[key] = _frozen(
            (series.label == label) & (series.confidence >= min_confidence) & series.beat_ok()
        )
    return hit


def detect_ventricular_runs(
    series: BeatSeries,
    *,
    vt_rate_bpm: float = 100.0,
    sustained_s: float = 30.0,
    min_confidence: float = 0.0,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Ventricular couplets, slow ventricular runs and ventricular tachycardia.

    Consecutive valid V beats (confidence >= ``min_confidence``, valid RR intervals between them)
    form a run. Following the 2017 AHA/ACC/HRS ventricular-arrhythmia guideline (Al-Khatib et al.)
    and ANSI/AAMI EC57:

    * 2 V beats: ``"v_couplet"`` (``warning``);
    * >= 3 V beats at a rate (``60 / mean RR`` inside the run) above ``vt_rate_bpm``: ``"vt"``,
      ``high`` severity (non-sustained VT), ``critical`` once it lasts >= ``sustained_s`` (30 s,
      sustained VT);
    * >= 3 V beats at or below ``vt_rate_bpm``: ``"v_run"`` (idioventricular rhythm, ``warning``).

    ``reported``: as for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        ``values``: ``n_beats``, ``rate_bpm``, ``duration_s``, ``sustained``.

    >>> s = BeatSeries.from_samples([0, 288, 432, 576, 720], ["N", "V", "V", "V", "N"], fs=360.0)
    >>> [(e.kind, e.severity.value, e.values["rate_bpm"]) for e in detect_ventricular_runs(s)]
    [('vt', 'high', 150.0)]
    """
    _check_positive(vt_rate_bpm, "vt_rate_bpm")
    _check_positive(sustained_s, "sustained_s")
    n = len(series)
    if n == 0:
        return ()
    isv = _is_label(series, "V", min_confidence)
    if n < 2:
        return ()
    link = isv[:-1] & isv[1:]
    if not link.any():
        return ()
    link &= series.rr_valid()
    out = []
    for a, b in _runs(link):  # links a..b-1 join beats a..b
        first, last = a, b
        n_beats = last - first + 1
        duration = float(series.time_s[last] - series.time_s[first])
        rate = round(60.0 * (n_beats - 1) / duration, 6) if duration > 0 else float("inf")
        ongoing = last == n - 1
        if reported is not None:
            if n_beats == 2:
                kind, sev = "v_couplet", Severity.WARNING
            elif rate > vt_rate_bpm:
                kind = "vt"
                sev = Severity.CRITICAL if duration >= sustained_s else Severity.HIGH
            else:
                kind, sev = "v_run", Severity.WARNING
            span = (float(series.time_s[first]), float(series.time_s[last]))
            if _covered(reported, kind, sev, *span):
                continue
        idx = np.arange(first, last + 1)
        values = {"rate_bpm": rate, "duration_s": duration, "sustained": False}
        if n_beats == 2:
            out.append(
                _episode(
                    "v_couplet",
                    Severity.WARNING,
                    series,
                    idx,
                    values,
                    f"Ventricular couplet ({rate:.0f} bpm)",
                    ongoing=ongoing,
                )
            )
        elif rate > vt_rate_bpm:
            sustained = duration >= sustained_s
            values["sustained"] = sustained
            sev = Severity.CRITICAL if sustained else Severity.HIGH
            label = "Sustained VT" if sustained else "VT"
            out.append(
                _episode(
                    "vt",
                    sev,
                    series,
                    idx,
                    values,
                    f"{label}: {n_beats} ventricular beats at {rate:.0f} bpm over {duration:.1f} s",
                    ongoing=ongoing,
                )
            )
        else:
            out.append(
                _episode(
                    "v_run",
                    Severity.WARNING,
                    series,
                    idx,
                    values,
                    f"Ventricular run: {n_beats} beats at {rate:.0f} bpm",
                    ongoing=ongoing,
                )
            )
    return tuple(out)


def detect_ventricular_patterns(
    series: BeatSeries,
    *,
    min_cycles: int = 4,
    max_rr_s: float = 2.0,
    min_confidence: float = 0.0,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Ventricular bigeminy (``N V N V ...``) and trigeminy (``N N V N N V ...``).

    A bigeminal (trigeminal) chain is a sequence of valid V beats each followed, one (two) beats
    later, by the next V beat, with only supraventricular (N or S) valid beats between them and
    valid RR intervals no longer than ``max_rr_s`` throughout (a pause breaks the pattern);
    ``min_cycles`` V beats make an episode (``warning``). ``reported``: as for
    :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kinds ``"ventricular_bigeminy"`` / ``"ventricular_trigeminy"``; ``values``: ``cycles``.
    """
    if int(min_cycles) < 2:
        raise ValueError(f"min_cycles must be >= 2, got {min_cycles!r}")
    n = len(series)
    if n < 3:
        return ()
    isv = _is_label(series, "V", min_confidence)
    vpos = isv.nonzero()[0]
    if vpos.size < int(min_cycles):  # a chain of min_cycles V beats is impossible
        return ()
    gap = vpos[1:] - vpos[:-1]  # np.diff(vpos)
    need = int(min_cycles) - 1  # links of one step in a chain of min_cycles V beats
    if np.count_nonzero(gap == 2) < need and np.count_nonzero(gap == 3) < need:
        return ()  # not enough V-to-V gaps of 2 (3) beats for any chain, clean or not
    ok = series.beat_ok()
    conducted = ((series.label == "N") | (series.label == "S")) & ok
    rr_ok = series.rr_valid() & (series.rr_s <= max_rr_s)
    # prefix counts of non-conducted beats and of bad RR intervals: "all of [a, b) are good"
    # is "no bad one in [a, b)", an O(1) test per pair
    bad_beat = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(~conducted, out=bad_beat[1:])
    bad_rr = np.zeros(n, dtype=np.int64)
    np.cumsum(~rr_ok, out=bad_rr[1:])
    p, q = vpos[:-1], vpos[1:]
    # pairs of consecutive V beats with only good beats and intervals between them
    clean = (bad_beat[q] == bad_beat[p + 1]) & (bad_rr[q] == bad_rr[p])
    out = []
    for kind, step in (("ventricular_bigeminy", 2), ("ventricular_trigeminy", 3)):
        # link between consecutive V beats at positions p and p+step
        chain_ok = clean & (gap == step)
        for a, b in _runs(chain_ok):
            chain = vpos[a : b + 1]
            cycles = chain.size
            if cycles < int(min_cycles):
                continue
            idx = np.arange(
                chain[0] - 1 if chain[0] > 0 and conducted[chain[0] - 1] else chain[0],
                chain[-1] + 1,
            )
            if _covered(reported, kind, Severity.WARNING, *_span_of(series, idx)):
                continue
            name = "bigeminy" if step == 2 else "trigeminy"
            out.append(
                _episode(
                    kind,
                    Severity.WARNING,
                    series,
                    idx,
                    {"cycles": int(cycles)},
                    f"Ventricular {name}: {cycles} cycles",
                    ongoing=chain[-1] >= n - step,
                )
            )
    return tuple(sorted(out, key=lambda e: e.start_s))


def detect_frequent_ectopy(
    series: BeatSeries,
    *,
    pvc_per_min: float = 6.0,
    sveb_per_min: float = 6.0,
    window_s: float = 60.0,
    min_confidence: float = 0.0,
    reported: Mapping[str, Reported] | None = None,
    skip: Collection[str] = (),
) -> tuple[Episode, ...]:
    """Frequent ventricular (PVC) or supraventricular (SVEB) ectopic beats.

    Counts valid V (S) beats in a sliding window of ``window_s`` seconds ending at each ectopic
    beat; the episode spans the ectopic beats whose window count exceeds ``pvc_per_min``
    (``sveb_per_min``) scaled to the window. Six PVCs per minute is the classic "frequent PVC"
    alarm limit (Lown grading; a common bedside-monitor default, configurable per
    IEC 60601-2-27). ``reported``: as for :func:`detect_bradycardia`; ``skip``: kinds not
    to look for (the two counts are independent).

    Returns
    -------
    tuple of Episode
        Kinds ``"frequent_pvc"`` / ``"frequent_sveb"`` (``warning``); ``values``:
        ``max_per_min`` (the highest windowed count expressed per minute).
    """
    _check_positive(window_s, "window_s")
    out = []
    n = len(series)
    for kind, label, limit, name in (
        ("frequent_pvc", "V", pvc_per_min, "PVCs"),
        ("frequent_sveb", "S", sveb_per_min, "SVEBs"),
    ):
        _check_positive(limit, "pvc_per_min" if label == "V" else "sveb_per_min")
        if kind in skip:
            continue
        pos = _is_label(series, label, min_confidence).nonzero()[0]
        if pos.size == 0 or not pos.size > limit * window_s / 60.0:
            continue  # no window can hold more beats than the series
        t = series.time_s[pos]
        first_in = np.searchsorted(t, t - window_s, side="right")
        counts = np.arange(pos.size) - first_in + 1
        hot = counts > limit * window_s / 60.0
        if not hot.any():
            continue
        # an ectopic beat belongs to an episode when it lies in some window that exceeds the
        # limit: windows [first_in[j], j] of the hot j, marked by +1/-1 at their ends
        hot_j = hot.nonzero()[0]
        edge = np.zeros(pos.size + 1, dtype=np.int64)
        np.add.at(edge, first_in[hot_j], 1)
        np.add.at(edge, hot_j + 1, -1)
        member = np.cumsum(edge[:-1]) > 0
        for a, b in _runs(member):
            idx = pos[a:b]
            if _covered(reported, kind, Severity.WARNING, *_span_of(series, idx)):
                continue
            per_min = float(np.max(np.where(hot[a:b], counts[a:b], 0))) * 60.0 / window_s
            out.append(
                _episode(
                    kind,
                    Severity.WARNING,
                    series,
                    idx,
                    {"max_per_min": per_min},
                    f"Frequent {name}: {per_min:.0f}/min (limit {limit:g}/min)",
                    ongoing=bool(series.time_s[-1] - series.time_s[idx[-1]] < window_s) and n > 0,
                )
            )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# AF-like irregular rhythm
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _AfFeatures:
    nrmssd: float
    tpr: float
    shannon_entropy: float


def _n_trim(n: int) -> int:
    """RR values removed from each tail: 8 of 128 in Dash et al. (2009), i.e. n / 16."""
    return (n + 8) // 16


def _af_features(rr: np.ndarray) -> _AfFeatures:
    """Dash et al. (2009) features of one RR segment (after trimming 1/16 outliers per tail)."""
    n = rr.size
    trim = _n_trim(n)
    if trim > 0:
        order = np.argsort(rr, kind="stable")
        keep = np.sort(order[trim : n - trim])
        rr = rr[keep]
    m = rr.size
    mean = float(np.mean(rr))
    nrmssd = float(np.sqrt(np.mean(np.diff(rr) ** 2)) / mean) if m > 1 and mean > 0 else 0.0
    if m >= 3:
        mid = rr[1:-1]
        tp = ((mid > rr[:-2]) & (mid > rr[2:])) | ((mid < rr[:-2]) & (mid < rr[2:]))
        tpr = float(np.count_nonzero(tp)) / m
    else:
        tpr = 0.0
    lo, hi = float(np.min(rr)), float(np.max(rr))
    if hi > lo:
        hist = _histogram16(rr, lo, hi)
        p = hist[hist > 0] / m
        she = float(-np.sum(p * np.log(p)) / np.log(16))
    else:
        she = 0.0
    return _AfFeatures(nrmssd, tpr, she)


def _histogram16(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.histogram(x, bins=16, range=(lo, hi))[0]`` for ``lo = min(x) < hi = max(x)``.

    NumPy's own equal-bin algorithm (bin index from the scaled offset, then corrected against
    the ``linspace`` edges), without its generic argument handling; a test checks equality.
    """
    edges = np.linspace(lo, hi, 17)
    idx = ((np.subtract(x, lo) / np.subtract(hi, lo)) * 16).astype(np.intp)
    idx[idx == 16] -= 1
    idx[x < edges[idx]] -= 1
    idx[(x >= edges[idx + 1]) & (idx != 15)] += 1
    return np.bincount(idx, minlength=16)


def _tpr_bounds(n: int, z: float = 3.0) -> tuple[float, float]:
    """Turning-point-ratio range of a random series of length ``n``: ``mu +- z sigma``.

    For i.i.d. data the number of turning points has mean ``2(n-2)/3`` and variance
    ``(16n-29)/90`` (Kendall & Stuart); Dash et al. use this band (0.54-0.77 at 128 beats).
    """
    mu = 2.0 * (n - 2) / 3.0
    sigma = math.sqrt((16.0 * n - 29.0) / 90.0)
    return (mu - z * sigma) / n, (mu + z * sigma) / n


def _af_dash2009(
    rr: np.ndarray, *, nrmssd_min: float, entropy_min: float
) -> tuple[bool, _AfFeatures]:
    f = _af_features(rr)
    m = rr.size - 2 * _n_trim(rr.size)
    lo, hi = _tpr_bounds(m)
    return (f.nrmssd > nrmssd_min and lo < f.tpr < hi and f.shannon_entropy > entropy_min), f


def _af_rmssd_tpr(
    rr: np.ndarray, *, nrmssd_min: float, entropy_min: float
) -> tuple[bool, _AfFeatures]:
    f = _af_features(rr)
    m = rr.size - 2 * _n_trim(rr.size)
    lo, hi = _tpr_bounds(m)
    return (f.nrmssd > nrmssd_min and lo < f.tpr < hi), f


def _af_may_pass(rr: np.ndarray, starts: list[int], width: int, nrmssd_min: float) -> np.ndarray:
    """False for the windows ``rr[s : s + width]`` whose normalised RMSSD is at most ``nrmssd_min``.

    After trimming (:func:`_n_trim`) every kept value lies between the window's order
    statistics ``lo = v[trim]`` and ``hi = v[width - 1 - trim]``, so each successive difference
    is at most ``hi - lo`` and the mean at least ``lo``: the RMSSD over the mean is at most
    ``(hi - lo) / lo``. Floating-point rounding is monotone, so the computed normalised RMSSD
    of :func:`_af_windows` exceeds that bound by a few ulps at most; the ``1e-9`` relative
    margin covers it. A window with such a bound ``<= nrmssd_min`` fails the first test of both
    built-in methods. One partition per window instead of the full features.
    """
    win = rr[np.asarray(starts, dtype=np.intp)[:, None] + np.arange(width)]
    trim = _n_trim(width)
    part = np.partition(win, (trim, width - 1 - trim), axis=1)
    lo = part[:, trim]
    hi = part[:, width - 1 - trim]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (hi - lo) / lo
    return ~((lo > 0) & (bound * (1.0 + 1e-9) <= nrmssd_min))


def _af_windows(
    rr: np.ndarray,
    starts: list[int],
    width: int,
    method: str,
    nrmssd_min: float,
    entropy_min: float,
) -> list[tuple[bool, _AfFeatures | None]] | None:
    """The built-in AF classifiers on every window ``rr[s : s + width]`` at once.

    Row-wise NumPy reductions over the stacked windows: the same numbers as calling
    :func:`_af_dash2009` / :func:`_af_rmssd_tpr` window by window (a test checks equality). The
    Shannon entropy, a per-window histogram, is computed only for the windows whose other tests
    pass (the only ones whose features are kept). ``None`` for a method added to
    :data:`AF_METHODS` by a user (classified window by window).
    """
    if AF_METHODS.get(method) not in (_af_dash2009, _af_rmssd_tpr):
        return None
    # (n_windows, width) C-contiguous copy, as sliding_window_view(rr, width)[starts] gives
    win = rr[np.asarray(starts, dtype=np.intp)[:, None] + np.arange(width)]
    trim = _n_trim(width)
    if trim > 0:
        order = np.argsort(win, axis=1, kind="stable")
        keep = np.sort(order[:, trim : width - trim], axis=1)
        win = win[np.arange(win.shape[0])[:, None], keep]  # take_along_axis(win, keep, axis=1)
    m = win.shape[1]
    mean = win.mean(axis=1)
    if m > 1:
        nrmssd = np.sqrt(np.mean(np.diff(win, axis=1) ** 2, axis=1)) / mean
        nrmssd = np.where(mean > 0, nrmssd, 0.0)
    else:
        nrmssd = np.zeros(len(starts))
    if m >= 3:
        mid = win[:, 1:-1]
        tp = ((mid > win[:, :-2]) & (mid > win[:, 2:])) | ((mid < win[:, :-2]) & (mid < win[:, 2:]))
        tpr = np.count_nonzero(tp, axis=1) / m
    else:
        tpr = np.zeros(len(starts))
    lo_b, hi_b = _tpr_bounds(width - 2 * trim)
    # rows that pass the first two tests (as float comparisons: the same as on Python floats)
    passing = np.flatnonzero((nrmssd > nrmssd_min) & (lo_b < tpr) & (tpr < hi_b))
    hists = _histogram16_rows(win[passing]) if passing.size else {}
    hist_of = {int(passing[r]): h for r, h in hists.items()}  # by window number
    out: list[tuple[bool, _AfFeatures | None]] = []
    for j in range(len(starts)):
        f_rmssd, f_tpr = float(nrmssd[j]), float(tpr[j])
        if not (f_rmssd > nrmssd_min and lo_b < f_tpr < hi_b):
            out.append((False, None))  # rejected before the entropy test: features not kept
            continue
        hist = hist_of.get(j)
        if hist is not None:
            p = hist[hist > 0] / m
            she = float(-np.sum(p * np.log(p)) / np.log(16))
        else:  # every RR of the window equal (max == min)
            she = 0.0
        is_af = method == "rmssd_tpr" or she > entropy_min
        out.append((is_af, _AfFeatures(f_rmssd, f_tpr, she)))
    return out


def _histogram16_rows(rows: np.ndarray) -> dict[int, np.ndarray]:
    """:func:`_histogram16` of every row of ``rows`` with ``max > min``, by row number.

    The same operations, row-wise: the row's min and max (exact), the ``linspace`` edges as
    NumPy builds them for scalar limits (``arange(17) * step + lo`` with ``step = (hi - lo) /
    16``, the last edge set to ``hi``; a row whose step underflows to 0 is left to
    :func:`_histogram16` itself, as ``linspace`` treats it apart), the scaled bin index and its
    two corrections against the edges, and per-row counts. Element-wise IEEE operations on the
    same operands give the same bits in any array shape; a test checks equality.
    """
    lo = rows.min(axis=1)
    hi = rows.max(axis=1)
    ranged = np.flatnonzero(hi > lo)
    out: dict[int, np.ndarray] = {}
    if ranged.size == 0:
        return out
    x, lo, hi = rows[ranged], lo[ranged], hi[ranged]
    delta = hi - lo
    step = delta / 16
    tiny = step == 0
    if tiny.any():
        for r in np.flatnonzero(tiny).tolist():
            out[int(ranged[r])] = _histogram16(x[r], float(lo[r]), float(hi[r]))
        keep = np.flatnonzero(~tiny)
        ranged, x, lo, hi, delta, step = (
            ranged[keep],
            x[keep],
            lo[keep],
            hi[keep],
            delta[keep],
            step[keep],
        )
        if ranged.size == 0:
            return out
    n_rows = ranged.size
    edges = np.arange(17, dtype=np.float64)[None, :] * step[:, None]
    edges += lo[:, None]
    edges[:, -1] = hi
    idx = (((x - lo[:, None]) / delta[:, None]) * 16).astype(np.intp)
    idx[idx == 16] -= 1
    rows_at = np.arange(n_rows)[:, None]  # edges[rows_at, idx]: take_along_axis(edges, idx, 1)
    idx[x < edges[rows_at, idx]] -= 1
    idx[(x >= edges[rows_at, idx + 1]) & (idx != 15)] += 1
    idx += 16 * np.arange(n_rows)[:, None]
    counts = np.bincount(idx.ravel(), minlength=16 * n_rows).reshape(n_rows, 16)
    for r, row in enumerate(ranged.tolist()):
        out[row] = counts[r]
    return out


def _af_windows_cached(
    cache: dict[Any, Any],
    rr: np.ndarray,
    starts: list[int],
    width: int,
    method: str,
    nrmssd_min: float,
    entropy_min: float,
) -> list[tuple[bool, _AfFeatures | None]]:
    """:func:`_af_windows` of the windows not in ``cache``; the others from it.

    Exact: every quantity :func:`_af_windows` computes for a window comes from that window's
    row alone (element-wise operations and reductions along the row; the entropy window by
    window), so a window's result does not depend on which other windows share its batch, and
    a window with the same bytes and parameters gets the same result. On a sliding beat window
    that advances by the rule's step the same windows come back call after call (the alert
    engine's windows nearly all hit). ``cache`` ends up holding this call's windows only.
    """
    params = (method, width, float(nrmssd_min), float(entropy_min))
    old = cache if cache.get("params") == params else {}
    keys = [rr[s : s + width].tobytes() for s in starts]
    out: list[tuple[bool, _AfFeatures | None] | None] = [old.get(k) for k in keys]
    missing = [j for j, r in enumerate(out) if r is None]
    if missing:
        fresh = _af_windows(
            rr, [starts[j] for j in missing], width, method, nrmssd_min, entropy_min
        )
        assert fresh is not None  # built-in methods only
        for j, r in zip(missing, fresh, strict=True):
            out[j] = r
    cache.clear()
    cache["params"] = params
    cache.update(zip(keys, out, strict=True))
    return out  # type: ignore[return-value]


def _median(values: list[float]) -> float:
    """``float(np.median(values))`` of a list of floats (NaN when empty), without NumPy's set-up.

    The middle value, or the mean of the two middle values computed as NumPy does for two
    elements (their sum over 2); NaN in the list (or an empty list) goes to NumPy itself.
    """
    n = len(values)
    if n == 0 or any(v != v for v in values):
        return float(np.median(values)) if n else float("nan")
    ordered = sorted(values)
    half = n // 2
    if n % 2:
        return float(ordered[half])
    return float((ordered[half - 1] + ordered[half]) / 2)


#: AF-like window classifiers: name -> function(rr_s, nrmssd_min=, entropy_min=) -> (is_af, features).
AF_METHODS: Mapping[str, Callable[..., tuple[bool, _AfFeatures]]] = {
    "dash2009": _af_dash2009,
    "rmssd_tpr": _af_rmssd_tpr,
}


def detect_af_like(
    series: BeatSeries,
    *,
    method: str = "dash2009",
    window_beats: int = 64,
    step_beats: int = 8,
    nrmssd_min: float = 0.1,
    entropy_min: float = 0.7,
    min_duration_s: float = 30.0,
    rvr_bpm: float = 110.0,
    exclude_labels: Sequence[str] = ("V", "F", "Q"),
    reported: Mapping[str, Reported] | None = None,
    window_cache: dict[Any, Any] | None = None,
) -> tuple[Episode, ...]:
    """Irregularly irregular, AF-like rhythm from RR intervals.

    Sliding windows of ``window_beats`` usable RR intervals (valid, neither beat in
    ``exclude_labels``, so that ventricular ectopy does not look like AF), moved by
    ``step_beats``, are classified by ``method``:

    * ``"dash2009"``: Dash et al. (2009): after removing the 1/16 shortest and longest RR, the
      rhythm is AF-like when the normalised RMSSD (RMSSD / mean RR) exceeds ``nrmssd_min`` (0.1),
      the turning-point ratio lies within the range expected of a random series
      (``mu +- 3 sigma``, 0.54-0.77 for 128 beats), and the Shannon entropy of the 16-bin RR
      histogram exceeds ``entropy_min`` (0.7);
    * ``"rmssd_tpr"``: the same without the entropy test (better suited to short windows, where a
      16-bin histogram is sparse).

    Dash et al. used 128-beat windows; the 64-beat default trades some specificity for a faster
    onset. Each RR interval is AF-like when at least half of the windows covering it are; runs
    lasting ``min_duration_s`` (30 s, the ESC 2020 minimum AF episode) become episodes,
    ``warning`` severity, ``high`` when the mean ventricular rate exceeds ``rvr_bpm`` (110 bpm,
    rapid ventricular response beyond the ESC lenient rate-control target). ``reported``: as
    for :func:`detect_bradycardia`.

    ``window_cache``: an empty dict the caller keeps between calls on successive windows of one
    stream (the alert engine does). The verdicts and features of the built-in methods' windows
    are kept there, keyed by the window's RR values (their bytes) and the parameters, and the
    windows seen before are not classified again: a window's verdict is a function of those
    values alone (:func:`_af_windows` works row by row), so the result is the same as without
    the cache. The dict is left holding only the last call's windows.

    Returns
    -------
    tuple of Episode
        Kind ``"af_like"``; ``values``: ``mean_bpm``, ``nrmssd``, ``tpr``, ``shannon_entropy``
        (medians over the AF-like windows), ``duration_s``, ``method``.
    """
    if method not in AF_METHODS:
        raise ValueError(f"unknown AF method {method!r}; valid methods: {sorted(AF_METHODS)}")
    if int(window_beats) < 16:
        raise ValueError(f"window_beats must be >= 16, got {window_beats!r}")
    if int(step_beats) < 1:
        raise ValueError(f"step_beats must be >= 1, got {step_beats!r}")
    classify = AF_METHODS[method]
    n = len(series)
    if n < window_beats + 1:
        return ()
    usable_beat = series.beat_ok().copy()
    for label in set(exclude_labels):  # ~np.isin(series.label, exclude_labels), elementwise
        usable_beat &= series.label != label
    usable = np.flatnonzero(
        series.rr_valid() & usable_beat[:-1] & usable_beat[1:]
    )  # interval k: beats k, k+1
    if usable.size < window_beats:
        return ()
    rr = series.rr_s[usable]
    w = int(window_beats)
    starts = list(range(0, usable.size - w + 1, int(step_beats)))
    if starts[-1] != usable.size - w:
        starts.append(usable.size - w)
    if classify in (_af_dash2009, _af_rmssd_tpr):
        # windows whose normalised RMSSD cannot exceed nrmssd_min are not AF-like: their
        # verdict is (False, None), what _af_windows gives them (its first test fails)
        maybe = _af_may_pass(rr, starts, w, nrmssd_min).nonzero()[0].tolist()
        if not maybe:
            return ()  # no AF-like window
        sub = [starts[j] for j in maybe]
        if window_cache is not None:
            found = _af_windows_cached(window_cache, rr, sub, w, method, nrmssd_min, entropy_min)
        else:
            found = _af_windows(rr, sub, w, method, nrmssd_min, entropy_min)  # type: ignore[assignment]
        verdicts: list[tuple[bool, _AfFeatures | None]] = [(False, None)] * len(starts)
        for j, r in zip(maybe, found, strict=True):
            verdicts[j] = r
    else:
        batched = _af_windows(rr, starts, w, method, nrmssd_min, entropy_min)
        verdicts = (
            batched
            if batched is not None
            else [
                classify(rr[s : s + w], nrmssd_min=nrmssd_min, entropy_min=entropy_min)
                for s in starts
            ]
        )
    feats: list[tuple[int, _AfFeatures]] = [
        (s, f) for s, (is_af, f) in zip(starts, verdicts, strict=True) if is_af
    ]
    if not feats:
        return ()  # no AF-like window: no interval has a vote
    # windows covering / voting for each interval: +1 at a window's first interval, -1 after
    # its last (the starts are distinct), summed; small integers, exact in float64
    cover = np.zeros(usable.size + 1)
    first = np.asarray(starts, dtype=np.intp)
    cover[first] += 1
    cover[first + w] -= 1
    cover = np.cumsum(cover[:-1])
    votes = np.zeros(usable.size + 1)
    first = np.asarray([s for s, _f in feats], dtype=np.intp)
    votes[first] += 1
    votes[first + w] -= 1
    votes = np.cumsum(votes[:-1])
    af = votes >= 0.5 * np.maximum(cover, 1)
    af &= votes > 0
    out = []
    for a, b in _runs(af):
        k = usable[a:b]  # interval indices
        start_s = float(series.time_s[k[0]])
        end_s = float(series.time_s[k[-1] + 1])
        # allow short gaps of unusable intervals inside the run (they are contiguous in `usable`)
        if end_s - start_s < min_duration_s:
            continue
        mean_bpm = 60.0 / float(np.mean(rr[a:b]))
        sev = Severity.HIGH if mean_bpm > rvr_bpm else Severity.WARNING
        if _covered(reported, "af_like", sev, start_s, end_s):
            continue
        member = np.zeros(n, dtype=bool)  # np.unique(np.concatenate([k, k + 1])), k ascending
        member[k] = True
        member[k + 1] = True
        beat_idx = member.nonzero()[0]
        fs_in = [f for s, f in feats if s < b and s + w > a]
        values = {
            "mean_bpm": mean_bpm,
            "nrmssd": _median([f.nrmssd for f in fs_in]),
            "tpr": _median([f.tpr for f in fs_in]),
            "shannon_entropy": _median([f.shannon_entropy for f in fs_in]),
            "duration_s": end_s - start_s,
            "method": method,
        }
        out.append(
            _episode(
                "af_like",
                sev,
                series,
                beat_idx,
                values,
                f"Irregular rhythm (AF-like) for {end_s - start_s:.0f} s, mean {mean_bpm:.0f} bpm",
                start_s=start_s,
                end_s=end_s,
                ongoing=b == usable.size and k[-1] + 1 >= n - 2,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Signal quality (technical alarm)
# --------------------------------------------------------------------------------------------
def detect_signal_quality(
    series: BeatSeries,
    *,
    min_duration_s: float = 2.0,
    merge_gap_s: float = 1.0,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Noisy-signal technical alarm: runs of beats with ``quality_ok`` False and noisy spans.

    A technical alarm condition in the sense of IEC 60601-1-8 (IEC 60601-2-27 requires monitors
    to signal noise / leads-off instead of analysing arrhythmias on such signal); ``warning``
    severity. Stretches closer than ``merge_gap_s`` are merged; those lasting at least
    ``min_duration_s`` are reported. ``reported``: as for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kind ``"signal_quality"``, category ``"technical"``; ``values``: ``duration_s``,
        ``n_noisy_beats``.
    """
    n = len(series)
    if not series.noisy_spans_s and series.quality_ok.all():
        return ()
    intervals: list[tuple[float, float]] = []
    bad = ~series.quality_ok
    for a, b in _runs(bad):
        start = float(series.time_s[a])
        # a run of noisy beats spans to the next clean beat's predecessor
        stop = float(series.time_s[b - 1])
        intervals.append((start, stop))
    intervals.extend(series.noisy_spans_s)
    if not intervals:
        return ()
    intervals.sort()
    merged = [list(intervals[0])]
    for start, stop in intervals[1:]:
        if start <= merged[-1][1] + merge_gap_s:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    out = []
    last_t = float(series.time_s[-1]) if n else -math.inf
    for start, stop in merged:
        if stop - start < min_duration_s:
            continue
        if _covered(reported, "signal_quality", Severity.WARNING, start, stop):
            continue
        idx = np.flatnonzero(bad & (series.time_s >= start) & (series.time_s <= stop))
        out.append(
            _episode(
                "signal_quality",
                Severity.WARNING,
                series,
                idx,
                {"duration_s": stop - start, "n_noisy_beats": int(idx.size)},
                f"ECG signal quality too poor for arrhythmia analysis for {stop - start:.0f} s",
                start_s=start,
                end_s=stop,
                ongoing=stop >= last_t,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# All rules
# --------------------------------------------------------------------------------------------
#: Kinds :func:`evaluate_rules` can be told to skip. The kinds of one rule call go together
#: (``v_couplet``, ``v_run`` and ``vt``; bigeminy and trigeminy); the two frequent-ectopy kinds
#: and the others are independent.
SKIPPABLE_KINDS: frozenset[str] = frozenset(
    {
        "v_couplet",
        "v_run",
        "vt",
        "ventricular_bigeminy",
        "ventricular_trigeminy",
        "frequent_pvc",
        "frequent_sveb",
        "af_like",
        "signal_quality",
        "bradycardia",
        "tachycardia",
    }
)
_JOINT_KINDS: tuple[frozenset[str], ...] = (
    frozenset({"v_couplet", "v_run", "vt"}),
    frozenset({"ventricular_bigeminy", "ventricular_trigeminy"}),
)


@dataclass(frozen=True)
class RuleConfig:
    """Every rule threshold in one validated, immutable place (defaults as documented per rule)."""

    hr_window_beats: int = 10
    brady_bpm: float = 50.0
    brady_high_bpm: float = 40.0
    tachy_bpm: float = 120.0
    tachy_high_bpm: float = 150.0
    rate_min_duration_s: float = 10.0
    pause_s: float = 2.0
    asystole_s: float = 3.0
    vt_rate_bpm: float = 100.0
    sustained_vt_s: float = 30.0
    pattern_min_cycles: int = 4
    pvc_per_min: float = 6.0
    sveb_per_min: float = 6.0
    ectopy_window_s: float = 60.0
    min_confidence: float = 0.0
    af_method: str = "dash2009"
    af_window_beats: int = 64
    af_step_beats: int = 8
    af_nrmssd_min: float = 0.1
    af_entropy_min: float = 0.7
    af_min_duration_s: float = 30.0
    af_rvr_bpm: float = 110.0
    quality_min_duration_s: float = 2.0

    def __post_init__(self) -> None:
        for name in (
            "brady_bpm",
            "brady_high_bpm",
            "tachy_bpm",
            "tachy_high_bpm",
            "pause_s",
            "asystole_s",
            "vt_rate_bpm",
            "sustained_vt_s",
            "pvc_per_min",
            "sveb_per_min",
            "ectopy_window_s",
            "af_nrmssd_min",
            "af_entropy_min",
            "af_rvr_bpm",
        ):
            _check_positive(getattr(self, name), name)
        for name in ("rate_min_duration_s", "af_min_duration_s", "quality_min_duration_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0 s, got {v!r}")
        if self.brady_high_bpm > self.brady_bpm:
            raise ValueError(
                f"brady_high_bpm ({self.brady_high_bpm}) must be <= brady_bpm ({self.brady_bpm})"
            )
        if self.tachy_high_bpm < self.tachy_bpm:
            raise ValueError(
                f"tachy_high_bpm ({self.tachy_high_bpm}) must be >= tachy_bpm ({self.tachy_bpm})"
            )
        if self.brady_bpm >= self.tachy_bpm:
            raise ValueError(
                f"brady_bpm ({self.brady_bpm}) must be below tachy_bpm ({self.tachy_bpm})"
            )
        if self.asystole_s < self.pause_s:
            raise ValueError(f"asystole_s ({self.asystole_s}) must be >= pause_s ({self.pause_s})")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if self.af_method not in AF_METHODS:
            raise ValueError(
                f"unknown af_method {self.af_method!r}; valid methods: {sorted(AF_METHODS)}"
            )
        if (
            self.hr_window_beats < 1
            or self.pattern_min_cycles < 2
            or self.af_window_beats < 16
            or self.af_step_beats < 1
        ):
            raise ValueError(
                "hr_window_beats >= 1, pattern_min_cycles >= 2, af_window_beats >= 16 and af_step_beats >= 1 are required"
            )


def evaluate_rules(
    series: BeatSeries,
    *,
    config: RuleConfig | None = None,
    now_s: float | None = None,
    skip: Collection[str] = (),
    reported: Mapping[str, Reported] | None = None,
    af_cache: dict[Any, Any] | None = None,
) -> tuple[Episode, ...]:
    """Run every rule on ``series`` and return all episodes sorted by start time.

    Parameters
    ----------
    series : BeatSeries
    config : RuleConfig, optional
        Thresholds (defaults when omitted).
    now_s : float, optional
        Current data time; enables detection of an ongoing pause after the last beat.
    skip : collection of str
        Rules not to run this time, by the kinds they report (:data:`SKIPPABLE_KINDS`; the
        alert engine runs its costliest rule, ``"af_like"``, only every few beats, and skips
        the rules whose input has not changed in a way that could change their episodes).
    reported : mapping of str to Reported, optional
        Per kind, what the caller has already acted on: the episodes it covers are not built
        (:class:`Reported`). The others are the same as without it.
    af_cache : dict, optional
        ``window_cache`` of :func:`detect_af_like` (same result, fewer windows classified).

    Returns
    -------
    tuple of Episode

    >>> s = BeatSeries.from_samples(range(0, 360 * 60, 288), ["N"] * 75, fs=360.0)
    >>> evaluate_rules(s)
    ()
    """
    c = config or RuleConfig()
    skip = frozenset(skip)
    unknown = skip - SKIPPABLE_KINDS
    if unknown:
        raise ValueError(
            f"skip: unknown or unskippable kinds {sorted(unknown)}; valid: {sorted(SKIPPABLE_KINDS)}"
        )
    for joint in _JOINT_KINDS:
        if skip & joint and not joint <= skip:
            raise ValueError(
                f"skip: the kinds {sorted(joint)} come from one rule: skip all or none"
            )
    eps: list[Episode] = []
    if "bradycardia" not in skip:
        eps += detect_bradycardia(
            series,
            threshold_bpm=c.brady_bpm,
            high_bpm=c.brady_high_bpm,
            min_duration_s=c.rate_min_duration_s,
            window_beats=c.hr_window_beats,
            reported=reported,
        )
    if "tachycardia" not in skip:
        eps += detect_tachycardia(
            series,
            threshold_bpm=c.tachy_bpm,
            high_bpm=c.tachy_high_bpm,
            min_duration_s=c.rate_min_duration_s,
            window_beats=c.hr_window_beats,
            reported=reported,
        )
    eps += detect_pauses(
        series, pause_s=c.pause_s, asystole_s=c.asystole_s, now_s=now_s, reported=reported
    )
    if "vt" not in skip:
        eps += detect_ventricular_runs(
            series,
            vt_rate_bpm=c.vt_rate_bpm,
            sustained_s=c.sustained_vt_s,
            min_confidence=c.min_confidence,
            reported=reported,
        )
    if "ventricular_bigeminy" not in skip:
        eps += detect_ventricular_patterns(
            series,
            min_cycles=c.pattern_min_cycles,
            max_rr_s=c.pause_s,
            min_confidence=c.min_confidence,
            reported=reported,
        )
    if not {"frequent_pvc", "frequent_sveb"} <= skip:
        eps += detect_frequent_ectopy(
            series,
            pvc_per_min=c.pvc_per_min,
            sveb_per_min=c.sveb_per_min,
            window_s=c.ectopy_window_s,
            min_confidence=c.min_confidence,
            reported=reported,
            skip=skip,
        )
    if "af_like" not in skip:
        eps += detect_af_like(
            series,
            method=c.af_method,
            window_beats=c.af_window_beats,
            step_beats=c.af_step_beats,
            nrmssd_min=c.af_nrmssd_min,
            entropy_min=c.af_entropy_min,
            min_duration_s=c.af_min_duration_s,
            rvr_bpm=c.af_rvr_bpm,
            reported=reported,
            window_cache=af_cache,
        )
    if "signal_quality" not in skip:
        eps += detect_signal_quality(
            series, min_duration_s=c.quality_min_duration_s, reported=reported
        )
    return tuple(sorted(eps, key=lambda e: (e.start_s, e.kind)))
