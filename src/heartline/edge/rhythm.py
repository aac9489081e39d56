"""Torch-free rhythm classification (N / A / O / ~) with ONNX Runtime.

The shipped model (``heartline/assets/models/rhythm.onnx``, card ``rhythm.md``) was trained by
``heartline bench rhythm``'s harness (:mod:`heartline.training.rhythm`) on the fixed 80 % split
of the shared CinC 2017 records. This module needs numpy, scipy and onnxruntime only: it computes
the same inputs (:mod:`heartline.features.rhythm`) and averages the class probabilities over
30 s windows 15 s apart.

Input the model cannot use gets the ``~`` ("unusable") outcome with a message, never an
exception: a record shorter than the minimum, ``fs`` below 100 Hz, a flat line, a clipped
signal, long NaN runs or no detectable heartbeat.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.errors import HeartlineError
from heartline.features.rhythm import (
    HAND_FEATURE_NAMES,
    rhythm_hand_features,
    rhythm_model_signal,
    rhythm_rr_features,
)

__all__ = [
    "MIN_FS_HZ",
    "RHYTHM_CLASSES",
    "OnnxRhythmClassifier",
    "RhythmResult",
    "classify_rhythm",
    "shipped_rhythm_model_path",
]

log = logging.getLogger(__name__)

RHYTHM_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
#: Lowest input rate accepted (the QRS detector and the 0.5-40 Hz band need it).
MIN_FS_HZ: float = 100.0
_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "models"


def shipped_rhythm_model_path() -> Path:
    """Path of the shipped rhythm model (``assets/models/rhythm.onnx``)."""
    return _ASSETS / "rhythm.onnx"


@dataclass(frozen=True)
class RhythmResult:
    """Rhythm of one recording.

    Attributes
    ----------
    label : str
        ``"N"``, ``"A"``, ``"O"`` or ``"~"`` (noisy, or unusable input: see ``usable``).
    p_N, p_A, p_O, p_noisy : float
        Class probabilities (mean over the 30 s windows); for unusable input ``p_noisy`` is 1.
    usable : bool
        False when the input could not be classified (``message`` says why).
    message : str
        Empty, or why the input was unusable / what was repaired.
    duration_s : float
        Length of the input in seconds.
    n_windows : int
        30 s windows averaged.
    """

    label: str
    p_N: float
    p_A: float
    p_O: float
    p_noisy: float
    usable: bool = True
    message: str = ""
    duration_s: float = 0.0
    n_windows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "p_N": self.p_N,
            "p_A": self.p_A,
            "p_O": self.p_O,
            "p_noisy": self.p_noisy,
            "usable": self.usable,
            "message": self.message,
            "duration_s": self.duration_s,
            "n_windows": self.n_windows,
        }


def _unusable(message: str, duration_s: float) -> RhythmResult:
    return RhythmResult("~", 0.0, 0.0, 0.0, 1.0, False, message, duration_s, 0)


def _longest_true_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return int((stops - starts).max())


class OnnxRhythmClassifier:
    """An exported rhythm network run by ONNX Runtime.

    Parameters
    ----------
    path : path, optional
        ``.onnx`` file written by :func:`heartline.training.rhythm.export_rhythm_onnx`; the
        shipped model when omitted.
    num_threads : int
        ONNX Runtime intra-op threads (1: one core).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else shipped_rhythm_model_path()
        if not self.path.is_file():
            raise FileNotFoundError(
                f"rhythm model {self.path} not found; the shipped one is written by "
                "`heartline bench rhythm-ship` (see docs/results/rhythm.md)"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.fs_hz = float(meta.get("heartline.fs_hz", "100"))
        self.window_s = float(meta.get("heartline.window_s", "30"))
        self.stride_s = float(meta.get("heartline.stride_s", "15"))
        self.min_duration_s = float(meta.get("heartline.min_duration_s", "9"))
        self.n_rr = int(meta.get("heartline.n_rr", "0"))
        self.window_len = round(self.window_s * self.fs_hz)
        self._inputs = {i.name for i in self.session.get_inputs()}

    # ------------------------------------------------------------------ batched windows
    def predict_windows(self, x: np.ndarray, mask: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """Class probabilities ``(m, 4)`` of ``m`` prepared windows (see :mod:`heartline.models.rhythm`)."""
        feeds = {
            "x": np.ascontiguousarray(x, dtype=np.float32),
            "mask": np.ascontiguousarray(mask, dtype=np.float32),
            "rr": np.ascontiguousarray(rr, dtype=np.float32),
        }
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float64)

    def prepare(
        self, signal: object, *, fs: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | str:
        """Model inputs of one recording, or a message saying why it is unusable."""
        try:
            fs = float(fs)
        except (TypeError, ValueError):
            return f"fs must be a number in Hz, got {fs!r}"
        if not math.isfinite(fs) or fs <= 0:
            return f"fs must be a finite sampling rate > 0 Hz, got {fs!r}"
        try:
            x = np.asarray(signal, dtype=np.float64)
        except (TypeError, ValueError):
            return "signal is not numeric"
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1:
            return f"signal must be one lead (1-D), got shape {x.shape}"
        dur = x.size / fs
        if fs < MIN_FS_HZ:
            return f"fs={fs:g} Hz is below the {MIN_FS_HZ:g} Hz minimum for rhythm analysis"
        if dur < self.min_duration_s:
            return f"signal is {dur:.1f} s long, needs at least {self.min_duration_s:g} s"
        notes = []
        bad = ~np.isfinite(x)
        if bad.any():
            if bad.all():
                return "signal holds only NaN/inf samples"
            run_s = _longest_true_run(bad) / fs
            if run_s > 1.0 or bad.mean() > 0.1:
                return (
                    f"signal has NaN/inf gaps ({100 * bad.mean():.1f} % of samples, longest "
                    f"{run_s:.1f} s): too much missing to classify"
                )
            good = np.flatnonzero(~bad)
            x = x.copy()
            x[bad] = np.interp(np.flatnonzero(bad), good, x[good])
            notes.append(f"filled {int(bad.sum())} NaN samples")
        lo, hi = np.percentile(x, [1, 99])
        span = float(hi - lo)
        if span < 1e-3 or float(np.std(x)) < 1e-4:
            return "flat line (no ECG activity)"
        if span > 100.0:  # µV or raw ADC counts, not mV
            x = x / 1000.0
            notes.append("amplitude suggests µV; divided by 1000")
        xmax, xmin = float(x.max()), float(x.min())
        tol = 1e-3 * (xmax - xmin)
        clipped = float(np.mean((x >= xmax - tol) | (x <= xmin + tol)))
        if clipped > 0.05:
            return f"signal is clipped ({100 * clipped:.1f} % of samples at its limits)"
        try:
            sig = rhythm_model_signal(x, fs=fs, fs_model_hz=self.fs_hz)
            # a model fused with the whole hand-feature vector (RR + morphology) says so by
            # its feature count; older models take the RR features only
            if self.n_rr == len(HAND_FEATURE_NAMES):
                rr = rhythm_hand_features(x, fs=fs)
            else:
                rr = rhythm_rr_features(x, fs=fs)
        except HeartlineError as exc:
            return str(exc)
        if rr[0] <= 0.0:  # n_beats_per_10s
            return "no heartbeat detected"
        w = self.window_len
        s = max(1, round(self.stride_s * self.fs_hz))
        n = sig.size
        starts = [0] if n <= w else list(range(0, n - w + 1, s))
        if n > w and starts[-1] != n - w:
            starts.append(n - w)
        xs = np.zeros((len(starts), w), dtype=np.float32)
        ms = np.zeros((len(starts), w), dtype=np.float32)
        for j, a in enumerate(starts):
            seg = sig[a : a + w]
            xs[j, : seg.size] = seg
            ms[j, : seg.size] = 1.0
        rrs = np.repeat(rr[None, :], len(starts), axis=0).astype(np.float32)
        return xs, ms, rrs, "; ".join(notes)

    def classify(self, signal: object, *, fs: float) -> RhythmResult:
        """Rhythm of one single-lead recording at any ``fs`` (resampled); never raises on bad data."""
        try:
            n = np.asarray(signal).shape[-1] if np.ndim(signal) else 0
            dur = float(n) / float(fs) if float(fs) > 0 else 0.0
        except (TypeError, ValueError):
            dur = 0.0
        prepared = self.prepare(signal, fs=fs)
        if isinstance(prepared, str):
            return _unusable(prepared, dur)
        xs, ms, rrs, note = prepared
        p = self.predict_windows(xs, ms, rrs).mean(axis=0)
        label = RHYTHM_CLASSES[int(np.argmax(p))]
        return RhythmResult(
            label,
            float(p[0]),
            float(p[1]),
            float(p[2]),
            float(p[3]),
            True,
            note,
            dur,
            int(xs.shape[0]),
        )


@functools.lru_cache(maxsize=4)
def _classifier(path: str | None) -> OnnxRhythmClassifier:
    return OnnxRhythmClassifier(path)


def classify_rhythm(
    signal: object, *, fs: float, model_path: str | os.PathLike[str] | None = None
) -> RhythmResult:
    """Rhythm (N / A / O / ~) of one single-lead ECG recording in mV at sampling rate ``fs``.

    Parameters
    ----------
    signal : array_like
        One lead, 1-D, in mV (µV is detected and rescaled), at least 9 s.
    fs : float
        Sampling rate in Hz (>= 100; resampled to the model's rate).
    model_path : path, optional
        An exported rhythm model; the shipped one by default.

    Returns
    -------
    RhythmResult
        ``usable=False`` with label ``"~"`` and a message for input that cannot be classified.
    """
    return _classifier(None if model_path is None else str(model_path)).classify(signal, fs=fs)
