"""``heartline diagnose RECORD``: a real PTB-XL record, FHIR output, patient data, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly
from typer.testing import CliRunner

from heartline.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def ptbxl_path(data_dir: Path) -> Path:
    path = data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"PTB-XL record {path} not found")
    return path


def _write(tmp_path: Path, name: str, sig: np.ndarray, fs: float, leads: list[str]) -> Path:
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=leads,
        p_signal=sig,
        fmt=["16"] * len(leads),
        adc_gain=[1000.0] * len(leads),
        baseline=[0] * len(leads),
        write_dir=str(tmp_path),
    )
    return tmp_path / name


def test_diagnose_ptbxl_record_writes_a_valid_fhir_bundle(ptbxl_path: Path, tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    out = tmp_path / "dx" / "report.json"
    res = runner.invoke(app, ["diagnose", str(ptbxl_path), "--fhir", str(out)])
    assert res.exit_code == 0, res.output
    for c in ("NORM", "MI", "STTC", "CD", "HYP", "POSITIVE", "PTB-XL ecg_id 1", "not a medical"):
        assert c in res.output
    bundle = Bundle.model_validate_json(out.read_text())
    report = bundle.entry[0].resource
    assert report.get_resource_type() == "DiagnosticReport"
    assert report.subject.reference == "Patient/15709"  # PTB-XL's patient_id of ecg_id 1
    assert report.effectiveDateTime.isoformat().startswith("1984-11-09T09:17:34")
    obs = [e.resource for e in bundle.entry[1:]]
    assert [o.code.coding[0].code for o in obs] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert all(o.interpretation[0].coding[0].code in ("POS", "NEG") for o in obs)


def test_diagnose_json_options_override_ptbxl_metadata(ptbxl_path: Path) -> None:
    res = runner.invoke(
        app, ["diagnose", str(ptbxl_path), "--json", "--age", "70", "--patient-id", "p-7"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["metadata"] == {"age": 70.0, "sex": "female", "weight": 63.0}
    assert out["metadata_used"] == {"age": True, "sex": True, "height": False, "weight": True}
    assert out["patient_id"] == "p-7" and "NORM" in out["positive"]
    none = json.loads(
        runner.invoke(app, ["diagnose", str(ptbxl_path), "--json", "--no-ptbxl-metadata"]).output
    )
    assert not any(none["metadata_used"].values()) and none["metadata_source"] == "options"


def test_diagnose_500_hz_wfdb_outside_ptbxl(ptbxl_path: Path, tmp_path: Path) -> None:
    import heartline

    rec = heartline.read_record(ptbxl_path)
    path = _write(
        tmp_path, "rec500", resample_poly(rec.signal, 5, 1, axis=0), 500.0, list(rec.lead_names)
    )
    res = runner.invoke(app, ["diagnose", str(path), "--sex", "female", "--age", "300"])
    assert res.exit_code == 0, res.output
    assert "resampled 500 -> 100 Hz" in res.output and "over-89" in res.output


def test_diagnose_refuses_a_record_without_the_12_leads(tmp_path: Path) -> None:
    t = np.arange(1000) / 100
    sig = np.stack([np.sin(2 * np.pi * 1.2 * t)] * 3, axis=1)
    path = _write(tmp_path, "three", sig, 100.0, ["I", "II", "V1"])
    res = runner.invoke(app, ["diagnose", str(path)])
    assert res.exit_code == 1
    assert "missing lead(s) ['III', 'AVR', 'AVL', 'AVF', 'V2'" in " ".join(res.output.split())


def test_train_needs_a_config_or_a_recipe() -> None:
    res = runner.invoke(app, ["train"])
    assert res.exit_code != 0
    assert "heartline train multimodal" in " ".join(res.output.split())
    assert runner.invoke(app, ["train", "multimodal", "--help"]).exit_code == 0


def test_diagnose_explain_prints_writes_png_json_and_fhir_links(
    ptbxl_path: Path, tmp_path: Path
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    png, out = tmp_path / "x" / "norm.png", tmp_path / "dx" / "report.json"
    res = runner.invoke(
        app, ["diagnose", str(ptbxl_path), "--explain-png", str(png), "--fhir", str(out)]
    )
    assert res.exit_code == 0, res.output
    for c in ("top leads", "top segments", "patient data (masked as missing)", "NORM (p="):
        assert c in res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    ex_json = out.with_name("report.explanation.json")
    ex = json.loads(ex_json.read_text())
    assert ex["method"] == "occlusion" and ex["baseline"] == "lead median"
    assert np.asarray(ex["classes"]["NORM"]["attributions"]).shape == (12, 1000)
    report = Bundle.model_validate_json(out.read_text()).entry[0].resource
    forms = {f.contentType: f.url for f in report.presentedForm}
    assert forms == {
        "application/json": ex_json.resolve().as_uri(),
        "image/png": png.resolve().as_uri(),
    }


def test_diagnose_explain_json_and_bad_class(ptbxl_path: Path) -> None:
    res = runner.invoke(app, ["diagnose", str(ptbxl_path), "--explain", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    ex = d["explanation"]
    assert set(ex["classes"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert ex["modality_weights"] == pytest.approx(d["modality_weights"], abs=1e-6)
    assert set(ex["classes"]["MI"]["metadata"]) == {"age", "sex", "height", "weight"}
    bad = runner.invoke(app, ["diagnose", str(ptbxl_path), "--explain-class", "AF"])
    assert bad.exit_code == 1
    assert "--explain-class 'AF' is not a class of the model" in bad.output


def test_diagnose_edf_record_equals_its_wfdb_source(
    ptbxl_path: Path, tmp_path: Path, write_edf
) -> None:
    import heartline

    rec = heartline.read_record(ptbxl_path)
    edf = tmp_path / "00001_lr.edf"
    write_edf(edf, rec.signal, list(rec.lead_names), fs=int(rec.fs), phys_range=10.0)
    args = ["--json", "--no-ptbxl-metadata", "--age", "56", "--sex", "female"]
    from_edf = runner.invoke(app, ["diagnose", str(edf), *args])
    assert from_edf.exit_code == 0, from_edf.output
    from_wfdb = runner.invoke(app, ["diagnose", str(ptbxl_path), *args])
    assert from_wfdb.exit_code == 0, from_wfdb.output
    p_edf = json.loads(from_edf.output)["probabilities"]
    p_wfdb = json.loads(from_wfdb.output)["probabilities"]
    assert p_edf.keys() == p_wfdb.keys() == {"NORM", "MI", "STTC", "CD", "HYP"}
    # 16-bit EDF over +-10 mV quantises to 0.3 uV: the same diagnosis
    for c in p_edf:
        assert abs(p_edf[c] - p_wfdb[c]) < 0.01, (c, p_edf[c], p_wfdb[c])
