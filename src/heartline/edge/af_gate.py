"""Atrial-fibrillation gate on SVEB calls: the rhythm model's verdict as a prior on beat labels.

By the AAMI convention (ANSI/AAMI EC57:2012, the beat classes N / S / V / F / Q) a beat during
atrial fibrillation or flutter is ``N``, not a supraventricular ectopic ``S``: there is no
sinus rhythm for it to be premature against. A beat classifier that looks at prematurity calls
the irregular beats of AF ``S``. The gate writes the convention as model structure: a beat the
beat model calls ``S`` becomes ``N`` when the rhythm model's verdict for the window that holds
it is ``A`` (atrial fibrillation; the argmax of the four classes, nothing tuned).

The rhythm verdicts come from Heartline's shipped rhythm model
(:class:`heartline.edge.rhythm.OnnxRhythmClassifier`, classes ``N / A / O / ~`` of the
PhysioNet/CinC Challenge 2017, Clifford et al. 2017), trained on single-lead wearable
recordings and never on MIT-BIH. They are causal and made the way the stream processor makes
them (:mod:`heartline.ingestion.processor`, ``_rhythm_feed`` / ``_rhythm_window``): one lead
fed to a :class:`~heartline.edge.rhythm.RhythmStream` (its own R-peak detector, the model's
band-pass and resampling), the first ``warmup_s`` left out, a window due every ``interval_s``
of data from the start (the first once ``min_s`` after the warm-up are in), each window the
last ``window_s`` (30 s) and scored alone (the model's per-window ``proba``). A beat at sample
``t`` gets the verdict of the most recent window ending at or before ``t``; beats before the
first window get none and are never gated.

References
----------
ANSI/AAMI EC57:2012, Testing and reporting performance results of cardiac rhythm and ST
segment measurement algorithms.

G. D. Clifford, C. Liu, B. Moody, L. H. Lehman, I. Silva, Q. Li, A. E. Johnson and R. G. Mark,
"AF classification from a short single lead ECG recording: the PhysioNet/Computing in
Cardiology Challenge 2017", Computing in Cardiology 44, 2017.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartline.defaults import (
    DEFAULT_QUALITY_WARMUP_S,
    DEFAULT_RHYTHM_INTERVAL_S,
    DEFAULT_RHYTHM_MIN_S,
)
from heartline.edge.rhythm import RHYTHM_CLASSES, OnnxRhythmClassifier, RhythmStream

__all__ = [
    "BeatRhythm",
    "RhythmWindows",
    "apply_af_gate",
    "beat_rhythm_verdicts",
    "rhythm_windows",
]

#: Defaults of the stream processor (``StreamProcessor``: ``rhythm_interval_s``,
#: ``rhythm_min_s``, ``quality_warmup_s``; ``HEARTLINE_RHYTHM_INTERVAL_S`` sets the first).
DEFAULT_INTERVAL_S = DEFAULT_RHYTHM_INTERVAL_S
DEFAULT_MIN_S = DEFAULT_RHYTHM_MIN_S
DEFAULT_WARMUP_S = DEFAULT_QUALITY_WARMUP_S
_A = RHYTHM_CLASSES.index("A")


@dataclass(frozen=True)
class RhythmWindows:
    """Causal rhythm verdicts of one lead, one per due window.

    Attributes
    ----------
    end_idx : numpy.ndarray
        int64 ``(m,)``: each window's end (exclusive) in samples of the input lead.
    start_idx : numpy.ndarray
        int64 ``(m,)``: each window's first sample.
    proba : numpy.ndarray
        float64 ``(m, 4)``: class probabilities in :data:`~heartline.edge.rhythm.RHYTHM_CLASSES`
        order; an unusable window is ``(0, 0, 0, 1)``.
    labels : numpy.ndarray
        str ``(m,)``: argmax label, ``"~"`` for an unusable window.
    fs : float
        Sampling rate of the input lead.
    """

    end_idx: np.ndarray
    start_idx: np.ndarray
    proba: np.ndarray
    labels: np.ndarray
    fs: float

    def __len__(self) -> int:
        return int(self.end_idx.shape[0])

    def window_of(self, sample_idx: object) -> np.ndarray:
        """Index of the most recent window ending at or before each sample (``-1``: none yet)."""
        idx = np.asarray(sample_idx, dtype=np.int64).reshape(-1)
        return np.searchsorted(self.end_idx, idx, side="right").astype(np.int64) - 1


@dataclass(frozen=True)
class BeatRhythm:
    """Per-beat rhythm verdicts (see :func:`beat_rhythm_verdicts`).

    Attributes
    ----------
    af_mask : numpy.ndarray
        bool ``(n,)``: the beat's window was called ``A``.
    proba : numpy.ndarray
        float64 ``(n, 4)``: the window's probabilities (NaN for a beat with no window yet).
    labels : numpy.ndarray
        str ``(n,)``: the window's label, ``""`` for a beat with no window yet.
    window : numpy.ndarray
        int64 ``(n,)``: index into :class:`RhythmWindows`, ``-1`` when none.
    """

    af_mask: np.ndarray
    proba: np.ndarray
    labels: np.ndarray
    window: np.ndarray


def _lead(signal: object) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"signal must be one lead (1-D), got shape {x.shape}")
    return x


def rhythm_windows(
    signal: object,
    *,
    fs: float,
    classifier: OnnxRhythmClassifier | None = None,
    interval_s: float = DEFAULT_INTERVAL_S,
    window_s: float | None = None,
    min_s: float = DEFAULT_MIN_S,
    warmup_s: float = DEFAULT_WARMUP_S,
) -> RhythmWindows:
    """Causal rhythm verdicts of one lead, as the stream processor makes them.

    Parameters
    ----------
    signal : array_like
        One lead in mV (1-D), e.g. MIT-BIH MLII.
    fs : float
        Sampling rate in Hz (>= 100; the stream resamples to the model's rate).
    classifier : OnnxRhythmClassifier, optional
        The rhythm model; the shipped one (``assets/models/rhythm.onnx``) by default.
    interval_s : float
        A window is due every ``interval_s`` of data (the processor's ``rhythm_interval_s``).
    window_s : float, optional
        Window length (default: the model's, 30 s).
    min_s : float
        The first window is due once ``min_s`` after the warm-up are in (at least the model's
        minimum length).
    warmup_s : float
        Leading seconds left out of the rhythm input (the processor's ``quality_warmup_s``).

    Returns
    -------
    RhythmWindows

    Raises
    ------
    ValueError
        ``signal`` not 1-D, ``fs`` below the model's minimum, or non-positive intervals.
    """
    x = _lead(signal)
    fs = float(fs)
    if not (interval_s > 0 and min_s > 0 and warmup_s >= 0):
        raise ValueError(
            f"need interval_s > 0, min_s > 0 and warmup_s >= 0, got {interval_s}, {min_s}, "
            f"{warmup_s}"
        )
    clf = classifier if classifier is not None else _shipped()
    stream = RhythmStream(clf, fs=fs, window_s=window_s)  # validates fs
    min_s = max(float(min_s), clf.min_duration_s)
    warm = round(warmup_s * fs)
    # due times (seconds of the record) as _rhythm_feed computes them: every interval_s from
    # the start, the first once min_s after the warm-up are in
    k = math.ceil((warm / fs + min_s) / interval_s - 1e-9)
    ends: list[int] = []
    starts: list[int] = []
    prepared: list[Any] = []
    pushed = warm
    while True:
        end = math.floor(k * interval_s * fs + 1e-6)
        if end > x.size:
            break
        if end > pushed:
            stream.push(x[pushed:end])
            pushed = end
        try:
            prepared.append(stream.window())
        except Exception as exc:  # as the processor: a failed window is unusable, never fatal
            prepared.append(str(exc))
        ends.append(end)
        starts.append(end - min(stream.n_samples, stream.window_n))
        k += 1
    m = len(ends)
    proba = np.zeros((m, len(RHYTHM_CLASSES)))
    proba[:, RHYTHM_CLASSES.index("~")] = 1.0
    ok = [i for i, p in enumerate(prepared) if not isinstance(p, str)]
    if ok:
        xs = np.concatenate([prepared[i][0] for i in ok])
        ms = np.concatenate([prepared[i][1] for i in ok])
        rr = np.concatenate([prepared[i][2] for i in ok])
        out = clf.predict_windows(xs, ms, rr)
        row = 0
        for i in ok:
            k_i = prepared[i][0].shape[0]
            proba[i] = out[row : row + k_i].mean(axis=0)
            row += k_i
    labels = np.array([RHYTHM_CLASSES[int(j)] for j in np.argmax(proba, axis=1)], dtype="<U1")
    return RhythmWindows(
        end_idx=np.asarray(ends, dtype=np.int64),
        start_idx=np.asarray(starts, dtype=np.int64),
        proba=proba,
        labels=labels,
        fs=fs,
    )


def beat_rhythm_verdicts(
    signal: object | None = None,
    *,
    fs: float,
    beat_idx: object,
    windows: RhythmWindows | None = None,
    **kwargs: Any,
) -> BeatRhythm:
    """Per-beat rhythm verdict: that of the most recent window ending at or before the beat.

    Parameters
    ----------
    signal : array_like, optional
        One lead in mV (see :func:`rhythm_windows`); not needed when ``windows`` is given.
    fs : float
        Sampling rate in Hz.
    beat_idx : array_like of int
        Beat (R-peak) sample indices in ``signal``.
    windows : RhythmWindows, optional
        Verdicts computed before (e.g. cached); otherwise computed from ``signal``.
    **kwargs
        Passed to :func:`rhythm_windows` (``classifier``, ``interval_s``, ...).

    Returns
    -------
    BeatRhythm
        ``af_mask`` is True where the beat's window is ``A`` (argmax, no threshold).

    Raises
    ------
    ValueError
        Neither ``signal`` nor ``windows``, or ``windows`` at another rate than ``fs``.
    """
    if windows is None:
        if signal is None:
            raise ValueError("give the signal or precomputed windows")
        windows = rhythm_windows(signal, fs=fs, **kwargs)
    elif abs(windows.fs - float(fs)) > 1e-9:
        raise ValueError(f"windows are at {windows.fs} Hz, beats at {fs} Hz")
    w = windows.window_of(beat_idx)
    has = w >= 0
    proba = np.full((w.size, len(RHYTHM_CLASSES)), np.nan)
    labels = np.full(w.size, "", dtype="<U1")
    proba[has] = windows.proba[w[has]]
    labels[has] = windows.labels[w[has]]
    return BeatRhythm(af_mask=labels == "A", proba=proba, labels=labels, window=w)


def apply_af_gate(
    labels_or_proba: object,
    af_mask: object,
    *,
    classes: Sequence[str] = ("N", "S", "V", "F", "Q"),
) -> np.ndarray:
    """Turn the ``S`` calls of beats in atrial fibrillation into ``N`` (AAMI EC57 convention).

    Parameters
    ----------
    labels_or_proba : array_like
        Either labels ``(n,)`` (class names, or int indices into ``classes``) or class
        probabilities ``(n, len(classes))``. For probabilities, a beat whose argmax is ``S``
        and that lies in AF gets its ``S`` probability moved to ``N`` (so its argmax becomes
        ``N``); every other row is unchanged.
    af_mask : array_like of bool
        ``(n,)``: the beat lies in a window the rhythm model called ``A``
        (:attr:`BeatRhythm.af_mask`).
    classes : sequence of str
        Class order (AAMI N / S / V / F / Q by default); must hold ``"N"`` and ``"S"``.

    Returns
    -------
    numpy.ndarray
        A gated copy, same shape (probabilities as float64).

    Raises
    ------
    ValueError
        Shapes that do not match, or ``classes`` without ``N`` and ``S``.
    """
    classes = tuple(classes)
    if "N" not in classes or "S" not in classes:
        raise ValueError(f"classes must hold 'N' and 'S', got {classes}")
    n_i, s_i = classes.index("N"), classes.index("S")
    arr = np.asarray(labels_or_proba)
    mask = np.asarray(af_mask)
    if mask.dtype != bool:
        raise ValueError(f"af_mask must be boolean, got {mask.dtype}")
    mask = mask.reshape(-1)
    if arr.shape[0] != mask.size:
        raise ValueError(f"{arr.shape[0]} beats but {mask.size} af_mask entries")
    if arr.ndim == 2:
        if arr.shape[1] != len(classes):
            raise ValueError(f"probabilities have {arr.shape[1]} columns, classes {len(classes)}")
        out = arr.astype(np.float64, copy=True)
        call = np.argmax(np.nan_to_num(out, nan=-1.0), axis=1)
        hit = mask & (call == s_i)
        out[hit, n_i] += out[hit, s_i]
        out[hit, s_i] = 0.0
        return out
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D or probabilities 2-D, got shape {arr.shape}")
    out = arr.copy()
    if arr.dtype.kind in "iu":
        out[mask & (arr == s_i)] = n_i
    else:
        out[mask & (arr.astype(str) == "S")] = "N"
    return out


_SHIPPED: OnnxRhythmClassifier | None = None


def _shipped() -> OnnxRhythmClassifier:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = OnnxRhythmClassifier(num_threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    return _SHIPPED
