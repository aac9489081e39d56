"""FHIR builders: resources validate (R4B models) and carry the right codes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from heartline import fhir
from heartline.fhir.builders import EXPLANATION_EXTENSION, alert_explanation_url

T = datetime(2026, 1, 5, 12, tzinfo=UTC)


def codes(obs) -> set[str]:
    return {c.code for c in obs.code.coding}


def test_vital_observations_loinc():
    obs = fhir.vital_observations(
        vital_id=7,
        patient_id="p1",
        device_id="d1",
        time=T,
        hr_bpm=72,
        spo2_pct=97,
        temp_c=36.9,
        sbp_mmhg=121,
        dbp_mmhg=79,
    )
    by = {o.id: o for o in obs}
    assert codes(by["vital-7-hr"]) == {"8867-4"} and by["vital-7-hr"].valueQuantity.code == "/min"
    assert (
        codes(by["vital-7-spo2"]) == {"59408-5", "2708-6"}
        and by["vital-7-spo2"].valueQuantity.unit == "%"
    )
    assert (
        codes(by["vital-7-temp"]) == {"39106-0"} and by["vital-7-temp"].valueQuantity.code == "Cel"
    )
    assert by["vital-7-temp"].code.text == "Skin temperature"
    assert "8310-5" not in {c for o in obs for c in codes(o)}  # never exported as body temperature
    bp = by["vital-7-bp"]
    assert codes(bp) == {"85354-9"}
    comp = {c.code.coding[0].code: float(c.valueQuantity.value) for c in bp.component}
    assert comp == {"8480-6": 121.0, "8462-4": 79.0}
    assert all(o.category[0].coding[0].code == "vital-signs" for o in obs)
    for o in obs:  # a JSON round trip validates again
        assert Observation.model_validate_json(o.model_dump_json()) == o


def test_only_measured_vitals_are_built():
    assert [
        o.id
        for o in fhir.vital_observations(
            vital_id=1, patient_id="p1", device_id=None, time=T, spo2_pct=95
        )
    ] == ["vital-1-spo2"]


def test_ecg_sampled_data_round_trips():
    fs = 360.0
    sig = np.stack([np.sin(np.arange(720) / 20), np.cos(np.arange(720) / 20)], axis=1)
    obs = fhir.ecg_observation(
        obs_id="ecg-1",
        patient_id="p1",
        device_id="d1",
        start_time=T,
        fs=fs,
        lead_names=["MLII", "V5"],
        signal_mv=sig,
    )
    assert obs.code.coding[0].system == fhir.MDC and obs.code.coding[0].code == "131328"
    assert [c.code.coding[0].code for c in obs.component] == ["131330", "131335"]
    sd = obs.component[0].valueSampledData
    assert (
        float(sd.period) == pytest.approx(1000 / fs)
        and float(sd.factor) == 0.001
        and sd.dimensions == 1
    )
    decoded = np.array([int(x) for x in sd.data.split()]) * float(sd.factor) + float(
        sd.origin.value
    )
    np.testing.assert_allclose(decoded, sig[:, 0], atol=0.0005)


def test_ecg_rejects_bad_shapes():
    with pytest.raises(ValueError, match="signal_mv"):
        fhir.ecg_observation(
            obs_id="e",
            patient_id="p",
            device_id=None,
            start_time=T,
            fs=360,
            lead_names=["I"],
            signal_mv=np.zeros((5, 2)),
        )
    with pytest.raises(ValueError, match="fs"):
        fhir.ecg_observation(
            obs_id="e",
            patient_id="p",
            device_id=None,
            start_time=T,
            fs=0,
            lead_names=["I"],
            signal_mv=np.zeros((5, 1)),
        )


def test_report_and_bundle():
    period = fhir.MonitoringPeriod(
        "p_1",
        T,
        T.replace(hour=13),
        {"N": 10, "V": 2},
        [{"id": 3, "kind": "v_run", "severity": "critical", "start": T, "end": None}],
    )
    report, results = fhir.monitoring_report(period)
    assert report.code.coding[0].code == "11524-6" and report.status == "final"
    assert report.subject.reference == f"Patient/{fhir.fhir_id('p_1')}"
    assert [r.reference for r in report.result] == [f"Observation/{o.id}" for o in results]
    counts = {
        o.code.coding[0].code: o.valueInteger
        for o in results
        if o.code.coding[0].system == fhir.BEAT_CLASS_SYSTEM
    }
    assert counts == {"N": 10, "V": 2}
    bundle = fhir.patient_bundle(
        [fhir.patient_resource(patient_id="p_1"), report, *results],
        base_url="https://h/fhir",
        timestamp=T,
    )
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again.type == "collection" and len(again.entry) == 2 + len(results)
    assert all(len(e.resource.id) <= 64 for e in again.entry)


def test_fhir_ids_are_valid():
    assert fhir.fhir_id("p-1.a") == "p-1.a"
    bad = fhir.fhir_id("patient/with spaces_and_underscores")
    assert bad.startswith("h-") and len(bad) <= 64
    with pytest.raises(ValueError, match="timezone"):
        fhir.patient_bundle([], base_url="x", timestamp=datetime(2026, 1, 1))


def test_alert_report_links_the_explanation():
    period = fhir.MonitoringPeriod(
        "p_1",
        T,
        T.replace(hour=13),
        {"N": 10, "V": 2},
        [
            {"id": 3, "kind": "v_run", "severity": "critical", "start": T, "end": None},
            {
                "id": 4,
                "kind": "frequent_pvc",
                "severity": "warning",
                "start": T,
                "end": None,
                "explanation_url": "https://h/api/v1/alerts/4/explanation",
            },
        ],
    )
    report, results = fhir.monitoring_report(period)
    again = DiagnosticReport.model_validate_json(report.model_dump_json())
    forms = {f.url: f for f in again.presentedForm}
    assert set(forms) == {"/api/v1/alerts/3/explanation", "https://h/api/v1/alerts/4/explanation"}
    assert all(f.contentType == "application/json" for f in forms.values())
    assert "alert 3 (v_run)" in forms["/api/v1/alerts/3/explanation"].title
    alerts = [o for o in results if o.code.coding[0].code == "alert"]
    links = {
        o.id: [e.valueUrl for e in o.extension if e.url == EXPLANATION_EXTENSION] for o in alerts
    }
    assert sorted(links.values()) == [
        ["/api/v1/alerts/3/explanation"],
        ["https://h/api/v1/alerts/4/explanation"],
    ]
    assert (
        alert_explanation_url(9, base_url="https://h/") == "https://h/api/v1/alerts/9/explanation"
    )
    # a report without alerts has no presentedForm
    empty, _ = fhir.monitoring_report(fhir.MonitoringPeriod("p_1", T, T.replace(hour=13), {"N": 1}))
    assert empty.presentedForm is None
