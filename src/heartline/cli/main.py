"""``heartline`` console script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline import __version__
from heartline.cli.common import console, handle_errors, setup_logging, track
from heartline.defaults import (
    DEFAULT_RHYTHM_INTERVAL_S,
    MAX_RHYTHM_INTERVAL_S,
    MIN_RHYTHM_INTERVAL_S,
)

app = typer.Typer(
    help="Heartline: IoT cardiac monitoring from the edge to the clinic.", no_args_is_help=True
)
data_app = typer.Typer(help="PhysioNet data: fetch and check.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks that write JSON and Markdown reports.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $HEARTLINE_DATA_DIR, ../shared/data, or the user cache).",
    ),
]
BeatModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="ONNX beat classifier (default: the shipped model)."),
]
RhythmIntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--rhythm-interval-s",
        min=MIN_RHYTHM_INTERVAL_S,
        max=MAX_RHYTHM_INTERVAL_S,
        help="Rhythm model cadence in seconds of each device's data (default: settings, "
        f"{DEFAULT_RHYTHM_INTERVAL_S:g} s); longer holds more patients per core, with later AF "
        "verdicts.",
    ),
]
AfGateOpt = Annotated[
    bool | None,
    typer.Option(
        "--af-gate/--no-af-gate",
        help="Store S calls during atrial fibrillation (the rhythm model's latest verdict) as N, "
        "the AAMI convention (default: settings, off; HEARTLINE_AF_GATE).",
    ),
]
#: The same cadence for the commands that replay the stream processor (alarms, benchmarks).
ReplayRhythmIntervalOpt = Annotated[
    float,
    typer.Option(
        "--rhythm-interval-s",
        min=MIN_RHYTHM_INTERVAL_S,
        max=MAX_RHYTHM_INTERVAL_S,
        help="Rhythm model cadence (s of data), as 'heartline serve --rhythm-interval-s'.",
    ),
]
RecordPathsArg = Annotated[
    list[Path],
    typer.Argument(help="WFDB records, folders of records (RECORDS or .hea), EDF or CSV files."),
]
CsvFsOpt = Annotated[
    float | None, typer.Option("--fs", help="Sampling rate in Hz (CSV files only).")
]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the Heartline version."""
    console.print(__version__)


@data_app.command("fetch")
@handle_errors
def data_fetch(
    database: Annotated[str, typer.Argument(help="mitdb, nstdb, svdb, incartdb or ptb-xl")],
    data_dir: DataDirOpt = None,
) -> None:
    """Download a PhysioNet database through wfdb (needs internet)."""
    from heartline.data.paths import fetch_database

    console.print(f"fetching {database} ...")
    path = fetch_database(database, data_dir=data_dir)
    console.print(f"[green]done:[/] {path}")


@data_app.command("check")
@handle_errors
def data_check(
    databases: Annotated[
        list[str] | None, typer.Argument(help="Databases to check (default: all present).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify every record: header, .dat sizes, checksums, annotations."""
    from rich.table import Table

    from heartline.data.paths import DATABASES, database_dir, resolve_data_dir
    from heartline.errors import DataNotFoundError
    from heartline.io.check import check_record

    root = resolve_data_dir(data_dir)
    names = databases or [
        d for d in DATABASES if database_dir(d, data_dir=root, must_exist=False).is_dir()
    ]
    if not names:
        raise DataNotFoundError(
            f"no database found in {root}; fetch one with `heartline data fetch mitdb`"
        )
    table = Table(title=f"heartline data check ({root})")
    for col in ("database", "records", "ok", "failed"):
        table.add_column(col)
    problems: list[str] = []
    for db in names:
        folder = database_dir(db, data_dir=root)
        headers = sorted(folder.rglob("*.hea"))
        results = [
            check_record(h.with_suffix("")) for h in track(headers, description=f"checking {db}")
        ]
        failed = [r for r in results if not r.ok]
        problems.extend(p for r in failed for p in r.problems)
        table.add_row(db, str(len(results)), str(len(results) - len(failed)), str(len(failed)))
    console.print(table)
    bad = len(problems)
    for problem in problems:  # one unwrapped line each, so the file name stays whole
        console.print(f"[red]problem:[/] {problem}", soft_wrap=True, highlight=False)
    if bad:
        raise typer.Exit(1)


def _register_optional_commands() -> None:
    """Attach commands that live in other modules (each module adds itself to ``app``)."""
    import importlib

    for mod in (
        "heartline.cli.bench_qrs",
        "heartline.cli.bench_signal",
        "heartline.cli.models",
        "heartline.cli.streaming",
        "heartline.cli.classify",
        "heartline.cli.serve",
        "heartline.cli.admin",
        "heartline.cli.federated",
        "heartline.cli.rhythm",
        "heartline.cli.multimodal",
        "heartline.cli.diagnose",
        "heartline.cli.worker",
        "heartline.cli.bench_faults",
        "heartline.cli.alarms",
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


_register_optional_commands()


def main() -> None:
    """Console-script entry point: ``app`` plus one clear line for a missing optional extra.

    Commands decorated with :func:`~heartline.cli.common.handle_errors` report a missing extra
    themselves; this catches the others (``heartline serve`` without ``heartline[service]``,
    ``heartline train`` without ``heartline[train]``, ...).
    """
    from rich.markup import escape

    from heartline.cli.common import err_console, missing_extra

    try:
        app()
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    # Run as ``python -m heartline.cli.main``: this file is then ``__main__``, while the command
    # modules attach themselves to ``heartline.cli.main.app``; call that module's entry point.
    from heartline.cli.main import main as _entry_point

    _entry_point()
