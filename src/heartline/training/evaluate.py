"""Evaluation reports: ``metrics.json``, ``report.md`` and PNG plots of a protocol result.

Why this file is long (about 860 lines): the report writers of every protocol (JSON, Markdown,
plots, ablation and learning-curve tables) share one schema and one set of formatting helpers.

:func:`write_evaluation` turns a :class:`~heartline.training.protocols.ProtocolResult` into

* ``metrics.json``: protocol (and its leak label), model, ``n_test_beats``, accuracy, macro-F1,
  kappa, MCC, per-class Se / +P / Sp / F1 / AUC, EC57 gross SVEB/VEB statistics, 95 % bootstrap
  confidence intervals (records resampled), the confusion matrix, the target check, the
  per-record SVEB/VEB table and the largest confusions (all values are fractions);
* ``report.md``: the same for people, saying for each missed target by how much, on which
  records and through which confusions;
* ``confusion_matrix.png``, ``roc.png`` (one-vs-rest), ``training_curve.png`` when the model
  has a training history, ``learning_curve.png`` when a learning curve is given.

:func:`learning_curve` retrains a model on 10-100 % of the training records (inter-patient) or
beats (intra-patient) and scores the validation records (and the test set, for reporting).
:func:`run_ablations` retrains the hybrid with one optional part changed at a time and scores the
DS1 validation records (selection) and, when asked, DS2 (reporting only, never selection).

Targets (DS2, inter-patient): SVEB Se >= 85 % and +P >= 85 %, VEB Se >= 97 % and +P >= 97 %,
accuracy >= 97 %; intra-patient accuracy >= 99.5 %; hybrid training on all DS1 <= 10 min.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet
from heartline.training.protocols import (
    LEAKY_LABEL,
    ModelFactory,
    ProtocolResult,
    Split,
    evaluate_on_split,
)

__all__ = [
    "ABLATIONS",
    "TARGETS",
    "Ablation",
    "TargetCheck",
    "check_targets",
    "evaluate_model",
    "evaluate_saved",
    "factory_for",
    "learning_curve",
    "metrics_dict",
    "per_record_table",
    "plot_confusion",
    "plot_learning_curve",
    "plot_roc",
    "render_report",
    "run_ablations",
    "select_ablations",
    "top_confusions",
    "write_evaluation",
]

logger = logging.getLogger(__name__)

#: (metric key, threshold, protocols it applies to) -- fractions.
TARGETS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("sveb_se", 0.85, ("inter-patient",)),
    ("sveb_ppv", 0.85, ("inter-patient",)),
    ("veb_se", 0.97, ("inter-patient",)),
    ("veb_ppv", 0.97, ("inter-patient",)),
    ("accuracy", 0.97, ("inter-patient",)),
    ("accuracy", 0.995, ("intra-patient",)),
)
#: Hybrid training time target on all of DS1 (seconds).
TRAIN_SECONDS_TARGET = 600.0
_TARGET_NAMES = {
    "sveb_se": "SVEB Se",
    "sveb_ppv": "SVEB +P",
    "veb_se": "VEB Se",
    "veb_ppv": "VEB +P",
    "accuracy": "accuracy",
}


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _pct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{100 * v:.{digits}f}"


# --------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetCheck:
    """One target: measured value, threshold, whether it is met and the shortfall (fractions)."""

    name: str
    key: str
    value: float | None
    target: float
    met: bool
    shortfall: float | None


def _metric_value(result: ProtocolResult, key: str) -> float:
    m = result.metrics
    return float(getattr(m, key))


def check_targets(result: ProtocolResult) -> list[TargetCheck]:
    """The targets that apply to ``result.protocol`` (and the training-time one for the hybrid)."""
    out = []
    for key, target, protocols in TARGETS:
        if result.protocol not in protocols:
            continue
        v = _num(_metric_value(result, key))
        met = v is not None and v >= target
        out.append(
            TargetCheck(
                _TARGET_NAMES[key], key, v, target, met, None if v is None or met else target - v
            )
        )
    if (
        result.model_name == "hybrid"
        and result.protocol == "inter-patient"
        and len(result.train_records) >= 17
    ):
        t = _num(result.train_seconds)
        met = t is not None and t <= TRAIN_SECONDS_TARGET
        out.append(
            TargetCheck(
                "hybrid training time on DS1 (s)",
                "train_seconds",
                t,
                TRAIN_SECONDS_TARGET,
                met,
                None if t is None or met else t - TRAIN_SECONDS_TARGET,
            )
        )
    return out


# --------------------------------------------------------------------------- tables
def per_record_table(result: ProtocolResult) -> list[dict[str, Any]]:
    """EC57 SVEB and VEB counts and Se / +P of each test record (gross within the record)."""
    from heartline.training.metrics import ec57_counts

    k = len(AAMI_CLASSES)
    pred = result.proba.argmax(axis=1)
    rows = []
    for rec in sorted(set(result.records.tolist())):
        sel = result.records == rec
        y, p = result.y_true[sel], pred[sel]
        lab = y >= 0
        cm = np.bincount(y[lab] * k + p[lab], minlength=k * k).reshape(k, k)
        extra = np.bincount(p[~lab], minlength=k)
        ec = ec57_counts(cm, unmatched_pred=extra)
        row: dict[str, Any] = {"record": rec, "n_beats": int(lab.sum())}
        for kind in ("sveb", "veb"):
            c = ec[kind]
            row[f"{kind}_n"] = c["tp"] + c["fn"]
            row[f"{kind}_tp"], row[f"{kind}_fn"], row[f"{kind}_fp"] = c["tp"], c["fn"], c["fp"]
            row[f"{kind}_se"] = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
            row[f"{kind}_ppv"] = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        row["accuracy"] = float(np.mean(y[lab] == p[lab])) if lab.any() else None
        rows.append(row)
    return rows


def top_confusions(result: ProtocolResult, n: int = 8) -> list[dict[str, Any]]:
    """Largest off-diagonal cells of the confusion matrix (reference -> predicted)."""
    cm = result.metrics.confusion_matrix
    cells = []
    for i, a in enumerate(AAMI_CLASSES):
        for j, b in enumerate(AAMI_CLASSES):
            if i != j and cm[i, j] > 0:
                cells.append(
                    {
                        "reference": a,
                        "predicted": b,
                        "count": int(cm[i, j]),
                        "fraction_of_reference": float(cm[i, j] / cm[i].sum()),
                    }
                )
    cells.sort(key=lambda c: -c["count"])
    return cells[:n]


# --------------------------------------------------------------------------- plots
def _figure(w: float = 5.0, h: float = 4.0) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100)


def plot_confusion(result: ProtocolResult, path: Path) -> Path:
    """Row-normalised confusion matrix with counts (rows: reference, columns: predicted)."""
    cm = result.metrics.confusion_matrix.astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_yticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(f"{result.model_name} {result.protocol} ({result.rpeaks})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_roc(result: ProtocolResult, path: Path) -> Path:
    """One-vs-rest ROC curves of N, S, V and F (classes with positives and negatives)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    lab = result.y_true >= 0
    y, p = result.y_true[lab], result.proba[lab]
    for c, name in enumerate(AAMI_CLASSES[:4]):
        pos = y == c
        if pos.any() and (~pos).any():
            fpr, tpr, _ = roc_curve(pos, p[:, c])
            ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(pos, p[:, c]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"one-vs-rest ROC, {result.model_name} ({result.protocol})", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_learning_curve(points: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Macro-F1 (validation and, if present, test) against the fraction of training data."""
    fig = _figure(5.5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    x = [100 * p["fraction"] for p in points]
    for key, label in (
        ("val_macro_f1", "validation macro-F1"),
        ("test_macro_f1", "test macro-F1 (reporting)"),
    ):
        ys = [p.get(key) for p in points]
        if any(v is not None for v in ys):
            ax.plot(x, [np.nan if v is None else v for v in ys], marker="o", label=label)
    ax.set_xlabel("training data used (%)")
    ax.set_ylabel("macro-F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- learning curve
def _subset_training(split: Split, fraction: float, seed: int) -> BeatSet:
    rng = np.random.default_rng(seed)
    if split.leaky:  # intra-patient: a fraction of the training beats keep their labels
        lab = np.flatnonzero(split.train.labels >= 0)
        keep = np.zeros(len(split.train), bool)
        keep[rng.choice(lab, size=max(1, round(fraction * lab.size)), replace=False)] = True
        return dataclasses.replace(split.train, labels=np.where(keep, split.train.labels, -1))
    recs = list(split.train_records)
    n = max(1, round(fraction * len(recs)))
    chosen = sorted(rng.choice(recs, size=n, replace=False).tolist())
    return split.train.select_records(chosen)


def learning_curve(
    model_factory: ModelFactory,
    split: Split,
    *,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    seed: int = 0,
    score_test: bool = True,
) -> list[dict[str, Any]]:
    """Retrain on ``fractions`` of the training records (inter-patient) or beats (intra-patient).

    Each point holds the fraction, records/beats used, validation macro-F1 and (reporting only)
    test macro-F1. The training records at 10 % are drawn at random (seeded) among the split's
    training records; a fraction too small to hold two classes is skipped with a log message.
    """
    from heartline.training.protocols import score_split

    points = []
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
        train = _subset_training(split, f, seed)
        if np.unique(train.labels[train.labels >= 0]).size < 2:
            logger.info(
                "learning curve: %.0f %% of the training data has one class; skipped", 100 * f
            )
            continue
        model = model_factory()
        model.fit(train, split.val, seed=seed)
        point: dict[str, Any] = {
            "fraction": float(f),
            "n_train_beats": int(np.count_nonzero(train.labels >= 0)),
            "n_train_records": len(train.records),
        }
        vp = model.predict_proba(split.val)
        lab = split.val.labels >= 0
        from heartline.training.metrics import evaluate_predictions

        point["val_macro_f1"] = evaluate_predictions(
            split.val.labels[lab], vp[lab], n_bootstrap=0
        ).macro_f1
        if score_test:
            m, *_ = score_split(split, model.predict_proba(split.test), n_bootstrap=0)
            point["test_macro_f1"] = m.macro_f1
        points.append(point)
    return points


# --------------------------------------------------------------------------- ablations
@dataclass(frozen=True)
class Ablation:
    """One change to the hybrid: constructor parameters, training settings, or RR features off."""

    name: str
    description: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    zero_rr: bool = False


def ABLATIONS(base_params: dict[str, Any], base_train: Any) -> list[Ablation]:
    """The ablations of the hybrid's optional parts, relative to a base configuration.

    Each toggles one part: the early-alarm head, the temporal-consistency loss, the morphology
    penalty, attention fusion vs the mean of the leads (only if the network has a ``fusion``
    parameter), RR features off, the rhythm-irregularity RR columns, LSTM context K=0 vs K>0, and
    weighted loss vs weighted sampling.
    """
    p = dict(base_params)
    k = int(p.get("context_k", 8))
    imb = getattr(base_train, "imbalance", "weighted_loss")
    other_imb = "weighted_sampling" if imb != "weighted_sampling" else "weighted_loss"
    return [
        Ablation("base", "configuration as given"),
        Ablation(
            "early_alarm " + ("off" if p.get("early_alarm") else "on"),
            "next-beat early-alarm head",
            {"early_alarm": not p.get("early_alarm", False)},
        ),
        Ablation(
            "consistency " + ("off" if p.get("consistency_weight", 0) else "on (0.1)"),
            "temporal-consistency loss",
            {"consistency_weight": 0.0 if p.get("consistency_weight", 0) else 0.1},
        ),
        Ablation(
            "morphology " + ("off" if p.get("morphology_weight", 0) else "on (0.01)"),
            "QRS-kernel morphology penalty",
            {"morphology_weight": 0.0 if p.get("morphology_weight", 0) else 0.01},
        ),
        Ablation(
            "fusion mean", "mean of the leads instead of attention fusion", {"fusion": "mean"}
        ),
        Ablation("rr off", "RR features set to zero (train, validation and test)", zero_rr=True),
        Ablation(
            "rhythm rr " + ("off" if p.get("rhythm_rr", True) else "on"),
            "rhythm-irregularity RR columns (heartline.signal.segmentation.rhythm_features)",
            {"rhythm_rr": not p.get("rhythm_rr", True)},
        ),
        Ablation(
            "context K=0" if k > 0 else "context K=8",
            "LSTM context of previous beats",
            {"context_k": 0 if k > 0 else 8},
        ),
        Ablation(
            f"imbalance {other_imb}", "class-imbalance handling", train={"imbalance": other_imb}
        ),
    ]


def _zero_rr(beats: BeatSet) -> BeatSet:
    return dataclasses.replace(beats, rr=np.zeros_like(beats.rr))


def run_ablations(
    split: Split,
    *,
    base_params: dict[str, Any],
    base_train: Any,
    score_test: bool = False,
    seed: int = 0,
    ablations: Sequence[Ablation] | None = None,
    model_name: str = "hybrid",
) -> list[dict[str, Any]]:
    """Train the hybrid once per ablation; score the validation records (and DS2 if asked).

    Returns one row per ablation with validation macro-F1, SVEB F1, VEB F1 (and ``test_*`` when
    ``score_test``) or ``"unavailable"`` with the reason (e.g. a parameter the network lacks).
    Validation scores are what a selection may use; test scores are reporting only.
    """
    from heartline.training.metrics import evaluate_predictions
    from heartline.training.protocols import ec57_f1, score_split
    from heartline.training.registry import check_model_params, get_model

    rows = []
    for ab in ablations if ablations is not None else ABLATIONS(base_params, base_train):
        params = {**base_params, **ab.params}
        row: dict[str, Any] = {"name": ab.name, "description": ab.description}
        try:
            check_model_params(model_name, params)
        except ValueError as exc:
            row["unavailable"] = str(exc)
            rows.append(row)
            continue
        train_cfg = dataclasses.replace(base_train, **ab.train) if ab.train else base_train
        s = split
        if ab.zero_rr:
            s = dataclasses.replace(
                split,
                train=_zero_rr(split.train),
                val=_zero_rr(split.val),
                test=_zero_rr(split.test),
            )
        model = get_model(model_name, train=train_cfg, **params)
        build = getattr(model, "build", None)
        if build is not None:  # the constructor validates values (e.g. an unknown fusion mode)
            try:
                build(
                    n_leads=s.train.n_leads, window_len=s.train.window_len, n_rr=s.train.rr.shape[1]
                )
            except ValueError as exc:
                row["unavailable"] = str(exc)
                rows.append(row)
                continue
        import time

        t0 = time.perf_counter()
        model.fit(s.train, s.val, seed=seed)
        row["train_seconds"] = time.perf_counter() - t0
        lab = s.val.labels >= 0
        vm = evaluate_predictions(s.val.labels[lab], model.predict_proba(s.val)[lab], n_bootstrap=0)
        row.update(
            val_macro_f1=vm.macro_f1,
            val_sveb_f1=ec57_f1(vm.sveb_se, vm.sveb_ppv),
            val_veb_f1=ec57_f1(vm.veb_se, vm.veb_ppv),
        )
        if score_test:
            tm, *_ = score_split(s, model.predict_proba(s.test), n_bootstrap=0)
            row.update(
                test_macro_f1=tm.macro_f1,
                test_sveb_f1=ec57_f1(tm.sveb_se, tm.sveb_ppv),
                test_veb_f1=ec57_f1(tm.veb_se, tm.veb_ppv),
                test_accuracy=tm.accuracy,
            )
        logger.info("ablation %s: val macro-F1 %.3f", ab.name, vm.macro_f1)
        rows.append(row)
    return rows


def select_ablations(
    params: dict[str, Any] | None, train: Any, names: Sequence[str] = ()
) -> list[Ablation]:
    """The rows of :func:`ABLATIONS` named in ``names`` (all when empty).

    Raises
    ------
    ValueError
        A name that is not an ablation of this configuration (the message lists the valid ones).
    """
    from heartline.training.config import TrainConfig

    rows = ABLATIONS(dict(params or {}), train or TrainConfig())
    if not names:
        return rows
    valid = [a.name for a in rows]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; valid: {valid}")
    return [a for a in rows if a.name in names]


def _ablation_md(rows: Sequence[dict[str, Any]], split: Split) -> list[str]:
    where = "DS1 validation records" if split.protocol == "inter-patient" else "validation beats"
    has_test = any("test_macro_f1" in r for r in rows)
    lines = [
        "## Ablations of the hybrid",
        "",
        f"Scored on the {where} (the only scores used to choose anything)"
        + ("; test columns are reporting only, never selection." if has_test else "."),
        "",
    ]
    head = "| variant | val macro-F1 | val SVEB F1 | val VEB F1 |" + (
        " test macro-F1 | test SVEB F1 | test VEB F1 |" if has_test else ""
    )
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "unavailable" in r:
            lines.append(
                f"| {r['name']} | unavailable: {r['unavailable']} |" + " |" * (2 + 3 * has_test)
            )
            continue
        cells = [_pct(r["val_macro_f1"]), _pct(r["val_sveb_f1"]), _pct(r["val_veb_f1"])]
        if has_test:
            cells += [
                _pct(r.get("test_macro_f1")),
                _pct(r.get("test_sveb_f1")),
                _pct(r.get("test_veb_f1")),
            ]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# --------------------------------------------------------------------------- report
def metrics_dict(result: ProtocolResult) -> dict[str, Any]:
    """What ``metrics.json`` holds (see the module docstring)."""
    d = result.to_dict()
    if result.rpeaks == "detected" and "Q" in d["classes"]:
        d["classes"]["Q"]["note"] = "missed beats are scored as Q: not meaningful"
    d["targets"] = [dataclasses.asdict(t) for t in check_targets(result)]
    d["per_record"] = per_record_table(result)
    d["top_confusions"] = top_confusions(result)
    return d


def render_report(
    result: ProtocolResult,
    *,
    learning: Sequence[dict[str, Any]] | None = None,
    ablations: Sequence[dict[str, Any]] | None = None,
    split: Split | None = None,
    plots: Sequence[str] = (),
) -> str:
    """``report.md``: targets (with shortfalls), metrics with CIs, per-class, per-record, confusions."""
    m = result.metrics
    ci = m.ci95
    lines = [f"# {result.model_name}: {result.protocol} evaluation ({result.rpeaks} R-peaks)", ""]
    if result.leaky:
        lines += [
            f"**{LEAKY_LABEL.upper()}.** Intra-patient scores are optimistic and not comparable to inter-patient ones.",
            "",
        ]
    else:
        lines += [
            f"Protocol: {result.label}. Trained on {len(result.train_records)} records "
            f"({result.n_train_beats} beats), early stopping on {len(result.val_records)} validation records "
            f"({result.n_val_beats} beats), tested once on {len(result.test_records)} records.",
            "",
        ]
    if result.rpeaks == "detected":
        lines += [
            f"Detected R-peaks: {result.n_missed} reference beats missed (scored as errors of their class), "
            f"{result.n_false} false detections (EC57 false positives when labelled S or V).",
            "",
        ]
    checks = check_targets(result)
    if checks:
        lines += [
            "## Targets",
            "",
            "| target | measured | required | met | short by |",
            "|---|---|---|---|---|",
        ]
        for t in checks:
            if t.key == "train_seconds":
                lines.append(
                    f"| {t.name} | {t.value:.0f} | <= {t.target:.0f} | {'yes' if t.met else 'NO'} | {'' if t.met else f'{t.shortfall:.0f} s'} |"
                )
            else:
                lines.append(
                    f"| {t.name} | {_pct(t.value)} % | >= {100 * t.target:.1f} % | {'yes' if t.met else 'NO'} | {'' if t.met or t.shortfall is None else f'{100 * t.shortfall:.1f} points'} |"
                )
        lines.append("")

    def with_ci(key: str) -> str:
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        base = f"{_pct(getattr(m, key))} %"
        return base if _num(lo) is None else f"{base} [{_pct(lo)}, {_pct(hi)}]"

    lines += [
        "## Overall",
        "",
        f"Beats scored: {m.n_test_beats}. 95 % CIs: percentile bootstrap over {m.ci_unit}s.",
        "",
        "| metric | value [95 % CI] |",
        "|---|---|",
    ]
    for key, name in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1 (N,S,V,F)"),
        ("kappa", "Cohen's kappa"),
        ("mcc", "MCC"),
        ("sveb_se", "SVEB Se (EC57)"),
        ("sveb_ppv", "SVEB +P (EC57)"),
        ("veb_se", "VEB Se (EC57)"),
        ("veb_ppv", "VEB +P (EC57)"),
    ):
        lines.append(f"| {name} | {with_ci(key)} |")
    lines += [
        "",
        "## Per class (one vs rest)",
        "",
        "| class | beats | Se | +P | Sp | F1 | AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, cm in m.classes.items():
        note = " (missed beats; not meaningful)" if c == "Q" and result.rpeaks == "detected" else ""
        lines.append(
            f"| {c}{note} | {cm.support} | {_pct(cm.se)} | {_pct(cm.ppv)} | {_pct(cm.spec)} | {_pct(cm.f1)} | {_pct(cm.auc)} |"
        )
    conf = top_confusions(result)
    if conf:
        lines += [
            "",
            "## Largest confusions",
            "",
            "| reference -> predicted | beats | share of reference class |",
            "|---|---|---|",
        ]
        lines += [
            f"| {c['reference']} -> {c['predicted']} | {c['count']} | {_pct(c['fraction_of_reference'])} % |"
            for c in conf
        ]
    rows = per_record_table(result)
    lines += [
        "",
        "## Per record (EC57 SVEB / VEB)",
        "",
        "Records where a class is present and its Se or +P is below target are marked `<`.",
        "",
        "| record | beats | SVEB n | SVEB Se | SVEB +P | VEB n | VEB Se | VEB +P | accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst: dict[str, list[tuple[str, int]]] = {"sveb": [], "veb": []}
    for r in rows:

        def mark(kind: str, q: str, target: float, row: dict[str, Any] = r) -> str:
            v = row[f"{kind}_{q}"]
            bad = v is not None and v < target and (row[f"{kind}_n"] > 0 or q == "ppv")
            return _pct(v) + (" <" if bad else "")

        lines.append(
            f"| {r['record']} | {r['n_beats']} | {r['sveb_n']} | {mark('sveb', 'se', 0.85)} | {mark('sveb', 'ppv', 0.85)} | "
            f"{r['veb_n']} | {mark('veb', 'se', 0.97)} | {mark('veb', 'ppv', 0.97)} | {_pct(r['accuracy'])} |"
        )
        for kind in ("sveb", "veb"):
            worst[kind].append((r["record"], r[f"{kind}_fn"] + r[f"{kind}_fp"]))
    missed = [t for t in checks if not t.met]
    if missed:
        lines += ["", "## Where targets are missed", ""]
        for t in missed:
            if t.key == "train_seconds":
                lines.append(f"- {t.name}: {t.value:.0f} s, {t.shortfall:.0f} s over the budget.")
                continue
            kind = (
                "sveb" if t.key.startswith("sveb") else ("veb" if t.key.startswith("veb") else None)
            )
            detail = ""
            if kind is not None:
                errs = sorted(worst[kind], key=lambda x: -x[1])[:5]
                detail = "; most errors (FN + FP) in records " + ", ".join(
                    f"{rec} ({n})" for rec, n in errs if n
                )
                cls = "S" if kind == "sveb" else "V"
                rel = [c for c in conf if cls in (c["reference"], c["predicted"])][:3]
                if rel:
                    detail += "; confusions " + ", ".join(
                        f"{c['reference']}->{c['predicted']} {c['count']}" for c in rel
                    )
            lines.append(
                f"- {t.name}: {_pct(t.value)} %, {100 * (t.shortfall or 0):.1f} points below {100 * t.target:.1f} %{detail}."
            )
    if learning:
        lines += [
            "",
            "## Learning curve",
            "",
            "| training data | records | beats | val macro-F1 | test macro-F1 |",
            "|---|---|---|---|---|",
        ]
        for p in learning:
            lines.append(
                f"| {100 * p['fraction']:.0f} % | {p['n_train_records']} | {p['n_train_beats']} | {_pct(p['val_macro_f1'])} | {_pct(p.get('test_macro_f1'))} |"
            )
    if ablations and split is not None:
        lines += ["", *_ablation_md(ablations, split)]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += [
        "",
        f"Training: {result.train_seconds:.1f} s; prediction of the test beats: {result.predict_seconds:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


def write_evaluation(
    result: ProtocolResult,
    out_dir: str | Path,
    *,
    learning: Sequence[dict[str, Any]] | None = None,
    ablations: Sequence[dict[str, Any]] | None = None,
    split: Split | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md`` and the plots into ``out_dir``; return their paths."""
    from heartline.training.rundir import plot_history, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["confusion"] = plot_confusion(result, out / "confusion_matrix.png")
    paths["roc"] = plot_roc(result, out / "roc.png")
    if result.history:
        paths["training_curve"] = plot_history(
            list(result.history), out / "training_curve.png", title=result.model_name
        )
    if learning:
        paths["learning_curve"] = plot_learning_curve(
            learning, out / "learning_curve.png", title=f"{result.model_name} ({result.protocol})"
        )
    d = metrics_dict(result)
    if learning:
        d["learning_curve"] = list(learning)
    if ablations:
        d["ablations"] = list(ablations)
    if extra:
        d.update(extra)
    paths["metrics"] = write_json(out / "metrics.json", d)
    report = render_report(
        result,
        learning=learning,
        ablations=ablations,
        split=split,
        plots=[p.name for k, p in paths.items() if k != "metrics"],
    )
    paths["report"] = out / "report.md"
    paths["report"].write_text(report, encoding="utf-8")
    return paths


def factory_for(
    name: str, *, params: dict[str, Any] | None = None, train: Any = None
) -> Callable[[], Any]:
    """A zero-argument factory of a registry model (or ``"always_n"``, the naive baseline)."""
    from heartline.training.protocols import AlwaysNormal
    from heartline.training.registry import get_model

    if name == "always_n":
        return AlwaysNormal
    params = dict(params or {})
    get_model(name, train=train, **params)  # validate now (unknown name or parameter)
    return lambda: get_model(name, train=train, **params)


def evaluate_model(
    name: str,
    protocol: str,
    *,
    out_dir: str | Path,
    data: Any = None,
    rpeaks: str = "annotated",
    params: dict[str, Any] | None = None,
    train: Any = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    learning_fractions: Sequence[float] = (),
    ablations: bool = False,
    ablations_on_test: bool = False,
    ablation_names: Sequence[str] = (),
) -> tuple[ProtocolResult, dict[str, Path]]:
    """Train registry model ``name`` under ``protocol`` and write its evaluation into ``out_dir``.

    ``ablation_names`` restricts the ablation table to those rows of :func:`ABLATIONS` (an
    unknown name raises ``ValueError`` listing the valid ones); empty runs them all.
    """
    from heartline.training.protocols import build_split

    chosen = select_ablations(params, train, ablation_names) if ablations else None
    factory = factory_for(name, params=params, train=train)
    split = build_split(protocol, data, rpeaks=rpeaks, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = factory()
    import time

    t0 = time.perf_counter()
    model.fit(split.train, split.val, run_dir=out, seed=seed)
    train_s = time.perf_counter() - t0
    result = evaluate_on_split(
        model, split, model_name=name, train_seconds=train_s, n_bootstrap=n_bootstrap, seed=seed
    )
    try:
        model.save(out / "model")
    except (RuntimeError, NotImplementedError) as exc:  # pragma: no cover - defensive
        logger.warning("model not saved: %s", exc)
    learning = (
        learning_curve(factory, split, fractions=learning_fractions, seed=seed)
        if learning_fractions
        else None
    )
    abl = None
    if ablations and name == "hybrid":
        from heartline.training.config import TrainConfig

        abl = run_ablations(
            split,
            base_params=dict(params or {}),
            base_train=train or TrainConfig(),
            score_test=ablations_on_test,
            seed=seed,
            ablations=chosen,
        )
    return result, write_evaluation(
        result, out, learning=learning, ablations=abl, split=split, extra={"af_gate": False}
    )


def evaluate_saved(
    model: Any,
    *,
    out_dir: str | Path,
    model_name: str,
    data: Any = None,
    rpeaks: str = "annotated",
    n_bootstrap: int = 1000,
    seed: int = 0,
    train_seconds: float = float("nan"),
    af_gate: Any = None,
) -> tuple[ProtocolResult, dict[str, Path]]:
    """Score an already trained model (trained on DS1) on the inter-patient DS2 test set.

    ``af_gate`` (a :class:`heartline.training.af_gate.RecordRhythm`): the model's ``S`` calls
    in windows the rhythm model calls ``A`` become ``N`` (AAMI EC57;
    :func:`heartline.edge.af_gate.apply_af_gate`). ``metrics.json`` says ``"af_gate"``:
    true / false, and with the gate its settings (``"af_gate_settings"``).
    """
    from heartline.training.protocols import inter_patient_split

    split = inter_patient_split(data, rpeaks=rpeaks)
    scored = model
    extra: dict[str, Any] = {"af_gate": af_gate is not None}
    if af_gate is not None:
        from heartline.training.af_gate import AFGatedClassifier

        scored = AFGatedClassifier(model, af_gate)
        extra["af_gate_settings"] = af_gate.describe()
        extra["af_gate_beats"] = af_gate.gate_counts(split.test, model.predict_proba(split.test))
    result = evaluate_on_split(
        scored,
        split,
        model_name=model_name,
        train_seconds=train_seconds,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    return result, write_evaluation(result, out_dir, split=split, extra=extra)
