"""Shipping the stacked multimodal hybrid: same protocol as the benchmark, ONNX = torch + sklearn."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from heartline.training.gbm_onnx import hgb_binary_heads_onnx, hgb_classifier_onnx


def _session(model) -> ort.InferenceSession:  # type: ignore[no-untyped-def]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _binary_hgb(seed: int, n_features: int = 7):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, n_features))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(size=400) > 0.3).astype(int)
    x[rng.random(x.shape) < 0.15] = np.nan  # missing values take the learnt branch
    clf = HistGradientBoostingClassifier(
        max_iter=60, max_leaf_nodes=15, min_samples_leaf=10, max_features=0.5, random_state=seed
    ).fit(x, y)
    return clf, x


def test_binary_tree_ensemble_matches_predict_proba() -> None:
    clf, x = _binary_hgb(0)
    assert clf.n_trees_per_iteration_ == 1  # the binary case: one tree per iteration, sigmoid
    p = _session(hgb_classifier_onnx(clf, x.shape[1])).run(None, {"x": x})[0]
    np.testing.assert_allclose(p, clf.predict_proba(x), rtol=0, atol=1e-12)


def test_binary_heads_graph_matches_each_head() -> None:
    heads = [_binary_hgb(s)[0] for s in range(3)]
    x = _binary_hgb(9)[1]
    p = _session(hgb_binary_heads_onnx(heads, x.shape[1])).run(None, {"x": x})[0]
    want = np.stack([h.predict_proba(x)[:, 1] for h in heads], axis=1)
    assert p.shape == (len(x), 3)
    np.testing.assert_allclose(p, want, rtol=0, atol=1e-12)


def test_binary_heads_refuse_a_multiclass_model_or_other_width() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    multi = HistGradientBoostingClassifier(max_iter=5).fit(x, np.arange(90) % 3)
    with pytest.raises(ValueError, match="not a binary"):
        hgb_binary_heads_onnx([multi], 4)
    with pytest.raises(ValueError, match="takes 7 inputs, not 4"):
        hgb_binary_heads_onnx([_binary_hgb(0)[0]], 4)


def _toy(n: int = 40, t: int = 300, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    sf = np.tile(np.arange(1, 11), n // 10 + 1)[:n]
    y = (rng.random((n, 5)) < 0.4).astype(np.int64)
    y[:5] = np.eye(5, dtype=np.int64)  # every class present
    ecg = rng.normal(size=(n, 12, t)).astype(np.float32)
    meta = rng.normal(size=(n, 11)).astype(np.float32)
    feats = rng.normal(size=(n, 20)).astype(np.float32)
    meta_values = rng.normal(size=(n, 5)).astype(np.float32)
    age_z = rng.normal(size=n)
    return sf, y, ecg, meta, feats, meta_values, age_z


def test_fit_stacked_hybrid_is_the_benchmarks_stacked_model() -> None:
    """Same inner folds, seeds and order: the benchmark's validation/test probabilities, exactly."""
    from heartline.bench.multimodal import _stacked_hybrid
    from heartline.data.splits import inner_fold_plan
    from heartline.edge.multimodal import head_inputs
    from heartline.models.multimodal import MultimodalConfig
    from heartline.training.multimodal import EcgScaler, MetaScaler, TrainSettings, predict_gbm
    from heartline.training.multimodal_ship import fit_stacked_hybrid

    torch.set_num_threads(1)
    sf, y, ecg, meta, feats, mv, age_z = _toy()
    tr, va, te = sf <= 8, sf == 9, sf == 10
    inner = inner_fold_plan(sf, tr, n_inner=2)
    cfg = MultimodalConfig(fusion="attention")
    settings = TrainSettings(epochs=2, patience=1, augment=True, class_weight=True, crop_s=1.0)
    kw = dict(inner=inner, y=y, age_z=age_z, net_config=cfg, settings=settings, fs=100.0, seed=3)
    pv, pt, w_te, _ = _stacked_hybrid(
        fusion="attention", head_meta=True, tr=tr, va=va, te=te, ecg=ecg, meta=meta,
        feats=feats, meta_values=mv, **kw,
    )  # fmt: skip
    dummy = EcgScaler(mean=np.zeros(12, np.float32), std=np.ones(12, np.float32))
    model = fit_stacked_hybrid(
        ecg_z=ecg, meta_in=meta, feats=feats, meta_values=mv, val_rows=np.flatnonzero(va),
        ecg_scaler=dummy, meta_scaler=MetaScaler(mean=np.zeros(5), std=np.ones(5)), **kw,
    )  # fmt: skip
    for rows, want in ((va, pv), (te, pt)):
        p_net, _ = model.predict_networks(ecg[rows], meta[rows])
        got = predict_gbm(model.heads, head_inputs(p_net, feats[rows], mv[rows]))
        np.testing.assert_array_equal(got, want)
    # the benchmark sums the attention in float32, the recipe in float64
    np.testing.assert_allclose(model.predict_networks(ecg[te], meta[te])[1], w_te, atol=1e-6)


