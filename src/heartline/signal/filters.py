"""Linear and order-statistic ECG filters: band-pass, notch, baseline-wander removal, smoothing.

Every function takes the sampling rate as the explicit keyword ``fs`` (Hz), accepts a 1-D signal
or a 2-D ``(n_samples, n_leads)`` array (filtered per column), and returns float64 of the same
shape. Offline filters are zero-phase (forward-backward, :func:`scipy.signal.sosfiltfilt`), so
they do not shift the QRS complex; :class:`CausalFilter` is the stateful, causal variant for
streaming, which keeps the filter state between chunks.

Mains frequency is never a hidden default: :func:`notch` requires ``mains_hz`` (50 or 60).

References
----------
.. [1] P. de Chazal, M. O'Dwyer, R. B. Reilly, "Automatic classification of heartbeats using ECG
   morphology and heartbeat interval features", IEEE Trans. Biomed. Eng. 51(7):1196-1206, 2004
   (baseline removal with 200 ms and 600 ms median filters).
.. [2] AHA/ACC/HRS, P. Kligfield et al., "Recommendations for the standardization and
   interpretation of the electrocardiogram, part I", Circulation 115:1306-1324, 2007 (0.5 Hz
   high-pass for monitoring, 0.05 Hz for diagnostic ECG).
.. [3] F. Gustafsson, "Determining the initial states in forward-backward filtering", IEEE Trans.
   Signal Process. 44(4):988-992, 1996 (the padding used by ``sosfiltfilt``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
from scipy import ndimage, signal

from heartline.errors import SignalError
from heartline.signal._validate import as_1d_signal, check_cutoff, check_fs

__all__ = [
    "BASELINE_METHODS",
    "CausalFilter",
    "ZeroPhaseFilter",
    "bandpass",
    "design_bandpass",
    "design_highpass",
    "design_lowpass",
    "design_notch",
    "gaussian_smooth",
    "highpass",
    "lowpass",
    "median_baseline",
    "notch",
    "remove_baseline",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def as_signal(x: object, *, name: str = "signal", min_samples: int = 1) -> np.ndarray:
    """Validate a 1-D signal or a 2-D ``(n_samples, n_leads)`` array (finite values only)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] == 0:
            raise SignalError(f"{name} has shape {arr.shape}: no leads")
        for j in range(arr.shape[1]):
            as_1d_signal(arr[:, j], name=f"{name}[:, {j}]", min_samples=min_samples)
        return arr
    if arr.ndim != 1:
        raise SignalError(f"{name} must be 1-D or 2-D (n_samples, n_leads), got shape {arr.shape}")
    return as_1d_signal(arr, name=name, min_samples=min_samples)


