"""Pooled statistics (class weights, RR scaler), record-level DP-SGD and FedAdam's statistics
(no deployment: the functions a SuperNode and the ServerApp call)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.training.local import (
    LocalConfig,
    beat_label_weights,
    dp_sgd_epsilon,
    dp_sgd_noise,
    pooled_statistics,
    rhythm_label_weights,
    site_statistics,
    state_arrays,
    train_local_rhythm,
)
from heartline.training.rhythm import RhythmArrays
from heartline.training.rhythm import class_weights as rhythm_class_weights
from heartline.training.trainer import class_weights


def _rhythm_arrays(n: int, seed: int, *, classes: tuple[int, ...] = (0, 1, 2, 3)) -> RhythmArrays:
    rng = np.random.default_rng(seed)
    from heartline.training.rhythm import rr_feature_names

    n_rr = len(rr_feature_names())
    y = rng.choice(np.asarray(classes), size=n).astype(np.int64)
    length = 1200  # 12 s at 100 Hz
    t = np.arange(length) / 100.0
    signals = np.stack(
        [np.sin(2 * np.pi * (1.0 + 0.5 * yi) * t) + 0.1 * rng.standard_normal(length) for yi in y]
    ).astype(np.float32)
    rr = (rng.standard_normal((n, n_rr)) * (1 + np.arange(n_rr)) + 3.0).astype(np.float32)
    return RhythmArrays(
        np.asarray([f"S{seed}_{i:04d}" for i in range(n)]),
        y,
        signals,
        np.full(n, length, dtype=np.int64),
        rr,
        100.0,
    )


def test_pooled_class_weights_equal_central_weights() -> None:
    rng = np.random.default_rng(0)
    # hospitals with very different label mixes; one has no class-1 example at all
    sites = [
        rng.choice(5, size=300, p=p) for p in ([0.9, 0.05, 0.03, 0.01, 0.01], [0.7, 0, 0.3, 0, 0])
    ]
    pooled = np.concatenate(sites)
    central = class_weights(pooled, n_classes=5, max_weight=20.0)
    counts = [np.bincount(s, minlength=5) for s in sites]
    np.testing.assert_allclose(beat_label_weights(sum(counts)), central)
    # the per-site weights differ from the central ones (the bias the pooling removes)
    assert not np.allclose(beat_label_weights(counts[1]), central)
    np.testing.assert_allclose(
        rhythm_label_weights(np.bincount(pooled % 4, minlength=4)),
        rhythm_class_weights(pooled % 4, 0.5),
    )


def test_pooled_rhythm_statistics_equal_those_of_the_union() -> None:
    a, b = _rhythm_arrays(30, 1, classes=(0, 1)), _rhythm_arrays(50, 2, classes=(0, 2, 3))
    pooled = pooled_statistics(
        "rhythm", [site_statistics("rhythm", a), site_statistics("rhythm", b)]
    )
    rr = torch.from_numpy(np.concatenate([a.rr, b.rr]))
    np.testing.assert_allclose(pooled["rr-mean"], rr.mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(pooled["rr-std"], rr.std(0).numpy(), rtol=1e-4)
    y = np.concatenate([a.y, b.y])
    np.testing.assert_allclose(pooled["class-weights"], rhythm_class_weights(y, 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="no site statistics"):
        pooled_statistics("rhythm", [])


def test_dp_sgd_calibration_round_trips_through_opacus_accountant() -> None:
    cfg = LocalConfig(epochs=1, batch_size=32)
    z = dp_sgd_noise(3.0, 1e-5, 640, cfg, rounds=4)
    assert dp_sgd_epsilon(z, 1e-5, 640, cfg, rounds=4) == pytest.approx(3.0, rel=0.02)
    # composed over rounds: fewer rounds spent, less epsilon; more noise, less epsilon
    assert dp_sgd_epsilon(z, 1e-5, 640, cfg, rounds=1) < 3.0
    assert dp_sgd_epsilon(2 * z, 1e-5, 640, cfg, rounds=4) < 3.0


def test_record_level_dp_sgd_trains_the_fixed_network() -> None:
    from heartline.federated.export import evaluate_arrays
    from heartline.federated.tasks import build_net

    torch.set_num_threads(1)
    net = build_net("rhythm", dp=True)
    names = {type(m).__name__ for m in net.modules()}
    assert "DPLSTM" in names and "GroupNorm" in names and "BatchNorm1d" not in names
    train = _rhythm_arrays(64, 3)
    start = state_arrays(net)
    cfg = LocalConfig(epochs=2, batch_size=16, lr=3e-3, dp_noise_multiplier=0.8, dp_clip=1.0)
    res = train_local_rhythm(net, train, cfg, round_seed=1)
    assert np.isfinite(res.train_loss) and res.n_examples == 64
    new = state_arrays(net)
    moved = [k for k in start if start[k].dtype.kind == "f" and not np.allclose(start[k], new[k])]
    assert "head.4.weight" in moved and "lstm.l0.ih.weight" in moved
    # Opacus' hooks are gone: a second, plain forward/backward works on the same module
    assert not hasattr(net, "_module")
    # the test-set scorer recognises the DP variant's weight names
    ev = evaluate_arrays("rhythm", new, train)
    assert 0.0 <= ev["macro_f1"] <= 1.0 and ev["n_beats"] == 64
    with pytest.raises(ValueError, match="rhythm task only"):
        build_net("beats", dp=True)


class _Reply:
    """The two members of a reply :class:`flwr.app.Message` that aggregation reads (a real
    Message needs a running Flower task to be built)."""

    def __init__(self, content: object) -> None:
        self.content = content

    def has_error(self) -> bool:
        return False

    def has_content(self) -> bool:
        return True


def test_fedadam_averages_batchnorm_statistics_instead_of_stepping_them() -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

    from heartline.federated.server_app import STAT_SUFFIXES
    from heartline.federated.strategies import build_strategy

    strategy = build_strategy(
        "fedadam", n_hospitals=2, fedadam_eta=0.01, stat_suffixes=STAT_SUFFIXES
    )
    current = {"w": np.zeros(3, np.float32), "bn.running_var": np.ones(3, np.float32)}
    strategy.current_arrays = {k: v.copy() for k, v in current.items()}
    replies = []
    for w, var in ((1.0, 4.0), (3.0, 8.0)):
        content = RecordDict(
            {
                "arrays": ArrayRecord(
                    {
                        "w": Array(np.full(3, w, np.float32)),
                        "bn.running_var": Array(np.full(3, var, np.float32)),
                    }
                ),
                "metrics": MetricRecord({"num-examples": 10}),
            }
        )
        replies.append(_Reply(content))
    arrays, _ = strategy.aggregate_train(1, replies)
    out = {k: v.numpy() for k, v in arrays.items()}
    np.testing.assert_allclose(out["bn.running_var"], 6.0)  # plain average of 4 and 8
    assert np.all(out["w"] > 0) and np.all(out["w"] < 0.1)  # an Adam step of about eta


def test_fedavgm_scales_the_averaged_update_but_averages_batchnorm_statistics() -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

    from heartline.federated.server_app import STAT_SUFFIXES
    from heartline.federated.strategies import build_strategy

    strategy = build_strategy("fedavgm", n_hospitals=2, server_lr=2.0, stat_suffixes=STAT_SUFFIXES)
    strategy.current_arrays = ArrayRecord(
        {"w": Array(np.zeros(3, np.float32)), "bn.running_var": Array(np.ones(3, np.float32))}
    )
    replies = []
    for w, var in ((1.0, 4.0), (3.0, 8.0)):
        content = RecordDict(
            {
                "arrays": ArrayRecord(
                    {
                        "w": Array(np.full(3, w, np.float32)),
                        "bn.running_var": Array(np.full(3, var, np.float32)),
                    }
                ),
                "metrics": MetricRecord({"num-examples": 10}),
            }
        )
        replies.append(_Reply(content))
    arrays, _ = strategy.aggregate_train(1, replies)
    out = {k: v.numpy() for k, v in arrays.items()}
    np.testing.assert_allclose(out["w"], 4.0)  # 0 + 2 x (mean 2 - 0)
    np.testing.assert_allclose(out["bn.running_var"], 6.0)  # plain average, not 1 + 2 x 5
    np.testing.assert_allclose(strategy.current_arrays["w"].numpy(), 4.0)


def test_label_skew_adjustment_gives_every_site_central_training_prior() -> None:
    """With the adjustment, a site's unweighted loss on ``f + adj`` is minimised (for a
    constant logit vector ``f``) at ``softmax(f + adj) = p_site``; the raw ``softmax(f)`` must
    then be central training's prior ``p_pooled * w`` (normalised), the same for every site."""
    from heartline.training.local import label_skew_adjustment, rhythm_label_weights

    sites = [
        np.array([300.0, 20, 80, 5]),
        np.array([50.0, 90, 10, 15]),
        np.array([10.0, 1, 200, 0]),
    ]
    pooled = np.sum(sites, axis=0)
    w = rhythm_label_weights(pooled)
    central = pooled * w / np.sum(pooled * w)
    for counts in sites:
        adj, cw = label_skew_adjustment(counts, pooled, w)
        assert cw == (1.0, 1.0, 1.0, 1.0)
        present = counts > 0
        p_site = counts / counts.sum()
        f = np.log(p_site[present]) - np.asarray(adj)[present]
        raw = np.exp(f) / np.exp(f).sum()
        np.testing.assert_allclose(raw, central[present] / central[present].sum(), rtol=1e-9)
