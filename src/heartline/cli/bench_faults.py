"""``heartline bench faults``: honest devices keep being monitored while one device attacks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, resolve_beat_model
from heartline.cli.main import BeatModelOpt, DataDirOpt, bench_app


@bench_app.command("faults")
@handle_errors
def bench_faults(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for faults.json and faults.md.")
    ],
    quick: Annotated[
        bool, typer.Option("--quick", help="4 honest devices, 10 s no-data limit (about 1.5 min).")
    ] = False,
    honest: Annotated[
        int | None, typer.Option("--honest", min=1, help="Honest devices (default 20; 4 quick).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 2,
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Topic partitions.")] = 4,
    no_data_alert_s: Annotated[
        float | None,
        typer.Option("--no-data-alert-s", help="No-data limit in seconds (default 30; 10 quick)."),
    ] = None,
    model: BeatModelOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fault injection: N honest devices, one silent, one hostile; loss, latency, alerts, memory."""
    from heartline.bench.faults import run_faults_bench

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    res = run_faults_bench(
        out,
        model=resolve_beat_model(model),
        quick=quick,
        honest=honest,
        workers=workers,
        n_partitions=partitions,
        no_data_alert_s=no_data_alert_s,
        data_dir=data_dir,
        report=lambda msg: console.print(f"[dim]{msg}[/]"),
    )
    console.print((Path(out) / "faults.md").read_text())
    if not res["passed"]["all"]:
        failed = [k for k, v in res["passed"].items() if not v and k != "all"]
        console.print(f"[bold red]targets missed:[/] {', '.join(failed)}")
        raise typer.Exit(1)
