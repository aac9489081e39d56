"""FHIR resources of a multimodal diagnosis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from heartline.fhir.diagnosis import (
    DIAGNOSIS_CLASS_SYSTEM,
    MultimodalDiagnosis,
    diagnosis_observations,
    diagnosis_report,
)

T0 = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
PROBS = {"NORM": 0.1, "MI": 0.82, "STTC": 0.4, "CD": 0.05, "HYP": 0.3}
THR = {"NORM": 0.5, "MI": 0.35, "STTC": 0.45, "CD": 0.3, "HYP": 0.25}


def _dx(**kw: object) -> MultimodalDiagnosis:
    args: dict[str, object] = dict(
        patient_id="p-1", record_id="ecg-17", time=T0, probabilities=PROBS,
        model_name="multimodal-attention", model_version="2026.12.06+abc123", thresholds=THR,
        modality_weights={"ecg": 0.8, "metadata": 0.2}, explanation_url="https://x.example/expl/17.json",
    )  # fmt: skip
    args.update(kw)
    return MultimodalDiagnosis(**args)  # type: ignore[arg-type]


def test_observations_carry_probability_interpretation_and_model_version() -> None:
    obs = diagnosis_observations(_dx())
    assert [o.code.coding[0].code for o in obs] == list(PROBS)
    by = {o.code.coding[0].code: o for o in obs}
    assert float(by["MI"].valueQuantity.value) == pytest.approx(0.82)
    assert by["MI"].interpretation[0].coding[0].code == "POS"
    assert by["NORM"].interpretation[0].coding[0].code == "NEG"
    assert by["HYP"].interpretation[0].coding[0].code == "POS"  # 0.3 >= 0.25
    js = json.loads(by["MI"].model_dump_json())
    assert js["contained"][0]["version"][0]["value"] == "2026.12.06+abc123"
    assert js["device"]["reference"] == "#model"
    weights = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in js["component"]}
    assert weights == {"modality-weight-ecg": 0.8, "modality-weight-metadata": 0.2}
    # round-trips through the R4B parser
    assert Observation.model_validate(js).id == by["MI"].id


def test_report_references_results_and_links_the_explanation() -> None:
    report, obs = diagnosis_report(_dx())
    js = json.loads(report.model_dump_json())
    assert [r["reference"] for r in js["result"]] == [f"Observation/{o.id}" for o in obs]
    assert {c["coding"][0]["code"] for c in js["conclusionCode"]} == {"MI", "HYP"}
    assert js["conclusionCode"][0]["coding"][0]["system"] == DIAGNOSIS_CLASS_SYSTEM
    assert js["presentedForm"][0]["url"].endswith("17.json")
    assert "2026.12.06+abc123" in js["conclusion"]
    DiagnosticReport.model_validate(js)


def test_without_thresholds_no_interpretation_and_no_conclusion_code() -> None:
    report, obs = diagnosis_report(
        _dx(thresholds=None, explanation_url=None, modality_weights=None)
    )
    assert all(o.interpretation is None for o in obs)
    assert report.conclusionCode is None and report.presentedForm is None
    assert "no decision thresholds" in report.conclusion


def test_ids_differ_between_records() -> None:
    a = {o.id for o in diagnosis_observations(_dx())}
    b = {o.id for o in diagnosis_observations(_dx(record_id="ecg-18"))}
    assert not a & b


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"time": datetime(2026, 12, 6, 9, 30)}, "timezone-aware"),
        ({"probabilities": {"MI": 1.5}}, "not a probability"),
        ({"probabilities": {"MI": float("nan")}}, "not a probability"),
        ({"probabilities": {}}, "empty"),
        ({"thresholds": {"MI": 0.5}}, "lack the class"),
        ({"model_version": " "}, "model_version"),
    ],
)
def test_bad_input_is_refused(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _dx(**kw)


def test_report_links_the_explanation_json_and_png() -> None:
    report, _ = diagnosis_report(
        _dx(
            explanation_url="file:///tmp/dx/report.explanation.json",
            explanation_image_url="file:///tmp/dx/mi.png",
        )
    )
    js = json.loads(report.model_dump_json())
    forms = [(f["contentType"], f["url"]) for f in js["presentedForm"]]
    assert forms == [
        ("application/json", "file:///tmp/dx/report.explanation.json"),
        ("image/png", "file:///tmp/dx/mi.png"),
    ]
    DiagnosticReport.model_validate(js)
    only_png, _ = diagnosis_report(_dx(explanation_url=None, explanation_image_url="file:///a.png"))
    assert [f.contentType for f in only_png.presentedForm] == ["image/png"]
