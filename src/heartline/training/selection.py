"""Model selection on all of DS1 by cross-fitted out-of-fold (OOF) predictions; DS2 is never read.

Why. Early stopping and model choice on the five default validation records (about 170 SVEB
beats) ranked hybrids in the opposite order to DS2 several times (docs/benchmarks/models/). A
criterion that sees every DS1 patient is far less noisy: each candidate config is trained as a
cross-fitted ensemble (:class:`~heartline.models.ensemble.CrossFitHybridClassifier`): DS1's
records are dealt into ``folds`` stratified record folds, one member is trained per fold and
early-stopped on its held-out fold, and every DS1 beat is predicted by the member that never saw
its patient. The pooled OOF macro-F1 (N, S, V, F; before the ensemble's decision offsets, which
are fitted on these same predictions) is the criterion, averaged over seeds. This is the
record-grouped cross-validation that Varma & Simon (2006) and Cawley & Talbot (2010) recommend
for choosing among models, restricted to DS1 as de Chazal et al. (2004) require.

Each candidate-seed run is a normal run directory (``config.toml``, ``model/``, ``crossfit.json``,
``oof.npz``), so the winner can be shipped as it is with ``heartline ship RUN_DIR``.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE TBME 51(7):1196-1206, 2004.
Varma S, Simon R. Bias in error estimation when using cross-validation for model selection.
BMC Bioinformatics 7:91, 2006.
Cawley GC, Talbot NLC. On over-fitting in model selection and subsequent selection bias in
performance evaluation. JMLR 11:2079-2107, 2010.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.training.config import ExperimentConfig, ModelConfig, save_config
from heartline.training.trainer import macro_f1, per_class_rates

__all__ = [
    "CandidateRun",
    "RecordErrors",
    "SelectionResult",
    "crossfit_config",
    "paired_record_bootstrap",
    "refit_config",
    "render_selection",
    "run_selection",
    "summarise_oof",
]

logger = logging.getLogger(__name__)

#: Model names that can be cross-fitted (members are hybrids).
CROSSFIT_MODELS = ("hybrid", "hybrid_ensemble")


@dataclass(frozen=True)
class RecordErrors:
    """One DS1 record's OOF macro-F1 and its SVEB / VEB false positives and negatives."""

    record: str
    n_beats: int
    macro_f1: float
    s_fp: int
    s_fn: int
    v_fp: int
    v_fn: int


@dataclass(frozen=True)
class CandidateRun:
    """Out-of-fold summary of one candidate config trained with one seed."""

    name: str
    seed: int
    run_dir: Path
    n_beats: int
    accuracy: float
    macro_f1: float
    record_mean_macro_f1: float
    sveb_se: float | None
    sveb_ppv: float | None
    veb_se: float | None
    veb_ppv: float | None
    member_best_epochs: tuple[int, ...]
    member_stop_reasons: tuple[str, ...]
    train_seconds: float
    per_record: tuple[RecordErrors, ...]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d


@dataclass(frozen=True)
class SelectionResult:
    """All candidate runs, the mean criterion per candidate and the winner."""

    criterion: str
    runs: tuple[CandidateRun, ...]
    mean_macro_f1: dict[str, float]
    winner: str
    winner_run_dir: Path
    #: ``other -> (winner - other, 2.5 %, 97.5 %)``: mean over seeds, record bootstrap.
    differences: dict[str, tuple[float, float, float]]
    folds: tuple[tuple[str, ...], ...]
    #: Epochs of the refit on all DS1: median best epoch of the winner's members.
    refit_epochs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "winner": self.winner,
            "winner_run_dir": str(self.winner_run_dir),
            "mean_macro_f1": self.mean_macro_f1,
            "differences_vs_winner": {
                k: {"diff": d, "ci95": [lo, hi]} for k, (d, lo, hi) in self.differences.items()
            },
            "folds": [list(f) for f in self.folds],
            "refit_epochs": self.refit_epochs,
            "runs": [r.to_dict() for r in self.runs],
        }


def crossfit_config(
    config: ExperimentConfig,
    *,
    folds: int,
    seed: int,
    time_budget_s: float | None,
    num_threads: int | None = None,
    name: str | None = None,
) -> ExperimentConfig:
    """The cross-fitted version of a hybrid config: ``hybrid_ensemble`` with ``folds`` members.

    The architecture and training settings are kept; ``seed``, the total ``time_budget_s``
    (shared by the members) and ``num_threads`` are set. Decision offsets are fitted
    (``calibrate = true``) so that the run is shippable; the selection criterion uses the
    predictions before them.

    Raises
    ------
    ValueError
        If the config's model is not a hybrid, or ``folds < 2``.
    """
    if config.model.name not in CROSSFIT_MODELS:
        raise ValueError(
            f"only hybrid configs can be cross-fitted ({', '.join(CROSSFIT_MODELS)}), "
            f"got model {config.model.name!r}"
        )
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    params = dict(config.model.params)
    params.update(n_members=int(folds), calibrate=True)
    train = dataclasses.replace(config.train, seed=int(seed), time_budget_s=time_budget_s)
    if num_threads is not None:
        train = dataclasses.replace(train, num_threads=int(num_threads))
    return dataclasses.replace(
        config,
        name=name or f"{config.name}-crossfit",
        model=ModelConfig(name="hybrid_ensemble", params=params),
        train=train,
    )