def per_column(func: Callable[[np.ndarray], np.ndarray], arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 1:
        return func(arr)
    return np.column_stack([func(arr[:, j]) for j in range(arr.shape[1])])


def _check_order(order: int) -> int:
    if int(order) != order or order < 1:
        raise SignalError(f"order must be a positive integer, got {order!r}")
    return int(order)


def _sosfiltfilt_padlen(sos: np.ndarray) -> int:
    """The default ``padlen`` of :func:`scipy.signal.sosfiltfilt` for this filter."""
    n_zero_b = int((sos[:, 2] == 0).sum())
    n_zero_a = int((sos[:, 5] == 0).sum())
    return 3 * (2 * len(sos) + 1 - min(n_zero_b, n_zero_a))


def _zero_phase(sos: np.ndarray, x: object, *, what: str) -> np.ndarray:
    """Forward-backward filtering of a validated signal, with a clear minimum-length error."""
    arr = as_signal(x)
    padlen = _sosfiltfilt_padlen(sos)
    if arr.shape[0] <= padlen:
        raise SignalError(
            f"{what}: signal has {arr.shape[0]} samples but zero-phase filtering needs more than "
            f"padlen={padlen} samples (sosfiltfilt edge padding); pass a longer signal or use "
            "CausalFilter"
        )
    return np.asarray(signal.sosfiltfilt(sos, arr, axis=0), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# designs (second-order sections)
# --------------------------------------------------------------------------------------------
def design_bandpass(*, fs: float, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth band-pass as second-order sections.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Pass-band edges (-3 dB for one pass) in Hz, ``0 < low_hz < high_hz < fs / 2``.
    order : int
        Order of each of the low- and high-pass prototypes.

    Returns
    -------
    numpy.ndarray
        ``sos`` array of shape ``(order, 6)``.
    """
    fs = check_fs(fs)
    low_hz = check_cutoff(low_hz, fs=fs, name="low_hz")
    high_hz = check_cutoff(high_hz, fs=fs, name="high_hz")
    if low_hz >= high_hz:
        raise SignalError(f"low_hz={low_hz} Hz must be below high_hz={high_hz} Hz")
    # The same few designs are asked for on every window of a live stream: design each once.
    return _butter_bandpass_sos(
        _check_order(order), float(low_hz), float(high_hz), float(fs)
    ).copy()


@functools.lru_cache(maxsize=64)
def _butter_bandpass_sos(order: int, low_hz: float, high_hz: float, fs: float) -> np.ndarray:
    return signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")


def design_highpass(*, fs: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth high-pass as second-order sections (see :func:`design_bandpass`)."""
    fs = check_fs(fs)
    cutoff_hz = check_cutoff(cutoff_hz, fs=fs, name="cutoff_hz")
    return signal.butter(_check_order(order), cutoff_hz, btype="highpass", fs=fs, output="sos")


def design_lowpass(*, fs: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth low-pass as second-order sections (see :func:`design_bandpass`)."""
    fs = check_fs(fs)
    cutoff_hz = check_cutoff(cutoff_hz, fs=fs, name="cutoff_hz")
    return signal.butter(_check_order(order), cutoff_hz, btype="lowpass", fs=fs, output="sos")


def design_notch(
    *, fs: float, mains_hz: float, harmonics: int = 1, quality: float = 30.0
) -> np.ndarray:
    """IIR notch at the mains frequency and, optionally, its harmonics, as second-order sections.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    mains_hz : float
        Mains frequency in Hz, 50 or 60 (explicit: there is no default).
    harmonics : int
        Number of notches: 1 removes ``mains_hz`` only, 2 adds ``2 * mains_hz``... Harmonics at or
        above Nyquist are skipped (logged); the fundamental must lie below it.
    quality : float
        Quality factor ``Q = f0 / bandwidth`` of each notch (``scipy.signal.iirnotch``).
    """
    fs = check_fs(fs)
    if mains_hz not in (50, 60):
        raise SignalError(f"mains_hz must be 50 or 60 Hz, got {mains_hz!r}")
    check_cutoff(float(mains_hz), fs=fs, name="mains_hz")
    if int(harmonics) != harmonics or harmonics < 1:
        raise SignalError(f"harmonics must be an integer >= 1, got {harmonics!r}")
    if not quality > 0:
        raise SignalError(f"quality must be > 0, got {quality!r}")
    sections = []
    for k in range(1, int(harmonics) + 1):
        f0 = k * float(mains_hz)
        if f0 >= fs / 2:
            logger.info(
                "notch: harmonic %.0f Hz is at or above Nyquist (fs=%s Hz), skipped", f0, fs
            )
            break
        b, a = signal.iirnotch(f0, quality, fs=fs)
        sections.append(signal.tf2sos(b, a))
    return np.vstack(sections)


# --------------------------------------------------------------------------------------------
# zero-phase (offline) filters
# --------------------------------------------------------------------------------------------
def bandpass(
    x: object, *, fs: float, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 4
) -> np.ndarray:
    """Zero-phase Butterworth band-pass filter.

    The default 0.5-40 Hz band is the usual monitoring band: it removes baseline wander below
    0.5 Hz [2]_ and muscle noise and mains above 40 Hz, and keeps the QRS energy (5-15 Hz).

    Parameters
    ----------
    x : array_like
        Signal, shape ``(n_samples,)`` or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Pass-band edges in Hz.
    order : int
        Butterworth order (doubled by the forward-backward pass).

    Returns
    -------
    numpy.ndarray
        Filtered signal, same shape as ``x``.

    Raises
    ------
    SignalError
        Bad ``fs`` or cut-offs, NaN/inf samples, or a signal shorter than the ``sosfiltfilt``
        padding length.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 360.0
    >>> t = np.arange(0, 10, 1 / fs)
    >>> x = np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 0.1 * t)
    >>> y = bandpass(x, fs=fs, low_hz=0.5, high_hz=40.0)
    >>> bool(np.abs(y[1000:-1000] - np.sin(2 * np.pi * 10 * t[1000:-1000])).max() < 0.05)
    True
    """
    sos = design_bandpass(fs=fs, low_hz=low_hz, high_hz=high_hz, order=order)
    return _zero_phase(sos, x, what=f"bandpass({low_hz}-{high_hz} Hz)")


def highpass(x: object, *, fs: float, cutoff_hz: float = 0.5, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth high-pass filter (baseline-wander removal at 0.5 Hz by default [2]_).

    Examples
    --------
    >>> import numpy as np
    >>> fs = 250.0
    >>> t = np.arange(0, 20, 1 / fs)
    >>> y = highpass(np.sin(2 * np.pi * 0.1 * t), fs=fs, cutoff_hz=0.5)
    >>> bool(np.abs(y[1000:-1000]).max() < 0.05)
    True
    """
    sos = design_highpass(fs=fs, cutoff_hz=cutoff_hz, order=order)
    return _zero_phase(sos, x, what=f"highpass({cutoff_hz} Hz)")


def lowpass(x: object, *, fs: float, cutoff_hz: float = 40.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass filter."""
    sos = design_lowpass(fs=fs, cutoff_hz=cutoff_hz, order=order)
    return _zero_phase(sos, x, what=f"lowpass({cutoff_hz} Hz)")


def notch(
    x: object, *, fs: float, mains_hz: float, harmonics: int = 1, quality: float = 30.0
) -> np.ndarray:
    """Zero-phase mains notch filter (``mains_hz`` is required: 50 or 60).

    Parameters
    ----------
    x : array_like
        Signal, 1-D or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz.
    mains_hz : float
        50 (Europe, most of Asia/Africa) or 60 (Americas, MIT-BIH recordings).
    harmonics : int
        Also remove ``2 * mains_hz``, ... up to this many notches (those below Nyquist).
    quality : float
        Notch quality factor; the -3 dB width is ``mains_hz / quality``.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 500.0
    >>> t = np.arange(0, 4, 1 / fs)
    >>> y = notch(np.sin(2 * np.pi * 50 * t), fs=fs, mains_hz=50)
    >>> bool(np.abs(y[500:-500]).max() < 0.01)
    True
    """
    sos = design_notch(fs=fs, mains_hz=mains_hz, harmonics=harmonics, quality=quality)
    return _zero_phase(sos, x, what=f"notch({mains_hz} Hz)")


# --------------------------------------------------------------------------------------------
# baseline wander
# --------------------------------------------------------------------------------------------
def _odd_width(duration_s: float, fs: float, name: str) -> int:
    if not duration_s > 0:
        raise SignalError(f"{name} must be > 0 s, got {duration_s!r}")
    width = round(duration_s * fs)
    return max(width + (width % 2 == 0), 3)


def median_baseline(
    x: object, *, fs: float, qrs_window_s: float = 0.2, t_window_s: float = 0.6
) -> np.ndarray:
    """Baseline estimate with two cascaded median filters (de Chazal et al. 2004 [1]_).

    The first median filter (200 ms) removes the QRS complex and P wave, the second (600 ms)
    removes the T wave; what is left is the baseline, which :func:`remove_baseline` subtracts.

    Parameters
    ----------
    x : array_like
        Signal, 1-D or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz; window widths are rounded to an odd number of samples.
    qrs_window_s, t_window_s : float
        Widths of the two median filters in seconds.

    Returns
    -------
    numpy.ndarray
        The baseline, same shape as ``x``.
    """
    fs = check_fs(fs)
    arr = as_signal(x)
    w1 = _odd_width(qrs_window_s, fs, "qrs_window_s")
    w2 = _odd_width(t_window_s, fs, "t_window_s")

    def one(col: np.ndarray) -> np.ndarray:
        # mode="nearest" repeats the edge samples, which keeps the baseline flat at the ends.
        stage1 = ndimage.median_filter(col, size=w1, mode="nearest")
        return ndimage.median_filter(stage1, size=w2, mode="nearest")

    return per_column(one, arr)


def _baseline_highpass(
    x: object, *, fs: float, cutoff_hz: float = 0.5, order: int = 4
) -> np.ndarray:
    return highpass(x, fs=fs, cutoff_hz=cutoff_hz, order=order)


def _baseline_median(
    x: object, *, fs: float, qrs_window_s: float = 0.2, t_window_s: float = 0.6
) -> np.ndarray:
    arr = as_signal(x)
    return arr - median_baseline(arr, fs=fs, qrs_window_s=qrs_window_s, t_window_s=t_window_s)


#: Baseline-wander removal methods accepted by :func:`remove_baseline`.
BASELINE_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "highpass": _baseline_highpass,
    "median": _baseline_median,
}


def remove_baseline(
    x: object, *, fs: float, method: str = "highpass", **kwargs: float
) -> np.ndarray:
    """Remove baseline wander.

    Parameters
    ----------
    x : array_like
        Signal, 1-D or ``(n_samples, n_leads)``.
    fs : float
        Sampling rate in Hz.
    method : {"highpass", "median"}
        ``"highpass"``: zero-phase Butterworth high-pass, ``cutoff_hz=0.5`` by default [2]_.
        ``"median"``: subtract the two-stage 200 ms / 600 ms median-filter baseline [1]_ (keeps
        the ST segment undistorted but is non-linear).
    **kwargs
        Passed to the method (``cutoff_hz``, ``order`` / ``qrs_window_s``, ``t_window_s``).

    Raises
    ------
    ValueError
        Unknown ``method`` (the message lists the valid ones).

    Examples
    --------
    >>> import numpy as np
    >>> fs = 128.0
    >>> t = np.arange(0, 30, 1 / fs)
    >>> wander = 0.5 * np.sin(2 * np.pi * 0.2 * t)
    >>> y = remove_baseline(wander, fs=fs, method="median")
    >>> bool(np.abs(y).max() < 0.05)
    True
    """
    try:
        func = BASELINE_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown baseline method {method!r}; valid: {sorted(BASELINE_METHODS)}"
        ) from None
    return func(x, fs=fs, **kwargs)


# --------------------------------------------------------------------------------------------
# smoothing
# --------------------------------------------------------------------------------------------
def gaussian_smooth(x: object, *, fs: float, sigma_ms: float = 10.0) -> np.ndarray:
    """Gaussian smoothing with a standard deviation given in milliseconds.

    A Gaussian kernel has no ringing; its -3 dB frequency is about ``0.133 / sigma_s`` Hz, i.e.
    ~13 Hz for ``sigma_ms=10``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(100), np.ones(100)]
    >>> y = gaussian_smooth(x, fs=1000.0, sigma_ms=5.0)
    >>> bool(0.45 < y[100] < 0.55 and y[0] == 0.0)
    True
    """
    fs = check_fs(fs)
    if not sigma_ms > 0:
        raise SignalError(f"sigma_ms must be > 0 ms, got {sigma_ms!r}")
    arr = as_signal(x)
    sigma = sigma_ms / 1000.0 * fs
    return per_column(lambda c: ndimage.gaussian_filter1d(c, sigma=sigma, mode="nearest"), arr)


class ZeroPhaseFilter:
    """``scipy.signal.sosfiltfilt(sos, x)`` of 1-D signals, for a filter applied many times.

    The same arithmetic in the same order as SciPy's function with its defaults (odd extension
    by the default ``padlen``, forward and backward passes of SciPy's second-order-section
    kernel from ``sosfilt_zi`` scaled initial states), so the output is bit for bit SciPy's
    (a test checks it), without redoing the per-call filter validation and the ``sosfilt_zi``
    linear solve, most of the cost on signals of a few thousand samples (the stream
    processor's rhythm input, :class:`heartline.edge.rhythm.RhythmStream`). Other inputs (not
    1-D, or a SciPy whose private kernel cannot be imported) go to ``sosfiltfilt`` itself.

    Parameters
    ----------
    sos : numpy.ndarray
        Second-order sections ``(n_sections, 6)`` (e.g. from :func:`design_bandpass`).

    Raises
    ------
    ValueError
        On call, a signal not longer than ``padlen`` (as ``sosfiltfilt`` raises).
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.padlen = _sosfiltfilt_padlen(self.sos)
        try:
            from scipy.signal._arraytools import odd_ext
            from scipy.signal._sosfilt import _sosfilt
        except ImportError:  # pragma: no cover - other SciPy layouts: the public function
            self._kernel = None
        else:
            self._kernel = (_sosfilt, odd_ext)
        self._zi = signal.sosfilt_zi(self.sos)  # (n_sections, 2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if self._kernel is None or arr.ndim != 1:
            return np.asarray(signal.sosfiltfilt(self.sos, arr), dtype=np.float64)
        edge = self.padlen
        if arr.shape[0] <= edge:
            raise ValueError(
                f"The length of the input vector x must be greater than padlen, which is {edge}."
            )
        sosfilt_, odd_ext = self._kernel
        y = np.array(odd_ext(arr, edge, axis=0)[None, :], dtype=np.float64, order="C")
        state = np.ascontiguousarray(self._zi[None, :, :] * y[:, 0, None, None])
        sosfilt_(self.sos, y, state)  # in place
        y = np.array(y[:, ::-1], order="C")
        state = np.ascontiguousarray(self._zi[None, :, :] * y[:, 0, None, None])
        sosfilt_(self.sos, y, state)
        out = y[0, ::-1]
        return out[edge:-edge] if edge > 0 else out


# --------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------
class CausalFilter:
    """Causal, stateful IIR filter for streaming (chunk by chunk) processing.

    Keeps the ``scipy.signal.sosfilt`` state between calls, so that filtering a signal in chunks
    of any size gives exactly the same output as filtering it in one go. The state is initialised
    on the first sample (``sosfilt_zi`` scaled by it) to avoid a step transient at start-up.
    Causal filtering delays the signal (group delay of a few tens of ms for a 0.5-40 Hz order-2
    band-pass); use the zero-phase functions offline.

    Parameters
    ----------
    sos : numpy.ndarray
        Second-order sections, e.g. from :func:`design_bandpass`.
    fs : float
        Sampling rate in Hz the design assumes.
    n_leads : int
        Number of leads (columns) of each chunk; 1 for 1-D chunks.

    Examples
    --------
    >>> import numpy as np
    >>> f = CausalFilter.bandpass(fs=360.0, low_hz=0.5, high_hz=40.0)
    >>> x = np.random.default_rng(0).standard_normal(1000)
    >>> y = np.concatenate([f.process(x[:300]), f.process(x[300:])])
    >>> f.reset()
    >>> bool(np.allclose(y, f.process(x)))
    True
    """

    def __init__(self, sos: np.ndarray, *, fs: float, n_leads: int = 1) -> None:
        sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
        if sos.ndim != 2 or sos.shape[1] != 6:
            raise SignalError(f"sos must have shape (n_sections, 6), got {sos.shape}")
        if int(n_leads) != n_leads or n_leads < 1:
            raise SignalError(f"n_leads must be a positive integer, got {n_leads!r}")
        self.sos = sos
        self.fs = check_fs(fs)
        self.n_leads = int(n_leads)
        self._zi_unit = signal.sosfilt_zi(sos)  # (n_sections, 2)
        self._zi: np.ndarray | None = None

    # constructors -------------------------------------------------------------------------
    @classmethod
    def bandpass(
        cls,
        *,
        fs: float,
        low_hz: float = 0.5,
        high_hz: float = 40.0,
        order: int = 2,
        n_leads: int = 1,
    ) -> CausalFilter:
        """Causal Butterworth band-pass."""
        return cls(
            design_bandpass(fs=fs, low_hz=low_hz, high_hz=high_hz, order=order),
            fs=fs,
            n_leads=n_leads,
        )

    @classmethod
    def highpass(
        cls, *, fs: float, cutoff_hz: float = 0.5, order: int = 2, n_leads: int = 1
    ) -> CausalFilter:
        """Causal Butterworth high-pass."""
        return cls(design_highpass(fs=fs, cutoff_hz=cutoff_hz, order=order), fs=fs, n_leads=n_leads)

    @classmethod
    def lowpass(
        cls, *, fs: float, cutoff_hz: float = 40.0, order: int = 4, n_leads: int = 1
    ) -> CausalFilter:
        """Causal Butterworth low-pass."""
        return cls(design_lowpass(fs=fs, cutoff_hz=cutoff_hz, order=order), fs=fs, n_leads=n_leads)

    @classmethod
    def notch(
        cls,
        *,
        fs: float,
        mains_hz: float,
        harmonics: int = 1,
        quality: float = 30.0,
        n_leads: int = 1,
    ) -> CausalFilter:
        """Causal mains notch (``mains_hz`` 50 or 60, required)."""
        return cls(
            design_notch(fs=fs, mains_hz=mains_hz, harmonics=harmonics, quality=quality),
            fs=fs,
            n_leads=n_leads,
        )

    # streaming ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the state; the next chunk starts a new stream."""
        self._zi = None

    def process(self, chunk: object) -> np.ndarray:
        """Filter the next chunk (1-D, or ``(n_samples, n_leads)``) and return it, same shape.

        Raises
        ------
        SignalError
            NaN/inf samples (impute first) or a lead count other than ``n_leads``.
        """
        arr = np.asarray(chunk, dtype=np.float64)
        squeeze = arr.ndim == 1
        if squeeze:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.n_leads:
            raise SignalError(f"chunk must have shape (n, {self.n_leads}), got {np.shape(chunk)}")
        if arr.shape[0] == 0:
            return arr[:, 0].copy() if squeeze else arr.copy()
        if not np.all(np.isfinite(arr)):
            raise SignalError(
                "chunk holds NaN/inf samples; impute gaps before CausalFilter.process"
            )
        if self._zi is None:
            # (n_sections, 2, n_leads): steady state for a constant input equal to the first sample
            self._zi = self._zi_unit[:, :, None] * arr[0][None, None, :]
        out, self._zi = signal.sosfilt(self.sos, arr, axis=0, zi=self._zi)
        out = np.asarray(out, dtype=np.float64)
        return out[:, 0] if squeeze else out

    def __repr__(self) -> str:
        return f"CausalFilter(n_sections={len(self.sos)}, fs={self.fs}, n_leads={self.n_leads})"
