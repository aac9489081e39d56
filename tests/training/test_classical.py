"""Classical baselines: fit on a few real records, beat chance on another patient, round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.data.beat_dataset import build_beat_set
from heartline.data.beat_set import BeatSet
from heartline.models.base import BeatClassifier
from heartline.training.classical import CLASSICAL_MODELS


def _subsample(bs: BeatSet, per_class: int, seed: int = 0) -> BeatSet:
    rng = np.random.default_rng(seed)
    idx = [
        rng.permutation(np.flatnonzero(bs.labels == c))[:per_class] for c in np.unique(bs.labels)
    ]
    return bs.subset(np.sort(np.concatenate(idx)))


@pytest.fixture(scope="module")
def sets(data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("beats")
    kw = {"data_dir": data_dir, "cache_dir": cache, "progress": False}
    train = _subsample(build_beat_set(["119", "208", "209"], **kw), 150)  # N, S, V, F present
    val = _subsample(build_beat_set(["116"], **kw), 60)
    test = build_beat_set(["221"], **kw)  # another patient (DS2): N 2031, V 396 beats
    return train, val, test


@pytest.mark.parametrize("name", sorted(CLASSICAL_MODELS))
def test_fit_predict_beats_chance_and_round_trip(name, sets, tmp_path):
    train, val, test = sets
    assert len(train) < 700
    model = CLASSICAL_MODELS[name]()  # constructible with no arguments
    assert isinstance(model, BeatClassifier) and model.name == name
    model.fit(train, val, run_dir=tmp_path / "run", seed=0)
    assert (tmp_path / "run" / "val_metrics.json").is_file()
    prob = model.predict_proba(test)
    assert prob.shape == (len(test), 5)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(prob[:, 4] == 0)  # Q is not trained by default
    pred = prob.argmax(axis=1)
    recall = [np.mean(pred[test.labels == c] == c) for c in (0, 2)]  # N and V of record 221
    # balanced accuracy: 0.25 for a uniform 4-class guesser, 0.5 for always-N; demand more
    assert np.mean(recall) > 0.6, recall
    model.save(tmp_path / "model")
    loaded = type(model).load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(test), prob)


def test_seeded_and_config_checked(sets):
    train, val, test = sets
    a = CLASSICAL_MODELS["random_forest"](n_estimators=20)
    b = CLASSICAL_MODELS["random_forest"](n_estimators=20)
    a.fit(train, val, seed=3)
    b.fit(train, val, seed=3)
    np.testing.assert_array_equal(a.predict_proba(test), b.predict_proba(test))
    with pytest.raises(ValueError, match="train_classes"):
        CLASSICAL_MODELS["svm"](train_classes=("N", "X"))
    with pytest.raises(RuntimeError, match="not fitted"):
        CLASSICAL_MODELS["decision_tree"]().predict_proba(test)


def test_svm_subsamples_majority_class(sets):
    train = sets[0]
    model = CLASSICAL_MODELS["svm"](max_train_beats=200)
    keep = model._subsample(train.labels, seed=0)
    counts = np.bincount(train.labels[keep], minlength=4)
    assert keep.size <= 200
    # minority classes keep all their beats when they fit in the budget
    full = np.bincount(train.labels, minlength=4)
    small = full < 50
    assert np.all(counts[small] == full[small])
