"""Streaming beat pipeline: raw ECG chunks in, classified beats out (live and offline alike).

:class:`BeatPipeline` turns the samples of one device (or one record) into classified beats as
they arrive, reproducing the offline training preprocessing of
:func:`heartline.data.beat_dataset.build_beat_set` (``rpeaks="detected"``) online:

1. **R peaks**: :class:`~heartline.signal.rpeaks.StreamingRPeakDetector` on the raw primary lead
   (MLII when present, as offline), fed every chunk as it comes (chunk-size invariant).
2. **Cleaning**: training cleans the whole record with the zero-phase 0.5-40 Hz band-pass of
   :func:`~heartline.signal.segmentation.preprocess_ecg`. Online, the signal is cut into fixed blocks of
   ``block_s`` seconds on an absolute sample grid; each block is cleaned by the same function
   applied to ``[block - lookback_s, block + lookahead_s)`` and only the block's own samples are
   kept (overlap-save). Because the grid is absolute, the result does not depend on how the input
   is chunked; it approximates the whole-record filter (on MIT-BIH 208, with the defaults,
   RMS difference 0.014 mV, 1 % of the QRS amplitude) at the cost of ``lookahead_s`` of delay.
3. **Windows**: :func:`~heartline.signal.segmentation.segment_beats` around each R peak once the cleaned
   signal covers ``post_s`` after it, normalised by
   :class:`~heartline.signal.segmentation.OnlineBeatNormaliser` (equal to
   :func:`~heartline.signal.segmentation.normalise_beats`).
4. **RR features**: :class:`~heartline.signal.segmentation.OnlineRRFeatures` (equal to
   :func:`~heartline.signal.segmentation.rr_features`; one beat of latency: a beat is emitted when the
   next R peak is known). Only for a model that takes them (``n_rr`` beyond the
   :data:`~heartline.signal.segmentation.RR_FEATURE_NAMES` columns, a hybrid with
   ``template_features``): the template columns of :class:`~heartline.signal.templates.TemplateTracker`
   on each normalised window, in beat order, one tracker per stream (equal to
   :func:`~heartline.signal.templates.template_features` over the stream's windows, as
   ``build_beat_set(..., template_features=True)`` computes them per record); other models
   cost nothing extra.
5. **Context**: the previous ``model.context_k`` beats of the stream (the first beat repeated
   before the stream start, as :meth:`heartline.data.beat_set.BeatSet.context_index` does).
6. **Signal quality**: :func:`~heartline.signal.quality.assess_window` (computed by its cached form
   :class:`~heartline.signal.quality.WindowAssessor`) of the raw primary lead
   over the last ``quality_window_s`` seconds at the end of each block; beats of an unusable block
   get ``quality_ok=False``.
7. **Classification**: one batched ONNX Runtime call
   (:class:`~heartline.edge.runtime.OnnxBeatClassifier`) per :meth:`BeatPipeline.process` call,
   or one for many devices at once (:meth:`BeatPipeline.prepare`, :func:`classify_batches`,
   :meth:`BeatPipeline.complete`), which is what the stream processor does. With a model that
   has the split form (encoder + sequence graph, :func:`heartline.edge.onnx_export.export_onnx_split`)
   each beat is encoded once, when it is the current beat, and its features are kept in the
   stream's :class:`FeatureCache` for the next ``context_k`` beats; the sequence graph then runs
   on the gathered features. The numbers are those of the full graph (the same encoder on the
   same windows).

:func:`classify_record` runs the same pipeline over a whole record in chunks, so offline
classification and the live service share one code path.

A beat is therefore emitted ``max(post_s, next RR + detector confirmation) + lookahead_s`` (plus
up to one block) after its R peak in signal time: about 1.5-2.5 s with the defaults.

Why this file is long (about 1,150 lines): one streaming class whose block filtering, beat
windows, RR features and batching must stay equal sample for sample to the offline functions
of :mod:`heartline.signal.segmentation` (tests check it); splitting it would scatter that
invariant.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.errors import SignalError
from heartline.signal._validate import check_fs
from heartline.signal.artefact import BeatArtefactModel
from heartline.signal.quality import QualityConfig, WindowAssessor, WindowQuality
from heartline.signal.rpeaks import StreamingRPeakDetector
from heartline.signal.segmentation import (
    RR_FEATURE_NAMES,
    OnlineBeatNormaliser,
    OnlineRRFeatures,
    bandpass_sos,
    check_preprocess_method,
    model_rr_columns,
    preprocess_ecg,
    segment_beats,
    window_offsets,
)
from heartline.signal.templates import TemplateTracker, template_feature_names

if TYPE_CHECKING:
    from heartline.io import EcgRecord

__all__ = [
    "PRIMARY_LEAD",
    "BeatBatch",
    "BeatContext",
    "BeatModel",
    "BeatPipeline",
    "ClassifiedBeat",
    "ClassifiedBeats",
    "FeatureCache",
    "classify_batches",
    "classify_record",
    "prepare_many",
    "select_leads",
]

log = logging.getLogger(__name__)

#: Lead moved first when present (as :mod:`heartline.data.beat_dataset` does for training).
PRIMARY_LEAD = "MLII"
#: Ectopic AAMI classes counted in the ectopic burden.
ECTOPIC_CLASSES = ("S", "V", "F")


class BeatModel(Protocol):
    """What the pipeline needs from a classifier (:class:`~heartline.edge.runtime.OnnxBeatClassifier`)."""

    context_k: int
    n_leads: int
    window_len: int
    n_rr: int
    classes: tuple[str, ...]

    def predict_proba_arrays(
        self, windows: np.ndarray, rr: np.ndarray, **kw: Any
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ClassifiedBeat:
    """One detected and classified beat.

    Attributes
    ----------
    sample_idx : int
        R-peak index from the start of the stream, at the stream's own ``fs``.
    label : str
        Most probable AAMI class.
    probabilities : dict of str to float
        Probability of every class.
    confidence : float
        Probability of ``label``.
    quality_ok : bool
        False when the beat lies in a block whose signal quality is unusable.
    artefact : bool
        True when the pipeline's beat artefact model
        (:class:`heartline.signal.artefact.BeatArtefactModel`) calls the beat a motion
        artefact; always False without one.
    """

    sample_idx: int
    label: str
    probabilities: dict[str, float] = field(hash=False)
    confidence: float
    quality_ok: bool = True
    artefact: bool = False


class FeatureCache:
    """Encoder features of a stream's recent beats, by beat number (a ring buffer).

    One per stream (:meth:`BeatPipeline.reset` makes a new one). :func:`classify_batches` writes
    the features of every current beat it encodes and reads those of the context beats; a
    context beat whose features are not (or no longer) here is encoded again from the batch's
    own windows, so the cache only saves work and never changes a result. Features belong to
    one model: handing the cache another model empties it.

    Parameters
    ----------
    capacity : int
        Beats kept at first (grown when one call stores more).
    """

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = max(1, int(capacity))
        self._model: object | None = None
        self._keys = np.full(self._capacity, -1, np.int64)
        self._feats: np.ndarray | None = None

    def _bind(self, model: object, dim: int) -> None:
        if self._model is not model or self._feats is None or self._feats.shape[1] != dim:
            self._model = model
            self._keys[:] = -1
            self._feats = np.zeros((self._capacity, dim), np.float32)

    def reserve(self, n: int) -> None:
        """Make room for ``n`` consecutive beats (grow, keeping what is held)."""
        if n <= self._capacity:
            return
        cap = 1 << (2 * int(n) - 1).bit_length()
        keys, feats = self._keys, self._feats
        self._capacity = cap
        self._keys = np.full(cap, -1, np.int64)
        if feats is not None:
            self._feats = np.zeros((cap, feats.shape[1]), np.float32)
            held = keys >= 0
            self.put(model=self._model, keys=keys[held], features=feats[held])

    def put(self, *, model: object, keys: np.ndarray, features: np.ndarray) -> None:
        """Store ``features (n, dim)`` of the beats ``keys (n,)`` computed by ``model``."""
        self._bind(model, features.shape[1])
        assert self._feats is not None
        slots = keys % self._capacity
        self._keys[slots] = keys
        self._feats[slots] = features

    def get(self, *, model: object, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(features, found)`` for ``keys`` (any shape): features of the beats held for
        ``model`` (rows of the others are undefined) and a boolean mask of those held."""
        if self._model is not model or self._feats is None:
            return np.zeros((*keys.shape, 0), np.float32), np.zeros(keys.shape, bool)
        slots = keys % self._capacity
        return self._feats[slots], self._keys[slots] == keys


