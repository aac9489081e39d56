"""Train, score and export the stacked multimodal hybrid (12-lead ECG + patient data, PTB-XL).

The model of ``heartline bench multimodal``'s ``stacked`` row (docs/multimodal.md, "Stacked
hybrid"), trained once with the benchmark protocol of Strodthoff et al. (2021): PTB-XL folds 1-8
train, fold 9 validation (early stopping of the networks, per-class F1 thresholds), fold 10 test
(scored once, for the model card). Inside the 8 training folds, :func:`inner_fold_plan` deals the
folds round-robin into 2 groups; an attention-fusion CNN-LSTM (ECG + metadata) is trained on each
group and predicts the other, and one gradient-boosting classifier per class is fitted on the
training records' [out-of-fold network log-odds (5), ECG features (270), metadata (5)].
Validation and test records get the mean of the two networks, then the heads. Same settings as the
benchmark's ``stacked`` model (the hybrid budget: up to 50 epochs, patience 10, augmentation,
class weights; :func:`~heartline.training.multimodal.fit_gbm`'s settings).

:func:`ship_multimodal` writes the run-time artefacts read by
:class:`heartline.edge.multimodal.MultimodalModel` (no torch at run time):

* ``multimodal_net0.onnx``, ``multimodal_net1.onnx``: the networks (inputs ``ecg`` float32
  ``(batch, 12, 250)`` per-lead standardised 2.5 s crops at 100 Hz, ``meta`` float32
  ``(batch, 11)``; outputs ``proba`` ``(batch, 5)`` sigmoid and ``modality_weights``
  ``(batch, 2)``, ECG and metadata attention);
* ``multimodal_head.onnx``: the 5 boosted heads as ``ai.onnx.ml`` TreeEnsembles (input ``x``
  double ``(batch, 280)``, output ``proba`` ``(batch, 5)``);
* ``multimodal.json``: classes, thresholds, rate, lead order, input length, crops, the scalers
  (fitted on the training folds only), feature names, a content-hash version, the training data,
  fold-10 metrics with bootstrap CIs, the ONNX-vs-torch check, the command and the git commit;
* ``MODEL_CARD_multimodal.md``.

References
----------
Strodthoff N, Wagner P, Schaeffter T, Samek W. Deep learning for ECG analysis: benchmarks and
insights from PTB-XL. IEEE J Biomed Health Inform 25(5):1519-1528 (2021).
Wolpert DH. Stacked generalization. Neural Networks 5(2):241-259 (1992).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from heartline.data.ptbxl import LEADS_12, METADATA_FEATURES
from heartline.data.splits import inner_fold_plan
from heartline.edge.multimodal import (
    CROP_SAMPLES_KEY,
    MODEL_JSON,
    head_inputs,
    model_version,
)
from heartline.features.ecg12 import record_feature_names, record_features
from heartline.models.multimodal import N_META_INPUTS, MultimodalConfig
from heartline.revision import git_head
from heartline.training.multimodal import (
    EcgScaler,
    MetaScaler,
    TrainSettings,
    best_f1_thresholds,
    build_network,
    fit_gbm,
    macro_auc,
    predict,
    predict_gbm,
    train_network,
)

__all__ = [
    "ShipMultimodalConfig",
    "StackedHybrid",
    "export_stacked_hybrid",
    "fit_stacked_hybrid",
    "score_multilabel",
    "ship_multimodal",
]

log = logging.getLogger(__name__)

#: The benchmark protocol of Strodthoff et al. (2021) on PTB-XL's strat_fold.
TRAIN_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
VAL_FOLD = 9
TEST_FOLD = 10


@dataclass(frozen=True)
class ShipMultimodalConfig:
    """What :func:`ship_multimodal` trains (defaults: the benchmark's ``stacked`` model).

    ``max_records`` and ``epochs`` exist for smoke runs and tests; a shipped model uses neither.
    """

    seed: int = 0
    n_inner: int = 2
    epochs: int = 50
    patience: int | None = 10
    augment: bool = True
    class_weight: bool = True
    n_boot: int = 1000
    data_dir: str | None = None
    max_records: int | None = None
    model_fs_hz: float = 100.0
    name: str = "multimodal"

    def settings(self) -> TrainSettings:
        """The networks' training settings (the benchmark's hybrid budget by default)."""
        return TrainSettings(
            epochs=self.epochs,
            patience=self.patience,
            augment=self.augment,
            class_weight=self.class_weight,
            seed=self.seed,
        )


@dataclass
class StackedHybrid:
    """A fitted stacked hybrid: the inner networks, one boosted head per class, the scalers."""

    networks: list[nn.Module]
    heads: list[Any]
    ecg_scaler: EcgScaler
    meta_scaler: MetaScaler
    net_config: MultimodalConfig
    settings: TrainSettings
    fs_hz: float
    info: dict[str, Any] = field(default_factory=dict)

    def predict_networks(
        self, ecg_z: np.ndarray, meta_in: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean probabilities ``(N, C)`` and modality weights ``(N, 2)`` of the networks."""
        p = np.zeros((ecg_z.shape[0], self.net_config.n_classes))
        w = np.zeros((ecg_z.shape[0], 2))
        for net in self.networks:
            pred = predict(net, ecg_z, meta_in, fs=self.fs_hz, settings=self.settings)
            p += pred.probs / len(self.networks)
            w += pred.modality_weights / len(self.networks)
        return p, w

    def predict_proba(
        self, ecg_z: np.ndarray, meta_in: np.ndarray, feats: np.ndarray, meta_values: np.ndarray
    ) -> np.ndarray:
        """Class probabilities ``(N, C)`` of the stacked model (torch networks + sklearn heads)."""
        p_net, _ = self.predict_networks(ecg_z, meta_in)
        return predict_gbm(self.heads, head_inputs(p_net, feats, meta_values))


