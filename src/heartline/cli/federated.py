"""``heartline federated partition | run`` and ``heartline bench federated`` (thin).

Flower is the optional extra ``heartline[federated]``: without it, ``run`` and the benchmark
stop with one line naming the extra (``partition`` needs no Flower).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from heartline.cli.common import console, err_console, handle_errors
from heartline.cli.main import DataDirOpt, app, bench_app

federated_app = typer.Typer(
    help="Federated training across hospitals (Flower deployment engine).", no_args_is_help=True
)
app.add_typer(federated_app, name="federated")
logger = logging.getLogger(__name__)

TaskOpt = Annotated[str, typer.Option("--task", help="beats (MIT-BIH) or rhythm (CinC 2017).")]
HospitalsOpt = Annotated[
    int, typer.Option("--hospitals", help="Number of hospitals (beats 3-6, rhythm 5-10).")
]


def _bad(exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(str(exc))


def _require_flwr() -> None:
    """Stop with one line naming the ``heartline[federated]`` extra when flwr is missing."""
    from rich.markup import escape

    from heartline.federated import FlowerMissingError, require_flwr

    try:
        require_flwr()
    except FlowerMissingError as exc:  # escaped: rich would read "[federated]" as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None


@federated_app.command("partition")
@handle_errors
def partition(
    task: TaskOpt,
    hospitals: HospitalsOpt,
    out: Annotated[Path, typer.Option("--out", help="Manifest JSON to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    alpha: Annotated[
        float | None,
        typer.Option("--alpha", help="Dirichlet label-skew concentration (rhythm; e.g. 0.3, 1.0)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write a manifest of which records each hospital holds (test records stay central)."""
    from rich.table import Table

    from heartline.federated.partition import partition_beats, partition_rhythm, save_manifest

    try:
        if task == "beats":
            if alpha is not None:
                raise ValueError("--alpha applies to the rhythm task only (beats split by patient)")
            manifest = partition_beats(hospitals, seed=seed, data_dir=data_dir)
        elif task == "rhythm":
            manifest = partition_rhythm(
                hospitals, alpha=1.0 if alpha is None else alpha, seed=seed, data_dir=data_dir
            )
        else:
            raise ValueError(f"--task must be 'beats' or 'rhythm', got {task!r}")
    except ValueError as exc:
        raise _bad(exc) from None
    path = save_manifest(manifest, out)
    table = Table(title=f"{task}: {manifest.n_hospitals} hospitals ({path})")
    for col in ("hospital", "records", "classes"):
        table.add_column(col)
    for h in manifest.hospitals:
        table.add_row(h.name, str(len(h.records)), json.dumps(h.class_counts))
    table.add_row("central test", str(len(manifest.test_records)), "-")
    console.print(table)


def round_line(rec: dict[str, Any]) -> str:
    """One progress line of a round record."""

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return (
        f"loss {f(rec.get('train_loss'), '.3f')}  val F1 {f(rec.get('val_macro_f1'), '.3f')}  "
        f"sent {f(rec.get('bytes_sent'), ',')} B  recv {f(rec.get('bytes_received'), ',')} B"
        + (f"  failures {rec['failures']}" if rec.get("failures") else "")
    )


def _run_config(**kw: Any) -> Any:
    from heartline.federated.deployment import FederatedRunConfig

    return FederatedRunConfig(**kw)


