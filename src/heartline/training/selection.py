"""Model selection on all of DS1 by cross-fitted out-of-fold (OOF) predictions; DS2 is never read.

Why this file is long (about 930 lines): one protocol, end to end (candidate configs, cross-fitted
members, out-of-fold pooling over seeds, the paired record bootstrap, pooling of earlier runs and
the report); its parts share one result schema and are only used together.

Why. Early stopping and model choice on the five default validation records (about 170 SVEB
beats) ranked hybrids in the opposite order to DS2 several times (docs/results/history.md). A
criterion that sees every DS1 patient is far less noisy: each candidate config is trained as a
cross-fitted ensemble (:class:`~heartline.training.crossfit.CrossFitHybridClassifier`): DS1's
records are dealt into ``folds`` stratified record folds, one member is trained per fold and
early-stopped on its held-out fold, and every DS1 beat is predicted by the member that never saw
its patient. The pooled OOF macro-F1 (N, S, V, F; before the ensemble's decision offsets, which
are fitted on these same predictions) is the criterion, averaged over seeds. This is the
record-grouped cross-validation that Varma & Simon (2006) and Cawley & Talbot (2010) recommend
for choosing among models, restricted to DS1 as de Chazal et al. (2004) require.

Each candidate-seed run is a normal run directory (``config.toml``, ``model/``, ``crossfit.json``,
``oof.npz``), so the winner can be shipped as it is with ``heartline ship RUN_DIR``.

Seeds trained by separate ``heartline select`` runs are pooled by :func:`pool_selections` with
the same seed averaging and paired record bootstrap (:func:`compare_candidates`). The bootstrap
works on per-record confusion matrices, which ``selection.json`` stores, so a pool can be
recomputed from the reports alone once the run directories are gone.

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
import hashlib
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
    "compare_candidates",
    "crossfit_config",
    "paired_record_bootstrap",
    "pool_selections",
    "refit_config",
    "render_selection",
    "run_selection",
    "summarise_oof",
]

logger = logging.getLogger(__name__)

#: Model names that can be cross-fitted (members are hybrids).
CROSSFIT_MODELS = ("hybrid", "hybrid_ensemble")
#: Class order of the OOF predictions and of the confusion matrices (AAMI).
CLASSES = ("N", "S", "V", "F", "Q")
#: Classes whose F1 the criterion averages (Q is left out, as in ``trainer.macro_f1``).
CRITERION_CLASSES = (0, 1, 2, 3)


@dataclass(frozen=True)
class RecordErrors:
    """One DS1 record's OOF macro-F1, its SVEB / VEB false positives and negatives and its
    confusion matrix (rows: true class, columns: predicted class, both in :data:`CLASSES` order;
    empty in reports written before it was stored)."""

    record: str
    n_beats: int
    macro_f1: float
    s_fp: int
    s_fn: int
    v_fp: int
    v_fn: int
    confusion: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecordErrors:
        """Inverse of :func:`dataclasses.asdict` (a ``selection.json`` entry)."""
        return cls(
            record=str(d["record"]),
            n_beats=int(d["n_beats"]),
            macro_f1=float(d["macro_f1"]),
            s_fp=int(d["s_fp"]),
            s_fn=int(d["s_fn"]),
            v_fp=int(d["v_fp"]),
            v_fn=int(d["v_fn"]),
            confusion=tuple(tuple(int(v) for v in row) for row in d.get("confusion", ())),
        )


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
    #: SHA-256 of the predicted beats (labels, records, R-peak samples): runs can only be
    #: compared if it is equal. Empty in reports written before it was stored.
    beats_sha256: str = ""
    #: ``run.json``'s ``platform`` (:func:`heartline.training.rundir.platform_info`): the same
    #: code and seed reproduce a run bit for bit only on the same kind of CPU. Empty in reports
    #: written before it was stored.
    platform: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, run_dir: str | Path | None = None) -> CandidateRun:
        """Inverse of :meth:`to_dict` (a ``selection.json`` run); ``run_dir`` overrides the
        stored one (which is relative to where ``heartline select`` ran)."""

        def opt(x: Any) -> float | None:
            return None if x is None else float(x)

        return cls(
            name=str(d["name"]),
            seed=int(d["seed"]),
            run_dir=Path(run_dir if run_dir is not None else d["run_dir"]),
            n_beats=int(d["n_beats"]),
            accuracy=float(d["accuracy"]),
            macro_f1=float(d["macro_f1"]),
            record_mean_macro_f1=float(d["record_mean_macro_f1"]),
            sveb_se=opt(d.get("sveb_se")),
            sveb_ppv=opt(d.get("sveb_ppv")),
            veb_se=opt(d.get("veb_se")),
            veb_ppv=opt(d.get("veb_ppv")),
            member_best_epochs=tuple(int(e) for e in d.get("member_best_epochs", ())),
            member_stop_reasons=tuple(str(r) for r in d.get("member_stop_reasons", ())),
            train_seconds=float(d.get("train_seconds", float("nan"))),
            per_record=tuple(RecordErrors.from_dict(e) for e in d["per_record"]),
            beats_sha256=str(d.get("beats_sha256", "")),
            platform=dict(d.get("platform", {})),
        )

    @property
    def poolable(self) -> bool:
        """Whether the record bootstrap can use this run (confusions and beat hash known)."""
        return bool(self.beats_sha256) and all(e.confusion for e in self.per_record)


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
    #: Selection folders whose runs were pooled (:func:`pool_selections`); empty for one run.
    pooled_from: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        pooled = {"pooled_from": list(self.pooled_from)} if self.pooled_from else {}
        return {
            **pooled,
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


def _beats_sha256(labels: np.ndarray, record: np.ndarray, sample_idx: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    h.update("\n".join(record.astype(str).tolist()).encode())
    h.update(np.ascontiguousarray(sample_idx, dtype="<i8").tobytes())
    return h.hexdigest()


def summarise_oof(run_dir: str | Path, *, name: str, seed: int) -> CandidateRun:
    """Read ``oof.npz`` and ``crossfit.json`` of a cross-fitted run into a :class:`CandidateRun`."""
    run_dir = Path(run_dir)
    d = np.load(run_dir / "oof.npz", allow_pickle=False)
    info = json.loads((run_dir / "crossfit.json").read_text(encoding="utf-8"))
    y = d["labels"].astype(int)
    rec = d["record"].astype(str)
    pred = d["log_proba"].argmax(axis=1)
    n_cls = max(len(CLASSES), int(d["log_proba"].shape[1]))
    keep = y >= 0
    rates = per_class_rates(y, pred, CLASSES)
    per_rec = []
    for r in sorted(set(rec[keep].tolist())):
        m = (rec == r) & keep
        yt, yp = y[m], pred[m]
        conf = np.bincount(yt * n_cls + yp, minlength=n_cls * n_cls).reshape(n_cls, n_cls)
        per_rec.append(
            RecordErrors(
                record=r,
                n_beats=int(m.sum()),
                macro_f1=macro_f1(yt, yp),
                s_fp=int(np.count_nonzero((yp == 1) & (yt != 1))),
                s_fn=int(np.count_nonzero((yp != 1) & (yt == 1))),
                v_fp=int(np.count_nonzero((yp == 2) & (yt != 2))),
                v_fn=int(np.count_nonzero((yp != 2) & (yt == 2))),
                confusion=tuple(tuple(int(v) for v in row) for row in conf),
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
        beats_sha256=_beats_sha256(y, rec, d["sample_idx"]),
        platform=_run_platform(run_dir),
    )


def _run_platform(run_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(info.get("platform", {})) if isinstance(info, dict) else {}


def _macro_f1_counts(conf: np.ndarray) -> float:
    """:func:`~heartline.training.trainer.macro_f1` of a confusion matrix (rows true, columns
    predicted): the same classes, the same skipping of absent classes, the same arithmetic."""
    f1s = []
    for c in CRITERION_CLASSES:
        t = int(conf[c].sum())
        if not t:
            continue
        tp = float(conf[c, c])
        denom = float(t + int(conf[:, c].sum()))
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def _label(run: CandidateRun) -> str:
    return f"{run.name} seed {run.seed} ({run.run_dir})"


def _record_confusions(runs: Sequence[CandidateRun]) -> np.ndarray:
    """``(n_runs, n_records, C, C)`` counts; every run must hold OOF predictions of the same beats."""
    for run in runs:
        if not run.poolable:
            raise ValueError(
                f"{_label(run)} has no per-record confusion matrices (a report written before "
                "they were stored) and no oof.npz was read: it cannot be bootstrapped"
            )
    ref = runs[0]
    for run in runs[1:]:
        if run.beats_sha256 != ref.beats_sha256 or [e.record for e in run.per_record] != [
            e.record for e in ref.per_record
        ]:
            raise ValueError(
                f"{_label(run)} does not hold OOF predictions of the same beats as {_label(ref)}"
            )
    return np.array([[e.confusion for e in run.per_record] for run in runs], dtype=np.int64)


def paired_record_bootstrap(
    runs_a: Sequence[CandidateRun | str | Path],
    runs_b: Sequence[CandidateRun | str | Path],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean pooled OOF macro-F1 of ``runs_a`` minus ``runs_b`` (paired by seed), with a 95 % CI.

    ``runs_a[i]`` and ``runs_b[i]`` are two candidates trained with the same seed (summaries, or
    run directories read with :func:`summarise_oof`); all runs must hold OOF predictions of the
    same beats (same records and R-peaks). Records are drawn with replacement (the patient is the
    unit, as in the evaluation's bootstrap) and every run is scored on the same draw, so the
    interval is for the paired difference averaged over seeds. A draw's macro-F1 is computed from
    the sum of the drawn records' confusion matrices, which equals the macro-F1 of their beats.

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
    runs = [
        r if isinstance(r, CandidateRun) else summarise_oof(r, name=Path(r).name, seed=-1)
        for r in (*runs_a, *runs_b)
    ]
    conf = _record_confusions(runs)
    conf_a, conf_b = conf[: len(runs_a)], conf[len(runs_a) :]

    def diff(weights: np.ndarray) -> float:
        # weights[r]: how often record r was drawn
        sums_a = np.einsum("r,krij->kij", weights, conf_a)
        sums_b = np.einsum("r,krij->kij", weights, conf_b)
        return float(
            np.mean(
                [
                    _macro_f1_counts(ca) - _macro_f1_counts(cb)
                    for ca, cb in zip(sums_a, sums_b, strict=True)
                ]
            )
        )

    n_rec = conf.shape[1]
    point = diff(np.ones(n_rec, dtype=np.int64))
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        draw = rng.choice(np.arange(n_rec), size=n_rec)  # the draws of rng.choice(records)
        boots[i] = diff(np.bincount(draw, minlength=n_rec))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return point, float(lo), float(hi)


def compare_candidates(
    runs: Sequence[CandidateRun], *, n_boot: int = 1000, seed: int = 0
) -> tuple[dict[str, float], str, dict[str, tuple[float, float, float]]]:
    """Mean OOF macro-F1 over seeds per candidate, the winner and its paired differences.

    Candidates keep the order in which they first appear in ``runs`` (the first wins a tie).
    Every candidate must have been trained with the same seeds, each once; runs are paired by
    seed for :func:`paired_record_bootstrap` (bootstrap generator seeded with ``seed``).

    Returns
    -------
    tuple
        ``(mean macro-F1 per candidate, winner, {other: (winner - other, 2.5 %, 97.5 %)})``.

    Raises
    ------
    ValueError
        No runs, a candidate-seed pair given twice, or candidates with different seeds.
    """
    if not runs:
        raise ValueError("no runs to compare")
    by_name: dict[str, dict[int, CandidateRun]] = {}
    for r in runs:
        seeds = by_name.setdefault(r.name, {})
        if r.seed in seeds:
            raise ValueError(
                f"candidate {r.name!r} seed {r.seed} given twice: {seeds[r.seed].run_dir} "
                f"and {r.run_dir}"
            )
        seeds[r.seed] = r
    seed_sets = {n: sorted(v) for n, v in by_name.items()}
    first = next(iter(seed_sets))
    for n, s in seed_sets.items():
        if s != seed_sets[first]:
            raise ValueError(
                f"candidates were trained with different seeds: {first} {seed_sets[first]}, {n} {s}"
            )
    order = seed_sets[first]
    mean = {n: float(np.mean([v[s].macro_f1 for s in order])) for n, v in by_name.items()}
    winner = max(mean, key=lambda n: mean[n])
    differences = {
        n: paired_record_bootstrap(
            [by_name[winner][s] for s in order],
            [by_name[n][s] for s in order],
            n_boot=n_boot,
            seed=seed,
        )
        for n in by_name
        if n != winner
    }
    return mean, winner, differences


def _select(
    runs: Sequence[CandidateRun],
    *,
    folds: tuple[tuple[str, ...], ...],
    n_boot: int,
    pooled_from: tuple[str, ...] = (),
) -> SelectionResult:
    mean, winner, differences = compare_candidates(runs, n_boot=n_boot)
    best_run = max((r for r in runs if r.name == winner), key=lambda r: r.macro_f1)
    epochs = [e for r in runs if r.name == winner for e in r.member_best_epochs]
    refit_epochs = max(1, math.ceil(float(np.median(epochs)))) if epochs else 1
    return SelectionResult(
        criterion="pooled out-of-fold macro-F1 (N, S, V, F) on all DS1 records, mean over seeds",
        runs=tuple(runs),
        mean_macro_f1=mean,
        winner=winner,
        winner_run_dir=best_run.run_dir,
        differences=differences,
        folds=folds,
        refit_epochs=refit_epochs,
        pooled_from=pooled_from,
    )


def _write_reports(result: SelectionResult, out: Path) -> None:
    from heartline.training.rundir import write_json

    write_json(out / "selection.json", result.to_dict())
    (out / "selection.md").write_text(render_selection(result), encoding="utf-8")
    _plot_selection(result, out / "selection.png")


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
    from heartline.training.protocols import ProtocolData
    from heartline.training.registry import get_model
    from heartline.training.rundir import git_revision, platform_info, update_run_info, write_json

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
            tpl = cfg.model.template_features
            key = (d.leads, d.window_len, d.rpeaks, tpl)
            if key not in cache:
                kw = dataclasses.replace(
                    data, leads=tuple(d.leads), window_len=d.window_len, template_features=tpl
                )
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
            update_run_info(
                run_dir, train_seconds=time.perf_counter() - t0, platform=platform_info()
            )
            runs.append(summarise_oof(run_dir, name=name, seed=seed))
    folds_used = tuple(
        tuple(f) for f in json.loads((runs[0].run_dir / "crossfit.json").read_text())["folds"]
    )
    result = _select(runs, folds=folds_used, n_boot=n_boot)
    save_config(
        refit_config(candidates[result.winner], epochs=result.refit_epochs), out / "refit.toml"
    )
    _write_reports(result, out)
    return result


def _pooled_run(folder: Path, d: Mapping[str, Any]) -> CandidateRun:
    """A run of ``folder/selection.json``: its stored summary if that holds the per-record
    confusions, otherwise re-read from ``folder/<name>-s<seed>/oof.npz``."""
    run = CandidateRun.from_dict(d)
    run_dir = folder / f"{run.name}-s{run.seed}"
    if run.poolable:
        return dataclasses.replace(run, run_dir=run_dir) if run_dir.is_dir() else run
    if not (run_dir / "oof.npz").is_file():
        raise ValueError(
            f"{folder / 'selection.json'}: run {run.name} seed {run.seed} has no per-record "
            f"confusion matrices (a report written before they were stored) and "
            f"{run_dir / 'oof.npz'} does not exist; the record bootstrap needs one of them"
        )
    fresh = summarise_oof(run_dir, name=run.name, seed=run.seed)
    if fresh.macro_f1 != run.macro_f1 or fresh.n_beats != run.n_beats:
        raise ValueError(
            f"{run_dir / 'oof.npz'} does not match {folder / 'selection.json'}: macro-F1 "
            f"{fresh.macro_f1!r} against {run.macro_f1!r}"
        )
    return dataclasses.replace(fresh, train_seconds=run.train_seconds)


def _comparable(config: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(config, name="run", train=dataclasses.replace(config.train, seed=0))


def _differing_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = list(dict.fromkeys([*a, *b]))
    out: list[str] = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _differing_keys(va, vb, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def _check_configs(
    runs: Sequence[CandidateRun], candidates: Mapping[str, ExperimentConfig]
) -> None:
    """Runs of one candidate must share their config (seed and name aside), and a candidate
    config given for the refit must be the one its runs were cross-fitted from."""
    from heartline.training.config import load_config

    seen: dict[str, tuple[Path, ExperimentConfig]] = {}
    for run in runs:
        path = run.run_dir / "config.toml"
        if not path.is_file():
            if run.name in candidates:
                raise ValueError(
                    f"{path} does not exist: cannot check that --candidate {run.name} is the "
                    "config of its runs"
                )
            continue
        cfg = load_config(path)
        if run.name in seen:
            ref_path, ref = seen[run.name]
            if _comparable(cfg) != _comparable(ref):
                where = _differing_keys(
                    dataclasses.asdict(_comparable(ref)), dataclasses.asdict(_comparable(cfg))
                )
                raise ValueError(
                    f"candidate {run.name!r}: {ref_path} and {path} differ beyond the seed "
                    f"({', '.join(where)})"
                )
        else:
            seen[run.name] = (path, cfg)
        if run.name in candidates:
            expected = crossfit_config(
                candidates[run.name],
                folds=int(cfg.model.params.get("n_members", 0)),
                seed=run.seed,
                time_budget_s=cfg.train.time_budget_s,
                num_threads=cfg.train.num_threads,
                name=cfg.name,
            )
            if expected != cfg:
                raise ValueError(
                    f"--candidate {run.name}: its config is not the one {path} was "
                    "cross-fitted from"
                )


def pool_selections(
    folders: Sequence[str | Path],
    *,
    out: str | Path,
    candidates: Mapping[str, ExperimentConfig] | None = None,
    n_boot: int = 1000,
) -> SelectionResult:
    """Pool the runs of several :func:`run_selection` folders (e.g. one seed each) into one
    selection: the same seed averaging and paired record bootstrap (:func:`compare_candidates`).

    Each folder's ``selection.json`` is read; a run whose report predates the per-record
    confusion matrices is re-read from ``<folder>/<name>-s<seed>/oof.npz``. DS2 is not read.

    Parameters
    ----------
    folders : sequence of path
        Selection folders (the ``out`` of :func:`run_selection`, or of an earlier pool).
    out : path
        New folder for ``selection.json``, ``selection.md`` and ``selection.png``.
    candidates : mapping, optional
        Name -> experiment config of the candidates to pool (default: all, which must then be
        the same in every folder; with it, other candidates of a folder are left out). Each
        config is checked against its runs' ``config.toml``, and the winner's refit config goes
        to ``out/refit.toml`` (as in :func:`run_selection`, with the median best epoch over all
        pooled runs).
    n_boot : int
        Record-bootstrap draws for the paired differences.

    Returns
    -------
    SelectionResult
        Also written to ``out``.

    Raises
    ------
    ValueError
        Folders with different candidates or folds, runs of different beats or configs, a
        candidate-seed pair in two folders, candidates with different seeds, or runs that cannot
        be bootstrapped.
    FileNotFoundError
        A folder without ``selection.json``.
    FileExistsError
        ``out`` already holds a ``selection.json``.
    """
    if not folders:
        raise ValueError("at least one selection folder is needed")
    paths = [Path(f) for f in folders]
    out = Path(out)
    if out.resolve() in {p.resolve() for p in paths}:
        raise ValueError(f"the pool's folder {out} must not be one of the pooled folders")
    if (out / "selection.json").exists():
        raise FileExistsError(f"{out / 'selection.json'} exists: use a new --out folder")
    reports = []
    for p in paths:
        if not (p / "selection.json").is_file():
            raise FileNotFoundError(
                f"{p / 'selection.json'} does not exist: not a selection folder"
            )
        reports.append(json.loads((p / "selection.json").read_text(encoding="utf-8")))
    candidates = dict(candidates or {})
    ref_path, ref = paths[0], reports[0]
    names_of = [list(dict.fromkeys(r["name"] for r in rep["runs"])) for rep in reports]
    for p, rep, names in zip(paths, reports, names_of, strict=True):
        if candidates:
            missing = [n for n in candidates if n not in names]
            if missing:
                raise ValueError(f"{p} has no runs of candidate {', '.join(missing)} ({names})")
        elif sorted(names) != sorted(names_of[0]):
            raise ValueError(
                f"the folders have different candidates: {ref_path} {names_of[0]}, {p} {names} "
                "(name the ones to pool with --candidate)"
            )
        if rep["folds"] != ref["folds"]:
            raise ValueError(
                f"the folders used different record folds: {ref_path} {ref['folds']}, "
                f"{p} {rep['folds']}"
            )
    ref_names = list(candidates) if candidates else names_of[0]
    runs = [
        _pooled_run(p, d)
        for p, rep in zip(paths, reports, strict=True)
        for d in rep["runs"]
        if d["name"] in ref_names
    ]
    _check_configs(runs, candidates)
    # candidates in --candidate order or the first folder's, then by seed
    rank = {n: i for i, n in enumerate(ref_names)}
    runs.sort(key=lambda r: (rank[r.name], r.seed))
    result = _select(
        runs,
        folds=tuple(tuple(f) for f in ref["folds"]),
        n_boot=n_boot,
        pooled_from=tuple(str(p) for p in paths),
    )
    out.mkdir(parents=True, exist_ok=True)
    if result.winner in candidates:
        save_config(
            refit_config(candidates[result.winner], epochs=result.refit_epochs),
            out / "refit.toml",
        )
    _write_reports(result, out)
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
    ]
    if result.pooled_from:
        lines += [
            f"Pooled from {len(result.pooled_from)} selection folders "
            f"(`heartline select --pool`): {', '.join(result.pooled_from)}. Runs are paired by "
            "seed; the interval resamples records.",
            "",
        ]
    lines += [
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
        "records and nothing chosen on DS2: `heartline train --config refit.toml --out runs`"
        + (
            " (a pool writes refit.toml only when the winner's config is given with --candidate)."
            if result.pooled_from
            else "."
        ),
        "",
        "Most false SVEB per run (record: FP):",
        "",
    ]
    for r in result.runs:
        top = sorted(r.per_record, key=lambda e: -e.s_fp)[:5]
        lines.append(
            f"- {r.name} seed {r.seed}: " + ", ".join(f"{e.record}: {e.s_fp}" for e in top)
        )
    platforms = sorted(
        {
            f"{p.get('cpu') or '?'}, torch {p.get('torch', '?')} "
            f"({p.get('torch_cpu_capability', '?')} kernels)"
            for p in (r.platform for r in result.runs)
            if p
        }
    )
    if platforms:
        lines += [
            "",
            "Trained on: " + "; ".join(platforms) + ". The same code, seed and threads reproduce "
            "a run bit for bit on the same kind of CPU, not across CPUs whose kernels differ.",
        ]
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
