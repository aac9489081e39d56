"""Role matrix: every patient-data route denies every cross-patient read or write (403; 404 for
alerts, the same answer as a missing alert so that alert ids cannot be enumerated), allows the
patient's own people, and audits only the allowed reads."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from heartline.storage.security_tables import AuditLog

W = "start=2026-01-05T12:00:00%2B00:00&end=2026-01-05T12:00:10%2B00:00"
# (method, url template with {pid} / {aid}, is_read)
ROUTES = [
    ("GET", "/api/v1/patients/{pid}", True),
    ("GET", "/api/v1/patients/{pid}/devices", True),
    ("GET", "/api/v1/patients/{pid}/ecg?" + W, True),
    ("GET", "/api/v1/patients/{pid}/vitals?" + W, True),
    ("GET", "/api/v1/patients/{pid}/beats?" + W, True),
    ("GET", "/api/v1/patients/{pid}/summary?" + W, True),
    ("GET", "/api/v1/patients/{pid}/alerts?" + W, True),
    ("GET", "/api/v1/alerts/{aid}", True),
    ("GET", "/api/v1/alerts/{aid}/explanation", True),
    ("POST", "/api/v1/alerts/{aid}/acknowledge", False),
    ("GET", "/fhir/Patient/{pid}", True),
    ("GET", "/fhir/Device/{did}", True),
    (
        "GET",
        "/fhir/Observation?patient={pid}&date=ge2026-01-05T12:00:00Z&date=lt2026-01-05T12:00:10Z",
        True,
    ),
    (
        "GET",
        "/fhir/DiagnosticReport?patient={pid}&date=ge2026-01-05T12:00:00Z&date=lt2026-01-05T12:00:10Z",
        True,
    ),
    ("GET", "/fhir/Patient/{pid}/$everything?" + W, True),
    ("GET", "/fhir/Bundle?patient={pid}&" + W, True),
]
# user -> the patient they may see (admin sees both)
OWN = {"clin1": "p1", "clin2": "p2", "pat1": "p1", "pat2": "p2"}


def _url(template: str, world, pid: str) -> str:
    return template.format(pid=pid, aid=world.alert_ids[pid], did={"p1": "d1", "p2": "d2"}[pid])


def _audit_count(world) -> int:
    with world.factory() as s:
        return s.scalar(select(func.count(AuditLog.id)))


@pytest.mark.parametrize(
    ("method", "template", "is_read"), ROUTES, ids=[f"{m} {t.split('?')[0]}" for m, t, _ in ROUTES]
)
def test_cross_patient_access_denied(client, world, method, template, is_read):
    for user, own in OWN.items():
        foreign = "p2" if own == "p1" else "p1"
        before = _audit_count(world)
        r = client.request(method, _url(template, world, foreign), headers=world.auth(user))
        denied = 404 if "{aid}" in template else 403
        if not is_read and user.startswith("pat"):
            denied = 403  # patients may not acknowledge at all: the role answers first
        assert r.status_code == denied, (user, foreign, r.status_code, r.text)
        assert _audit_count(world) == before, "a denied request must not be audited as a read"
    # the patient's own people are served (patients may not acknowledge alerts)
    for user, own in OWN.items():
        before = _audit_count(world)
        r = client.request(method, _url(template, world, own), headers=world.auth(user))
        if not is_read and user.startswith("pat"):
            assert r.status_code == 403
            continue
        assert r.status_code in (200, 409), (user, own, r.status_code, r.text)
        if is_read:
            assert _audit_count(world) > before, f"read by {user} not audited"
    # the admin is served for both
    for pid in ("p1", "p2"):
        assert client.request(
            method, _url(template, world, pid), headers=world.auth("admin")
        ).status_code in (200, 409)
    # and nobody without a token
    assert client.request(method, _url(template, world, "p1")).status_code == 401