@dataclass(frozen=True)
class BeatContext:
    """Where a batch's beats and their context beats live in their stream's :class:`FeatureCache`.

    ``keys`` ``(n, context_k + 1)``: beat number (from the stream start) of every row of the
    batch's ``windows``, oldest first; the current beat last.
    """

    cache: FeatureCache
    keys: np.ndarray


@dataclass(frozen=True)
class BeatBatch:
    """Model inputs of the beats one pipeline call made ready (before classification).

    ``windows`` is ``(n, context_k + 1, n_leads, window_len)``, ``rr`` ``(n, context_k + 1,
    n_rr)`` (float32), oldest context beat first; ``sample_idx`` and ``quality_ok`` per beat.
    ``context`` (set by :class:`BeatPipeline`) names the beats of each row, so that a model with
    the split form encodes each beat of a stream once (see :func:`classify_batches`).
    ``artefact_features`` ``(n, n_features)`` and ``artefact`` ``(n,)`` are set when the
    pipeline has a beat artefact model (:mod:`heartline.signal.artefact`).
    """

    windows: np.ndarray
    rr: np.ndarray
    sample_idx: np.ndarray
    quality_ok: np.ndarray
    context: BeatContext | None = field(default=None, compare=False, repr=False)
    artefact_features: np.ndarray | None = field(default=None, compare=False, repr=False)
    artefact: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])


@dataclass(frozen=True)
class ClassifiedBeats:
    """Classified beats of one record (arrays, one row per beat, time order).

    Attributes
    ----------
    sample_idx : numpy.ndarray
        int64 R-peak indices at ``fs``.
    labels : numpy.ndarray
        AAMI class letters.
    probabilities : numpy.ndarray
        float32 ``(n_beats, len(classes))``.
    confidence, quality_ok : numpy.ndarray
    classes : tuple of str
    fs : float
        Sampling rate of the record, Hz.
    """

    sample_idx: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    quality_ok: np.ndarray
    classes: tuple[str, ...]
    fs: float

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])

    @property
    def time_s(self) -> np.ndarray:
        """R-peak times in seconds from the record start."""
        return self.sample_idx / self.fs

    def counts(self) -> dict[str, int]:
        """Beats per class (every class of ``classes``, zero included)."""
        return {c: int(np.count_nonzero(self.labels == c)) for c in self.classes}

    @property
    def ectopic_burden_pct(self) -> float:
        """Share of S, V and F beats among all beats, percent (NaN without beats)."""
        if len(self) == 0:
            return float("nan")
        return 100.0 * float(np.isin(self.labels, ECTOPIC_CLASSES).sum()) / len(self)

    def runs(self, label: str = "V", *, min_length: int = 3) -> list[tuple[int, int]]:
        """Runs of at least ``min_length`` consecutive ``label`` beats as ``(first, stop)`` beat indices."""
        out: list[tuple[int, int]] = []
        start = None
        for i, lab in enumerate([*self.labels.tolist(), None]):
            if lab == label and start is None:
                start = i
            elif lab != label and start is not None:
                if i - start >= min_length:
                    out.append((start, i))
                start = None
        return out

    @classmethod
    def from_beats(
        cls, beats: Sequence[ClassifiedBeat], *, classes: tuple[str, ...], fs: float
    ) -> ClassifiedBeats:
        """Stack a list of :class:`ClassifiedBeat`."""
        n = len(beats)
        return cls(
            sample_idx=np.array([b.sample_idx for b in beats], dtype=np.int64),
            labels=np.array([b.label for b in beats], dtype="<U1") if n else np.zeros(0, "<U1"),
            probabilities=np.array(
                [[b.probabilities[c] for c in classes] for b in beats], dtype=np.float32
            ).reshape(n, len(classes)),
            confidence=np.array([b.confidence for b in beats], dtype=np.float64),
            quality_ok=np.array([b.quality_ok for b in beats], dtype=bool),
            classes=tuple(classes),
            fs=float(fs),
        )


