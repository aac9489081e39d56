"""Beat-classification metrics: per-class Se/+P/Sp/F1/AUC, kappa, MCC, EC57 gross SVEB/VEB.

Conventions (all values are fractions in [0, 1]; ``nan`` where undefined):

* Labels are indices into :data:`~heartline.data.aami.AAMI_CLASSES` (``N S V F Q``); the
  prediction is the arg-max of the probabilities.
* ``macro_f1`` averages the F1 of **N, S, V and F only**: Q (about 15 beats in the 44
  non-paced MIT-BIH records) is reported per class but left out of the average, as in the
  inter-patient literature (e.g. Mondéjar-Guerra et al. 2019; de Chazal et al. 2004 report Q
  separately). ``accuracy``, ``kappa`` and ``mcc`` use all five classes.
* EC57 gross statistics (ANSI/AAMI EC57:1998/(R)2008, section 4; the counting of the reference
  comparator ``bxb`` of the WFDB software, Moody) pool the beat-by-beat confusion counts over
  all records before dividing (gross, not record-averaged):

  - VEB: ``TP = Vv``; ``FN = Vn + Vs + Vf + Vq``; ``FP = Nv + Sv`` (+ unmatched detections
    labelled v). Fusion and Q beats classified as v are **not** false positives.
  - SVEB: ``TP = Ss``; ``FN = Sn + Sv + Sf + Sq``; ``FP = Ns + Vs + Fs`` (+ unmatched detections
    labelled s). Q beats classified as s are not false positives.

  Upper-case is the reference class, lower-case the algorithm's. Beats with label ``-1``
  (detections matched to no reference beat, bxb's ``O`` row) only enter these FP counts; every
  other metric uses labelled beats. Unlike bxb we do not skip the first 5 minutes of each record
  (de Chazal et al. 2004 and later inter-patient work score every beat).
* 95 % confidence intervals are percentile bootstraps. With ``records`` given, records (patients)
  are resampled with replacement, which respects the correlation of beats within a patient;
  otherwise beats are resampled.

References
----------
ANSI/AAMI EC57:1998/(R)2008. Testing and reporting performance results of cardiac rhythm and ST
segment measurement algorithms. Association for the Advancement of Medical Instrumentation.

de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).

Moody GB. bxb: ANSI/AAMI-standard beat-by-beat annotation comparator. WFDB Software Package,
PhysioNet.

Mondéjar-Guerra V, et al. Heartbeat classification fusing temporal and morphological information
of ECGs via ensemble of classifiers. Biomed Signal Process Control 47:41-48 (2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES

__all__ = [
    "MACRO_CLASSES",
    "ClassMetrics",
    "ClassificationMetrics",
    "ec57_counts",
    "evaluate_predictions",
    "metrics_from_confusion",
]

#: Classes averaged into ``macro_f1`` (Q excluded, see the module docstring).
MACRO_CLASSES: tuple[str, ...] = ("N", "S", "V", "F")

#: Scalars that get bootstrap confidence intervals.
CI_METRICS: tuple[str, ...] = (
    "accuracy",
    "macro_f1",
    "kappa",
    "mcc",
    "sveb_se",
    "sveb_ppv",
    "veb_se",
    "veb_ppv",
)


@dataclass(frozen=True)
class ClassMetrics:
    """One-vs-rest metrics of one class (fractions; ``nan`` when undefined)."""

    se: float
    ppv: float
    spec: float
    f1: float
    auc: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "se": self.se,
            "ppv": self.ppv,
            "spec": self.spec,
            "f1": self.f1,
            "auc": self.auc,
            "support": self.support,
        }


@dataclass(frozen=True)
class ClassificationMetrics:
    """Everything :func:`evaluate_predictions` measures. ``to_dict()`` gives JSON-ready values."""

    n_test_beats: int
    accuracy: float
    macro_f1: float
    kappa: float
    mcc: float
    classes: dict[str, ClassMetrics]
    confusion_matrix: np.ndarray
    sveb_se: float
    sveb_ppv: float
    veb_se: float
    veb_ppv: float
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)
    class_names: tuple[str, ...] = AAMI_CLASSES
    macro_classes: tuple[str, ...] = MACRO_CLASSES
    n_unmatched: int = 0
    ci_unit: str = "none"

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if (isinstance(x, float) and math.isnan(x)) else float(x)

        return {
            "n_test_beats": self.n_test_beats,
            "accuracy": num(self.accuracy),
            "macro_f1": num(self.macro_f1),
            "macro_f1_classes": list(self.macro_classes),
            "kappa": num(self.kappa),
            "mcc": num(self.mcc),
            "classes": {
                c: {k: (num(v) if isinstance(v, float) else v) for k, v in m.to_dict().items()}
                for c, m in self.classes.items()
            },
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "confusion_matrix_axes": {
                "rows": "reference",
                "columns": "predicted",
                "labels": list(self.class_names),
            },
            "ec57": {
                "sveb": {"se": num(self.sveb_se), "ppv": num(self.sveb_ppv)},
                "veb": {"se": num(self.veb_se), "ppv": num(self.veb_ppv)},
            },
            "n_unmatched": self.n_unmatched,
            "ci95": {k: [num(lo), num(hi)] for k, (lo, hi) in self.ci95.items()},
            "ci95_resampling": self.ci_unit,
        }


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b > 0 else float("nan")


def ec57_counts(
    cm: np.ndarray,
    *,
    unmatched_pred: np.ndarray | None = None,
    classes: tuple[str, ...] = AAMI_CLASSES,
) -> dict[str, dict[str, int]]:
    """Gross EC57 TP/FN/FP counts for SVEB and VEB from a confusion matrix (rows: reference).

    ``unmatched_pred`` counts the predicted classes of detections with no reference beat.

    >>> cm = np.zeros((5, 5), int); cm[2, 2] = 8; cm[3, 2] = 5; cm[0, 2] = 1; cm[2, 0] = 2
    >>> ec57_counts(cm)["veb"]
    {'tp': 8, 'fn': 2, 'fp': 1}
    """
    ix = {c: i for i, c in enumerate(classes)}
    n, s, v, f, q = (ix[c] for c in ("N", "S", "V", "F", "Q"))
    extra = (
        np.zeros(len(classes), dtype=np.int64)
        if unmatched_pred is None
        else np.asarray(unmatched_pred)
    )
    cm = np.asarray(cm)
    return {
        "veb": {
            "tp": int(cm[v, v]),
            "fn": int(cm[v, n] + cm[v, s] + cm[v, f] + cm[v, q]),
            "fp": int(cm[n, v] + cm[s, v] + extra[v]),
        },
        "sveb": {
            "tp": int(cm[s, s]),
            "fn": int(cm[s, n] + cm[s, v] + cm[s, f] + cm[s, q]),
            "fp": int(cm[n, s] + cm[v, s] + cm[f, s] + extra[s]),
        },
    }


def metrics_from_confusion(
    cm: np.ndarray,
    *,
    unmatched_pred: np.ndarray | None = None,
    classes: tuple[str, ...] = AAMI_CLASSES,
    macro_classes: tuple[str, ...] = MACRO_CLASSES,
) -> dict[str, Any]:
    """Scalar metrics that depend only on the confusion matrix (used by the bootstrap too).

    Returns a dict with ``accuracy, macro_f1, kappa, mcc, sveb_se, sveb_ppv, veb_se, veb_ppv``
    and per-class ``se, ppv, spec, f1`` arrays.
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    true_n = cm.sum(axis=1)
    pred_n = cm.sum(axis=0)
    fp = pred_n - tp
    fn = true_n - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(true_n > 0, tp / true_n, np.nan)
        ppv = np.where(pred_n > 0, tp / pred_n, np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        f1_den = 2 * tp + fp + fn
        f1 = np.where(f1_den > 0, 2 * tp / f1_den, np.nan)
    macro_idx = [classes.index(c) for c in macro_classes]
    # sklearn convention: a class neither present nor predicted has F1 0 in a fixed label list
    macro_f1 = float(np.mean(np.nan_to_num(f1[macro_idx], nan=0.0))) if total > 0 else float("nan")
    accuracy = _div(tp.sum(), total)
    pe = float(np.dot(true_n, pred_n)) / total**2 if total > 0 else float("nan")
    kappa = (
        (accuracy - pe) / (1 - pe) if total > 0 and pe < 1 else (0.0 if total > 0 else float("nan"))
    )
    # multiclass MCC (Gorodkin 2004), as sklearn.metrics.matthews_corrcoef
    cov_ytyp = tp.sum() * total - np.dot(true_n, pred_n)
    cov_ypyp = total**2 - np.dot(pred_n, pred_n)
    cov_ytyt = total**2 - np.dot(true_n, true_n)
    mcc = float(cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp)) if cov_ytyt * cov_ypyp > 0 else 0.0
    ec = ec57_counts(cm.astype(np.int64), unmatched_pred=unmatched_pred, classes=classes)
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "kappa": float(kappa),
        "mcc": mcc,
        "sveb_se": _div(ec["sveb"]["tp"], ec["sveb"]["tp"] + ec["sveb"]["fn"]),
        "sveb_ppv": _div(ec["sveb"]["tp"], ec["sveb"]["tp"] + ec["sveb"]["fp"]),
        "veb_se": _div(ec["veb"]["tp"], ec["veb"]["tp"] + ec["veb"]["fn"]),
        "veb_ppv": _div(ec["veb"]["tp"], ec["veb"]["tp"] + ec["veb"]["fp"]),
        "se": se,
        "ppv": ppv,
        "spec": spec,
        "f1": f1,
    }


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _auc(y_true: np.ndarray, y_prob: np.ndarray, k: int) -> np.ndarray:
    from sklearn.metrics import roc_auc_score

    out = np.full(k, np.nan)
    for c in range(k):
        pos = y_true == c
        if pos.any() and (~pos).any():
            out[c] = float(roc_auc_score(pos, y_prob[:, c]))
    return out


