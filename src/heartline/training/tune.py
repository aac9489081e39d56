"""Hyper-parameter search for the hybrid with Optuna (TPE, seeded, bounded trials and time).

Each trial trains the hybrid on the DS1 training records and is scored on the DS1 validation
records only (macro-F1 of N, S, V, F; :func:`heartline.data.splits.validation_records`). DS2 is
never built here, so it cannot influence the search. The beat sets follow the hybrid's
parameters: with ``template_features = true`` they carry the template columns after the RR
columns (:mod:`heartline.signal.templates`), as ``heartline train`` builds them. The study is
written into the caller's run directory: ``trials.csv`` and ``study.json`` (every trial, its
parameters, score, time and input columns), ``best.toml`` (an
:class:`~heartline.training.config.ExperimentConfig` to pass to ``heartline train --config``)
and ``best.json``.

References
----------
Bergstra J, Bardenet R, Bengio Y, Kégl B. Algorithms for hyper-parameter optimization. NeurIPS
(2011) (the Tree-structured Parzen Estimator).
Akiba T, Sano S, Yanase T, Ohta T, Koyama M. Optuna: a next-generation hyperparameter
optimization framework. KDD (2019).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heartline.data.beat_set import BeatSet
from heartline.training.config import ExperimentConfig, ModelConfig, TrainConfig
from heartline.training.protocols import ProtocolData

__all__ = ["SEARCH_SPACE", "TuneResult", "suggest", "tune_hybrid"]

logger = logging.getLogger(__name__)

#: Search space: name -> ("float", low, high, log) | ("categorical", choices). Names starting
#: with ``train.`` go to :class:`TrainConfig`, the others to the hybrid's constructor.
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "train.lr": ("float", 3e-4, 3e-3, True),
    "train.dropout": ("float", 0.1, 0.5, False),
    "train.imbalance": ("categorical", ("weighted_loss", "weighted_sampling")),
    "train.class_weight_power": ("float", 0.3, 1.0, False),
    "context_k": ("categorical", (0, 2, 4, 8, 12)),
    "channels": ("categorical", (8, 16, 24)),
    "feature_dim": ("categorical", (16, 32, 64)),
    "lstm_hidden": ("categorical", (16, 32, 64)),
    "consistency_weight": ("categorical", (0.0, 0.05, 0.1)),
}


def suggest(
    trial: Any, space: dict[str, tuple[Any, ...]] = SEARCH_SPACE
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw ``(model_params, train_overrides)`` for one Optuna trial."""
    params: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for name, spec in space.items():
        if spec[0] == "float":
            v = trial.suggest_float(name, spec[1], spec[2], log=bool(spec[3]))
        elif spec[0] == "categorical":
            v = trial.suggest_categorical(name, list(spec[1]))
        else:
            raise ValueError(
                f"search space {name}: unknown kind {spec[0]!r}; valid: float, categorical"
            )
        (train if name.startswith("train.") else params)[name.removeprefix("train.")] = v
    return params, train


@dataclass(frozen=True)
class TuneResult:
    """Best trial of a search: its validation macro-F1, the config, and where the study went."""

    best_value: float
    best_config: ExperimentConfig
    n_trials: int
    out_dir: Path
    seconds: float


