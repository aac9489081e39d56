"""Morphology features: shapes, names, and that they separate PVCs from normal beats."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.data.beat_dataset import build_beat_set
from heartline.features import beat_features, morphology_features


@pytest.fixture(scope="module")
def beats(data_dir, tmp_path_factory):
    return build_beat_set(
        ["119"], data_dir=data_dir, cache_dir=tmp_path_factory.mktemp("c"), progress=False
    )


def test_shapes_and_names(beats):
    f = beat_features(beats)
    assert f.values.shape == (len(beats), len(f.names))
    assert f.values.dtype == np.float32 and np.isfinite(f.values).all()
    assert f.names[: len(beats.rr_names)] == beats.rr_names
    assert len(set(f.names)) == len(f.names)
    assert any(n.startswith("lead1_wav") for n in f.names) and "lead0_qrs_width_s" in f.names


def test_pvcs_are_wider_than_normal_beats(beats):
    f = beat_features(beats)
    width = f.values[:, f.names.index("lead0_qrs_width_s")]
    n, v = width[beats.labels == 0], width[beats.labels == 2]
    assert v.size > 100  # record 119 has many PVCs (bigeminy)
    assert np.median(v) > 1.5 * np.median(n)


def test_single_lead_and_validation():
    w = np.random.default_rng(0).normal(size=(5, 128))
    f = morphology_features(w, pre_s=0.25, post_s=0.45)
    assert f.values.shape[0] == 5 and all(n.startswith("lead0_") for n in f.names)
    with pytest.raises(ValueError, match="lead_names"):
        morphology_features(w, pre_s=0.25, post_s=0.45, lead_names=("a", "b"))
