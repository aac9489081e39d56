"""Hybrid CNN-LSTM: shapes, causality, lead attention, optional losses, one-batch overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.data.beat_set import BeatSet
from heartline.data.synthetic import synthetic_beats
from heartline.models.hybrid import HybridNet, receptive_fields_ms
from heartline.training.trainer import predict_logits

torch.set_num_threads(1)


def tiny(**kw) -> HybridNet:
    base = dict(
        n_leads=2, window_len=32, n_rr=3, context_k=3, channels=4, feature_dim=16, lstm_hidden=16
    )
    base.update(kw)
    torch.manual_seed(0)
    return HybridNet(**base)


def test_receptive_fields_match_the_waves() -> None:
    rf = receptive_fields_ms()
    assert 80 <= rf["qrs"] <= 130  # QRS 80-120 ms
    assert rf["qrs"] < rf["p"] < rf["t"]
    assert 160 <= rf["t"] <= 320  # T wave 160-250 ms plus margin


def test_output_shapes_and_two_entry_points_agree() -> None:
    net = tiny(early_alarm=True).eval()
    w, r = torch.randn(5, 4, 2, 32), torch.randn(5, 4, 3)
    logits, next_logits = net(w, r)
    assert logits.shape == (5, 5) and next_logits.shape == (5, 5)
    ctx = torch.arange(20).reshape(5, 4)
    out = net.forward_context(w.reshape(20, 2, 32), r.reshape(20, 3), ctx)
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.next_logits, next_logits)
    assert tiny()(w, r).shape == (5, 5)  # no early-alarm head: a single tensor
    assert tiny(fusion="concat", contrast=True)(w, r).shape == (5, 5)


def test_parameter_count_is_small() -> None:
    net = HybridNet(n_leads=2, window_len=128, n_rr=8)
    n = sum(p.numel() for p in net.parameters())
    assert 5_000 < n < 100_000


def test_future_beats_do_not_change_the_current_prediction() -> None:
    beats = synthetic_beats(30, seed=1)
    net = tiny(context_k=4)
    before = predict_logits(net, beats)
    windows, rr = beats.windows.copy(), beats.rr.copy()
    j = 12  # change beat 12 of record "a"
    windows[j] += 5.0
    rr[j] -= 3.0
    changed = BeatSet(
        windows,
        rr,
        beats.rr_names,
        beats.labels,
        beats.record,
        beats.sample_idx,
        beats.fs,
        beats.lead_names,
    )
    after = predict_logits(net, changed)
    np.testing.assert_array_equal(after[:j], before[:j])  # the past is untouched
    assert not np.allclose(after[j], before[j])  # the beat itself changes
    assert not np.allclose(after[j + 4], before[j + 4])  # still in the context of beat j + 4
    np.testing.assert_array_equal(after[j + 5 :], before[j + 5 :])  # out of the K=4 context


def test_predictions_do_not_depend_on_batching() -> None:
    beats = synthetic_beats(30, seed=2)
    net = tiny()
    np.testing.assert_allclose(
        predict_logits(net, beats, batch_size=7), predict_logits(net, beats), atol=1e-5
    )


def test_lead_attention_weights_are_a_distribution() -> None:
    net = tiny().eval()
    w = net.lead_weights(torch.randn(6, 2, 32))
    assert w.shape == (6, 2)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(6))


def test_morphology_penalty_is_zero_for_flat_kernels_and_positive_otherwise() -> None:
    net = tiny(morphology_weight=1.0, morphology="both")
    assert float(net.morphology_penalty().detach()) > 0
    with torch.no_grad():
        for m in net.branches["qrs"].modules():
            if isinstance(m, torch.nn.Conv1d):
                m.weight.fill_(0.1)
    assert float(net.morphology_penalty().detach()) == pytest.approx(0.0)


def test_auxiliary_losses_are_finite_and_switchable() -> None:
    net = tiny(
        early_alarm=True, consistency_weight=1.0, morphology_weight=0.1, contrast=True
    ).train()
    w, r = torch.randn(8, 2, 32), torch.randn(8, 3)
    ctx = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [4, 5, 6, 7]])
    out = net.forward_context(w, r, ctx)
    assert out.prev_logits is not None and out.next_logits is not None
    y_ctx = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
    aux = net.auxiliary_loss(out, y_ctx, torch.tensor([0, 1, -1, 2]))
    assert torch.isfinite(aux) and float(aux.detach()) > 0
    aux.backward()
    assert net.next_head[0].weight.grad is not None
    plain = tiny().train()
    out = plain.forward_context(w, r, ctx)
    assert out.prev_logits is None and out.next_logits is None
    assert float(plain.auxiliary_loss(out, y_ctx, torch.tensor([0, 1, -1, 2]))) == 0.0


def test_invalid_options_raise() -> None:
    with pytest.raises(ValueError, match="morphology"):
        tiny(morphology="round")
    with pytest.raises(ValueError, match="fusion"):
        tiny(fusion="max")
    with pytest.raises(ValueError, match="context_k"):
        tiny(context_k=-1)
    with pytest.raises(ValueError, match="qrs"):
        tiny(branches={"p": (1, 2)}, morphology_weight=1.0)


def test_hybrid_overfits_one_batch() -> None:
    beats = synthetic_beats(16, seed=3)
    net = tiny(
        dropout=0.0, early_alarm=True, consistency_weight=0.1, morphology_weight=0.01, contrast=True
    )
    ctx = torch.from_numpy(beats.context_index(net.context_k))
    w, r = torch.from_numpy(beats.windows), torch.from_numpy(beats.rr)
    y = torch.from_numpy(beats.labels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        net.train()
        loss = torch.nn.functional.cross_entropy(net.forward_context(w, r, ctx).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net.forward_context(w, r, ctx).logits.argmax(dim=1)
    assert float(loss.detach()) < 0.05
    assert bool((pred == y).all())


def test_log_ratio_rr_mode_is_scale_free_and_reaches_the_head() -> None:
    from heartline.models.hybrid import log_rr_ratios

    rr = torch.tensor([[0.5, 1.0, 0.8, 0.8, 0.625, 1.25, 1.0, 0.5]])
    a, b = log_rr_ratios(rr), log_rr_ratios(rr * 2.0)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # ratios do not depend on the heart rate
    assert not torch.allclose(a[:, 6], b[:, 6])  # the level itself is kept
    net = tiny(n_rr=8, rr_mode="log_ratios").eval()
    w = torch.randn(5, 4, 2, 32)
    r = torch.rand(5, 4, 8) + 0.3
    out = net(w, r)
    assert out.shape == (5, 5) and torch.isfinite(out).all()
    r2 = r.clone()
    r2[:, -1, 0] *= 0.5  # a premature current beat changes the output
    assert not torch.allclose(net(w, r2), out)
    with pytest.raises(ValueError, match="rr_mode"):
        tiny(rr_mode="zscore")
    with pytest.raises(ValueError, match="previous/next/local/average"):
        tiny(n_rr=3, rr_mode="log_ratios")


def test_rhythm_rr_columns_are_used_or_ignored() -> None:
    from heartline.models.hybrid import log_rr_ratios, n_log_rr
    from heartline.signal.segmentation import RR_FEATURE_NAMES, rr_features

    n = len(RR_FEATURE_NAMES)
    rr = torch.from_numpy(
        rr_features(np.array([0, 360, 720, 900, 1440, 1800]), fs=360.0).values.astype(np.float32)
    )
    feats = log_rr_ratios(rr)
    assert feats.shape == (6, n_log_rr(n)) and torch.isfinite(feats).all()
    assert feats[:, 7:].abs().max() <= 3.0  # the rhythm part is bounded
    w = torch.randn(5, 4, 2, 32)
    r = torch.rand(5, 4, n) + 0.3
    r2 = r.clone()
    r2[:, :, 8:] += 1.0  # only the rhythm columns change
    with_rhythm = tiny(n_rr=n, rr_mode="log_ratios").eval()
    without = tiny(n_rr=n, rr_mode="log_ratios", rhythm_rr=False).eval()
    assert not torch.allclose(with_rhythm(w, r2), with_rhythm(w, r))
    torch.testing.assert_close(without(w, r2), without(w, r))
    # without the rhythm columns the network has the 8-column model's shape
    old = tiny(n_rr=8, rr_mode="log_ratios")
    assert sum(p.numel() for p in without.parameters()) == sum(p.numel() for p in old.parameters())


def test_mean_fusion_weighs_leads_equally() -> None:
    net = tiny(fusion="mean").eval()
    w, r = torch.randn(3, 4, 2, 32), torch.randn(3, 4, 3)
    swapped = w.flip(dims=[2])  # swap the two leads
    torch.testing.assert_close(net(w, r), net(swapped, r))  # no lead identity, no attention
    with pytest.raises(ValueError, match="fusion"):
        tiny(fusion="max")
