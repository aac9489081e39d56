"""Rule inputs and outputs: beats in (:class:`Beat`, :class:`BeatSeries`), episodes out.

:class:`Episode` and its :class:`Severity`, the episode kinds, and :class:`Reported` (what a
caller has already acted on), plus the small helpers every rule shares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES, aami_class

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
#: Kinds raised from beats labelled ``V`` (what the beat artefact model keeps motion spikes out
#: of: :mod:`heartline.signal.artefact`).
VENTRICULAR_KINDS: frozenset[str] = frozenset(
    {"v_couplet", "v_run", "vt", "ventricular_bigeminy", "ventricular_trigeminy", "frequent_pvc"}
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
            rr = self._memo["rr_s"] = read_only(np.diff(self.time_s))
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
            ok = self._memo["beat_ok"] = read_only(ok)
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
            valid = self._memo["rr_valid"] = read_only(valid)
        return valid


_AAMI_SET = frozenset(AAMI_CLASSES)


def _all_aami(raw: np.ndarray) -> bool:
    """``np.all(np.isin(raw, AAMI_CLASSES))`` for a string array (a set test when small)."""
    if raw.size <= 1024:  # the stream processor's few beats per call: no isin set-up
        return _AAMI_SET.issuperset(raw.reshape(-1).tolist())
    return bool(np.all(np.isin(raw, AAMI_CLASSES)))


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a cached array shared by several rules)."""
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
class _JsonReady(dict):  # type: ignore[type-arg]
    """A dict whose content :func:`json_value` has already converted (returned as is)."""


def json_value(value: Any) -> Any:
    """``value`` as plain JSON types (enums, numpy scalars and arrays, nested containers)."""
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
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(v) for v in value]
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
                "values": json_value(dict(self.values)),
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
