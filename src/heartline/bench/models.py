"""``heartline bench models``: the hybrid and every baseline under one protocol, in one run.

Models: the hybrid CNN-LSTM, the same hybrid as a cross-fitted ensemble with decision offsets
calibrated on out-of-fold DS1 predictions (``hybrid_ensemble``), the deep baselines (``cnn``, ``lstm``, ``gru``, ``transformer``),
the classical ones (``random_forest``, ``decision_tree``, ``svm``, ``gradient_boosting``) and the
naive ``always_n``. Under ``inter-patient`` (and ``intra-patient``) each model is trained once on
the protocol's training beats (annotated R-peaks), stopped early on its validation beats, then
tested on the annotated and on the detected R-peaks (:mod:`heartline.training.protocols`).
Every model gets the same beat sets: when the hybrid's config reads the patient-adaptive template
columns (``model.params.template_features = true``, :mod:`heartline.signal.templates`) every
model gets them after the RR columns (the deep baselines in their RR input, the classical ones
in their feature matrix), otherwise none does; ``models.json`` and ``models.md`` say which.
Under ``cv10`` every model is trained on every fold and the hybrid is compared with each
baseline by paired t-test and Wilcoxon signed-rank test (macro-F1, SVEB F1, VEB F1).

Writes into the caller's directory: ``models.json``, ``models.md`` (the measured table beside
published inter-patient figures, quoted as published, not re-measured) and, per model, a run
directory (``config.toml``, ``model/``, ``history.json``, ``annotated/`` and ``detected/`` with
``metrics.json``, ``report.md`` and plots). ``DIR/hybrid`` can be shipped with ``heartline ship``.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
Zhang Z, Dong J, Luo X, Choi KS, Wu X. Heartbeat classification using disease-specific feature
selection. Comput Biol Med 46:79-89 (2014).
Mar T, Zaunseder S, Martínez JP, Llamedo M, Poll R. Optimization of ECG classification by means
of feature selection. IEEE Trans Biomed Eng 58(8):2168-2177 (2011).
Garcia G, Moreira G, Menotti D, Luz E. Inter-patient ECG heartbeat classification with temporal
VCG optimized by PSO. Sci Rep 7:10543 (2017).
Mondéjar-Guerra V, Novo J, Rouco J, Penedo MG, Ortega M. Heartbeat classification fusing temporal
and morphological information of ECGs via ensemble of classifiers. Biomed Signal Process Control
47:41-48 (2019).
Niu J, Tang Y, Sun Z, Zhang W. Inter-patient ECG classification with symbolic representations and
multi-perspective convolutional neural networks. IEEE J Biomed Health Inform 24(5):1321-1332 (2020).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heartline.training.config import ExperimentConfig, ModelConfig, TrainConfig
from heartline.training.protocols import PROTOCOLS, ProtocolData, ProtocolResult

__all__ = [
    "BENCH_MODELS",
    "PUBLISHED",
    "default_configs",
    "render_markdown",
    "resolve_inputs",
    "run_models_benchmark",
]

logger = logging.getLogger(__name__)

#: Every model of the benchmark, in table order.
BENCH_MODELS: tuple[str, ...] = (
    "hybrid",
    "hybrid_ensemble",
    "cnn",
    "lstm",
    "gru",
    "transformer",
    "random_forest",
    "decision_tree",
    "svm",
    "gradient_boosting",
    "always_n",
)
DEEP = ("hybrid", "hybrid_ensemble", "cnn", "lstm", "gru", "transformer")
#: Models built from the hybrid's config; they read the template columns only when it says so.
HYBRID_LIKE = ("hybrid", "hybrid_ensemble")
#: Members of the cross-fitted ensemble (``hybrid_ensemble``), each the benchmark's hybrid.
ENSEMBLE_MEMBERS = 3

#: Published inter-patient (DS1 -> DS2) results, in percent, quoted as published (not
#: re-measured here). ``None``: not quoted in this table (see the paper).
PUBLISHED: tuple[dict[str, Any], ...] = (
    {
        "work": "de Chazal et al. 2004 (LDA, morphology + RR)",
        "ref": "IEEE TBME 51(7):1196-1206",
        "sveb_se": 75.9,
        "sveb_ppv": 38.5,
        "veb_se": 77.7,
        "veb_ppv": 81.9,
    },
    {"work": "Mar et al. 2011 (feature selection, LDA/MLP)", "ref": "IEEE TBME 58(8):2168-2177"},
    {
        "work": "Zhang et al. 2014 (disease-specific features, SVM)",
        "ref": "Comput Biol Med 46:79-89",
        "veb_ppv": 92.7,
    },
    {
        "work": "Garcia et al. 2017 (temporal VCG, PSO-SVM)",
        "ref": "Sci Rep 7:10543",
        "sveb_se": 62.0,
        "sveb_ppv": 53.0,
    },
    {
        "work": "Mondéjar-Guerra et al. 2019 (SVM ensemble)",
        "ref": "Biomed Signal Process Control 47:41-48",
    },
    {
        "work": "Niu et al. 2020 (multi-perspective CNN)",
        "ref": "IEEE JBHI 24(5):1321-1332",
        "sveb_f1": 76.6,
        "veb_f1": 89.7,
        "accuracy": 96.4,
    },
)


def default_configs(
    *,
    quick: bool = False,
    time_budget_s: float | None = None,
    hybrid_time_budget_s: float | None = None,
    num_threads: int = 1,
    hybrid_params: dict[str, Any] | None = None,
    hybrid_train: TrainConfig | None = None,
    template_features: bool | None = None,
) -> dict[str, ExperimentConfig]:
    """Experiment configs of the deep models (classical models use their defaults).

    ``quick``: one epoch and small networks (tests, smoke runs); of ``hybrid_params`` only
    ``template_features`` is kept, since it decides the inputs, not the size. Otherwise at most
    30 epochs, patience 5, and the given wall-clock budgets per model.

    ``template_features``: whether the hybrid and the ensemble read the template columns
    (``model.params.template_features``); ``None`` keeps what ``hybrid_params`` says (false
    when it says nothing). The key is written only when it is true or ``hybrid_params`` has it,
    so the configs of an RR-only hybrid are unchanged. :func:`run_models_benchmark` gives every
    model the template columns when these configs read them.
    """
    tpl = (
        ModelConfig("hybrid", dict(hybrid_params or {})).template_features
        if template_features is None
        else bool(template_features)
    )
    out = {}
    for name in DEEP:
        if quick:
            params: dict[str, Any] = (
                {"context_k": 2, "channels": 4, "feature_dim": 8, "lstm_hidden": 8}
                if name in HYBRID_LIKE
                else {}
            )
            train = TrainConfig(max_epochs=1, batch_size=256, num_threads=num_threads)
        else:
            params = dict(hybrid_params or {}) if name in HYBRID_LIKE else {}
            budget = hybrid_time_budget_s if name in HYBRID_LIKE else time_budget_s
            train = TrainConfig(
                max_epochs=30, patience=5, time_budget_s=budget, num_threads=num_threads
            )
            if name in HYBRID_LIKE and hybrid_train is not None:
                train = dataclasses.replace(
                    hybrid_train,
                    num_threads=num_threads,
                    time_budget_s=budget or hybrid_train.time_budget_s,
                )
        if name == "hybrid_ensemble":
            # the same hybrid, cross-fitted: the budget is shared by the members
            params = {k: v for k, v in params.items() if k not in ("n_members", "calibrate")} | {
                "n_members": 2 if quick else ENSEMBLE_MEMBERS,
                "calibrate": True,
            }
        if name in HYBRID_LIKE and (tpl or "template_features" in (hybrid_params or {})):
            params["template_features"] = tpl
        out[name] = ExperimentConfig(
            name=f"bench-{name}", model=ModelConfig(name, params), train=train
        )
    return out


def _summary(r: ProtocolResult) -> dict[str, Any]:
    from heartline.training.protocols import ec57_f1

    m = r.metrics
    return {
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "kappa": m.kappa,
        "mcc": m.mcc,
        "sveb_se": m.sveb_se,
        "sveb_ppv": m.sveb_ppv,
        "sveb_f1": ec57_f1(m.sveb_se, m.sveb_ppv),
        "veb_se": m.veb_se,
        "veb_ppv": m.veb_ppv,
        "veb_f1": ec57_f1(m.veb_se, m.veb_ppv),
        "n_test_beats": m.n_test_beats,
        "ci95": {k: list(v) for k, v in m.ci95.items()},
        "train_seconds": r.train_seconds,
        "predict_seconds": r.predict_seconds,
        "n_missed_beats": r.n_missed,
        "n_false_detections": r.n_false,
    }


def _factory(name: str, configs: dict[str, ExperimentConfig]) -> Callable[[], Any]:
    from heartline.training.evaluate import factory_for

    if name in configs:
        c = configs[name]
        return factory_for(name, params=c.model.params, train=c.train)
    return factory_for(name)


def resolve_inputs(
    data: ProtocolData, configs: dict[str, ExperimentConfig], names: Sequence[str]
) -> ProtocolData:
    """``data`` with the template columns when any config (or ``data`` itself) asks for them.

    One input set for the whole run: the template columns are built for every model as soon as
    one of ``configs`` reads them (in practice the hybrid's, see :func:`default_configs`) or
    ``data.template_features`` is set.

    Raises
    ------
    ValueError
        If the beat sets carry the template columns but the hybrid or the ensemble among
        ``names`` does not read them (it would take them for RR columns).
    """
    readers = [n for n, c in configs.items() if c.model.template_features]
    if not (readers or data.template_features):
        return data
    blind = [
        n
        for n in names
        if n in HYBRID_LIKE and not (n in configs and configs[n].model.template_features)
    ]
    if blind:
        why = f"read by {', '.join(readers)}" if readers else "data.template_features is set"
        raise ValueError(
            f"the beat sets carry the template columns ({why}) but {', '.join(blind)} would "
            "take them for RR columns: set model.params.template_features = true in their "
            "configs (default_configs(template_features=True)) or run them separately"
        )
    return dataclasses.replace(data, template_features=True)


def run_models_benchmark(
    models: Sequence[str] | None = None,
    *,
    out_dir: str | Path,
    protocol: str = "inter-patient",
    quick: bool = False,
    data: ProtocolData | None = None,
    configs: dict[str, ExperimentConfig] | None = None,
    seeds: Sequence[int] = (0,),
    rpeaks: Sequence[str] = ("annotated", "detected"),
    n_bootstrap: int = 1000,
    on_model: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and test every model under ``protocol``; write ``models.json`` and ``models.md``.

    Parameters
    ----------
    models : sequence of str, optional
        Subset of :data:`BENCH_MODELS` (default: all).
    out_dir : path
        Run directory given by the caller.
    protocol : {"inter-patient", "intra-patient", "cv10"}
    quick : bool
        Few records (:meth:`ProtocolData.quick`), one epoch, small networks, 3 folds for cv10.
    data : ProtocolData, optional
        Data settings (overrides ``quick``'s records when given).
    configs : dict, optional
        Deep models' experiment configs (default :func:`default_configs`). When one of them
        reads the template columns, every model gets them (:func:`resolve_inputs`).
    seeds : sequence of int
        Training seeds; with several, the table shows the mean and ``models.json`` every run.
    rpeaks : sequence of str
        Test R-peak sources (inter/intra-patient); cv10 uses the first.
    on_model : callable, optional
        Called with each model name before it runs (progress).

    Returns
    -------
    dict
        What ``models.json`` holds.
    """
    from heartline.training.evaluate import write_evaluation
    from heartline.training.protocols import compare_folds, cv10_splits, run_cv10, run_protocol
    from heartline.training.rundir import git_revision, write_json

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    names = list(models) if models else list(BENCH_MODELS)
    unknown = [m for m in names if m not in BENCH_MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; valid: {', '.join(BENCH_MODELS)}")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = data or (ProtocolData.quick() if quick else ProtocolData())
    configs = configs or default_configs(quick=quick)
    data = resolve_inputs(data, configs, names)
    inputs = data.describe_inputs()
    logger.info("inputs of every model: %s", inputs)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "protocol": protocol,
        "quick": quick,
        "seeds": list(seeds),
        "inputs": {
            "label": inputs,
            "template_features": data.template_features,
            "rr_columns": list(data.rr_columns),
        },
        "git_revision": git_revision(),
        "published": list(PUBLISHED),
        "configs": {k: _config_dict(v) for k, v in configs.items() if k in names},
        "models": {},
    }
    if protocol == "cv10":
        from heartline.training.protocols import FoldResult

        splits = cv10_splits(data, rpeaks=rpeaks[0], n_folds=3 if quick else 10, seed=seeds[0])
        results: dict[str, FoldResult] = {}
        for name in names:
            if on_model:
                on_model(name)
            results.update(
                run_cv10(
                    {name: _factory(name, configs)}, splits=splits, seed=seeds[0], n_bootstrap=0
                )
            )
            report["models"][name] = {
                "inputs": inputs,
                "folds": [
                    dict(_summary(f), fold=f.fold, test_records=list(f.test_records))
                    for f in results[name].folds
                ],
                "mean": {
                    k: _nanmean([_summary(f)[k] for f in results[name].folds])
                    for k in (
                        "accuracy",
                        "macro_f1",
                        "sveb_f1",
                        "veb_f1",
                        "sveb_se",
                        "sveb_ppv",
                        "veb_se",
                        "veb_ppv",
                    )
                },
            }
        if "hybrid" in results and len(results) > 1:
            report["paired_tests"] = compare_folds(results, reference="hybrid")
    else:
        for name in names:
            if on_model:
                on_model(name)
            runs = []
            for seed in seeds:
                run_dir = out / name if len(seeds) == 1 else out / f"{name}-seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                if name in configs:
                    from heartline.training.config import save_config

                    save_config(
                        dataclasses.replace(
                            configs[name], train=dataclasses.replace(configs[name].train, seed=seed)
                        ),
                        run_dir / "config.toml",
                    )
                model, res = run_protocol(
                    _factory(name, configs),
                    protocol,
                    model_name=name,
                    data=data,
                    rpeaks=tuple(rpeaks),
                    run_dir=run_dir,
                    seed=seed,
                    n_bootstrap=n_bootstrap,
                )
                model.save(run_dir / "model")
                entry: dict[str, Any] = {"seed": seed, "run_dir": str(run_dir)}
                for rp, r in res.items():
                    write_evaluation(r, run_dir / rp)
                    entry[rp] = _summary(r)
                    if r.val_metrics is not None:
                        entry[rp]["val_macro_f1"] = r.val_metrics.macro_f1
                res0 = next(iter(res.values()))
                write_json(
                    run_dir / "metrics.json",
                    {
                        "model": name,
                        "protocol": protocol,
                        "train_seconds": res0.train_seconds,
                        "seed": seed,
                        "inputs": inputs,
                        **{rp: _summary(r) for rp, r in res.items()},
                    },
                )
                runs.append(entry)
                logger.info(
                    "%s seed %d: %s",
                    name,
                    seed,
                    {rp: round(entry[rp]["macro_f1"], 3) for rp in res},
                )
            report["models"][name] = {
                "inputs": inputs,
                "runs": runs,
                "mean": _mean_runs(runs, rpeaks),
            }
    report["total_seconds"] = time.perf_counter() - t_start
    write_json(out / "models.json", report)
    (out / "models.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _config_dict(c: ExperimentConfig) -> dict[str, Any]:
    from heartline.training.config import config_to_dict

    return config_to_dict(c)


def _nanmean(values: Sequence[float | None]) -> float:
    """Mean of the finite values; NaN (shown as n/a) when there are none, e.g. a class absent
    from every fold's test records (without NumPy's 'Mean of empty slice' warning).

    >>> _nanmean([0.5, None, float("nan"), 1.0]), _nanmean([None, float("nan")])
    (0.75, nan)
    """
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _mean_runs(runs: list[dict[str, Any]], rpeaks: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rp in rpeaks:
        vals = [r[rp] for r in runs if rp in r]
        if not vals:
            continue
        out[rp] = {
            k: _nanmean([np.nan if v[k] is None else v[k] for v in vals])
            for k in vals[0]
            if isinstance(vals[0][k], (int, float)) and not isinstance(vals[0][k], bool)
        }
        out[rp]["ci95"] = vals[0]["ci95"] if len(vals) == 1 else {}
    return out


def _p(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{100 * float(x):.1f}"


def _pci(v: dict[str, Any], key: str) -> str:
    ci = v.get("ci95", {}).get(key)
    if ci and ci[0] is not None and np.isfinite(ci[0]):
        return f"{_p(v[key])} [{_p(ci[0])}-{_p(ci[1])}]"
    return _p(v.get(key))


def render_markdown(report: dict[str, Any]) -> str:
    """``models.md``: measured table(s), published figures with citations, notes."""
    proto = report["protocol"]
    lines = [
        f"# heartline bench models: {proto}"
        + (" (QUICK smoke run: few records, 1 epoch; not a result)" if report.get("quick") else ""),
        "",
    ]
    inputs = report.get("inputs")
    if inputs:
        lines += [
            f"Inputs, the same beat sets for every model: the beat windows and {inputs['label']}"
            + (" (heartline.signal.templates)." if inputs.get("template_features") else "."),
            "",
        ]
    if proto == "intra-patient":
        lines += [
            "**LEAKY: same patients in train and test.** Not comparable to inter-patient figures.",
            "",
        ]
    if proto == "cv10":
        lines += [
            "10-fold cross-validation grouped by record over DS1 + DS2 (mean over folds).",
            "",
            "| model | accuracy | macro-F1 | SVEB Se | SVEB +P | SVEB F1 | VEB Se | VEB +P | VEB F1 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in report["models"].items():
            v = m["mean"]
            lines.append(
                f"| {name} | {_p(v['accuracy'])} | {_p(v['macro_f1'])} | {_p(v['sveb_se'])} | {_p(v['sveb_ppv'])} | {_p(v['sveb_f1'])} | {_p(v['veb_se'])} | {_p(v['veb_ppv'])} | {_p(v['veb_f1'])} |"
            )
        tests = report.get("paired_tests")
        if tests:
            lines += [
                "",
                "## Hybrid vs each baseline (paired over folds; p-values)",
                "",
                "The t-test is optimistic with CV folds (Dietterich 1998); Wilcoxon makes no normality assumption.",
                "",
                "| baseline | metric | hybrid mean | baseline mean | t-test p | Wilcoxon p |",
                "|---|---|---|---|---|---|",
            ]
            for base, comp in tests["comparisons"].items():
                for metric, e in comp.items():
                    tp = e["t_test"].get("p_value")
                    wp = e["wilcoxon"].get("p_value")
                    lines.append(
                        f"| {base} | {metric} | {_p(e['reference_mean'])} | {_p(e['other_mean'])} | {'n/a' if tp is None else f'{tp:.3g}'} | {'n/a' if wp is None else f'{wp:.3g}'} |"
                    )
    else:
        for rp in ("annotated", "detected"):
            if not any(rp in m["mean"] for m in report["models"].values()):
                continue
            lines += [
                f"## Measured: DS2, {rp} R-peaks"
                if proto == "inter-patient"
                else f"## Measured: test beats, {rp} R-peaks",
                "",
                (
                    "Percent; [95 % CI] by record bootstrap (single seed)."
                    if len(report.get("seeds", [0])) == 1
                    else f"Percent; mean of {len(report['seeds'])} training seeds "
                    f"({', '.join(str(x) for x in report['seeds'])}); every run in models.json."
                )
                + (
                    " Missed beats count as errors, false detections as EC57 false positives."
                    if rp == "detected"
                    else ""
                ),
                "",
                "| model | accuracy | macro-F1 | SVEB Se | SVEB +P | SVEB F1 | VEB Se | VEB +P | VEB F1 | kappa | train s |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name, m in report["models"].items():
                v = m["mean"].get(rp)
                if v is None:
                    continue
                lines.append(
                    f"| {name} | {_pci(v, 'accuracy')} | {_pci(v, 'macro_f1')} | {_pci(v, 'sveb_se')} | {_pci(v, 'sveb_ppv')} | {_p(v['sveb_f1'])} | "
                    f"{_pci(v, 'veb_se')} | {_pci(v, 'veb_ppv')} | {_p(v['veb_f1'])} | {_p(v['kappa'])} | {v['train_seconds']:.0f} |"
                )
            lines.append("")
    if lines[-1] != "":
        lines.append("")
    lines += [
        "## Published inter-patient results (DS1 -> DS2), for context",
        "",
        "Quoted as published, not re-measured here; preprocessing, lead use and class handling differ between papers. Blank: not quoted in this table, see the paper.",
        "",
        "| work | source | SVEB Se | SVEB +P | SVEB F1 | VEB Se | VEB +P | VEB F1 | accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["published"]:
        cell = lambda k, p=p: "" if p.get(k) is None else f"{p[k]:.1f}"  # noqa: E731
        lines.append(
            f"| {p['work']} | {p['ref']} | {cell('sveb_se')} | {cell('sveb_ppv')} | {cell('sveb_f1')} | {cell('veb_se')} | {cell('veb_ppv')} | {cell('veb_f1')} | {cell('accuracy')} |"
        )
    lines += [
        "",
        "Targets (DS2): SVEB Se and +P >= 85 %, VEB Se and +P >= 97 %, accuracy >= 97 %.",
        "",
        f"Total run time {report.get('total_seconds', float('nan')):.0f} s; git revision `{report.get('git_revision')}`.",
        "",
    ]
    return "\n".join(lines)
