"""Evaluation protocols as code: inter-patient, intra-patient (leaky) and record-grouped 10-fold CV.

Why this file is long (about 830 lines): every evaluation protocol (inter-patient, intra-patient,
cv10) as code, with the one data object they share; keeping them together keeps the splits
side by side where a reader can check that no patient crosses one.

Every protocol is a function that builds the beat sets it needs and hands a model *only* its
training and validation beats; test beats are predicted once, after training.

* ``"inter-patient"`` (de Chazal et al. 2004): train on DS1 minus the validation records
  (:func:`heartline.data.splits.validation_records`), early stopping and model selection on the
  DS1 validation records, test once on DS2. Paced records are excluded. The honest protocol.
* ``"intra-patient"``: the random 80/10/10 *beat* split that most published papers use
  (:func:`heartline.data.splits.intra_patient_split`) over all 44 non-paced records. The same
  patients are in training and test, so the scores are optimistic; every output carries
  :data:`LEAKY_LABEL`. Beats keep their neighbours as (unlabelled) context: the training set is
  every beat with the labels of validation and test beats hidden (``-1``), so the causal context
  of sequence models is the real previous beats.
* ``"cv10"``: 10-fold cross-validation grouped by record over DS1 + DS2
  (:func:`heartline.data.splits.grouped_kfold_records`); inside each fold a few training records
  are held out for early stopping. Per-fold metrics feed paired tests between the hybrid and each
  baseline (:func:`compare_folds`).

R-peaks. Models are always *trained* on beats at the annotated R-peaks. The test beats are either
the annotated ones (``rpeaks="annotated"``) or the heartline detector's own R-peaks matched to the
annotations within 150 ms (``rpeaks="detected"``, the realistic case): a false detection (label
``-1``) counts as an EC57 false positive of whatever class it is given, and a missed reference
beat counts as an error of its class (it is scored as predicted ``Q``, "not classified": a missed
V beat is a VEB false negative, a missed N beat lowers accuracy and creates no S/V false positive;
``Q``'s own row of metrics is meaningless there and is reported as such).

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
Luz EJS, Schwartz WR, Cámara-Chávez G, Menotti D. ECG-based heartbeat classification for
arrhythmia detection: a survey. Comput Methods Programs Biomed 127:144-164 (2016) (on the
intra-patient bias).
Dietterich TG. Approximate statistical tests for comparing supervised classification learning
algorithms. Neural Comput 10(7):1895-1923 (1998).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet
from heartline.models.base import BeatClassifier
from heartline.training.metrics import ClassificationMetrics, evaluate_predictions

__all__ = [
    "LEAKY_LABEL",
    "PROTOCOLS",
    "RPEAK_SOURCES",
    "AlwaysNormal",
    "FoldResult",
    "ProtocolData",
    "ProtocolResult",
    "Split",
    "build_split",
    "compare_folds",
    "cv10_splits",
    "inter_patient_split",
    "intra_patient_beat_split",
    "missed_beats",
    "run_cv10",
    "run_protocol",
    "score_split",
]

logger = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("inter-patient", "intra-patient", "cv10")
RPEAK_SOURCES: tuple[str, ...] = ("annotated", "detected")
#: Label attached to every intra-patient output.
LEAKY_LABEL = "leaky: same patients in train and test"
#: Class index under which missed reference beats are scored (see the module docstring).
MISSED_AS = AAMI_CLASSES.index("Q")
#: Records used by quick/smoke runs (chosen to hold N, S and V beats; no DS2 record in training).
QUICK_RECORDS: dict[str, tuple[str, ...]] = {
    "train": ("106", "118", "209"),
    "val": ("223",),
    "test": ("100", "232"),
}

ModelFactory = Callable[[], BeatClassifier]


def _check_choice(value: str, valid: Sequence[str], name: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


# --------------------------------------------------------------------------- naive model
class AlwaysNormal:
    """The naive baseline: every beat is N (probability 1). Shows what accuracy alone hides."""

    name = "always_n"

    def fit(
        self, train: BeatSet, val: BeatSet, *, run_dir: Path | None = None, seed: int = 0
    ) -> None:
        """Nothing to learn."""

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        out = np.zeros((len(beats), len(AAMI_CLASSES)))
        out[:, AAMI_CLASSES.index("N")] = 1.0
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.json").write_text('{"name": "always_n"}\n', encoding="utf-8")


# --------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class ProtocolData:
    """How beat sets are built for a protocol (keywords of ``build_beat_set``) and which records.

    ``train_records`` / ``val_records`` / ``test_records`` override the protocol's records (small
    subsets for tests and ``--quick`` runs); they must still be disjoint. ``template_features``
    appends the template columns to ``rr`` (models with ``template_features = true``).
    """

    data_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    leads: tuple[int, ...] = (0, 1)
    window_len: int = 128
    validation_seed: int | None = None
    train_records: tuple[str, ...] | None = None
    val_records: tuple[str, ...] | None = None
    test_records: tuple[str, ...] | None = None
    template_features: bool = False

    def build(self, records: Sequence[str], *, rpeaks: str = "annotated") -> BeatSet:
        from heartline.data.beat_dataset import build_beat_set

        kw: dict[str, Any] = {
            "leads": self.leads,
            "window_len": self.window_len,
            "rpeaks": rpeaks,
            "progress": False,
        }
        if self.template_features:
            kw["template_features"] = True
        if self.data_dir is not None:
            kw["data_dir"] = self.data_dir
        if self.cache_dir is not None:
            kw["cache_dir"] = self.cache_dir
        return build_beat_set(list(records), **kw)

    @property
    def rr_columns(self) -> tuple[str, ...]:
        """Names of the ``rr`` columns that :meth:`build` gives, in order.

        The RR features, then the template columns when ``template_features`` is set.

        >>> len(ProtocolData().rr_columns), ProtocolData(template_features=True).rr_columns[-1]
        (13, 'tpl_fill')
        """
        from heartline.signal.segmentation import RR_FEATURE_NAMES
        from heartline.signal.templates import template_feature_names

        if not self.template_features:
            return RR_FEATURE_NAMES
        return RR_FEATURE_NAMES + template_feature_names(len(self.leads))

    def describe_inputs(self) -> str:
        """The ``rr`` columns in words, for reports.

        >>> ProtocolData().describe_inputs()
        '13 RR columns'
        >>> ProtocolData(template_features=True).describe_inputs()
        '13 RR columns + 19 template columns'
        """
        from heartline.signal.segmentation import RR_FEATURE_NAMES

        n_rr = len(RR_FEATURE_NAMES)
        n_tpl = len(self.rr_columns) - n_rr
        return f"{n_rr} RR columns" + (f" + {n_tpl} template columns" if n_tpl else "")

    def for_model(self, model: Any) -> ProtocolData:
        """These settings with the template columns when ``model`` reads them.

        ``model`` is a network (``template_features`` attribute, or an RR input wider than
        the 13 RR columns, as the baselines and the ensemble of ``heartline bench models`` with
        template columns have), a classifier holding one in ``.net``, an ONNX classifier whose
        RR input is that wide, or a classical classifier whose ``feature_names`` hold template
        columns.
        """
        from heartline.signal.segmentation import RR_FEATURE_NAMES
        from heartline.signal.templates import template_feature_names

        net = getattr(model, "net", model)
        n_rr = max(int(getattr(m, "n_rr", 0) or 0) for m in (model, net))
        names = set(getattr(model, "feature_names", ()) or ())
        wants = (
            bool(getattr(net, "template_features", False))
            or n_rr > len(RR_FEATURE_NAMES)
            or bool(names & set(template_feature_names(len(self.leads))))
        )
        if wants and not self.template_features:
            return dataclasses.replace(self, template_features=True)
        return self

    @classmethod
    def quick(cls, **kw: Any) -> ProtocolData:
        """A few records (3 train, 1 validation from DS1; 2 test from DS2) for smoke runs."""
        return cls(
            train_records=QUICK_RECORDS["train"],
            val_records=QUICK_RECORDS["val"],
            test_records=QUICK_RECORDS["test"],
            **kw,
        )


@dataclass(frozen=True)
class Split:
    """One train / validation / test split of a protocol.

    Attributes
    ----------
    protocol : str
    train, val : BeatSet
        What ``fit`` receives (annotated R-peaks).
    test : BeatSet
        Beats that are predicted after training.
    test_mask : numpy.ndarray or None
        Boolean mask of the test beats that are scored (intra-patient: the test beats inside the
        full record sequences, which are predicted with their real context); ``None``: all.
    missed_labels, missed_records : numpy.ndarray
        Reference beats the detector missed (``rpeaks="detected"``), scored as errors.
    leaky : bool
        True for the intra-patient split.
    rpeaks : str
        Source of the test R-peaks.
    """

    protocol: str
    train: BeatSet
    val: BeatSet
    test: BeatSet
    train_records: tuple[str, ...]
    val_records: tuple[str, ...]
    test_records: tuple[str, ...]
    rpeaks: str = "annotated"
    test_mask: np.ndarray | None = None
    missed_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    missed_records: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    leaky: bool = False
    fold: int | None = None

    @property
    def label(self) -> str:
        return LEAKY_LABEL if self.leaky else "honest: test patients unseen in training"


def missed_beats(
    detected: BeatSet, annotated: BeatSet, *, tolerance_s: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and records of reference beats with no detection within ``tolerance_s``.

    Repeats the one-to-one matching of ``build_beat_set(rpeaks="detected")``
    (:func:`heartline.data.beat_dataset.match_detections`) record by record.
    """
    from heartline.data.beat_dataset import match_detections

    tol = round(tolerance_s * annotated.fs)
    labels, records = [], []
    for rec in annotated.records:
        ref = annotated.sample_idx[annotated.record == rec]
        det = detected.sample_idx[detected.record == rec]
        m = match_detections(det, ref, tolerance=tol)
        hit = np.zeros(ref.size, dtype=bool)
        hit[m.ref_index[m.ref_index >= 0]] = True
        lab = annotated.labels[annotated.record == rec][~hit]
        labels.append(lab)
        records.append(np.full(lab.size, rec))
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, str)
    return np.concatenate(labels).astype(np.int64), np.concatenate(records)


