"""Beat-level artefact detection: is a detected "beat" a beat, or a motion-artefact spike?

On handheld single-lead recordings, motion bursts (spikes of several times the R amplitude,
0.3-4 s long) are taken for beats by the R-peak detector, and the beat model labels many of them
``V`` (docs/results/alarms.md). This module scores each detected beat against the patient's own
recent beats, in the spirit of the beat-based signal-quality indices of Li, Mark & Clifford 2008
[1]_ and the template-matching SQI of Orphanidou et al. 2015 [2]_, but per beat:

* ``log_amp``: log of the beat's QRS peak-to-peak amplitude over the running median of the last
  ``history`` beats' amplitudes;
* ``log_slope``: the same for the largest sample-to-sample slope;
* ``log_range``: the same for the peak-to-peak excursion of the whole beat window (baseline
  excursion around the beat);
* ``outside``: the largest excursion outside the QRS area over the beat's own QRS amplitude;
* ``sharpness``: log of the largest slope over the QRS amplitude (a spike is steeper than a
  QRS complex of its height);
* ``corr``: correlation of the QRS area with the running median template of the last
  ``history`` beats;
* ``corr_prev``: correlation of the QRS area with the previous beat's (the beats of a real
  couplet or ventricular run come from one focus and look alike; successive motion spikes
  do not);
* ``log_rr``: log of the interval from the previous beat over the running median interval
  (with ``fs`` and the R-peak positions given; 0 otherwise).

The features are scored by a logistic model (:class:`BeatArtefactModel`) trained on MIT-BIH data
(positives: detector firings on noise-stress-test noise bursts added to DS1 records, negatives:
annotated DS1 beats, real ventricular beats included; ``benchmarks/alarms_artefact/train.py``).
Only numpy at run time.

:class:`BeatArtefactTracker` is the streaming form (one per beat stream): its history holds
every beat of the stream (no feedback from its own verdicts, so training and run time compute the
same features). Windows are the beat pipeline's cleaned, not yet amplitude-normalised windows
(``pre_s`` before to ``post_s`` after the R peak, ``window_len`` points).

References
----------
.. [1] Q. Li, R. G. Mark, G. D. Clifford, "Robust heart rate estimation from multiple asynchronous
   noisy sources using signal quality indices and a Kalman filter", Physiol. Meas. 29(1):15-32,
   2008.
.. [2] C. Orphanidou et al., "Signal-quality indices for the electrocardiogram and
   photoplethysmogram: derivation and applications to wireless monitoring", IEEE J. Biomed.
   Health Inform. 19(3):832-838, 2015.
.. [3] G. B. Moody, W. K. Muldrow, R. G. Mark, "A noise stress test for arrhythmia detectors",
   Computers in Cardiology 11:381-384, 1984 (the ``em``/``ma`` noise of the training data).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ARTEFACT_FEATURE_NAMES",
    "ARTEFACT_MODEL_PATH",
    "BeatArtefactModel",
    "BeatArtefactTracker",
    "artefact_features",
]

#: Feature columns, in order.
ARTEFACT_FEATURE_NAMES: tuple[str, ...] = (
    "log_amp",
    "log_slope",
    "log_range",
    "outside",
    "sharpness",
    "corr",
    "corr_prev",
    "log_rr",
)
#: The shipped model (``benchmarks/alarms_artefact/train.py``).
ARTEFACT_MODEL_PATH = (
    Path(__file__).resolve().parents[1] / "assets" / "models" / "beat_artefact.json"
)

_EPS = 1e-6
#: QRS area of a beat window: this many seconds either side of the R peak.
_QRS_HALF_S = 0.08
#: Features of a beat with fewer earlier beats than this are neutral (no history to compare).
_MIN_HISTORY = 4


def _qrs_slice(window_len: int, pre_s: float, post_s: float) -> slice:
    step_s = (pre_s + post_s) / window_len
    r = pre_s / step_s
    h = _QRS_HALF_S / step_s
    return slice(max(0, math.floor(r - h)), min(window_len, math.ceil(r + h) + 1))


@dataclass(frozen=True)
class _Own:
    """One beat's own measurements."""

    amp: float
    slope: float
    rng: float
    outside: float
    qrs: np.ndarray  # mean-removed QRS area
    peak_idx: float = math.nan


