"""Signal-quality indices (SQIs) over short windows, offline or online.

Each window gets flags (:class:`QualityFlag`: flat line, clipping/saturation, lead-off, heavy
noise, too short) and a score in [0, 1]. The noise score combines three single-lead SQIs that
need no beat detector:

* ``kSQI``: kurtosis of the 1-40 Hz signal; a clean ECG is strongly peaked (> 5), Gaussian noise
  gives 3, sinusoidal interference ~1.5 (Li, Mark & Clifford 2008 [1]_; Clifford et al. 2012 [2]_).
* ``pSQI``: share of the 5-40 Hz power that lies in the QRS band 5-15 Hz; about 0.5-0.8 for a
  clean ECG [1]_. The default upper bound is 0.95 here, because clean MIT-BIH records with wide
  or low-frequency complexes (105, 203, 207, 208) sit at 0.85-0.95.
* ``basSQI``: ``1 - P(0-1 Hz) / P(0-40 Hz)``, low under baseline wander or motion [1]_ [2]_.
* ``hfSQI``: share of the power above 40 Hz (muscle noise, mains), when fs > 90 Hz.

Flat line and saturation follow the feature list of Clifford et al. 2012 [2]_ and the
"signal present / not saturated" checks that precede the HR-based rules of Orphanidou et al.
2015 [3]_. Beat-based SQIs (bSQI agreement of two QRS detectors [1]_, template correlation [3]_)
need R peaks and belong with the detectors.

:class:`QualityMonitor` is the online form: feed it each incoming frame (e.g. every 1 s); it
assesses the last ``window_s`` seconds, so that the live pipeline can suppress arrhythmia alarms
in noise.

References
----------
.. [1] Q. Li, R. G. Mark, G. D. Clifford, "Robust heart rate estimation from multiple asynchronous
   noisy sources using signal quality indices and a Kalman filter", Physiol. Meas. 29(1):15-32,
   2008.
.. [2] G. D. Clifford, J. Behar, Q. Li, I. Rezek, "Signal quality indices and data fusion for
   determining clinical acceptability of electrocardiograms", Physiol. Meas. 33(9):1419-1433, 2012.
.. [3] C. Orphanidou et al., "Signal-quality indices for the electrocardiogram and
   photoplethysmogram: derivation and applications to wireless monitoring", IEEE J. Biomed.
   Health Inform. 19(3):832-838, 2015.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from heartline.errors import SignalError
from heartline.signal._validate import check_fs

__all__ = [
    "QualityConfig",
    "QualityFlag",
    "QualityMonitor",
    "SignalQuality",
    "WindowAssessor",
    "WindowQuality",
    "assess_window",
    "signal_quality",
]


class QualityFlag(enum.IntFlag):
    """Problems found in a window (bit flags; ``OK`` is 0)."""

    OK = 0
    FLAT = 1  #: peak-to-peak below ``flat_ptp_mv`` (no signal)
    CLIPPED = 2  #: samples stuck at the window extremes or at the ADC rails (saturation)
    LEAD_OFF = 4  #: mostly NaN (dropped samples) or pinned at a rail
    NOISY = 8  #: noise score below ``noisy_below``
    SHORT = 16  #: fewer than ``min_window_s`` seconds: too short to judge noise


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the signal-quality index (amplitudes in mV).

    Attributes
    ----------
    window_s : float
        Window length in seconds (offline windows; online look-back).
    min_window_s : float
        Shorter windows are flagged ``SHORT`` and get no noise score.
    flat_ptp_mv : float
        Peak-to-peak below this is a flat line.
    clip_run_s : float
        A run of identical samples at the window's max or min at least this long is clipping (a
        real R peak stays at its top for a few ms only).
    rails_mv : tuple of float, optional
        ADC limits ``(low, high)`` of the device in mV; samples within ``rail_tol_mv`` count as
        saturated, and a window mostly at a rail is lead-off.
    rail_tol_mv : float
        Tolerance around the rails.
    lead_off_fraction : float
        Share of NaN (or rail) samples from which a window is lead-off.
    kurtosis_clean, kurtosis_noise : float
        kSQI at or above ``kurtosis_clean`` scores 1, at or below ``kurtosis_noise`` scores 0.
    psqi_range : tuple of float
        pSQI inside this range scores 1; the score falls linearly to 0 at 0.2 outside it.
    bas_clean, bas_noise : float
        basSQI score ramp (1 at ``bas_clean``, 0 at ``bas_noise``).
    hf_clean, hf_noise : float
        hfSQI score ramp (1 at or below ``hf_clean``, 0 at or above ``hf_noise``).
    noisy_below : float
        ``NOISY`` when the noise score is below this.
    """

    window_s: float = 2.0
    min_window_s: float = 1.0
    flat_ptp_mv: float = 0.02
    clip_run_s: float = 0.02
    rails_mv: tuple[float, float] | None = None
    rail_tol_mv: float = 1e-3
    lead_off_fraction: float = 0.5
    kurtosis_clean: float = 5.0
    kurtosis_noise: float = 3.0
    psqi_range: tuple[float, float] = (0.4, 0.95)
    bas_clean: float = 0.95
    bas_noise: float = 0.7
    hf_clean: float = 0.1
    hf_noise: float = 0.4
    noisy_below: float = 0.5

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise SignalError(f"window_s must be > 0 s, got {self.window_s!r}")
        if not 0 < self.min_window_s <= self.window_s:
            raise SignalError(
                f"min_window_s must lie in (0, window_s={self.window_s}], got {self.min_window_s!r}"
            )
        if not 0 < self.lead_off_fraction <= 1:
            raise SignalError(
                f"lead_off_fraction must lie in (0, 1], got {self.lead_off_fraction!r}"
            )
        if self.rails_mv is not None and not self.rails_mv[0] < self.rails_mv[1]:
            raise SignalError(
                f"rails_mv must be (low, high) with low < high, got {self.rails_mv!r}"
            )
        if not self.kurtosis_noise < self.kurtosis_clean:
            raise SignalError("kurtosis_noise must be below kurtosis_clean")


