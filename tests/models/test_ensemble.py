"""Cross-fitted hybrid ensemble: folds, out-of-fold calibration, offsets in every runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from heartline.data.beat_set import concat_beat_sets
from heartline.data.splits import DS1, stratified_record_folds
from heartline.data.synthetic import synthetic_beats
from heartline.models.ensemble import HybridEnsemble
from heartline.training.calibration import fit_decision_bias
from heartline.training.config import TrainConfig
from heartline.training.crossfit import CrossFitHybridClassifier
from heartline.training.deep import TorchBeatClassifier
from heartline.training.registry import get_model
from heartline.training.trainer import macro_f1

torch.set_num_threads(1)

TINY = {"context_k": 2, "channels": 4, "feature_dim": 16, "lstm_hidden": 16}


def test_stratified_folds_spread_rare_classes_and_cover_every_record() -> None:
    # DS1-like: SVEB concentrated in a few records
    counts = {r: (0, 5) for r in DS1}
    counts.update({"209": (383, 1), "220": (94, 0), "118": (96, 16), "207": (107, 105)})
    folds = stratified_record_folds(counts, n_folds=3)
    assert sorted(r for f in folds for r in f) == sorted(DS1)
    assert len({r for f in folds for r in f}) == len(DS1)
    s_per_fold = [sum(counts[r][0] for r in f) for f in folds]
    assert min(s_per_fold) >= 94  # every fold holds SVEB beats
    with pytest.raises(ValueError, match="n_folds"):
        stratified_record_folds(counts, n_folds=1)
    with pytest.raises(ValueError, match="same number"):
        stratified_record_folds({"a": (1,), "b": (1, 2)}, n_folds=2)


def test_concat_beat_sets_keeps_records_contiguous_and_rejects_overlap() -> None:
    a = synthetic_beats(5, ("a", "b"))
    b = synthetic_beats(4, ("c",), seed=1)
    ab = concat_beat_sets([a, b])
    assert len(ab) == 14 and ab.records == ("a", "b", "c")
    assert ab.lead_names == ("L0", "L1")
    np.testing.assert_array_equal(ab.context_index(1)[10], [10, 10])  # first beat of c
    with pytest.raises(ValueError, match="more than one"):
        concat_beat_sets([a, a])
    with pytest.raises(ValueError, match="differ"):
        concat_beat_sets([a, synthetic_beats(3, ("z",), window_len=16)])
    with pytest.raises(ValueError, match="at least one"):
        concat_beat_sets([])


def test_decision_bias_recovers_a_shift_and_never_lowers_the_objective() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 3000)
    lp = np.eye(3)[y] * 2.0 + rng.normal(0, 0.6, (3000, 3))
    lp[:, 1] -= 2.5  # class 1 systematically under-scored
    fit = fit_decision_bias(
        lp, y, tune=(1, 2), score_classes=(0, 1, 2), class_names=("A", "B", "C")
    )
    assert 1.5 < fit.bias[1] < 3.5
    assert abs(fit.bias[2]) < 0.6
    assert fit.bias[0] == 0.0
    assert fit.score_after >= fit.score_before
    assert fit.score_after == pytest.approx(
        macro_f1(y, (lp + fit.bias).argmax(1), classes=(0, 1, 2), skip_absent=False), abs=1e-6
    )
    with pytest.raises(ValueError, match="NaN"):
        fit_decision_bias(np.full((3, 3), np.nan), np.zeros(3, int))
    with pytest.raises(ValueError, match="no labelled"):
        fit_decision_bias(np.zeros((3, 5)), -np.ones(3, int))


def test_ensemble_adds_the_offsets_to_the_mean_log_probabilities() -> None:
    torch.manual_seed(0)
    net = HybridEnsemble(n_leads=2, window_len=32, n_rr=3, n_members=2, **TINY).eval()
    w, r = torch.randn(4, 3, 2, 32), torch.randn(4, 3, 3)
    members = torch.stack([torch.log_softmax(m(w, r), 1) for m in net.members]).mean(0)
    torch.testing.assert_close(net(w, r), members)
    net.set_decision_bias(np.array([0, 2.0, 0, 0, 0]))
    torch.testing.assert_close(net(w, r), members + torch.tensor([0, 2.0, 0, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        net.set_decision_bias(np.zeros(3))


def test_crossfit_trains_members_calibrates_out_of_fold_and_round_trips(tmp_path) -> None:
    train = synthetic_beats(30, ("a", "b", "c", "d"), seed=5)
    val = synthetic_beats(30, ("e", "f"), seed=6)
    cfg = TrainConfig(max_epochs=4, patience=4, batch_size=32, num_threads=1)
    model = get_model("hybrid_ensemble", train=cfg, n_members=3, **TINY)
    assert isinstance(model, CrossFitHybridClassifier)
    model.fit(train, val, run_dir=tmp_path / "run", seed=0)
    res = model.result
    assert sorted(r for f in res.folds for r in f) == list("abcdef")
    assert len(res.members) == 3 and res.calibration is not None
    assert res.oof_macro_f1_after >= res.oof_macro_f1_before
    info = json.loads((tmp_path / "run" / "crossfit.json").read_text())
    assert info["calibration"]["bias"] == pytest.approx(res.calibration.bias.tolist())
    assert (tmp_path / "run" / "member_2" / "history.json").is_file()
    net = model.net
    assert isinstance(net, HybridEnsemble)
    np.testing.assert_allclose(net.decision_bias.numpy(), res.calibration.bias)
    proba = model.predict_proba(val)
    assert proba.shape == (len(val), 5)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    # members differ (own folds, own seeds)
    p0 = next(iter(net.members[0].parameters()))
    p1 = next(iter(net.members[1].parameters()))
    assert not torch.equal(p0, p1)
    model.save(tmp_path / "saved")
    again = TorchBeatClassifier.load(tmp_path / "saved")
    np.testing.assert_allclose(again.predict_proba(val), proba, atol=1e-6)


def test_crossfit_needs_two_members() -> None:
    model = get_model("hybrid_ensemble", n_members=1, **TINY)
    with pytest.raises(ValueError, match="n_members >= 2"):
        model.fit(synthetic_beats(10, ("a", "b")), synthetic_beats(10, ("c",)))
    with pytest.raises(ValueError, match="unknown parameter"):
        get_model("hybrid_ensemble", n_member=3)


def test_crossfit_is_reproducible_whatever_ran_before() -> None:
    # the global torch RNG state before fit (here: other draws) must not reach the members
    train = synthetic_beats(20, ("a", "b", "c", "d"), seed=5)
    val = synthetic_beats(20, ("e", "f"), seed=6)
    cfg = TrainConfig(max_epochs=1, patience=1, batch_size=64, num_threads=1)
    probas = []
    for prior_draws in (0, 7):
        torch.rand(prior_draws)
        model = get_model("hybrid_ensemble", train=cfg, n_members=2, calibrate=False, **TINY)
        model.fit(train, val, seed=3)
        probas.append(model.predict_proba(val))
        members = model.net.members
        # each member draws its own attention vector from its own seed
        assert not torch.equal(members[0].att_vec, members[1].att_vec)
    np.testing.assert_array_equal(probas[0], probas[1])