def fit_stacked_hybrid(
    *,
    ecg_z: np.ndarray,
    meta_in: np.ndarray,
    feats: np.ndarray,
    meta_values: np.ndarray,
    y: np.ndarray,
    age_z: np.ndarray,
    inner: list[tuple[np.ndarray, np.ndarray]],
    val_rows: np.ndarray,
    fs: float,
    settings: TrainSettings,
    net_config: MultimodalConfig,
    seed: int,
    ecg_scaler: EcgScaler,
    meta_scaler: MetaScaler,
) -> StackedHybrid:
    """Cross-fit the networks on the inner folds and fit the heads on their out-of-fold outputs.

    The same steps, seeds and order as the benchmark's ``_stacked_hybrid``
    (:mod:`heartline.bench.multimodal`) with ``fusion="attention"`` and the metadata in the head,
    so a shipped model is the benchmark's ``stacked`` model of the ``benchmark`` protocol.
    ``inner`` (:func:`~heartline.data.splits.inner_fold_plan`) must partition the training rows;
    ``val_rows`` only stop the networks early.
    """
    from threadpoolctl import threadpool_limits

    tr_rows = np.sort(np.concatenate([h for h, _ in inner]))
    if np.intersect1d(tr_rows, val_rows).size:
        raise ValueError("the validation rows must not be in an inner fold")
    n_cls = y.shape[1]
    p_oof = np.full((len(y), n_cls), np.nan)
    nets: list[nn.Module] = []
    nets_info = []
    for j, (held, fit) in enumerate(inner):
        torch.manual_seed(seed + j)
        net = build_network(net_config.fusion, config=net_config)
        net, info_t = train_network(
            net,
            train=(ecg_z[fit], meta_in[fit], y[fit], age_z[fit]),
            val=(ecg_z[val_rows], meta_in[val_rows], y[val_rows]),
            fs=fs,
            settings=settings,
        )
        nets_info.append({k: v for k, v in info_t.items() if k != "history"})
        p_oof[held] = predict(net, ecg_z[held], meta_in[held], fs=fs, settings=settings).probs
        nets.append(net.eval())
    with threadpool_limits(1):
        heads = fit_gbm(
            head_inputs(p_oof[tr_rows], feats[tr_rows], meta_values[tr_rows]),
            y[tr_rows],
            seed=seed,
        )
    info = {
        "inner_folds": len(inner),
        "inner_networks": nets_info,
        "inner_oof_macro_auc": macro_auc(y[tr_rows], p_oof[tr_rows]),
        "head_inputs": n_cls + feats.shape[1] + meta_values.shape[1],
    }
    return StackedHybrid(
        networks=nets,
        heads=heads,
        ecg_scaler=ecg_scaler,
        meta_scaler=meta_scaler,
        net_config=net_config,
        settings=settings,
        fs_hz=fs,
        info=info,
    )


