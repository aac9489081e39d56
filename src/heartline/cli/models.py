"""``heartline train | evaluate | tune | select | ship`` and ``heartline bench models | classical`` (thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from heartline.cli.common import console, handle_errors, invoked_command
from heartline.cli.main import DataDirOpt, app, bench_app

ProtocolOpt = Annotated[
    str,
    typer.Option(
        "--protocol", help="inter-patient, intra-patient, cv10 or patient-adaptive (evaluate)."
    ),
]
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Few records, 1 epoch, small networks (smoke runs, tests).")
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", help="torch threads (keep 1 on a shared machine).")
]
BootOpt = Annotated[
    int, typer.Option("--n-bootstrap", help="Bootstrap resamples of the 95 % CIs (by record).")
]


def _bad(exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(str(exc))


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise typer.BadParameter("--threads must be >= 1")
    torch.set_num_threads(n)


def _floats(value: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated numbers, got {value!r}") from None


def _ints(value: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{name} must be comma-separated integers, got {value!r}"
        ) from None


def _data(quick: bool, data_dir: Path | None) -> Any:
    from heartline.training.protocols import ProtocolData

    return ProtocolData.quick(data_dir=data_dir) if quick else ProtocolData(data_dir=data_dir)


#: ``heartline train``: a beat-model experiment (``--config``), or a named recipe (a subcommand).
train_app = typer.Typer(
    help="Train a model: a beat-model experiment (--config TOML --out DIR), or the multimodal "
    "12-lead model (`heartline train multimodal --out DIR`).",
)
app.add_typer(train_app, name="train")


@train_app.callback(invoke_without_command=True)
@handle_errors
def train(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Experiment config (TOML).", exists=True, dir_okay=False),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Parent folder of the new run directory.")
    ] = None,
    data_dir: DataDirOpt = None,
    no_test: Annotated[
        bool, typer.Option("--no-test", help="Do not score DS2 at the end.")
    ] = False,
    n_bootstrap: BootOpt = 200,
) -> None:
    """Train one experiment on DS1 (validation records inside DS1), score DS2 once, export ONNX.

    With a subcommand (``heartline train multimodal ...``), that recipe runs instead.
    """
    if ctx.invoked_subcommand is not None:
        if config is not None or out is not None:
            raise typer.BadParameter(
                f"--config/--out go after the subcommand: heartline train {ctx.invoked_subcommand} --out DIR"
            )
        return
    if config is None or out is None:
        raise typer.BadParameter(
            "heartline train needs --config TOML and --out DIR (a beat-model experiment), or a "
            "subcommand: heartline train multimodal --out DIR"
        )
    from heartline.training.config import load_config
    from heartline.training.trainer import run_experiment

    try:
        cfg = load_config(config)
    except ValueError as exc:
        raise _bad(exc) from None
    run = run_experiment(
        cfg,
        out=out,
        data_dir=data_dir,
        evaluate_test=not no_test,
        progress=True,
        n_bootstrap=n_bootstrap,
    )
    console.print(f"[green]run directory[/] {run}")


@app.command("evaluate")
@handle_errors
def evaluate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json, report.md and plots.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Registry name (trained under the protocol), always_n, a saved model folder or .onnx file, or 'shipped'.",
        ),
    ] = "shipped",
    protocol: ProtocolOpt = "inter-patient",
    rpeaks: Annotated[
        str,
        typer.Option("--rpeaks", help="Test R-peaks: annotated or detected (heartline detector)."),
    ] = "annotated",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Experiment config (TOML) for a registry model's parameters and training.",
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Override max epochs of a deep model.")
    ] = None,
    learning_curve: Annotated[
        str,
        typer.Option(
            "--learning-curve",
            help="Comma-separated training fractions, e.g. 0.1,0.25,0.5,1 (retrains per point).",
        ),
    ] = "",
    ablations: Annotated[
        bool,
        typer.Option("--ablations", help="Hybrid only: ablation table on the validation records."),
    ] = False,
    ablations_on_test: Annotated[
        bool,
        typer.Option(
            "--ablations-on-test",
            help="Also report ablations on the test set (reporting, never selection).",
        ),
    ] = False,
    ablation_only: Annotated[
        str,
        typer.Option(
            "--ablation-only",
            help="Comma-separated ablation names to run (e.g. 'base,fusion mean'); default all.",
        ),
    ] = "",
    quick: QuickOpt = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: ThreadsOpt = 1,
    n_bootstrap: BootOpt = 1000,
    data_dir: DataDirOpt = None,
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            help="patient-adaptive: confirmed beats from the annotations of the first 5 minutes, or none (unsupervised).",
        ),
    ] = "annotations",
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            help="patient-adaptive: confirmed beats per patient (default: every beat of the first 5 minutes).",
        ),
    ] = None,
    adapt_method: Annotated[
        str,
        typer.Option(
            "--adapt-method", help="patient-adaptive: prototypes (torch-free) or finetune."
        ),
    ] = "prototypes",
    curve: Annotated[
        bool,
        typer.Option(
            "--curve/--no-curve",
            help="patient-adaptive: also the SVEB/VEB F1 curve over 0, 10, 25, 50, 100, all beats.",
        ),
    ] = True,
    af_gate: Annotated[
        str,
        typer.Option(
            "--af-gate",
            help="on: S calls in windows the shipped rhythm model calls AF (MLII, causal 30 s "
            "windows every 5 s) become N (AAMI EC57); saved/shipped models and patient-adaptive "
            "only. off (default).",
        ),
    ] = "off",
) -> None:
    """Train (registry model) or load (saved / shipped model) and evaluate under a protocol."""
    import dataclasses

    if af_gate not in ("on", "off"):
        raise typer.BadParameter(f"--af-gate must be on or off, got {af_gate!r}")
    gate = _af_gate(data_dir) if af_gate == "on" else None
    if protocol == "patient-adaptive":
        _evaluate_patient_adaptive(
            out=out,
            model=model,
            labels=labels,
            budget=budget,
            method=adapt_method,
            curve=curve,
            quick=quick,
            data_dir=data_dir,
            n_bootstrap=n_bootstrap,
            seed=seed,
            threads=threads,
            af_gate=gate,
        )
        return

    from heartline.training import evaluate as ev
    from heartline.training.config import TrainConfig, load_config
    from heartline.training.protocols import PROTOCOLS, RPEAK_SOURCES

    _threads(threads)
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"--protocol must be one of {', '.join(PROTOCOLS)}")
    if rpeaks not in RPEAK_SOURCES:
        raise typer.BadParameter(f"--rpeaks must be one of {', '.join(RPEAK_SOURCES)}")
    data = _data(quick, data_dir)
    path = Path(model)
    if model == "shipped" or path.exists():
        if protocol != "inter-patient":
            raise typer.BadParameter(
                "a saved or shipped model was trained on DS1: evaluate it with --protocol inter-patient only"
            )
        clf, name = _load_model(model)
        res, paths = ev.evaluate_saved(
            clf,
            out_dir=out,
            model_name=name,
            data=data.for_model(clf),  # the template columns for models that read them
            rpeaks=rpeaks,
            n_bootstrap=n_bootstrap,
            seed=seed,
            af_gate=gate,
        )
    else:
        if gate is not None:
            raise typer.BadParameter(
                "--af-gate on: evaluate a saved or shipped model (or --protocol patient-adaptive)"
            )
        if protocol == "cv10":
            raise typer.BadParameter(
                "cv10 compares models: use `heartline bench models --protocol cv10`"
            )
        params: dict[str, Any] = {}
        train_cfg = TrainConfig(num_threads=threads)
        if config is not None:
            try:
                cfg = load_config(config)
            except ValueError as exc:
                raise _bad(exc) from None
            if cfg.model.name != model:
                raise typer.BadParameter(f"--config is for model {cfg.model.name!r}, not {model!r}")
            params, train_cfg = dict(cfg.model.params), cfg.train
            if cfg.model.template_features:  # beat sets with the template columns it reads
                data = dataclasses.replace(data, template_features=True)
        if quick:
            from heartline.bench.models import default_configs

            qc = default_configs(quick=True, num_threads=threads).get(model)
            if qc is not None and config is None:
                params, train_cfg = dict(qc.model.params), qc.train
        if epochs is not None:
            train_cfg = dataclasses.replace(train_cfg, max_epochs=epochs)
        try:
            res, paths = ev.evaluate_model(
                model,
                protocol,
                out_dir=out,
                data=data,
                rpeaks=rpeaks,
                params=params,
                train=train_cfg,
                seed=seed,
                n_bootstrap=n_bootstrap,
                learning_fractions=_floats(learning_curve, "--learning-curve"),
                ablations=ablations,
                ablations_on_test=ablations_on_test,
                ablation_names=[n.strip() for n in ablation_only.split(",") if n.strip()],
            )
        except ValueError as exc:
            raise _bad(exc) from None
    m = res.metrics
    console.print(
        f"{res.model_name} {res.protocol} ({res.rpeaks}){' [LEAKY]' if res.leaky else ''}: accuracy {100 * m.accuracy:.2f} %, "
        f"macro-F1 {100 * m.macro_f1:.2f} %, SVEB Se/+P {100 * m.sveb_se:.1f}/{100 * m.sveb_ppv:.1f} %, "
        f"VEB Se/+P {100 * m.veb_se:.1f}/{100 * m.veb_ppv:.1f} %"
    )
    console.print(f"[green]wrote[/] {paths['metrics']}, {paths['report']}")


def _evaluate_patient_adaptive(
    *,
    out: Path,
    model: str,
    labels: str,
    budget: int | None,
    method: str,
    curve: bool,
    quick: bool,
    data_dir: Path | None,
    n_bootstrap: int,
    seed: int,
    threads: int,
    af_gate: Any = None,
) -> None:
    """``--protocol patient-adaptive``: adapt the ONNX model to each DS2 record's first 5 minutes."""

    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.training import patient_adaptive as pa

    _threads(threads)
    if labels not in pa.LABEL_SOURCES:
        raise typer.BadParameter(f"--labels must be one of {', '.join(pa.LABEL_SOURCES)}")
    if method not in pa.METHODS:
        raise typer.BadParameter(f"--adapt-method must be one of {', '.join(pa.METHODS)}")
    if budget is not None and budget < 0:
        raise typer.BadParameter("--budget must be >= 0")
    clf, name = _load_model(model)
    if not isinstance(clf, OnnxBeatClassifier) or not clf.has_split:
        raise typer.BadParameter(
            "--model: patient-adaptive needs an ONNX model with its split form (encoder)"
        )
    data = _data(quick, data_dir)
    cache: dict[str, Any] = {}
    kw: dict[str, Any] = {
        "data": data,
        "labels": labels,
        "method": method,
        "model_name": name,
        "af_gate": af_gate,
    }
    try:
        main = pa.run_patient_adaptive(
            clf, budget=budget, n_bootstrap=n_bootstrap, seed=seed, cache=cache, **kw
        )
        points = []
        if curve and labels == "annotations":
            for b in pa.CURVE_BUDGETS:
                points.append(
                    main
                    if b == budget
                    else pa.run_patient_adaptive(
                        clf, budget=b, n_bootstrap=0, seed=seed, cache=cache, **kw
                    )
                )
    except ValueError as exc:
        raise _bad(exc) from None
    command = invoked_command()
    paths = pa.write_patient_adaptive(main, out, curve=points, command=command)
    m = main.result.metrics
    secs = main.adapt_seconds()
    console.print(
        f"{main.result.model_name} patient-adaptive: accuracy {100 * m.accuracy:.2f} %, "
        f"SVEB Se/+P {100 * m.sveb_se:.1f}/{100 * m.sveb_ppv:.1f} %, "
        f"VEB Se/+P {100 * m.veb_se:.1f}/{100 * m.veb_ppv:.1f} %, "
        f"adaptation max {secs.max() if secs.size else 0.0:.2f} s per patient"
    )
    console.print(f"[green]wrote[/] {paths['metrics']}, {paths['report']}")