def refit_config(
    config: ExperimentConfig, *, epochs: int, name: str | None = None
) -> ExperimentConfig:
    """``config`` trained on all DS1 records for exactly ``epochs`` epochs, with no validation.

    The number of epochs comes from the cross-fitted runs (the median best epoch of their
    members), so nothing is chosen on the data the refit trains on; ``time_budget_s`` is lifted
    so that the refit trains the epochs it was given.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return dataclasses.replace(
        config,
        name=name or f"{config.name}-refit",
        data=dataclasses.replace(config.data, hold_out_validation=False),
        train=dataclasses.replace(
            config.train, monitor="none", max_epochs=int(epochs), time_budget_s=None
        ),
    )


def summarise_oof(run_dir: str | Path, *, name: str, seed: int) -> CandidateRun:
    """Read ``oof.npz`` and ``crossfit.json`` of a cross-fitted run into a :class:`CandidateRun`."""
    run_dir = Path(run_dir)
    d = np.load(run_dir / "oof.npz", allow_pickle=False)
    info = json.loads((run_dir / "crossfit.json").read_text(encoding="utf-8"))
    y = d["labels"].astype(int)
    rec = d["record"].astype(str)
    pred = d["log_proba"].argmax(axis=1)
    keep = y >= 0
    rates = per_class_rates(y, pred, ("N", "S", "V", "F", "Q"))
    per_rec = []
    for r in sorted(set(rec[keep].tolist())):
        m = (rec == r) & keep
        yt, yp = y[m], pred[m]
        per_rec.append(
            RecordErrors(
                record=r,
                n_beats=int(m.sum()),
                macro_f1=macro_f1(yt, yp),
                s_fp=int(np.count_nonzero((yp == 1) & (yt != 1))),
                s_fn=int(np.count_nonzero((yp != 1) & (yt == 1))),
                v_fp=int(np.count_nonzero((yp == 2) & (yt != 2))),
                v_fn=int(np.count_nonzero((yp != 2) & (yt == 2))),
            )
        )
    return CandidateRun(
        name=name,
        seed=int(seed),
        run_dir=run_dir,
        n_beats=int(keep.sum()),
        accuracy=float(np.mean(y[keep] == pred[keep])),
        macro_f1=macro_f1(y, pred),
        record_mean_macro_f1=float(np.mean([p.macro_f1 for p in per_rec])),
        sveb_se=rates["S"]["se"],
        sveb_ppv=rates["S"]["ppv"],
        veb_se=rates["V"]["se"],
        veb_ppv=rates["V"]["ppv"],
        member_best_epochs=tuple(int(e) for e in info.get("member_best_epochs", ())),
        member_stop_reasons=tuple(str(s) for s in info.get("member_stop_reasons", ())),
        train_seconds=float(info.get("train_seconds", float("nan"))),
        per_record=tuple(per_rec),
    )


def _oof_arrays(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = np.load(Path(run_dir) / "oof.npz", allow_pickle=False)
    return (
        d["labels"].astype(int),
        d["log_proba"].argmax(axis=1),
        d["record"].astype(str),
        d["sample_idx"].astype(np.int64),
    )


def paired_record_bootstrap(
    runs_a: Sequence[str | Path],
    runs_b: Sequence[str | Path],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean pooled OOF macro-F1 of ``runs_a`` minus ``runs_b`` (paired by seed), with a 95 % CI.

    ``runs_a[i]`` and ``runs_b[i]`` are two candidates trained with the same seed; all runs must
    hold OOF predictions of the same beats (same records and R-peaks). Records are drawn with
    replacement (the patient is the unit, as in the evaluation's bootstrap) and every run is
    scored on the same draw, so the interval is for the paired difference averaged over seeds.

    Returns
    -------
    tuple of float
        ``(difference, 2.5 % quantile, 97.5 % quantile)``.

    Raises
    ------
    ValueError
        Unequal numbers of runs, or runs of different beats.
    """
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError(
            f"need equally many runs on both sides, got {len(runs_a)} and {len(runs_b)}"
        )
    arrays = [_oof_arrays(Path(r)) for r in (*runs_a, *runs_b)]
    y, _p, rec, samples = arrays[0]
    for other, run in zip(arrays[1:], (*runs_a, *runs_b)[1:], strict=True):
        if not (
            np.array_equal(other[0], y)
            and np.array_equal(other[2], rec)
            and np.array_equal(other[3], samples)
        ):
            raise ValueError(f"{run} does not hold OOF predictions of the same beats")
    preds_a = [a[1] for a in arrays[: len(runs_a)]]
    preds_b = [a[1] for a in arrays[len(runs_a) :]]

    def diff(idx: np.ndarray | slice) -> float:
        return float(
            np.mean(
                [
                    macro_f1(y[idx], pa[idx]) - macro_f1(y[idx], pb[idx])
                    for pa, pb in zip(preds_a, preds_b, strict=True)
                ]
            )
        )

    point = diff(slice(None))
    records = np.unique(rec)
    index = {r: np.flatnonzero(rec == r) for r in records}
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        boots[i] = diff(np.concatenate([index[r] for r in rng.choice(records, size=len(records))]))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return point, float(lo), float(hi)


