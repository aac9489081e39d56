"""Heartline's Python API for notebooks: read a record, find its R peaks, classify its beats.

Everything here runs the shipped ONNX models through ONNX Runtime; nothing imports torch.

>>> import heartline
>>> rec = heartline.read_record("../shared/data/mitdb/208")
>>> beats = heartline.classify(rec.signal[: 60 * 360], fs=rec.fs, leads=rec.lead_names)
>>> s = beats.summary()
>>> (s.model_id, s.leads_used, s.n_beats > 60, s.counts["V"] > 10)
('hybrid', ('MLII', 'V1'), True, True)

A single lead (here MLII alone, as a wearable patch records it) goes to the single-lead model:

>>> one = heartline.classify(rec.signal[: 60 * 360, 0], fs=rec.fs, leads=["MLII"])
>>> one.model_id, one.leads_used
('hybrid_mlii', ('MLII',))

The functions are :func:`read_record` (= :func:`heartline.io.readers.read_ecg`: WFDB, EDF,
CSV), :func:`detect_r_peaks` (:data:`heartline.signal.rpeaks.DETECTORS`) and :func:`classify`
(:class:`BeatTable`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from heartline.edge.model_select import (
    BeatModelSpec,
    ModelChoice,
    select_beat_model,
    spec_for_onnx,
)
from heartline.io.readers import check_processing_fs, read_ecg
from heartline.io.records import EcgRecord
from heartline.signal.rpeaks import RPeaks
from heartline.signal.rpeaks import detect_r_peaks as _detect_r_peaks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from heartline.edge.diagnosis import MultimodalDiagnosis

__all__ = [
    "BeatSummary",
    "BeatTable",
    "classify",
    "classify_record",
    "detect_r_peaks",
    "diagnose",
    "read_record",
]

log = logging.getLogger(__name__)


def read_record(
    path: str | os.PathLike[str],
    *,
    fs: float | None = None,
    lead_names: Sequence[str] | None = None,
    **kwargs: Any,
) -> EcgRecord:
    """Read a WFDB, EDF or CSV record in mV (see :func:`heartline.io.readers.read_ecg`)."""
    return read_ecg(path, fs=fs, lead_names=lead_names, **kwargs)


def diagnose(
    signals: np.ndarray,
    *,
    fs: float,
    lead_names: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    patient_id: str = "unknown",
    record_id: str = "record",
    time: datetime | None = None,
) -> MultimodalDiagnosis:
    """PTB-XL superdiagnostic classes of a 12-lead ECG with optional patient data.

    Runs the shipped stacked multimodal model (:class:`heartline.edge.multimodal.MultimodalModel`,
    ONNX Runtime; model card ``heartline/assets/models/MODEL_CARD_multimodal.md``). Decision
    support only: not a medical device.

    Parameters
    ----------
    signals : numpy.ndarray
        ``(n_samples, n_leads)`` in mV, at least 10 s (the first 10 s are used).
    fs : float
        Sampling rate in Hz, >= 100 (resampled to the model's 100 Hz).
    lead_names : sequence of str
        One per column; the 12 standard leads (I, II, III, aVR, aVL, aVF, V1-V6) in any order.
    metadata : mapping, optional
        ``age`` (years; PTB-XL's 300 = over 89), ``sex`` (``"male"``/``"female"``), ``height``
        (cm), ``weight`` (kg); missing ones are masked and reported in ``metadata_used``.

    Returns
    -------
    MultimodalDiagnosis
        Probabilities, thresholds, :meth:`~MultimodalDiagnosis.positive` classes, modality
        attention; :func:`heartline.fhir.diagnosis.diagnosis_report` turns it into FHIR R4.

    Raises
    ------
    ValueError
        Missing leads (named), ``fs`` below 100 Hz, a record under 10 s, NaN runs over 50 ms,
        amplitudes not in mV, unknown or out-of-range patient data.

    >>> import heartline
    >>> from heartline.data.paths import resolve_data_dir
    >>> rec = heartline.read_record(resolve_data_dir() / "ptbxl/records100/00000/00001_lr")
    >>> dx = heartline.diagnose(rec.signal, fs=rec.fs, lead_names=rec.lead_names,
    ...                         metadata={"age": 56, "sex": "female"})
    >>> sorted(dx.probabilities), dx.metadata_used["height"]
    (['CD', 'HYP', 'MI', 'NORM', 'STTC'], False)
    """
    from heartline.edge.multimodal import diagnose as _diagnose

    return _diagnose(
        signals,
        fs=fs,
        lead_names=lead_names,
        metadata=metadata,
        patient_id=patient_id,
        record_id=record_id,
        time=time,
    )


def detect_r_peaks(signal: np.ndarray, *, fs: float, method: str = "heartline") -> RPeaks:
    """R peaks of one lead (``method`` from :data:`heartline.signal.rpeaks.DETECTORS`).

    See :func:`heartline.signal.rpeaks.detect_r_peaks`; ``RPeaks.sample_idx`` holds the indices.
    """
    return _detect_r_peaks(signal, fs=fs, method=method)


@dataclass(frozen=True)
class BeatSummary:
    """Counts and rate of a :class:`BeatTable`.

    Attributes
    ----------
    n_beats : int
    duration_s : float
        From the first to the last beat.
    counts, percent : dict
        Beats per AAMI class (N, S, V, F, Q) and their share of all beats.
    mean_hr_bpm : float
        60 / mean RR interval (NaN with fewer than two beats).
    ectopic_burden_pct : float
        Share of S, V and F beats.
    model_id : str
    leads_used : tuple of str
    """

    n_beats: int
    duration_s: float
    counts: dict[str, int]
    percent: dict[str, float]
    mean_hr_bpm: float
    ectopic_burden_pct: float
    model_id: str
    leads_used: tuple[str, ...]


@dataclass(frozen=True)
class BeatTable:
    """Every beat of a recording, detected and classified (one row per beat, time order).

    Attributes
    ----------
    sample_idx : numpy.ndarray
        int64 R-peak indices at ``fs`` (the recording's own rate).
    labels : numpy.ndarray
        AAMI class letter per beat (``N``, ``S``, ``V``, ``F``, ``Q``).
    probabilities : numpy.ndarray
        ``(n_beats, len(classes))`` class probabilities.
    quality_ok : numpy.ndarray
        bool, whether the signal around the beat passed the quality check.
    classes : tuple of str
    fs : float
    model_id : str
        The beat model that classified them (``hybrid``, ``hybrid_mlii`` or a given file).
    leads_used : tuple of str
        The recording's lead(s) the model read, in its input order.
    note : str
        Why this model and these leads (see :func:`heartline.edge.model_select.select_beat_model`).
    record : str or None
    flags : tuple of str
        Signal problems of the leads used (flat, NaN) found when reading.
    attributions : numpy.ndarray or None
        With ``classify(..., explain=True)``: ``(n_beats, n_leads, window_len)`` float32
        occlusion attributions of each beat's predicted class over its model window
        (:func:`heartline.edge.occlusion.explain_beats`; positive: supports the label), leads in
        ``leads_used`` order; ``None`` otherwise.
    window_t_s : numpy.ndarray or None
        Time of each window sample relative to the R peak, seconds (with ``attributions``).
    """

    sample_idx: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    quality_ok: np.ndarray
    classes: tuple[str, ...]
    fs: float
    model_id: str
    leads_used: tuple[str, ...]
    note: str = ""
    record: str | None = None
    flags: tuple[str, ...] = field(default=())
    attributions: np.ndarray | None = field(default=None, repr=False)
    window_t_s: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])

    @property
    def time_s(self) -> np.ndarray:
        """R-peak times in seconds from the start."""
        return self.sample_idx / self.fs

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.probabilities.max(axis=1)

    def counts(self) -> dict[str, int]:
        """Beats per class, zero included."""
        return {c: int(np.count_nonzero(self.labels == c)) for c in self.classes}

    def summary(self) -> BeatSummary:
        """Counts per class, mean heart rate and ectopic burden."""
        n = len(self)
        counts = self.counts()
        rr = np.diff(self.sample_idx) / self.fs
        hr = 60.0 / float(rr.mean()) if rr.size else float("nan")
        ectopic = sum(counts.get(c, 0) for c in ("S", "V", "F"))
        return BeatSummary(
            n_beats=n,
            duration_s=float(rr.sum()) if rr.size else 0.0,
            counts=counts,
            percent={c: (100.0 * k / n if n else float("nan")) for c, k in counts.items()},
            mean_hr_bpm=hr,
            ectopic_burden_pct=100.0 * ectopic / n if n else float("nan"),
            model_id=self.model_id,
            leads_used=self.leads_used,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """A pandas DataFrame: ``sample``, ``time_s``, ``label``, ``confidence``, ``quality_ok``,
        ``p_<class>`` per class, ``lead`` and ``model``."""
        import pandas as pd

        data: dict[str, Any] = {
            "sample": self.sample_idx.astype(np.int64),
            "time_s": self.time_s,
            "label": self.labels.astype(str),
            "confidence": self.confidence,
            "quality_ok": self.quality_ok.astype(bool),
        }
        for j, c in enumerate(self.classes):
            data[f"p_{c}"] = self.probabilities[:, j] if len(self) else np.zeros(0)
        data["lead"] = "+".join(self.leads_used)
        data["model"] = self.model_id
        return pd.DataFrame(data)


@functools.lru_cache(maxsize=8)
def _onnx_classifier(path: str) -> Any:
    from heartline.edge.runtime import OnnxBeatClassifier

    return OnnxBeatClassifier(path)


def _as_2d(signal: Any) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"signal must be 1-D or (n_samples, n_leads), got shape {x.shape}")
    return x


def choose_model(
    lead_names: Sequence[str],
    *,
    model: str | os.PathLike[str] | None = None,
    lead: str | None = None,
    source: str = "record",
) -> ModelChoice:
    """The beat model (shipped, or the ONNX file ``model``) and columns for ``lead_names``."""
    specs: list[BeatModelSpec] | None = None
    if model is not None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model: no ONNX model at {path}")
        specs = [spec_for_onnx(path, _onnx_classifier(str(path)).n_leads)]
    return select_beat_model(lead_names, lead=lead, specs=specs, source=source)


def classify(
    signal: np.ndarray | EcgRecord,
    *,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    lead: str | None = None,
    model: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    explain: bool = False,
    af_gate: bool = False,
) -> BeatTable:
    """Detect and classify every beat of an ECG (any sampling rate >= 100 Hz).

    The beat model is chosen from the leads (:func:`heartline.edge.model_select.select_beat_model`):
    MLII + V1/V2/V4/V5 -> the two-lead model; one lead, or lead II of a 12-lead record -> the
    single-lead (MLII) model. Detection, cleaning and RR features run at the signal's own rate
    (the streaming :class:`~heartline.pipeline.BeatPipeline` the live processor runs); each beat
    window is resampled to the model's 128 samples over 0.7 s.

    Parameters
    ----------
    signal : numpy.ndarray or EcgRecord
        ECG in mV, 1-D (one lead) or ``(n_samples, n_leads)``; or a record from
        :func:`read_record` (its ``fs`` and lead names are used).
    fs : float
        Sampling rate in Hz (required for arrays).
    leads : sequence of str, optional
        Name of each column (required for more than one column; a single column is taken as
        one lead named ``"ECG"``).
    lead : str, optional
        Classify only this lead, with the single-lead model.
    model : path, optional
        An ONNX beat classifier instead of the shipped ones.
    progress : callable, optional
        ``progress(done_samples, total_samples)`` after every chunk.
    explain : bool
        Also compute every beat's occlusion attributions (:attr:`BeatTable.attributions`) on
        the exact model inputs the pipeline built, with
        :func:`heartline.edge.occlusion.explain_beats` (Zeiler & Fergus 2014): about 65 model
        runs per beat (two leads), some 10 ms of CPU per beat.
    af_gate : bool
        Report the ``S`` calls of beats in atrial fibrillation as ``N`` (AAMI EC57 convention;
        :mod:`heartline.edge.af_gate`): the shipped rhythm model's causal verdicts on the first
        model lead, as the live processor's ``af_gate``; the ``S`` probability of a gated beat
        moves to ``N``, and :attr:`BeatTable.note` says how many were gated.

    Returns
    -------
    BeatTable

    Raises
    ------
    heartline.edge.model_select.LeadMismatchError
        The leads fit no model (the message names them and what the models need).
    heartline.errors.SignalError
        ``fs`` missing, not positive or below 100 Hz.
    """
    from heartline.pipeline import BeatBatch, BeatPipeline, ClassifiedBeats, classify_batches

    record_name: str | None = None
    flags: tuple[str, ...] = ()
    if isinstance(signal, EcgRecord):
        if fs is not None and float(fs) != signal.fs:
            raise ValueError(f"fs={fs} given for a record sampled at {signal.fs} Hz")
        fs, names, x = signal.fs, tuple(signal.lead_names), signal.signal
        record_name, flags = signal.name, tuple(signal.flags)
        if leads is not None and tuple(leads) != names:
            raise ValueError(f"leads={list(leads)} given for a record with leads {list(names)}")
    else:
        if fs is None:
            from heartline.errors import SignalError

            raise SignalError("fs: give the sampling rate in Hz (classify(signal, fs=...))")
        x = _as_2d(signal)
        if leads is None:
            if x.shape[1] != 1:
                raise ValueError(
                    f"leads: name the {x.shape[1]} columns of signal (e.g. leads=['MLII', 'V1']); "
                    "the beat model is chosen from them"
                )
            names = ("ECG",)
        else:
            names = tuple(str(n) for n in leads)
            if len(names) != x.shape[1]:
                raise ValueError(
                    f"leads: {len(names)} names {list(names)} for {x.shape[1]} signal column(s)"
                )
    source = record_name or "signal"
    fs = check_processing_fs(float(fs), source=source)
    choice = choose_model(names, model=model, lead=lead, source=source)
    log.info("%s: %s", source, choice.note)
    clf = _onnx_classifier(str(choice.spec.onnx_path))
    cols = list(choice.columns)
    sub = np.asarray(x, dtype=np.float64)[:, cols]
    used_flags = tuple(f for f in flags if f.split(":")[0] in choice.leads_used)
    if not np.all(np.isfinite(sub)):
        from heartline.signal.preprocess import impute_gaps

        if not np.isfinite(sub).any(axis=0).all():
            sub = np.zeros_like(sub)  # an all-NaN lead holds no beat; classify nothing
        else:
            log.warning("%s holds NaN samples; interpolating them before classification", source)
            sub = impute_gaps(sub, fs=fs).signal
    pipe = BeatPipeline(fs=fs, lead_names=choice.leads_used, model=clf)
    step = max(1, round(fs))
    beats = []
    total = sub.shape[0]
    kept: list[BeatBatch] = []

    def run(batch: BeatBatch) -> None:
        if len(batch):
            beats.extend(pipe.complete(batch, classify_batches(clf, [batch])[0]))
            if explain:
                kept.append(batch)

    for start in range(0, total, step):
        run(pipe.prepare(sub[start : start + step]))
        if progress is not None:
            progress(min(total, start + step), total)
    run(pipe.flush_prepare())
    res = ClassifiedBeats.from_beats(beats, classes=pipe.classes, fs=fs)
    labels, proba, note = res.labels, res.probabilities, choice.note
    if af_gate:
        labels, proba, note = _af_gated(sub[:, 0], fs, res, note)
    attributions = window_t_s = None
    if explain:
        attributions, window_t_s = _explain_batches(clf, kept, pipe)
    return BeatTable(
        sample_idx=res.sample_idx,
        labels=labels,
        probabilities=proba,
        quality_ok=res.quality_ok,
        classes=tuple(res.classes),
        fs=fs,
        model_id=choice.spec.name,
        leads_used=choice.leads_used,
        note=note,
        record=record_name,
        flags=used_flags,
        attributions=attributions,
        window_t_s=window_t_s,
    )


def _af_gated(lead: np.ndarray, fs: float, res: Any, note: str) -> tuple[Any, Any, str]:
    """Labels, probabilities and note of ``res`` with the AF gate applied (see :func:`classify`)."""
    from heartline.edge.af_gate import apply_af_gate, beat_rhythm_verdicts

    verdicts = beat_rhythm_verdicts(lead, fs=fs, beat_idx=res.sample_idx)
    classes = tuple(res.classes)
    labels = apply_af_gate(res.labels, verdicts.af_mask, classes=classes)
    proba = apply_af_gate(res.probabilities, verdicts.af_mask, classes=classes).astype(
        np.asarray(res.probabilities).dtype
    )
    n = int(np.sum(np.asarray(labels) != np.asarray(res.labels)))
    return labels, proba, f"{note}; AF gate: {n} S call(s) in atrial fibrillation reported as N"


def _explain_batches(clf: Any, batches: Sequence[Any], pipe: Any) -> tuple[np.ndarray, np.ndarray]:
    """Occlusion attributions ``(n, n_leads, window_len)`` of every beat of ``batches`` (the
    pipeline's own model inputs) and the window's sample times relative to the R peak (s)."""
    from heartline.edge.occlusion import explain_beats

    t_s = -pipe.pre_s + np.arange(clf.window_len) * (pipe.pre_s + pipe.post_s) / clf.window_len
    if not batches:
        return np.zeros((0, clf.n_leads, clf.window_len), np.float32), t_s
    classes = tuple(clf.classes) or tuple(pipe.classes)
    parts = [
        explain_beats(clf.path, b.windows, b.rr, classes=classes, session=clf.session).attributions
        for b in batches
    ]
    return np.concatenate(parts).astype(np.float32), t_s


def classify_record(
    path: str | os.PathLike[str],
    *,
    fs: float | None = None,
    lead: str | None = None,
    model: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    explain: bool = False,
    af_gate: bool = False,
) -> BeatTable:
    """:func:`read_record` then :func:`classify` (``fs`` needed for CSV only)."""
    rec = read_record(path, fs=fs)
    return classify(
        rec, lead=lead, model=model, progress=progress, explain=explain, af_gate=af_gate
    )
