"""``heartline diagnose RECORD``: PTB-XL superdiagnostic classes of a 12-lead record (thin).

Reads the record with :func:`heartline.read_record` (WFDB, EDF; CSV with ``--fs``), runs
:func:`heartline.diagnose` (the shipped stacked multimodal model, ONNX Runtime) with the patient
data given as options, prints the class probabilities against their thresholds, and writes a
FHIR R4 Bundle (DiagnosticReport + one Observation per class) with ``--fhir``. For a record
inside a PTB-XL folder, the patient data come from ``ptbxl_database.csv`` unless given
(``--no-ptbxl-metadata`` turns that off).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from heartline.cli.common import console, err_console, handle_errors
from heartline.cli.main import app


def _fail(message: str) -> typer.Exit:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(1)


@app.command("diagnose")
@handle_errors
def diagnose(
    record: Annotated[
        Path,
        typer.Argument(help="12-lead record: WFDB (path without extension or .hea), EDF, CSV."),
    ],
    age: Annotated[
        float | None, typer.Option(help="Age in years (300: PTB-XL's 'over 89').")
    ] = None,
    sex: Annotated[str | None, typer.Option(help="male or female.")] = None,
    height: Annotated[float | None, typer.Option(help="Height in cm.")] = None,
    weight: Annotated[float | None, typer.Option(help="Weight in kg.")] = None,
    patient_id: Annotated[
        str | None, typer.Option("--patient-id", help="Patient id for the FHIR resources.")
    ] = None,
    fhir: Annotated[
        Path | None,
        typer.Option("--fhir", help="Write a FHIR R4 Bundle (DiagnosticReport + Observations)."),
    ] = None,
    fhir_base_url: Annotated[
        str,
        typer.Option(
            "--fhir-base-url",
            help="FHIR server base of the written resources (Bundle fullUrls); the default is "
            "that of `heartline serve` on this machine.",
        ),
    ] = "http://localhost:8080/fhir",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
    ] = False,
    ptbxl_metadata: Annotated[
        bool,
        typer.Option(
            "--ptbxl-metadata/--no-ptbxl-metadata",
            help="For a record in a PTB-XL folder: patient data not given as options come "
            "from ptbxl_database.csv.",
        ),
    ] = True,
    fs: Annotated[
        float | None, typer.Option("--fs", help="Sampling rate in Hz (CSV only).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Folder with multimodal.json (default: the shipped model)."),
    ] = None,
) -> None:
    """Diagnose NORM / MI / STTC / CD / HYP from a 12-lead ECG and patient data (decision support)."""
    import heartline
    from heartline.data.ptbxl import ptbxl_record_metadata
    from heartline.edge.multimodal import MultimodalModel

    rec = heartline.read_record(record, fs=fs)
    given: dict[str, Any] = {"age": age, "sex": sex, "height": height, "weight": weight}
    source = "options"
    when = None
    pid = patient_id
    if ptbxl_metadata:
        found = ptbxl_record_metadata(rec.path or record)
        if found is not None:
            source = f"PTB-XL ecg_id {found['ecg_id']} (options override)"
            for k in given:
                if given[k] is None:
                    given[k] = found[k]
            pid = pid or found["patient_id"]
            if found["recording_date"]:
                when = dt.datetime.fromisoformat(found["recording_date"]).replace(tzinfo=dt.UTC)
    metadata = {k: v for k, v in given.items() if v is not None}
    try:
        mm = MultimodalModel(model)
        dx = mm.diagnose(
            rec.signal,
            fs=rec.fs,
            lead_names=rec.lead_names,
            metadata=metadata,
            patient_id=pid or "unknown",
            record_id=rec.name,
            time=when,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(f"{record}: {exc}") from None
    if fhir is not None:
        from heartline.fhir.diagnosis import diagnosis_bundle

        fhir.parent.mkdir(parents=True, exist_ok=True)
        fhir.write_text(
            diagnosis_bundle(dx, base_url=fhir_base_url).model_dump_json(indent=2) + "\n"
        )
    if as_json:
        out = {**dx.to_dict(), "metadata": metadata, "metadata_source": source}
        if fhir is not None:
            out["fhir"] = str(fhir)
        typer.echo(json.dumps(out, indent=2))
        return
    _print_table(dx, metadata=metadata, source=source)
    if fhir is not None:
        console.print(f"[green]wrote[/] {fhir} (FHIR R4 Bundle: DiagnosticReport + Observations)")


def _print_table(dx: Any, *, metadata: dict[str, Any], source: str) -> None:
    from rich.table import Table

    from heartline.fhir.diagnosis import CLASS_DISPLAY

    table = Table(title=f"heartline diagnose {dx.record_id} ({dx.model_name} {dx.model_version})")
    for col in ("class", "", "probability", "threshold", "call"):
        table.add_column(col, justify="right" if col in ("probability", "threshold") else "left")
    positive = set(dx.positive())
    for c, p in dx.probabilities.items():
        call = "[bold red]POSITIVE[/]" if c in positive else "negative"
        table.add_row(c, CLASS_DISPLAY.get(c, c), f"{p:.3f}", f"{dx.thresholds[c]:.3f}", call)
    console.print(table)
    used = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in dx.metadata_used.items())
    shown = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in metadata.items()
    )
    console.print(f"patient data used: {used} ({shown or 'none given'}; from {source})")
    if dx.modality_weights:
        w = dx.modality_weights
        console.print(f"modality attention: ECG {w['ecg']:.2f}, patient data {w['metadata']:.2f}")
    for note in dx.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    console.print(
        "[dim]Decision support only, not a medical device: a clinician must confirm every "
        "finding (model card: MODEL_CARD_multimodal.md).[/]"
    )
