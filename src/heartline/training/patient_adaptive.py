"""The patient-adaptive protocol (AAMI EC57 patient-specific evaluation) of the shipped model.

For each DS2 record the beats of its first 5 minutes may be used as patient-specific data
(ANSI/AAMI EC57: "the first 5 minutes of each record may be used for training"); every beat
after that is scored, with the EC57 gross statistics of :mod:`heartline.training.metrics`.

* ``labels="annotations"``: the clinician's confirmations are simulated by the reference
  annotations of those 5 minutes. With a ``budget`` of ``n`` beats the clinician confirms one
  representative beat of each of ``n`` k-means clusters of the 5-minute beats (the beat nearest
  each centre, i.e. template review); ``budget=None`` confirms every 5-minute beat; ``0`` leaves
  the base model unchanged.
* ``labels="none"``: no labels, :func:`heartline.edge.adapt.fit_unsupervised` on the 5-minute
  beats.
* ``method="prototypes"`` (torch-free, :func:`heartline.edge.adapt.fit_prototypes`) or
  ``"finetune"`` (the torch head of :mod:`heartline.training.adapt`, run through ONNX Runtime).

The base model is never retrained and never sees DS2 labels beyond a record's own first 5
minutes; the mixture of each patient is chosen on that patient's confirmed beats.

References
----------
ANSI/AAMI EC57:1998/(R)2008, section 4 (patient-specific training data: first 5 minutes).
Hu YH, Palreddy S, Tompkins WJ. IEEE Trans Biomed Eng 44(9):891-900 (1997).
Ince T, Kiranyaz S, Gabbouj M. IEEE Trans Biomed Eng 56(5):1415-1426 (2009).
Kiranyaz S, Ince T, Gabbouj M. IEEE Trans Biomed Eng 63(3):664-675 (2016).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.edge.adapt import (
    NotEnoughBeatsError,
    OnnxAdaptedHead,
    beat_features,
    fit_prototypes,
    fit_unsupervised,
    kmeans,
    patient_scaling,
)
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.training.adapt import export_head, fine_tune_head
from heartline.training.metrics import evaluate_predictions
from heartline.training.protocols import ProtocolData, ProtocolResult

__all__ = [
    "ADAPT_WINDOW_S",
    "CURVE_BUDGETS",
    "LABEL_SOURCES",
    "METHODS",
    "PATIENT_ADAPTIVE_TARGETS",
    "PatientAdaptiveRun",
    "confirm_beats",
    "run_patient_adaptive",
    "write_patient_adaptive",
]

log = logging.getLogger(__name__)

#: EC57's patient-specific training window (seconds from the start of each record).
ADAPT_WINDOW_S = 300.0
LABEL_SOURCES: tuple[str, ...] = ("annotations", "none")
METHODS: tuple[str, ...] = ("prototypes", "finetune")
#: Confirmed-beat budgets of the curve (None: every beat of the 5 minutes).
CURVE_BUDGETS: tuple[int | None, ...] = (0, 10, 25, 50, 100, None)
#: Issue 23's patient-adaptive targets (fractions) and the adaptation time target (seconds).
PATIENT_ADAPTIVE_TARGETS: dict[str, float] = {
    "sveb_se": 0.85,
    "sveb_ppv": 0.85,
    "veb_se": 0.97,
    "veb_ppv": 0.97,
}
ADAPT_SECONDS_TARGET = 10.0


def _check(value: Any, valid: Sequence[Any], name: str) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(map(str, valid))}, got {value!r}")


def confirm_beats(features: np.ndarray, budget: int | None, *, seed: int = 0) -> np.ndarray:
    """Indices (time order) of the beats a clinician confirms: all (``None``), none (0), or the
    beat nearest each centre of ``budget`` k-means clusters (one per template)."""
    n = features.shape[0]
    if budget is None or budget >= n:
        return np.arange(n)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget == 0:
        return np.zeros(0, np.int64)
    mean, scale = patient_scaling(features)
    z = (features - mean) / scale
    centres, assign = kmeans(z, budget, seed=seed)
    picked = []
    for j in range(centres.shape[0]):
        members = np.flatnonzero(assign == j)
        if members.size:
            d = ((z[members] - centres[j]) ** 2).sum(1)
            picked.append(int(members[d.argmin()]))
    return np.unique(np.array(picked, np.int64))


@dataclass(frozen=True)
class PatientAdaptiveRun:
    """One patient-adaptive evaluation: the result (``metrics.json`` schema) plus per-record
    adaptation details (time, confirmed beats, mixture, fallbacks)."""

    result: ProtocolResult
    records: tuple[dict[str, Any], ...]
    labels: str
    method: str
    budget: int | None
    af_gate: dict[str, Any] | None = None

    def adapt_seconds(self) -> np.ndarray:
        return np.array([r["adapt_seconds"] for r in self.records], dtype=np.float64)


def _adapt_record(
    f: np.ndarray,
    p: np.ndarray,
    y: np.ndarray,
    *,
    labels: str,
    method: str,
    budget: int | None,
    record: str,
    base_sha: str,
    seed: int,
    tmp: Path,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Adapt on one record's 5-minute beats; returns a function's output: an object with
    ``proba(features, base_proba)`` (or ``None`` for the base model) and the details."""
    info: dict[str, Any] = {"record": record, "n_window_beats": int(f.shape[0])}
    t0 = time.perf_counter()
    model: Any = None
    if labels == "none":
        if budget == 0:
            info.update(n_confirmed=0, adapt_seconds=0.0, fallback="budget 0: base model")
            return None, info
        model = fit_unsupervised(f, p, patient_id=record, base_sha256=base_sha, seed=seed)
        info["n_confirmed"] = 0
    else:
        lab = y >= 0
        idx = np.flatnonzero(lab)
        chosen = idx[confirm_beats(f[idx], budget, seed=seed)]
        info["n_confirmed"] = int(chosen.size)
        info["confirmed_counts"] = {
            c: int(np.count_nonzero(y[chosen] == i)) for i, c in enumerate(AAMI_CLASSES)
        }
        if chosen.size == 0:
            info.update(adapt_seconds=0.0, fallback="no confirmed beats: base model")
            return None, info
        try:
            if method == "prototypes":
                model = fit_prototypes(
                    f[chosen],
                    y[chosen],
                    p[chosen],
                    patient_id=record,
                    base_sha256=base_sha,
                    seed=seed,
                )
            else:
                head = fine_tune_head(
                    f[chosen],
                    y[chosen],
                    p[chosen],
                    patient_id=record,
                    base_sha256=base_sha,
                    seed=seed,
                )
                model = OnnxAdaptedHead(export_head(head, tmp / f"{record}.head.onnx"))
        except NotEnoughBeatsError as exc:
            info.update(adapt_seconds=time.perf_counter() - t0, fallback=str(exc))
            return None, info
    info["adapt_seconds"] = time.perf_counter() - t0
    if hasattr(model, "weight") and isinstance(model.weight, float):
        info.update(weight=model.weight, tau=model.tau, adapted_classes=list(model.adapted_classes))
    return model, info