def _test_set(
    data: ProtocolData, records: Sequence[str], rpeaks: str
) -> tuple[BeatSet, np.ndarray, np.ndarray]:
    annotated = data.build(records)
    if rpeaks == "annotated":
        return annotated, np.zeros(0, np.int64), np.zeros(0, str)
    detected = data.build(records, rpeaks="detected")
    missed, missed_rec = missed_beats(detected, annotated)
    return detected, missed, missed_rec


def _disjoint(**groups: Sequence[str]) -> None:
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = set(groups[a]) & set(groups[b])
            if both:
                raise ValueError(f"{a} and {b} share records {sorted(both)}")


def inter_patient_split(data: ProtocolData | None = None, *, rpeaks: str = "annotated") -> Split:
    """Train DS1 minus validation records, validate on the DS1 validation records, test DS2.

    Record overrides in ``data`` may only narrow these sets: training and validation records
    must come from DS1 and test records from DS2, otherwise ``ValueError``.
    """
    from heartline.data.splits import DS1, DS2, validation_records

    data = data or ProtocolData()
    _check_choice(rpeaks, RPEAK_SOURCES, "rpeaks")
    tr_default, va_default = validation_records(seed=data.validation_seed)
    tr = tuple(data.train_records or tr_default)
    va = tuple(data.val_records or va_default)
    te = tuple(data.test_records or DS2)
    outside = [r for r in tr + va if r not in DS1] + [r for r in te if r not in DS2]
    if outside:
        raise ValueError(
            f"inter-patient: records {outside} are outside their set (train/val in DS1, test in DS2)"
        )
    _disjoint(train=tr, val=va, test=te)
    test, missed, missed_rec = _test_set(data, te, rpeaks)
    return Split(
        "inter-patient",
        data.build(tr),
        data.build(va),
        test,
        tr,
        va,
        te,
        rpeaks=rpeaks,
        missed_labels=missed,
        missed_records=missed_rec,
    )


