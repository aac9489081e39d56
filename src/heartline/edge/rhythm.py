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
    RR_FEATURE_NAMES,
    linear_percentiles,
    rhythm_hand_features,
    rhythm_model_signal,
    rhythm_rr_features,
    rr_features_from_peaks,
)

__all__ = [
    "MIN_FS_HZ",
    "RHYTHM_CLASSES",
    "OnnxRhythmClassifier",
    "RhythmResult",
    "RhythmStream",
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


def _check_signal(x: np.ndarray, fs: float) -> tuple[np.ndarray, list[str]] | str:
    """Checks and repairs shared by :meth:`OnnxRhythmClassifier.prepare` and :class:`RhythmStream`.

    Returns the (possibly repaired) signal in mV and notes, or why it is unusable.
    """
    notes: list[str] = []
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
    lo, hi, xmin, xmax = linear_percentiles(x, (1, 99, 0, 100))  # one partial sort
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
    return x, notes


class OnnxRhythmClassifier:
    """An exported rhythm model run by ONNX Runtime.

    Two formats, both written by :func:`heartline.training.rhythm.export_rhythm_onnx`:

    * one network (output ``proba``, per window); a recording's probabilities are the mean
      over its windows;
    * the stacked hybrid (metadata ``heartline.head`` = ``gbm``): two networks whose mean
      probabilities (``net_proba``) feed, with the hand features, a boosted-tree head inside
      the same graph (``ai.onnx.ml`` TreeEnsemble). ``proba`` is the head on each window,
      ``record_proba`` the head on the mean of the networks' probabilities over all windows of
      one recording (how the model was trained and scored); :meth:`classify` uses it.

    Parameters
    ----------
    path : path, optional
        ``.onnx`` file written by :func:`heartline.training.rhythm.export_rhythm_onnx`; the
        shipped model when omitted.
    num_threads : int
        ONNX Runtime intra-op threads (1: one core).

    Raises
    ------
    ValueError
        A file that is not a rhythm model of either format (missing ``proba`` output or
        ``x`` input, a feature count the run time cannot compute, an unknown head).
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
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.head = meta.get("heartline.head", "")
        if (
            not {"x", "mask"} <= self._inputs
            or "proba" not in self._outputs
            or "heartline.model" not in meta
        ):
            raise ValueError(
                f"{self.path} is not a Heartline rhythm model (inputs {sorted(self._inputs)}, "
                f"outputs {self._outputs}; expected inputs x, mask, rr, output proba and the "
                "heartline.* metadata written by export_rhythm_onnx)"
            )
        if self.head and (self.head != "gbm" or "record_proba" not in self._outputs):
            raise ValueError(
                f"{self.path} has head {self.head!r} with outputs {self._outputs}; this run "
                "time knows the stacked 'gbm' head with a record_proba output only"
            )
        #: True for the stacked hybrid (networks + boosted-tree head in one graph).
        self.stacked = self.head == "gbm"

    # ------------------------------------------------------------------ batched windows
    def _feeds(self, x: np.ndarray, mask: np.ndarray, rr: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {
            "x": np.ascontiguousarray(x, dtype=np.float32),
            "mask": np.ascontiguousarray(mask, dtype=np.float32),
            "rr": np.ascontiguousarray(rr, dtype=np.float32),
        }
        return {k: v for k, v in feeds.items() if k in self._inputs}

    def predict_windows(self, x: np.ndarray, mask: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """Class probabilities ``(m, 4)`` of ``m`` prepared windows (see :mod:`heartline.models.rhythm`).

        Each window is scored on its own (for the stacked hybrid: the head on that window's
        network probabilities and features), so windows of different devices can share a batch.
        """
        out = self.session.run(["proba"], self._feeds(x, mask, rr))[0]
        return np.asarray(out, dtype=np.float64)

    def predict_record(self, x: np.ndarray, mask: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """Class probabilities ``(4,)`` of one recording from its ``m`` windows.

        One network: the mean of the windows' probabilities. Stacked hybrid: the head on the
        mean of the networks' probabilities over the windows (``record_proba``), as trained.
        """
        if not self.stacked:
            return self.predict_windows(x, mask, rr).mean(axis=0)
        out = self.session.run(["record_proba"], self._feeds(x, mask, rr))[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def prepare(
        self, signal: object, *, fs: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | str:
        """Model inputs of one recording, or a message saying why it is unusable.

        Raises ``ValueError`` for a model whose feature count the run time cannot compute
        (only :meth:`predict_windows` works with such a model).
        """
        if self.n_rr and self.n_rr not in (len(RR_FEATURE_NAMES), len(HAND_FEATURE_NAMES)):
            raise ValueError(
                f"{self.path} takes {self.n_rr} features per window; this run time computes "
                f"{len(RR_FEATURE_NAMES)} (RR) or {len(HAND_FEATURE_NAMES)} (hand features)"
            )
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
        checked = _check_signal(x, fs)
        if isinstance(checked, str):
            return checked
        x, notes = checked
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
        return (*self.windows(sig, rr), "; ".join(notes))

    def windows(self, sig: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's ``(x, mask, rr)`` inputs of one prepared signal (30 s windows 15 s apart)."""
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
        return xs, ms, rrs

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
        p = self.predict_record(xs, ms, rrs)
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


class RhythmStream:
    """One device's rhythm-model input, prepared incrementally (the stream processor's path).

    :meth:`OnnxRhythmClassifier.prepare` filters, resamples and runs the R-peak detector over
    the whole window each time; with a 30 s window every 5 s that is six times the work per
    sample. Here each new sample is handled once:

    * R peaks come from one :class:`~heartline.signal.rpeaks.StreamingRPeakDetector` per
      device fed only the samples it has not seen, once per window (the detector is
      chunk-invariant, so frame sizes do not matter), instead of a fresh detector over each
      window; or, with ``detect=False``, from the caller (:meth:`add_peaks`); or, with
      ``handover=True`` (the stream processor), from the own detector until the caller's
      peaks (its beat pipeline's detector: the same class, rate and settings on the same lead,
      started at the segment's start instead of after the warm-up) have been the same as the
      own detector's over the whole span kept (``window_s + margin_s``), and from the caller
      after that: the two detectors have settled to the same state, so the lead is no longer
      detected twice and the windows are those of the own detector;
    * the model signal (band-pass 0.5-40 Hz, resampled to the model rate, as
      :func:`~heartline.features.rhythm.rhythm_model_signal`) is recomputed at each window
      (:meth:`window`) only from ``margin_s`` before the samples not yet final: each output
      sample is filtered with at least ``margin_s`` of signal on both sides (or the stream's
      edge), where the zero-phase filter's transients have died out, and then kept;
    * the checks (NaN, flat, µV, clipping), the robust scaling and the RR features use the
      window's own samples, as :meth:`OnnxRhythmClassifier.prepare` does.

    The inputs differ from ``prepare`` on the same window only at the window's first seconds
    (the filter and the detector had the earlier signal) and by the peaks the streaming
    detector has not confirmed yet at the window's end (a few hundred ms).

    Parameters
    ----------
    classifier : OnnxRhythmClassifier
        Its rate, window and minimum length are used.
    fs : float
        Device sampling rate in Hz (>= :data:`MIN_FS_HZ`).
    window_s : float, optional
        Window length (default: the model's window).
    margin_s : float
        Filter margin on each side of the recomputed part (3 s: the 0.5 Hz high-pass, applied
        forward and backward, has decayed to about 1e-3 after it).
    detect : bool
        Run the stream's own R-peak detector (default). ``False``: the R peaks come from
        :meth:`add_peaks`, which must have been given every peak of the pushed samples (as a
        :class:`~heartline.signal.rpeaks.StreamingRPeakDetector` fed the same samples would
        return them) before :meth:`window` is called.
    handover : bool
        With ``detect=True``: take the caller's peaks too (:meth:`add_peaks`, all of them up to
        the last sample pushed before each :meth:`window` call) and stop the own detector at
        the first window where both have given the same peaks over the whole span kept
        (:attr:`handed_over`).
    """

    def __init__(
        self,
        classifier: OnnxRhythmClassifier,
        *,
        fs: float,
        window_s: float | None = None,
        margin_s: float = 3.0,
        detect: bool = True,
        handover: bool = False,
    ) -> None:
        from fractions import Fraction

        from heartline.signal.filters import ZeroPhaseFilter, design_bandpass
        from heartline.signal.rpeaks import StreamingRPeakDetector

        self.fs = float(fs)
        if not (math.isfinite(self.fs) and self.fs >= MIN_FS_HZ):
            raise ValueError(f"fs must be >= {MIN_FS_HZ:g} Hz, got {fs!r}")
        # the band-pass of rhythm_model_signal, designed once
        self._sos = design_bandpass(
            fs=self.fs, low_hz=0.5, high_hz=min(40.0, 0.45 * self.fs), order=2
        )
        self._filtfilt = ZeroPhaseFilter(self._sos)  # sosfiltfilt with its initial state kept
        self.clf = classifier
        ratio = Fraction(classifier.fs_hz / self.fs).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.window_n = round((window_s or classifier.window_s) * self.fs)
        self.margin_n = math.ceil(margin_s * self.fs / self.down) * self.down
        self._keep_n = self.window_n + 2 * self.margin_n + self.down
        self._raw = np.zeros(0)  # last samples as received (NaN kept), absolute start _raw0
        self._fill = np.zeros(0)  # the same with NaN/inf held at the last finite value
        self._raw0 = 0
        # _raw and _fill are views of [_buf0, _buf0 + size) of these buffers (appends write
        # past the end; the kept samples move to the front only when the buffer is full)
        self._rawbuf = np.zeros(2 * self._keep_n)
        self._fillbuf = np.zeros(2 * self._keep_n)
        self._buf0 = 0
        self._n = 0  # samples pushed
        self._last = 0.0
        self._det = StreamingRPeakDetector(fs=self.fs) if detect else None
        # handover: the caller's peaks, kept beside the own detector's until they agree
        self._ext: np.ndarray | None = np.zeros(0, dtype=np.int64) if detect and handover else None
        #: Whether the own detector has handed over to the caller's peaks (``handover=True``).
        self.handed_over = False
        self._peaks = np.zeros(0, dtype=np.int64)  # absolute sample indices
        self._det_n = 0  # samples the detector has seen (it runs at each window, chunk-invariant)
        self._y = np.zeros(0)  # model-rate signal, absolute output index _y0
        self._y0 = 0
        self._final_in = 0  # input samples whose model-rate output is final

    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._n

    def push(self, x: np.ndarray) -> None:
        """Append new samples (mV, one lead); runs the R-peak detector on them only."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return
        f = x
        bad = ~np.isfinite(x)
        if bad.any():
            f = x.copy()
            for i in np.flatnonzero(bad):  # hold the last finite value (rare: lost samples)
                f[i] = f[i - 1] if i > 0 else self._last
        self._last = float(f[-1])
        self._append(x, f)
        self._n += x.size
        extra = self._raw.size - self._keep_n
        if extra > 0 and self._det is not None and self._det_n < self._raw0 + extra:
            self._detect()  # never drop samples the detector has not seen
        if extra > 0:
            extra -= (self._raw0 + extra) % self.down  # keep _raw0 a multiple of down
            if extra > 0:
                self._buf0 += extra
                self._raw = self._raw[extra:]
                self._fill = self._fill[extra:]
                self._raw0 += extra

    def _append(self, x: np.ndarray, f: np.ndarray) -> None:
        """``_raw``, ``_fill`` += ``x``, ``f`` without copying the kept samples at every call."""
        size, m = self._raw.size, x.size
        if self._buf0 + size + m > self._rawbuf.size:
            cap = max(self._rawbuf.size, 2 * (size + m))
            raw, fill = np.empty(cap), np.empty(cap)
            raw[:size] = self._raw
            fill[:size] = self._fill
            self._rawbuf, self._fillbuf, self._buf0 = raw, fill, 0
        a, b = self._buf0 + size, self._buf0 + size + m
        self._rawbuf[a:b] = x
        self._fillbuf[a:b] = f
        self._raw = self._rawbuf[self._buf0 : b]
        self._fill = self._fillbuf[self._buf0 : b]

    def add_peaks(self, peak_idx: np.ndarray) -> None:
        """R peaks found by the caller's detector (``detect=False``, or ``handover=True``):
        sample indices of this stream (0 = the first sample pushed), in increasing order;
        negative ones are ignored."""
        if self._det is not None and self._ext is None:
            raise RuntimeError("this stream runs its own R-peak detector (detect=True)")
        peaks = np.asarray(peak_idx, dtype=np.int64).reshape(-1)
        if peaks.size and peaks[0] < 0:
            peaks = peaks[peaks >= 0]
        if self._ext is not None:  # handover pending: kept beside the own detector's
            if peaks.size:
                self._ext = np.concatenate([self._ext, peaks]) if self._ext.size else peaks
            first = self._n - self.window_n - self.margin_n
            if self._ext.size and self._ext[0] < first:
                self._ext = self._ext[self._ext >= first]
            return
        if peaks.size:
            self._peaks = np.concatenate([self._peaks, peaks]) if self._peaks.size else peaks
        self._trim_peaks()

    def _try_handover(self) -> None:
        """Stop the own detector once the caller's peaks equal its own over the span kept."""
        assert self._ext is not None
        first = self._n - self.window_n - self.margin_n
        if first < 0:
            return  # not a whole span seen yet
        ext = self._ext[self._ext >= first] if self._ext.size else self._ext
        if np.array_equal(ext, self._peaks):  # (_peaks is trimmed to >= first)
            self._det = None
            self._ext = None
            self.handed_over = True

    def _detect(self) -> None:
        """Run the R-peak detector on the samples it has not seen (one call per window)."""
        if self._det is None or self._det_n >= self._n:
            return
        peaks = np.asarray(self._det.process(self._fill[self._det_n - self._raw0 :]), np.int64)
        self._det_n = self._n
        if peaks.size:
            self._peaks = np.concatenate([self._peaks, peaks])
        self._trim_peaks()

    def _trim_peaks(self) -> None:
        first = self._n - self.window_n - self.margin_n
        if self._peaks.size and self._peaks[0] < first:
            self._peaks = self._peaks[self._peaks >= first]

    def _model_signal(self, a: int) -> np.ndarray:
        """The band-passed, resampled signal of input samples ``[a, n)`` (not yet scaled)."""
        from heartline.signal.preprocess import resample

        n = self._n
        c0 = max(self._final_in - self.margin_n, a - self.margin_n, self._raw0, 0)
        c0 = math.ceil(c0 / self.down) * self.down
        keep_from = (c0 + self.margin_n) * self.up // self.down
        fresh = (
            c0 <= self._raw0
            or self._y.size == 0
            or c0 * self.up // self.down < self._y0
            or self._y0 + self._y.size < keep_from
        )
        if fresh:
            c0 = math.ceil(max(self._raw0, a - self.margin_n, 0) / self.down) * self.down
        chunk = self._fill[c0 - self._raw0 :]
        y = self._filtfilt(chunk)  # = scipy.signal.sosfiltfilt(self._sos, chunk), bit for bit
        if self.up != self.down:
            y = resample(y, fs=self.fs, fs_out=self.clf.fs_hz)
        out0 = c0 * self.up // self.down
        if fresh or c0 == 0:
            keep_from = out0
            head = np.zeros(0)
        else:
            head = self._y[: keep_from - self._y0]
        self._y = np.concatenate([head, y[keep_from - out0 :]])
        if fresh or c0 == 0:
            self._y0 = out0
        self._final_in = max(n - self.margin_n, 0)
        # keep what the next window can still use
        first = max(0, (n - self.window_n - 2 * self.margin_n) * self.up // self.down)
        if first > self._y0:
            self._y = self._y[first - self._y0 :]
            self._y0 = first
        m = math.ceil((n - a) * self.up / self.down)
        return self._y[-m:]

    def window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | str:
        """Model inputs of the last ``window_s`` (or all pushed so far if less), or why not."""
        n = self._n
        n_win = min(self.window_n, n)
        dur = n_win / self.fs
        if dur < self.clf.min_duration_s:
            return f"signal is {dur:.1f} s long, needs at least {self.clf.min_duration_s:g} s"
        a = n - n_win
        self._detect()
        if self._ext is not None:
            self._try_handover()
        checked = _check_signal(self._raw[a - self._raw0 :], self.fs)
        if isinstance(checked, str):
            return checked
        x, notes = checked
        try:
            y = self._model_signal(a)
        except HeartlineError as exc:
            return str(exc)
        lo, hi, med = linear_percentiles(y, (1, 99), median=True)  # one partial sort
        scale = float(hi - lo)
        if not math.isfinite(scale) or scale <= 0:
            return "ecg is flat after band-pass filtering (no usable signal)"
        sig = np.clip((y - med) / scale, -10.0, 10.0).astype(np.float32)
        peaks = self._peaks[(self._peaks >= a) & (self._peaks < n)] - a
        rr = rr_features_from_peaks(peaks, x, fs=self.fs, duration_s=dur)
        if rr[0] <= 0.0:
            return "no heartbeat detected"
        if self.clf.n_rr == len(HAND_FEATURE_NAMES):
            # a model fused with the whole hand-feature vector: add the morphology part, from
            # the window's own band-passed lead as rhythm_hand_features computes it
            from heartline.features.rhythm import morphology_features_from_peaks
            from heartline.signal.filters import bandpass

            if x.size > 3 * self.fs:
                xf = bandpass(x, fs=self.fs, low_hz=0.5, high_hz=min(40.0, 0.45 * self.fs), order=2)
            else:
                xf = x - np.median(x)
            morph = morphology_features_from_peaks(peaks, xf, fs=self.fs)
            rr = np.concatenate([rr, morph]).astype(np.float32)
        return (*self.clf.windows(sig, rr), "; ".join(notes))