# -- scoring ----------------------------------------------------------------------------------
def score_multilabel(
    y: np.ndarray,
    p: np.ndarray,
    thresholds: np.ndarray,
    classes: tuple[str, ...],
    *,
    n_boot: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Macro and per-class ROC AUC with percentile bootstrap 95 % CIs (resampling records), and
    F1, sensitivity, specificity at ``thresholds`` (positive at ``p >= threshold``)."""
    from sklearn.metrics import f1_score, roc_auc_score

    yhat = (p >= thresholds).astype(np.int64)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"macro": [], **{c: [] for c in classes}}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        draws["macro"].append(macro_auc(y[idx], p[idx]))
        for c, name in enumerate(classes):
            yc = y[idx, c]
            if 0 < yc.sum() < len(yc):
                draws[name].append(float(roc_auc_score(yc, p[idx, c])))

    def ci(v: list[float]) -> list[float] | None:
        a = np.asarray([x for x in v if np.isfinite(x)])
        return [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))] if a.size else None

    per = {}
    for c, name in enumerate(classes):
        pos = int(y[:, c].sum())
        ok = 0 < pos < len(y)
        tp = int(((yhat[:, c] == 1) & (y[:, c] == 1)).sum())
        tn = int(((yhat[:, c] == 0) & (y[:, c] == 0)).sum())
        per[name] = {
            "positives": pos,
            "auc": float(roc_auc_score(y[:, c], p[:, c])) if ok else None,
            "auc_ci95": ci(draws[name]) if ok else None,
            "f1": float(f1_score(y[:, c], yhat[:, c], zero_division=0)),
            "sensitivity": tp / pos if pos else None,
            "specificity": tn / (len(y) - pos) if len(y) > pos else None,
            "threshold": float(thresholds[c]),
        }
    return {
        "records": len(y),
        "macro_auc": macro_auc(y, p),
        "macro_auc_ci95": ci(draws["macro"]),
        "macro_f1": float(np.mean([v["f1"] for v in per.values()])),
        "per_class": per,
        "n_boot": n_boot,
    }


# -- export -----------------------------------------------------------------------------------
class _NetProba(nn.Module):
    """One network as exported: sigmoid probabilities and the modality attention."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(ecg, meta)
        return torch.sigmoid(out.logits), out.modality_weights


def _export_network(net: nn.Module, path: Path, *, crop: int, n_leads: int, name: str) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        _NetProba(net.eval()),
        (torch.zeros(2, n_leads, crop), torch.zeros(2, N_META_INPUTS)),
        str(path),
        input_names=["ecg", "meta"],
        output_names=["proba", "modality_weights"],
        dynamic_shapes={"ecg": {0: batch}, "meta": {0: batch}},
        opset_version=18,
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    m = onnx.load(str(path))
    for k, v in {"heartline.model": name, "heartline.part": "network"}.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def export_stacked_hybrid(
    model: StackedHybrid,
    out_dir: str | os.PathLike[str],
    *,
    thresholds: np.ndarray,
    classes: tuple[str, ...],
    name: str = "multimodal",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the networks, the heads and ``multimodal.json`` into ``out_dir``; returns the JSON.

    ``extra`` entries (training data, metrics, command...) are added to the JSON as they are.
    The version is a content hash of the ONNX files and the run-time settings in the JSON
    (:func:`heartline.edge.multimodal.model_version`).
    """
    import onnx

    from heartline.training.gbm_onnx import hgb_binary_heads_onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    crop = round(model.settings.crop_s * model.fs_hz)
    stride = max(1, round(model.settings.eval_stride_s * model.fs_hz))
    net_files = []
    for j, net in enumerate(model.networks):
        f = f"{name}_net{j}.onnx"
        _export_network(net, out / f, crop=crop, n_leads=model.net_config.n_leads, name=name)
        net_files.append(f)
    n_feat = int(model.heads[0].n_features_in_)
    head_file = f"{name}_head.onnx"
    onnx.save(hgb_binary_heads_onnx(model.heads, n_feat), str(out / head_file))
    n_cls = len(classes)
    spec: dict[str, Any] = {
        "name": name,
        "format": 1,
        "task": "multi-label PTB-XL superdiagnostic classes from a 12-lead ECG and patient data",
        "classes": list(classes),
        "thresholds": {c: float(t) for c, t in zip(classes, thresholds, strict=True)},
        "fs_hz": float(model.fs_hz),
        "leads": list(LEADS_12[: model.net_config.n_leads]),
        "input_samples": int(model.info.get("input_samples", round(10 * model.fs_hz))),
        CROP_SAMPLES_KEY: crop,
        "crop_stride_samples": stride,
        "units": "mV",
        "ecg_scaler": {
            "mean": model.ecg_scaler.mean.tolist(),
            "std": model.ecg_scaler.std.tolist(),
        },
        "metadata": {
            "columns": list(METADATA_FEATURES),
            "mean": model.meta_scaler.mean.tolist(),
            "std": model.meta_scaler.std.tolist(),
            "network_inputs": [f"z_{c}" for c in METADATA_FEATURES]
            + [f"present_{c}" for c in METADATA_FEATURES]
            + ["age_over_89"],
            "age_over_89_value_y": 90.0,
        },
        "networks": [
            {"file": f, **info}
            for f, info in zip(net_files, model.info.get("inner_networks", []), strict=False)
        ],
        "head": {
            "file": head_file,
            "inputs": [f"net_logit_{c}" for c in classes]
            + record_feature_names(model.net_config.n_leads)
            + list(METADATA_FEATURES),
            "n_inputs": n_feat,
            "logit_clip": 1e-4,
        },
        "net_config": model.net_config.to_dict(),
        "settings": dataclasses.asdict(model.settings),
    }
    assert len(spec["head"]["inputs"]) == n_feat == n_cls + 270 + len(METADATA_FEATURES)
    spec["version"] = model_version(out, spec)
    spec.update(extra or {})
    path = out / MODEL_JSON
    path.write_text(json.dumps(json_safe(spec), indent=2) + "\n")
    return path


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python, keys -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# -- the whole recipe -------------------------------------------------------------------------
def ship_multimodal(
    out_dir: str | os.PathLike[str],
    config: ShipMultimodalConfig | None = None,
    *,
    command: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train the stacked hybrid on folds 1-8 (validation 9), score fold 10 once, export.

    Writes the artefacts listed in the module docstring into ``out_dir`` and returns the JSON
    written to ``multimodal.json``. Every scaler is fitted on folds 1-8 only; fold 9 stops the
    networks and sets the thresholds; fold 10 is predicted once, after everything is fitted. The
    exported ONNX model is then run by :class:`heartline.edge.multimodal.MultimodalModel` on
    the fold-10 records and compared with the torch + scikit-learn pipeline (``onnx_check``).
    """
    from heartline.data.ptbxl import load_ptbxl
    from heartline.edge.multimodal import MultimodalModel

    cfg = config or ShipMultimodalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    load_start = list(os.getloadavg())
    data = load_ptbxl(
        fs=100, data_dir=cfg.data_dir, max_records=cfg.max_records, progress=progress
    ).labelled()
    if data.fs != cfg.model_fs_hz:  # pragma: no cover - load_ptbxl(fs=100) reads records100
        raise ValueError(f"expected {cfg.model_fs_hz:g} Hz records, got {data.fs:g}")
    sf = data.strat_fold
    missing = sorted({*TRAIN_FOLDS, VAL_FOLD, TEST_FOLD} - set(np.unique(sf).tolist()))
    if missing:
        raise ValueError(f"the benchmark protocol needs strat_folds 1-10; missing {missing}")
    tr = np.isin(sf, TRAIN_FOLDS)
    va_rows = np.flatnonzero(sf == VAL_FOLD)
    te_rows = np.flatnonzero(sf == TEST_FOLD)
    signals = data.signals  # (N, 12, T) float32 mV, 100 Hz
    y = data.labels.astype(np.int64)
    classes = tuple(data.class_names)
    es = EcgScaler.fit(signals[tr])
    ms = MetaScaler.fit(data.metadata.take(tr))
    ecg_z = es.transform(signals)
    meta_in = ms.transform(data.metadata)
    age = data.metadata.values[:, 0].astype(np.float64)
    age_z = (age - float(np.nanmean(age[tr]))) / float(np.nanstd(age[tr]))
    t_feat = time.perf_counter()
    feats, feat_names = record_features(signals, fs=cfg.model_fs_hz)
    feat_s = time.perf_counter() - t_feat
    assert feat_names == record_feature_names(signals.shape[1])
    inner = inner_fold_plan(sf, tr, n_inner=cfg.n_inner)
    net_config = MultimodalConfig(
        n_leads=signals.shape[1], n_classes=len(classes), fs_hz=cfg.model_fs_hz, fusion="attention"
    )
    settings = cfg.settings()
    log.info("training %d inner networks", len(inner))
    model = fit_stacked_hybrid(
        ecg_z=ecg_z,
        meta_in=meta_in,
        feats=feats,
        meta_values=data.metadata.values,
        y=y,
        age_z=age_z,
        inner=inner,
        val_rows=va_rows,
        fs=cfg.model_fs_hz,
        settings=settings,
        net_config=net_config,
        seed=cfg.seed,
        ecg_scaler=es,
        meta_scaler=ms,
    )
    model.info["input_samples"] = int(signals.shape[2])
    for (held, _), info in zip(inner, model.info["inner_networks"], strict=True):
        info["held_out_folds"] = sorted(np.unique(sf[held]).tolist())
        info["trained_on_folds"] = sorted(set(TRAIN_FOLDS) - set(info["held_out_folds"]))

    def stacked(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p_net, w = model.predict_networks(ecg_z[rows], meta_in[rows])
        p = predict_gbm(model.heads, head_inputs(p_net, feats[rows], data.metadata.values[rows]))
        return p, p_net, w

    pv, pv_net, _ = stacked(va_rows)
    thresholds = best_f1_thresholds(y[va_rows], pv)
    # the test fold, once, with everything fitted
    pt, pt_net, wt = stacked(te_rows)
    test = score_multilabel(y[te_rows], pt, thresholds, classes, n_boot=cfg.n_boot, seed=cfg.seed)
    test["networks_only_macro_auc"] = macro_auc(y[te_rows], pt_net)
    test["modality_weights_mean"] = {
        "ecg": float(wt[:, 0].mean()),
        "metadata": float(wt[:, 1].mean()),
    }
    val = {
        "records": len(va_rows),
        "macro_auc": macro_auc(y[va_rows], pv),
        "networks_only_macro_auc": macro_auc(y[va_rows], pv_net),
    }
    wall_train = time.perf_counter() - t0
    extra = {
        "training_data": {
            "dataset": "PTB-XL 1.0.3 (Wagner et al. 2020), records100 (100 Hz, 10 s)",
            "records": len(data),
            "records_with_superclass": len(data),
            "ecg_ids_sum": int(data.ecg_ids.sum()),
            "class_counts": {c: int(y[:, k].sum()) for k, c in enumerate(classes)},
            "data_notes": list(data.notes),
            "labels": "every SCP statement flagged diagnostic, no likelihood threshold",
        },
        "protocol": {
            "name": "benchmark (Strodthoff et al. 2021)",
            "train_folds": list(TRAIN_FOLDS),
            "val_fold": VAL_FOLD,
            "test_fold": TEST_FOLD,
            "records": {"train": int(tr.sum()), "val": len(va_rows), "test": len(te_rows)},
            "inner_groups": [info["held_out_folds"] for info in model.info["inner_networks"]],
            "thresholds": "per-class F1 maximum on the validation fold",
            "scalers": "ECG per-lead and metadata standardisation fitted on folds 1-8 only",
        },
        "validation": val,
        "test": test,
        "training": {
            "inner_oof_macro_auc": model.info["inner_oof_macro_auc"],
            "seed": cfg.seed,
            "features_s": round(feat_s, 1),
            "torch_threads": torch.get_num_threads(),
        },
    }
    spec_path = export_stacked_hybrid(
        model, out, thresholds=thresholds, classes=classes, name=cfg.name, extra=extra
    )
    # the run time on the test records against the torch + scikit-learn pipeline
    rt = MultimodalModel(out)
    p_rt, w_rt = rt.predict_batch(
        signals[te_rows],
        data.metadata.values[te_rows],
        data.metadata.present[te_rows],
        data.metadata.age_over_89[te_rows],
    )
    spec = json.loads(spec_path.read_text())
    spec["onnx_check"] = {
        "records": len(te_rows),
        "max_abs_diff_proba": float(np.abs(p_rt - pt).max()),
        "max_abs_diff_modality_weights": float(np.abs(w_rt - wt).max()),
        "what": "heartline.edge.multimodal.MultimodalModel (ONNX Runtime, numpy features) vs "
        "the torch networks + scikit-learn heads on the fold-10 records",
    }
    spec["command"] = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    spec["commit"] = git_head(short=True, default="unknown")
    spec["created"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    spec["wall_s"] = round(time.perf_counter() - t0, 1)
    spec["train_wall_s"] = round(wall_train, 1)
    spec["cpu_s"] = round(time.process_time() - c0, 1)
    spec["machine"] = {
        "platform": platform.platform(),
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
    }
    spec_path.write_text(json.dumps(json_safe(spec), indent=2) + "\n")
    (out / f"MODEL_CARD_{cfg.name}.md").write_text(model_card(spec))
    return spec


def _fmt_ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


#: The 10-fold cross-validation figure of the same design (docs/results/multimodal.md).
CV10_REFERENCE = (
    "pooled 10-fold CV macro-AUC 0.911 [0.891, 0.929] over 488 records (AUC NORM 0.924, MI 0.843, "
    "STTC 0.952, CD 0.898, HYP 0.936; macro-F1 0.656), `stacked` row of the 2026-12-07 entry of "
    "docs/results/multimodal.md (code of commit c7f8e79, table assembled at bf0fe33, "
    "`heartline bench multimodal --out RUN`)"
)


def model_card(spec: dict[str, Any]) -> str:
    """The model card (Markdown) of a shipped multimodal model from its ``multimodal.json``."""
    t = spec["test"]
    rows = []
    for c, v in t["per_class"].items():
        auc = "-" if v["auc"] is None else f"{v['auc']:.3f}"
        sens = "-" if v["sensitivity"] is None else f"{v['sensitivity']:.2f}"
        spec_ = "-" if v["specificity"] is None else f"{v['specificity']:.2f}"
        rows.append(
            f"| {c} | {v['positives']} | {auc} {_fmt_ci(v['auc_ci95'])} | {v['f1']:.3f} | "
            f"{sens} | {spec_} | {v['threshold']:.3f} |"
        )
    td = spec["training_data"]
    pr = spec["protocol"]
    nets = "; ".join(
        f"`{n['file']}` trained on folds {n['trained_on_folds']}, best epoch {n['best_epoch']} "
        f"of {n['epochs_run']} run"
        for n in spec["networks"]
    )
    return f"""# Model card: `{spec["name"]}` (stacked multimodal hybrid, 12-lead ECG + patient data)

Version `{spec["version"]}` (content hash of the ONNX files and run-time settings), commit
`{spec["commit"]}`, created {spec["created"]} by `{spec["command"]}`.

**Not a medical device.** Research and decision-support software: it has no regulatory clearance
and every output must be confirmed by a clinician reading the ECG.

## Intended use

Multi-label screening of a resting 10 s, 12-lead ECG (any rate >= 100 Hz, resampled to
{spec["fs_hz"]:g} Hz; leads {", ".join(spec["leads"])} in any order, in mV) with optional age, sex, height and
weight, for PTB-XL's five superdiagnostic classes: NORM (normal ECG), MI (myocardial
infarction), STTC (ST/T change), CD (conduction disturbance), HYP (hypertrophy). Outputs one
probability per class and a positive/negative call at a per-class threshold. Not for
monitoring strips, paediatric ECGs, paced rhythms or any population unlike PTB-XL's (German
hospital recordings 1989-1996). Run it with `heartline diagnose RECORD` or
`heartline.diagnose(signals, fs=..., lead_names=..., metadata=...)` (ONNX Runtime, no torch).

## Model

Two attention-fusion CNN-LSTMs (ECG branch: 12-lead stem convolution, dilated QRS/P/T branches,
bidirectional LSTM, attention over time; metadata branch: MLP over standardised values with
missing-value masks; softmax attention over the two modalities), cross-fitted on two groups of the
training folds ({nets}). Each predicts 2.5 s crops (stride 2.5 s), averaged over the record and
over the two networks. Their log-odds, 270 per-lead ECG features (median beat, amplitudes, areas,
ST level, RR statistics; `heartline.features.ecg12`) and the 5 metadata values (age, sex, height,
weight, BMI; missing = NaN) feed one gradient-boosting classifier per class (stacked
generalisation). Missing metadata enter as masks (networks) and NaN (heads); an age coded 300
(PTB-XL: over 89) or above 89 becomes 90 with an over-89 flag.

## Data and protocol

{td["dataset"]}: the {td["records"]} records with a superdiagnostic statement of the
500-record PTB-XL subset of Heartline's benchmarks (class counts {td["class_counts"]}; labels:
{td["labels"]}). Benchmark protocol of Strodthoff et al. (2021): strat_folds
{pr["train_folds"]} train ({pr["records"]["train"]} records; inner groups {pr["inner_groups"]}),
fold {pr["val_fold"]} validation ({pr["records"]["val"]}: early stopping and F1 thresholds),
fold {pr["test_fold"]} test ({pr["records"]["test"]} records, scored once after everything
was fitted). {pr["scalers"]}.

## Performance

**Fold 10 ({t["records"]} records; small: the intervals are wide).** Macro-AUC
**{t["macro_auc"]:.3f}** {_fmt_ci(t["macro_auc_ci95"])} (percentile bootstrap over records,
{t["n_boot"]} draws), macro-F1 {t["macro_f1"]:.3f}; the two networks alone
{t["networks_only_macro_auc"]:.3f}. Validation fold macro-AUC {spec["validation"]["macro_auc"]:.3f}.

| class | positives | AUC [95 % CI] | F1 | sensitivity | specificity | threshold |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**The same design under 10-fold cross-validation** (each fold once the test fold, every model
retrained per fold): {CV10_REFERENCE}. That figure, over all 488 records, is the better estimate
of the design's performance; the fold-10 figures above are the shipped model's own.

Mean modality attention on the test records: ECG {t["modality_weights_mean"]["ecg"]:.2f},
metadata {t["modality_weights_mean"]["metadata"]:.2f}. ONNX run time vs the training pipeline on
the test records: largest probability difference {spec["onnx_check"]["max_abs_diff_proba"]:.1e}.

## Limitations

* Trained on **500 PTB-XL records** (488 labelled), not the 21,799 of the full database: every
  figure has wide intervals, and fold 10 holds {t["records"]} records (a handful of positives for
  the rare classes).
* **MI is the weakest class** (10-fold AUC 0.843); HYP has the fewest positives.
* Metadata add little: in the benchmark the stacked model with and without metadata differ by
  +0.0016 macro-AUC (CI [-0.002, +0.005]).
* 100 Hz input: high-frequency QRS detail is not used. Records are cut to their first 10 s;
  shorter records are refused.
* The thresholds maximise F1 on one validation fold of about 50 records; recalibrate on local data
  before any clinical evaluation. No external validation, no subgroup analysis (the subset is too
  small).

## References

Wagner P et al. PTB-XL, a large publicly available electrocardiography dataset. Sci Data 7:154
(2020). Strodthoff N et al. Deep learning for ECG analysis: benchmarks and insights from PTB-XL.
IEEE J Biomed Health Inform 25(5):1519-1528 (2021). Wolpert DH. Stacked generalization. Neural
Networks 5(2):241-259 (1992).
"""
