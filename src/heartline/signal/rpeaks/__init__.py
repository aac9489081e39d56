"""R-peak detection: Heartline's streaming detector and a registry of peer detectors.

>>> import numpy as np
>>> from heartline.signal.rpeaks import detect_r_peaks
>>> fs = 250.0
>>> t = np.arange(int(10 * fs)) / fs
>>> ecg = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.012**2))  # a spike train, 75 bpm
>>> peaks = detect_r_peaks(ecg, fs=fs)
>>> np.diff(peaks.sample_idx).tolist() == [200] * (len(peaks.sample_idx) - 1), len(peaks.sample_idx) >= 11
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heartline.errors import SignalError
from heartline.signal._validate import as_1d_signal, check_fs
from heartline.signal.rpeaks._heartline import (
    HeartlineDetectorConfig,
    MultiLeadRPeakDetector,
    StreamingRPeakDetector,
)
from heartline.signal.rpeaks._peers import NEUROKIT_METHODS, make_neurokit_detector, xqrs

__all__ = [
    "DETECTORS",
    "MULTI_LEAD",
    "HeartlineDetectorConfig",
    "MultiLeadRPeakDetector",
    "RPeaks",
    "StreamingRPeakDetector",
    "detect_r_peaks",
    "heartline_detect",
]


@dataclass(frozen=True)
class RPeaks:
    """Detected R peaks.

    Attributes
    ----------
    sample_idx : numpy.ndarray
        int64 sample positions, sorted, at the input's sampling rate.
    fs : float
        Sampling rate in Hz.
    method : str
        Registry name of the detector that found them.
    vf_spans : numpy.ndarray
        ``(k, 2)`` int64 half-open ``[start_idx, stop_idx)`` ventricular flutter/fibrillation
        episodes in which the detector withheld beats (Heartline detectors only; peers and
        VF-free signals give an empty array).
    """

    sample_idx: np.ndarray
    fs: float
    method: str
    vf_spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])


def _run_heartline(ecg: np.ndarray, *, fs: float, **config: float) -> tuple[np.ndarray, np.ndarray]:
    if ecg.ndim == 2:
        det: StreamingRPeakDetector = MultiLeadRPeakDetector(fs=fs, n_leads=ecg.shape[1], **config)
    else:
        det = StreamingRPeakDetector(fs=fs, **config)
    idx = np.concatenate((det.process(ecg), det.flush()))
    return idx, np.asarray(det.vf_spans, dtype=np.int64).reshape(-1, 2)


def heartline_detect(ecg: np.ndarray, *, fs: float, **config: float) -> np.ndarray:
    """Heartline's detector on a whole record (one chunk of :class:`StreamingRPeakDetector`)."""
    return _run_heartline(ecg, fs=fs, **config)[0]


def heartline_2lead_detect(ecg: np.ndarray, *, fs: float, **config: float) -> np.ndarray:
    """Heartline's two-lead detector (:class:`MultiLeadRPeakDetector`) on ``(n, 2)`` samples."""
    ecg = np.asarray(ecg, dtype=np.float64)
    if ecg.ndim != 2 or ecg.shape[1] != 2:
        raise SignalError(
            f"ecg must have shape (n_samples, 2) for heartline_2lead, got {ecg.shape}"
        )
    return _run_heartline(ecg, fs=fs, **config)[0]


#: Registry: detector name -> ``f(ecg, *, fs) -> int64 sample indices``.
DETECTORS: dict[str, Callable[..., np.ndarray]] = {
    "heartline": heartline_detect,
    "heartline_2lead": heartline_2lead_detect,
    "xqrs": xqrs,
    "neurokit": make_neurokit_detector("neurokit"),
}
DETECTORS.update(
    {f"neurokit_{m}": make_neurokit_detector(m) for m in NEUROKIT_METHODS if m != "neurokit"}
)
#: Detectors that take ``(n_samples, n_leads)`` input -> number of leads; the others take 1-D.
MULTI_LEAD: dict[str, int] = {"heartline_2lead": 2}


def _as_multi_lead(ecg: object, n_leads: int) -> np.ndarray:
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_leads:
        raise SignalError(
            f"ecg must have shape (n_samples, {n_leads}) for this method, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        n_bad = int(np.count_nonzero(~np.isfinite(x)))
        raise SignalError(
            f"ecg holds {n_bad} NaN/inf samples; impute gaps first "
            "(heartline.signal.preprocess.impute_gaps)"
        )
    return x


def detect_r_peaks(ecg: np.ndarray, *, fs: float, method: str = "heartline") -> RPeaks:
    """Detect R peaks in one ECG lead (or several, for the methods in :data:`MULTI_LEAD`).

    Parameters
    ----------
    ecg : numpy.ndarray
        1-D ECG in mV; ``(n_samples, n_leads)`` for a method in :data:`MULTI_LEAD`
        (``"heartline_2lead"``: two leads, the first one primary).
    fs : float
        Sampling rate in Hz.
    method : str
        A name in :data:`DETECTORS`: ``"heartline"`` (default, see
        :class:`StreamingRPeakDetector`), ``"heartline_2lead"`` (two leads, see
        :class:`MultiLeadRPeakDetector`), ``"xqrs"`` (wfdb), ``"neurokit"`` (NeuroKit2
        default) or ``"neurokit_<method>"``.

    Returns
    -------
    RPeaks
        Sorted, unique int64 sample indices. Empty input, a flat line, or a signal too short to
        hold a QRS complex give no peaks.

    Raises
    ------
    ValueError
        Unknown ``method`` (the message lists the valid names).
    SignalError
        ``ecg`` is not 1-D or holds NaN/inf (impute gaps first), or ``fs`` is not a positive
        rate (Heartline's detector needs at least 50 Hz).
    """
    if method not in DETECTORS:
        raise ValueError(
            f"unknown R-peak method {method!r}; valid methods: {', '.join(sorted(DETECTORS))}"
        )
    fs = check_fs(fs)
    own = method in ("heartline", *MULTI_LEAD)
    if method in MULTI_LEAD:
        x = _as_multi_lead(ecg, MULTI_LEAD[method])
    else:
        x = as_1d_signal(ecg, name="ecg", min_samples=0)
    n = x.shape[0]
    if n == 0 or (not own and (n < int(2 * fs) or np.ptp(x) == 0)):
        # Peers crash on empty, very short or constant input; none of these holds a beat to find.
        if own:
            StreamingRPeakDetector(fs=fs)  # validates fs
        return RPeaks(np.zeros(0, dtype=np.int64), fs, method)
    spans = np.zeros((0, 2), dtype=np.int64)
    try:
        if own:
            idx, spans = _run_heartline(x, fs=fs)
        else:
            idx = np.asarray(DETECTORS[method](x, fs=fs), dtype=np.int64)
    except SignalError:
        raise
    except Exception as exc:  # peer libraries raise many types on odd input
        raise SignalError(
            f"R-peak method {method!r} failed on this signal ({type(exc).__name__}: {exc})"
        ) from exc
    idx = np.unique(idx[(idx >= 0) & (idx < n)])
    return RPeaks(idx, fs, method, spans)