def _percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(s, [2.5, 97.5])
    return (float(lo), float(hi))


def evaluate_predictions(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    records: np.ndarray | None = None,
    classes: tuple[str, ...] = AAMI_CLASSES,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ClassificationMetrics:
    """Score class probabilities against reference labels (see the module docstring).

    Parameters
    ----------
    y_true : numpy.ndarray
        int, ``(n,)``: class index, or ``-1`` for a detection matched to no reference beat.
    y_prob : numpy.ndarray
        ``(n, len(classes))`` scores (probabilities); the prediction is their arg-max.
    records : numpy.ndarray, optional
        ``(n,)`` record of each beat: bootstrap resamples records instead of beats.
    classes : tuple of str
        Class names; must contain N, S, V, F and Q for the EC57 statistics.
    n_bootstrap : int
        Bootstrap resamples (0 disables the confidence intervals).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    ClassificationMetrics

    >>> y = np.array([0, 0, 1, 2, 2]); p = np.eye(5)[[0, 1, 1, 2, 0]]
    >>> m = evaluate_predictions(y, p, n_bootstrap=0)
    >>> round(m.accuracy, 2), m.veb_se, m.sveb_ppv
    (0.6, 0.5, 0.5)
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    k = len(classes)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y_true.shape}")
    if y_prob.shape != (y_true.size, k):
        raise ValueError(f"y_prob must have shape ({y_true.size}, {k}), got {y_prob.shape}")
    if not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class indices, got dtype {y_true.dtype}")
    if y_true.size and (y_true.min() < -1 or y_true.max() >= k):
        raise ValueError(f"y_true values must lie in [-1, {k - 1}]")
    if not np.all(np.isfinite(y_prob)):
        raise ValueError("y_prob holds NaN/inf")
    if records is not None:
        records = np.asarray(records)
        if records.shape != y_true.shape:
            raise ValueError(f"records must have shape {y_true.shape}, got {records.shape}")
    if int(n_bootstrap) < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    y_pred = np.argmax(y_prob, axis=1)
    lab = y_true >= 0
    unmatched_pred = np.bincount(y_pred[~lab], minlength=k)
    cm = _confusion(y_true[lab], y_pred[lab], k)
    m = metrics_from_confusion(cm, unmatched_pred=unmatched_pred, classes=classes)
    auc = _auc(y_true[lab], y_prob[lab], k)
    per_class = {
        c: ClassMetrics(
            float(m["se"][i]),
            float(m["ppv"][i]),
            float(m["spec"][i]),
            float(m["f1"][i]),
            float(auc[i]),
            int(cm[i].sum()),
        )
        for i, c in enumerate(classes)
    }

    ci: dict[str, tuple[float, float]] = {}
    unit = "none"
    if n_bootstrap > 0 and y_true.size:
        rng = np.random.default_rng(seed)
        if records is not None:
            unit = "record"
            names, inv = np.unique(records, return_inverse=True)
            # per-record confusion matrices and unmatched counts; a resample is a weighted sum
            cms = np.zeros((names.size, k, k), dtype=np.int64)
            np.add.at(cms, (inv[lab], y_true[lab], y_pred[lab]), 1)
            ums = np.zeros((names.size, k), dtype=np.int64)
            np.add.at(ums, (inv[~lab], y_pred[~lab]), 1)
            draws = rng.integers(0, names.size, size=(int(n_bootstrap), names.size))
            weights = np.stack([np.bincount(d, minlength=names.size) for d in draws])
            boot_cm = np.einsum("br,rij->bij", weights, cms)
            boot_um = weights @ ums
        else:
            unit = "beat"
            n_lab = int(lab.sum())
            cells = cm.ravel() / max(n_lab, 1)
            boot_cm = rng.multinomial(n_lab, cells, size=int(n_bootstrap)).reshape(-1, k, k)
            n_un = int((~lab).sum())
            boot_um = (
                rng.multinomial(n_un, unmatched_pred / n_un, size=int(n_bootstrap))
                if n_un
                else np.zeros((int(n_bootstrap), k), dtype=np.int64)
            )
        samples = {name: np.empty(int(n_bootstrap)) for name in CI_METRICS}
        for b in range(int(n_bootstrap)):
            mb = metrics_from_confusion(boot_cm[b], unmatched_pred=boot_um[b], classes=classes)
            for name in CI_METRICS:
                samples[name][b] = mb[name]
        ci = {name: _percentile_ci(s) for name, s in samples.items()}

    return ClassificationMetrics(
        n_test_beats=int(lab.sum()),
        accuracy=m["accuracy"],
        macro_f1=m["macro_f1"],
        kappa=m["kappa"],
        mcc=m["mcc"],
        classes=per_class,
        confusion_matrix=cm,
        sveb_se=m["sveb_se"],
        sveb_ppv=m["sveb_ppv"],
        veb_se=m["veb_se"],
        veb_ppv=m["veb_ppv"],
        ci95=ci,
        class_names=tuple(classes),
        n_unmatched=int((~lab).sum()),
        ci_unit=unit,
    )
