"""Boundary validation shared by every signal function."""

from __future__ import annotations

import numpy as np

from heartline.errors import SignalError

__all__ = ["as_1d_signal", "check_cutoff", "check_fs"]


def check_fs(fs: float, *, name: str = "fs") -> float:
    """Return ``fs`` as float, or raise :class:`SignalError` unless it is finite and > 0."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise SignalError(f"{name} must be a number in Hz, got {fs!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise SignalError(f"{name} must be a finite sampling rate > 0 Hz, got {fs!r}")
    return value


def check_cutoff(cutoff_hz: float, *, fs: float, name: str) -> float:
    """Raise unless ``0 < cutoff_hz < fs / 2``."""
    nyquist = fs / 2
    if not (0 < cutoff_hz < nyquist):
        raise SignalError(
            f"{name}={cutoff_hz} Hz must lie in (0, {nyquist}) Hz (Nyquist at fs={fs} Hz)"
        )
    return float(cutoff_hz)


def as_1d_signal(
    x: object, *, name: str = "signal", min_samples: int = 1, allow_nan: bool = False
) -> np.ndarray:
    """Validate a 1-D float signal.

    Raises
    ------
    SignalError
        Not 1-D, fewer than ``min_samples`` samples, or NaN/inf values when ``allow_nan`` is False.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise SignalError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_samples:
        raise SignalError(f"{name} has {arr.size} samples; at least {min_samples} are needed")
    if not allow_nan and not np.all(np.isfinite(arr)):
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise SignalError(
            f"{name} holds {n_bad} NaN/inf samples; impute gaps first (heartline.signal.preprocess.impute_gaps)"
        )
    return arr