def _af_gate(data_dir: Path | None) -> Any:
    """The AF gate's per-record rhythm verdicts (cached under the user cache folder)."""
    from platformdirs import user_cache_dir

    from heartline.training.af_gate import RecordRhythm

    return RecordRhythm(
        data_dir=data_dir, cache_dir=Path(user_cache_dir("heartline")) / "rhythm-windows"
    )


def _load_model(model: str) -> tuple[Any, str]:
    """A trained classifier from 'shipped', a .onnx file or a saved model folder."""
    import json

    from heartline.edge.runtime import OnnxBeatClassifier

    if model == "shipped":
        from heartline.edge.shipped import shipped_model_path

        return OnnxBeatClassifier(shipped_model_path()), "shipped"
    path = Path(model)
    if path.is_file() and path.suffix == ".onnx":
        return OnnxBeatClassifier(path), path.stem
    folder = path / "model" if (path / "model").is_dir() else path
    if (folder / "model.pt").is_file():
        from heartline.training.deep import TorchBeatClassifier

        clf = TorchBeatClassifier.load(folder)
        return clf, clf.name
    if (folder / "config.json").is_file():
        from heartline.training.classical import CLASSICAL_MODELS

        name = json.loads((folder / "config.json").read_text())["model"]
        return CLASSICAL_MODELS[name].load(folder), name
    raise typer.BadParameter(
        f"--model: {model} is neither a registry name, 'shipped', a .onnx file nor a saved model folder"
    )


