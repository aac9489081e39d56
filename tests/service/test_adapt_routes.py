"""Adaptation API: templates, beat reviews (single and whole templates), adapt, versions, rollback,
and every failure mode (foreign patient, missing beats, bad labels, too few beats), audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.service.conftest import T0

from heartline.edge.runtime import OnnxBeatClassifier
from heartline.edge.shipped import shipped_model_path
from heartline.service import create_app
from heartline.service.routes.adaptation import get_feature_source, stored_artefact
from heartline.storage.adaptation_tables import BeatReview
from heartline.storage.engine import session_scope
from heartline.storage.security_tables import AuditLog

API = "/api/v1"


class FakeFeatures:
    """Encoder features from the reviewed label (what the real source recomputes from ECG)."""

    def __init__(self) -> None:
        self.model = OnnxBeatClassifier(shipped_model_path())

    def __call__(self, session, *, patient_id, beats):
        d = int(self.model.feature_dim)
        rng = np.random.default_rng(0)
        f = rng.normal(0, 0.1, (len(beats), d))
        f[:, 0] += [5.0 if b.label == "V" else 0.0 for b in beats]
        p = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (len(beats), 1))
        return f, p, np.ones(len(beats), bool)


@pytest.fixture
def aclient(settings, world) -> Iterator[TestClient]:
    app = create_app(settings)
    fake = FakeFeatures()
    app.dependency_overrides[get_feature_source] = lambda: fake
    with TestClient(app) as c:
        yield c


def _window() -> dict[str, str]:
    return {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=10)).isoformat()}


def _beats(client, world, pid="p1", who="clin1") -> list[dict]:
    r = client.get(f"{API}/patients/{pid}/beats", params=_window(), headers=world.auth(who))
    assert r.status_code == 200, r.text
    return r.json()


def _audit(world, action: str) -> int:
    with session_scope(world.factory) as s:
        return int(
            s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action))
        )


def _n_reviews(world) -> int:
    with session_scope(world.factory) as s:
        return int(s.scalar(select(func.count()).select_from(BeatReview)))


def test_templates_review_adapt_rollback(aclient, world) -> None:
    beats = _beats(aclient, world)
    n_ids = [b["id"] for b in beats if b["label"] == "N"]
    v_ids = [b["id"] for b in beats if b["label"] == "V"]
    assert len(n_ids) >= 3 and v_ids
    t = aclient.get(
        f"{API}/patients/p1/beat-templates",
        params={**_window(), "n_clusters": 2},
        headers=world.auth("clin1"),
    )
    assert t.status_code == 200, t.text
    templates = t.json()
    assert sum(x["count"] for x in templates) == len(beats)
    assert sorted(i for x in templates for i in x["beat_ids"]) == sorted(b["id"] for b in beats)
    # too few N beats: 409 saying what is missing, nothing stored
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": v_ids, "label": "V"},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 201 and r.json()[0]["old_label"] == "V"
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("clin1"))
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["missing"] == {"N": 3}
    # a whole template confirmed, one beat relabelled
    big = max(templates, key=lambda x: x["count"])
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": big["beat_ids"], "label": "N", "cluster": big["cluster"]},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 201 and {x["cluster"] for x in r.json()} == {big["cluster"]}
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": n_ids[:1], "label": "S"},
        headers=world.auth("clin1"),
    )
    assert r.json()[0]["old_label"] == "N" and r.json()[0]["new_label"] == "S"
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": n_ids[:1], "label": "N"},
        headers=world.auth("clin1"),
    )
    assert r.json()[0]["old_label"] == "S"  # history kept, latest review wins
    assert _audit(world, "relabel") >= 2
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("clin1"))
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["active"]
    assert r.json()["summary"]["counts"]["N"] >= 3
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("clin1"))
    assert r.json()["version"] == 2
    with session_scope(world.factory) as s:
        assert stored_artefact(s, "p1")[0] == 2
    state = aclient.get(f"{API}/patients/p1/models", headers=world.auth("clin1")).json()
    assert state["active_version"] == 2 and [m["version"] for m in state["models"]] == [2, 1]
    r = aclient.post(f"{API}/patients/p1/models/rollback", headers=world.auth("clin1"))
    assert r.status_code == 200 and r.json()["active_version"] is None
    with session_scope(world.factory) as s:
        assert stored_artefact(s, "p1") is None
    r = aclient.post(
        f"{API}/patients/p1/models/rollback", json={"version": 1}, headers=world.auth("clin1")
    )
    assert r.json()["active_version"] == 1
    r = aclient.post(
        f"{API}/patients/p1/models/rollback", json={"version": 9}, headers=world.auth("clin1")
    )
    assert r.status_code == 404 and "version 9" in r.text
    assert _audit(world, "adapt") == 2 and _audit(world, "rollback") == 2
    hist = aclient.get(f"{API}/patients/p1/beat-reviews", headers=world.auth("clin1")).json()
    assert len(hist) == _n_reviews(world)


def test_bad_requests_change_nothing(aclient, world) -> None:
    p1 = [b["id"] for b in _beats(aclient, world)]
    p2 = [b["id"] for b in _beats(aclient, world, "p2", "clin2")]
    before = _n_reviews(world)
    # another clinician's patient: 404, as for foreign alerts
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": p1[:1], "label": "N"},
        headers=world.auth("clin2"),
    )
    assert r.status_code == 404 and r.json()["detail"] == "patient not found"
    r = aclient.post(
        f"{API}/patients/nobody/beat-reviews",
        json={"beat_ids": p1[:1], "label": "N"},
        headers=world.auth("admin"),
    )
    assert r.status_code == 404
    for path in ("beat-templates", "models", "beat-reviews"):
        assert (
            aclient.get(f"{API}/patients/p1/{path}", headers=world.auth("clin2")).status_code == 404
        )
    assert (
        aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("clin2")).status_code
        == 404
    )
    assert (
        aclient.post(f"{API}/patients/p1/models/rollback", headers=world.auth("clin2")).status_code
        == 404
    )
    # beats of another patient, or none at all: 404 naming them (as for foreign alerts)
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews",
        json={"beat_ids": [p1[0], p2[0], 999999], "label": "N"},
        headers=world.auth("clin1"),
    )
    assert r.status_code == 404, r.text
    msg = r.json()["detail"]
    assert msg == f"beats [{p2[0]}, 999999] are not beats of patient 'p1'"
    # labels outside N/S/V/F/Q, empty lists, unknown fields
    for body in (
        {"beat_ids": p1[:1], "label": "X"},
        {"beat_ids": [], "label": "N"},
        {"beat_ids": p1[:1], "label": "N", "x": 1},
    ):
        assert (
            aclient.post(
                f"{API}/patients/p1/beat-reviews", json=body, headers=world.auth("clin1")
            ).status_code
            == 422
        )
    # patients may read their own state but not change it
    assert (
        aclient.post(
            f"{API}/patients/p1/beat-reviews",
            json={"beat_ids": p1[:1], "label": "N"},
            headers=world.auth("pat1"),
        ).status_code
        == 403
    )
    assert (
        aclient.post(f"{API}/patients/p1/models/rollback", headers=world.auth("pat1")).status_code
        == 403
    )
    assert aclient.get(f"{API}/patients/p1/models", headers=world.auth("pat1")).status_code == 200
    # no reviews yet: adaptation says so
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("clin1"))
    assert r.status_code == 409 and "no reviewed beats" in r.text
    assert _n_reviews(world) == before == 0


def test_features_recomputed_from_stored_ecg(settings) -> None:
    """The default feature source finds stored beats again in the stored ECG (live pipeline)."""
    from tests.service.conftest import seed_world

    from heartline.service.adaptation import EcgFeatureSource
    from heartline.storage import repository as repo

    world = seed_world(settings, n_frames=40)
    model = OnnxBeatClassifier(shipped_model_path())
    with session_scope(world.factory) as s:
        beats = repo.beats_between(
            s, patient_id="p1", start=T0 + timedelta(seconds=20), stop=T0 + timedelta(seconds=40)
        )
        assert len(beats) >= 20
        feats, probs, found = EcgFeatureSource(model)(s, patient_id="p1", beats=beats)
    assert feats.shape == (len(beats), model.feature_dim) and probs.shape == (len(beats), 5)
    assert found.mean() > 0.9
    np.testing.assert_allclose(probs[found].sum(1), 1.0, atol=1e-4)
    assert np.isfinite(feats[found]).all() and np.abs(feats[found]).sum() > 0
    # and an adaptation from those reviewed beats, stored as the active version, loadable live
    from heartline.edge.adapt import PatientModelRegistry
    from heartline.service.adaptation import adapt_patient
    from heartline.storage import adaptation_repository as arepo

    with session_scope(world.factory) as s:
        arepo.review_beats(s, patient_id="p1", beat_ids=[b.id for b in beats], label="N", actor="t")
        row, summary = adapt_patient(
            s, patient_id="p1", model=model, features_of=EcgFeatureSource(model), actor="t"
        )
        assert row.version == 1 and summary["counts"]["N"] == len(beats)
        assert summary["n_beats_without_ecg"] == int((~found).sum())
    reg = PatientModelRegistry(model, arepo.artefact_loader(world.factory))
    assert reg.get("p1").adapted is not None and reg.get("p1").notice is None
    assert reg.get("p2").adapted is None
