"""Local training helpers (no Flower): weights in and out, FedProx, pooled macro-F1, DP accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.federated.privacy import epsilon_for_noise, noise_for_epsilon
from heartline.training.local import (
    LocalConfig,
    build_federated_beat_net,
    confusion_macro_f1,
    evaluate_local,
    load_state_arrays,
    local_validation_split,
    state_arrays,
    subsample_normal,
    train_local,
)
from heartline.training.trainer import macro_f1


@pytest.fixture(scope="module")
def beats():
    from heartline.data.beat_dataset import build_beat_set

    torch.set_num_threads(1)
    b = build_beat_set(("208",), progress=False)
    return subsample_normal(b, keep_fraction=0.05, seed=0)


def test_weights_round_trip_and_errors(beats) -> None:
    net = build_federated_beat_net(n_rr=beats.rr.shape[1], seed=1)
    arrays = state_arrays(net)
    other = build_federated_beat_net(n_rr=beats.rr.shape[1], seed=2)
    # 0-d counters travel as shape (1,) through Flower: accepted
    arrays_1d = {k: (v.reshape(1) if v.ndim == 0 else v) for k, v in arrays.items()}
    load_state_arrays(other, arrays_1d)
    for k, v in state_arrays(other).items():
        np.testing.assert_array_equal(v, arrays[k])
    with pytest.raises(ValueError, match="lack"):
        load_state_arrays(other, {k: v for k, v in arrays.items() if "lstm" not in k})
    k0 = next(k for k, v in arrays.items() if v.ndim == 2)
    with pytest.raises(ValueError, match=k0.replace(".", r"\.")):
        load_state_arrays(other, {**arrays, k0: np.zeros((1, 1), dtype=np.float32)})


def test_local_training_lowers_loss_and_prox_stays_closer(beats) -> None:
    train, val = local_validation_split(beats)
    assert len(val) and not set(np.flatnonzero(val.sample_idx < 0))
    net = build_federated_beat_net(n_rr=beats.rr.shape[1], seed=0)
    start = state_arrays(net)
    before = evaluate_local(net, train).loss
    train_local(net, train, LocalConfig(epochs=3))
    after = evaluate_local(net, train).loss
    assert after < before
    plain = state_arrays(net)
    load_state_arrays(net, start)
    train_local(net, train, LocalConfig(epochs=3, proximal_mu=10.0))
    prox = state_arrays(net)

    def dist(a):
        return sum(float(np.sum((a[k] - start[k]) ** 2)) for k in a if a[k].dtype.kind == "f")

    assert dist(prox) < dist(plain)


def test_pooled_confusion_macro_f1_equals_macro_f1() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 5, 500))
    conf = np.zeros((5, 5), dtype=int)
    np.add.at(conf, (y, p), 1)
    assert confusion_macro_f1(conf) == pytest.approx(macro_f1(y, p, n_classes=5))


def test_epsilon_accounting_matches_opacus() -> None:
    accountants = pytest.importorskip("opacus.accountants")
    RDPAccountant = accountants.RDPAccountant

    for eps in (1.0, 3.0, 8.0):
        z = noise_for_epsilon(eps, 4)
        assert epsilon_for_noise(z, 4) == pytest.approx(eps, rel=1e-3)
        acc = RDPAccountant()
        acc.history = [(z, 1.0, 4)]
        assert acc.get_epsilon(1e-5) == pytest.approx(eps, rel=1e-2)
    assert noise_for_epsilon(1.0, 4) > noise_for_epsilon(8.0, 4)
    with pytest.raises(ValueError, match="epsilon"):
        noise_for_epsilon(0.0, 4)


def test_rhythm_site_trains_and_scores_four_classes() -> None:
    from heartline.federated.partition import partition_rhythm, rhythm_labels
    from heartline.federated.tasks import SiteTask, load_site_data

    labels = rhythm_labels()
    m = partition_rhythm(5, alpha=1.0, seed=0, labels=labels)
    records = m.hospitals[0].records[:40]
    data = load_site_data("rhythm", records, keep_normal=1.0, seed=0)
    assert len(data.train) + len(data.val) == len(records)
    assert not set(data.train.records) & set(data.val.records)
    site = SiteTask("rhythm", data, epochs=3, lr=3e-3)
    start = state_arrays(site.net)
    before = site.evaluate(start, on="train")
    new, metrics = site.fit(start, round_seed=1)
    after = site.evaluate(new, on="train")
    assert metrics["num-examples"] == len(data.train)
    assert before.confusion.shape == (4, 4) and before.confusion.sum() == len(data.train)
    assert after.loss < before.loss
    # the RR standardisation was fitted on the local records in the first round
    assert not np.allclose(new["rr_std"], 1.0)