def _warm_up_finetune() -> None:
    rng = np.random.default_rng(0)
    f = rng.standard_normal((6, 4))
    head = fine_tune_head(
        f,
        np.array([0, 0, 0, 2, 2, 2]),
        np.full((6, 5), 0.2),
        patient_id="warm-up",
        base_sha256="",
        steps=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        OnnxAdaptedHead(export_head(head, Path(tmp) / "warm.onnx"))


def run_patient_adaptive(
    model: OnnxBeatClassifier,
    *,
    data: ProtocolData | None = None,
    labels: str = "annotations",
    method: str = "prototypes",
    budget: int | None = None,
    model_name: str = "shipped",
    n_bootstrap: int = 1000,
    seed: int = 0,
    cache: dict[str, Any] | None = None,
    af_gate: Any = None,
) -> PatientAdaptiveRun:
    """Adapt ``model`` to every DS2 record on its first 5 minutes and score the rest.

    ``cache`` (a dict) keeps the DS2 beats, features and base probabilities between calls
    (the confirmed-beat curve runs this several times). ``af_gate`` (a
    :class:`heartline.training.af_gate.RecordRhythm`): the adapted model's ``S`` calls in
    windows the rhythm model calls ``A`` become ``N`` (:func:`heartline.edge.af_gate.apply_af_gate`).
    """
    from heartline.data.splits import DS1, DS2

    _check(labels, LABEL_SOURCES, "labels")
    _check(method, METHODS, "method")
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be >= 0 or None (all 5 minutes), got {budget}")
    data = (data or ProtocolData()).for_model(model)
    test_records = tuple(data.test_records or DS2)
    outside = [r for r in test_records if r not in DS2]
    if outside:
        raise ValueError(f"patient-adaptive: records {outside} are not DS2 records")
    if method == "finetune":  # load and warm torch and onnx before the per-patient timing starts
        _warm_up_finetune()
    cache = cache if cache is not None else {}
    key = ("beats", test_records)
    if key not in cache:
        beats = data.build(test_records)
        f, p = beat_features(model, beats)
        cache[key] = (beats, f, p)
    beats, f, p = cache[key]
    af = None
    if af_gate is not None:
        from heartline.edge.af_gate import apply_af_gate

        af_key = ("af", test_records, getattr(af_gate, "key", id(af_gate)))
        if af_key not in cache:
            cache[af_key] = af_gate.af_mask(beats)
        af = cache[af_key]
    base_sha = file_sha256(model.path)
    ys, ps, recs, details = [], [], [], []
    n_confirmed = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        for rec in test_records:
            m = beats.record == rec
            fr, pr, yr = f[m], p[m], beats.labels[m]
            window = beats.sample_idx[m] < ADAPT_WINDOW_S * beats.fs
            adapted, info = _adapt_record(
                fr[window],
                pr[window],
                yr[window],
                labels=labels,
                method=method,
                budget=budget,
                record=rec,
                base_sha=base_sha,
                seed=seed,
                tmp=Path(tmpdir),
            )
            n_confirmed += info.get("n_confirmed", 0)
            t0 = time.perf_counter()
            scored = ~window & (yr >= 0)
            out = pr[scored] if adapted is None else adapted.proba(fr[scored], pr[scored])
            if af is not None:
                info["n_s_calls_before_gate"] = int(
                    np.sum(np.argmax(out, axis=1) == AAMI_CLASSES.index("S"))
                )
                out = apply_af_gate(out, af[m][scored])
                info["n_af_window"] = int(af[m][scored].sum())
            info["predict_seconds"] = time.perf_counter() - t0
            info["n_scored_beats"] = int(scored.sum())
            details.append(info)
            ys.append(yr[scored])
            ps.append(np.asarray(out, dtype=np.float64))
            recs.append(np.full(int(scored.sum()), rec))
    y = np.concatenate(ys)
    prob = np.concatenate(ps)
    rec_arr = np.concatenate(recs)
    metrics = evaluate_predictions(y, prob, records=rec_arr, n_bootstrap=n_bootstrap, seed=seed)
    suffix = "unsupervised" if labels == "none" else method
    if af_gate is not None:
        suffix += "+af_gate"
    result = ProtocolResult(
        protocol="patient-adaptive",
        model_name=f"{model_name}+{suffix}",
        rpeaks="annotated",
        leaky=False,
        metrics=metrics,
        y_true=y,
        proba=prob,
        records=rec_arr,
        val_metrics=None,
        train_seconds=float(sum(d["adapt_seconds"] for d in details)),
        predict_seconds=float(sum(d["predict_seconds"] for d in details)),
        n_train_beats=int(n_confirmed),
        n_val_beats=0,
        train_records=tuple(DS1),
        val_records=(),
        test_records=test_records,
    )
    gate_info = af_gate.describe() if af_gate is not None else None
    return PatientAdaptiveRun(result, tuple(details), labels, method, budget, gate_info)


def _f1(se: float, ppv: float) -> float:
    return float("nan") if not (se + ppv) or np.isnan(se + ppv) else 2 * se * ppv / (se + ppv)


def _curve_point(run: PatientAdaptiveRun) -> dict[str, Any]:
    m = run.result.metrics
    return {
        "budget": "all" if run.budget is None else run.budget,
        "n_confirmed": run.result.n_train_beats,
        "sveb_se": m.sveb_se,
        "sveb_ppv": m.sveb_ppv,
        "sveb_f1": _f1(m.sveb_se, m.sveb_ppv),
        "veb_se": m.veb_se,
        "veb_ppv": m.veb_ppv,
        "veb_f1": _f1(m.veb_se, m.veb_ppv),
        "accuracy": m.accuracy,
    }


def plot_budget_curve(points: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """SVEB and VEB F1 against the number of confirmed beats per patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    labels = [str(p["budget"]) for p in points]
    x = np.arange(len(points))
    for key, name in (("sveb_f1", "SVEB F1"), ("veb_f1", "VEB F1")):
        ax.plot(x, [p[key] for p in points], marker="o", label=name)
    ax.set_xticks(x, labels)
    ax.set_xlabel("confirmed beats per patient (first 5 minutes; 'all' = every beat)")
    ax.set_ylabel("F1 (DS2, after 5 minutes)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _targets(run: PatientAdaptiveRun) -> list[dict[str, Any]]:
    m = run.result.metrics
    rows = []
    for key, target in PATIENT_ADAPTIVE_TARGETS.items():
        v = float(getattr(m, key))
        rows.append(
            {"metric": key, "target": target, "value": v, "met": v >= target, "gap": v - target}
        )
    secs = run.adapt_seconds()
    worst = float(secs.max()) if secs.size else 0.0
    rows.append(
        {
            "metric": "adapt_seconds_max",
            "target": ADAPT_SECONDS_TARGET,
            "value": worst,
            "met": worst <= ADAPT_SECONDS_TARGET,
            "gap": ADAPT_SECONDS_TARGET - worst,
            "note": "wall clock on a shared machine; re-measure on an idle core",
        }
    )
    return rows


def write_patient_adaptive(
    run: PatientAdaptiveRun,
    out_dir: str | Path,
    *,
    curve: Sequence[PatientAdaptiveRun] = (),
    command: str = "",
) -> dict[str, Path]:
    """``metrics.json`` (the inter-patient schema, ``"protocol": "patient-adaptive"``, plus an
    ``adaptation`` block), ``report.md``, the confusion/ROC plots and, with ``curve``,
    ``budget_curve.png`` / ``budget_curve.json``."""
    from heartline.training.evaluate import write_evaluation
    from heartline.training.rundir import git_revision, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    secs = run.adapt_seconds()
    extra: dict[str, Any] = {
        "af_gate": run.af_gate is not None,
        "adaptation": {
            "labels": run.labels,
            "method": "unsupervised" if run.labels == "none" else run.method,
            "budget": "all" if run.budget is None else run.budget,
            "window_s": ADAPT_WINDOW_S,
            "adapt_seconds_mean": float(secs.mean()) if secs.size else 0.0,
            "adapt_seconds_max": float(secs.max()) if secs.size else 0.0,
            "targets": _targets(run),
            "records": list(run.records),
            "git_revision": git_revision(),
            "command": command,
        },
    }
    if run.af_gate is not None:
        extra["af_gate_settings"] = run.af_gate
    points = [_curve_point(r) for r in curve]
    if points:
        extra["budget_curve"] = points
    paths = write_evaluation(run.result, out, extra=extra)
    if points:
        paths["budget_curve"] = plot_budget_curve(
            points, out / "budget_curve.png", title=f"{run.result.model_name}: patient-adaptive DS2"
        )
        paths["budget_curve_json"] = write_json(out / "budget_curve.json", points)
    lines = ["", "## Patient adaptation", ""]
    lines.append(
        f"Labels: {run.labels}; method: {extra['adaptation']['method']}; confirmed-beat budget: "
        f"{extra['adaptation']['budget']}; adaptation time per patient mean "
        f"{extra['adaptation']['adapt_seconds_mean']:.2f} s, max "
        f"{extra['adaptation']['adapt_seconds_max']:.2f} s (shared machine, re-measure)."
    )
    lines += ["", "| target | value | met | gap |", "|---|---|---|---|"]
    for t in extra["adaptation"]["targets"]:
        lines.append(
            f"| {t['metric']} >= {t['target']} | {t['value']:.4f} | {t['met']} | {t['gap']:+.4f} |"
        )
    if points:
        lines += [
            "",
            "| confirmed beats | SVEB Se | SVEB +P | SVEB F1 | VEB Se | VEB +P | VEB F1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for pt in points:
            lines.append(
                f"| {pt['budget']} | {100 * pt['sveb_se']:.1f} | {100 * pt['sveb_ppv']:.1f} | "
                f"{100 * pt['sveb_f1']:.1f} | {100 * pt['veb_se']:.1f} | {100 * pt['veb_ppv']:.1f} | "
                f"{100 * pt['veb_f1']:.1f} |"
            )
    with paths["report"].open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return paths


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read a ``metrics.json`` written by :func:`write_patient_adaptive`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