def test_fit_stacked_hybrid_refuses_validation_rows_in_an_inner_fold() -> None:
    from heartline.data.splits import inner_fold_plan
    from heartline.training.multimodal_ship import fit_stacked_hybrid

    sf, y, ecg, meta, feats, mv, age_z = _toy()
    with pytest.raises(ValueError, match="validation rows"):
        fit_stacked_hybrid(
            ecg_z=ecg, meta_in=meta, feats=feats, meta_values=mv, y=y, age_z=age_z,
            inner=inner_fold_plan(sf, sf <= 9, n_inner=2), val_rows=np.flatnonzero(sf == 9),
            fs=100.0, settings=None, net_config=None, seed=0, ecg_scaler=None, meta_scaler=None,
        )  # type: ignore[arg-type]  # fmt: skip


# -- a small real ship: 120 PTB-XL records, 1 epoch --------------------------------------------
@pytest.fixture(scope="module")
def shipped_small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from heartline.training.multimodal_ship import ShipMultimodalConfig, ship_multimodal

    if not (data_dir / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip(f"PTB-XL not found in {data_dir}")
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("mm_ship")
    cfg = ShipMultimodalConfig(
        max_records=120, epochs=1, patience=None, n_boot=20, data_dir=str(data_dir)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ship_multimodal(out, cfg, command="pytest")
    return out, spec, data_dir


def test_ship_writes_artefacts_with_a_content_version(shipped_small) -> None:  # type: ignore[no-untyped-def]
    from heartline.edge.multimodal import model_version

    out, spec, _ = shipped_small
    names = {p.name for p in out.iterdir()}
    assert {
        "multimodal.json",
        "multimodal_net0.onnx",
        "multimodal_net1.onnx",
        "multimodal_head.onnx",
        "MODEL_CARD_multimodal.md",
    } <= names
    on_disk = json.loads((out / "multimodal.json").read_text())
    assert on_disk["version"] == spec["version"] == model_version(out, on_disk)
    assert on_disk["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert on_disk["protocol"]["train_folds"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (on_disk["protocol"]["val_fold"], on_disk["protocol"]["test_fold"]) == (9, 10)
    groups = on_disk["protocol"]["inner_groups"]
    assert sorted(f for g in groups for f in g) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(on_disk["head"]["inputs"]) == 280 and on_disk["input_samples"] == 1000
    assert set(on_disk["test"]) >= {"macro_auc", "macro_auc_ci95", "per_class"}
    assert on_disk["command"] == "pytest" and on_disk["commit"]
    card = (out / "MODEL_CARD_multimodal.md").read_text()
    assert "Not a medical device" in card and on_disk["version"] in card


def test_scalers_are_fitted_on_the_training_folds_only(shipped_small) -> None:  # type: ignore[no-untyped-def]
    from heartline.data.ptbxl import load_ptbxl
    from heartline.training.multimodal import EcgScaler, MetaScaler

    _, spec, data_dir = shipped_small
    d = load_ptbxl(max_records=120, data_dir=data_dir).labelled()
    tr = d.strat_fold <= 8
    es, ms = EcgScaler.fit(d.signals[tr]), MetaScaler.fit(d.metadata.take(tr))
    np.testing.assert_array_equal(np.float32(spec["ecg_scaler"]["mean"]), es.mean)
    np.testing.assert_array_equal(np.float32(spec["metadata"]["mean"]), ms.mean)
    np.testing.assert_array_equal(np.float32(spec["metadata"]["std"]), ms.std)
    assert spec["protocol"]["records"]["train"] == int(tr.sum())


def test_onnx_run_time_equals_torch_and_sklearn(shipped_small) -> None:  # type: ignore[no-untyped-def]
    """Checked inside the recipe on the fold-10 records (MultimodalModel vs torch + sklearn)."""
    _, spec, _ = shipped_small
    chk = spec["onnx_check"]
    assert chk["records"] == spec["test"]["records"] > 0
    assert chk["max_abs_diff_proba"] < 1e-4
    assert chk["max_abs_diff_modality_weights"] < 1e-4


def test_diagnose_a_record_file_equals_the_batch_path(shipped_small) -> None:  # type: ignore[no-untyped-def]
    """Reading the WFDB file, reordering shuffled leads and the PTB-XL metadata mapping give the
    same probabilities as the arrays the model was scored on."""
    import heartline
    from heartline.data.ptbxl import load_ptbxl, ptbxl_record_metadata
    from heartline.edge.multimodal import MultimodalModel

    out, _, data_dir = shipped_small
    model = MultimodalModel(out)
    d = load_ptbxl(max_records=6, data_dir=data_dir)
    p_batch, w_batch = model.predict_batch(
        d.signals, d.metadata.values, d.metadata.present, d.metadata.age_over_89
    )
    order = np.random.default_rng(0).permutation(12)
    for i, ecg_id in enumerate(d.ecg_ids):
        path = data_dir / "ptbxl" / "records100" / "00000" / f"{ecg_id:05d}_lr"
        rec = heartline.read_record(path)
        found = ptbxl_record_metadata(path)
        assert found is not None and found["ecg_id"] == ecg_id
        meta = {k: found[k] for k in ("age", "sex", "height", "weight") if found[k] is not None}
        dx = model.diagnose(
            rec.signal[:, order],
            fs=rec.fs,
            lead_names=[rec.lead_names[j] for j in order],
            metadata=meta,
        )
        got = np.array([dx.probabilities[c] for c in model.classes])
        np.testing.assert_allclose(got, p_batch[i], rtol=0, atol=1e-6)
        assert dx.modality_weights is not None
        assert abs(dx.modality_weights["ecg"] - w_batch[i, 0]) < 1e-6
