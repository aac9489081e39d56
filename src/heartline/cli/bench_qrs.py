"""``heartline bench qrs``: every R-peak detector on MIT-BIH and NSTDB, same run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, progress
from heartline.cli.main import DataDirOpt, bench_app


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@bench_app.command("qrs")
@handle_errors
def bench_qrs(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for qrs.json, qrs.md and the plot.")
    ],
    detectors: Annotated[
        str | None,
        typer.Option("--detectors", help="Comma-separated detector names (default: all)."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="A handful of records (100 105 108 203 208 233; NSTDB e06/e00)."
        ),
    ] = False,
    records: Annotated[
        str | None,
        typer.Option(
            "--records", help="Comma-separated MIT-BIH records (overrides the default set)."
        ),
    ] = None,
    nstdb_records: Annotated[
        str | None,
        typer.Option(
            "--nstdb-records",
            help="Comma-separated NSTDB records, e.g. 118e00,119e00 ('' for none).",
        ),
    ] = None,
    repeats: Annotated[
        int,
        typer.Option(
            "--repeats", min=1, help="Runs per detector and record; the fastest is reported."
        ),
    ] = 3,
    resample_hz: Annotated[
        float | None,
        typer.Option(
            "--resample-hz",
            min=50.0,
            help="Resample records and annotations to this rate first (e.g. 300 for CinC 2017).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Benchmark R-peak detectors: Se, +P, F1 (150 and 50 ms), time, NSTDB F1 vs SNR."""
    from rich.table import Table

    from heartline.bench.qrs import (
        MITDB_RECORDS,
        NSTDB_RECORDS,
        QUICK_MITDB,
        QUICK_NSTDB,
        gross_table_rows,
        run_qrs_benchmark,
        write_qrs_report,
    )
    from heartline.signal.rpeaks import DETECTORS

    names = _split(detectors) or list(DETECTORS)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise typer.BadParameter(
            f"unknown detector(s) {unknown}; valid: {', '.join(sorted(DETECTORS))}",
            param_hint="--detectors",
        )
    mit = _split(records)
    nst = _split(nstdb_records)
    if mit is None:
        mit = list(QUICK_MITDB if quick else MITDB_RECORDS)
    if nst is None:
        nst = list(QUICK_NSTDB if quick else NSTDB_RECORDS)
    subset = quick or records is not None or nstdb_records is not None
    total = (len(mit) + len(nst)) * len(names)
    with progress() as bar:
        task = bar.add_task("bench qrs", total=total)

        def step(desc: str) -> None:
            bar.update(task, advance=1, description=f"bench qrs: {desc}")

        report = run_qrs_benchmark(
            detectors=names,
            data_dir=data_dir,
            mitdb_records=mit,
            nstdb_records=nst,
            quick=subset,
            repeats=repeats,
            on_step=step,
            resample_hz=resample_hz,
        )
    paths = write_qrs_report(report, out)
    header, rows = gross_table_rows(report)
    table = Table(
        title="heartline bench qrs"
        + (" (QUICK subset)" if subset else "")
        + f", tolerance {report['tolerance_ms']} ms"
        + (f", resampled to {resample_hz:g} Hz" if resample_hz else "")
    )
    shown = [
        i for i, col in enumerate(header) if col not in {"TP", "F1 VF-excl %", "NSTDB e06 F1 %"}
    ]
    for i in shown:
        table.add_column(header[i], justify="left" if header[i] == "detector" else "right")
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    console.print(f"[green]wrote[/] {paths['json']}, {paths['md']}, {paths['png']}")
