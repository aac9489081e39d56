"""ECG preprocessing: gap imputation, normalisation, resampling and the ``clean_ecg`` pipeline.

References
----------
.. [1] P. de Chazal, M. O'Dwyer, R. B. Reilly, "Automatic classification of heartbeats using ECG
   morphology and heartbeat interval features", IEEE Trans. Biomed. Eng. 51(7):1196-1206, 2004.
.. [2] P. Kligfield et al., "Recommendations for the standardization and interpretation of the
   electrocardiogram, part I", Circulation 115:1306-1324, 2007.
.. [3] P. P. Vaidyanathan, *Multirate Systems and Filter Banks*, Prentice Hall, 1993 (polyphase
   rational resampling, as in :func:`scipy.signal.resample_poly`).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal

from heartline.errors import HeartlineWarning, SignalError
from heartline.signal._validate import check_fs
from heartline.signal.filters import (
    BASELINE_METHODS,
    as_signal,
    bandpass,
    lowpass,
    notch,
    per_column,
    remove_baseline,
)

__all__ = [
    "IMPUTE_METHODS",
    "NORMALIZE_METHODS",
    "CleanConfig",
    "Imputed",
    "clean_ecg",
    "impute_gaps",
    "normalize",
    "resample",
]

logger = logging.getLogger(__name__)


def _as_signal_nan_ok(x: object, *, name: str = "signal") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise SignalError(f"{name} must be 1-D or 2-D (n_samples, n_leads), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise SignalError(f"{name} is empty (0 samples)")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise SignalError(f"{name} has shape {arr.shape}: no leads")
    if np.isinf(arr).any():
        raise SignalError(f"{name} holds +/-inf samples; only NaN marks a gap")
    return arr


# --------------------------------------------------------------------------------------------
# gap imputation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imputed:
    """A signal with its gaps filled.

    Attributes
    ----------
    signal : numpy.ndarray
        Finite signal, same shape as the input.
    imputed_mask : numpy.ndarray
        Boolean, same shape: True where a sample was NaN and has been filled.
    """

    signal: np.ndarray
    imputed_mask: np.ndarray

    @property
    def n_imputed(self) -> int:
        """Number of filled samples (over all leads)."""
        return int(self.imputed_mask.sum())


def _impute_linear(col: np.ndarray, bad: np.ndarray) -> np.ndarray:
    idx = np.arange(col.size)
    out = col.copy()
    # np.interp holds the first/last valid value beyond the ends (no extrapolation).
    out[bad] = np.interp(idx[bad], idx[~bad], col[~bad])
    return out


def _impute_mean(col: np.ndarray, bad: np.ndarray) -> np.ndarray:
    out = col.copy()
    out[bad] = float(np.mean(col[~bad]))
    return out


#: Gap-filling methods accepted by :func:`impute_gaps`.
IMPUTE_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "linear": _impute_linear,
    "mean": _impute_mean,
}


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    padded = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def impute_gaps(
    x: object, *, fs: float, method: str = "linear", max_gap_s: float | None = None
) -> Imputed:
    """Fill NaN gaps (dropped packets, lead-off) so that filters can run.

    Parameters
    ----------
    x : array_like
        Signal with NaN gaps, 1-D or ``(n_samples, n_leads)`` (each lead filled on its own).
    fs : float
        Sampling rate in Hz (for ``max_gap_s``).
    method : {"linear", "mean"}
        ``"linear"``: straight line between the samples either side of the gap (edges hold the
        nearest valid value); ``"mean"``: the lead's mean over the valid samples.
    max_gap_s : float, optional
        Refuse gaps longer than this (seconds): a filled 10 s gap is not an ECG.

    Returns
    -------
    Imputed
        ``signal`` (finite) and ``imputed_mask``.

    Raises
    ------
    SignalError
        Empty input, inf values, a lead with no valid sample, or a gap longer than ``max_gap_s``.
    ValueError
        Unknown ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> r = impute_gaps(np.array([0.0, np.nan, np.nan, 3.0]), fs=360.0)
    >>> r.signal.tolist(), r.imputed_mask.tolist()
    ([0.0, 1.0, 2.0, 3.0], [False, True, True, False])
    """
    fs = check_fs(fs)
    try:
        func = IMPUTE_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown imputation method {method!r}; valid: {sorted(IMPUTE_METHODS)}"
        ) from None
    if max_gap_s is not None and not max_gap_s > 0:
        raise SignalError(f"max_gap_s must be > 0 s or None, got {max_gap_s!r}")
    arr = _as_signal_nan_ok(x)
    mask = np.isnan(arr)

    def one(col: np.ndarray) -> np.ndarray:
        bad = np.isnan(col)
        if bad.all():
            raise SignalError(
                "impute_gaps: a lead holds only NaN samples; nothing to interpolate from"
            )
        if max_gap_s is not None:
            run = _longest_run(bad)
            if run > max_gap_s * fs:
                raise SignalError(
                    f"impute_gaps: a gap of {run / fs:.3f} s exceeds max_gap_s={max_gap_s} s"
                )
        return func(col, bad) if bad.any() else col.copy()

    return Imputed(signal=per_column(one, arr), imputed_mask=mask)


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
def _zscore(col: np.ndarray) -> tuple[float, float]:
    return float(np.mean(col)), float(np.std(col))


def _minmax(col: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(col)), float(np.max(col))
    return lo, hi - lo


def _robust(col: np.ndarray) -> tuple[float, float]:
    q1, med, q3 = np.percentile(col, [25, 50, 75])
    return float(med), float(q3 - q1)


#: Normalisation methods accepted by :func:`normalize`: each returns ``(centre, scale)``.
NORMALIZE_METHODS: dict[str, Callable[[np.ndarray], tuple[float, float]]] = {
    "zscore": _zscore,
    "minmax": _minmax,
    "robust": _robust,
}


def normalize(x: object, *, method: str = "zscore") -> np.ndarray:
    """Normalise amplitude per lead.

    Normalisation does not depend on the sampling rate, so this is the one function of the
    module without ``fs``.

    Parameters
    ----------
    x : array_like
        Finite signal, 1-D or ``(n_samples, n_leads)`` (each lead on its own).
    method : {"zscore", "minmax", "robust"}
        ``(x - mean) / std``; ``(x - min) / (max - min)`` into [0, 1]; or
        ``(x - median) / IQR`` (robust to QRS outliers and spikes).

    Returns
    -------
    numpy.ndarray
        A lead whose scale is 0 (constant input) is only centred, so it comes back as zeros,
        with a :class:`~heartline.errors.HeartlineWarning`; it never divides by zero.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([1.0, 2.0, 3.0]), method="minmax").tolist()
    [0.0, 0.5, 1.0]
    >>> normalize(np.array([1.0, 2.0, 3.0]), method="zscore").round(3).tolist()
    [-1.225, 0.0, 1.225]
    """
    try:
        func = NORMALIZE_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown normalisation method {method!r}; valid: {sorted(NORMALIZE_METHODS)}"
        ) from None
    arr = as_signal(x)
    flat_leads = []

    def one(col: np.ndarray) -> np.ndarray:
        centre, scale = func(col)
        if not (scale > 0 and np.isfinite(scale)):
            flat_leads.append(True)
            return np.zeros_like(col)
        return (col - centre) / scale

    out = per_column(one, arr)
    if flat_leads:
        warnings.warn(
            f"normalize({method}): {len(flat_leads)} constant lead(s) returned as zeros",
            HeartlineWarning,
            stacklevel=2,
        )
    return out


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------
def resample(x: object, *, fs: float, fs_out: float, max_denominator: int = 1000) -> np.ndarray:
    """Resample to any rate with a polyphase anti-aliasing filter (:func:`scipy.signal.resample_poly`).

    The ratio ``fs_out / fs`` is approximated by a fraction ``up / down`` with
    ``down <= max_denominator`` (exact for ratios such as 360 -> 250 Hz = 25/36).

    Parameters
    ----------
    x : array_like
        Finite signal, 1-D or ``(n_samples, n_leads)`` (resampled along axis 0).
    fs, fs_out : float
        Input and output sampling rates in Hz.
    max_denominator : int
        Largest ``down`` factor tried when approximating the ratio.

    Returns
    -------
    numpy.ndarray
        About ``n * up / down`` samples (rounded up).

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros(360), fs=360.0, fs_out=250.0).shape
    (250,)
    """
    fs = check_fs(fs)
    fs_out = check_fs(fs_out, name="fs_out")
    arr = as_signal(x)
    if fs_out == fs:
        return arr.copy()
    ratio = Fraction(fs_out / fs).limit_denominator(int(max_denominator))
    if ratio.numerator == 0:
        raise SignalError(
            f"fs_out={fs_out} Hz is too low against fs={fs} Hz for max_denominator={max_denominator}"
        )
    if abs(ratio.numerator / ratio.denominator - fs_out / fs) > 1e-9 * fs_out / fs:
        logger.info("resample: ratio %s approximates %s/%s", ratio, fs_out, fs)
    # padtype="line" avoids the dip at the ends that zero padding gives a signal with an offset.
    # The anti-aliasing filter is resample_poly's own default design (Kaiser window, beta 5),
    # computed once per ratio (_resample_fir) instead of at every call: the same coefficients.
    window: Any = ("kaiser", 5.0)
    if arr.dtype == np.float64:
        window = _resample_fir(ratio.numerator, ratio.denominator)
    return np.asarray(
        signal.resample_poly(
            arr, ratio.numerator, ratio.denominator, axis=0, padtype="line", window=window
        ),
        dtype=np.float64,
    )


@functools.lru_cache(maxsize=32)
def _resample_fir(up: int, down: int) -> np.ndarray:
    """``scipy.signal.resample_poly``'s default filter for ``up / down`` (in lowest terms):
    ``firwin(2 * 10 * max(up, down) + 1, 1 / max(up, down), window=("kaiser", 5.0))``, read-only
    (resample_poly copies it before scaling by ``up``)."""
    max_rate = max(up, down)
    h = np.asarray(
        signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)),
        dtype=np.float64,
    )
    h.flags.writeable = False
    return h


# --------------------------------------------------------------------------------------------
# pipeline
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanConfig:
    """Settings of :func:`clean_ecg` (the mains frequency is a required argument of the call).

    Attributes
    ----------
    baseline : {"median", "highpass"} or None
        Baseline-wander removal: de Chazal 2004 median filters [1]_, or the 0.5 Hz high-pass of
        the band-pass stage only (``"highpass"``), or None (keep the band-pass high-pass edge).
    highpass_hz : float or None
        Low edge of the band-pass, in Hz (0.5 Hz: monitoring band [2]_); None for low-pass only.
    lowpass_hz : float or None
        High edge, in Hz (capped at 0.45 fs); None for no low-pass.
    filter_order : int
        Butterworth order (doubled by zero-phase filtering).
    notch_harmonics : int
        Number of mains notches (1: fundamental only).
    denoise : {"wavelet", "emd"} or None
        Optional non-linear denoiser run last (:func:`heartline.signal.denoise.denoise`).
    impute : {"linear", "mean"} or None
        Fill NaN gaps first; None makes NaN input an error.
    """

    baseline: str | None = "median"
    highpass_hz: float | None = 0.5
    lowpass_hz: float | None = 40.0
    filter_order: int = 4
    notch_harmonics: int = 1
    denoise: str | None = None
    impute: str | None = None

    def __post_init__(self) -> None:
        if self.baseline is not None and self.baseline not in BASELINE_METHODS:
            raise ValueError(
                f"unknown baseline method {self.baseline!r}; valid: {sorted(BASELINE_METHODS)} or None"
            )
        if self.impute is not None and self.impute not in IMPUTE_METHODS:
            raise ValueError(
                f"unknown imputation method {self.impute!r}; valid: {sorted(IMPUTE_METHODS)} or None"
            )
        if self.denoise is not None:
            from heartline.signal.denoise import DENOISERS

            if self.denoise not in DENOISERS:
                raise ValueError(
                    f"unknown denoising method {self.denoise!r}; valid: {sorted(DENOISERS)} or None"
                )


def clean_ecg(
    x: object, *, fs: float, mains_hz: float | None, config: CleanConfig | None = None
) -> np.ndarray:
    """Offline ECG cleaning: [impute] -> baseline removal -> band-pass -> mains notch -> [denoise].

    Parameters
    ----------
    x : array_like
        Raw ECG in mV, 1-D or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz.
    mains_hz : {50, 60} or None
        Mains frequency of the recording site; ``None`` skips the notch (say so explicitly, e.g.
        for battery-powered recordings). A notch at or above Nyquist is skipped (logged).
    config : CleanConfig, optional
        Pipeline settings (defaults: median baseline, 0.5-40 Hz band-pass order 4, one notch).

    Returns
    -------
    numpy.ndarray
        Cleaned ECG, same shape as ``x``, all finite.

    Raises
    ------
    SignalError
        Bad ``fs``, NaN samples with ``config.impute=None``, or a signal too short for the filters.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 500.0
    >>> t = np.arange(0, 10, 1 / fs)
    >>> qrs = np.sin(2 * np.pi * 10 * t)
    >>> raw = qrs + 0.3 * np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 0.2 * t)
    >>> out = clean_ecg(raw, fs=fs, mains_hz=50, config=CleanConfig(baseline="highpass"))
    >>> bool(np.std((out - qrs)[1000:-1000]) < 0.05)
    True
    """
    fs = check_fs(fs)
    cfg = config if config is not None else CleanConfig()
    if mains_hz is not None and mains_hz not in (50, 60):
        raise SignalError(f"mains_hz must be 50, 60 or None, got {mains_hz!r}")
    arr = _as_signal_nan_ok(x)
    if np.isnan(arr).any():
        if cfg.impute is None:
            raise SignalError(
                f"clean_ecg: signal holds {int(np.isnan(arr).sum())} NaN samples; set CleanConfig(impute='linear') or impute first"
            )
        arr = impute_gaps(arr, fs=fs, method=cfg.impute).signal
    out = as_signal(arr)

    if cfg.baseline == "median":
        out = remove_baseline(out, fs=fs, method="median")
    hp = cfg.highpass_hz
    lp = cfg.lowpass_hz
    if lp is not None and lp >= 0.45 * fs:
        logger.info("clean_ecg: lowpass_hz=%s capped at 0.45 fs = %s Hz", lp, 0.45 * fs)
        lp = 0.45 * fs
    if hp is not None and lp is not None:
        out = bandpass(out, fs=fs, low_hz=hp, high_hz=lp, order=cfg.filter_order)
    elif hp is not None:
        out = remove_baseline(out, fs=fs, method="highpass", cutoff_hz=hp, order=cfg.filter_order)
    elif lp is not None:
        out = lowpass(out, fs=fs, cutoff_hz=lp, order=cfg.filter_order)

    if mains_hz is not None:
        if mains_hz < fs / 2:
            out = notch(out, fs=fs, mains_hz=mains_hz, harmonics=cfg.notch_harmonics)
        else:
            logger.info(
                "clean_ecg: mains %s Hz is at or above Nyquist (fs=%s Hz), notch skipped",
                mains_hz,
                fs,
            )

    if cfg.denoise is not None:
        from heartline.signal.denoise import denoise

        out = denoise(out, fs=fs, method=cfg.denoise)
    return np.asarray(out, dtype=np.float64)
