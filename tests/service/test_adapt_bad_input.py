"""Bad input to patient adaptation, each with a clear error and nothing lost or half-written:
too few beats of one class (the error names the class and how many more), labels outside
N/S/V/F/Q and beats of another patient at the storage layer (and the table's own check),
patients adapting, and a corrupt active model that a new adaptation replaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from tests.service.test_adapt_routes import API, FakeFeatures, _audit, _beats, _n_reviews

from heartline.service import create_app
from heartline.service.routes.adaptation import get_feature_source
from heartline.storage import adaptation_repository as arepo
from heartline.storage.adaptation_tables import BeatReview, PatientModel
from heartline.storage.engine import session_scope
from heartline.storage.tables import Beat


@pytest.fixture
def aclient(settings, world) -> Iterator[TestClient]:
    app = create_app(settings)
    fake = FakeFeatures()
    app.dependency_overrides[get_feature_source] = lambda: fake
    with TestClient(app) as c:
        yield c


def _n_models(world) -> int:
    with session_scope(world.factory) as s:
        return int(s.scalar(select(func.count()).select_from(PatientModel)))


def test_too_few_beats_of_a_class_says_which_and_how_many(aclient, world) -> None:
    beats = _beats(aclient, world)
    n_ids = [b["id"] for b in beats if b["label"] == "N"]
    v_ids = [b["id"] for b in beats if b["label"] == "V"]
    h = world.auth("clin1")
    for ids, label in ((n_ids[:2], "N"), (v_ids, "V")):
        r = aclient.post(
            f"{API}/patients/p1/beat-reviews", json={"beat_ids": ids, "label": label}, headers=h
        )
        assert r.status_code == 201, r.text
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=h)
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert detail["missing"] == {"N": 1}
    assert "1 more N beat(s)" in detail["msg"] and "need 3 per class" in detail["msg"]
    # a stricter minimum names the V beats still needed too, once N is satisfied
    r = aclient.post(
        f"{API}/patients/p1/beat-reviews", json={"beat_ids": n_ids[2:3], "label": "N"}, headers=h
    )
    assert r.status_code == 201
    r = aclient.post(f"{API}/patients/p1/adaptation", json={"min_per_class": 1000}, headers=h)
    assert r.status_code == 409 and "more N beat(s)" in r.json()["detail"]["msg"]
    for bad in ({"min_per_class": 0}, {"method": "magic"}, {"x": 1}):
        r = aclient.post(f"{API}/patients/p1/adaptation", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    assert _n_models(world) == 0 and _audit(world, "adapt") == 0
    # patients may not adapt their own model
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=world.auth("pat1"))
    assert r.status_code == 403 and _n_models(world) == 0


def test_storage_rejects_bad_reviews_before_writing(world) -> None:
    with session_scope(world.factory) as s:
        p1 = list(s.scalars(select(Beat.id).where(Beat.patient_id == "p1").limit(3)))
        p2 = list(s.scalars(select(Beat.id).where(Beat.patient_id == "p2").limit(1)))
        for label in ("X", "n", "", "NS"):
            with pytest.raises(ValueError, match="label must be one of N, S, V, F, Q"):
                arepo.review_beats(s, patient_id="p1", beat_ids=p1, label=label, actor="c")
        with pytest.raises(ValueError, match="no beats"):
            arepo.review_beats(s, patient_id="p1", beat_ids=[], label="N", actor="c")
        with pytest.raises(LookupError) as ei:
            arepo.review_beats(s, patient_id="p1", beat_ids=[*p1, *p2, 10**9], label="N", actor="c")
        assert str(ei.value) == f"beats [{p2[0]}, {10**9}] are not beats of patient 'p1'"
    assert _n_reviews(world) == 0
    # the table refuses a label outside the classes even when written around the repository
    with pytest.raises(IntegrityError), session_scope(world.factory) as s:
        s.add(BeatReview(beat_id=p1[0], patient_id="p1", actor="x", new_label="Z"))
        s.flush()
    assert _n_reviews(world) == 0


def test_a_new_adaptation_replaces_a_corrupt_active_model(aclient, world) -> None:
    h = world.auth("clin1")
    with session_scope(world.factory) as s:
        arepo.add_model(
            s,
            patient_id="p1",
            method="prototypes",
            base_sha256="0" * 64,
            artefact=b"\x00" * 64,
            summary={},
            actor="disk",
        )
    state = aclient.get(f"{API}/patients/p1/models", headers=h).json()
    assert state["active_version"] == 1 and "cannot be read" in state["notice"]
    beats = _beats(aclient, world)
    for label in ("N", "V"):
        ids = [b["id"] for b in beats if b["label"] == label]
        r = aclient.post(
            f"{API}/patients/p1/beat-reviews", json={"beat_ids": ids, "label": label}, headers=h
        )
        assert r.status_code == 201
    r = aclient.post(f"{API}/patients/p1/adaptation", headers=h)
    assert r.status_code == 201 and r.json()["version"] == 2
    state = aclient.get(f"{API}/patients/p1/models", headers=h).json()
    assert state["active_version"] == 2 and state["notice"] is None
    assert [m["version"] for m in state["models"]] == [2, 1]  # the corrupt one is kept, inactive