@dataclass(frozen=True)
class WindowQuality:
    """Quality of one window.

    Attributes
    ----------
    start_idx, stop_idx : int
        Half-open sample range of the window.
    flags : QualityFlag
        Problems found (``QualityFlag.OK`` when none).
    score : float
        0 (unusable) .. 1 (clean). 0 whenever the window is flat, clipped, lead-off or short.
    noise_score : float
        The noise part of the score (NaN when not computed).
    kurtosis, psqi, bas_sqi, hf_ratio : float
        The SQIs (NaN when not computed).
    nan_fraction : float
        Share of NaN samples.
    """

    start_idx: int
    stop_idx: int
    flags: QualityFlag
    score: float
    noise_score: float
    kurtosis: float
    psqi: float
    bas_sqi: float
    hf_ratio: float
    nan_fraction: float

    @property
    def usable(self) -> bool:
        """True when no flag is set."""
        return self.flags == QualityFlag.OK


@dataclass(frozen=True)
class SignalQuality:
    """Per-window quality of a signal (arrays of one entry per window).

    Attributes
    ----------
    fs : float
        Sampling rate in Hz.
    window_s : float
        Window length in seconds.
    start_idx, stop_idx : numpy.ndarray
        int64 half-open ranges of the windows.
    flags : numpy.ndarray
        int64 :class:`QualityFlag` bits per window.
    score : numpy.ndarray
        float64 score in [0, 1] per window.
    noise_score, kurtosis, psqi, bas_sqi, hf_ratio : numpy.ndarray
        The SQIs per window (NaN where not computed).
    """

    fs: float
    window_s: float
    start_idx: np.ndarray
    stop_idx: np.ndarray
    flags: np.ndarray
    score: np.ndarray
    noise_score: np.ndarray
    kurtosis: np.ndarray
    psqi: np.ndarray
    bas_sqi: np.ndarray
    hf_ratio: np.ndarray
    nan_fraction: np.ndarray

    def __len__(self) -> int:
        return int(self.flags.shape[0])

    @property
    def usable(self) -> np.ndarray:
        """Boolean per window: no flag set."""
        return self.flags == 0

    @property
    def overall_score(self) -> float:
        """Duration-weighted mean score over the windows."""
        lengths = (self.stop_idx - self.start_idx).astype(np.float64)
        return float(np.sum(self.score * lengths) / np.sum(lengths))

    def has(self, flag: QualityFlag) -> np.ndarray:
        """Boolean per window: ``flag`` is set."""
        return (self.flags & int(flag)) != 0

    def window(self, i: int) -> WindowQuality:
        """The ``i``-th window as a :class:`WindowQuality`."""
        return WindowQuality(
            start_idx=int(self.start_idx[i]),
            stop_idx=int(self.stop_idx[i]),
            flags=QualityFlag(int(self.flags[i])),
            score=float(self.score[i]),
            noise_score=float(self.noise_score[i]),
            kurtosis=float(self.kurtosis[i]),
            psqi=float(self.psqi[i]),
            bas_sqi=float(self.bas_sqi[i]),
            hf_ratio=float(self.hf_ratio[i]),
            nan_fraction=float(self.nan_fraction[i]),
        )


