"""Rhythm arrays, training loop, prediction, metrics and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.edge.rhythm import OnnxRhythmClassifier
from heartline.models.rhythm import build_rhythm_model
from heartline.training.rhythm import (
    RhythmArrays,
    RhythmFitConfig,
    build_rhythm_arrays,
    cinc_f1,
    class_weights,
    export_rhythm_onnx,
    fit_rhythm,
    predict_rhythm_proba,
    rhythm_metrics,
    window_batches,
)


def _arrays(n: int = 24, seed: int = 0) -> RhythmArrays:
    """Synthetic arrays whose class is written in the signal and the RR features."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    lengths = rng.integers(900, 4500, size=n)
    signals = np.zeros((n, 4500), dtype=np.float32)
    t = np.arange(4500) / 100.0
    for i in range(n):
        signals[i, : lengths[i]] = np.sin(2 * np.pi * (1 + y[i]) * t[: lengths[i]])
    rr = (rng.standard_normal((n, 6)) + y[:, None]).astype(np.float32)
    return RhythmArrays(
        np.asarray([f"r{i}" for i in range(n)]), y.astype(np.int64), signals, lengths, rr, 100.0
    )


def test_cinc_f1_is_the_mean_of_n_a_o():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert cinc_f1(y, y) == 1.0
    # all noise predicted as N: F1_~ is not part of the score
    pred = np.array([0, 0, 1, 1, 2, 2, 0, 0])
    assert cinc_f1(y, pred) == pytest.approx((2 * 2 / (2 + 4) + 1 + 1) / 3)


def test_metrics_confusion_and_bootstrap():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=400)
    proba = np.eye(4)[np.where(rng.random(400) < 0.8, y, rng.integers(0, 4, size=400))]
    m = rhythm_metrics(y, proba, n_bootstrap=200)
    assert m.confusion_matrix.sum() == 400
    lo, hi = m.ci95["cinc_f1"]
    assert lo < m.cinc_f1 < hi and hi - lo < 0.2
    d = m.to_dict()
    assert d["classes"]["A"]["support"] == int((y == 1).sum())
    with pytest.raises(ValueError, match="shape"):
        rhythm_metrics(y, proba[:, :3])


def test_class_weights_favour_rare_classes():
    w = class_weights(np.array([0] * 90 + [1] * 10 + [3] * 5), 1.0)
    assert w[1] > w[0] and w[3] > w[1] and w[2] == 1.0


def test_window_batches_cover_long_records_and_pad_short_ones():
    a = _arrays()
    x, m, rr, owner = window_batches(a, window_s=30.0, stride_s=15.0)
    assert x.shape[1] == 3000 and m.shape == x.shape and rr.shape[0] == x.shape[0]
    for i in range(len(a)):
        n_win = int((owner == i).sum())
        assert n_win == (1 if a.lengths[i] <= 3000 else 2)
        first = np.flatnonzero(owner == i)[0]
        assert m[first].sum() == min(3000, a.lengths[i])


def test_fit_learns_a_separable_task_and_keeps_the_best_epoch():
    torch.manual_seed(0)
    a = _arrays(48)
    tr, va = a.subset(np.arange(32)), a.subset(np.arange(32, 48))
    net = build_rhythm_model("hybrid", n_rr=6, channels=(4, 8, 8, 8, 8), hidden=8)
    net, hist = fit_rhythm(
        net, tr, va, RhythmFitConfig(epochs=8, batch_size=8, lr=1e-2, patience=8)
    )
    assert [h["epoch"] for h in hist] == list(range(1, 9))
    best = max(h["val_cinc_f1"] for h in hist)
    p = predict_rhythm_proba(net, va)
    assert p.shape == (16, 4)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert cinc_f1(va.y, p.argmax(1)) == pytest.approx(best)
    assert best > 0.6
    torch.testing.assert_close(net.rr_mean, torch.from_numpy(tr.rr.mean(0)))


def test_fit_refuses_unlabelled_training_data():
    a = _arrays(8)
    bad = RhythmArrays(a.records, np.full(8, -1), a.signals, a.lengths, a.rr, 100.0)
    with pytest.raises(ValueError, match="labelled"):
        fit_rhythm(build_rhythm_model("lstm"), bad, None, RhythmFitConfig(epochs=1))


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(0)
    a = _arrays(6)
    net = build_rhythm_model("hybrid", n_rr=6, channels=(4, 8, 8, 8, 8), hidden=8).eval()
    net.set_rr_scaler(torch.ones(6), torch.full((6,), 2.0))
    path = export_rhythm_onnx(net, tmp_path / "r.onnx", name="hybrid", window_s=30.0)
    clf = OnnxRhythmClassifier(path)
    assert clf.fs_hz == 100.0 and clf.window_len == 3000 and clf.n_rr == 6
    x, m, rr, _ = window_batches(a)
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(rr)), 1)
    np.testing.assert_allclose(clf.predict_windows(x, m, rr), ref.numpy(), atol=1e-5)


def test_arrays_from_real_records_are_cached(cinc_dir, tmp_path):
    import pandas as pd

    from heartline.features.rhythm import RR_FEATURE_NAMES

    index = pd.DataFrame({"record": ["A00002", "A00004", "A00003"], "label": ["N", "A", "N"]})
    a = build_rhythm_arrays(index, data_dir=cinc_dir.parent, fs_hz=100.0, cache_dir=tmp_path)
    assert a.y.tolist() == [0, 1, 0]
    assert a.lengths.tolist() == [3000, 3000, 6000]  # 30 s, 30 s, 60 s at 100 Hz
    assert a.rr.shape == (3, len(RR_FEATURE_NAMES)) and np.isfinite(a.rr).all()
    assert len(list(tmp_path.glob("cinc2017_*.npz"))) == 1
    b = build_rhythm_arrays(index, data_dir=cinc_dir.parent, fs_hz=100.0, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.signals, b.signals)
