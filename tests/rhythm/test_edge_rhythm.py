"""Torch-free rhythm classification: bad input gets '~' and a message, never an exception."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.edge.rhythm import OnnxRhythmClassifier, RhythmResult

from .conftest import synthetic_ecg


@pytest.fixture(scope="module")
def clf(tiny_rhythm_onnx):
    return OnnxRhythmClassifier(tiny_rhythm_onnx)


def test_good_record_gets_probabilities_at_any_rate(clf):
    for fs in (125.0, 300.0, 500.0):
        res = clf.classify(synthetic_ecg(40, fs=fs, af=True), fs=fs)
        assert res.usable and res.message == ""
        p = [res.p_N, res.p_A, res.p_O, res.p_noisy]
        assert sum(p) == pytest.approx(1.0, abs=1e-5)
        assert res.label == "NAO~"[int(np.argmax(p))]
        assert res.n_windows == 2 and res.duration_s == pytest.approx(40.0, abs=0.01)


@pytest.mark.parametrize(
    ("make", "fs", "match"),
    [
        (lambda: synthetic_ecg(5, fs=300.0, af=False), 300.0, "needs at least 9 s"),
        (lambda: np.zeros(9000), 300.0, "flat"),
        (lambda: np.full(9000, 2.5), 300.0, "flat"),
        (lambda: synthetic_ecg(30, fs=90.0, af=False), 90.0, "below the 100 Hz"),
        (lambda: np.clip(synthetic_ecg(30, fs=300.0, af=False), -0.02, 0.02), 300.0, "clipped"),
        (lambda: np.full(9000, np.nan), 300.0, "only NaN"),
        (lambda: np.ones((9000, 2)), 300.0, "one lead"),
        (lambda: synthetic_ecg(30, fs=300.0, af=False), float("nan"), "fs must be"),
        (lambda: synthetic_ecg(30, fs=300.0, af=False), "fast", "fs must be"),
        (lambda: 0.01 * np.random.default_rng(0).standard_normal(9000), 300.0, "heartbeat"),
    ],
)
def test_unusable_input_is_tilde_with_a_message(clf, make, fs, match):
    res = clf.classify(make(), fs=fs)
    assert isinstance(res, RhythmResult)
    assert not res.usable and res.label == "~" and res.p_noisy == 1.0
    assert match in res.message


def test_long_nan_run_is_unusable_but_a_short_one_is_filled(clf):
    x = synthetic_ecg(30, fs=300.0, af=False)
    y = x.copy()
    y[3000:3600] = np.nan  # 2 s
    assert "NaN" in clf.classify(y, fs=300.0).message
    z = x.copy()
    z[3000:3030] = np.nan  # 0.1 s
    res = clf.classify(z, fs=300.0)
    assert res.usable and "filled 30 NaN" in res.message


def test_microvolts_are_rescaled(clf):
    x = synthetic_ecg(30, fs=300.0, af=False)
    a = clf.classify(x, fs=300.0)
    b = clf.classify(1000.0 * x, fs=300.0)
    assert "µV" in b.message
    assert b.p_N == pytest.approx(a.p_N, abs=1e-4)


def test_top_level_api_takes_a_model_path(tiny_rhythm_onnx):
    import heartline

    res = heartline.classify_rhythm(
        synthetic_ecg(20, fs=250.0, af=False), fs=250.0, model_path=tiny_rhythm_onnx
    )
    assert res.usable and res.n_windows == 1


def test_missing_model_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="rhythm-ship"):
        OnnxRhythmClassifier(tmp_path / "none.onnx")


def test_runtime_imports_no_torch_models_or_training():
    import subprocess
    import sys

    code = (
        "import sys, heartline.edge.rhythm, heartline.features.rhythm; "
        "bad = [m for m in ('torch', 'heartline.models', 'heartline.training') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_hand_feature_model_gets_the_hand_features_and_matches_torch(tmp_path):
    """A hybrid fused with the whole hand-feature vector: the run time computes the same 54
    features as training (read from the ONNX feature count) and ONNX matches PyTorch."""
    import torch

    from heartline.features.rhythm import HAND_FEATURE_NAMES, rhythm_hand_features
    from heartline.models.rhythm import build_rhythm_model
    from heartline.training.rhythm import export_rhythm_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = len(HAND_FEATURE_NAMES)
    net = build_rhythm_model("hybrid", n_rr=n, channels=(4, 8, 8, 8, 8), hidden=8)
    net.set_rr_scaler(torch.zeros(n), torch.ones(n))
    net.eval()
    path = export_rhythm_onnx(net, tmp_path / "hand.onnx", name="hybrid")
    clf = OnnxRhythmClassifier(path)
    assert clf.n_rr == n
    x = synthetic_ecg(30, fs=300.0, af=True, seed=2)
    prepared = clf.prepare(x, fs=300.0)
    assert not isinstance(prepared, str)
    xs, ms, rrs, _note = prepared
    np.testing.assert_allclose(rrs[0], rhythm_hand_features(x, fs=300.0), rtol=1e-6)
    with torch.no_grad():
        ref = torch.softmax(
            net(torch.from_numpy(xs), torch.from_numpy(ms), torch.from_numpy(rrs)), dim=1
        ).numpy()
    np.testing.assert_allclose(clf.predict_windows(xs, ms, rrs), ref, atol=1e-5)
    res = clf.classify(x, fs=300.0)
    assert res.usable and res.label in "NAO~"
    # the live path (incremental input) hands such a model the same 54 features
    from heartline.edge.rhythm import RhythmStream

    stream = RhythmStream(clf, fs=300.0)
    stream.push(x)
    live = stream.window()
    assert not isinstance(live, str)
    assert live[2].shape == rrs.shape
    # peaks the streaming detector has not confirmed at the window's end may differ slightly
    np.testing.assert_allclose(live[2][0], rrs[0], rtol=0.1, atol=0.05)