@app.command("tune")
@handle_errors
def tune(
    out: Annotated[Path, typer.Option("--out", help="Run directory for the study.")],
    trials: Annotated[int, typer.Option("--trials", help="Maximum number of trials.")] = 20,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout-s", help="Maximum search time (s).")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Max epochs per trial.")] = 15,
    trial_budget_s: Annotated[
        float | None, typer.Option("--trial-budget-s", help="Training time budget per trial (s).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Hybrid experiment config (TOML) the search starts from: its model parameters and "
            "training settings, except those searched, --epochs and --trial-budget-s.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 1,
    data_dir: DataDirOpt = None,
) -> None:
    """Optuna TPE search of the hybrid's hyper-parameters, scored on the DS1 validation records only."""
    import dataclasses

    from heartline.training.config import TrainConfig, load_config
    from heartline.training.tune import tune_hybrid

    _threads(threads)
    try:
        start = TrainConfig()
        base_params = {"channels": 4, "feature_dim": 8, "lstm_hidden": 8} if quick else None
        if config is not None:
            exp = load_config(config)
            if exp.model.name != "hybrid":
                raise ValueError(f"--config: model {exp.model.name!r}, the search tunes 'hybrid'")
            start = exp.train
            base_params = {**dict(exp.model.params), **(base_params or {})}
        base = dataclasses.replace(
            start,
            max_epochs=epochs,
            patience=4 if config is None else start.patience,
            time_budget_s=trial_budget_s,
            num_threads=threads,
            batch_size=256 if quick else start.batch_size,
        )
        res = tune_hybrid(
            out_dir=out,
            n_trials=trials,
            timeout_s=timeout_s,
            seed=seed,
            data=_data(quick, data_dir),
            base_train=base,
            base_params=base_params,
        )
    except ValueError as exc:
        raise _bad(exc) from None
    console.print(
        f"best validation macro-F1 {100 * res.best_value:.2f} % after {res.n_trials} trials ({res.seconds:.0f} s)"
    )
    console.print(
        f"[green]wrote[/] {out / 'best.toml'}, {out / 'study.json'}, {out / 'trials.csv'}"
    )


@app.command("select")
@handle_errors
def select_cmd(
    out: Annotated[Path, typer.Option("--out", help="Selection folder (new).")],
    candidate: Annotated[
        list[str] | None,
        typer.Option(
            "--candidate",
            help="NAME=CONFIG.toml, a hybrid experiment config; repeat for each candidate. "
            "With --pool: optional, the candidates to pool (default all), each checked "
            "against its runs; the winner's refit.toml is written.",
        ),
    ] = None,
    pool: Annotated[
        list[Path] | None,
        typer.Option(
            "--pool",
            help="Pool the runs of earlier select --out folders (e.g. one seed each) instead "
            "of training; repeat for each folder.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Comma-separated seeds (default 0).")
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option("--folds", help="Record folds (ensemble members) per run (default 3)."),
    ] = None,
    time_budget_s: Annotated[
        float | None,
        typer.Option(
            "--time-budget-s", help="Training budget of each run (s), all folds (default 540)."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            help="Override every config's max epochs (with --pool: the cap the pooled runs were trained with, to check --candidate against them).",
        ),
    ] = None,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 1,
    n_bootstrap: BootOpt = 1000,
    data_dir: DataDirOpt = None,
) -> None:
    """Pick the best hybrid config by cross-fitted out-of-fold macro-F1 on all DS1 records (no DS2)."""
    import dataclasses

    from heartline.training.config import load_config
    from heartline.training.selection import pool_selections, run_selection

    _threads(threads)
    configs = {}
    try:
        if pool:
            given = {
                "--seeds": seeds,
                "--folds": folds,
                "--time-budget-s": time_budget_s,
                "--data-dir": data_dir,
                "--quick": quick or None,
            }
            extra = [k for k, v in given.items() if v is not None]
            if extra:
                raise ValueError(
                    f"--pool trains nothing: {', '.join(extra)} cannot be used with it"
                )
            if epochs is not None and not candidate:
                # --epochs with --pool states how the runs were trained (select --epochs N),
                # so that each --candidate config can be checked against them
                raise ValueError("--pool with --epochs needs --candidate (the configs it caps)")
        elif not candidate:
            raise ValueError("give --candidate NAME=CONFIG.toml (to train) or --pool DIR")
        for item in candidate or ():
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--candidate must be NAME=CONFIG.toml, got {item!r}")
            if name in configs:
                raise ValueError(f"candidate {name!r} given twice")
            cfg = load_config(Path(path))
            if epochs is not None:
                cfg = dataclasses.replace(
                    cfg, train=dataclasses.replace(cfg.train, max_epochs=epochs)
                )
            if quick:
                cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=256))
            configs[name] = cfg
        if pool:
            res = pool_selections(pool, out=out, candidates=configs, n_boot=n_bootstrap)
        else:
            res = run_selection(
                configs,
                out=out,
                data=_data(quick, data_dir),
                seeds=_ints(seeds if seeds is not None else "0", "--seeds"),
                folds=folds if folds is not None else 3,
                time_budget_s=time_budget_s if time_budget_s is not None else 540.0,
                num_threads=threads,
                progress=True,
                n_boot=n_bootstrap,
            )
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        raise _bad(exc) from None
    for n, m in sorted(res.mean_macro_f1.items(), key=lambda kv: -kv[1]):
        seeds_n = sorted(r.seed for r in res.runs if r.name == n)
        console.print(f"{n}: out-of-fold macro-F1 {100 * m:.1f} % (seeds {seeds_n})")
    for n, (d, lo, hi) in res.differences.items():
        console.print(
            f"{res.winner} minus {n}: {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] (95 % CI)"
        )
    console.print(f"[green]winner[/] {res.winner}: {res.winner_run_dir}")
    console.print(f"[green]wrote[/] {out / 'selection.md'}, {out / 'selection.json'}")


