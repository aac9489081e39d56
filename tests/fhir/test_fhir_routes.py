"""FHIR endpoints: media type, codes, Bundle export, OperationOutcome errors, audit."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from sqlalchemy import select

from heartline.storage.security_tables import AuditLog

Q = {"date": ["ge2026-01-05T12:00:00Z", "lt2026-01-05T12:00:10Z"]}
W = {"start": "2026-01-05T12:00:00+00:00", "end": "2026-01-05T12:00:10+00:00"}


def test_patient(client, world):
    r = client.get("/fhir/Patient/p1", headers=world.auth("clin1"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    p = Patient.model_validate_json(r.content)
    assert p.identifier[0].value == "p1" and p.name[0].text == "Patient p1"


def test_observation_search_vitals_and_ecg(client, world):
    r = client.get("/fhir/Observation", params={"patient": "p1", **Q}, headers=world.auth("pat1"))
    b = Bundle.model_validate_json(r.content)
    assert b.type == "searchset" and b.total == 5 * 4  # 5 frames x (HR, SpO2, temp, BP)
    loincs = {e.resource.code.coding[0].code for e in b.entry}
    assert loincs == {"8867-4", "59408-5", "39106-0", "85354-9"}
    hr = Bundle.model_validate_json(
        client.get(
            "/fhir/Observation",
            params={"patient": "p1", "code": "8867-4", **Q},
            headers=world.auth("pat1"),
        ).content
    )
    assert hr.total == 5 and float(hr.entry[0].resource.valueQuantity.value) == 75.0
    ecg = Bundle.model_validate_json(
        client.get(
            "/fhir/Observation",
            params={"patient": "p1", "code": "131328", **Q},
            headers=world.auth("pat1"),
        ).content
    )
    assert ecg.total == 5 and ecg.entry[0].resource.component[0].valueSampledData.data


def test_diagnostic_report(client, world):
    b = Bundle.model_validate_json(
        client.get(
            "/fhir/DiagnosticReport", params={"patient": "p1", **Q}, headers=world.auth("clin1")
        ).content
    )
    report = b.entry[0].resource
    assert (
        report.get_resource_type() == "DiagnosticReport" and report.code.coding[0].code == "11524-6"
    )
    included = [e for e in b.entry if e.search.mode == "include"]
    assert len(included) == len(report.result)
    assert "2 alerts" in report.conclusion


def test_everything_bundle(client, world):
    r = client.get(
        "/fhir/Patient/p1/$everything",
        params={**W, "include_ecg": "true"},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 200
    b = Bundle.model_validate_json(r.content)
    kinds = [e.resource.get_resource_type() for e in b.entry]
    assert (
        b.type == "collection"
        and kinds[0] == "Patient"
        and "Device" in kinds
        and "DiagnosticReport" in kinds
    )
    refs = {
        e.resource.subject.reference
        for e in b.entry
        if hasattr(e.resource, "subject") and e.resource.subject
    }
    assert refs == {"Patient/p1"}, "nothing of another patient leaks into the export"
    same = client.get("/fhir/Bundle", params={"patient": "p1", **W}, headers=world.auth("clin1"))
    assert same.status_code == 200


def test_errors_are_operation_outcomes(client, world):
    r = client.get("/fhir/Patient/p2", headers=world.auth("clin1"))
    assert (
        r.status_code == 403
        and r.json()["resourceType"] == "OperationOutcome"
        and r.json()["issue"][0]["code"] == "forbidden"
    )
    assert client.get("/fhir/Patient/p1").json()["issue"][0]["code"] == "login"
    assert (
        client.get("/fhir/Patient/nope", headers=world.auth("admin")).json()["issue"][0]["code"]
        == "not-found"
    )
    bad = client.get(
        "/fhir/Observation",
        params={"patient": "p1", "date": "geyesterday"},
        headers=world.auth("admin"),
    )
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/fhir+json"
    )
    assert (
        client.get(
            "/fhir/Observation",
            params={"patient": "p1", "code": "0000-0"},
            headers=world.auth("admin"),
        ).status_code
        == 422
    )
    assert (
        client.get(
            "/fhir/Patient/p1/$everything",
            params={"include_ecg": "true"},
            headers=world.auth("admin"),
        ).status_code
        == 422
    )


def test_fhir_reads_are_audited(client, world):
    client.get("/fhir/Patient/p1/$everything", params=W, headers=world.auth("pat1"))
    with world.factory() as s:
        rows = s.scalars(select(AuditLog)).all()
    assert [(r.actor, r.resource, r.patient_id) for r in rows] == [
        ("pat1", "fhir-everything", "p1")
    ]