def run_selection(
    candidates: Mapping[str, ExperimentConfig],
    *,
    out: str | Path,
    data: Any = None,
    seeds: Sequence[int] = (0,),
    folds: int = 3,
    time_budget_s: float | None = 540.0,
    num_threads: int | None = None,
    progress: bool = False,
    n_boot: int = 1000,
) -> SelectionResult:
    """Train every candidate cross-fitted on DS1 with every seed and pick the best by OOF macro-F1.

    Parameters
    ----------
    candidates : mapping
        Name -> hybrid experiment config (``model.name`` ``hybrid`` or ``hybrid_ensemble``).
    out : path
        Selection folder; each run goes to ``out/<name>-s<seed>/``, the report to
        ``out/selection.json``, ``out/selection.md`` and ``out/selection.png``, and the winner's
        refit config (all DS1, fixed epochs, see :func:`refit_config`) to ``out/refit.toml``.
    data : heartline.training.protocols.ProtocolData, optional
        Which DS1 records (default all 22; ``ProtocolData.quick()`` for smoke runs). Only its
        training and validation records are read; test records never are.
    seeds : sequence of int
        Seeds; the criterion is the mean over seeds.
    folds : int
        Record folds (= ensemble members) per run.
    time_budget_s : float or None
        Training budget of each run (shared by its members), the same for every candidate.
    num_threads : int, optional
        Torch threads of each run (default: each config's own).
    n_boot : int
        Record-bootstrap draws for the paired differences.

    Returns
    -------
    SelectionResult
        Also written to ``out``.

    Raises
    ------
    ValueError
        No candidates, no seeds, a non-hybrid candidate or a bad name.
    """
    from heartline.data.splits import DS1, validation_records
    from heartline.models.registry import get_model
    from heartline.training.protocols import ProtocolData
    from heartline.training.rundir import git_revision, update_run_info, write_json

    if not candidates:
        raise ValueError("at least one candidate config is needed")
    if not seeds:
        raise ValueError("at least one seed is needed")
    for name in candidates:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"candidate names are letters, digits, '-', '_', '.': got {name!r}")
    data = data if data is not None else ProtocolData()
    if data.train_records is not None:
        train_recs = tuple(data.train_records)
        val_recs = tuple(data.val_records or ())
    else:
        train_recs, val_recs = validation_records()
    if not set(train_recs) | set(val_recs) <= set(DS1):
        raise ValueError("selection must only use DS1 records")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    runs: list[CandidateRun] = []
    for name, config in candidates.items():
        for seed in seeds:
            cfg = crossfit_config(
                config,
                folds=folds,
                seed=seed,
                time_budget_s=time_budget_s,
                num_threads=num_threads,
                name=f"{name}-s{seed}",
            )
            d = cfg.data
            key = (d.leads, d.window_len, d.rpeaks)
            if key not in cache:
                kw = dataclasses.replace(data, leads=tuple(d.leads), window_len=d.window_len)
                cache[key] = (
                    kw.build(train_recs, rpeaks=d.rpeaks),
                    kw.build(val_recs, rpeaks=d.rpeaks) if val_recs else None,
                )
            train, val = cache[key]
            if val is None:
                val = train.subset(np.zeros(len(train), dtype=bool))
            run_dir = out / f"{name}-s{seed}"
            if run_dir.exists():
                raise FileExistsError(f"{run_dir} exists: use a new --out folder")
            run_dir.mkdir(parents=True)
            save_config(cfg, run_dir / "config.toml")
            write_json(
                run_dir / "run.json",
                {
                    "name": cfg.name,
                    "purpose": "DS1 out-of-fold model selection (heartline select)",
                    "records": sorted(set(train_recs) | set(val_recs)),
                    "git_revision": git_revision(),
                },
            )
            model = get_model(cfg.model.name, train=cfg.train, **cfg.model.params)
            logger.info("candidate %s seed %d: %s", name, seed, run_dir)
            t0 = time.perf_counter()
            model.fit(train, val, run_dir=run_dir, seed=seed, progress=progress)
            model.save(run_dir / "model")
            update_run_info(run_dir, train_seconds=time.perf_counter() - t0)
            runs.append(summarise_oof(run_dir, name=name, seed=seed))
    folds_used = tuple(
        tuple(f) for f in json.loads((runs[0].run_dir / "crossfit.json").read_text())["folds"]
    )
    mean = {n: float(np.mean([r.macro_f1 for r in runs if r.name == n])) for n in candidates}
    winner = max(mean, key=lambda n: mean[n])  # first listed wins a tie
    by_name = {n: [r.run_dir for r in runs if r.name == n] for n in candidates}
    differences = {
        n: paired_record_bootstrap(by_name[winner], by_name[n], n_boot=n_boot)
        for n in candidates
        if n != winner
    }
    best_run = max((r for r in runs if r.name == winner), key=lambda r: r.macro_f1)
    epochs = [e for r in runs if r.name == winner for e in r.member_best_epochs]
    refit_epochs = max(1, math.ceil(float(np.median(epochs)))) if epochs else 1
    result = SelectionResult(
        criterion="pooled out-of-fold macro-F1 (N, S, V, F) on all DS1 records, mean over seeds",
        runs=tuple(runs),
        mean_macro_f1=mean,
        winner=winner,
        winner_run_dir=best_run.run_dir,
        differences=differences,
        folds=folds_used,
        refit_epochs=refit_epochs,
    )
    save_config(refit_config(candidates[winner], epochs=refit_epochs), out / "refit.toml")
    write_json(out / "selection.json", result.to_dict())
    (out / "selection.md").write_text(render_selection(result), encoding="utf-8")
    _plot_selection(result, out / "selection.png")
    return result


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def render_selection(result: SelectionResult) -> str:
    """Markdown report of a :class:`SelectionResult`."""
    lines = [
        "# Model selection on DS1, out of fold",
        "",
        f"Criterion: {result.criterion}. DS2 is not read. Folds (records): "
        + "; ".join(",".join(f) for f in result.folds)
        + ".",
        "",
        "| candidate | seed | accuracy | macro-F1 | record-mean macro-F1 | SVEB Se | SVEB +P "
        "| VEB Se | VEB +P | member best epochs | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in result.runs:
        lines.append(
            f"| {r.name} | {r.seed} | {_pct(r.accuracy)} | {_pct(r.macro_f1)} | "
            f"{_pct(r.record_mean_macro_f1)} | {_pct(r.sveb_se)} | {_pct(r.sveb_ppv)} | "
            f"{_pct(r.veb_se)} | {_pct(r.veb_ppv)} | "
            f"{','.join(map(str, r.member_best_epochs))} | {r.train_seconds:.0f} |"
        )
    lines += ["", "| candidate | mean OOF macro-F1 | winner minus candidate [95 % CI, by record] |"]
    lines += ["|---|---:|---|"]
    for n, m in sorted(result.mean_macro_f1.items(), key=lambda kv: -kv[1]):
        if n == result.winner:
            cell = "(winner)"
        else:
            d, lo, hi = result.differences[n]
            cell = f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        lines.append(f"| {n} | {_pct(m)} | {cell} |")
    lines += [
        "",
        f"Winner: **{result.winner}**. Either ship its cross-fitted ensemble "
        f"(`heartline ship {result.winner_run_dir}`) or refit it on all DS1 records for "
        f"{result.refit_epochs} epochs (the median best epoch of its members, rounded up), with no validation "
        "records and nothing chosen on DS2: `heartline train --config refit.toml --out runs`.",
        "",
        "Most false SVEB per run (record: FP):",
        "",
    ]
    for r in result.runs:
        top = sorted(r.per_record, key=lambda e: -e.s_fp)[:5]
        lines.append(
            f"- {r.name} seed {r.seed}: " + ", ".join(f"{e.record}: {e.s_fp}" for e in top)
        )
    return "\n".join(lines) + "\n"


def _plot_selection(result: SelectionResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.mean_macro_f1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(names), 3.6))
    for i, n in enumerate(names):
        vals = [100 * r.macro_f1 for r in result.runs if r.name == n]
        ax.scatter([i] * len(vals), vals, color="C0", zorder=3)
        ax.hlines(100 * result.mean_macro_f1[n], i - 0.25, i + 0.25, color="C1")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("DS1 out-of-fold macro-F1 (%)")
    ax.set_title("Model selection (dots: seeds, line: mean)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