def _hide(beats: BeatSet, keep: np.ndarray) -> BeatSet:
    """Same beats, labels kept only where ``keep`` (others become -1: context, no loss)."""
    import dataclasses

    return dataclasses.replace(beats, labels=np.where(keep, beats.labels, -1))


def intra_patient_beat_split(
    data: ProtocolData | None = None, *, rpeaks: str = "annotated", seed: int = 0
) -> Split:
    """The papers' random 80/10/10 beat split over all non-paced records (leaky).

    Training, validation and test sets are the whole record sequences with the labels of the
    other parts hidden (``-1``), so that sequence models see each beat's real previous beats.
    With ``rpeaks="detected"`` the test beats are the detections whose matched reference beat is
    a test beat, plus the false detections and missed beats falling among the test beats' records
    in the same proportion (a random 10 % of them, same seed).
    """
    from heartline.data.splits import DS1, DS2, intra_patient_split

    data = data or ProtocolData()
    _check_choice(rpeaks, RPEAK_SOURCES, "rpeaks")
    records = tuple(
        r for r in (data.train_records or ()) + (data.val_records or ()) + (data.test_records or ())
    ) or tuple(DS1 + DS2)
    beats = data.build(records)
    s = intra_patient_split(len(beats), seed=seed)
    masks = {}
    for name, idx in (("train", s.train_idx), ("val", s.val_idx), ("test", s.test_idx)):
        m = np.zeros(len(beats), dtype=bool)
        m[idx] = True
        masks[name] = m
    train, val = _hide(beats, masks["train"]), _hide(beats, masks["val"])
    missed = np.zeros(0, np.int64)
    missed_rec = np.zeros(0, str)
    if rpeaks == "annotated":
        test, mask = beats, masks["test"]
    else:
        from heartline.data.beat_dataset import match_detections

        test = data.build(records, rpeaks="detected")
        mask = np.zeros(len(test), dtype=bool)
        rng = np.random.default_rng(seed + 1)
        tol = round(0.15 * beats.fs)
        missed_l, missed_r = [], []
        for rec in beats.records:
            in_a = np.flatnonzero(beats.record == rec)
            in_d = np.flatnonzero(test.record == rec)
            m = match_detections(test.sample_idx[in_d], beats.sample_idx[in_a], tolerance=tol)
            matched = m.ref_index >= 0
            is_test_ref = masks["test"][in_a]
            mask[in_d[matched]] = is_test_ref[m.ref_index[matched]]
            mask[in_d[~matched]] = rng.random(int((~matched).sum())) < 0.1
            hit = np.zeros(in_a.size, dtype=bool)
            hit[m.ref_index[matched]] = True
            lost = ~hit & is_test_ref
            missed_l.append(beats.labels[in_a][lost])
            missed_r.append(np.full(int(lost.sum()), rec))
        missed = np.concatenate(missed_l).astype(np.int64)
        missed_rec = np.concatenate(missed_r)
    return Split(
        "intra-patient",
        train,
        val,
        test,
        records,
        records,
        records,
        rpeaks=rpeaks,
        test_mask=mask,
        missed_labels=missed,
        missed_records=missed_rec,
        leaky=True,
    )


