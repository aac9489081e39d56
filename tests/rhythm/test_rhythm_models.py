"""Rhythm networks: registry, shapes, masking, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.models.rhythm import RHYTHM_MODELS, build_rhythm_model

torch.set_num_threads(1)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError, match="cnn, features, hybrid, lstm"):
        build_rhythm_model("transformer", n_rr=4)


@pytest.mark.parametrize("name", sorted(RHYTHM_MODELS))
def test_every_model_gives_four_logits_and_ignores_padding(name):
    torch.manual_seed(0)
    net = build_rhythm_model(name, n_rr=5).eval()
    x = torch.randn(3, 3000)
    mask = torch.ones(3, 3000)
    mask[1, 1280:] = 0.0  # a 12.8 s record padded to 30 s
    rr = torch.randn(3, 5)
    with torch.no_grad():
        out = net(x, mask, rr)
        x2 = x.clone()
        x2[1, 1280:] = 100.0  # garbage in the padding
        out2 = net(x2, mask, rr)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, out2)


def test_hybrid_uses_the_rr_features_and_the_baselines_do_not():
    torch.manual_seed(0)
    x, m = torch.randn(2, 3000), torch.ones(2, 3000)
    for name, uses in (("hybrid", True), ("cnn", False), ("lstm", False)):
        net = build_rhythm_model(name, n_rr=5).eval()
        with torch.no_grad():
            a = net(x, m, torch.zeros(2, 5))
            b = net(x, m, torch.full((2, 5), 3.0))
        assert (not torch.allclose(a, b)) is uses, name


def test_hybrid_overfits_one_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((8, 1000)).astype(np.float32))
    m = torch.ones_like(x)
    rr = torch.from_numpy(rng.standard_normal((8, 5)).astype(np.float32))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    net = build_rhythm_model("hybrid", n_rr=5, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(x, m, rr), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(x, m, rr).argmax(1) == y).all()


def test_hand_feature_hybrid_has_a_two_layer_feature_branch_and_bad_depth_is_named():
    from heartline.models.rhythm import HYBRID_HAND_PARAMS

    plain = build_rhythm_model("hybrid", n_rr=54)
    hand = build_rhythm_model("hybrid", n_rr=54, **HYBRID_HAND_PARAMS)
    n_lin = [sum(isinstance(m, torch.nn.Linear) for m in net.rr_net) for net in (plain, hand)]
    assert n_lin == [1, 2]
    x = torch.zeros(2, 3000)
    assert tuple(hand.eval()(x, torch.ones_like(x), torch.zeros(2, 54)).shape) == (2, 4)
    with pytest.raises(ValueError, match="rr_layers"):
        build_rhythm_model("hybrid", n_rr=54, rr_layers=3)
