"""``heartline rhythm`` (classify recordings) and ``heartline bench rhythm`` (cross-validation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, invoked_command, progress, progress_steps
from heartline.cli.main import CsvFsOpt, DataDirOpt, RecordPathsArg, app, bench_app


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
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per network.")] = 4,
    baseline_epochs: Annotated[
        int | None,
        typer.Option(
            "--baseline-epochs", min=1, help="Epochs of the CNN-only and LSTM-only baselines."
        ),
    ] = None,
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
        cfg = RhythmBenchConfig(
            n_folds=folds,
            epochs=epochs,
            baseline_epochs=baseline_epochs,
            models=names,
            seed=seed,
            quick=quick,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--models") from None
    with progress_steps("bench rhythm") as step:
        report = run_rhythm_benchmark(
            cfg, out=out, data_dir=data_dir, cache_dir=cache_dir, on_progress=step
        )
    command = invoked_command()
    paths = write_rhythm_report(report, out, command=command)
    for m, r in report["models"].items():
        console.print(f"{m:10s} CinC F1 {r['cinc_f1']:.3f}  F1 A {r['classes']['A']['f1']:.3f}")
    console.print(f"[green]wrote[/] {paths['json']}, {paths['md']} ({report['wall_s']:.0f} s)")


def _pick_lead(names: tuple[str, ...], wanted: str | None) -> int:
    """Index of the lead to classify: ``wanted``, else I (the AliveCor lead), II/MLII, else the first."""
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"lead {wanted!r} not in this record; it has {list(names)}")
        return names.index(wanted)
    upper = [n.upper() for n in names]
    for pref in ("I", "ECG", "II", "MLII"):
        if pref in upper:
            return upper.index(pref)
    return 0


@app.command("rhythm")
@handle_errors
def rhythm(
    paths: RecordPathsArg,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (one row per record).")],
    fs: CsvFsOpt = None,
    lead: Annotated[
        str | None,
        typer.Option(
            "--lead", help="Lead to classify (default: I, ECG, II or MLII, else the first)."
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Rhythm ONNX model (default: the shipped one).")
    ] = None,
) -> None:
    """Rhythm of each recording: N (normal), A (AF), O (other) or ~ (noisy/unusable).

    Writes ``record,label,p_N,p_A,p_O,p_noisy,error`` plus ``lead``, ``fs_hz`` and
    ``duration_s``; a record that cannot be read or used gets its message in ``error`` and
    the batch goes on.
    """
    import csv
    import warnings

    from heartline.edge.rhythm import OnnxRhythmClassifier
    from heartline.errors import HeartlineError
    from heartline.io.readers import expand_record_paths, read_ecg

    records = expand_record_paths(paths)
    if out.suffix.lower() != ".csv":
        raise typer.BadParameter(f"--out must name a .csv file, got {out}", param_hint="--out")
    try:
        clf = OnnxRhythmClassifier(model)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = [
        "record", "label", "p_N", "p_A", "p_O", "p_noisy", "error", "lead", "fs_hz", "duration_s",
    ]  # fmt: skip
    counts: dict[str, int] = {}
    n_err = 0
    with out.open("w", newline="", encoding="utf-8") as fh, progress() as bar:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        task = bar.add_task("rhythm", total=len(records))
        for path in records:
            row: dict[str, object] = dict.fromkeys(fields, "")
            row["record"] = str(path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # flat/NaN leads: classify_rhythm says so
                    rec = read_ecg(
                        path, fs=fs if path.suffix.lower() in (".csv", ".tsv", ".txt") else None
                    )
                j = _pick_lead(tuple(rec.lead_names), lead)
                res = clf.classify(rec.signal[:, j], fs=rec.fs)
                row.update(
                    label=res.label,
                    p_N=f"{res.p_N:.4f}",
                    p_A=f"{res.p_A:.4f}",
                    p_O=f"{res.p_O:.4f}",
                    p_noisy=f"{res.p_noisy:.4f}",
                    error="" if res.usable else res.message,
                    lead=rec.lead_names[j],
                    fs_hz=f"{rec.fs:g}",
                    duration_s=f"{res.duration_s:.2f}",
                )
                if not res.usable:
                    n_err += 1
            except (HeartlineError, ValueError, OSError) as exc:
                row.update(label="~", error=f"{type(exc).__name__}: {exc}")
                n_err += 1
            counts[str(row["label"])] = counts.get(str(row["label"]), 0) + 1
            writer.writerow(row)
            bar.update(task, advance=1, description=f"rhythm: {path.name}")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    console.print(
        f"[green]wrote[/] {out}: {len(records)} records ({summary}); {n_err} with an error"
    )


@bench_app.command("rhythm-ship")
@handle_errors
def bench_rhythm_ship(
    out: Annotated[Path, typer.Option("--out", help="Run directory for rhythm.onnx/.json/.md.")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Maximum epochs.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Split and training seed.")] = 0,
    assets_dir: Annotated[
        Path | None,
        typer.Option("--assets-dir", help="Where to install the model (default: the package's)."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Preprocessed-array cache (default: user cache)."),
    ] = None,
    cv_json: Annotated[
        Path | None,
        typer.Option(
            "--cv-json",
            help="rhythm.json of the `heartline bench rhythm` cross-validation the design comes "
            "from (its hybrid figures are quoted in the model card).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Train the shipped stacked hybrid on the fixed 80 % split, score it once on the 20 %, export."""
    from heartline.bench.rhythm import ship_rhythm_model

    command = invoked_command()
    with progress_steps("rhythm-ship") as step:
        report = ship_rhythm_model(
            out=out,
            assets_dir=assets_dir,
            epochs=epochs,
            seed=seed,
            data_dir=data_dir,
            cache_dir=cache_dir,
            cv_report=cv_json,
            command=command,
            on_progress=step,
        )
    m = report["test_metrics_onnx"]
    console.print(
        f"shipped stacked hybrid on the 20 % test: CinC F1 {m['cinc_f1']:.3f}, F1 A "
        f"{m['classes']['A']['f1']:.3f}; {report['inference']['ms_per_30s_window_median']:.2f} ms "
        "per 30 s window"
    )
