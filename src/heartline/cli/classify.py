"""``heartline classify RECORD --out beats.csv``: every beat of a WFDB record, detected and classified.

Runs :func:`heartline.pipeline.classify_record`, the same streaming code the live processor
runs (chunked R-peak detection, block-wise cleaning, online normalisation and RR features, the
ONNX classifier), at the record's own sampling rate.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors
from heartline.cli.main import app

log = logging.getLogger(__name__)


def _default_model() -> Path:
    try:
        from heartline.edge import shipped_model_path  # type: ignore[attr-defined]
    except ImportError:
        try:
            from heartline.edge.shipped import shipped_model_path
        except ImportError:
            raise FileNotFoundError(
                "no shipped beat classifier in this installation: pass --model PATH.onnx"
            ) from None
    return Path(shipped_model_path())


@app.command()
@handle_errors
def classify(
    record: Annotated[
        Path, typer.Argument(help="WFDB record path without extension (e.g. .../mitdb/208).")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write, one row per beat.")],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="ONNX beat classifier (default: the shipped model)."),
    ] = None,
    min_run: Annotated[
        int, typer.Option("--min-run", min=2, help="Shortest run of V beats reported.")
    ] = 3,
) -> None:
    """Detect and classify every beat of RECORD (any sampling rate); write a CSV and print a summary."""
    from rich.table import Table

    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.io import read_record
    from heartline.pipeline import classify_record

    try:
        model_path = model if model is not None else _default_model()
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if not model_path.is_file():
        console.print(f"[bold red]error:[/] --model: no ONNX model at {model_path}")
        raise typer.Exit(1)
    if out.exists() and out.is_dir():
        console.print(f"[bold red]error:[/] --out {out} is a directory; give a .csv file path")
        raise typer.Exit(1)
    try:
        rec = read_record(record)
    except (FileNotFoundError, OSError, ValueError) as exc:
        console.print(f"[bold red]error:[/] cannot read record {record}: {exc}")
        raise typer.Exit(1) from None
    clf = OnnxBeatClassifier(model_path)
    res = classify_record(rec, model=clf)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "sample",
                "time_s",
                "label",
                "confidence",
                "quality_ok",
                *[f"p_{c}" for c in res.classes],
            ]
        )
        for i in range(len(res)):
            w.writerow(
                [
                    int(res.sample_idx[i]),
                    f"{res.sample_idx[i] / res.fs:.4f}",
                    res.labels[i],
                    f"{res.confidence[i]:.4f}",
                    int(res.quality_ok[i]),
                    *[f"{p:.5f}" for p in res.probabilities[i]],
                ]
            )
    counts = res.counts()
    table = Table(
        title=f"{rec.name}: {len(res)} beats, {rec.signal.shape[0] / rec.fs:.0f} s at {rec.fs:g} Hz"
    )
    table.add_column("class")
    table.add_column("beats", justify="right")
    table.add_column("%", justify="right")
    for c, n in counts.items():
        table.add_row(c, str(n), f"{100.0 * n / max(1, len(res)):.1f}")
    console.print(table)
    runs = res.runs("V", min_length=min_run)
    console.print(f"ectopic burden (S+V+F): [bold]{res.ectopic_burden_pct:.1f} %[/]")
    if runs:
        longest = max(b - a for a, b in runs)
        first = ", ".join(
            f"{res.sample_idx[a] / res.fs:.1f} s ({b - a} beats)" for a, b in runs[:5]
        )
        console.print(
            f"runs of >= {min_run} V beats: [bold]{len(runs)}[/] (longest {longest}); first at {first}"
        )
    else:
        console.print(f"runs of >= {min_run} V beats: 0")
    console.print(f"model {model_path.name}; wrote {out}")