def cv10_splits(
    data: ProtocolData | None = None,
    *,
    rpeaks: str = "annotated",
    n_folds: int = 10,
    seed: int = 0,
    val_fraction: float = 0.15,
) -> list[Split]:
    """Record-grouped ``n_folds``-fold CV over DS1 + DS2 (or the records given in ``data``).

    In each fold the test records are one fold; ``val_fraction`` of the remaining records (at
    least one, seeded) are held out for early stopping; the rest train.
    """
    from heartline.data.splits import DS1, DS2, grouped_kfold_records

    data = data or ProtocolData()
    _check_choice(rpeaks, RPEAK_SOURCES, "rpeaks")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    records = tuple(
        r for r in (data.train_records or ()) + (data.val_records or ()) + (data.test_records or ())
    ) or tuple(DS1 + DS2)
    if n_folds < 2 or n_folds > len(records):
        raise ValueError(f"n_folds must be in [2, {len(records)}], got {n_folds}")
    rng = np.random.default_rng(seed + 1000)
    everything = data.build(records)
    splits = []
    for i, (rest, test_recs) in enumerate(
        grouped_kfold_records(records, n_folds=n_folds, seed=seed)
    ):
        n_val = max(1, round(val_fraction * len(rest)))
        val_recs = tuple(sorted(rng.choice(rest, size=n_val, replace=False).tolist()))
        train_recs = tuple(r for r in rest if r not in val_recs)
        _disjoint(train=train_recs, val=val_recs, test=test_recs)
        if rpeaks == "annotated":
            test, missed, missed_rec = (
                everything.select_records(test_recs),
                np.zeros(0, np.int64),
                np.zeros(0, str),
            )
        else:
            test, missed, missed_rec = _test_set(data, test_recs, rpeaks)
        splits.append(
            Split(
                "cv10",
                everything.select_records(train_recs),
                everything.select_records(val_recs),
                test,
                train_recs,
                val_recs,
                tuple(test_recs),
                rpeaks=rpeaks,
                missed_labels=missed,
                missed_records=missed_rec,
                fold=i,
            )
        )
    return splits