# --------------------------------------------------------------------------------------------
# one window
# --------------------------------------------------------------------------------------------
def _ramp(value: float, zero_at: float, one_at: float) -> float:
    """Linear 0..1 ramp from ``zero_at`` to ``one_at`` (either direction), clipped."""
    if not np.isfinite(value):
        return 0.0
    return float(np.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0))


def _longest_run_at(x: np.ndarray, value: float, tol: float) -> int:
    hit = np.abs(x - value) <= tol
    if not hit.any():
        return 0
    padded = np.r_[0, hit.astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def _spectral_sqis(x: np.ndarray, fs: float) -> tuple[float, float, float, float]:
    """kurtosis (1-40 Hz), pSQI, basSQI, HF ratio of a finite window."""
    n = x.size
    xc = x - np.mean(x)
    spec = np.fft.rfft(xc * np.hanning(n))
    power = np.abs(spec) ** 2
    freqs = np.fft.rfftfreq(n, d=1.0 / fs)
    top = min(40.0, fs / 2)

    def band(lo: float, hi: float) -> float:
        return float(power[(freqs >= lo) & (freqs < hi)].sum())

    p_5_15 = band(5.0, min(15.0, top))
    p_5_40 = band(5.0, top)
    p_0_1 = band(0.0, 1.0)
    p_0_40 = band(0.0, top)
    psqi = p_5_15 / p_5_40 if p_5_40 > 0 else float("nan")
    bas = 1.0 - p_0_1 / p_0_40 if p_0_40 > 0 else float("nan")
    total = float(power.sum())
    hf = band(40.0, fs / 2 + 1.0) / total if (fs > 90.0 and total > 0) else float("nan")
    # kurtosis of the 1-40 Hz band (FFT masking; Pearson definition, Gaussian = 3)
    full = np.fft.rfft(xc)
    full[(freqs < 1.0) | (freqs > top)] = 0.0
    y = np.fft.irfft(full, n=n)
    var = float(np.mean(y**2))
    kurt = float(np.mean(y**4) / var**2) if var > 0 else float("nan")
    return kurt, psqi, bas, hf


def assess_window(
    x: object, *, fs: float, config: QualityConfig | None = None, start_idx: int = 0
) -> WindowQuality:
    """Signal quality of one window (NaN samples allowed: they count towards lead-off).

    Parameters
    ----------
    x : array_like
        One lead, 1-D, in mV; NaN marks missing samples.
    fs : float
        Sampling rate in Hz.
    config : QualityConfig, optional
        Thresholds.
    start_idx : int
        Position of the window's first sample in the whole signal (for the result's indices).

    Returns
    -------
    WindowQuality

    Raises
    ------
    SignalError
        Bad ``fs``, a window that is not 1-D, empty, or holds +/-inf.

    Examples
    --------
    >>> import numpy as np
    >>> assess_window(np.zeros(720), fs=360.0).flags
    <QualityFlag.FLAT: 1>
    >>> w = assess_window(np.full(720, np.nan), fs=360.0)
    >>> bool(w.flags & QualityFlag.LEAD_OFF), w.score
    (True, 0.0)
    """
    fs = check_fs(fs)
    cfg = config if config is not None else QualityConfig()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise SignalError(f"window must be 1-D (one lead), got shape {arr.shape}")
    if arr.size == 0:
        raise SignalError("window is empty (0 samples)")
    if np.isinf(arr).any():
        raise SignalError("window holds +/-inf samples")
    n = arr.size
    nan = np.isnan(arr)
    nan_fraction = float(nan.mean())
    flags = QualityFlag.OK
    kurt = psqi = bas = hf = noise_score = float("nan")

    def result(score: float) -> WindowQuality:
        return WindowQuality(
            start_idx,
            start_idx + n,
            flags,
            float(score),
            noise_score,
            kurt,
            psqi,
            bas,
            hf,
            nan_fraction,
        )

    if nan_fraction >= cfg.lead_off_fraction:
        flags |= QualityFlag.LEAD_OFF
        return result(0.0)
    valid = arr[~nan]
    if cfg.rails_mv is not None:
        at_rail = (np.abs(valid - cfg.rails_mv[0]) <= cfg.rail_tol_mv) | (
            np.abs(valid - cfg.rails_mv[1]) <= cfg.rail_tol_mv
        )
        rail_fraction = float(at_rail.sum()) / n
        if rail_fraction + nan_fraction >= cfg.lead_off_fraction:
            flags |= QualityFlag.LEAD_OFF
            return result(0.0)
        if at_rail.any():
            flags |= QualityFlag.CLIPPED
    if float(np.ptp(valid)) < cfg.flat_ptp_mv:
        flags |= QualityFlag.FLAT
        return result(0.0)
    # fill the few NaNs linearly for the run-length and spectral measures
    filled = arr
    if nan.any():
        idx = np.arange(n)
        filled = arr.copy()
        filled[nan] = np.interp(idx[nan], idx[~nan], arr[~nan])
    min_run = max(round(cfg.clip_run_s * fs), 3)
    lo, hi = float(valid.min()), float(valid.max())
    if max(_longest_run_at(filled, hi, 0.0), _longest_run_at(filled, lo, 0.0)) >= min_run:
        flags |= QualityFlag.CLIPPED
    if n < cfg.min_window_s * fs:
        flags |= QualityFlag.SHORT
        return result(0.0)

    kurt, psqi, bas, hf = _spectral_sqis(filled, fs)
    parts = [
        _ramp(kurt, cfg.kurtosis_noise, cfg.kurtosis_clean),
        _ramp(bas, cfg.bas_noise, cfg.bas_clean),
    ]
    p_lo, p_hi = cfg.psqi_range
    parts.append(_ramp(psqi, p_lo - 0.2, p_lo) if psqi < p_lo else _ramp(psqi, p_hi + 0.2, p_hi))
    if np.isfinite(hf):
        parts.append(_ramp(hf, cfg.hf_noise, cfg.hf_clean))
    # geometric mean: one clearly failed index pulls the score down
    noise_score = float(np.prod(parts) ** (1.0 / len(parts)))
    if noise_score < cfg.noisy_below:
        flags |= QualityFlag.NOISY
    bad = QualityFlag.FLAT | QualityFlag.CLIPPED | QualityFlag.LEAD_OFF
    score = 0.0 if flags & bad else noise_score * (1.0 - nan_fraction)
    return result(score)


# --------------------------------------------------------------------------------------------
# whole signal and online
# --------------------------------------------------------------------------------------------
def signal_quality(x: object, *, fs: float, config: QualityConfig | None = None) -> SignalQuality:
    """Signal quality over consecutive windows of ``config.window_s`` seconds.

    The last, partial window is assessed too (flagged ``SHORT`` below ``min_window_s``).

    Parameters
    ----------
    x : array_like
        One lead, 1-D, in mV; NaN marks missing samples.
    fs : float
        Sampling rate in Hz.
    config : QualityConfig, optional
        Window length and thresholds.

    Returns
    -------
    SignalQuality

    Raises
    ------
    SignalError
        Empty or non-1-D input, +/-inf samples, bad ``fs``.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 360.0
    >>> t = np.arange(0, 10, 1 / fs)
    >>> ecg_like = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.012**2))  # 75 bpm spikes
    >>> x = np.r_[ecg_like, np.zeros(int(4 * fs))]  # then 4 s of flat line
    >>> q = signal_quality(x, fs=fs)
    >>> q.usable.tolist()
    [True, True, True, True, True, False, False]
    """
    fs = check_fs(fs)
    cfg = config if config is not None else QualityConfig()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise SignalError(f"signal must be 1-D (one lead), got shape {arr.shape}")
    if arr.size == 0:
        raise SignalError("signal is empty (0 samples)")
    width = max(round(cfg.window_s * fs), 1)
    windows = [
        assess_window(arr[s : s + width], fs=fs, config=cfg, start_idx=s)
        for s in range(0, arr.size, width)
    ]

    def col(attr: str, dtype: type) -> np.ndarray:
        return np.array([getattr(w, attr) for w in windows], dtype=dtype)

    return SignalQuality(
        fs=fs,
        window_s=cfg.window_s,
        start_idx=col("start_idx", np.int64),
        stop_idx=col("stop_idx", np.int64),
        flags=np.array([int(w.flags) for w in windows], dtype=np.int64),
        score=col("score", np.float64),
        noise_score=col("noise_score", np.float64),
        kurtosis=col("kurtosis", np.float64),
        psqi=col("psqi", np.float64),
        bas_sqi=col("bas_sqi", np.float64),
        hf_ratio=col("hf_ratio", np.float64),
        nan_fraction=col("nan_fraction", np.float64),
    )


class QualityMonitor:
    """Online signal quality: assess the last ``config.window_s`` seconds after each frame.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    config : QualityConfig, optional
        Thresholds; ``window_s`` is the look-back.

    Examples
    --------
    >>> import numpy as np
    >>> monitor = QualityMonitor(fs=250.0)
    >>> monitor.update(np.zeros(250)).flags
    <QualityFlag.FLAT: 1>
    >>> monitor.samples_seen
    250
    """

    def __init__(self, *, fs: float, config: QualityConfig | None = None) -> None:
        self.fs = check_fs(fs)
        self.config = config if config is not None else QualityConfig()
        self._width = max(round(self.config.window_s * self.fs), 1)
        self._buffer = np.empty(0, dtype=np.float64)
        self.samples_seen = 0

    def reset(self) -> None:
        """Forget the buffered samples."""
        self._buffer = np.empty(0, dtype=np.float64)
        self.samples_seen = 0

    def update(self, frame: object) -> WindowQuality:
        """Append one frame (1-D, NaN allowed) and assess the last ``window_s`` seconds.

        Raises
        ------
        SignalError
            The frame is not 1-D, empty, or holds +/-inf.
        """
        arr = np.asarray(frame, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise SignalError(f"frame must be a non-empty 1-D array, got shape {arr.shape}")
        if np.isinf(arr).any():
            raise SignalError("frame holds +/-inf samples")
        self._buffer = np.concatenate([self._buffer, arr])[-self._width :]
        self.samples_seen += arr.size
        start = self.samples_seen - self._buffer.size
        return assess_window(self._buffer, fs=self.fs, config=self.config, start_idx=start)


class WindowAssessor:
    """:func:`assess_window` for a stream of windows at one rate, with its per-size set-up cached.

    Returns exactly what ``assess_window(x, fs=fs, config=config, start_idx=start_idx)`` returns
    (a test checks equality field by field): windows with NaN samples, configured ADC rails or
    sizes not seen before go through the same code; the common case (finite samples, no rails)
    reuses the Hann taper, frequency grid and band masks of each window length and skips the
    run-length search when the window's extreme value occurs fewer times than a clipping run
    needs. For the live pipeline, which assesses a 2 s window every second per device.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    config : QualityConfig, optional
        Thresholds.
    """

    def __init__(self, *, fs: float, config: QualityConfig | None = None) -> None:
        self.fs = check_fs(fs)
        self.config = config if config is not None else QualityConfig()
        self._min_run = max(round(self.config.clip_run_s * self.fs), 3)
        self._plans: dict[int, tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]] = {}

    def _plan(self, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
        plan = self._plans.get(n)
        if plan is None:
            fs = self.fs
            freqs = np.fft.rfftfreq(n, d=1.0 / fs)
            top = min(40.0, fs / 2)

            def band(lo: float, hi: float) -> np.ndarray:
                return (freqs >= lo) & (freqs < hi)

            masks = (
                band(5.0, min(15.0, top)),
                band(5.0, top),
                band(0.0, 1.0),
                band(0.0, top),
                band(40.0, fs / 2 + 1.0),
            )
            plan = (np.hanning(n), masks, (freqs < 1.0) | (freqs > top))
            if len(self._plans) < 8:
                self._plans[n] = plan
        return plan

    def _spectral(self, x: np.ndarray) -> tuple[float, float, float, float]:
        """:func:`_spectral_sqis` with the cached plan (same operations, same order)."""
        n = x.size
        hann, (m_5_15, m_5_40, m_0_1, m_0_40, m_hf), stop = self._plan(n)
        xc = x - np.mean(x)
        spec = np.fft.rfft(xc * hann)
        power = np.abs(spec) ** 2
        p_5_15 = float(power[m_5_15].sum())
        p_5_40 = float(power[m_5_40].sum())
        p_0_1 = float(power[m_0_1].sum())
        p_0_40 = float(power[m_0_40].sum())
        psqi = p_5_15 / p_5_40 if p_5_40 > 0 else float("nan")
        bas = 1.0 - p_0_1 / p_0_40 if p_0_40 > 0 else float("nan")
        total = float(power.sum())
        hf = float(power[m_hf].sum()) / total if (self.fs > 90.0 and total > 0) else float("nan")
        full = np.fft.rfft(xc)
        full[stop] = 0.0
        y = np.fft.irfft(full, n=n)
        var = float(np.mean(y**2))
        kurt = float(np.mean(y**4) / var**2) if var > 0 else float("nan")
        return kurt, psqi, bas, hf

    def _spectral_many(self, xs: np.ndarray) -> list[tuple[float, float, float, float]]:
        """:meth:`_spectral` of every row of ``xs`` (``(k, n)`` float64), bit-identical per row.

        The FFTs run as one 2-D call (NumPy's pocketfft transforms each row on its own) and
        every reduction runs along C-contiguous rows, as :meth:`_spectral` reduces a 1-D array
        (a test checks equality with the row-by-row results).
        """
        n = xs.shape[1]
        hann, masks, stop = self._plan(n)
        xc = xs - np.mean(xs, axis=1, keepdims=True)
        power = np.abs(np.fft.rfft(xc * hann, axis=1)) ** 2
        p_5_15, p_5_40, p_0_1, p_0_40, p_hf = (
            np.ascontiguousarray(power[:, m]).sum(axis=1).tolist() for m in masks
        )
        totals = power.sum(axis=1).tolist()
        full = np.fft.rfft(xc, axis=1)
        full[:, stop] = 0.0
        y = np.fft.irfft(full, n=n, axis=1)
        y2 = y**2
        var_all = np.mean(y2, axis=1).tolist()
        m4_all = np.mean(y**4, axis=1).tolist()
        out = []
        for i in range(xs.shape[0]):
            psqi = p_5_15[i] / p_5_40[i] if p_5_40[i] > 0 else float("nan")
            bas = 1.0 - p_0_1[i] / p_0_40[i] if p_0_40[i] > 0 else float("nan")
            total = totals[i]
            hf = p_hf[i] / total if (self.fs > 90.0 and total > 0) else float("nan")
            var = var_all[i]
            kurt = m4_all[i] / var**2 if var > 0 else float("nan")
            out.append((kurt, psqi, bas, hf))
        return out

    def assess(self, x: np.ndarray, *, start_idx: int = 0) -> WindowQuality:
        """Quality of one window (see :func:`assess_window`)."""
        early = self._precheck(x, start_idx)
        if isinstance(early, WindowQuality):
            return early
        arr, flags = early
        return self._finish(arr.size, start_idx, flags, self._spectral(arr))

    def assess_many(
        self, windows: list[np.ndarray], *, start_idx: list[int]
    ) -> list[WindowQuality]:
        """``[self.assess(x, start_idx=s) for x, s in zip(windows, start_idx)]``, the same
        results, with the spectral SQIs of equal-length windows computed in one 2-D call (many
        devices of the live pipeline at once)."""
        if len(windows) != len(start_idx):
            raise ValueError(
                f"start_idx must align with windows: {len(start_idx)} != {len(windows)}"
            )
        out: list[WindowQuality | None] = [None] * len(windows)
        groups: dict[int, list[tuple[int, np.ndarray, QualityFlag]]] = {}
        for i, (x, s) in enumerate(zip(windows, start_idx, strict=True)):
            early = self._precheck(x, s)
            if isinstance(early, WindowQuality):
                out[i] = early
            else:
                arr, flags = early
                groups.setdefault(arr.size, []).append((i, arr, flags))
        for n, members in groups.items():
            if len(members) == 1:
                i, arr, flags = members[0]
                out[i] = self._finish(n, start_idx[i], flags, self._spectral(arr))
                continue
            sqis = self._spectral_many(np.stack([arr for _, arr, _ in members]))
            for (i, _arr, flags), sq in zip(members, sqis, strict=True):
                out[i] = self._finish(n, start_idx[i], flags, sq)
        return out  # type: ignore[return-value]

    def _precheck(
        self, x: np.ndarray, start_idx: int
    ) -> WindowQuality | tuple[np.ndarray, QualityFlag]:
        """The verdict when no spectral SQI is needed, else ``(window, flags so far)``."""
        cfg = self.config
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or cfg.rails_mv is not None:
            return assess_window(arr, fs=self.fs, config=cfg, start_idx=start_idx)
        lo, hi = float(arr.min()), float(arr.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN or inf: the general code
            return assess_window(arr, fs=self.fs, config=cfg, start_idx=start_idx)
        n = arr.size
        nan = float("nan")
        flags = QualityFlag.OK
        if hi - lo < cfg.flat_ptp_mv:
            return WindowQuality(
                start_idx, start_idx + n, QualityFlag.FLAT, 0.0, nan, nan, nan, nan, nan, 0.0
            )
        min_run = self._min_run
        if (
            np.count_nonzero(arr == hi) >= min_run or np.count_nonzero(arr == lo) >= min_run
        ) and max(_longest_run_at(arr, hi, 0.0), _longest_run_at(arr, lo, 0.0)) >= min_run:
            flags |= QualityFlag.CLIPPED
        if n < cfg.min_window_s * self.fs:
            flags |= QualityFlag.SHORT
            return WindowQuality(start_idx, start_idx + n, flags, 0.0, nan, nan, nan, nan, nan, 0.0)
        return arr, flags

    def _finish(
        self,
        n: int,
        start_idx: int,
        flags: QualityFlag,
        sqis: tuple[float, float, float, float],
    ) -> WindowQuality:
        cfg = self.config
        kurt, psqi, bas, hf = sqis
        parts = [
            _ramp(kurt, cfg.kurtosis_noise, cfg.kurtosis_clean),
            _ramp(bas, cfg.bas_noise, cfg.bas_clean),
        ]
        p_lo, p_hi = cfg.psqi_range
        parts.append(
            _ramp(psqi, p_lo - 0.2, p_lo) if psqi < p_lo else _ramp(psqi, p_hi + 0.2, p_hi)
        )
        if np.isfinite(hf):
            parts.append(_ramp(hf, cfg.hf_noise, cfg.hf_clean))
        noise_score = float(np.prod(parts) ** (1.0 / len(parts)))
        if noise_score < cfg.noisy_below:
            flags |= QualityFlag.NOISY
        bad = QualityFlag.FLAT | QualityFlag.CLIPPED | QualityFlag.LEAD_OFF
        score = 0.0 if flags & bad else noise_score * (1.0 - 0.0)
        return WindowQuality(
            start_idx, start_idx + n, flags, float(score), noise_score, kurt, psqi, bas, hf, 0.0
        )
