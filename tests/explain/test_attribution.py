"""Integrated Gradients (Captum): completeness, QRS focus for V beats, model-randomisation check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.explain.attribution import (
    explain_beat_model,
    explain_multimodal,
    integrated_gradients,
    load_shipped_beat_model,
    randomized_copy,
)
from heartline.explain.report import qrs_share

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def beat_net():
    return load_shipped_beat_model()


def test_ig_on_v_beats_completeness_and_qrs(beat_net, v_beats) -> None:
    w, rr, pre_s, window_s = v_beats
    a = explain_beat_model(beat_net, w, rr, n_steps=16)
    assert a.inputs[0].shape == w.shape and (a.target == 2).all()
    # completeness: attributions sum to p(x) - p(baseline)
    assert np.abs(a.convergence_delta).max() < 0.05
    share = qrs_share(a.inputs[0][:, -1], pre_s=pre_s, window_s=window_s)
    assert share.mean() > 0.4, share  # R +- 80 ms is 23 % of the window


def test_randomised_weights_change_the_attributions(beat_net, v_beats) -> None:
    """Adebayo et al. (2018): a map that survives weight randomisation explains the input only."""
    from scipy.stats import spearmanr

    w, rr, _, _ = v_beats
    a = explain_beat_model(beat_net, w, rr, n_steps=16)
    b = explain_beat_model(randomized_copy(beat_net, seed=1), w, rr, target=a.target, n_steps=16)
    assert not np.allclose(a.inputs[0], b.inputs[0])
    rho = [
        spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0]
        for x, y in zip(a.inputs[0][:, -1], b.inputs[0][:, -1], strict=True)
    ]
    assert np.mean(rho) < 0.9, rho
    # the control: the same model gives the same map
    c = explain_beat_model(beat_net, w, rr, target=a.target, n_steps=16)
    assert np.allclose(a.inputs[0], c.inputs[0], atol=1e-6)


def test_generic_ig_on_a_linear_model_is_exact() -> None:
    """For a linear score IG = (x - baseline) * weight exactly."""
    lin = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    x = torch.tensor([[1.0, 1.0, 3.0, 2.0]])
    a = integrated_gradients(lin, (x,), target=[0], probabilities="none", n_steps=8)
    assert np.allclose(a.inputs[0], [[1.0, -2.0, 0.0, 1.0]], atol=1e-5)
    with pytest.raises(ValueError, match="probabilities"):
        integrated_gradients(lin, (x,), probabilities="relu")


def test_multimodal_attribution_shapes_and_weights() -> None:
    from heartline.models.multimodal import N_META_INPUTS, MultimodalConfig, MultimodalNet

    torch.manual_seed(0)
    net = MultimodalNet(MultimodalConfig(fusion="attention"))
    ecg, meta = np.random.default_rng(0).normal(size=(2, 12, 250)), np.ones((2, N_META_INPUTS))
    r = explain_multimodal(net, ecg, meta, target=[1, 2], n_steps=8)
    assert r.ecg.shape == (2, 12, 250) and r.metadata.shape == (2, N_META_INPUTS)
    assert np.allclose(r.modality_weights.sum(1), 1)
    assert r.target.tolist() == [1, 2]
    assert np.abs(r.convergence_delta).max() < 0.05
