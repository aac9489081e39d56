"""Beat segmentation, beat-window normalisation and online RR-interval features.

Three steps turn an ECG and its R-peaks into the inputs of a beat classifier:

1. :func:`preprocess_ecg` removes baseline wander and high-frequency noise from the whole
   record (``method="bandpass"``: a 0.5-40 Hz zero-phase Butterworth band-pass;
   ``method="median"``: the 200 ms + 600 ms median filters of de Chazal et al. 2004, which keep
   the high-frequency content). The band-pass is the default because it also acts as the
   anti-aliasing filter for step 2. (Kept here, a few lines of scipy, rather than calling
   :mod:`heartline.signal.filters`, so that cached beat sets do not change when that module
   does; the two agree in design.)
2. :func:`segment_beats` cuts a window of ``[-pre_s, +post_s)`` seconds around every R-peak and
   resamples it (linear interpolation) to ``window_len`` points, so that models see the same
   number of samples per beat at any sampling rate. Windows that run past either end of the
   signal are padded with the edge value; :func:`beat_edge_flags` says which.
3. :func:`normalise_beats` subtracts each beat's own baseline (the median of the window, per
   lead) and divides by a *running*, per-patient robust amplitude: the median peak-to-peak
   amplitude of the last ``history`` beats including the current one. It is causal, so the same
   numbers can be computed on a device beat by beat (:class:`OnlineBeatNormaliser`); it removes
   the gain differences between patients and electrodes without ever looking at future beats.

RR-interval features follow de Chazal et al. (2004) (pre-RR, post-RR, local and average RR) in
the causal form of Mondéjar-Guerra et al. (2019), with ratios normalised by the running
per-patient average (Llamedo & Martínez 2011 showed normalised RR features generalise across
patients much better than raw ones). :func:`rr_features` computes them for a whole record at
once; :class:`OnlineRRFeatures` computes the same values beat by beat with one beat of latency
(the next RR interval is known once the next R-peak arrives).

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).

Llamedo M, Martínez JP. Heartbeat classification using feature selection driven by database
generalization criteria. IEEE Trans Biomed Eng 58(3):616-625 (2011).

Mondéjar-Guerra V, Novo J, Rouco J, Penedo MG, Ortega M. Heartbeat classification fusing
temporal and morphological information of ECGs via ensemble of classifiers. Biomed Signal
Process Control 47:41-48 (2019).
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from heartline.errors import SignalError
from heartline.signal._validate import check_cutoff, check_fs

__all__ = [
    "RR_FEATURE_NAMES",
    "OnlineBeatNormaliser",
    "OnlineRRFeatures",
    "RRFeatures",
    "bandpass_sos",
    "beat_edge_flags",
    "check_preprocess_method",
    "model_rr_columns",
    "normalise_beats",
    "preprocess_ecg",
    "rhythm_features",
    "rr_features",
    "segment_beats",
]

#: Number of previous RR intervals averaged into the local RR feature.
LOCAL_RR_BEATS = 10

#: Names of the RR feature columns, in order (seconds, then dimensionless ratios).
RR_FEATURE_NAMES: tuple[str, ...] = (
    "rr_prev_s",
    "rr_next_s",
    "rr_local_s",
    "rr_avg_s",
    "rr_prev_ratio",
    "rr_next_ratio",
    "rr_local_ratio",
    "rr_prev_next_ratio",
    "rr_irregularity",
    "rr_regular_fraction",
    "rr_prev_median_logratio",
    "rr_next_median_logratio",
    "rr_prev_z",
)

#: Number of previous RR intervals (including the beat's own previous RR) in the rhythm
#: window of the irregularity features (about 15 s at 60 bpm).
RHYTHM_RR_BEATS = 16
#: ``|log(RR / median)|`` below which an interval counts as regular (about +-10 %).
REGULAR_LOG_TOLERANCE = 0.1
#: Floor of the median absolute deviation in ``rr_prev_z`` (log units), so that a perfectly
#: regular rhythm does not turn small jitter into huge z-scores.
RR_Z_FLOOR = 0.03


# --------------------------------------------------------------------------- baseline removal
def _as_2d(ecg: object, *, name: str = "ecg") -> tuple[np.ndarray, bool]:
    arr = np.asarray(ecg, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, None], True
    if arr.ndim != 2:
        raise SignalError(
            f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_leads), got shape {arr.shape}"
        )
    return arr, False


@functools.lru_cache(maxsize=32)
def _bandpass_sos_cached(fs: float, low_hz: float, high_hz: float) -> np.ndarray:
    from heartline.signal.filters import design_bandpass

    check_cutoff(low_hz, fs=fs, name="low_hz")
    sos = design_bandpass(fs=fs, low_hz=low_hz, high_hz=min(high_hz, 0.45 * fs), order=2)
    sos.setflags(write=False)
    return sos


def bandpass_sos(fs: float, low_hz: float = 0.5, high_hz: float = 40.0) -> np.ndarray:
    """Sections of the cleaning band-pass of ``preprocess_ecg(method="bandpass")``.

    A 2nd-order Butterworth (:func:`heartline.signal.filters.design_bandpass`) whose upper edge is
    capped at 0.45 ``fs``, so that low sampling rates still get a valid design. The training path
    (:func:`preprocess_ecg`) and the live pipeline share it. The design is cached per rate and
    band; each call returns a fresh (writable) copy, which SciPy's filters need.
    """
    return _bandpass_sos_cached(float(fs), float(low_hz), float(high_hz)).copy()


def _bandpass(x: np.ndarray, fs: float, low_hz: float = 0.5, high_hz: float = 40.0) -> np.ndarray:
    from scipy.signal import sosfiltfilt

    sos = bandpass_sos(fs, low_hz, high_hz)
    padlen = min(x.shape[0] - 1, 3 * int(fs))
    return sosfiltfilt(sos, x, axis=0, padlen=padlen)


def _median(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.ndimage import median_filter

    w1 = round(0.2 * fs) | 1
    w2 = round(0.6 * fs) | 1
    baseline = median_filter(x, size=(w1, 1), mode="nearest")
    baseline = median_filter(baseline, size=(w2, 1), mode="nearest")
    return x - baseline


_PREPROCESS_METHODS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "bandpass": _bandpass,
    "median": _median,
}


def check_preprocess_method(method: str) -> str:
    """Return ``method`` if :func:`preprocess_ecg` knows it, else raise ``ValueError``."""
    if method not in _PREPROCESS_METHODS:
        raise ValueError(
            f"unknown preprocessing method {method!r}; valid: {sorted(_PREPROCESS_METHODS)}"
        )
    return method


def preprocess_ecg(ecg: np.ndarray, *, fs: float, method: str = "bandpass") -> np.ndarray:
    """Remove baseline wander (and, for ``"bandpass"``, noise above 40 Hz) from every lead.

    Parameters
    ----------
    ecg : numpy.ndarray
        Shape ``(n_samples,)`` or ``(n_samples, n_leads)``, mV.
    fs : float
        Sampling rate in Hz.
    method : {"bandpass", "median"}
        ``"bandpass"``: 2nd-order Butterworth 0.5-40 Hz run forwards and backwards (zero phase;
        the upper edge is capped at 0.45 ``fs`` for low sampling rates). ``"median"``: subtract
        the baseline estimated by a 200 ms then a 600 ms median filter (de Chazal et al. 2004).

    Returns
    -------
    numpy.ndarray
        Same shape as ``ecg``, float64.

    >>> import numpy as np
    >>> t = np.arange(3600) / 360.0
    >>> y = preprocess_ecg(1.0 + 0.5 * np.sin(2 * np.pi * 0.1 * t), fs=360.0)
    >>> bool(np.abs(y[360:-360]).max() < 0.1)
    True
    """
    fs = check_fs(fs)
    check_preprocess_method(method)
    arr, was_1d = _as_2d(ecg)
    if arr.shape[0] < 2:
        raise SignalError(f"ecg has {arr.shape[0]} samples; at least 2 are needed")
    if not np.all(np.isfinite(arr)):
        raise SignalError("ecg holds NaN/inf samples; impute gaps first")
    out = _PREPROCESS_METHODS[method](arr, fs)
    return out[:, 0] if was_1d else out


# --------------------------------------------------------------------------- segmentation
def _check_peaks(r_peaks_idx: object, *, name: str = "r_peaks_idx") -> np.ndarray:
    peaks = np.asarray(r_peaks_idx)
    if peaks.ndim != 1:
        raise SignalError(f"{name} must be 1-D, got shape {peaks.shape}")
    if peaks.size and not np.issubdtype(peaks.dtype, np.integer):
        if not np.all(np.isfinite(peaks)) or not np.all(peaks == np.round(peaks)):
            raise SignalError(f"{name} must hold integer sample indices")
    peaks = peaks.astype(np.int64)
    if peaks.size > 1 and np.any(np.diff(peaks) <= 0):
        raise SignalError(f"{name} must be strictly increasing (sorted, no duplicates)")
    return peaks


def window_offsets(fs: float, pre_s: float, post_s: float, window_len: int) -> np.ndarray:
    """Sample offsets (float, relative to the R peak) of a ``window_len``-point beat window.

    The window spans ``pre_s`` seconds before to ``post_s`` seconds after the peak at sampling
    rate ``fs``; beat segmentation and the live attribution overlay share this definition.
    """
    if pre_s < 0 or post_s <= 0 or pre_s + post_s <= 0:
        raise ValueError(
            f"need pre_s >= 0 and post_s > 0 seconds, got pre_s={pre_s}, post_s={post_s}"
        )
    if int(window_len) < 2:
        raise ValueError(f"window_len must be >= 2, got {window_len}")
    t_s = -pre_s + np.arange(int(window_len)) * (pre_s + post_s) / int(window_len)
    return t_s * fs


def segment_beats(
    ecg: np.ndarray,
    r_peaks_idx: np.ndarray,
    *,
    fs: float,
    pre_s: float = 0.25,
    post_s: float = 0.45,
    window_len: int = 128,
) -> np.ndarray:
    """Beat windows around each R-peak, resampled to ``window_len`` points.

    Window point ``k`` lies at ``-pre_s + k (pre_s + post_s) / window_len`` seconds from the
    R-peak (so the R-peak is at index ``round(window_len * pre_s / (pre_s + post_s))``); values
    between samples are linearly interpolated. Parts of a window beyond either end of the signal
    take the first/last sample's value (see :func:`beat_edge_flags`). Downsampling does no
    filtering of its own: band-limit the signal first (:func:`preprocess_ecg` with
    ``"bandpass"`` keeps < 40 Hz, below the Nyquist rate of a 128-point, 0.7 s window).

    Parameters
    ----------
    ecg : numpy.ndarray
        ``(n_samples,)`` or ``(n_samples, n_leads)``.
    r_peaks_idx : numpy.ndarray
        Strictly increasing R-peak sample indices.
    fs : float
        Sampling rate in Hz.
    pre_s, post_s : float
        Window extent before and after the R-peak, seconds.
    window_len : int
        Points per window.

    Returns
    -------
    numpy.ndarray
        float32, ``(n_beats, window_len)`` for 1-D ``ecg``, ``(n_beats, n_leads, window_len)``
        for 2-D ``ecg``.

    >>> import numpy as np
    >>> w = segment_beats(np.arange(1000.0), np.array([100, 500]), fs=100.0, pre_s=0.2, post_s=0.2, window_len=4)
    >>> w.tolist()
    [[80.0, 90.0, 100.0, 110.0], [480.0, 490.0, 500.0, 510.0]]
    """
    fs = check_fs(fs)
    arr, was_1d = _as_2d(ecg)
    peaks = _check_peaks(r_peaks_idx)
    offsets = window_offsets(fs, pre_s, post_s, window_len)
    n_samples, n_leads = arr.shape
    if n_samples == 0:
        raise SignalError("ecg is empty")
    if peaks.size and (peaks[0] < 0 or peaks[-1] >= n_samples):
        raise SignalError(f"r_peaks_idx must lie in [0, {n_samples}) (the ecg length)")
    pos = (peaks[:, None] + offsets[None, :]).ravel()
    grid = np.arange(n_samples, dtype=np.float64)
    out = np.empty((peaks.size, n_leads, offsets.size), dtype=np.float32)
    for lead in range(n_leads):
        out[:, lead, :] = np.interp(pos, grid, arr[:, lead]).reshape(peaks.size, offsets.size)
    return out[:, 0, :] if was_1d else out


def beat_edge_flags(
    r_peaks_idx: np.ndarray, *, n_samples: int, fs: float, pre_s: float = 0.25, post_s: float = 0.45
) -> np.ndarray:
    """True for beats whose window runs past the start or end of the signal (edge-padded).

    >>> beat_edge_flags(np.array([10, 500, 990]), n_samples=1000, fs=100.0, pre_s=0.2, post_s=0.2).tolist()
    [True, False, True]
    """
    fs = check_fs(fs)
    peaks = _check_peaks(r_peaks_idx)
    return (peaks - pre_s * fs < 0) | (peaks + post_s * fs > n_samples - 1)


def _peak_to_peak(windows: np.ndarray) -> np.ndarray:
    return windows.max(axis=-1) - windows.min(axis=-1)


def _running_median(values: np.ndarray, history: int) -> np.ndarray:
    """Causal median of the last ``history`` rows (fewer at the start), per column."""
    n = values.shape[0]
    if n == 0:
        return values.copy()
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.concatenate([np.full((history - 1, *values.shape[1:]), np.nan), values], axis=0)
    win = sliding_window_view(padded, history, axis=0)  # (n, ..., history)
    return np.nanmedian(win, axis=-1)


def normalise_beats(
    windows: np.ndarray, *, history: int = 32, min_amplitude: float = 1e-3
) -> np.ndarray:
    """Per-beat baseline subtraction and per-patient running amplitude scaling (causal).

    Each window (per lead) has its median subtracted, then is divided by the median
    peak-to-peak amplitude of the last ``history`` beats of the same record (this beat
    included; fewer at the record start). Feed one record at a time, in time order.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_beats, window_len)`` or ``(n_beats, n_leads, window_len)``.
    history : int
        Beats in the running amplitude estimate.
    min_amplitude : float
        Floor of the amplitude (same unit as ``windows``) so flat signals do not divide by 0.

    Returns
    -------
    numpy.ndarray
        float32, same shape as ``windows``.

    >>> import numpy as np
    >>> w = np.array([[0.0, 2.0, 0.0], [1.0, 5.0, 1.0]])
    >>> normalise_beats(w, history=2).astype(float).round(3).tolist()  # 2nd beat: 4 / median(2, 4)
    [[0.0, 1.0, 0.0], [0.0, 1.333, 0.0]]
    """
    if int(history) < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim not in (2, 3):
        raise ValueError(
            f"windows must be (n_beats, window_len) or (n_beats, n_leads, window_len), got {w.shape}"
        )
    w = w - np.median(w, axis=-1, keepdims=True)
    scale = np.maximum(_running_median(_peak_to_peak(w), int(history)), min_amplitude)
    return (w / scale[..., None]).astype(np.float32)


class OnlineBeatNormaliser:
    """Beat-by-beat version of :func:`normalise_beats` (same outputs, one record per instance).

    >>> import numpy as np
    >>> norm = OnlineBeatNormaliser(history=2)
    >>> [norm.update(np.array(b)).astype(float).round(3).tolist() for b in ([0.0, 2.0, 0.0], [1.0, 5.0, 1.0])]
    [[0.0, 1.0, 0.0], [0.0, 1.333, 0.0]]
    """

    def __init__(self, *, history: int = 32, min_amplitude: float = 1e-3) -> None:
        if int(history) < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.history = int(history)
        self.min_amplitude = float(min_amplitude)
        self._amps: deque[list[float]] = deque(maxlen=self.history)

    def update(self, window: np.ndarray) -> np.ndarray:
        """Normalise one beat window ``(window_len,)`` or ``(n_leads, window_len)``."""
        w = np.asarray(window, dtype=np.float64)
        w = w - _median_last_axis(w)
        scale = self._push_scale(_peak_to_peak(w))
        return (w / np.asarray(scale)[..., None]).astype(np.float32)

    def _push_scale(self, amp: np.ndarray) -> np.ndarray:
        """Add one beat's per-lead amplitude to the history; return the scale it is divided by
        (the running median of the history, floored at ``min_amplitude``; ``amp``'s shape)."""
        self._amps.append(np.atleast_1d(amp).tolist())
        if np.all(np.isfinite(amp)):  # per-lead median of the amplitudes, in plain Python
            med = [_median([a[lead] for a in self._amps]) for lead in range(amp.size)]
            return np.maximum(np.asarray(med).reshape(amp.shape), self.min_amplitude)
        # NaN amplitudes: NumPy's NaN propagation
        scale = np.maximum(np.median(np.asarray(self._amps), axis=0), self.min_amplitude)
        return scale.reshape(amp.shape)

    @staticmethod
    def update_many(
        normalisers: Sequence[OnlineBeatNormaliser], windows: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """:meth:`update` of many normalisers (streams), each with its next beats, at once.

        Returns what ``[np.stack([n.update(w) for w in ws]) for n, ws in zip(normalisers,
        windows)]`` returns, bit for bit, with the same states afterwards: the baseline medians,
        amplitudes and the final division run on all beats of all streams in one call each
        (row by row, so stacking changes no number); only the running amplitude medians, which
        depend on each stream's order, run beat by beat.

        Parameters
        ----------
        normalisers : sequence of OnlineBeatNormaliser
            Distinct normalisers, one per stream.
        windows : sequence of numpy.ndarray
            The next beats of each stream, ``(n_i, n_leads, window_len)`` (or ``(n_i,
            window_len)``), in time order; all streams' windows must share one shape.

        Returns
        -------
        list of numpy.ndarray
            float32, each the shape of its input.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> beats = rng.normal(size=(5, 2, 16))
        >>> a, b, ref = (OnlineBeatNormaliser(history=3) for _ in range(3))
        >>> got = OnlineBeatNormaliser.update_many([a, b], [beats[:3], beats[:1]])[0]
        >>> got = np.vstack([got, OnlineBeatNormaliser.update_many([a], [beats[3:]])[0]])
        >>> bool(np.array_equal(got, np.stack([ref.update(w) for w in beats])))
        True
        """
        if len(normalisers) != len(windows):
            raise ValueError(
                f"windows must align with normalisers: {len(windows)} != {len(normalisers)}"
            )
        if len({id(n) for n in normalisers}) != len(normalisers):
            raise ValueError("normalisers must be distinct (one per stream)")
        arrays = [np.asarray(x, dtype=np.float64) for x in windows]
        sizes = [a.shape[0] if a.ndim else 0 for a in arrays]
        shapes = {a.shape[1:] for a in arrays if a.ndim and a.shape[0]}
        if len(shapes) > 1 or any(a.ndim not in (2, 3) for a in arrays):
            raise ValueError(
                "each stream's windows must be (n, window_len) or (n, n_leads, window_len), "
                f"one shape for all streams; got {[a.shape for a in arrays]}"
            )
        if not shapes:
            return [a.astype(np.float32) for a in arrays]
        w = np.concatenate([a for a in arrays if a.shape[0]])
        w = w - _median_last_axis(w)
        amps = _peak_to_peak(w)  # (B,) or (B, n_leads)
        scale = np.empty_like(amps)
        pos = 0
        for norm, n in zip(normalisers, sizes, strict=True):
            if not n:
                continue
            for row in range(pos, pos + n):
                scale[row] = norm._push_scale(amps[row])
            pos += n
        done = (w / scale[..., None]).astype(np.float32)
        out: list[np.ndarray] = []
        pos = 0
        for a, n in zip(arrays, sizes, strict=True):
            out.append(done[pos : pos + n] if n else a.astype(np.float32))
            pos += n
        return out


# --------------------------------------------------------------------------- RR features
@dataclass(frozen=True)
class RRFeatures:
    """RR-interval features of a sequence of beats.

    Attributes
    ----------
    values : numpy.ndarray
        float64, ``(n_beats, len(names))``.
    names : tuple of str
        Column names, :data:`RR_FEATURE_NAMES`: previous, next, local (mean of the last
        10 previous RRs) and running-average RR in seconds, then previous / average,
        next / average, local / average and previous / next, then the rhythm-irregularity
        features of :func:`rhythm_features` (dimensionless, log domain).
    """

    values: np.ndarray
    names: tuple[str, ...] = RR_FEATURE_NAMES


def _features_from(
    prev: np.ndarray, nxt: np.ndarray, local: np.ndarray, avg: np.ndarray
) -> np.ndarray:
    return np.stack(
        [prev, nxt, local, avg, prev / avg, nxt / avg, local / avg, prev / nxt], axis=-1
    )


def _median(values: Sequence[float]) -> float:
    """``numpy.median`` of a short list of finite floats, in plain Python (no array overhead).

    Same arithmetic as NumPy's: the middle value, or the mean ``(a + b) / 2`` of the two middle
    values of the sorted list.
    """
    v = sorted(values)
    n = len(v)
    h = n // 2
    return v[h] if n % 2 else (v[h - 1] + v[h]) / 2


def _median_last_axis(w: np.ndarray) -> np.ndarray:
    """``numpy.median(w, axis=-1, keepdims=True)`` for float arrays, bit for bit, without its
    per-call overhead (about 10x faster on one beat window): the same partition (with the last
    element, for NaN detection), then the mean of the middle value(s)."""
    n = w.shape[-1]
    h = n // 2
    kth = (h, n - 1) if n % 2 else (h - 1, h, n - 1)
    part = np.partition(w, kth, axis=-1)
    mid = part[..., h : h + 1] if n % 2 else (part[..., h - 1 : h] + part[..., h : h + 1]) / 2
    return np.where(np.isnan(part[..., -1:]), np.nan, mid)


def _rhythm_row(log_prev: Sequence[float], log_next: float) -> tuple[float, ...]:
    """Rhythm features of the last beat of ``log_prev`` (its window of log previous RRs).

    Plain Python over at most :data:`RHYTHM_RR_BEATS` values: this runs once per beat on the
    live path, where NumPy's per-call overhead on 16-element arrays cost more than the maths.
    """
    med = _median(log_prev)
    dev = [abs(v - med) for v in log_prev]
    mad = _median(dev)
    steps = [abs(b - a) for a, b in itertools.pairwise(log_prev)] if len(log_prev) > 1 else [0.0]
    last = float(log_prev[-1]) - med
    return (
        _median(steps),
        sum(1 for d in dev if d < REGULAR_LOG_TOLERANCE) / len(dev),
        last,
        float(log_next) - med,
        last / (mad + RR_Z_FLOOR),
    )


def model_rr_columns(rr: np.ndarray, n_rr: int) -> np.ndarray:
    """The RR feature columns a model takes: the leading ``n_rr`` of the last axis.

    Models trained on the older 8-column RR set (before the rhythm columns 8-12 of
    :data:`RR_FEATURE_NAMES`) take the leading columns, which are unchanged; the edge runtime, the
    live pipeline and PyTorch prediction all go through this one function.

    Raises
    ------
    ValueError
        If ``rr`` has fewer than ``n_rr`` columns.

    >>> model_rr_columns(np.zeros((2, 13)), 8).shape
    (2, 8)
    """
    rr = np.asarray(rr)
    if rr.shape[-1] < n_rr:
        raise ValueError(f"the model expects {n_rr} RR features, got {rr.shape[-1]}")
    return rr[..., :n_rr]


def rhythm_features(
    prev_s: np.ndarray, next_s: np.ndarray, *, window: int = RHYTHM_RR_BEATS
) -> np.ndarray:
    """Irregularity of the rhythm around each beat, from its previous and next RR intervals.

    Over the window of the last ``window`` previous RRs (the beat's own included), in log units:

    * ``rr_irregularity``: median absolute successive difference of log RR (near 0 in sinus
      rhythm, even with occasional ectopic beats; large in atrial fibrillation);
    * ``rr_regular_fraction``: fraction of intervals within +-10 % of the window median;
    * ``rr_prev_median_logratio`` / ``rr_next_median_logratio``: log of the previous / next RR
      over the window median (prematurity and compensatory pause against a robust local rhythm);
    * ``rr_prev_z``: the previous-RR log-ratio in units of the window's median absolute deviation
      (floored at 0.03), so a short interval stands out in a regular rhythm but not in an
      irregular one.

    Atrial fibrillation is "irregularly irregular": its short intervals look premature to a
    prematurity-only rule and are the classic source of false SVEB in inter-patient studies
    (de Chazal et al. 2004; Llamedo & Martinez 2011); the window statistics let a classifier tell
    a premature beat in a regular rhythm from an irregular rhythm (Tateno & Glass 2001 use the
    same idea, RR-difference dispersion, to detect atrial fibrillation). Causal apart from the
    next RR, which :func:`rr_features` already uses; :class:`OnlineRRFeatures` gives identical
    values beat by beat.

    Parameters
    ----------
    prev_s, next_s : numpy.ndarray
        Previous and next RR interval of every beat in seconds (as in :func:`rr_features`).
    window : int
        Number of previous RRs in the window.

    Returns
    -------
    numpy.ndarray
        ``(n_beats, 5)`` float64.

    >>> import numpy as np
    >>> f = rhythm_features(np.array([1.0, 1.0, 1.0, 0.6]), np.array([1.0, 1.0, 0.6, 1.4]))
    >>> [round(float(v), 3) for v in f[-1]]
    [0.0, 0.75, -0.511, 0.336, -17.028]
    """
    prev = np.log(np.maximum(np.asarray(prev_s, np.float64), 1e-3))
    nxt = np.log(np.maximum(np.asarray(next_s, np.float64), 1e-3))
    window = int(window)
    if window < 2:
        raise ValueError(f"window must be >= 2 beats, got {window}")
    out = np.empty((prev.size, 5))
    for i in range(prev.size):
        out[i] = _rhythm_row(prev[max(0, i + 1 - window) : i + 1].tolist(), float(nxt[i]))
    return out


def rr_features(
    r_peaks_idx: np.ndarray, *, fs: float, local_beats: int = LOCAL_RR_BEATS
) -> RRFeatures:
    """RR features of every beat of one record, computable online with one beat of latency.

    Definitions for beat ``i`` with R-peak times ``r_i`` (s) and intervals ``d_i = r_{i+1} - r_i``:

    * previous RR ``p_i = d_{i-1}`` (``p_0 = d_0``: the first beat borrows its next interval);
    * next RR ``d_i`` (the last beat uses its previous interval);
    * local RR: mean of ``p`` over the last ``local_beats`` beats including ``i``;
    * average RR: mean of ``p_0 .. p_i`` (running, per patient);
    * ratios of previous, next and local RR to the average, and previous / next.

    With fewer than two beats no interval exists and the values are NaN.

    Parameters
    ----------
    r_peaks_idx : numpy.ndarray
        Strictly increasing R-peak sample indices of one record.
    fs : float
        Sampling rate in Hz.
    local_beats : int
        Beats in the local RR mean (de Chazal et al. 2004 use 10).

    >>> import numpy as np
    >>> f = rr_features(np.array([0, 100, 300, 400]), fs=100.0)
    >>> f.values[:, :4].tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 1.0, 1.0], [2.0, 1.0, 1.3333333333333333, 1.3333333333333333], [1.0, 1.0, 1.25, 1.25]]
    """
    fs = check_fs(fs)
    if int(local_beats) < 1:
        raise ValueError(f"local_beats must be >= 1, got {local_beats}")
    peaks = _check_peaks(r_peaks_idx)
    n = peaks.size
    if n < 2:
        return RRFeatures(np.full((n, len(RR_FEATURE_NAMES)), np.nan))
    d = np.diff(peaks).astype(np.float64) / fs
    prev = np.concatenate([d[:1], d])
    nxt = np.concatenate([d, d[-1:]])
    csum = np.concatenate([[0.0], np.cumsum(prev)])
    idx = np.arange(n)
    start = np.maximum(idx + 1 - int(local_beats), 0)
    local = (csum[idx + 1] - csum[start]) / (idx + 1 - start)
    avg = csum[1:] / (idx + 1)
    return RRFeatures(
        np.concatenate([_features_from(prev, nxt, local, avg), rhythm_features(prev, nxt)], 1)
    )


class OnlineRRFeatures:
    """Stateful RR features, one R-peak at a time; equal to :func:`rr_features` beat for beat.

    A beat's features need its next RR interval, so :meth:`update` with R-peak ``i`` returns the
    features of beat ``i - 1`` (one beat of latency), or ``None`` for the first peak;
    :meth:`flush` returns the last beat's features at the end of a stream.

    >>> import numpy as np
    >>> online = OnlineRRFeatures(fs=100.0)
    >>> rows = [online.update(p) for p in (0, 100, 300, 400)] + [online.flush()]
    >>> rows[0] is None, np.allclose(np.stack(rows[1:]), rr_features(np.array([0, 100, 300, 400]), fs=100.0).values)
    (True, True)
    """

    names: tuple[str, ...] = RR_FEATURE_NAMES

    def __init__(self, *, fs: float, local_beats: int = LOCAL_RR_BEATS) -> None:
        self.fs = check_fs(fs)
        if int(local_beats) < 1:
            raise ValueError(f"local_beats must be >= 1, got {local_beats}")
        self.local_beats = int(local_beats)
        self.reset()

    def reset(self) -> None:
        """Forget the record (start a new patient)."""
        self._last_peak: int | None = None
        self._pending_prev: float | None = None  # previous RR of the beat awaiting its next RR
        self._recent: deque[float] = deque(maxlen=self.local_beats)
        self._rhythm: deque[float] = deque(maxlen=RHYTHM_RR_BEATS)
        self._sum = 0.0
        self._count = 0

    def _emit(self, prev: float, nxt: float) -> np.ndarray:
        self._recent.append(prev)
        self._rhythm.append(float(np.log(max(prev, 1e-3))))
        self._sum += prev
        self._count += 1
        local = sum(self._recent) / len(self._recent)
        avg = self._sum / self._count
        # the columns of _features_from, in plain floats (same IEEE operations)
        base = (prev, nxt, local, avg, prev / avg, nxt / avg, local / avg, prev / nxt)
        rhythm = _rhythm_row(list(self._rhythm), float(np.log(max(nxt, 1e-3))))
        return np.array(base + rhythm, dtype=np.float64)

    def update(self, r_peak_idx: int) -> np.ndarray | None:
        """Add the next R-peak; return the previous beat's features (or ``None`` for the first)."""
        peak = int(r_peak_idx)
        if self._last_peak is None:
            self._last_peak = peak
            return None
        if peak <= self._last_peak:
            raise SignalError(f"r_peak_idx must increase: got {peak} after {self._last_peak}")
        d = (peak - self._last_peak) / self.fs
        self._last_peak = peak
        prev = d if self._pending_prev is None else self._pending_prev
        out = self._emit(prev, d)
        self._pending_prev = d
        return out

    def flush(self) -> np.ndarray | None:
        """Features of the last beat (its next RR taken as its previous RR); ``None`` if unknown."""
        if self._pending_prev is None:
            return None
        out = self._emit(self._pending_prev, self._pending_prev)
        self._pending_prev = None
        return out
