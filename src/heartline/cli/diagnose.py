"""``heartline diagnose RECORD``: PTB-XL superdiagnostic classes of a 12-lead record (thin).

Reads the record with :func:`heartline.read_record` (WFDB, EDF; CSV with ``--fs``), runs
:func:`heartline.diagnose` (the shipped stacked multimodal model, ONNX Runtime) with the patient
data given as options, prints the class probabilities against their thresholds, and writes a
FHIR R4 Bundle (DiagnosticReport + one Observation per class) with ``--fhir``. For a record
inside a PTB-XL folder, the patient data come from ``ptbxl_database.csv`` unless given
(``--no-ptbxl-metadata`` turns that off). ``--explain`` adds the torch-free occlusion
explanation (:func:`heartline.explain_diagnosis`): top leads, segments and patient data per class,
the attributions in ``--json``, a PNG with ``--explain-png`` and, with ``--fhir``, a JSON file
beside the Bundle that the DiagnosticReport references (``presentedForm``, with the PNG).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
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
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Explain the diagnosis (torch-free occlusion through the whole model): top "
            "leads, segments and patient data per positive class (the top class if none); "
            "with --json, the attributions; with --fhir, a JSON file beside the Bundle.",
        ),
    ] = False,
    explain_png: Annotated[
        Path | None,
        typer.Option(
            "--explain-png",
            help="Draw the 12 leads with the attribution of --explain-class overlaid (implies "
            "--explain).",
        ),
    ] = None,
    explain_hold_rpeaks: Annotated[
        bool,
        typer.Option(
            "--explain-hold-rpeaks",
            help="Hold the features' R peaks (detected on lead II) at the unoccluded record's, "
            "so that lead II's attribution is its own waveform, not the beat detection.",
        ),
    ] = False,
    explain_class: Annotated[
        str | None,
        typer.Option(
            "--explain-class",
            help="Class drawn by --explain-png (default: the first positive class, else the "
            "most probable one).",
        ),
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
    explain = explain or explain_png is not None or explain_class is not None or explain_hold_rpeaks
    ex = None
    drawn = None
    written: list[str] = []
    if explain:
        from heartline.edge.multimodal_explain import explain_diagnosis, plot_explanation

        if explain_class is not None and explain_class not in mm.classes:
            raise _fail(
                f"--explain-class {explain_class!r} is not a class of the model; "
                f"valid: {', '.join(mm.classes)}"
            )
        ex = explain_diagnosis(
            rec.signal,
            fs=rec.fs,
            lead_names=rec.lead_names,
            metadata=metadata,
            model=mm,
            hold_rpeaks=explain_hold_rpeaks,
        )
        if explain_png is not None:
            explain_png.parent.mkdir(parents=True, exist_ok=True)
            drawn = plot_explanation(ex, explain_png, cls=explain_class, record_id=rec.name)
            dx = replace(dx, explanation_image_url=explain_png.resolve().as_uri())
            written.append(f"{explain_png} (attribution of {drawn})")
        if fhir is not None:
            ex_json = fhir.with_name(fhir.stem + ".explanation.json")
            ex_json.parent.mkdir(parents=True, exist_ok=True)
            ex_json.write_text(json.dumps(ex.to_dict()) + "\n")
            dx = replace(dx, explanation_url=ex_json.resolve().as_uri())
            written.append(f"{ex_json} (explanation, referenced by the DiagnosticReport)")
    if fhir is not None:
        from heartline.fhir.diagnosis import diagnosis_bundle

        fhir.parent.mkdir(parents=True, exist_ok=True)
        fhir.write_text(
            diagnosis_bundle(dx, base_url=fhir_base_url).model_dump_json(indent=2) + "\n"
        )
        written.append(f"{fhir} (FHIR R4 Bundle: DiagnosticReport + Observations)")
    if as_json:
        out = {**dx.to_dict(), "metadata": metadata, "metadata_source": source}
        if ex is not None:
            out["explanation"] = ex.to_dict()
            if explain_png is not None:
                out["explanation_png"] = str(explain_png)
        if fhir is not None:
            out["fhir"] = str(fhir)
        typer.echo(json.dumps(out, indent=2))
        return
    _print_table(dx, metadata=metadata, source=source)
    if ex is not None:
        _print_explanation(ex)
    for w in written:
        console.print(f"[green]wrote[/] {w}", soft_wrap=True, highlight=False)


def _print_explanation(ex: Any) -> None:
    console.print(
        f"[bold]explanation[/] (occlusion through the whole model: drop of the class's log-odds "
        f"when a {ex.patch_len / ex.fs_hz:g} s segment of a lead, or the whole lead, is replaced "
        f"by the lead's median, or when a patient-data field is masked as missing; positive = "
        f"supports the class; R peaks {ex.rpeaks})",
        soft_wrap=True,
        highlight=False,
    )
    for c in ex.default_classes():
        call = "positive" if c in ex.positive() else "top class, not positive"
        console.print(f"[bold]{c}[/] (p={ex.probabilities[c]:.3f}, {call}):", highlight=False)
        leads = ", ".join(f"{lead} {d:+.2f}" for lead, d in ex.top_leads(c, 3))
        console.print(f"  top leads (whole lead occluded): {leads}", highlight=False)
        segs = ", ".join(
            f"{s['lead']} {s['start_s']:.2f}-{s['stop_s']:.2f} s {s['drop']:+.2f}"
            for s in ex.top_segments(c, 5)
        )
        console.print(f"  top segments: {segs}", soft_wrap=True, highlight=False)
        meta = ", ".join(
            f"{k} {'not given' if v is None else f'{v:+.2f}'}"
            for k, v in ex.metadata_attributions[c].items()
        )
        console.print(f"  patient data (masked as missing): {meta}", highlight=False)
    if ex.rpeaks == "re-detected":
        console.print(
            "[dim]Lead II also carries the beat detection of the ECG features: its attribution "
            "includes that (--explain-hold-rpeaks separates it).[/]",
            soft_wrap=True,
        )


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
