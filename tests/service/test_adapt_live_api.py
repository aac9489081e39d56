"""Adaptation API additions for the live system: the notice for a corrupt active model (the
processors run the base model) and the templates' median waveforms from the stored ECG."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient
from tests.service.conftest import T0

from heartline.service import create_app
from heartline.storage import adaptation_repository as arepo
from heartline.storage.engine import session_scope


def test_api_reports_a_corrupt_active_model(settings, world) -> None:
    with session_scope(world.factory) as s:
        arepo.add_model(
            s,
            patient_id="p1",
            method="prototypes",
            base_sha256="0" * 64,
            artefact=b"corrupt",
            summary={},
            actor="disk",
        )
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/v1/patients/p1/models", headers=world.auth("clin1"))
        assert r.status_code == 200
        assert r.json()["active_version"] == 1
        assert "v1 cannot be read" in r.json()["notice"] and "base model runs" in r.json()["notice"]
        r = c.post("/api/v1/patients/p1/models/rollback", headers=world.auth("clin1"))
        assert r.json()["notice"] is None and r.json()["active_version"] is None


def test_templates_carry_median_waveforms(settings, world) -> None:
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=10)).isoformat()}
    with TestClient(create_app(settings)) as c:
        r = c.get(
            "/api/v1/patients/p1/beat-templates",
            params={**window, "n_clusters": 2},
            headers=world.auth("clin1"),
        )
    assert r.status_code == 200, r.text
    with_ecg = [t for t in r.json() if t["median_n_beats"]]
    assert with_ecg, r.json()
    t = with_ecg[0]
    assert t["median_fs_hz"] > 0 and t["median_start_s"] == -0.25
    assert len(t["median_mv"]) == round(0.7 * t["median_fs_hz"])
    assert np.isfinite(t["median_mv"]).all() and np.ptp(t["median_mv"]) > 0