def build_split(
    protocol: str, data: ProtocolData | None = None, *, rpeaks: str = "annotated", seed: int = 0
) -> Split:
    """The single split of ``"inter-patient"`` or ``"intra-patient"`` (cv10: :func:`cv10_splits`)."""
    _check_choice(protocol, PROTOCOLS, "protocol")
    if protocol == "inter-patient":
        return inter_patient_split(data, rpeaks=rpeaks)
    if protocol == "intra-patient":
        return intra_patient_beat_split(data, rpeaks=rpeaks, seed=seed)
    raise ValueError("cv10 has several splits: use cv10_splits() or run_cv10()")


# --------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ProtocolResult:
    """A model trained and tested under one split.

    Attributes
    ----------
    metrics : ClassificationMetrics
        On the scored test beats (plus missed beats, see the module docstring).
    y_true, proba, records : numpy.ndarray
        The scored rows (what ``metrics`` was computed from), for plots and per-record tables.
    val_metrics : ClassificationMetrics or None
        On the validation beats (what selection may use).
    """

    protocol: str
    model_name: str
    rpeaks: str
    leaky: bool
    metrics: ClassificationMetrics
    y_true: np.ndarray
    proba: np.ndarray
    records: np.ndarray
    val_metrics: ClassificationMetrics | None
    train_seconds: float
    predict_seconds: float
    n_train_beats: int
    n_val_beats: int
    train_records: tuple[str, ...]
    val_records: tuple[str, ...]
    test_records: tuple[str, ...]
    n_missed: int = 0
    n_false: int = 0
    history: tuple[dict[str, float], ...] = ()
    fold: int | None = None

    @property
    def label(self) -> str:
        return LEAKY_LABEL if self.leaky else "honest: test patients unseen in training"

    def to_dict(self) -> dict[str, Any]:
        """``metrics.json`` content: protocol, model, the metrics and what was trained on what."""
        d: dict[str, Any] = {
            "protocol": self.protocol,
            "protocol_label": self.label,
            "leaky": self.leaky,
            "model": self.model_name,
            "rpeaks": self.rpeaks,
        }
        d.update(self.metrics.to_dict())
        if self.rpeaks == "detected":
            d["n_missed_beats"] = self.n_missed
            d["n_false_detections"] = self.n_false
            d["missed_beats_scored_as"] = "Q (not classified); Q's own metrics are not meaningful"
        d.update(
            {
                "train_seconds": self.train_seconds,
                "predict_seconds": self.predict_seconds,
                "n_train_beats": self.n_train_beats,
                "n_val_beats": self.n_val_beats,
                "train_records": list(self.train_records),
                "val_records": list(self.val_records),
                "test_records": list(self.test_records),
            }
        )
        if self.fold is not None:
            d["fold"] = self.fold
        if self.val_metrics is not None:
            v = self.val_metrics
            d["validation"] = {
                "n_beats": v.n_test_beats,
                "accuracy": v.accuracy,
                "macro_f1": v.macro_f1,
                "ec57": {
                    "sveb": {"se": v.sveb_se, "ppv": v.sveb_ppv},
                    "veb": {"se": v.veb_se, "ppv": v.veb_ppv},
                },
            }
        return d


def _n_labelled(beats: BeatSet) -> int:
    return int(np.count_nonzero(beats.labels >= 0))


