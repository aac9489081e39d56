"""Multimodal hybrid: shapes, fusion weights, masks, learning, and the benchmark's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heartline.bench.multimodal import MultimodalBenchConfig, fold_plan, run_multimodal_bench
from heartline.data.ptbxl import PtbxlMetadata
from heartline.models.multimodal import N_META_INPUTS, MultimodalConfig, MultimodalNet, ResNet1d
from heartline.training.multimodal import (
    MetaScaler,
    TrainSettings,
    augment_crops,
    best_f1_thresholds,
    macro_auc,
    predict,
    train_network,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("fusion", ["attention", "concat", "ecg", "meta"])
def test_forward_shapes_and_modality_weights(fusion: str) -> None:
    torch.manual_seed(0)
    net = MultimodalNet(
        MultimodalConfig(fusion=fusion, age_head=fusion in ("attention", "ecg"))
    ).eval()
    out = net(torch.randn(3, 12, 250), torch.randn(3, N_META_INPUTS))
    assert out.logits.shape == (3, 5)
    assert torch.allclose(out.modality_weights.sum(1), torch.ones(3))
    assert (out.age is not None) == (fusion in ("attention", "ecg"))
    if fusion == "ecg":
        assert out.modality_weights[:, 1].abs().max() == 0
    # any length works (crops and whole records)
    assert net(torch.randn(2, 12, 1000), torch.randn(2, N_META_INPUTS)).logits.shape == (2, 5)


def test_attention_weights_depend_on_the_record() -> None:
    torch.manual_seed(0)
    net = MultimodalNet(MultimodalConfig(fusion="attention")).eval()
    w = net.modality_weights(torch.randn(8, 12, 250) * torch.linspace(0.1, 5, 8)[:, None, None],
                             torch.randn(8, N_META_INPUTS))  # fmt: skip
    assert w.shape == (8, 2) and float(w[:, 0].std()) > 0


def test_wrong_lead_count_and_meta_width_are_refused() -> None:
    net = MultimodalNet(MultimodalConfig(fusion="attention")).eval()
    with pytest.raises(ValueError, match="12 leads"):
        net(torch.randn(2, 8, 250), torch.randn(2, N_META_INPUTS))
    with pytest.raises(ValueError, match="meta must be"):
        net(torch.randn(2, 12, 250), torch.randn(2, 5))


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="unknown fusion"):
        MultimodalNet(MultimodalConfig(fusion="sum"))
    with pytest.raises(ValueError, match="age_head needs the ECG"):
        MultimodalNet(MultimodalConfig(fusion="meta", age_head=True))


def test_meta_scaler_masks_and_fit_on_present_values_only() -> None:
    values = np.array(
        [[50, 1, 170, 70, 24.2], [70, 0, np.nan, 90, np.nan], [np.nan, 1, 160, np.nan, np.nan]],
        np.float32,
    )
    meta = PtbxlMetadata(values=values, present=np.isfinite(values), age_over_89=np.array([False, True, False]),
                         device=("a", "b", "c"), site=np.array([0, 1, 2]))  # fmt: skip
    sc = MetaScaler.fit(meta)
    assert sc.mean[0] == pytest.approx(60) and sc.mean[2] == pytest.approx(165)
    x = sc.transform(meta)
    assert x.shape == (3, N_META_INPUTS) and np.isfinite(x).all()
    assert x[2, 0] == 0 and x[2, 5] == 0  # missing age: value 0 (training mean), mask 0
    assert x[0, 5] == 1 and x[1, 10] == 1  # mask and over-89 flag


def test_thresholds_and_macro_auc() -> None:
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    p = np.array([[0.9, 0.2], [0.2, 0.7], [0.6, 0.1], [0.3, 0.3]])
    assert macro_auc(y, p) == 1.0
    thr = best_f1_thresholds(y, p)
    assert ((p >= thr).astype(int) == y).all()


def test_hybrid_learns_a_signal_and_a_metadata_rule() -> None:
    """Class 0 = a 10 Hz burst in lead 3; class 1 = old age (metadata only): fused learns both."""
    rng = np.random.default_rng(0)
    n = 96
    ecg = rng.normal(0, 1, (n, 12, 500)).astype(np.float32)
    y = np.zeros((n, 2), np.int64)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.5
    t = np.arange(500) / 100
    ecg[y[:, 0] == 1, 3] += 2 * np.sin(2 * np.pi * 10 * t).astype(np.float32)
    meta = np.zeros((n, N_META_INPUTS), np.float32)
    meta[:, 0] = np.where(y[:, 1] == 1, 1.5, -1.5) + rng.normal(0, 0.3, n)
    meta[:, 5] = 1
    tr, va = slice(0, 64), slice(64, None)
    torch.manual_seed(0)
    net = MultimodalNet(MultimodalConfig(n_classes=2, fusion="attention", age_head=True))
    st = TrainSettings(epochs=12, lr=1e-2, crop_s=2.5, eval_stride_s=2.5)
    age = meta[:, 0].copy()
    net, info = train_network(net, train=(ecg[tr], meta[tr], y[tr], age[tr]), val=(ecg[va], meta[va], y[va]),
                              fs=100.0, settings=st)  # fmt: skip
    pred = predict(net, ecg[va], meta[va], fs=100.0, settings=st)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[va, 0], pred.probs[:, 0]) > 0.9
    assert roc_auc_score(y[va, 1], pred.probs[:, 1]) > 0.9
    assert pred.age_y is not None and pred.age_y.shape == (32,)
    assert 1 <= info["best_epoch"] <= 12


def test_early_stopping_on_the_validation_fold() -> None:
    """Labels unrelated to the input: the validation AUC stalls, training stops after patience."""
    rng = np.random.default_rng(1)
    n = 48
    ecg = rng.normal(0, 1, (n, 12, 300)).astype(np.float32)
    y = (rng.random((n, 2)) < 0.5).astype(np.int64)
    meta = np.zeros((n, N_META_INPUTS), np.float32)
    age = np.full(n, np.nan)
    st = TrainSettings(epochs=40, patience=3, crop_s=2.5, eval_stride_s=2.5, augment=True)
    torch.manual_seed(0)
    net = MultimodalNet(MultimodalConfig(n_classes=2, fusion="ecg", channels=8, lstm_hidden=8))
    _, info = train_network(net, train=(ecg[:32], meta[:32], y[:32], age[:32]),
                            val=(ecg[32:], meta[32:], y[32:]), fs=100.0, settings=st)  # fmt: skip
    assert info["epochs_run"] == info["best_epoch"] + 3 < 40
    assert len(info["history"]) == info["epochs_run"]
    best = max(h["val_macro_auc"] for h in info["history"])
    assert info["best_val_macro_auc"] == pytest.approx(best)
    # without patience every epoch runs
    st_all = TrainSettings(epochs=4, crop_s=2.5, eval_stride_s=2.5)
    _, info_all = train_network(net, train=(ecg[:32], meta[:32], y[:32], age[:32]),
                                val=(ecg[32:], meta[32:], y[32:]), fs=100.0, settings=st_all)  # fmt: skip
    assert info_all["epochs_run"] == 4


def test_augmentation_gain_and_noise() -> None:
    rng = np.random.default_rng(0)
    x = np.ones((64, 12, 50), np.float32)
    g = augment_crops(x, rng, settings=TrainSettings(augment=True, gain_range=0.1, noise_sd=0.0))
    assert g.dtype == np.float32 and g.shape == x.shape
    # one gain per record and lead, within 1 +- 0.1, not all equal
    assert np.allclose(g, g[:, :, :1]) and g.min() >= 0.9 and g.max() <= 1.1 and g.std() > 0.02
    z = np.zeros_like(x)
    nz = augment_crops(z, rng, settings=TrainSettings(augment=True, gain_range=0.0, noise_sd=0.05))
    assert nz.std() == pytest.approx(0.05, rel=0.05)
    assert (x == 1).all()  # the input is not modified


def test_bad_train_settings_are_named() -> None:
    with pytest.raises(ValueError, match="patience"):
        TrainSettings(patience=0)
    with pytest.raises(ValueError, match="epochs"):
        TrainSettings(epochs=0)
    with pytest.raises(ValueError, match="gain_range"):
        TrainSettings(gain_range=1.5)
    with pytest.raises(ValueError, match="noise_sd"):
        TrainSettings(noise_sd=-1.0)


def test_resnet_baseline_forward() -> None:
    out = ResNet1d()(torch.randn(2, 12, 250), torch.zeros(2, N_META_INPUTS))
    assert out.logits.shape == (2, 5) and out.age is None


def test_fold_plan_never_validates_on_the_test_fold() -> None:
    plan = fold_plan("cv10")
    assert sorted(t for t, _ in plan) == list(range(1, 11))
    assert all(t != v for t, v in plan)
    assert fold_plan("benchmark") == [(10, 9)]
    with pytest.raises(ValueError, match="unknown protocol"):
        fold_plan("loso")


def test_quick_bench_writes_report(tmp_path: Path, data_dir: Path) -> None:
    cfg = MultimodalBenchConfig(models=("naive", "meta_only", "ecg_only"), epochs=1, max_records=120,
                                folds=(1, 2), n_boot=20, data_dir=str(data_dir), hybrid_epochs=2,
                                hybrid_patience=1)  # fmt: skip
    rep = run_multimodal_bench(tmp_path, cfg, progress=False)
    js = json.loads((tmp_path / "multimodal.json").read_text())
    # the hybrid gets its own budget, the other networks the plain one
    assert js["settings"]["train"]["epochs"] == 1 and js["settings"]["train"]["augment"] is False
    hyb = js["settings"]["train_hybrid"]
    assert hyb["epochs"] == 2 and hyb["patience"] == 1 and hyb["augment"] is True
    assert js["settings"]["hybrid_models"] == ["ecg_only"]
    assert all(1 <= f["epochs_run"] <= 2 for f in js["models"]["ecg_only"]["folds"])
    assert all(f["epochs_run"] == 1 for f in js["models"]["meta_only"]["folds"])
    # the two budgets are cached under different keys
    keys = {p.name.split("_")[1] for p in (tmp_path / "cache").glob("fold_*.npz")}
    assert len(keys) == 2
    assert js["folds"] == 2 and js["records"] == rep["records"] > 100
    assert set(js["models"]) == {"naive", "meta_only", "ecg_only"}
    # a constant score per fold: AUC 0.5 within each fold (pooling folds with different
    # training priors moves the pooled value away from 0.5, which the report explains)
    # (fold 2 of the first 120 records holds only NORM records: no AUC there, NaN)
    folds = js["models"]["naive"]["fold_macro_auc"]
    assert folds[0] == pytest.approx(0.5) and all(
        f is None or np.isnan(f) or f == 0.5 for f in folds
    )
    for m in js["models"].values():
        assert 0 <= m["macro_auc"] <= 1 and len(m["fold_macro_auc"]) == 2
    assert (tmp_path / "multimodal.md").is_file() and (tmp_path / "roc_per_class.png").is_file()
    with pytest.raises(ValueError, match="unknown model"):
        run_multimodal_bench(tmp_path, MultimodalBenchConfig(models=("gpt",)), progress=False)


def test_feature_scaler_fits_on_training_values_and_flags_missing_records() -> None:
    from heartline.training.multimodal import FeatureScaler

    f = np.array([[1.0, 10.0], [3.0, 30.0], [np.nan, 20.0], [1e6, np.nan]], np.float32)
    sc = FeatureScaler.fit(f[:3])  # the fourth record is not a training record
    assert sc.mean[0] == pytest.approx(2.0) and sc.mean[1] == pytest.approx(20.0)
    z = sc.transform(f)
    assert z.shape == (4, 3) == (4, sc.n_outputs) and np.isfinite(z).all()
    assert z[0, 0] == pytest.approx(-1.0) and z[2, 0] == 0.0  # missing -> training mean
    assert z[:, 2].tolist() == [0.0, 0.0, 1.0, 1.0]  # the missing-features flag
    assert z[3, 0] == pytest.approx(sc.clip)  # extreme values clipped
    with pytest.raises(ValueError, match="features must be"):
        sc.transform(f[:, :1])


@pytest.mark.parametrize("fusion", ["attention_feat", "attention_ecg_feat", "feat"])
def test_feature_fusion_modes(fusion: str) -> None:
    torch.manual_seed(0)
    net = MultimodalNet(
        MultimodalConfig(fusion=fusion, n_features=7, aux_heads=fusion != "feat")
    ).eval()
    out = net(torch.randn(3, 12, 250), torch.randn(3, N_META_INPUTS), torch.randn(3, 7))
    assert out.logits.shape == (3, 5) and out.modality_weights.shape == (3, 3)
    assert torch.allclose(out.modality_weights.sum(1), torch.ones(3))
    used = {"attention_feat": [0, 1, 2], "attention_ecg_feat": [0, 2], "feat": [2]}[fusion]
    unused = [k for k in range(3) if k not in used]
    assert out.modality_weights[:, unused].abs().sum() == 0
    assert (out.aux_logits is None) == (fusion == "feat")
    if out.aux_logits is not None:
        assert out.aux_logits.shape == (3, len(used), 5)
    with pytest.raises(ValueError, match="needs feats"):
        net(torch.randn(3, 12, 250), torch.randn(3, N_META_INPUTS))
    with pytest.raises(ValueError, match="n_features > 0"):
        MultimodalNet(MultimodalConfig(fusion=fusion))


def test_hybrid_learns_from_the_features_branch_with_class_weights() -> None:
    """Class 0 is carried by one hand feature only (the ECG is noise): the hybrid learns it."""
    rng = np.random.default_rng(2)
    n = 192
    ecg = rng.normal(0, 1, (n, 12, 300)).astype(np.float32)
    y = np.zeros((n, 2), np.int64)
    y[:, 0] = rng.random(n) < 0.2  # a rare class: the class weights apply
    y[:, 1] = rng.random(n) < 0.5
    feats = rng.normal(0, 1, (n, 6)).astype(np.float32)
    feats[:, 2] += 3.0 * y[:, 0]
    meta = np.zeros((n, N_META_INPUTS), np.float32)
    age = np.full(n, np.nan)
    tr, va = slice(0, 128), slice(128, None)
    torch.manual_seed(0)
    net = MultimodalNet(MultimodalConfig(n_classes=2, fusion="attention_feat", n_features=6,
                                         channels=8, lstm_hidden=8, aux_heads=True))  # fmt: skip
    st = TrainSettings(epochs=25, lr=1e-2, crop_s=2.5, eval_stride_s=2.5, class_weight=True)
    net, _ = train_network(net, train=(ecg[tr], meta[tr], y[tr], age[tr]), val=(ecg[va], meta[va], y[va]),
                           fs=100.0, settings=st, feats_train=feats[tr], feats_val=feats[va])  # fmt: skip
    pred = predict(net, ecg[va], meta[va], fs=100.0, settings=st, feats=feats[va])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[va, 0], pred.probs[:, 0]) > 0.85
    assert pred.modality_weights.shape == (64, 3)