def _median0(a: np.ndarray) -> np.ndarray | np.floating:
    """``np.median(a, axis=0)`` for finite ``a`` (1-D or 2-D), bit for bit: one partition and
    NumPy's own arithmetic (the middle value, or the mean of the two middle values), without
    ``np.median``'s NaN checks and dispatch, which cost more than the median of 16 values."""
    n = a.shape[0]
    h = n // 2
    if n % 2:
        return np.partition(a, h, axis=0)[h]
    p = np.partition(a, (h - 1, h), axis=0)
    return (p[h - 1] + p[h]) / 2.0


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > _EPS * _EPS else 0.0


def _own(w: np.ndarray, qrs: slice, peak_idx: float) -> _Own:
    x = w - _median0(w)
    q = x[qrs]
    amp = float(q.max() - q.min())
    d = np.abs(np.diff(x))
    slope = float(d.max()) if d.size else 0.0
    ax = np.abs(x)
    outside = max(
        float(ax[: qrs.start].max()) if qrs.start > 0 else 0.0,
        float(ax[qrs.stop :].max()) if qrs.stop < x.size else 0.0,
    )
    return _Own(amp, slope, float(x.max() - x.min()), outside, q - q.mean(), peak_idx)


class BeatArtefactTracker:
    """Per-beat artefact features against the stream's own recent beats (streaming).

    Parameters
    ----------
    window_len : int
        Points of a beat window.
    pre_s, post_s : float
        Seconds before and after the R peak the window spans.
    history : int
        Earlier beats the running medians and the template are taken over.
    fs : float, optional
        Sampling rate of the R-peak positions given to :meth:`update` (for ``log_rr``).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(-0.25, 0.45, 128, endpoint=False)
    >>> beat = np.exp(-((t / 0.015) ** 2))
    >>> tr = BeatArtefactTracker(window_len=128)
    >>> f = tr.update_many(np.stack([beat] * 8 + [6 * np.sign(t) * (np.abs(t) < 0.005)]))
    >>> bool(f[-1, 0] > 1.0), bool(abs(f[3, 0]) < 1e-9)
    (True, True)
    """

    def __init__(
        self,
        *,
        window_len: int,
        pre_s: float = 0.25,
        post_s: float = 0.45,
        history: int = 16,
        fs: float | None = None,
    ) -> None:
        if int(window_len) < 8:
            raise ValueError(f"window_len must be >= 8, got {window_len}")
        if int(history) < _MIN_HISTORY:
            raise ValueError(f"history must be >= {_MIN_HISTORY}, got {history}")
        self.window_len = int(window_len)
        self.history = int(history)
        self.fs = None if fs is None else float(fs)
        self._qrs = _qrs_slice(self.window_len, float(pre_s), float(post_s))
        m = self._qrs.stop - self._qrs.start
        # the last `history` beats, oldest first: amplitude, slope, excursion, R-peak index
        self._scalars = np.zeros((self.history, 4))
        self._qrs_buf = np.zeros((self.history, m))
        self._n = 0

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._n = 0

    def _push(self, own: _Own) -> None:
        row = (own.amp, own.slope, own.rng, own.peak_idx)
        if self._n < self.history:
            self._scalars[self._n] = row
            self._qrs_buf[self._n] = own.qrs
            self._n += 1
        else:
            self._scalars[:-1] = self._scalars[1:]
            self._qrs_buf[:-1] = self._qrs_buf[1:]
            self._scalars[-1] = row
            self._qrs_buf[-1] = own.qrs

    def update(self, window: np.ndarray, peak_idx: float | None = None) -> np.ndarray:
        """Features of one beat window ``(window_len,)`` (or ``(n_leads, window_len)``: the
        first lead), then add it to the history. Non-finite or flat windows (QRS peak-to-peak
        at most 1e-6) give NaN features (no opinion) and are not added."""
        w = np.asarray(window, dtype=np.float64)
        if w.ndim == 2:
            w = w[0]
        if w.shape != (self.window_len,):
            raise ValueError(f"window must have {self.window_len} points, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            return np.full(len(ARTEFACT_FEATURE_NAMES), np.nan)
        own = _own(w, self._qrs, math.nan if peak_idx is None else float(peak_idx))
        if own.amp <= _EPS:  # no deflection (flat line): no opinion, not part of the history
            return np.full(len(ARTEFACT_FEATURE_NAMES), np.nan)
        feats = self._features(own)
        self._push(own)
        return feats

    def update_many(self, windows: np.ndarray, peaks_idx: np.ndarray | None = None) -> np.ndarray:
        """:meth:`update` of each window (and R-peak position) in order:
        ``(n_beats, n_features)``."""
        ws = np.asarray(windows)
        out = np.empty((ws.shape[0], len(ARTEFACT_FEATURE_NAMES)))
        for i in range(ws.shape[0]):
            out[i] = self.update(ws[i], None if peaks_idx is None else peaks_idx[i])
        return out

    def _features(self, own: _Own) -> np.ndarray:
        n = self._n
        amp = max(own.amp, _EPS)
        sharp = math.log(max(own.slope, _EPS) / amp)
        outside = own.outside / amp
        if n < _MIN_HISTORY:
            return np.array((0.0, 0.0, 0.0, outside, sharp, 1.0, 1.0, 0.0))
        past = self._scalars[:n]
        m_amp, m_slope, m_rng = (max(float(v), _EPS) for v in _median0(past[:, :3]))
        tmpl = _median0(self._qrs_buf[:n])
        q = own.qrs
        log_rr = 0.0
        if self.fs is not None:
            rr = np.diff(np.append(past[:, 3], own.peak_idx))
            if np.all(np.isfinite(rr)) and np.all(rr > 0):
                log_rr = math.log(rr[-1] / float(_median0(rr[:-1]))) if rr.size > 1 else 0.0
        return np.array(
            [
                math.log(amp / m_amp),
                math.log(max(own.slope, _EPS) / m_slope),
                math.log(max(own.rng, _EPS) / m_rng),
                outside,
                sharp,
                _corr(q, tmpl),
                _corr(q, self._qrs_buf[n - 1]),
                log_rr,
            ]
        )


def artefact_features(
    windows: np.ndarray,
    *,
    pre_s: float = 0.25,
    post_s: float = 0.45,
    history: int = 16,
    fs: float | None = None,
    peaks_idx: np.ndarray | None = None,
) -> np.ndarray:
    """Artefact features of a record's beat windows ``(n_beats, window_len)`` (or
    ``(n_beats, n_leads, window_len)``: first lead), in beat order; the offline form of
    :class:`BeatArtefactTracker` (same numbers)."""
    ws = np.asarray(windows)
    if ws.ndim not in (2, 3):
        raise ValueError(f"windows must be 2-D or 3-D, got shape {ws.shape}")
    tr = BeatArtefactTracker(
        window_len=ws.shape[-1], pre_s=pre_s, post_s=post_s, history=history, fs=fs
    )
    return tr.update_many(ws, peaks_idx)


@dataclass(frozen=True)
class BeatArtefactModel:
    """Logistic artefact model over :data:`ARTEFACT_FEATURE_NAMES` (standardised features).

    ``p = 1 / (1 + exp(-(b + sum(w * (x - mean) / scale))))``; a beat is an artefact when
    ``p >= threshold``. Beats with non-finite features are never artefacts (no opinion).
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    history: int = 16
    info: dict | None = None

    def __post_init__(self) -> None:
        k = len(ARTEFACT_FEATURE_NAMES)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == k):
            raise ValueError(f"mean, scale and coef must each have {k} values")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> BeatArtefactModel:
        """The model saved at ``path`` (default: the shipped one)."""
        d = json.loads(Path(path or ARTEFACT_MODEL_PATH).read_text())
        if tuple(d["features"]) != ARTEFACT_FEATURE_NAMES:
            raise ValueError(f"model features {d['features']} != {ARTEFACT_FEATURE_NAMES}")
        return cls(
            mean=tuple(d["mean"]),
            scale=tuple(d["scale"]),
            coef=tuple(d["coef"]),
            intercept=float(d["intercept"]),
            threshold=float(d["threshold"]),
            history=int(d.get("history", 16)),
            info=d.get("info"),
        )

    def to_dict(self) -> dict:
        """What :meth:`load` reads."""
        return {
            "features": list(ARTEFACT_FEATURE_NAMES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "history": self.history,
            "info": self.info or {},
        }

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Artefact probability of each row of ``features`` (NaN rows: 0)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = np.clip(z @ np.asarray(self.coef) + self.intercept, -50.0, 50.0)
        p = 1.0 / (1.0 + np.exp(-logit))
        return np.where(np.all(np.isfinite(x), axis=1), p, 0.0)

    def is_artefact(self, features: np.ndarray) -> np.ndarray:
        """``predict_proba(features) >= threshold``."""
        return self.predict_proba(features) >= self.threshold

    def tracker(
        self, *, window_len: int, pre_s: float = 0.25, post_s: float = 0.45, fs: float | None = None
    ) -> BeatArtefactTracker:
        """A fresh :class:`BeatArtefactTracker` with this model's history."""
        return BeatArtefactTracker(
            window_len=window_len, pre_s=pre_s, post_s=post_s, history=self.history, fs=fs
        )