def score_split(
    split: Split,
    proba: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[ClassificationMetrics, np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of test probabilities ``(len(split.test), 5)``; missed beats added as errors.

    Returns ``(metrics, y_true, proba, records)`` of the scored rows.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(split.test), len(AAMI_CLASSES)):
        raise ValueError(
            f"proba must have shape ({len(split.test)}, {len(AAMI_CLASSES)}), got {proba.shape}"
        )
    keep = np.ones(len(split.test), bool) if split.test_mask is None else split.test_mask
    y = split.test.labels[keep]
    p = proba[keep]
    rec = split.test.record[keep]
    if split.missed_labels.size:
        miss_p = np.zeros((split.missed_labels.size, len(AAMI_CLASSES)))
        miss_p[:, MISSED_AS] = 1.0
        y = np.concatenate([y, split.missed_labels])
        p = np.concatenate([p, miss_p])
        rec = np.concatenate([rec, split.missed_records])
    m = evaluate_predictions(y, p, records=rec, n_bootstrap=n_bootstrap, seed=seed)
    return m, y, p, rec


def _fit(
    model: BeatClassifier, train: BeatSet, val: BeatSet, run_dir: Path | None, seed: int
) -> float:
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model.fit(train, val, run_dir=run_dir, seed=seed)
    return time.perf_counter() - t0


def _history(model: BeatClassifier) -> tuple[dict[str, float], ...]:
    res = getattr(model, "result", None)
    if res is None or not hasattr(res, "history_dicts"):
        return ()
    return tuple(res.history_dicts())


def evaluate_on_split(
    model: BeatClassifier,
    split: Split,
    *,
    model_name: str,
    train_seconds: float = float("nan"),
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ProtocolResult:
    """Predict the split's test beats with an already trained ``model`` and score them."""
    t0 = time.perf_counter()
    proba = model.predict_proba(split.test)
    predict_s = time.perf_counter() - t0
    m, y, p, rec = score_split(split, proba, n_bootstrap=n_bootstrap, seed=seed)
    val_m = None
    if _n_labelled(split.val):
        vp = model.predict_proba(split.val)
        lab = split.val.labels >= 0
        val_m = evaluate_predictions(
            split.val.labels[lab], vp[lab], records=split.val.record[lab], n_bootstrap=0
        )
    keep = np.ones(len(split.test), bool) if split.test_mask is None else split.test_mask
    return ProtocolResult(
        protocol=split.protocol,
        model_name=model_name,
        rpeaks=split.rpeaks,
        leaky=split.leaky,
        metrics=m,
        y_true=y,
        proba=p,
        records=rec,
        val_metrics=val_m,
        train_seconds=train_seconds,
        predict_seconds=predict_s,
        n_train_beats=_n_labelled(split.train),
        n_val_beats=_n_labelled(split.val),
        train_records=split.train_records,
        val_records=split.val_records,
        test_records=split.test_records,
        n_missed=int(split.missed_labels.size),
        n_false=int(np.count_nonzero(split.test.labels[keep] < 0)),
        history=_history(model),
        fold=split.fold,
    )


def run_protocol(
    model_factory: ModelFactory,
    protocol: str = "inter-patient",
    *,
    model_name: str | None = None,
    data: ProtocolData | None = None,
    rpeaks: Sequence[str] = ("annotated",),
    run_dir: Path | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
) -> tuple[BeatClassifier, dict[str, ProtocolResult]]:
    """Train one fresh model under ``protocol`` (not cv10) and test it with each R-peak source.

    The model is trained once (on annotated beats) and then tested on the annotated and/or
    detected test beats.

    Returns
    -------
    (model, {rpeaks: ProtocolResult})
    """
    _check_choice(protocol, PROTOCOLS[:2], "protocol (cv10: use run_cv10)")
    if not rpeaks:
        raise ValueError("rpeaks must name at least one R-peak source")
    for r in rpeaks:
        _check_choice(r, RPEAK_SOURCES, "rpeaks")
    first = build_split(protocol, data, rpeaks=rpeaks[0], seed=seed)
    model = model_factory()
    name = model_name or getattr(model, "name", type(model).__name__)
    train_s = _fit(model, first.train, first.val, run_dir, seed)
    logger.info("%s (%s): trained in %.1f s", name, protocol, train_s)
    out = {
        rpeaks[0]: evaluate_on_split(
            model, first, model_name=name, train_seconds=train_s, n_bootstrap=n_bootstrap, seed=seed
        )
    }
    for r in rpeaks[1:]:
        split = build_split(protocol, data, rpeaks=r, seed=seed)
        out[r] = evaluate_on_split(
            model, split, model_name=name, train_seconds=train_s, n_bootstrap=n_bootstrap, seed=seed
        )
    return model, out


# --------------------------------------------------------------------------- cv10
@dataclass(frozen=True)
class FoldResult:
    """Per-fold scores of one model: macro-F1, SVEB F1 and VEB F1 (EC57 gross, per fold)."""

    model_name: str
    folds: tuple[ProtocolResult, ...]

    def scores(self, metric: str) -> np.ndarray:
        return np.array([_fold_score(f.metrics, metric) for f in self.folds])


CV_METRICS: tuple[str, ...] = ("macro_f1", "sveb_f1", "veb_f1")


def _f1(se: float, ppv: float) -> float:
    if not (np.isfinite(se) and np.isfinite(ppv)) or se + ppv == 0:
        return 0.0 if np.isfinite(se) or np.isfinite(ppv) else float("nan")
    return 2 * se * ppv / (se + ppv)


def _fold_score(m: ClassificationMetrics, metric: str) -> float:
    if metric == "macro_f1":
        return m.macro_f1
    if metric == "sveb_f1":
        return _f1(m.sveb_se, m.sveb_ppv)
    if metric == "veb_f1":
        return _f1(m.veb_se, m.veb_ppv)
    raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(CV_METRICS)}")


def run_cv10(
    model_factories: dict[str, ModelFactory],
    *,
    data: ProtocolData | None = None,
    rpeaks: str = "annotated",
    n_folds: int = 10,
    seed: int = 0,
    n_bootstrap: int = 0,
    splits: list[Split] | None = None,
) -> dict[str, FoldResult]:
    """Train and test every model on every fold (same folds for all models)."""
    splits = (
        splits
        if splits is not None
        else cv10_splits(data, rpeaks=rpeaks, n_folds=n_folds, seed=seed)
    )
    out: dict[str, FoldResult] = {}
    for name, factory in model_factories.items():
        folds = []
        for split in splits:
            model = factory()
            t = _fit(model, split.train, split.val, None, seed)
            folds.append(
                evaluate_on_split(
                    model,
                    split,
                    model_name=name,
                    train_seconds=t,
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                )
            )
            logger.info(
                "cv10 %s fold %d: macro-F1 %.3f", name, split.fold, folds[-1].metrics.macro_f1
            )
        out[name] = FoldResult(name, tuple(folds))
    return out


def compare_folds(results: dict[str, FoldResult], *, reference: str = "hybrid") -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test, ``reference`` vs each other model, per metric.

    Folds share training data, so the t-test is optimistic (Dietterich 1998); the Wilcoxon test
    makes no normality assumption. Folds where either score is undefined are dropped.
    """
    from heartline.training.stats import paired_t_test, wilcoxon_signed_rank

    if reference not in results:
        raise ValueError(f"reference {reference!r} not among the models {sorted(results)}")
    out: dict[str, Any] = {"reference": reference, "metrics": list(CV_METRICS), "comparisons": {}}
    for name, res in results.items():
        if name == reference:
            continue
        comp = {}
        for metric in CV_METRICS:
            a, b = results[reference].scores(metric), res.scores(metric)
            ok = np.isfinite(a) & np.isfinite(b)
            entry: dict[str, Any] = {
                "n_folds": int(ok.sum()),
                "reference_mean": float(np.mean(a[ok])) if ok.any() else None,
                "other_mean": float(np.mean(b[ok])) if ok.any() else None,
            }
            for test_name, fn in (("t_test", paired_t_test), ("wilcoxon", wilcoxon_signed_rank)):
                try:
                    r = fn(a[ok], b[ok])
                    entry[test_name] = _stat_dict(r)
                except ValueError as exc:
                    entry[test_name] = {"error": str(exc)}
            comp[metric] = entry
        out["comparisons"][name] = comp
    return out


def _stat_dict(r: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(r):
        return {
            k: (float(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in dataclasses.asdict(r).items()
        }
    if isinstance(r, dict):
        return r
    return {"value": r}