def tune_hybrid(
    *,
    out_dir: str | Path,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    data: ProtocolData | None = None,
    base_train: TrainConfig | None = None,
    base_params: dict[str, Any] | None = None,
    space: dict[str, tuple[Any, ...]] | None = None,
) -> TuneResult:
    """Search the hybrid's hyper-parameters on the DS1 validation records (TPE, seeded).

    Parameters
    ----------
    out_dir : path
        Run directory for the study files.
    n_trials : int
        Upper bound on trials.
    timeout_s : float, optional
        Upper bound on the whole search's wall-clock time (the running trial finishes).
    seed : int
        Seed of the TPE sampler and of every trial's training.
    data : ProtocolData, optional
        Records / beat settings; ``train_records`` and ``val_records`` must lie in DS1
        (``test_records`` is ignored: no test set is built). Its ``template_features`` is
        ignored: each trial's hybrid decides whether the beats carry the template columns.
    base_train : TrainConfig, optional
        Training settings the trials start from (epochs, patience, time budget per trial).
    base_params : dict, optional
        Hybrid parameters that are not searched (``template_features = True``: the beat sets
        carry the template columns).
    space : dict, optional
        Search space (default :data:`SEARCH_SPACE`).
    """
    import optuna

    from heartline.data.splits import DS1, validation_records
    from heartline.training.config import save_config
    from heartline.training.metrics import evaluate_predictions
    from heartline.training.registry import get_model
    from heartline.training.rundir import write_json

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    data = data or ProtocolData()
    base_train = base_train or TrainConfig(max_epochs=15, patience=4)
    base_params = dict(base_params or {})
    space = space or SEARCH_SPACE
    tr_default, va_default = validation_records(seed=data.validation_seed)
    tr = tuple(data.train_records or tr_default)
    va = tuple(data.val_records or va_default)
    outside = [r for r in tr + va if r not in DS1]
    if outside or set(tr) & set(va):
        raise ValueError(
            f"tuning records must be disjoint DS1 records; bad: {outside or sorted(set(tr) & set(va))}"
        )
    beat_sets: dict[bool, tuple[ProtocolData, BeatSet, BeatSet]] = {}

    def beats_for(hybrid_params: dict[str, Any]) -> tuple[ProtocolData, BeatSet, BeatSet]:
        """Settings, training and validation beats for a hybrid with these parameters."""
        tpl = ModelConfig("hybrid", hybrid_params).template_features
        if tpl not in beat_sets:
            d = dataclasses.replace(data, template_features=tpl)
            beat_sets[tpl] = (d, d.build(tr), d.build(va))
        return beat_sets[tpl]

    base_data = beats_for(base_params)[0]  # built before the first trial
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def objective(trial: Any) -> float:
        params, overrides = suggest(trial, space)
        cfg = dataclasses.replace(base_train, seed=seed, **overrides)
        hybrid_params = {**base_params, **params}
        d, train, val = beats_for(hybrid_params)
        trial.set_user_attr("inputs", d.describe_inputs())
        model = get_model("hybrid", train=cfg, **hybrid_params)
        t0 = time.perf_counter()
        model.fit(train, val, seed=seed)
        trial.set_user_attr("train_seconds", time.perf_counter() - t0)
        lab = val.labels >= 0
        m = evaluate_predictions(val.labels[lab], model.predict_proba(val)[lab], n_bootstrap=0)
        trial.set_user_attr("val_sveb_se", m.sveb_se)
        trial.set_user_attr("val_veb_se", m.veb_se)
        logger.info(
            "trial %d: val macro-F1 %.4f %s %s", trial.number, m.macro_f1, params, overrides
        )
        return float(m.macro_f1)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), study_name="hybrid"
    )
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    seconds = time.perf_counter() - t0
    study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    best = study.best_trial
    params, overrides = suggest(optuna.trial.FixedTrial(best.params), space)
    best_cfg = ExperimentConfig(
        name="hybrid-tuned",
        model=ModelConfig("hybrid", {**base_params, **params}),
        train=dataclasses.replace(base_train, seed=seed, **overrides),
    )
    save_config(best_cfg, out / "best.toml")
    trials = [
        {
            "number": t.number,
            "value": t.value,
            "state": t.state.name,
            "params": t.params,
            **t.user_attrs,
        }
        for t in study.trials
    ]
    write_json(
        out / "study.json",
        {
            "sampler": "TPE",
            "seed": seed,
            "scored_on": "DS1 validation records " + ",".join(va),
            "train_records": list(tr),
            "inputs": base_data.describe_inputs(),
            "objective": "validation macro-F1 (N, S, V, F)",
            "n_trials": len(study.trials),
            "seconds": seconds,
            "trials": trials,
        },
    )
    write_json(
        out / "best.json", {"value": best.value, "params": best.params, "number": best.number}
    )
    return TuneResult(float(best.value), best_cfg, len(study.trials), out, seconds)