def select_leads(lead_names: Sequence[str], n_leads: int) -> list[int]:
    """Column order used for the model: MLII first when present, then the file order.

    Raises
    ------
    ValueError
        Fewer leads than the model needs.
    """
    names = list(lead_names)
    if len(names) < n_leads:
        raise ValueError(f"lead_names: the model needs {n_leads} lead(s), the stream has {names}")
    order = list(range(len(names)))
    if PRIMARY_LEAD in names:
        i = names.index(PRIMARY_LEAD)
        order = [i] + [j for j in order if j != i]
    return order[:n_leads]


@functools.lru_cache(maxsize=32)
def _make_cleaner(fs: float, method: str) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> preprocess_ecg(x, fs=fs, method=method)``, with the band-pass design cached.

    The training function designs its Butterworth filter on every call (about half of the cost
    per 1 s block); the cached version computes the same numbers (a test checks equality).
    The cleaner holds no state, so pipelines of equal rate and method share one (a processor
    builds a pipeline for every device that connects).
    """
    if method != "bandpass":
        return functools.partial(preprocess_ecg, fs=fs, method=method)
    sos = bandpass_sos(float(fs))
    fast = _fast_sosfiltfilt(sos)
    if fast is not None:
        return lambda x: fast(x, min(x.shape[0] - 1, 3 * int(fs)))
    from scipy.signal import sosfiltfilt

    def clean(x: np.ndarray) -> np.ndarray:
        return sosfiltfilt(sos, x, axis=0, padlen=min(x.shape[0] - 1, 3 * int(fs)))

    return clean


def _fast_sosfiltfilt(sos: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """``(x, padlen) -> scipy.signal.sosfiltfilt(sos, x, axis=0, padlen=padlen)`` for float64
    ``(n, channels)`` blocks, the same arithmetic in the same order (odd extension, forward and
    backward ``_sosfilt`` passes from ``sosfilt_zi`` scaled initial states), without the
    per-call filter validation, ``sosfilt_zi`` solve and axis shuffling (most of the cost of a
    1 s block); a test checks bit-identity. ``None`` when SciPy's kernel cannot be imported.
    """
    try:
        from scipy.signal import sosfilt_zi
        from scipy.signal._arraytools import odd_ext
        from scipy.signal._sosfilt import _sosfilt
    except ImportError:  # pragma: no cover - other SciPy layouts: use the public function
        return None
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    zi = sosfilt_zi(sos)  # (n_sections, 2)

    def run(x: np.ndarray, padlen: int) -> np.ndarray:
        xt = np.asarray(x, dtype=np.float64)
        if padlen > 0:
            xt = odd_ext(xt, padlen, axis=0)
        y = np.array(xt.T, dtype=np.float64, order="C")  # (channels, n), filtered in place
        state = np.ascontiguousarray(zi[None, :, :] * y[:, 0, None, None])
        _sosfilt(sos, y, state)
        y = np.array(y[:, ::-1], order="C")
        state = np.ascontiguousarray(zi[None, :, :] * y[:, 0, None, None])
        _sosfilt(sos, y, state)
        y = y[:, ::-1]
        if padlen > 0:
            y = y[:, padlen:-padlen]
        return y.T

    return run


def _classes_of(model: BeatModel) -> tuple[str, ...]:
    classes = tuple(getattr(model, "classes", ()) or ())
    return classes or AAMI_CLASSES


class BeatPipeline:
    """Streaming detection + classification of one stream (see the module docstring).

    Parameters
    ----------
    fs : float
        Sampling rate in Hz (any rate the detector accepts, >= 50 Hz).
    lead_names : sequence of str
        Lead of each input column.
    model : BeatModel
        The classifier (``context_k``, ``n_leads``, ``window_len``, ``n_rr``, ``classes``); may be
        ``None`` when only :meth:`prepare` is used.
    pre_s, post_s : float
        Beat window around the R peak (training defaults).
    amplitude_history : int
        Beats in the running amplitude normaliser (training default).
    preprocess : {"bandpass", "median"}
        Cleaning method (training default ``"bandpass"``).
    block_s, lookback_s, lookahead_s : float
        Block-wise cleaning geometry (seconds).
    quality : bool
        Assess signal quality at the end of every block.
    quality_window_s : float
        Look-back of each quality assessment.
    max_history_s : float
        Cleaned signal kept for R peaks the detector confirms late (search-back).
    context_k, n_leads, window_len, n_rr : int, optional
        Needed only without a ``model``.
    artefact_model : BeatArtefactModel, optional
        Scores every beat for motion artefact against the stream's own recent beats
        (:mod:`heartline.signal.artefact`), on the first model lead's cleaned window; the
        verdict is :attr:`ClassifiedBeat.artefact`. ``None`` (default): no scoring.
    """

    def __init__(
        self,
        *,
        fs: float,
        lead_names: Sequence[str],
        model: BeatModel | None,
        pre_s: float = 0.25,
        post_s: float = 0.45,
        amplitude_history: int = 32,
        preprocess: str = "bandpass",
        block_s: float = 1.0,
        lookback_s: float = 2.0,
        lookahead_s: float = 1.0,
        quality: bool = True,
        quality_window_s: float = 2.0,
        max_history_s: float = 30.0,
        context_k: int | None = None,
        n_leads: int | None = None,
        window_len: int | None = None,
        n_rr: int | None = None,
        artefact_model: BeatArtefactModel | None = None,
    ) -> None:
        self.fs = check_fs(fs)
        self.artefact_model = artefact_model
        if self.fs < 50:
            raise SignalError(f"fs must be at least 50 Hz, got {fs!r}")
        self.model = model
        src = model
        self.context_k = int(context_k if context_k is not None else src.context_k)  # type: ignore[union-attr]
        self.n_leads = int(n_leads if n_leads is not None else src.n_leads)  # type: ignore[union-attr]
        self.window_len = int(window_len if window_len is not None else src.window_len)  # type: ignore[union-attr]
        self.n_rr = int(n_rr if n_rr is not None else src.n_rr)  # type: ignore[union-attr]
        n_base = len(RR_FEATURE_NAMES)
        n_full = n_base + len(template_feature_names(self.n_leads))
        if self.n_rr > n_full:
            raise ValueError(
                f"n_rr={self.n_rr}: the pipeline computes {n_base} RR columns and "
                f"{n_full - n_base} template columns for {self.n_leads} lead(s)"
            )
        #: Whether the model takes the template columns after the RR columns.
        self.template_features = self.n_rr > n_base
        self.classes = _classes_of(model) if model is not None else AAMI_CLASSES
        self.lead_names = tuple(lead_names)
        self.columns = select_leads(self.lead_names, self.n_leads)
        if block_s <= 0 or lookback_s < 0 or lookahead_s < 0:
            raise ValueError(
                f"need block_s > 0, lookback_s >= 0, lookahead_s >= 0; got {block_s}, {lookback_s}, {lookahead_s}"
            )
        if pre_s < 0 or post_s <= 0:
            raise ValueError(f"need pre_s >= 0 and post_s > 0, got {pre_s}, {post_s}")
        self.pre_s, self.post_s = float(pre_s), float(post_s)
        self.preprocess = preprocess
        check_preprocess_method(preprocess)
        self._cleaner = _make_cleaner(self.fs, preprocess)
        self._block = max(1, round(block_s * self.fs))
        self._lookback = round(lookback_s * self.fs)
        self._lookahead = round(lookahead_s * self.fs)
        self._pre = self.pre_s * self.fs
        self._post = self.post_s * self.fs
        self._offsets = window_offsets(self.fs, self.pre_s, self.post_s, self.window_len)
        self.quality = bool(quality)
        self._quality_cfg = QualityConfig(
            window_s=quality_window_s, min_window_s=min(1.0, quality_window_s)
        )
        self._quality_width = max(1, round(quality_window_s * self.fs))
        self._assessor = WindowAssessor(fs=self.fs, config=self._quality_cfg)
        self.amplitude_history = int(amplitude_history)
        self._max_history = round(max_history_s * self.fs)
        #: Optional per-stage CPU accounting (``{"detect", "clean", "quality", "beats"}`` ->
        #: seconds of this thread's CPU time, accumulated): set it to a ``defaultdict(float)``
        #: to profile (``heartline bench stream-profile``); ``None`` (default) costs nothing.
        self.stage_times: dict[str, float] | None = None
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Start a new stream (sample index 0)."""
        self._detector = StreamingRPeakDetector(fs=self.fs)
        self._rr = OnlineRRFeatures(fs=self.fs)
        self._norm = OnlineBeatNormaliser(history=self.amplitude_history)
        self._artefact = (
            self.artefact_model.tracker(
                window_len=self.window_len, pre_s=self.pre_s, post_s=self.post_s, fs=self.fs
            )
            if self.artefact_model is not None
            else None
        )
        self._templates = (
            TemplateTracker(pre_s=self.pre_s, post_s=self.post_s)
            if self.template_features
            else None
        )
        self._raw = np.zeros((0, self.n_leads))
        self._raw_start = 0  # absolute index of self._raw[0]
        self._n_in = 0
        self._clean = np.zeros((0, self.n_leads))
        self._clean_start = 0
        self._next_block = 0  # first block not cleaned yet
        self._pending: deque[int] = deque()  # peaks waiting for their RR features
        self._ready: deque[tuple[int, np.ndarray]] = deque()  # (peak, rr) waiting for clean signal
        self._context: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=max(self.context_k, 1))
        self._first: tuple[np.ndarray, np.ndarray] | None = None
        self._features = FeatureCache(max(64, 4 * (self.context_k + 1)))
        self._bad_blocks: deque[tuple[int, int]] = deque()  # unusable [start, stop) sample spans
        self._quality_out: list[WindowQuality] = []
        self._vf_reported = 0  # completed VF spans of the detector already returned by drain_vf
        self._flushed = False
        self._last_peak = 0
        self.beats_emitted = 0
        #: R peaks (absolute sample indices of this stream) the detector confirmed in the last
        #: :meth:`prepare` (or :func:`prepare_many`, :meth:`flush_prepare`) call: the stream
        #: processor hands them to the rhythm input (:class:`heartline.edge.rhythm.RhythmStream`)
        #: instead of detecting the same lead twice.
        self.new_peaks = np.zeros(0, dtype=np.int64)

    @property
    def samples_seen(self) -> int:
        """Samples fed so far."""
        return self._n_in

    # ------------------------------------------------------------------ streaming
    def _check_chunk(self, samples_mv: np.ndarray) -> np.ndarray:
        x = np.asarray(samples_mv, dtype=np.float64)
        if x.ndim == 1 and len(self.lead_names) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.lead_names):
            raise SignalError(
                f"samples_mv must have shape (n, {len(self.lead_names)}) for leads {self.lead_names}, got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise SignalError("samples_mv holds NaN/inf; impute gaps first")
        return x[:, self.columns]

    def prepare(self, samples_mv: np.ndarray) -> BeatBatch:
        """Feed the next samples; return the model inputs of the beats they completed."""
        out = prepare_many([self], [samples_mv])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def flush_prepare(self) -> BeatBatch:
        """End of stream: clean what is left and return the remaining beats' model inputs."""
        if self._flushed:
            return self._empty_batch()
        self._clean_blocks(final=True)
        self.new_peaks = np.asarray(self._detector.flush(), dtype=np.int64)
        self._add_peaks(self.new_peaks)
        last = self._rr.flush()
        if last is not None and self._pending:
            self._ready.append((self._pending.popleft(), last))
        while self._pending:  # a lone beat: no RR interval exists (NaN, as offline)
            self._ready.append((self._pending.popleft(), np.full(len(RR_FEATURE_NAMES), np.nan)))
        self._flushed = True
        return self._emit(final=True)

    def process(self, samples_mv: np.ndarray) -> list[ClassifiedBeat]:
        """Feed the next samples ``(n, n_leads)`` in mV; return the beats classified now."""
        return self._classify(self.prepare(samples_mv))

    def flush(self) -> list[ClassifiedBeat]:
        """End of stream: return the last beats."""
        return self._classify(self.flush_prepare())

    def drain_quality(self) -> list[WindowQuality]:
        """Quality verdicts of the blocks cleaned since the last call (absolute sample indices)."""
        out, self._quality_out = self._quality_out, []
        return out

    def drain_vf(self) -> list[tuple[int, int | None]]:
        """Ventricular flutter/fibrillation episodes seen by the R-peak detector since the last call.

        Returns ``(start_idx, stop_idx)`` for each episode that ended since the last call and
        ``(start_idx, None)`` for one still going on (reported again on every call until it
        ends). During VF the detector emits no beats (see
        :class:`~heartline.signal.rpeaks.StreamingRPeakDetector`), so the alert engine needs
        these spans to raise a VF alarm instead of a pause.
        """
        spans = self._detector.vf_spans
        out: list[tuple[int, int | None]] = [
            (int(a), int(b)) for a, b in spans[self._vf_reported :]
        ]
        self._vf_reported = len(spans)
        if self._detector.vf_start_idx is not None:
            out.append((int(self._detector.vf_start_idx), None))
        return out

    def _classify(self, batch: BeatBatch) -> list[ClassifiedBeat]:
        if self.model is None:
            raise RuntimeError("this pipeline has no model; use prepare() and classify_batches()")
        if not len(batch):
            return []
        probs = classify_batches(self.model, [batch])[0]
        return self.complete(batch, probs)

    def complete(self, batch: BeatBatch, probabilities: np.ndarray) -> list[ClassifiedBeat]:
        """Turn a batch and its class probabilities into :class:`ClassifiedBeat` objects."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(batch), len(self.classes)):
            raise ValueError(
                f"probabilities must have shape ({len(batch)}, {len(self.classes)}), got {probs.shape}"
            )
        out = []
        for i in range(len(batch)):
            p = probs[i]
            if not np.all(np.isfinite(p)):  # NaN RR of a lone beat: no opinion
                p = np.full(len(self.classes), 1.0 / len(self.classes))
            k = int(np.argmax(p))
            out.append(
                ClassifiedBeat(
                    sample_idx=int(batch.sample_idx[i]),
                    label=self.classes[k],
                    probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    confidence=float(min(1.0, max(0.0, p[k]))),
                    quality_ok=bool(batch.quality_ok[i]),
                    artefact=bool(batch.artefact[i]) if batch.artefact is not None else False,
                )
            )
        return out

    # ------------------------------------------------------------------ internals
    def _clean_blocks(self, *, final: bool) -> None:
        _clean_blocks_many([self], final=final)

    def _block_jobs(self, *, final: bool) -> list[tuple[int, int, int, int]]:
        """``(b0, b1, s0, s1)`` of every block ready to be cleaned: block ``[b0, b1)``, filtered
        over ``[s0, s1)`` (look-back and look-ahead)."""
        n = self._n_in
        jobs = []
        k = self._next_block
        while True:
            b0 = k * self._block
            if b0 >= n:
                break
            b1 = b0 + self._block
            if b1 + self._lookahead > n and not final:
                break
            b1 = min(b1, n)
            jobs.append((b0, b1, max(0, b0 - self._lookback), min(n, b1 + self._lookahead)))
            k += 1
        return jobs

    def _add_block(
        self,
        job: tuple[int, int, int, int],
        cleaned: np.ndarray,
        wq: WindowQuality | None,
        *,
        final: bool,
    ) -> None:
        """Append one cleaned block and its quality verdict (blocks in order)."""
        b0, b1, s0, _s1 = job
        block = cleaned[b0 - s0 : b1 - s0]
        if not self._clean.size:
            self._clean_start = b0
        self._clean = np.concatenate([self._clean, block]) if self._clean.size else block.copy()
        if wq is not None:
            q0 = max(0, b1 - self._quality_width)
            # a last partial block may be too short to judge: that is not bad quality
            wq_bad = not wq.usable and not (
                final and b1 - q0 < self._quality_cfg.min_window_s * self.fs
            )
            if wq_bad:
                self._bad_blocks.append((b0, b1))
            self._quality_out.append(wq)
        self._next_block += 1

    def _trim_raw(self) -> None:
        """Keep enough raw signal for the next block's look-back and quality window."""
        keep_from = max(
            0, self._next_block * self._block - max(self._lookback, self._quality_width)
        )
        if keep_from > self._raw_start:
            self._raw = self._raw[keep_from - self._raw_start :]
            self._raw_start = keep_from

    def _add_peaks(self, peaks: np.ndarray) -> None:
        for p in np.asarray(peaks, dtype=np.int64).tolist():
            self._last_peak = p
            feats = self._rr.update(p)
            if feats is not None and self._pending:
                self._ready.append((self._pending.popleft(), feats))
            self._pending.append(p)

    def _segment(self, rel: int) -> np.ndarray:
        """``segment_beats(self._clean, [rel], ...)[0]``, interpolating on the samples the window
        touches instead of a grid over the whole kept signal (the same bracketing samples, so
        the same numbers; a test checks equality)."""
        clean = self._clean
        n = clean.shape[0]
        if not 0 <= rel < n:  # segment_beats says what is wrong
            return segment_beats(
                clean,
                np.array([rel]),
                fs=self.fs,
                pre_s=self.pre_s,
                post_s=self.post_s,
                window_len=self.window_len,
            )[0]
        pos = np.int64(rel) + self._offsets
        a = max(0, math.floor(pos[0]))
        b = min(n, math.ceil(pos[-1]) + 2)
        grid = np.arange(a, b, dtype=np.float64)
        out = np.empty((clean.shape[1], pos.size), dtype=np.float32)
        for lead in range(clean.shape[1]):
            out[lead] = np.interp(pos, grid, clean[a:b, lead])
        return out

    def _cleaned_until(self) -> int:
        return self._clean_start + self._clean.shape[0]

    def _quality_ok(self, peak: int) -> bool:
        while self._bad_blocks and self._bad_blocks[0][1] <= peak - self._lookback - self._block:
            self._bad_blocks.popleft()  # far behind every peak still to come
        return not any(a <= peak < b for a, b in self._bad_blocks)

    def _empty_batch(self) -> BeatBatch:
        t = self.context_k + 1
        return BeatBatch(
            np.zeros((0, t, self.n_leads, self.window_len), np.float32),
            np.zeros((0, t, self.n_rr), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, bool),
        )

    def _emit(self, *, final: bool) -> BeatBatch:
        return _emit_many([self], final=final)[0]

    def _take_ready(self, *, final: bool) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Pop the beats whose windows the cleaned signal now holds: ``(peak, rr, window)``
        each, the window cut (not yet amplitude-normalised); then drop cleaned samples no future
        beat window can reach."""
        done = self._cleaned_until()
        taken: list[tuple[int, np.ndarray, np.ndarray]] = []
        while self._ready:
            peak, feats = self._ready[0]
            # the window's last point lies at peak + post*(L-1)/L; np.interp needs the sample after it
            need = math.floor(peak + self._post) + 2
            if need > done and not (final and done >= self._n_in):
                break
            self._ready.popleft()
            rel = peak - self._clean_start
            if rel < 0 or (self._clean_start > 0 and peak - self._pre < self._clean_start):
                # only after a > max_history_s detector delay; the window is edge-padded
                log.warning("beat at sample %d is older than the kept signal", peak)
                rel = max(rel, 0)
            taken.append((peak, feats, self._segment(rel)))
        # drop cleaned samples no future beat window can reach
        # Future peaks come after the last detected one (or anywhere from 0 before the first);
        # the detector confirms a peak within seconds, so max_history_s bounds the buffer.
        oldest = (
            self._ready[0][0]
            if self._ready
            else (self._pending[0] if self._pending else self._last_peak)
        )
        keep_from = max(self._clean_start, int(oldest - self._pre) - 2, done - self._max_history)
        if keep_from > self._clean_start:
            self._clean = self._clean[keep_from - self._clean_start :]
            self._clean_start = keep_from
        return taken

    def _assemble(
        self,
        taken: list[tuple[int, np.ndarray, np.ndarray]],
        template_rows: Sequence[np.ndarray] | np.ndarray | None,
        artefact: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> BeatBatch:
        """The batch of the beats :meth:`_take_ready` returned; ``template_rows`` holds their
        template columns (one row per beat, in order) for models that read them; ``artefact``
        their artefact features and verdicts."""
        if not taken:
            return self._empty_batch()
        first_no = self.beats_emitted
        n, k = len(taken), self.context_k
        new_w = np.stack([w for _, _, w in taken]).astype(np.float32, copy=False)
        new_r = np.asarray([feats for _, feats, _ in taken], dtype=np.float32)
        if self._templates is not None:  # each beat's template row, after its RR columns
            assert template_rows is not None
            new_r = np.concatenate([new_r, np.asarray(template_rows, dtype=np.float32)], axis=1)
        new_r = model_rr_columns(new_r, self.n_rr)
        if self._first is None:
            self._first = (new_w[0], new_r[0])
        # beat j of this batch sees the k beats before it: the stream's last k (the first beat
        # repeated before the stream start), then this batch's earlier beats; one gather from
        # that sequence instead of a stack per beat (the same numbers)
        prev = list(self._context)[-k:] if k else []
        pad = [self._first] * (k - len(prev)) + prev
        if pad:
            seq_w = np.concatenate([np.stack([c[0] for c in pad]), new_w])
            seq_r = np.concatenate([np.stack([c[1] for c in pad]), new_r])
        else:
            seq_w, seq_r = new_w, new_r
        rows = np.arange(n)[:, None] + np.arange(k + 1)
        oks = [self._quality_ok(peak) for peak, _, _ in taken]
        self._context.extend(zip(new_w, new_r, strict=True))
        self.beats_emitted += n
        # beat numbers of each row: beat i sees beats i-k..i-1, the first beat (0) repeated
        # before the stream start, as the windows above
        numbers = np.arange(first_no, first_no + n, dtype=np.int64)[:, None]
        keys = np.maximum(numbers + np.arange(-k, 1, dtype=np.int64), 0)
        return BeatBatch(
            seq_w[rows],
            seq_r[rows],
            np.asarray([peak for peak, _, _ in taken], dtype=np.int64),
            np.asarray(oks, dtype=bool),
            BeatContext(self._features, keys),
            None if artefact is None else artefact[0],
            None if artefact is None else np.asarray(artefact[1], dtype=bool),
        )


_NO_PEAKS = np.zeros(0, dtype=np.int64)
_NO_PEAKS.flags.writeable = False


def _stage_clock(pipelines: Sequence[BeatPipeline]) -> dict[str, float] | None:
    return next((p.stage_times for p in pipelines if p.stage_times is not None), None)


def prepare_many(
    pipelines: Sequence[BeatPipeline], chunks: Sequence[np.ndarray]
) -> list[BeatBatch | Exception]:
    """:meth:`BeatPipeline.prepare` of many pipelines (devices), one chunk each, at once.

    Returns what ``[p.prepare(x) for p, x in zip(pipelines, chunks)]`` returns, with the same
    pipeline states afterwards, bit for bit, except that a chunk ``prepare`` would refuse gets
    its exception in its place (the other pipelines go on). The per-sample work of all
    pipelines runs in a few 2-D calls: the R-peak detectors' filters
    (:meth:`~heartline.signal.rpeaks.StreamingRPeakDetector.process_many`), the block band-pass
    of every block due (one ``sosfiltfilt`` over the leads of all devices side by side) and the
    spectral signal-quality indices (:meth:`~heartline.signal.quality.WindowAssessor.assess_many`);
    each of them works on every row on its own, so the numbers are those of the one-device
    calls. :meth:`BeatPipeline.prepare` itself is ``prepare_many([self], [x])``, so offline and
    live share this code.

    Parameters
    ----------
    pipelines : sequence of BeatPipeline
        Distinct pipelines.
    chunks : sequence of numpy.ndarray
        The next samples ``(n, n_leads)`` in mV of each pipeline.

    Returns
    -------
    list of BeatBatch or Exception
    """
    if len(pipelines) != len(chunks):
        raise ValueError(f"chunks must align with pipelines: {len(chunks)} != {len(pipelines)}")
    if len({id(p) for p in pipelines}) != len(pipelines):
        raise ValueError("pipelines must be distinct (one per stream)")
    out: list[BeatBatch | Exception | None] = [None] * len(pipelines)
    live: list[tuple[int, BeatPipeline, np.ndarray]] = []
    for i, (pipe, chunk) in enumerate(zip(pipelines, chunks, strict=True)):
        pipe.new_peaks = _NO_PEAKS
        try:
            if pipe._flushed:
                raise RuntimeError("the pipeline was flushed; call reset() to start a new stream")
            live.append((i, pipe, pipe._check_chunk(chunk)))
        except Exception as exc:
            out[i] = exc
    tm = _stage_clock(pipelines)
    fed = [(i, pipe, x) for i, pipe, x in live if x.shape[0]]
    if fed:
        t0 = time.thread_time() if tm is not None else 0.0
        peaks = StreamingRPeakDetector.process_many(
            [pipe._detector for _, pipe, _ in fed], [x[:, 0] for _, _, x in fed]
        )
        if tm is not None:
            tm["detect"] += time.thread_time() - t0
        ok = []
        for (i, pipe, x), pk in zip(fed, peaks, strict=True):
            if isinstance(pk, Exception):
                out[i] = pk
                continue
            pipe._raw = np.concatenate([pipe._raw, x]) if pipe._raw.size else x.copy()
            pipe._n_in += x.shape[0]
            ok.append((pipe, pk))
        _clean_blocks_many([pipe for pipe, _ in ok], final=False)
        for pipe, pk in ok:
            pipe.new_peaks = np.asarray(pk, dtype=np.int64)
            pipe._add_peaks(pipe.new_peaks)
    t0 = time.thread_time() if tm is not None else 0.0
    emitting = [(i, pipe) for i, pipe, _x in live if out[i] is None]
    for (i, _pipe), batch in zip(
        emitting, _emit_many([p for _, p in emitting], final=False), strict=True
    ):
        out[i] = batch
    if tm is not None:
        tm["beats"] += time.thread_time() - t0
    return out  # type: ignore[return-value]


def _emit_many(pipelines: Sequence[BeatPipeline], *, final: bool) -> list[BeatBatch]:
    """The beats each pipeline can now emit, as batches: windows cut per pipeline, then the
    amplitude normalisation and the template rows of every new beat of every pipeline in a
    few vectorised calls (:meth:`OnlineBeatNormaliser.update_many`,
    :meth:`TemplateTracker.update_many`: the numbers of the one-beat updates), then each
    pipeline's batch with its context rows."""
    taken = [pipe._take_ready(final=final) for pipe in pipelines]
    fed = [j for j, t in enumerate(taken) if t]
    # artefact features on the cleaned windows, before the amplitude normalisation
    scored: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in fed:
        pipe = pipelines[j]
        if pipe._artefact is not None and pipe.artefact_model is not None:
            f = pipe._artefact.update_many(
                np.stack([w for _, _, w in taken[j]]),
                np.asarray([peak for peak, _, _ in taken[j]], dtype=np.float64),
            )
            scored[j] = (f, pipe.artefact_model.is_artefact(f))
    # windows of one geometry are normalised together (a pipeline's windows share one shape)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for j in fed:
        by_shape.setdefault(taken[j][0][2].shape, []).append(j)
    for members in by_shape.values():
        normed = OnlineBeatNormaliser.update_many(
            [pipelines[j]._norm for j in members],
            [np.stack([w for _, _, w in taken[j]]) for j in members],
        )
        for j, ws in zip(members, normed, strict=True):
            taken[j] = [(p, r, w) for (p, r, _), w in zip(taken[j], ws, strict=True)]
    tracked = [j for j in fed if pipelines[j]._templates is not None]
    rows: dict[int, np.ndarray] = {}
    if tracked:
        found = TemplateTracker.update_many(
            [pipelines[j]._templates for j in tracked],  # type: ignore[misc]
            [np.stack([w for _, _, w in taken[j]]) for j in tracked],
        )
        rows = dict(zip(tracked, found, strict=True))
    return [
        pipe._assemble(t, rows.get(j), scored.get(j))
        for j, (pipe, t) in enumerate(zip(pipelines, taken, strict=True))
    ]


#: Blocks cleaned per band-pass call in :func:`_clean_blocks_many`.
_CLEAN_GROUP = 16


def _clean_blocks_many(pipelines: Sequence[BeatPipeline], *, final: bool) -> None:
    """Clean (and assess) every block due in each pipeline; blocks of equal geometry of all
    pipelines are filtered in one call (the band-pass works on each lead column on its own)."""
    tm = _stage_clock(pipelines)
    t0 = time.thread_time() if tm is not None else 0.0
    work = [(pipe, pipe._block_jobs(final=final)) for pipe in pipelines]
    cleaned: dict[tuple[int, int], np.ndarray] = {}  # (pipeline, job) -> cleaned segment
    groups: dict[tuple[object, ...], list[tuple[int, int, np.ndarray]]] = {}
    for pi, (pipe, jobs) in enumerate(work):
        for ji, (_b0, _b1, s0, s1) in enumerate(jobs):
            seg = pipe._raw[s0 - pipe._raw_start : s1 - pipe._raw_start]
            if seg.shape[0] < 2:  # a 1-sample tail cannot be filtered; keep it as is
                cleaned[pi, ji] = seg - seg.mean(axis=0)
            elif pipe.preprocess == "bandpass":
                key = (pipe.fs, seg.shape[0], seg.shape[1])
                groups.setdefault(key, []).append((pi, ji, seg))
            else:
                cleaned[pi, ji] = pipe._cleaner(seg)
    for group in groups.values():
        cleaner = work[group[0][0]][0]._cleaner
        # at most _CLEAN_GROUP blocks per call: the padded blocks of many devices side by side
        # outgrow the CPU caches and cost more per block than a few calls
        for g0 in range(0, len(group), _CLEAN_GROUP):
            members = group[g0 : g0 + _CLEAN_GROUP]
            if len(members) == 1:
                pi, ji, seg = members[0]
                cleaned[pi, ji] = cleaner(seg)
                continue
            both = cleaner(np.concatenate([seg for _, _, seg in members], axis=1))
            c = members[0][2].shape[1]
            for j, (pi, ji, _seg) in enumerate(members):
                cleaned[pi, ji] = both[:, j * c : (j + 1) * c]
    if tm is not None:
        t1 = time.thread_time()
        tm["clean"] += t1 - t0
        t0 = t1
    quality: dict[tuple[int, int], WindowQuality] = {}
    by_assessor: dict[
        tuple[float, QualityConfig], list[tuple[tuple[int, int], np.ndarray, int]]
    ] = {}
    assessors: dict[tuple[float, QualityConfig], WindowAssessor] = {}
    for pi, (pipe, jobs) in enumerate(work):
        if not pipe.quality:
            continue
        for ji, (_b0, b1, _s0, _s1) in enumerate(jobs):
            q0 = max(0, b1 - pipe._quality_width)
            win = pipe._raw[q0 - pipe._raw_start : b1 - pipe._raw_start, 0]
            # pipelines with equal settings share one assessor's cached plans
            key = (pipe.fs, pipe._quality_cfg)
            assessors.setdefault(key, pipe._assessor)
            by_assessor.setdefault(key, []).append(((pi, ji), win, q0))
    for key, members in by_assessor.items():
        verdicts = assessors[key].assess_many(
            [w for _, w, _ in members], start_idx=[q0 for _, _, q0 in members]
        )
        for (ref, _w, _q0), wq in zip(members, verdicts, strict=True):
            quality[ref] = wq
    for pi, (pipe, jobs) in enumerate(work):
        for ji, job in enumerate(jobs):
            pipe._add_block(job, cleaned[pi, ji], quality.get((pi, ji)), final=final)
        pipe._trim_raw()
    if tm is not None:
        tm["quality"] += time.thread_time() - t0


def _uses_split(model: BeatModel, batches: Sequence[BeatBatch]) -> bool:
    return bool(getattr(model, "has_split", False)) and all(
        b.context is not None and b.context.keys.shape == b.windows.shape[:2] for b in batches
    )


def _classify_split(model: Any, batches: Sequence[BeatBatch]) -> np.ndarray:
    """Probabilities of the beats of ``batches`` (in order) with the split form of ``model``.

    The current beats of all batches are encoded first (one encoder call) and stored in their
    streams' caches, so beats of this call that are each other's context find each other; the
    context rows are then gathered from the caches, and rows missing there (a batch classified
    out of order or after a failed call) are encoded from the batch's own windows.
    """
    current = model.encode(
        np.concatenate([b.windows[:, -1] for b in batches]),
        np.concatenate([b.rr[:, -1] for b in batches]),
    )
    t = batches[0].windows.shape[1]
    caches: dict[int, tuple[FeatureCache, list[tuple[np.ndarray, np.ndarray]]]] = {}
    start = 0
    for b in batches:
        assert b.context is not None
        n = len(b)
        caches.setdefault(id(b.context.cache), (b.context.cache, []))[1].append(
            (b.context.keys[:, -1], current[start : start + n])
        )
        start += n
    for cache, parts in caches.values():
        # the new beats and the context_k beats before them must not evict each other
        cache.reserve(sum(len(k) for k, _ in parts) + t)
        for keys, feats in parts:
            cache.put(model=model, keys=keys, features=feats)
    dim = current.shape[1]
    seq = np.empty((current.shape[0], t, dim), np.float32)
    seq[:, -1] = current
    missing_rows: list[np.ndarray] = []
    missing_w: list[np.ndarray] = []
    missing_r: list[np.ndarray] = []
    start = 0
    for b in batches:
        assert b.context is not None
        n = len(b)
        if t > 1:
            feats, found = b.context.cache.get(model=model, keys=b.context.keys[:, :-1])
            if found.all():
                seq[start : start + n, :-1] = feats
            else:
                if found.any():
                    seq[start : start + n, :-1][found] = feats[found]
                rows, cols = np.nonzero(~found)
                missing_rows.append(np.stack([rows + start, cols], 1))
                missing_w.append(b.windows[rows, cols])
                missing_r.append(b.rr[rows, cols])
        start += n
    if missing_rows:
        where = np.concatenate(missing_rows)
        seq[where[:, 0], where[:, 1]] = model.encode(
            np.concatenate(missing_w), np.concatenate(missing_r)
        )
    return np.asarray(model.predict_proba_features(seq))


def classify_batches(model: BeatModel, batches: Sequence[BeatBatch]) -> list[np.ndarray]:
    """Classify the beats of several pipelines (devices) with one model call.

    With a model that has the split form (``model.has_split``, see
    :class:`~heartline.edge.runtime.OnnxBeatClassifier`) and batches made by
    :class:`BeatPipeline`, each current beat is encoded once and the context beats' features
    come from the streams' :class:`FeatureCache` (the same numbers as the full graph, within
    float32 rounding); otherwise the full ``(n, context_k + 1, ...)`` inputs go to
    ``model.predict_proba_arrays``.

    Returns the probabilities ``(len(batch), n_classes)`` of each batch, in order.
    """
    sizes = [len(b) for b in batches]
    total = sum(sizes)
    n_classes = len(_classes_of(model))
    if total == 0:
        return [np.zeros((0, n_classes), np.float32) for _ in batches]
    nonempty = [b for b in batches if len(b)]
    if _uses_split(model, nonempty):
        probs = _classify_split(model, nonempty)
    else:
        windows = np.concatenate([b.windows for b in nonempty])
        rr = np.concatenate([b.rr for b in nonempty])
        probs = np.asarray(model.predict_proba_arrays(windows, rr))
    out, start = [], 0
    for n in sizes:
        out.append(probs[start : start + n])
        start += n
    return out


def classify_record(
    record: EcgRecord,
    *,
    model: BeatModel,
    chunk_s: float = 1.0,
    **pipeline_options: Any,
) -> ClassifiedBeats:
    """Detect and classify every beat of a record with :class:`BeatPipeline`, chunk by chunk.

    Parameters
    ----------
    record : EcgRecord
        Any sampling rate; ``record.signal`` in mV, ``record.lead_names``.
    model : BeatModel
        Usually :class:`~heartline.edge.runtime.OnnxBeatClassifier`.
    chunk_s : float
        Chunk length fed to the pipeline (the result does not depend on it).
    **pipeline_options
        Passed to :class:`BeatPipeline`.

    Returns
    -------
    ClassifiedBeats
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be > 0, got {chunk_s}")
    pipe = BeatPipeline(fs=record.fs, lead_names=record.lead_names, model=model, **pipeline_options)
    signal = np.asarray(record.signal, dtype=np.float64)
    if signal.ndim == 1:
        signal = signal[:, None]
    if not np.all(np.isfinite(signal)):
        from heartline.signal.preprocess import impute_gaps

        log.warning("record holds NaN samples; interpolating them before classification")
        signal = impute_gaps(signal, fs=record.fs).signal
    step = max(1, round(chunk_s * record.fs))
    beats: list[ClassifiedBeat] = []
    for start in range(0, signal.shape[0], step):
        beats.extend(pipe.process(signal[start : start + step]))
    beats.extend(pipe.flush())
    return ClassifiedBeats.from_beats(beats, classes=pipe.classes, fs=record.fs)
