"""The torch-free multimodal run time (heartline.edge.multimodal) with the shipped model:
input checks with their messages, patient data, lead order, resampling, FHIR, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heartline.edge.multimodal import (
    MultimodalModel,
    patient_metadata,
    shipped_multimodal_model_dir,
)

ROOT = Path(__file__).resolve().parents[2]
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@pytest.fixture(scope="module")
def model() -> MultimodalModel:
    return MultimodalModel()


@pytest.fixture(scope="module")
def ptbxl_record(data_dir: Path):  # type: ignore[no-untyped-def]
    import heartline

    path = data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"PTB-XL record {path} not found")
    return heartline.read_record(path)


def _synthetic(fs: float = 100.0, seconds: float = 10.0) -> np.ndarray:
    """A 12-lead signal with 1 mV spikes at 72/min (an ECG-like rhythm for the detector)."""
    t = np.arange(round(fs * seconds)) / fs
    beat = np.exp(-(((t % (60 / 72)) - 0.3) ** 2) / (2 * 0.012**2))
    gains = np.linspace(0.4, 1.2, 12)
    return np.outer(beat, gains) + 0.01 * np.sin(2 * np.pi * 0.3 * t)[:, None]


def test_shipped_model_loads_with_its_version(model: MultimodalModel) -> None:
    spec = json.loads((shipped_multimodal_model_dir() / "multimodal.json").read_text())
    assert model.version == spec["version"] and len(model.version) == 12
    assert model.classes == ("NORM", "MI", "STTC", "CD", "HYP")
    assert model.fs_hz == 100.0 and model.input_samples == 1000 and len(model.leads) == 12
    assert all(0.0 < t < 1.0 for t in model.thresholds.values())
    assert (shipped_multimodal_model_dir() / "MODEL_CARD_multimodal.md").is_file()


def test_a_changed_artefact_is_refused(tmp_path: Path) -> None:
    import shutil

    src = shipped_multimodal_model_dir()
    for f in ("multimodal.json", "multimodal_net0.onnx", "multimodal_net1.onnx"):
        shutil.copy(src / f, tmp_path / f)
    shutil.copy(src / "multimodal_net0.onnx", tmp_path / "multimodal_head.onnx")  # wrong file
    with pytest.raises(ValueError, match="changed or mixed"):
        MultimodalModel(tmp_path)
    with pytest.raises(FileNotFoundError, match="heartline train multimodal"):
        MultimodalModel(tmp_path / "nowhere")


def test_real_record_diagnosis(model: MultimodalModel, ptbxl_record) -> None:  # type: ignore[no-untyped-def]
    rec = ptbxl_record
    dx = model.diagnose(
        rec.signal, fs=rec.fs, lead_names=rec.lead_names, metadata={"age": 56, "sex": "female"}
    )
    assert set(dx.probabilities) == set(model.classes)
    assert all(0.0 <= p <= 1.0 for p in dx.probabilities.values())
    assert dx.model_version == model.version and dx.thresholds == model.thresholds
    assert dx.metadata_used == {"age": True, "sex": True, "height": False, "weight": False}
    w = dx.modality_weights
    assert w is not None and abs(w["ecg"] + w["metadata"] - 1.0) < 1e-5
    assert "NORM" in dx.positive()  # PTB-XL ecg_id 1 is a normal ECG
    assert any("height" in n for n in dx.notes)


def test_lead_order_case_and_extra_leads_do_not_matter(
    model: MultimodalModel, ptbxl_record
) -> None:  # type: ignore[no-untyped-def]
    rec = ptbxl_record
    base = model.diagnose(rec.signal, fs=rec.fs, lead_names=rec.lead_names)
    order = np.random.default_rng(1).permutation(12)
    x = np.concatenate([rec.signal[:, order], rec.signal[:, :1]], axis=1)  # + an extra lead
    names = [LEADS[j].lower() for j in order] + ["EXTRA"]
    other = model.diagnose(x, fs=rec.fs, lead_names=names)
    assert other.probabilities == base.probabilities


def test_500_hz_input_is_resampled(model: MultimodalModel, ptbxl_record) -> None:  # type: ignore[no-untyped-def]
    from scipy.signal import resample_poly

    rec = ptbxl_record
    base = model.diagnose(rec.signal, fs=100.0, lead_names=rec.lead_names)
    up = resample_poly(rec.signal, 5, 1, axis=0)
    dx = model.diagnose(up, fs=500.0, lead_names=rec.lead_names)
    assert any("resampled 500 -> 100 Hz" in n for n in dx.notes)
    for c in model.classes:
        assert abs(dx.probabilities[c] - base.probabilities[c]) < 0.1


def test_longer_record_uses_the_first_10_s(model: MultimodalModel, ptbxl_record) -> None:  # type: ignore[no-untyped-def]
    rec = ptbxl_record
    base = model.diagnose(rec.signal, fs=rec.fs, lead_names=rec.lead_names)
    longer = np.concatenate([rec.signal, rec.signal[:500]])
    dx = model.diagnose(longer, fs=rec.fs, lead_names=rec.lead_names)
    assert dx.probabilities == base.probabilities
    assert any("first 10 s" in n for n in dx.notes)


def test_short_nan_gaps_are_interpolated(model: MultimodalModel) -> None:
    x = _synthetic()
    x[400:403, 3] = np.nan  # 30 ms
    dx = model.diagnose(x, fs=100.0, lead_names=LEADS)
    assert any("interpolated 3 NaN" in n for n in dx.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fs": 50.0}, r"fs=50 Hz is below the 100 Hz"),
        ({"fs": 0.0}, r"fs must be a finite sampling rate > 0 Hz, got 0.0"),
        ({"fs": float("nan")}, r"fs must be a finite sampling rate"),
        ({"fs": "fast"}, r"fs must be a sampling rate in Hz, got 'fast'"),
        ({"lead_names": (*LEADS[:10], "X", "Y")}, r"missing lead\(s\) \['V5', 'V6'\]"),
        ({"lead_names": LEADS[:11]}, r"signals has 12 columns but lead_names has 11 names"),
        ({"lead_names": (*LEADS[:11], "I")}, r"lead_names repeats \['I'\]"),
        ({"signals": np.zeros((500, 12))}, r"record is 5.0 s long; the model needs 10 s"),
        ({"signals": np.zeros(1000)}, r"signals must be 2-D \(n_samples, n_leads\)"),
        ({"signals": np.zeros((12, 1000))}, r"transposed\?"),
        ({"signals": "abc"}, r"signals must be a numeric"),
        ({"metadata": {"age": 130}}, r"metadata\['age'\] = 130 years is outside 0-120"),
        ({"metadata": {"height": 20}}, r"metadata\['height'\] = 20 cm is outside 50-250"),
        ({"metadata": {"weight": 400}}, r"metadata\['weight'\] = 400 kg is outside 2-300"),
        ({"metadata": {"sex": "x"}}, r"metadata\['sex'\] must be 'male'/'female'"),
        ({"metadata": {"age": "old"}}, r"metadata\['age'\] must be a number"),
        ({"metadata": {"bmi": 22}}, r"unknown metadata key\(s\) \['bmi'\]"),
        ({"metadata": {"age": 50, "age_y": 51}}, r"gives age_y twice"),
    ],
)
def test_bad_input_is_refused_with_a_message(
    model: MultimodalModel, kwargs: dict, message: str
) -> None:
    args = {"signals": _synthetic(), "fs": 100.0, "lead_names": LEADS, "metadata": None}
    args.update(kwargs)
    signals = args.pop("signals")
    with pytest.raises(ValueError, match=message):
        model.diagnose(signals, **args)


def test_long_nan_run_and_microvolts_are_refused(model: MultimodalModel) -> None:
    x = _synthetic()
    x[100:120, 7] = np.nan  # 200 ms in V2
    with pytest.raises(ValueError, match=r"lead V2 has a run of 20 NaN/inf samples \(200 ms\)"):
        model.diagnose(x, fs=100.0, lead_names=LEADS)
    x = _synthetic()
    x[:, 0] = np.nan
    with pytest.raises(ValueError, match=r"lead I has a run of 1000 NaN"):
        model.diagnose(x, fs=100.0, lead_names=LEADS)
    with pytest.raises(ValueError, match=r"the model takes mV; convert from µV"):
        model.diagnose(_synthetic() * 1000, fs=100.0, lead_names=LEADS)


def test_patient_metadata_over_89_missing_and_codes() -> None:
    m = patient_metadata({"age": 300, "sex": 0, "height": 180, "weight": 81})
    assert m.values.tolist() == pytest.approx([90.0, 1.0, 180.0, 81.0, 25.0])
    assert m.age_over_89 and m.present.all()
    assert any("over-89" in n for n in m.notes)
    assert patient_metadata({"age": 93}).age_over_89  # above 89: as PTB-XL codes it
    assert not patient_metadata({"age": 89}).age_over_89
    f = patient_metadata({"sex": "F", "weight": None})
    assert f.values[1] == 0.0 and f.used == {
        "age": False,
        "sex": True,
        "height": False,
        "weight": False,
    }
    assert np.isnan(f.values[4]) and not f.present[4]  # BMI needs height and weight
    none = patient_metadata(None)
    assert not none.present.any() and not none.age_over_89


def test_missing_metadata_are_masked_not_zero(model: MultimodalModel) -> None:
    x = _synthetic()
    without = model.diagnose(x, fs=100.0, lead_names=LEADS)
    assert without.metadata_used == dict.fromkeys(("age", "sex", "height", "weight"), False)
    m = patient_metadata(None)
    meta_in = model.meta_inputs(m.values[None], m.present[None], np.array([False]))
    assert meta_in.shape == (1, 11) and not meta_in.any()  # z = 0 (training mean), masks 0
    with_age = model.diagnose(x, fs=100.0, lead_names=LEADS, metadata={"age": 80})
    assert with_age.probabilities != without.probabilities


def test_fhir_report_validates(model: MultimodalModel, ptbxl_record) -> None:  # type: ignore[no-untyped-def]
    from fhir.resources.R4B.bundle import Bundle

    from heartline.fhir.diagnosis import diagnosis_bundle

    rec = ptbxl_record
    dx = model.diagnose(rec.signal, fs=rec.fs, lead_names=rec.lead_names, patient_id="p1")
    bundle = Bundle.model_validate_json(
        diagnosis_bundle(dx, base_url="https://fhir.example.org/r4").model_dump_json()
    )
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds == ["DiagnosticReport"] + ["Observation"] * 5
    assert (
        bundle.entry[1].fullUrl
        == f"https://fhir.example.org/r4/Observation/{bundle.entry[1].resource.id}"
    )
    report = bundle.entry[0].resource
    assert model.version in report.conclusion and "clinician" in report.conclusion


def test_api_diagnose_is_exported(ptbxl_record) -> None:  # type: ignore[no-untyped-def]
    import heartline

    rec = ptbxl_record
    dx = heartline.diagnose(rec.signal, fs=rec.fs, lead_names=rec.lead_names)
    assert "diagnose" in heartline.__all__ and dx.model_name == "multimodal"


def test_run_time_module_imports_no_torch() -> None:
    code = (
        "import sys, heartline.edge.multimodal, heartline.features.ecg12, heartline.cli.diagnose;"
        "import numpy as np; m = heartline.edge.multimodal.MultimodalModel();"
        "t = np.arange(1000) / 100; x = np.outer(np.exp(-((t % 0.83 - 0.3) ** 2) / 3e-4), "
        "np.linspace(0.4, 1.2, 12));"
        "m.diagnose(x, fs=100, lead_names=m.leads);"
        "bad = sorted(k for k in sys.modules if k in ('torch', 'onnx') or k.startswith(('torch.', 'onnx.')));"
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