@app.command("ship")
@handle_errors
def ship_cmd(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Trained hybrid run directory (model/ and config.toml).",
            exists=True,
            file_okay=False,
        ),
    ],
    dest: Annotated[
        Path | None,
        typer.Option("--dest", help="Output folder (default: the package's assets/models)."),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="File stem of the shipped model (hybrid_mlii, ...).")
    ] = "hybrid",
    card_name: Annotated[
        str, typer.Option("--card-name", help="File name of the model card in --dest.")
    ] = "MODEL_CARD.md",
    quick: QuickOpt = False,
    n_bootstrap: BootOpt = 1000,
    data_dir: DataDirOpt = None,
) -> None:
    """Export, check (ONNX vs PyTorch <= 1e-4), score on DS2 and write the model card.

    The leads are the run's own (``data.leads`` of its ``config.toml``), so a single-lead run is
    scored on its one lead.
    """
    import dataclasses

    from heartline.training.ship import run_leads, ship

    data = dataclasses.replace(_data(quick, data_dir), leads=run_leads(run_dir))
    try:
        rep = ship(
            run_dir,
            dest=dest,
            name=name,
            data=data,
            n_bootstrap=n_bootstrap,
            latency_beats=50 if quick else 500,
            card_name=card_name,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise _bad(exc) from None
    console.print(
        f"max |torch - onnx| {rep.max_abs_diff:.1e}; ONNX latency {rep.latency_ms_per_beat:.2f} ms/beat"
    )
    console.print(f"[green]wrote[/] {rep.onnx_path}, {rep.card_path}")


@bench_app.command("models")
@handle_errors
def bench_models(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Run directory for models.json, models.md and per-model folders."
        ),
    ],
    protocol: ProtocolOpt = "inter-patient",
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated subset (default: all).")
    ] = "",
    quick: QuickOpt = False,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated training seeds.")] = "0",
    time_budget_s: Annotated[
        float, typer.Option("--time-budget-s", help="Training budget per deep baseline (s).")
    ] = 150.0,
    hybrid_time_budget_s: Annotated[
        float, typer.Option("--hybrid-time-budget-s", help="Training budget of the hybrid (s).")
    ] = 420.0,
    hybrid_config: Annotated[
        Path | None, typer.Option("--hybrid-config", help="Experiment config (TOML) of the hybrid.")
    ] = None,
    template_features: Annotated[
        bool | None,
        typer.Option(
            "--template-features/--no-template-features",
            help="Give every model the template columns after the RR columns (the hybrid and the "
            "ensemble then read them: model.params.template_features), or none. "
            "Default: as the hybrid config says.",
        ),
    ] = None,
    rpeaks: Annotated[
        str, typer.Option("--rpeaks", help="Comma-separated test R-peak sources.")
    ] = "annotated,detected",
    threads: ThreadsOpt = 1,
    n_bootstrap: BootOpt = 1000,
    data_dir: DataDirOpt = None,
) -> None:
    """The hybrid and every baseline (deep, classical, always-N) under one protocol, in one run."""
    from heartline.bench.models import default_configs, run_models_benchmark
    from heartline.training.config import load_config

    _threads(threads)
    hp, ht = None, None
    try:
        if hybrid_config is not None:
            c = load_config(hybrid_config)
            if c.model.name != "hybrid":
                raise ValueError(
                    f"--hybrid-config {hybrid_config}: its model is {c.model.name!r}, not "
                    "'hybrid' (its parameters would be given to the hybrid)"
                )
            hp, ht = dict(c.model.params), c.train
        seed_list = _ints(seeds, "--seeds")
        cfgs = default_configs(
            quick=quick,
            time_budget_s=time_budget_s,
            hybrid_time_budget_s=hybrid_time_budget_s,
            num_threads=threads,
            hybrid_params=hp,
            hybrid_train=ht,
            template_features=template_features,
        )
        report = run_models_benchmark(
            [m for m in models.split(",") if m.strip()] or None,
            out_dir=out,
            protocol=protocol,
            quick=quick,
            data=_data(quick, data_dir),
            configs=cfgs,
            seeds=seed_list,
            n_bootstrap=n_bootstrap,
            rpeaks=tuple(r for r in rpeaks.split(",") if r.strip()),
            on_model=lambda n: console.print(f"[bold blue]{n}[/]"),
        )
    except ValueError as exc:
        raise _bad(exc) from None
    console.print((out / "models.md").read_text())
    console.print(
        f"[green]wrote[/] {out / 'models.json'}, {out / 'models.md'} ({report['total_seconds']:.0f} s; "
        f"inputs: {report['inputs']['label']})"
    )


