"""``heartline classify PATH... --out beats.csv``: every beat of records, detected and classified.

Each PATH is a WFDB record (path without extension, ``.hea`` or ``.mat``), an EDF file or a CSV
file (``--fs`` required), read by :func:`heartline.io.readers.read_ecg`, or a folder of them
(:func:`heartline.io.readers.expand_record_paths`). The beat model is
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


_COLUMNS = ("record", "sample", "time_s", "label", "confidence", "quality_ok")


def _write_rows(w, res, record: str) -> None:  # type: ignore[no-untyped-def]
    conf = res.confidence
    lead_col = "+".join(res.leads_used)
    for i in range(len(res)):
        w.writerow(
            [
                record,
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


@app.command()
@handle_errors
def classify(
    records: Annotated[
        list[Path],
        typer.Argument(
            help="WFDB records (path without extension, .hea or .mat), EDF or CSV files, or "
            "folders of records (by their RECORDS file, else their .hea files)."
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
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also write every beat's occlusion attributions to <out>.explain.npz "
            "(see docs/multimodal.md); about 10 ms of CPU per beat.",
        ),
    ] = False,
    af_gate: Annotated[
        bool,
        typer.Option(
            "--af-gate",
            help="Report S calls during atrial fibrillation (the shipped rhythm model's verdict) "
            "as N, the AAMI convention; as 'heartline serve --af-gate'.",
        ),
    ] = False,
) -> None:
    """Detect and classify every beat of each record (any sampling rate >= 100 Hz); write a CSV.

    One record: a summary table. Several: one summary row per record; a record that cannot be
    read or classified is reported and skipped (exit code 1 when any was).
    """
    from rich.table import Table

    from heartline.api import classify as classify_signal
    from heartline.edge.model_select import LeadMismatchError
    from heartline.errors import DataError, SignalError
    from heartline.io.readers import expand_record_paths, read_ecg

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
        paths = expand_record_paths(records)
    except (DataError, ValueError) as exc:
        fail(f"cannot read record {exc}")

    def run_one(path: Path, *, bar=None):  # type: ignore[no-untyped-def]
        """(record, result) or raise ValueError with a message naming the record."""
        try:
            rec = read_ecg(path, fs=fs)
        except (FileNotFoundError, OSError, ValueError, DataError) as exc:
            msg = str(exc)
            if isinstance(exc, SignalError) and "--fs" in msg:
                raise ValueError(msg) from None
            raise ValueError(f"cannot read record {path}: {msg}") from None
        try:
            if bar is None and rec.n_samples / rec.fs >= PROGRESS_MIN_S:
                with progress() as pbar:
                    task = pbar.add_task(f"classifying {rec.name}", total=rec.n_samples)
                    res = classify_signal(
                        rec,
                        lead=lead,
                        model=model_path,
                        progress=lambda done, total: pbar.update(task, completed=done),
                        explain=explain,
                        af_gate=af_gate,
                    )
            else:
                res = classify_signal(
                    rec, lead=lead, model=model_path, explain=explain, af_gate=af_gate
                )
        except LeadMismatchError as exc:
            raise ValueError(str(exc)) from None
        except (SignalError, FileNotFoundError) as exc:
            raise ValueError(f"{rec.name}: {exc}") from None
        return rec, res

    def header(res) -> list[str]:  # type: ignore[no-untyped-def]
        return [*_COLUMNS, *[f"p_{c}" for c in res.classes], "lead", "model"]

    if len(paths) == 1:
        try:
            rec, res = run_one(paths[0])
        except ValueError as exc:
            fail(str(exc))
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header(res))
            _write_rows(w, res, rec.name)
        _print_summary(rec, res, min_run=min_run, table_cls=Table)
        console.print(f"model {res.model_id}; wrote {out}")
        results = [(rec, res)]
        failed: list[str] = []
    else:
        results, failed = [], []
        out.parent.mkdir(parents=True, exist_ok=True)
        table = Table(title=f"{len(paths)} records")
        for col in ("record", "beats", "N", "S", "V", "F", "Q", "lead(s)", "model"):
            table.add_column(
                col, justify="left" if col in ("record", "lead(s)", "model") else "right"
            )
        with out.open("w", newline="") as fh, progress() as bar:
            w = csv.writer(fh)
            task = bar.add_task("classify", total=len(paths))
            wrote_header = False
            for path in paths:
                try:
                    rec, res = run_one(path, bar=bar)
                except ValueError as exc:
                    failed.append(str(exc))
                    console.print(
                        f"[bold red]error:[/] {exc} (skipped)", soft_wrap=True, highlight=False
                    )
                else:
                    if not wrote_header:
                        w.writerow(header(res))
                        wrote_header = True
                    _write_rows(w, res, rec.name)
                    results.append((rec, res))
                    c = res.counts()
                    table.add_row(
                        rec.name,
                        str(len(res)),
                        *(str(c.get(k, 0)) for k in "NSVFQ"),
                        "+".join(res.leads_used),
                        res.model_id,
                    )
                bar.advance(task)
        console.print(table)
        console.print(
            f"wrote {out}: {sum(len(r) for _, r in results)} beats of {len(results)} records"
            + (f"; {len(failed)} record(s) failed" if failed else "")
        )
    if annotations:
        for rec, res in results:
            try:
                ann = write_annotations(res, out.parent, record=rec.name, extension=ann_ext)
            except ValueError as exc:
                console.print(f"[yellow]warning:[/] {exc}")
            else:
                console.print(
                    f"wrote {ann} (read it with wfdb.rdann('{out.parent / rec.name}', '{ann_ext}'))"
                )
    if explain:
        for rec, res in results:
            path = write_explanations(res, out, record=rec.name)
            console.print(f"wrote {path} (per-beat occlusion attributions; numpy.load)")
    if failed:
        raise typer.Exit(1)


def explanation_path(out: Path, record: str) -> Path:
    """``<out without .csv>.<record>.explain.npz``, beside the CSV."""
    return out.with_name(f"{out.stem}.{record}.explain.npz")


def write_explanations(res, out: Path, *, record: str) -> Path:  # type: ignore[no-untyped-def]
    """Write ``res.attributions`` (from ``classify(..., explain=True)``) beside the CSV ``out``.

    The ``.npz`` holds, one row per beat in the CSV's order: ``sample`` (R peak, samples at
    ``fs``), ``time_s``, ``label`` (the explained, predicted class), ``attributions``
    ``(n_beats, n_leads, window_len)`` (drop of the label's log-odds when a patch of the window
    is set to 0, spread over the patch; positive: supports the label), and ``window_t_s`` (time
    of each window sample from the R peak), ``leads``, ``classes``, ``model``, ``method``,
    ``fs``.
    """
    from heartline.edge.occlusion import SCORES

    if res.attributions is None:
        raise ValueError(f"{record}: classified without explain=True, no attributions")
    path = explanation_path(out, record)
    np.savez_compressed(
        path,
        sample=np.asarray(res.sample_idx, dtype=np.int64),
        time_s=np.asarray(res.sample_idx, dtype=np.float64) / res.fs,
        label=np.asarray(res.labels, dtype="<U1"),
        attributions=np.asarray(res.attributions, dtype=np.float32),
        window_t_s=np.asarray(res.window_t_s, dtype=np.float64),
        leads=np.asarray(res.leads_used, dtype=str),
        classes=np.asarray(res.classes, dtype=str),
        model=np.asarray(res.model_id),
        method=np.asarray(f"occlusion ({SCORES[0]}, patch 8, stride 4)"),
        fs=np.asarray(res.fs),
    )
    return path


def _print_summary(rec, res, *, min_run: int, table_cls) -> None:  # type: ignore[no-untyped-def]
    console.print(f"leads used: [bold]{'+'.join(res.leads_used)}[/] ({res.note})")
    for flag in rec.flags:
        console.print(f"[yellow]warning:[/] {flag}")
    counts = res.counts()
    duration_s = rec.n_samples / rec.fs
    table = table_cls(title=f"{rec.name}: {len(res)} beats, {duration_s:.0f} s at {rec.fs:g} Hz")
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
