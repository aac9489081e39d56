"""``heartline rhythm`` (classify recordings) and ``heartline bench rhythm`` (cross-validation)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, progress
from heartline.cli.main import DataDirOpt, bench_app


@bench_app.command("rhythm")
@handle_errors
def bench_rhythm(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for rhythm.json, rhythm.md and plots.")
    ],
    quick: Annotated[
        bool, typer.Option("--quick", help="Small subset, 2 folds, 1 epoch (smoke test).")
    ] = False,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per network.")] = 10,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated models (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Folds and training seed.")] = 0,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Preprocessed-array cache (default: user cache)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rhythm (N/A/O/~) cross-validation on CinC 2017: hybrid CNN-LSTM and every baseline."""
    from heartline.bench.rhythm import (
        BENCH_MODELS,
        RhythmBenchConfig,
        run_rhythm_benchmark,
        write_rhythm_report,
    )

    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else BENCH_MODELS
    try:
        cfg = RhythmBenchConfig(n_folds=folds, epochs=epochs, models=names, seed=seed, quick=quick)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--models") from None
    with progress() as bar:
        task = bar.add_task("bench rhythm", total=None)

        def step(desc: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"bench rhythm: {desc}")

        report = run_rhythm_benchmark(
            cfg, out=out, data_dir=data_dir, cache_dir=cache_dir, on_progress=step
        )
    command = "heartline " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    paths = write_rhythm_report(report, out, command=command)
    for m, r in report["models"].items():
        console.print(f"{m:10s} CinC F1 {r['cinc_f1']:.3f}  F1 A {r['classes']['A']['f1']:.3f}")
    console.print(f"[green]wrote[/] {paths['json']}, {paths['md']} ({report['wall_s']:.0f} s)")
