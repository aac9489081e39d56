"""The stacked rhythm model: boosted head as ONNX TreeEnsemble, one-graph export, shipped card."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import numpy as np
import pytest

from heartline.edge.rhythm import OnnxRhythmClassifier, shipped_rhythm_model_path

from .conftest import synthetic_ecg


@pytest.fixture(scope="module")
def real_features(cinc_dir) -> tuple[np.ndarray, np.ndarray]:
    """The 54 hand features and labels of 160 real CinC 2017 records (every class)."""
    from heartline.data.cinc2017 import load_cinc2017_index, read_cinc2017
    from heartline.features.rhythm import rhythm_hand_features

    index = load_cinc2017_index(data_dir=cinc_dir.parent)
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [
            rng.choice(np.flatnonzero(index["label"].to_numpy() == c), size=40, replace=False)
            for c in ("N", "A", "O", "~")
        ]
    )
    feats, labels = [], []
    for i in rows:
        x, fs = read_cinc2017(index["record"].iloc[i], data_dir=cinc_dir.parent)
        feats.append(rhythm_hand_features(x, fs=fs))
        labels.append("NAO~".index(index["label"].iloc[i]))
    return np.asarray(feats, dtype=np.float64), np.asarray(labels)


def _session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("n_classes", [4, 2])
def test_boosted_head_onnx_matches_sklearn_on_real_features(real_features, n_classes):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from heartline.training.gbm_onnx import hgb_classifier_onnx

    x, y = real_features
    y = y if n_classes == 4 else (y == 1).astype(int)
    fit, held = np.arange(0, x.shape[0], 2), np.arange(1, x.shape[0], 2)
    xf = x[fit].copy()
    xf[::9, 3] = np.nan  # missing values: each node's learnt NaN direction must be kept
    gbm = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=0)
    gbm.fit(xf, y[fit])
    sess = _session(hgb_classifier_onnx(gbm, x.shape[1]))
    xt = x[held].copy()
    xt[::5, 3] = np.nan
    xt[::7, 10] = np.nan
    for data in (xf, xt, x[held]):
        got = sess.run(None, {"x": data})[0]
        ref = gbm.predict_proba(data)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        assert np.array_equal(got.argmax(1), ref.argmax(1))


@pytest.fixture(scope="module")
def tiny_stacked(tmp_path_factory, real_features):
    """Two tiny untrained hand-feature networks + a head fitted on real features, exported."""
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier

    from heartline.features.rhythm import HAND_FEATURE_NAMES
    from heartline.models.rhythm import build_rhythm_model
    from heartline.training.rhythm import export_rhythm_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = len(HAND_FEATURE_NAMES)
    x, y = real_features
    nets = []
    for _ in range(2):
        net = build_rhythm_model("hybrid", n_rr=n, channels=(4, 8, 8, 8, 8), hidden=8)
        net.set_rr_scaler(
            torch.from_numpy(np.nanmean(x, 0)).float(),
            torch.from_numpy(np.nanstd(x, 0) + 1e-3).float(),
        )
        nets.append(net.eval())
    rng = np.random.default_rng(1)
    logp = np.log(rng.dirichlet(np.ones(4), size=x.shape[0]) + 1e-6)
    head = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    head.fit(np.hstack([x, logp]), y)
    base = tmp_path_factory.getbasetemp() / "tiny_stacked.onnx"
    with open(base.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not base.exists():
            tmp = base.with_suffix(".tmp.onnx")
            export_rhythm_onnx(nets, tmp, name="stacked_hybrid", head=head)
            tmp.rename(base)
    return base, nets, head


def _reference(nets, head, xs, ms, rrs):
    """PyTorch networks + scikit-learn head, as the cross-validation scored a record."""
    import torch

    with torch.no_grad():
        p = sum(
            torch.softmax(net(torch.from_numpy(xs), torch.from_numpy(ms), torch.from_numpy(rrs)), 1)
            .numpy()
            .astype(np.float64)
            for net in nets
        ) / len(nets)
    rr = rrs.astype(np.float64)
    per_window = head.predict_proba(np.hstack([rr, np.log(p + 1e-6)]))
    record = head.predict_proba(np.hstack([rr[:1], np.log(p.mean(0, keepdims=True) + 1e-6)]))
    return per_window, record[0]


def test_stacked_export_matches_torch_and_sklearn(tiny_stacked):
    path, nets, head = tiny_stacked
    clf = OnnxRhythmClassifier(path)
    assert clf.stacked and clf.n_rr == 54
    for seed, dur in ((1, 40.0), (2, 20.0), (3, 61.0)):
        x = synthetic_ecg(dur, fs=300.0, af=seed % 2 == 1, seed=seed)
        prepared = clf.prepare(x, fs=300.0)
        assert not isinstance(prepared, str)
        xs, ms, rrs, _ = prepared
        per_window, record = _reference(nets, head, xs, ms, rrs)
        np.testing.assert_allclose(clf.predict_windows(xs, ms, rrs), per_window, atol=1e-5)
        np.testing.assert_allclose(clf.predict_record(xs, ms, rrs), record, atol=1e-5)
        res = clf.classify(x, fs=300.0)
        assert res.usable and res.n_windows == xs.shape[0]
        np.testing.assert_allclose([res.p_N, res.p_A, res.p_O, res.p_noisy], record, atol=1e-5)
        if xs.shape[0] == 1:  # one window (the stream's case): per window == per record
            np.testing.assert_allclose(clf.predict_windows(xs, ms, rrs)[0], record, atol=1e-12)


@pytest.mark.parametrize(
    ("make", "fs", "match"),
    [
        (lambda: synthetic_ecg(5, fs=300.0, af=False), 300.0, "needs at least 9 s"),
        (lambda: np.zeros(9000), 300.0, "flat"),
        (lambda: np.full(9000, np.nan), 300.0, "only NaN"),
        (lambda: 0.01 * np.random.default_rng(0).standard_normal(9000), 300.0, "heartbeat"),
    ],
)
def test_stacked_model_bad_input_is_tilde_with_a_message(tiny_stacked, make, fs, match):
    clf = OnnxRhythmClassifier(tiny_stacked[0])
    res = clf.classify(make(), fs=fs)
    assert not res.usable and res.label == "~" and res.p_noisy == 1.0
    assert match in res.message


def test_stacked_model_long_nan_run_is_unusable(tiny_stacked):
    clf = OnnxRhythmClassifier(tiny_stacked[0])
    x = synthetic_ecg(30, fs=300.0, af=False)
    x[3000:3600] = np.nan
    res = clf.classify(x, fs=300.0)
    assert not res.usable and res.label == "~" and "NaN" in res.message


def test_a_file_that_is_no_rhythm_model_fails_loudly(tmp_path, real_features):
    import onnx
    from sklearn.ensemble import HistGradientBoostingClassifier

    from heartline.training.gbm_onnx import hgb_classifier_onnx

    x, y = real_features
    gbm = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
    path = tmp_path / "head_only.onnx"
    onnx.save(hgb_classifier_onnx(gbm, x.shape[1]), str(path))
    with pytest.raises(ValueError, match="not a Heartline rhythm model"):
        OnnxRhythmClassifier(path)


def test_an_unknown_head_fails_loudly(tmp_path, tiny_stacked):
    import onnx

    m = onnx.load(str(tiny_stacked[0]))
    for e in m.metadata_props:
        if e.key == "heartline.head":
            e.value = "mlp"
    path = tmp_path / "odd_head.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ValueError, match="head 'mlp'"):
        OnnxRhythmClassifier(path)


# ------------------------------------------------------------------------------ shipped model
SHIPPED_JSON = shipped_rhythm_model_path().with_suffix(".json")


def _shipped_report() -> dict:
    return json.loads(Path(SHIPPED_JSON).read_text(encoding="utf-8"))


def test_shipped_model_is_the_stacked_hybrid():
    clf = OnnxRhythmClassifier()
    r = _shipped_report()
    assert clf.stacked and r["model"] == "stacked_hybrid"
    assert clf.n_rr == 54 and r["n_networks"] == 2
    assert r["onnx_reference_max_abs_diff"] <= 1e-5
    assert r["head_onnx_sklearn_max_abs_diff"] <= 1e-5


def test_shipped_card_figures_recompute_from_its_test_predictions(cinc_dir):
    """The card's 20 % test figures come from the stored ONNX test probabilities, whose labels
    are the REFERENCE-v3 labels of the cinc2017_holdout(0.2, seed) test records."""
    from heartline.data.cinc2017 import cinc2017_holdout, load_cinc2017_index
    from heartline.training.rhythm import rhythm_metrics

    r = _shipped_report()
    tp = r["test_predictions"]
    index = load_cinc2017_index(data_dir=cinc_dir.parent)
    test = cinc2017_holdout(index["label"], test_fraction=0.2, seed=tp["seed"])
    assert tp["records"] == [str(v) for v in index["record"][test]]
    y = np.asarray(["NAO~".index(v) for v in index["label"][test]])
    assert y.tolist() == tp["y"]
    m = rhythm_metrics(
        y, np.asarray(tp["proba"]), n_bootstrap=tp["n_bootstrap"], seed=tp["seed"]
    ).to_dict()
    shipped = r["test_metrics_onnx"]
    assert m["cinc_f1"] == pytest.approx(shipped["cinc_f1"], abs=1e-12)
    assert m["confusion_matrix"] == shipped["confusion_matrix"]
    assert m["ci95"]["cinc_f1"] == pytest.approx(shipped["ci95"]["cinc_f1"], abs=1e-12)
    card = shipped_rhythm_model_path().with_suffix(".md").read_text(encoding="utf-8")
    ci = shipped["ci95"]["cinc_f1"]
    assert f"{shipped['cinc_f1']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" in card
    assert "| A | " + " | ".join(str(v) for v in shipped["confusion_matrix"][1]) + " |" in card


@pytest.mark.slow
def test_shipped_model_reproduces_its_test_probabilities_from_raw_records(cinc_dir):
    """The torch-free path (read, filter, detector, features, ONNX) on raw test records gives
    the probabilities the card was computed from."""
    import heartline
    from heartline.data.cinc2017 import read_cinc2017

    tp = _shipped_report()["test_predictions"]
    for i in range(0, len(tp["records"]), 111):  # 10 records spread over the test split
        x, fs = read_cinc2017(tp["records"][i], data_dir=cinc_dir.parent)
        res = heartline.classify_rhythm(x, fs=fs)
        got = [res.p_N, res.p_A, res.p_O, res.p_noisy]
        np.testing.assert_allclose(got, tp["proba"][i], atol=1e-5)
