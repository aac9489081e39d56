"""Leave-one-patient-out (LOPO) selection on DS1 for the inter-patient beat classifier.

Every candidate is trained 22 times, each time on 21 DS1 patients, and predicts the 22nd
(:func:`heartline.data.splits.lopo_folds`); the out-of-fold (OOF) predictions of all DS1 beats
are then scored per patient and pooled. DS2 is never read here.

Why per patient: MIT-BIH's SVEB beats sit in a few records (in DS1, 209 and 232's DS2
counterpart dominate), so a pooled SVEB F1 mostly measures one or two patients. The selection
criterion (:data:`CRITERION`, fixed before any candidate was run) therefore averages

* the pooled EC57 gross SVEB F1 over all 22 OOF patients,
* the mean per-patient SVEB F1 over the DS1 patients with at least :data:`MIN_SVEB_BEATS`
  SVEB beats (each patient counts once, whatever their beat count), and
* the pooled EC57 gross VEB F1 (so that SVEB is not bought with VEB).

Candidates are compared by a paired record bootstrap (:func:`paired_lopo_bootstrap`): patients
are drawn with replacement and both candidates are scored on the same draw.

The candidate models (:class:`PrematurityClassifier`) are small scikit-learn models on
:func:`heartline.features.prematurity.prematurity_features`: a linear discriminant with equal
class priors (de Chazal et al. 2004), a class-balanced multinomial logistic regression,
histogram gradient boosting, and the mean of the discriminant's and the boosting's
probabilities.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet
from heartline.features.prematurity import FEATURE_SETS, prematurity_features
from heartline.training.classical import balanced_weights
from heartline.training.metrics import ec57_counts, metrics_from_confusion

__all__ = [
    "CRITERION",
    "MIN_SVEB_BEATS",
    "PREMATURITY_ESTIMATORS",
    "TRAIN_PEAKS",
    "LopoScore",
    "PrematurityClassifier",
    "export_linear_onnx",
    "lopo_oof",
    "paired_lopo_bootstrap",
    "peak_source_beats",
    "record_confusions",
    "score_lopo",
]

logger = logging.getLogger(__name__)

#: A DS1 patient enters the per-patient SVEB mean when they have at least this many SVEB beats.
MIN_SVEB_BEATS = 5
CRITERION = (
    "mean of (pooled EC57 SVEB F1, mean per-patient SVEB F1 over DS1 patients with >= "
    f"{MIN_SVEB_BEATS} SVEB beats, pooled EC57 VEB F1), leave-one-patient-out over DS1"
)
PREMATURITY_ESTIMATORS: tuple[str, ...] = ("lda", "logreg", "hgb", "lda+hgb")
_TRAIN_CLASSES: tuple[str, ...] = ("N", "S", "V", "F")
_MODEL_FILE = "model.joblib"
_CONFIG_FILE = "config.json"


def _f1(tp: int, fn: int, fp: int) -> float:
    den = 2 * tp + fn + fp
    return 2 * tp / den if den > 0 else float("nan")


# --------------------------------------------------------------------------- the model
class PrematurityClassifier:
    """A small scikit-learn beat classifier on prematurity and QRS-sample features.

    Parameters
    ----------
    estimator : str
        One of :data:`PREMATURITY_ESTIMATORS`: ``"lda"`` (linear discriminant, equal priors, as
        de Chazal et al. 2004), ``"logreg"`` (multinomial logistic regression, balanced class
        weights), ``"hgb"`` (histogram gradient boosting, balanced sample weights) or
        ``"lda+hgb"`` (mean of the two models' probabilities).
    feature_set : str
        A key of :data:`heartline.features.prematurity.FEATURE_SETS`.
    leads : tuple of int
        Beat-window channels whose samples are features.
    hgb_iter, hgb_leaves : int
        Boosting iterations and leaves per tree (``hgb`` only).

    Trained on N, S, V and F beats (Q: 8 beats in DS1); Q's probability is 0. Non-finite feature
    values (records of fewer than two beats) are imputed with the training medians.
    """

    name: ClassVar[str] = "prematurity"

    def __init__(
        self,
        *,
        estimator: str = "lda",
        feature_set: str = "ratios",
        leads: tuple[int, ...] = (0,),
        hgb_iter: int = 100,
        hgb_leaves: int = 15,
    ) -> None:
        if estimator not in PREMATURITY_ESTIMATORS:
            raise ValueError(
                f"unknown estimator {estimator!r}; valid: {', '.join(PREMATURITY_ESTIMATORS)}"
            )
        if feature_set not in FEATURE_SETS:
            raise ValueError(
                f"unknown feature_set {feature_set!r}; valid: {', '.join(FEATURE_SETS)}"
            )
        if not leads:
            raise ValueError("leads must name at least one window channel")
        if int(hgb_iter) < 1 or int(hgb_leaves) < 2:
            raise ValueError(
                f"hgb_iter must be >= 1 and hgb_leaves >= 2, got {hgb_iter}, {hgb_leaves}"
            )
        self.estimator = estimator
        self.feature_set = feature_set
        self.leads = tuple(int(x) for x in leads)
        self.hgb_iter, self.hgb_leaves = int(hgb_iter), int(hgb_leaves)
        self.feature_names: tuple[str, ...] = ()
        self.fit_seconds = float("nan")
        self._pre: Any = None
        self._models: list[Any] = []
        self._classes: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        """Constructor keywords (JSON-ready)."""
        return {
            "estimator": self.estimator,
            "feature_set": self.feature_set,
            "leads": list(self.leads),
            "hgb_iter": self.hgb_iter,
            "hgb_leaves": self.hgb_leaves,
        }

    def features(self, beats: BeatSet) -> tuple[np.ndarray, tuple[str, ...]]:
        """The model's feature matrix for ``beats`` (float64) and its column names."""
        f = prematurity_features(beats, feature_set=self.feature_set, leads=self.leads)
        if self.feature_names and f.names != self.feature_names:
            raise ValueError(
                f"beats give features {len(f.names)} columns wide, the model was trained on "
                f"{len(self.feature_names)}: same leads and beat-set columns needed"
            )
        return f.values.astype(np.float64), f.names

    def _estimators(self, seed: int, n_classes: int) -> list[Any]:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        lda = LinearDiscriminantAnalysis(priors=np.full(n_classes, 1.0 / n_classes))
        hgb = HistGradientBoostingClassifier(
            max_iter=self.hgb_iter,
            learning_rate=0.1,
            max_leaf_nodes=self.hgb_leaves,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        if self.estimator == "lda":
            return [lda]
        if self.estimator == "logreg":
            return [LogisticRegression(class_weight="balanced", max_iter=1000, C=1.0)]
        if self.estimator == "hgb":
            return [hgb]
        return [lda, hgb]

    def fit(
        self,
        train: BeatSet,
        val: BeatSet | None = None,
        *,
        run_dir: Path | None = None,
        seed: int = 0,
    ) -> None:
        """Fit on the labelled N/S/V/F beats of ``train`` (``val`` is not used: no early stopping)."""
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        t0 = time.perf_counter()
        keep = np.isin(train.labels, [AAMI_CLASSES.index(c) for c in _TRAIN_CLASSES])
        tr = train.subset(keep)
        if np.unique(tr.labels).size < 2:
            raise ValueError("train needs labelled beats of at least two of N, S, V, F")
        self.feature_names = ()
        x, names = self.features(tr)
        x[~np.isfinite(x)] = np.nan
        y = tr.labels
        self._pre = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        xs = self._pre.fit_transform(x)
        self._models = self._estimators(seed, int(np.unique(y).size))
        for est in self._models:
            if type(est).__name__ == "HistGradientBoostingClassifier":
                est.fit(xs, y, sample_weight=balanced_weights(y))
            else:
                est.fit(xs, y)
        self._classes = np.asarray(self._models[0].classes_)
        self.feature_names = names
        self.fit_seconds = time.perf_counter() - t0
        if run_dir is not None:
            self.save(Path(run_dir) / "model")

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        """Probabilities ``(len(beats), 5)`` in :data:`AAMI_CLASSES` order (Q column 0)."""
        if not self._models or self._classes is None:
            raise RuntimeError("PrematurityClassifier is not fitted: call fit() or load() first")
        out = np.zeros((len(beats), len(AAMI_CLASSES)))
        if len(beats) == 0:
            return out
        x, _ = self.features(beats)
        x[~np.isfinite(x)] = np.nan
        xs = self._pre.transform(x)
        p = np.mean([np.asarray(m.predict_proba(xs)) for m in self._models], axis=0)
        out[:, self._classes] = p
        out /= out.sum(axis=1, keepdims=True)
        return out

    def save(self, path: Path) -> None:
        """Write ``model.joblib`` (preprocessing + estimators) and ``config.json`` into ``path``."""
        import joblib
        import sklearn

        if not self._models:
            raise RuntimeError("PrematurityClassifier is not fitted: nothing to save")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"pre": self._pre, "models": self._models, "classes": self._classes},
            path / _MODEL_FILE,
        )
        config = {
            "model": self.name,
            "params": self.params(),
            "feature_names": list(self.feature_names),
            "classes": list(AAMI_CLASSES),
            "fit_seconds": self.fit_seconds,
            "sklearn_version": sklearn.__version__,
        }
        (path / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> PrematurityClassifier:
        """Restore a model written by :meth:`save` (a trusted file: joblib unpickles code)."""
        import joblib

        path = Path(path)
        config = json.loads((path / _CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("model") != cls.name:
            raise ValueError(f"{path} holds model {config.get('model')!r}, not {cls.name!r}")
        p = dict(config["params"])
        p["leads"] = tuple(p["leads"])
        model = cls(**p)
        blob = joblib.load(path / _MODEL_FILE)
        model._pre, model._models, model._classes = (
            blob["pre"],
            list(blob["models"]),
            np.asarray(blob["classes"]),
        )
        model.feature_names = tuple(config["feature_names"])
        model.fit_seconds = float(config.get("fit_seconds", float("nan")))
        return model


# --------------------------------------------------------------------------- R-peak sources
#: Where the training beats' R-peaks come from: the reference annotations, the heartline
#: detector (each detection labelled by the annotation it matches within 150 ms; unmatched ones
#: are not trained on), or both (every beat twice, once per R-peak position: the model sees
#: the detector's offset as well as the annotator's peak).
TRAIN_PEAKS: tuple[str, ...] = ("annotated", "detected", "annotated+detected")


def peak_source_beats(
    sources: Mapping[str, BeatSet], train_peaks: str, records: Sequence[str]
) -> BeatSet:
    """The training beats of ``records`` for ``train_peaks`` (one of :data:`TRAIN_PEAKS`).

    ``sources`` maps ``"annotated"`` / ``"detected"`` to beat sets of the same records (built
    by :meth:`heartline.training.protocols.ProtocolData.build` with ``rpeaks=``). With both, the
    detected copy of record ``r`` is renamed ``r@detected`` so that each copy stays a contiguous
    record of its own (RR features are computed per record).

    Raises
    ------
    ValueError
        Unknown ``train_peaks`` or a source it names is missing.
    """
    from heartline.data.beat_set import concat_beat_sets

    if train_peaks not in TRAIN_PEAKS:
        raise ValueError(f"unknown train_peaks {train_peaks!r}; valid: {', '.join(TRAIN_PEAKS)}")
    names = train_peaks.split("+")
    missing = [n for n in names if n not in sources]
    if missing:
        raise ValueError(f"train_peaks {train_peaks!r} needs beat sets {missing}")
    parts = []
    for k, name in enumerate(names):
        b = sources[name].select_records(list(records))
        if k:
            b = dataclasses.replace(b, record=np.char.add(b.record.astype(str), f"@{name}"))
        parts.append(b)
    return parts[0] if len(parts) == 1 else concat_beat_sets(parts)


# --------------------------------------------------------------------------- LOPO
def lopo_oof(
    beats: BeatSet,
    factory: Callable[[], Any],
    *,
    records: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    train_beats: Callable[[Sequence[str]], BeatSet] | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities ``(len(beats), 5)``: each record predicted by a model trained
    on all the other ``records`` (default: every record of ``beats``).

    Beats of records outside ``records`` are neither trained on nor predicted (rows of NaN).
    ``train_beats(train_records)`` gives each fold's training beats (default: those records'
    beats of ``beats``); :func:`peak_source_beats` trains on another R-peak source than the one
    predicted, e.g. annotated R-peaks for a model scored on detected ones.
    """
    from heartline.data.splits import lopo_folds

    recs = tuple(records) if records is not None else beats.records
    missing = [r for r in recs if r not in set(beats.records)]
    if missing:
        raise ValueError(f"records {missing} have no beats in the beat set")
    out = np.full((len(beats), len(AAMI_CLASSES)), np.nan)
    folds = lopo_folds(recs)
    it: Any = folds
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(folds, desc="LOPO", unit="patient")
    for train_recs, (test_rec,) in it:
        model = factory()
        train = beats.select_records(train_recs) if train_beats is None else train_beats(train_recs)
        model.fit(train, None, seed=seed)
        mask = beats.record == test_rec
        out[mask] = model.predict_proba(beats.subset(mask))
    return out


def record_confusions(beats: BeatSet, proba: np.ndarray, records: Sequence[str]) -> np.ndarray:
    """``(n_records, 5, 5)`` confusion counts (rows: reference) of the labelled beats per record."""
    k = len(AAMI_CLASSES)
    pred = np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1)
    out = np.zeros((len(records), k, k), dtype=np.int64)
    for i, rec in enumerate(records):
        m = (beats.record == rec) & (beats.labels >= 0)
        out[i] = np.bincount(beats.labels[m] * k + pred[m], minlength=k * k).reshape(k, k)
    return out


@dataclass(frozen=True)
class LopoScore:
    """LOPO figures of one candidate (fractions in [0, 1])."""

    criterion: float
    sveb_f1: float
    sveb_se: float
    sveb_ppv: float
    sveb_f1_per_patient: float
    sveb_se_per_patient: float
    veb_f1: float
    veb_se: float
    veb_ppv: float
    accuracy: float
    macro_f1: float
    per_record: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and np.isnan(v) else v)
            for k, v in self.__dict__.items()
        }


def _score_arrays(conf: np.ndarray, weights: np.ndarray) -> tuple[float, dict[str, float]]:
    s = AAMI_CLASSES.index("S")
    pooled = np.einsum("r,rij->ij", weights, conf)
    ec = ec57_counts(pooled)
    sv, vb = ec["sveb"], ec["veb"]
    sveb_f1 = _f1(sv["tp"], sv["fn"], sv["fp"])
    veb_f1 = _f1(vb["tp"], vb["fn"], vb["fp"])
    n_s = conf[:, s, :].sum(axis=1)
    per_f1, per_se, w = [], [], []
    for i in np.flatnonzero((n_s >= MIN_SVEB_BEATS) & (weights > 0)):
        e = ec57_counts(conf[i])["sveb"]
        per_f1.append(_f1(e["tp"], e["fn"], e["fp"]))
        per_se.append(e["tp"] / max(e["tp"] + e["fn"], 1))
        w.append(weights[i])
    wsum = float(np.sum(w))
    pf1 = float(np.dot(w, per_f1) / wsum) if wsum else float("nan")
    pse = float(np.dot(w, per_se) / wsum) if wsum else float("nan")
    crit = float(np.nanmean([sveb_f1, pf1, veb_f1]))
    m = metrics_from_confusion(pooled)
    return crit, {
        "sveb_f1": sveb_f1,
        "sveb_se": m["sveb_se"],
        "sveb_ppv": m["sveb_ppv"],
        "sveb_f1_per_patient": pf1,
        "sveb_se_per_patient": pse,
        "veb_f1": veb_f1,
        "veb_se": m["veb_se"],
        "veb_ppv": m["veb_ppv"],
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
    }


def score_lopo(conf: np.ndarray, records: Sequence[str]) -> LopoScore:
    """:class:`LopoScore` of per-record confusions ``(n_records, 5, 5)`` (see :data:`CRITERION`).

    >>> c = np.zeros((2, 5, 5), int); c[0, 0, 0] = 90; c[0, 1, 1] = 8; c[0, 1, 0] = 2
    >>> c[1, 0, 0] = 50; c[1, 2, 2] = 10; c[1, 0, 1] = 2
    >>> s = score_lopo(c, ["a", "b"])
    >>> round(s.sveb_f1, 3), round(s.sveb_f1_per_patient, 3), s.veb_f1
    (0.8, 0.889, 1.0)
    """
    conf = np.asarray(conf, dtype=np.int64)
    if conf.shape != (len(records), len(AAMI_CLASSES), len(AAMI_CLASSES)):
        raise ValueError(f"conf must be ({len(records)}, 5, 5), got {conf.shape}")
    crit, d = _score_arrays(conf, np.ones(len(records), dtype=np.int64))
    s = AAMI_CLASSES.index("S")
    per: dict[str, dict[str, float | int]] = {}
    for i, rec in enumerate(records):
        e = ec57_counts(conf[i])
        per[rec] = {
            "n_beats": int(conf[i].sum()),
            "n_sveb": int(conf[i, s].sum()),
            "sveb_tp": e["sveb"]["tp"],
            "sveb_fn": e["sveb"]["fn"],
            "sveb_fp": e["sveb"]["fp"],
            "veb_tp": e["veb"]["tp"],
            "veb_fn": e["veb"]["fn"],
            "veb_fp": e["veb"]["fp"],
        }
    return LopoScore(criterion=crit, per_record=per, **d)


def paired_lopo_bootstrap(
    conf_a: np.ndarray, conf_b: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Criterion of candidate A minus candidate B with a 95 % paired record-bootstrap interval.

    Both ``(n_records, 5, 5)`` arrays hold OOF confusions of the same records in the same order.
    Each draw takes records with replacement and scores both candidates on it.

    Returns
    -------
    tuple of float
        ``(difference, 2.5 % quantile, 97.5 % quantile, fraction of draws where A > B)``.
    """
    conf_a, conf_b = np.asarray(conf_a), np.asarray(conf_b)
    if conf_a.shape != conf_b.shape:
        raise ValueError(f"confusions differ in shape: {conf_a.shape} vs {conf_b.shape}")
    n = conf_a.shape[0]
    ones = np.ones(n, dtype=np.int64)
    point = _score_arrays(conf_a, ones)[0] - _score_arrays(conf_b, ones)[0]
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n)
        boots[i] = _score_arrays(conf_a, w)[0] - _score_arrays(conf_b, w)[0]
    lo, hi = np.nanquantile(boots, [0.025, 0.975])
    return float(point), float(lo), float(hi), float(np.mean(boots > 0))


def run_lopo_selection(
    beats: BeatSet,
    candidates: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    *,
    records: Sequence[str],
    seed: int = 0,
    n_boot: int = 2000,
    controls: Sequence[str] = (),
    peak_sources: Mapping[str, BeatSet] | None = None,
) -> dict[str, Any]:
    """LOPO every candidate (``name -> PrematurityClassifier keywords``), pick the winner by
    :data:`CRITERION`, compare it with each other candidate by :func:`paired_lopo_bootstrap`,
    and write ``selection.json`` and ``selection.md`` into ``out_dir``.

    ``controls`` are scored and compared but cannot win (candidates that break a prior fixed
    in advance, kept to measure what the prior costs or gains on DS1).

    ``beats`` are the beats predicted and scored. A candidate may also name ``"train_peaks"``
    (one of :data:`TRAIN_PEAKS`, not a classifier keyword): its folds then train on
    :func:`peak_source_beats` of ``peak_sources`` instead of on ``beats``.

    OOF probabilities are cached as ``oof_<name>.npz`` in ``out_dir`` keyed by the candidate's
    keywords and the beats (a rerun with the same inputs reuses them).
    """
    import hashlib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = dict(peak_sources or {})
    beats_key = hashlib.sha256(
        beats.labels.tobytes()
        + beats.sample_idx.tobytes()
        + "|".join(records).encode()
        + b"".join(sources[k].sample_idx.tobytes() for k in sorted(sources))
    ).hexdigest()[:16]
    confs: dict[str, np.ndarray] = {}
    scores: dict[str, LopoScore] = {}
    seconds: dict[str, float] = {}
    for name, params in candidates.items():
        clf_params = {k: v for k, v in params.items() if k != "train_peaks"}
        PrematurityClassifier(**clf_params)  # validate before the long part
        train_beats = None
        if "train_peaks" in params:
            tp = str(params["train_peaks"])
            peak_source_beats(sources, tp, records[:1])  # validate the source too
            train_beats = lambda recs, tp=tp: peak_source_beats(sources, tp, recs)  # noqa: E731
        key = hashlib.sha256(
            (json.dumps(dict(params), sort_keys=True) + beats_key + str(seed)).encode()
        ).hexdigest()[:16]
        cache = out / f"oof_{name}.npz"
        proba = None
        if cache.is_file():
            with np.load(cache) as z:
                if str(z["key"]) == key:
                    proba, seconds[name] = z["proba"], float(z["seconds"])
        if proba is None:
            t0 = time.perf_counter()
            logger.info("LOPO %s", name)
            proba = lopo_oof(
                beats,
                lambda p=clf_params: PrematurityClassifier(**p),
                records=records,
                seed=seed,
                train_beats=train_beats,
            )
            seconds[name] = time.perf_counter() - t0
            np.savez_compressed(cache, proba=proba, key=key, seconds=seconds[name])
        confs[name] = record_confusions(beats, proba, records)
        scores[name] = score_lopo(confs[name], records)
        logger.info("%s: criterion %.4f", name, scores[name].criterion)
    unknown = [c for c in controls if c not in candidates]
    if unknown:
        raise ValueError(f"controls {unknown} are not candidates")
    eligible = [n for n in scores if n not in set(controls)]
    if not eligible:
        raise ValueError("every candidate is a control: nothing can win")
    winner = max(eligible, key=lambda n: scores[n].criterion)
    diffs = {
        n: paired_lopo_bootstrap(confs[winner], confs[n], n_boot=n_boot, seed=seed)
        for n in scores
        if n != winner
    }
    result = {
        "protocol": "leave-one-patient-out over DS1 (DS2 not read)",
        "criterion": CRITERION,
        "records": list(records),
        "seed": seed,
        "n_boot": n_boot,
        "controls": list(controls),
        "candidates": {
            n: {"params": dict(candidates[n]), "seconds": seconds[n], **scores[n].to_dict()}
            for n in scores
        },
        "winner": winner,
        "paired_bootstrap_vs_winner": {
            n: {"difference": d[0], "ci95": [d[1], d[2]], "p_winner_better": d[3]}
            for n, d in diffs.items()
        },
    }
    (out / "selection.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "selection.md").write_text(render_lopo_selection(result), encoding="utf-8")
    return result


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def render_lopo_selection(result: Mapping[str, Any]) -> str:
    """Markdown table of :func:`run_lopo_selection`'s result."""
    lines = [
        "# Leave-one-patient-out selection on DS1",
        "",
        f"Criterion: {result['criterion']}. Winner: **{result['winner']}**.",
        "Controls (scored, not eligible): "
        + (", ".join(result.get("controls", [])) or "none")
        + ".",
        "",
        "| candidate | criterion | SVEB F1 | SVEB Se | SVEB +P | per-patient SVEB F1 | "
        "per-patient SVEB Se | VEB F1 | VEB Se | VEB +P | accuracy | macro-F1 | "
        "winner minus it [95 % CI] | s |",
        "|---|" + "---:|" * 13,
    ]
    diffs = result["paired_bootstrap_vs_winner"]
    for name, c in result["candidates"].items():
        d = diffs.get(name)
        ds = (
            "-"
            if d is None
            else f"{100 * d['difference']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
        )
        lines.append(
            f"| {name} | {_pct(c['criterion'])} | {_pct(c['sveb_f1'])} | {_pct(c['sveb_se'])} | "
            f"{_pct(c['sveb_ppv'])} | {_pct(c['sveb_f1_per_patient'])} | "
            f"{_pct(c['sveb_se_per_patient'])} | {_pct(c['veb_f1'])} | {_pct(c['veb_se'])} | "
            f"{_pct(c['veb_ppv'])} | {_pct(c['accuracy'])} | {_pct(c['macro_f1'])} | {ds} | "
            f"{c['seconds']:.0f} |"
        )
    w = result["candidates"][result["winner"]]["per_record"]
    lines += [
        "",
        f"Per patient, winner ({result['winner']}), out of fold:",
        "",
        "| record | beats | SVEB | SVEB TP | SVEB FN | SVEB FP | VEB TP | VEB FN | VEB FP |",
        "|---|" + "---:|" * 8,
    ]
    for rec, e in w.items():
        lines.append(
            f"| {rec} | {e['n_beats']} | {e['n_sveb']} | {e['sveb_tp']} | {e['sveb_fn']} | "
            f"{e['sveb_fp']} | {e['veb_tp']} | {e['veb_fn']} | {e['veb_fp']} |"
        )
    return "\n".join(lines) + "\n"


def export_linear_onnx(model: PrematurityClassifier, path: str | Path) -> Path:
    """Write a fitted ``lda`` or ``logreg`` :class:`PrematurityClassifier` as an ONNX graph.

    Input ``features`` (float32, ``(n, len(model.feature_names))``, the columns of
    :meth:`PrematurityClassifier.features`); output ``proba`` (float32, ``(n, 5)`` in
    :data:`AAMI_CLASSES` order). The graph imputes NaN with the training medians, standardises,
    applies the linear scores and a softmax, as ``predict_proba`` does.

    Raises
    ------
    ValueError
        The model is not fitted, or its estimator is not linear (``hgb``, ``lda+hgb``).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not model._models or model._classes is None:
        raise ValueError("the model is not fitted")
    if model.estimator not in ("lda", "logreg"):
        raise ValueError(f"only linear estimators export to ONNX, not {model.estimator!r}")
    imputer, scaler = model._pre.steps[0][1], model._pre.steps[1][1]
    est = model._models[0]
    coef = np.asarray(est.coef_, dtype=np.float64)
    intercept = np.asarray(est.intercept_, dtype=np.float64)
    if coef.shape[0] != len(model._classes):
        raise ValueError("two-class linear models are not supported")
    select = np.zeros((len(model._classes), len(AAMI_CLASSES)))
    select[np.arange(len(model._classes)), model._classes] = 1.0
    inits = [
        numpy_helper.from_array(np.asarray(a, np.float32), name)
        for name, a in (
            ("median", imputer.statistics_),
            ("mean", scaler.mean_),
            ("scale", scaler.scale_),
            ("w", coef.T),
            ("b", intercept),
            ("select", select),
        )
    ]
    d = len(model.feature_names)
    nodes = [
        helper.make_node("IsNaN", ["features"], ["nan"]),
        helper.make_node("Where", ["nan", "median", "features"], ["filled"]),
        helper.make_node("Sub", ["filled", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["z"]),
        helper.make_node("MatMul", ["z", "w"], ["zw"]),
        helper.make_node("Add", ["zw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["p"], axis=1),
        helper.make_node("MatMul", ["p", "select"], ["proba"]),
    ]
    graph = helper.make_graph(
        nodes,
        "prematurity_linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d])],
        [helper.make_tensor_value_info("proba", TensorProto.FLOAT, ["n", len(AAMI_CLASSES)])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    onnx_model.doc_string = json.dumps(
        {"model": model.name, "params": model.params(), "feature_names": list(model.feature_names)}
    )
    onnx.checker.check_model(onnx_model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, path)
    return path
