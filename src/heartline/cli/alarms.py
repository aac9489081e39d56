"""``heartline alarms``: replay records through the live alarm path, one CSV row per alarm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, invoked_command, progress, progress_steps
from heartline.cli.main import (
    CsvFsOpt,
    DataDirOpt,
    RecordPathsArg,
    ReplayRhythmIntervalOpt,
    app,
    bench_app,
)
from heartline.defaults import DEFAULT_RHYTHM_INTERVAL_S

#: Columns of ``heartline alarms``'s CSV.
ALARM_FIELDS: tuple[str, ...] = (
    "record", "start_s", "end_s", "type", "severity", "technical", "error",
)  # fmt: skip


@app.command("alarms")
@handle_errors
def alarms(
    paths: RecordPathsArg,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (one row per alarm).")],
    fs: CsvFsOpt = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Beat ONNX model (default: the shipped models, by leads)."),
    ] = None,
    rhythm_interval_s: ReplayRhythmIntervalOpt = DEFAULT_RHYTHM_INTERVAL_S,
    af_gate: Annotated[
        bool, typer.Option("--af-gate", help="S calls in AF stored as N, as 'serve --af-gate'.")
    ] = False,
) -> None:
    """Alarms the live system raises for each record: the stream processor's own stages.

    Each record is cut into 1 s device frames and replayed through the stream processor
    (parsing, detector, quality, beat and rhythm models, alert engine) without broker or
    database. Writes ``record,start_s,end_s,type,severity,technical,error``; a record that
    cannot be read gets one row with its message in ``error`` and the batch goes on.
    """
    import csv

    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.errors import HeartlineError
    from heartline.ingestion.replay import replay_record, shipped_beat_model
    from heartline.io.readers import expand_record_paths

    if out.suffix.lower() != ".csv":
        raise typer.BadParameter(f"--out must name a .csv file, got {out}", param_hint="--out")
    records: list[Path] = []
    unreadable: list[tuple[Path, str]] = []  # a path that names no record: an error row
    for p in paths:
        try:
            records.extend(r for r in expand_record_paths([p]) if r not in records)
        except (HeartlineError, ValueError, OSError) as exc:
            unreadable.append((p, f"{type(exc).__name__}: {exc}"))
    try:
        beat_model = OnnxBeatClassifier(model) if model is not None else shipped_beat_model()
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    n_alarms = n_err = 0
    with out.open("w", newline="", encoding="utf-8") as fh, progress() as bar:
        writer = csv.DictWriter(fh, fieldnames=list(ALARM_FIELDS))
        writer.writeheader()
        task = bar.add_task("alarms", total=len(records))
        for path, message in unreadable:
            writer.writerow(
                {**dict.fromkeys(ALARM_FIELDS, ""), "record": str(path), "error": message}
            )
            n_err += 1
        for path in records:
            try:
                rows = replay_record(
                    path,
                    model=beat_model,
                    fs=fs,
                    record=str(path),
                    rhythm_interval_s=rhythm_interval_s,
                    af_gate=af_gate,
                )
            except (HeartlineError, ValueError, OSError) as exc:
                writer.writerow(
                    {
                        **dict.fromkeys(ALARM_FIELDS, ""),
                        "record": str(path),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
                n_err += 1
            else:
                for r in rows:
                    writer.writerow({**r.to_dict(), "error": ""})
                n_alarms += len(rows)
            bar.update(task, advance=1, description=f"alarms: {path.name}")
    console.print(
        f"[green]wrote[/] {out}: {n_alarms} alarms from {len(records)} records; {n_err} unreadable"
    )


@bench_app.command("alarms")
@handle_errors
def bench_alarms(
    out: Annotated[Path, typer.Option("--out", help="Run directory for alarms.json/.md/plots.")],
    quick: Annotated[
        bool, typer.Option("--quick", help="2 AF records (10 min), 12 N + 8 ~ CinC records.")
    ] = False,
    cinc_normal: Annotated[
        int | None,
        typer.Option("--cinc-normal", min=1, help="Seeded subset of N records (default: all)."),
    ] = None,
    cinc_noisy: Annotated[
        int | None,
        typer.Option("--cinc-noisy", min=1, help="Seeded subset of ~ records (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Subset seed.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=8, help="Processes (parts).")] = 1,
    after_only: Annotated[
        bool,
        typer.Option("--after-only", help="Run only the current alarm path (not 'before')."),
    ] = False,
    rhythm_interval_s: ReplayRhythmIntervalOpt = DEFAULT_RHYTHM_INTERVAL_S,
    af_gate: Annotated[
        bool, typer.Option("--af-gate", help="S calls in AF stored as N, as 'serve --af-gate'.")
    ] = False,
    half: Annotated[
        str | None,
        typer.Option(
            "--half",
            help="Score only the 'dev' or 'held_out' half of the CinC sample (seed 2019).",
        ),
    ] = None,
    artefact_model: Annotated[
        str | None,
        typer.Option(
            "--artefact-model",
            help="Beat artefact model of 'after': off, shipped or a path (default: the "
            "processor's default).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """AF episodes on MIT-BIH, false alarms on CinC 2017, cost: the live alarm path before and
    after the rhythm model (see :mod:`heartline.bench.alarms`)."""
    from heartline.bench.alarms import run_alarms_benchmark, write_alarms_report

    with progress_steps("bench alarms") as step:
        report = run_alarms_benchmark(
            data_dir=data_dir,
            quick=quick,
            cinc_normal=cinc_normal,
            cinc_noisy=cinc_noisy,
            seed=seed,
            on_progress=step,
            n_jobs=jobs,
            configs=("after",) if after_only else ("before", "after"),
            rhythm_interval_s=rhythm_interval_s,
            af_gate=af_gate,
            half=half,
            artefact_model=artefact_model,
        )
    command = invoked_command()
    paths = write_alarms_report(report, out, command=command)
    for k, t in report["targets"].items():
        console.print(
            f"{k:28s} {t['value']:.3f} (target {t['target']}): {'met' if t['met'] else 'missed'}"
        )
    console.print(f"[green]wrote[/] {paths['json']}, {paths['md']} ({report['wall_s']:.0f} s)")