@federated_app.command("run")
@handle_errors
def run(
    task: TaskOpt,
    hospitals: HospitalsOpt,
    rounds: Annotated[int, typer.Option("--rounds", help="Federated rounds.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="fedavg, fedprox, fedadam, fedavgm, fedmedian, krum or trimmedavg.",
        ),
    ] = "fedavg",
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Partition manifest (default: written into --out)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    local_epochs: Annotated[
        int, typer.Option("--local-epochs", help="Local epochs per round.")
    ] = 1,
    keep_normal: Annotated[
        float,
        typer.Option(
            "--keep-normal",
            help="Fraction of N beats (rhythm: N records) that train (budget knob).",
        ),
    ] = 1.0,
    dp_epsilon: Annotated[
        float | None,
        typer.Option("--dp-epsilon", help="Client-level DP: target epsilon at delta 1e-5."),
    ] = None,
    dp_clip: Annotated[
        float, typer.Option("--dp-clip", help="L2 clipping norm of each hospital's update.")
    ] = 0.5,
    dp_sgd_epsilon: Annotated[
        float | None,
        typer.Option(
            "--dp-sgd-epsilon",
            help="Record-level DP-SGD inside each hospital (Opacus; rhythm task): target "
            "epsilon of the whole run at delta 1e-5. Per-record clipping norm 1.",
        ),
    ] = None,
    secagg: Annotated[
        bool,
        typer.Option("--secagg", help="SecAgg+: the server sees only the sum (FedAvg, no DP)."),
    ] = False,
    superlink: Annotated[
        str | None,
        typer.Option("--superlink", help="HOST:PORT of an existing SuperLink to join."),
    ] = None,
    ship_model: Annotated[
        bool, typer.Option("--ship/--no-ship", help="Export ONNX + model card (beats).")
    ] = True,
    n_bootstrap: Annotated[int, typer.Option("--n-bootstrap")] = 200,
    data_dir: DataDirOpt = None,
    label_skew: Annotated[
        bool,
        typer.Option(
            "--label-skew",
            help="Per-hospital logit adjustment against label skew (pooled label counts).",
        ),
    ] = False,
    server_lr: Annotated[
        float, typer.Option("--server-lr", help="FedAvgM's server learning rate.")
    ] = 1.0,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Rhythm task: 'hybrid' (CNN-LSTM) or a hand-feature head for DP-SGD "
            "('hand-head', 'rr-head': public input scaler and class weights, no pooled "
            "statistics; local lr 0.03, batch 32; the benchmark uses --local-epochs 3).",
        ),
    ] = "hybrid",
) -> None:
    """Run a federation: local SuperLink + one SuperNode per hospital, ``flwr run``, ship."""
    _require_flwr()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from heartline.federated.deployment import run_federation
    from heartline.federated.partition import load_manifest, partition_beats, save_manifest
    from heartline.federated.privacy import DP_DELTA, noise_for_epsilon
    from heartline.federated.strategies import STRATEGY_NAMES

    if strategy not in STRATEGY_NAMES:
        raise typer.BadParameter(
            f"unknown strategy {strategy!r}; valid names: {list(STRATEGY_NAMES)}"
        )
    if rounds < 1:
        raise typer.BadParameter("--rounds must be >= 1")
    if task not in ("beats", "rhythm"):
        raise typer.BadParameter(f"--task must be 'beats' or 'rhythm', got {task!r}")
    out.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        from heartline.federated.partition import partition_rhythm

        try:
            m0 = (
                partition_beats(hospitals, seed=seed, data_dir=data_dir)
                if task == "beats"
                else partition_rhythm(hospitals, alpha=1.0, seed=seed, data_dir=data_dir)
            )
        except ValueError as exc:
            raise _bad(exc) from None
        manifest = save_manifest(m0, out / "manifest.json")
    m = load_manifest(manifest)
    if m.n_hospitals != hospitals:
        raise typer.BadParameter(
            f"--hospitals {hospitals} but the manifest {manifest} has {m.n_hospitals}"
        )
    noise = noise_for_epsilon(dp_epsilon, rounds) if dp_epsilon is not None else 0.0
    try:
        cfg = _run_config(
            task=task,
            manifest=manifest,
            num_rounds=rounds,
            strategy=strategy,
            local_epochs=local_epochs,
            keep_normal=keep_normal,
            seed=seed,
            dp_noise_multiplier=noise,
            dp_clip_norm=1.0 if dp_sgd_epsilon is not None else dp_clip,
            record_dp_epsilon=dp_sgd_epsilon or 0.0,
            data_dir=data_dir,
            secure_aggregation=secagg,
            label_skew=label_skew,
            server_lr=server_lr,
            **(
                {"model": model, "global_statistics": False, "lr": 0.03, "batch_size": 32}
                if model != "hybrid"
                else {}
            ),
        )
    except ValueError as exc:
        raise _bad(exc) from None
    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
    ) as bar:
        bar_task = bar.add_task(f"{strategy} x{hospitals}", total=rounds, info="starting")

        def on_round(rec: dict[str, Any]) -> None:
            bar.update(bar_task, completed=rec["round"], info=round_line(rec))

        try:
            res = run_federation(cfg, out_dir=out, superlink=superlink, on_round=on_round)
        except KeyboardInterrupt:
            err_console.print("[red]interrupted:[/] every SuperLink/SuperNode process stopped")
            raise typer.Exit(130) from None
    summary: dict[str, Any] = {
        "engine": "flower-deployment",
        "task": task,
        "strategy": strategy,
        "secure_aggregation": "SecAgg+" if secagg else None,
        "hospitals": hospitals,
        "rounds": rounds,
        "seconds": res["seconds"],
        "bytes_total": sum(
            (r.get("bytes_sent") or 0) + (r.get("bytes_received") or 0) for r in res["rounds"]
        ),
        "round_records": res["rounds"],
        "dp": {
            "epsilon": dp_epsilon,
            "delta": DP_DELTA,
            "noise_multiplier": noise,
            "clip_norm": dp_clip,
        }
        if dp_epsilon is not None
        else None,
        "dp_sgd": {
            "epsilon_target": dp_sgd_epsilon,
            "epsilon": max(
                (r["record_dp_epsilon"] for r in res["rounds"] if r.get("record_dp_epsilon")),
                default=None,
            ),
            "delta": DP_DELTA,
            "clip_norm": 1.0,
        }
        if dp_sgd_epsilon is not None
        else None,
    }
    if res["final_weights"] is not None:
        from heartline.federated.export import evaluate_arrays, load_npz, write_run_dir
        from heartline.federated.tasks import load_test_data

        arrays = load_npz(res["final_weights"])
        from heartline.federated.tasks import model_features

        summary["test"] = evaluate_arrays(
            task, arrays, load_test_data(m, data_dir=data_dir, features=model_features(model))
        )
        if model != "hybrid":
            summary["model"] = model
        if task == "rhythm" and ship_model and dp_sgd_epsilon is not None and model == "hybrid":
            # Opacus' DPLSTM is a Python loop over time steps: the dynamo exporter did not
            # finish on it within 5 min (2026-12-07); the global weights stay in the .npz
            summary["shipped"] = {
                "onnx": None,
                "reason": "no ONNX export of the DP-SGD network (DPLSTM) yet",
                "weights": str(res["final_weights"]),
            }
        elif task == "rhythm" and ship_model:  # the rhythm task's own ONNX export
            from heartline.federated.tasks import net_for_arrays
            from heartline.training.local import load_state_arrays
            from heartline.training.rhythm import export_rhythm_onnx

            net = net_for_arrays(task, arrays)
            load_state_arrays(net, arrays)
            path = export_rhythm_onnx(
                net, out / "model" / "heartline_federated_rhythm.onnx", name="federated-rhythm"
            )
            summary["shipped"] = {"onnx": str(path)}
        elif task == "beats":
            run_dir = write_run_dir(task, arrays, out / "run", rounds=res["rounds"], info=summary)
        if task == "beats" and ship_model:
            from heartline.federated.export import ship_run_dir

            report = ship_run_dir(
                run_dir, out / "model", n_bootstrap=n_bootstrap, data_dir=data_dir
            )
            summary["shipped"] = {"onnx": str(report.onnx_path), "card": str(report.card_path)}
    (out / "federated_run.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    test = summary.get("test", {})
    console.print(
        f"{strategy}: {rounds} rounds, {hospitals} hospitals, {summary['seconds']:.0f} s, "
        f"{summary['bytes_total']:,} bytes; DS2 macro-F1 {test.get('macro_f1', float('nan')):.3f}"
        + (f"; epsilon {dp_epsilon} at delta {DP_DELTA}" if dp_epsilon is not None else "")
        + f"\nwritten to {out}"
    )


def _epsilons(value: str) -> tuple[float, ...]:
    """``"1,3,8"`` -> ``(1.0, 3.0, 8.0)``; a clear error for anything but positive numbers."""
    out: list[float] = []
    for part in (x.strip() for x in value.split(",")):
        try:
            eps = float(part)
        except ValueError:
            raise _bad(ValueError(f"--dp-epsilons: {part!r} is not a number")) from None
        if not eps > 0 or eps != eps or eps == float("inf"):
            raise _bad(
                ValueError(f"--dp-epsilons: epsilon must be a finite number > 0, got {part}")
            )
        out.append(eps)
    return tuple(out)


@bench_app.command("federated")
@handle_errors
def bench_federated(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Tiny budget (3 hospitals, 2 rounds, few examples): smoke test."
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    nice: Annotated[
        int, typer.Option("--nice", help="Niceness of the federation's processes.")
    ] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip the runs already in OUT/federated.json.")
    ] = False,
    beats_runs: Annotated[
        str | None,
        typer.Option(
            "--beats-runs",
            help="Comma-separated beats runs (central, fedavg, fedavg_la, fedavgm_la, fedprox, "
            "fedadam, dp, dropout, attack_fedavg, attack_robust; 'none' skips the task). "
            "Default: all.",
        ),
    ] = None,
    rhythm_runs: Annotated[
        str | None,
        typer.Option(
            "--rhythm-runs",
            help="Comma-separated rhythm runs (central, fedavg, fedavg_la, fedavgm_la, fedprox, "
            "fedadam, dphead, central_head, fedavg_head, dpsgd, dpsgd_la, dp; "
            "'none' skips the task). Default: all.",
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds", min=1, help="Federated rounds (central: rounds x local epochs epochs)."
        ),
    ] = None,
    local_epochs: Annotated[
        int | None, typer.Option("--local-epochs", min=1, help="Local epochs per round.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="Seed of the partition (Dirichlet draw), N subsample, local validation split, "
            "initialisation and training randomness (default 0).",
        ),
    ] = None,
    noise_seed: Annotated[
        int | None,
        typer.Option(
            "--noise-seed",
            min=0,
            help="Redraw only the training randomness (DP-SGD noise, Poisson batches, "
            "shuffles) at the same partition and initialisation (default 0: the earlier draws).",
        ),
    ] = None,
    dp_epsilons: Annotated[
        str | None,
        typer.Option(
            "--dp-epsilons",
            help="Comma-separated epsilons of the rhythm task's record-level DP runs (dphead, "
            "dpsgd, dpsgd_la; default 1,3,8).",
        ),
    ] = None,
) -> None:
    """Central vs FedAvg/FedProx/FedAdam, DP, dropout and malicious hospitals, one report."""
    _require_flwr()
    import dataclasses

    from heartline.bench.federated import BenchConfig, run_federated_bench

    config = BenchConfig.quick_config() if quick else BenchConfig()
    over: dict[str, Any] = {}
    tasks = list(config.tasks)
    for task, field_name, value in (
        ("beats", "scenarios", beats_runs),
        ("rhythm", "rhythm_scenarios", rhythm_runs),
    ):
        if value is None:
            continue
        names = tuple(x.strip() for x in value.split(",") if x.strip())
        if names == ("none",):
            tasks.remove(task)
            continue
        valid = set(BenchConfig().scenarios if task == "beats" else BenchConfig().rhythm_scenarios)
        bad = sorted(set(names) - valid)
        if bad:
            raise _bad(ValueError(f"--{task}-runs: unknown {bad}; valid: {sorted(valid)}"))
        over[field_name] = names
    over["tasks"] = tuple(tasks)
    if rounds is not None:
        over["rounds"] = rounds
    if local_epochs is not None:
        over["local_epochs"] = local_epochs
    if seed is not None:
        over["seed"] = seed
    if noise_seed is not None:
        over["noise_seed"] = noise_seed
    if dp_epsilons is not None:
        over["dpsgd_epsilons"] = _epsilons(dp_epsilons)
    config = dataclasses.replace(config, **over)

    try:
        report = run_federated_bench(
            out, data_dir=data_dir, nice=nice, resume=resume, config=config
        )
    except ValueError as exc:
        raise _bad(exc) from None
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C: every federation was stopped
        err_console.print(
            f"interrupted: every federation stopped; the runs measured so far are in {out} "
            "(--resume continues)"
        )
        raise typer.Exit(130) from None
    console.print(f"federated benchmark written to {report}")
