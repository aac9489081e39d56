"""``heartline classify RECORD --out beats.csv``: every beat of a record, detected and classified.

RECORD is a WFDB record (path without extension, ``.hea`` or ``.mat``), an EDF file or a CSV
file (``--fs`` required), read by :func:`heartline.io.readers.read_ecg`. The beat model is
chosen from the record's leads (:func:`heartline.edge.model_select.select_beat_model`): MLII +
V1/V2/V4/V5 -> the two-lead model, one lead or lead II of a 12-lead record -> the single-lead
(MLII) model; the output says which lead(s) it used. It runs :func:`heartline.api.classify`, the
streaming code the live processor runs, at the record's own sampling rate. ``--annotations``
also writes a WFDB annotation file with the AAMI symbols N, S, V, F, Q (``wfdb.wrann``), which
``wfdb.rdann`` and WFDB viewers read.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from heartline.cli.common import console, handle_errors, progress
from heartline.cli.main import app

log = logging.getLogger(__name__)

#: Records longer than this get a progress bar.
PROGRESS_MIN_S = 120.0


def _default_model() -> Path | None:
    """``None``: the shipped models, chosen from the record's leads (kept for tests that stub it)."""
    return None


def write_annotations(table, out_dir: Path, *, record: str, extension: str = "hlb") -> Path:  # type: ignore[no-untyped-def]
    """Write ``table``'s beats as a WFDB annotation file ``out_dir/<record>.<extension>``."""
    import wfdb

    out_dir.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(table.sample_idx, dtype=np.int64)
    symbols = [str(s) for s in table.labels]
    if samples.size == 0:
        raise ValueError(f"{record}: no beats detected, no annotation file written")
    wfdb.wrann(
        record,
        extension,
        sample=samples,
        symbol=symbols,
        fs=table.fs,
        write_dir=str(out_dir),
    )
    return out_dir / f"{record}.{extension}"


@app.command()
@handle_errors
def classify(
    record: Annotated[
        Path,
        typer.Argument(
            help="WFDB record (path without extension, .hea or .mat), EDF file or CSV file."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write, one row per beat.")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="ONNX beat classifier (default: the shipped one for the leads)."
        ),
    ] = None,
    fs: Annotated[
        float | None,
        typer.Option("--fs", help="Sampling rate in Hz (required for CSV, a check otherwise)."),
    ] = None,
    lead: Annotated[
        str | None,
        typer.Option("--lead", help="Classify only this lead, with the single-lead model."),
    ] = None,
    annotations: Annotated[
        bool,
        typer.Option(
            "--annotations",
            help="Also write a WFDB annotation file <record>.<ann-ext> beside the CSV.",
        ),
    ] = False,
    ann_ext: Annotated[
        str, typer.Option("--ann-ext", help="Extension of the annotation file.")
    ] = "hlb",
    min_run: Annotated[
        int, typer.Option("--min-run", min=2, help="Shortest run of V beats reported.")
    ] = 3,
) -> None:
    """Detect and classify every beat of RECORD (any sampling rate >= 100 Hz); write a CSV."""
    from rich.table import Table

    from heartline.api import classify as classify_signal
    from heartline.edge.model_select import LeadMismatchError
    from heartline.errors import DataError, SignalError
    from heartline.io.readers import read_ecg

    def fail(msg: str) -> None:
        console.print(f"[bold red]error:[/] {msg}")
        raise typer.Exit(1)

    try:
        model_path = model if model is not None else _default_model()
    except FileNotFoundError as exc:
        fail(str(exc))
    if model_path is not None and not model_path.is_file():
        fail(f"--model: no ONNX model at {model_path}")
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; give a .csv file path")
    if not ann_ext.isalnum():
        fail(f"--ann-ext {ann_ext!r}: use letters and digits only")
    try:
        rec = read_ecg(record, fs=fs)
    except (FileNotFoundError, OSError, ValueError, DataError) as exc:
        msg = str(exc)
        if isinstance(exc, SignalError) and "--fs" in msg:
            fail(msg)
        fail(f"cannot read record {record}: {msg}")
    duration_s = rec.n_samples / rec.fs
    try:
        if duration_s >= PROGRESS_MIN_S:
            with progress() as bar:
                task = bar.add_task(f"classifying {rec.name}", total=rec.n_samples)
                res = classify_signal(
                    rec,
                    lead=lead,
                    model=model_path,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
        else:
            res = classify_signal(rec, lead=lead, model=model_path)
    except LeadMismatchError as exc:
        fail(str(exc))
    except (SignalError, FileNotFoundError) as exc:
        fail(f"{rec.name}: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    lead_col = "+".join(res.leads_used)
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
                "lead",
                "model",
            ]
        )
        conf = res.confidence
        for i in range(len(res)):
            w.writerow(
                [
                    int(res.sample_idx[i]),
                    f"{res.sample_idx[i] / res.fs:.4f}",
                    res.labels[i],
                    f"{conf[i]:.4f}",
                    int(res.quality_ok[i]),
                    *[f"{p:.5f}" for p in res.probabilities[i]],
                    lead_col,
                    res.model_id,
                ]
            )
    console.print(f"leads used: [bold]{lead_col}[/] ({res.note})")
    for flag in rec.flags:
        console.print(f"[yellow]warning:[/] {flag}")
    counts = res.counts()
    table = Table(title=f"{rec.name}: {len(res)} beats, {duration_s:.0f} s at {rec.fs:g} Hz")
    table.add_column("class")
    table.add_column("beats", justify="right")
    table.add_column("%", justify="right")
    for c, n in counts.items():
        table.add_row(c, str(n), f"{100.0 * n / max(1, len(res)):.1f}")
    console.print(table)
    summary = res.summary()
    console.print(
        f"mean heart rate {summary.mean_hr_bpm:.0f} bpm; ectopic burden (S+V+F): "
        f"[bold]{summary.ectopic_burden_pct:.1f} %[/]"
    )
    runs = _runs(res.labels, "V", min_run)
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
    console.print(f"model {res.model_id}; wrote {out}")
    if annotations:
        try:
            ann = write_annotations(res, out.parent, record=rec.name, extension=ann_ext)
        except ValueError as exc:
            console.print(f"[yellow]warning:[/] {exc}")
        else:
            console.print(
                f"wrote {ann} (read it with wfdb.rdann('{out.parent / rec.name}', '{ann_ext}'))"
            )


def _runs(labels: np.ndarray, label: str, min_length: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = None
    for i, lab in enumerate([*labels.tolist(), None]):
        if lab == label and start is None:
            start = i
        elif lab != label and start is not None:
            if i - start >= min_length:
                out.append((start, i))
            start = None
    return out