@bench_app.command("classical")
@handle_errors
def bench_classical(
    out: Annotated[Path, typer.Option("--out", help="Run directory.")],
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated classical models (default: all).")
    ] = "",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    n_bootstrap: BootOpt = 1000,
    data_dir: DataDirOpt = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Beat cache folder.")
    ] = None,
    template_features: Annotated[
        bool,
        typer.Option(
            "--template-features/--no-template-features",
            help="Add the 19 patient-adaptive template columns (the shipped hybrid's inputs) "
            "to the 13 RR columns.",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="6 records (3 train, 1 validation, 2 test): a smoke run."),
    ] = False,
) -> None:
    """Classical baselines on DS1 -> DS2 (heartline.bench.classical)."""
    from heartline.bench.classical import run_classical_benchmark

    try:
        summary = run_classical_benchmark(
            [m for m in models.split(",") if m.strip()] or None,
            out_dir=out,
            data_dir=data_dir,
            cache_dir=cache_dir,
            seed=seed,
            n_bootstrap=n_bootstrap,
            template_features=template_features,
            quick=quick,
        )
    except ValueError as exc:
        raise _bad(exc) from None
    from rich.table import Table

    title = "classical baselines, DS2 (inter-patient)"
    table = Table(title=title + (" QUICK smoke run: 6 records, not a result" if quick else ""))
    for col in ("model", "accuracy", "macro-F1", "SVEB Se", "SVEB +P", "VEB Se", "VEB +P", "fit s"):
        table.add_column(col)
    for name, s in summary.items():
        p = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
        table.add_row(
            name,
            p(s["accuracy"]),
            p(s["macro_f1"]),
            p(s["sveb_se"]),
            p(s["sveb_ppv"]),
            p(s["veb_se"]),
            p(s["veb_ppv"]),
            f"{s['fit_seconds']:.0f}",
        )
    console.print(table)
    console.print(f"[green]wrote[/] {out / 'summary.json'}")
