"""``heartline bench multimodal``: PTB-XL superdiagnostic benchmark of the multimodal hybrid.

Protocols (:data:`PROTOCOLS`)
-----------------------------
* ``cv10``: 10-fold cross-validation over PTB-XL's ``strat_fold`` (patient-disjoint folds).
  Test fold ``k`` is predicted by models trained on the 8 other folds, with fold ``k % 10 + 1``
  as validation (epoch choice and F1 thresholds); each fold is the test fold once, and the
  out-of-fold (OOF) predictions are pooled.
* ``benchmark``: Strodthoff et al. (2021): folds 1-8 train, 9 validation, 10 test.

Models (:data:`MODELS`): the naive class-prior baseline, gradient boosting on ECG features with
and without metadata, a small 1-D ResNet (ECG only), the metadata-only MLP and the multimodal
hybrid's ablations (ECG only, late fusion by concatenation, attention fusion, attention fusion
with the auxiliary age head). Scalers are fitted on the training folds only. The hybrid's
variants (:data:`HYBRID_MODELS`) get their own training budget (``hybrid_epochs``, early stopping
after ``hybrid_patience`` epochs without a better validation macro-AUC, gain/noise augmentation);
the ResNet and metadata-only networks train for ``epochs``. Finished (fold, model) results are
cached under a key of the settings *that model* trains with, the data and the model/training
source, so a run with another hybrid budget reuses the baselines' results (an edit of the
model or training source still invalidates every cached result).

Statistics: pooled OOF macro-AUC and per-class AUC with 95 % bootstrap CIs over records
(Efron & Tibshirani 1993), F1 / accuracy / Cohen's kappa / MCC at the per-class thresholds chosen
on each fold's validation fold, age MAE for models with the age head, a Wilcoxon signed-rank
test over folds of fused vs ECG-only macro-AUC, and the metadata effect (fused minus ECG-only
pooled macro-AUC) with a paired bootstrap interval.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.splits import inner_fold_plan  # re-exported: the benchmark's name

__all__ = [
    "COMPARISONS",
    "DEFAULT_MODELS",
    "ENSEMBLES",
    "HYBRID_MODELS",
    "MODELS",
    "PROTOCOLS",
    "MultimodalBenchConfig",
    "fold_plan",
    "inner_fold_plan",
    "run_multimodal_bench",
]

log = logging.getLogger(__name__)

PROTOCOLS = ("cv10", "benchmark")
#: Derived rows: the mean of two models' probabilities (fixed weights, nothing fitted).
ENSEMBLES: dict[str, tuple[str, str]] = {
    "fused_plus_gbm": ("fused", "gbm"),
    "hybrid_plus_gbm": ("hybrid", "gbm"),
}
#: Model name -> (kind, description). ``kind``: naive, gbm, gbm_ecg, resnet1d, or a fusion mode
#: of :class:`heartline.models.multimodal.MultimodalNet` (``+age``: with the age head).
MODELS: dict[str, tuple[str, str]] = {
    "naive": ("naive", "class priors of the training folds"),
    "gbm_ecg": ("gbm_ecg", "gradient boosting on ECG features"),
    "gbm": ("gbm", "gradient boosting on ECG features + metadata"),
    "resnet1d": ("resnet1d", "1-D ResNet, ECG only"),
    "meta_only": ("meta", "metadata MLP only"),
    "ecg_only": ("ecg", "hybrid ECG branch only"),
    "late_fusion": ("concat", "hybrid, late fusion (concatenation)"),
    "fused": ("attention", "hybrid, attention fusion"),
    "fused_age": ("attention+age", "hybrid, attention fusion + age head"),
    "feat_only": ("feat", "hybrid's ECG-features branch only (MLP)"),
    "hybrid_no_meta": (
        "attention_ecg_feat",
        "hybrid, CNN-LSTM + ECG-features branch, attention fusion (no metadata)",
    ),
    "hybrid": (
        "attention_feat",
        "hybrid with an ECG-features branch: CNN-LSTM + features + metadata, attention fusion",
    ),
    "stacked_no_meta": (
        "stacked_ecg",
        "stacked hybrid without metadata: cross-fitted ECG-only CNN-LSTMs -> boosting on "
        "(network log-odds, ECG features)",
    ),
    "stacked": (
        "stacked",
        "stacked multimodal hybrid: cross-fitted attention-fusion CNN-LSTMs (ECG + metadata) -> "
        "boosting on (network log-odds, ECG features, metadata)",
    ),
}
#: The models of a default run (the table of the results page): baselines, the network
#: ablations and the stacked hybrid. ``feat_only``, ``hybrid_no_meta`` and ``hybrid`` (the
#: features-branch network of an earlier design) run when named with ``--models``.
DEFAULT_MODELS: tuple[str, ...] = (
    "naive",
    "gbm_ecg",
    "gbm",
    "resnet1d",
    "meta_only",
    "ecg_only",
    "late_fusion",
    "fused",
    "fused_age",
    "stacked_no_meta",
    "stacked",
)
#: Stacked models -> (fusion of their cross-fitted networks, metadata columns in the head).
STACKED: dict[str, tuple[str, bool]] = {
    "stacked": ("attention", True),
    "stacked_ecg": ("ecg", False),
}
#: The hybrid's variants, trained with the hybrid budget (``hybrid_epochs`` etc.).
HYBRID_MODELS = (
    "ecg_only",
    "late_fusion",
    "fused",
    "fused_age",
    "feat_only",
    "hybrid_no_meta",
    "hybrid",
    "stacked_no_meta",
    "stacked",
)
#: Paired comparisons ``(a, b)`` reported as a minus b (when both models ran).
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("stacked", "gbm"),
    ("stacked", "gbm_ecg"),
    ("stacked", "stacked_no_meta"),
    ("stacked", "fused"),
    ("hybrid", "hybrid_no_meta"),
    ("fused", "ecg_only"),
    ("gbm", "gbm_ecg"),
    ("fused_age", "fused"),
    ("hybrid", "gbm"),
    ("hybrid_no_meta", "feat_only"),
)


@dataclass(frozen=True)
class MultimodalBenchConfig:
    """What to run."""

    protocol: str = "cv10"
    fs: int = 100
    models: tuple[str, ...] = DEFAULT_MODELS
    epochs: int = 10  # the ResNet and metadata-only networks
    # the hybrid's training budget (ecg_only, late_fusion, fused, fused_age): most epochs, early
    # stopping patience on the validation fold (None: none), ECG augmentation of the crops
    hybrid_epochs: int = 50
    hybrid_patience: int | None = 10
    hybrid_augment: bool = True
    hybrid_class_weight: bool = True
    # the stacked hybrid: inner folds of the cross-fitting (groups of the training strat_folds)
    stack_inner: int = 2
    max_records: int | None = None
    folds: tuple[int, ...] | None = None  # test folds to run (cv10); None = all 10
    n_boot: int = 1000
    seed: int = 0
    data_dir: str | None = None
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fold_plan(protocol: str, test_folds: tuple[int, ...] | None = None) -> list[tuple[int, int]]:
    """``(test_fold, val_fold)`` pairs of a protocol (the validation fold is never the test fold).

    >>> fold_plan("benchmark")
    [(10, 9)]
    >>> fold_plan("cv10")[:2]
    [(1, 2), (2, 3)]
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {list(PROTOCOLS)}")
    if protocol == "benchmark":
        return [(10, 9)]
    tests = test_folds or tuple(range(1, 11))
    bad = [k for k in tests if k not in range(1, 11)]
    if bad or len(set(tests)) != len(tests):
        raise ValueError(f"test folds must be distinct values in 1-10, got {list(tests)}")
    return [(k, k % 10 + 1) for k in tests]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-4, 1.0 - 1e-4)
    return np.log(q / (1.0 - q))


def _stacked_hybrid(
    *,
    fusion: str,
    head_meta: bool,
    inner: list[tuple[np.ndarray, np.ndarray]],
    tr: np.ndarray,
    va: np.ndarray,
    te: np.ndarray,
    ecg: np.ndarray,
    meta: np.ndarray,
    feats: np.ndarray,
    meta_values: np.ndarray,
    y: np.ndarray,
    age_z: np.ndarray,
    net_config: Any,
    settings: Any,
    fs: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The stacked hybrid of one outer fold: cross-fitted CNN-LSTMs and a boosted head.

    For each inner fold of ``inner`` (:func:`inner_fold_plan`, training rows only), a CNN-LSTM
    (``fusion``: ``"attention"`` = ECG + metadata with modality attention, ``"ecg"`` = ECG only)
    is trained on the inner fold's fit rows, early-stopped on the outer validation fold ``va``;
    it predicts its held-out rows, so every training record gets class probabilities from a
    network that never saw it (the network's outputs on its own training records would be
    over-confident). Gradient boosting (:func:`~heartline.training.multimodal.fit_gbm`) is fitted
    on the training rows' [network log-odds, ECG features, metadata (``head_meta``)]. Validation
    and test records get the mean probabilities (and modality attention) of the inner networks.
    Nothing of the test fold ``te`` is used before its prediction; ``va`` serves the early stopping
    of the networks and, in the caller, the F1 thresholds, never the head's fit.

    Returns
    -------
    tuple
        Validation and test probabilities, the test records' mean modality weights, an info dict.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from heartline.training.multimodal import (
        build_network,
        fit_gbm,
        macro_auc,
        predict,
        predict_gbm,
        train_network,
    )

    tr_rows, va_rows, te_rows = np.flatnonzero(tr), np.flatnonzero(va), np.flatnonzero(te)
    covered = np.concatenate([h for h, _ in inner])
    if np.setdiff1d(covered, tr_rows).size or covered.size != tr_rows.size:
        raise ValueError("the inner folds must partition the outer training rows")
    n_cls = y.shape[1]
    p_oof = np.full((len(y), n_cls), np.nan)
    p_va = np.zeros((va_rows.size, n_cls))
    p_te = np.zeros((te_rows.size, n_cls))
    w_te = None
    nets_info = []
    for j, (held, fit) in enumerate(inner):
        torch.manual_seed(seed + j)
        net = build_network(fusion, config=net_config)
        net, info_t = train_network(
            net,
            train=(ecg[fit], meta[fit], y[fit], age_z[fit]),
            val=(ecg[va_rows], meta[va_rows], y[va_rows]),
            fs=fs,
            settings=settings,
        )
        nets_info.append({k: v for k, v in info_t.items() if k != "history"})
        p_oof[held] = predict(net, ecg[held], meta[held], fs=fs, settings=settings).probs
        p_va += predict(net, ecg[va_rows], meta[va_rows], fs=fs, settings=settings).probs / len(
            inner
        )
        pred_t = predict(net, ecg[te_rows], meta[te_rows], fs=fs, settings=settings)
        p_te += pred_t.probs / len(inner)
        w = pred_t.modality_weights / len(inner)
        w_te = w if w_te is None else w_te + w

    def head_x(rows: np.ndarray, p_net: np.ndarray) -> np.ndarray:
        parts = [_logit(p_net), feats[rows]]
        if head_meta:
            parts.append(meta_values[rows])
        return np.concatenate(parts, axis=1)

    with threadpool_limits(1):
        head = fit_gbm(head_x(tr_rows, p_oof[tr_rows]), y[tr_rows], seed=seed)
    pv = predict_gbm(head, head_x(va_rows, p_va))
    pt = predict_gbm(head, head_x(te_rows, p_te))
    oof_auc = macro_auc(y[tr_rows], p_oof[tr_rows])
    info = {
        "inner_folds": len(inner),
        "inner_networks": nets_info,
        "inner_oof_macro_auc": oof_auc,
        "network_test_macro_auc": macro_auc(y[te_rows], p_te),
        "network_val_macro_auc": macro_auc(y[va_rows], p_va),
        "head_inputs": n_cls + feats.shape[1] + (meta_values.shape[1] if head_meta else 0),
        "epochs_run": int(sum(n["epochs_run"] for n in nets_info)),
    }
    return pv, pt, w_te if w_te is not None else np.empty((te_rows.size, 0)), info


def _source_digest() -> str:
    """Hash of the model, training and ECG-feature code (a cached fold result is reused only if
    unchanged; the features moved out of the training module into ``heartline.features.ecg12``)."""
    from heartline.features import ecg12
    from heartline.models import multimodal as mm_models
    from heartline.training import multimodal as mm_training

    h = hashlib.sha256()
    for mod in (mm_models, mm_training, ecg12):
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:12]


def _class_metrics(
    y: np.ndarray, p: np.ndarray, yhat: np.ndarray, names: tuple[str, ...]
) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score, f1_score, matthews_corrcoef, roc_auc_score

    per = {}
    for c, name in enumerate(names):
        ok = 0 < y[:, c].sum() < len(y)
        per[name] = {
            "auc": float(roc_auc_score(y[:, c], p[:, c])) if ok else None,
            "f1": float(f1_score(y[:, c], yhat[:, c], zero_division=0)),
            "kappa": float(cohen_kappa_score(y[:, c], yhat[:, c])) if ok else None,
            "mcc": float(matthews_corrcoef(y[:, c], yhat[:, c])) if ok else None,
            "positives": int(y[:, c].sum()),
        }
    vals = lambda k: [v[k] for v in per.values() if v[k] is not None]  # noqa: E731
    return {
        "per_class": per,
        "macro_auc": float(np.mean(vals("auc"))),
        "macro_f1": float(np.mean(vals("f1"))),
        "macro_kappa": float(np.mean(vals("kappa"))),
        "macro_mcc": float(np.mean(vals("mcc"))),
        "subset_accuracy": float((yhat == y).all(axis=1).mean()),
        "label_accuracy": float((yhat == y).mean()),
    }


def _bootstrap_auc(
    y: np.ndarray, ps: dict[str, np.ndarray], *, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    from heartline.training.multimodal import macro_auc

    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {k: [] for k in ps}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for k, p in ps.items():
            out[k].append(macro_auc(y[idx], p[idx]))
    return {k: np.asarray(v) for k, v in out.items()}


def run_multimodal_bench(
    out_dir: str | Path, config: MultimodalBenchConfig, *, progress: bool = True
) -> dict[str, Any]:
    """Run the benchmark, write ``multimodal.json``, ``multimodal.md`` and plots into ``out_dir``."""
    import torch

    from heartline.data.ptbxl import load_ptbxl
    from heartline.models.multimodal import FUSIONS, MultimodalConfig
    from heartline.revision import git_head
    from heartline.training.multimodal import (
        EcgScaler,
        FeatureScaler,
        MetaScaler,
        TrainSettings,
        best_f1_thresholds,
        build_network,
        fit_gbm,
        macro_auc,
        predict,
        predict_gbm,
        record_features,
        train_network,
    )
    from heartline.training.multimodal_ship import json_safe

    unknown = [m for m in config.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; valid: {list(MODELS)}")
    plan = fold_plan(config.protocol, config.folds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    load_start = list(os.getloadavg())
    torch.set_num_threads(1)
    cache = config.cache_dir or str(out / "cache")
    data = load_ptbxl(
        fs=config.fs,
        data_dir=config.data_dir,
        max_records=config.max_records,
        cache_dir=cache,
        progress=progress,
    ).labelled()
    # the networks run at 100 Hz: records500 are decimated by 5 (anti-aliased)
    model_fs = 100.0
    signals = data.signals
    if data.fs != model_fs:
        from scipy.signal import resample_poly

        signals = resample_poly(signals, 1, round(data.fs / model_fs), axis=2).astype(np.float32)
    present_folds = set(np.unique(data.strat_fold).tolist())
    needed = {f for pair in plan for f in pair}
    if not needed <= present_folds:
        raise ValueError(
            f"protocol {config.protocol} needs folds {sorted(needed)}; data has {sorted(present_folds)}"
        )
    y_all = data.labels.astype(np.int64)
    names = data.class_names
    age_all = data.metadata.values[:, 0].astype(np.float64)
    feat_file = (
        Path(cache) / f"features_{len(data)}_{int(model_fs)}hz_{int(data.ecg_ids.sum())}.npy"
    )

    def uses_features(model: str) -> bool:
        kind = MODELS[model][0]
        return (
            kind.startswith(("gbm", "stacked")) or FUSIONS.get(kind.split("+")[0], (0, 0, False))[2]
        )

    feats = None
    if any(uses_features(m) for m in config.models):
        if feat_file.is_file():
            feats = np.load(feat_file)
        else:
            t0 = time.perf_counter()
            feats, _ = record_features(signals, fs=model_fs)
            np.save(feat_file, feats)
            log.info("ECG features in %.1f s", time.perf_counter() - t0)
    base_settings = TrainSettings(epochs=config.epochs, seed=config.seed)
    hybrid_settings = TrainSettings(
        epochs=config.hybrid_epochs,
        patience=config.hybrid_patience,
        augment=config.hybrid_augment,
        class_weight=config.hybrid_class_weight,
        seed=config.seed,
    )

    def settings_of(model: str) -> TrainSettings:
        return hybrid_settings if model in HYBRID_MODELS else base_settings

    def run_key(model: str) -> str:
        # finished (fold, model) results are cached under this key, so an interrupted run resumes
        return hashlib.sha256(
            json.dumps(
                [
                    config.protocol,
                    config.fs,
                    config.max_records,
                    config.seed,
                    settings_of(model).__dict__,
                    *(
                        [config.stack_inner, inspect.getsource(_stacked_hybrid)]
                        if MODELS[model][0] in STACKED
                        else []
                    ),
                    int(data.ecg_ids.sum()),
                    len(data),
                    _source_digest(),
                ]
            ).encode()
        ).hexdigest()[:12]

    oof: dict[str, dict[str, np.ndarray]] = {
        m: {
            "probs": np.full(y_all.shape, np.nan),
            "pred": np.zeros(y_all.shape, dtype=np.int64),
            "weights": np.full((len(y_all), 3), np.nan),
            "age": np.full(len(y_all), np.nan),
        }
        for m in config.models
    }
    fold_auc: dict[str, list[float]] = {m: [] for m in config.models}
    train_info: dict[str, list[dict[str, Any]]] = {m: [] for m in config.models}
    timings: dict[str, float] = {m: 0.0 for m in config.models}
    test_mask_all = np.zeros(len(y_all), dtype=bool)
    val_probs: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        task = bar.add_task("multimodal bench", total=len(plan) * len(config.models))
        for test_fold, val_fold in plan:
            te = data.strat_fold == test_fold
            va = data.strat_fold == val_fold
            tr = ~(te | va)
            if config.protocol == "benchmark":
                tr = data.strat_fold <= 8
            test_mask_all |= te
            es = EcgScaler.fit(signals[tr])
            ms = MetaScaler.fit(data.metadata.take(tr))
            ecg = es.transform(signals)
            meta = ms.transform(data.metadata)
            feats_z = None
            if feats is not None:
                feats_z = FeatureScaler.fit(feats[tr]).transform(feats)
            a_mean, a_std = float(np.nanmean(age_all[tr])), float(np.nanstd(age_all[tr]))
            age_z = (age_all - a_mean) / a_std
            for m in config.models:
                kind, _ = MODELS[m]
                t0 = time.perf_counter()
                info: dict[str, Any] = {"test_fold": test_fold, "val_fold": val_fold}
                settings = settings_of(m)
                ckpt = Path(cache) / f"fold_{run_key(m)}_{test_fold}_{m}.npz"
                if ckpt.is_file():  # finished earlier with the same settings: resume
                    z = np.load(ckpt, allow_pickle=False)
                    pv, pt = z["pv"], z["pt"]
                    weights_t = z["weights"] if z["weights"].size else None
                    age_t = z["age"] if z["age"].size else None
                    info.update(json.loads(str(z["info"])))
                    info["resumed"] = True
                    t0 -= float(z["seconds"])  # report the original training time
                elif kind == "naive":
                    prior = y_all[tr].mean(axis=0)
                    pv = np.tile(prior, (int(va.sum()), 1))
                    pt = np.tile(prior, (int(te.sum()), 1))
                    weights_t, age_t = None, None
                elif kind.startswith("gbm"):
                    assert feats is not None
                    x = (
                        feats
                        if kind == "gbm_ecg"
                        else np.concatenate([feats, data.metadata.values], axis=1)
                    )
                    from threadpoolctl import threadpool_limits

                    with threadpool_limits(1):  # one core, as the networks
                        gb = fit_gbm(x[tr], y_all[tr], seed=config.seed)
                    pv, pt = predict_gbm(gb, x[va]), predict_gbm(gb, x[te])
                    weights_t, age_t = None, None
                elif kind in STACKED:
                    assert feats is not None
                    fusion, head_meta = STACKED[kind]
                    tr_mask = tr & ~te & ~va
                    inner = inner_fold_plan(data.strat_fold, tr_mask, n_inner=config.stack_inner)
                    info["inner_held_out_folds"] = [
                        sorted(np.unique(data.strat_fold[h]).tolist()) for h, _ in inner
                    ]
                    cfg = MultimodalConfig(
                        n_leads=ecg.shape[1],
                        n_classes=len(names),
                        fs_hz=model_fs,
                        fusion=fusion,
                    )
                    pv, pt, weights_t, info_s = _stacked_hybrid(
                        fusion=fusion,
                        head_meta=head_meta,
                        inner=inner,
                        tr=tr_mask,
                        va=va,
                        te=te,
                        ecg=ecg,
                        meta=meta,
                        feats=feats,
                        meta_values=data.metadata.values,
                        y=y_all,
                        age_z=age_z,
                        net_config=cfg,
                        settings=settings,
                        fs=model_fs,
                        seed=config.seed,
                    )
                    info.update(info_s)
                    age_t = None
                else:
                    fusion = kind.split("+")[0]
                    with_feats = fusion in FUSIONS and FUSIONS[fusion][2]
                    assert not with_feats or feats_z is not None
                    fz = feats_z if with_feats else None
                    cfg = MultimodalConfig(
                        n_leads=ecg.shape[1],
                        n_classes=len(names),
                        fs_hz=model_fs,
                        fusion="ecg" if fusion == "resnet1d" else fusion,
                        age_head=kind.endswith("+age"),
                        n_features=0 if fz is None else fz.shape[1],
                        aux_heads=with_feats and fusion != "feat",
                    )
                    torch.manual_seed(config.seed)
                    net = build_network(fusion, config=cfg)
                    net, info_t = train_network(
                        net,
                        train=(ecg[tr], meta[tr], y_all[tr], age_z[tr]),
                        val=(ecg[va], meta[va], y_all[va]),
                        fs=model_fs,
                        settings=settings,
                        feats_train=None if fz is None else fz[tr],
                        feats_val=None if fz is None else fz[va],
                    )
                    info.update({k: v for k, v in info_t.items() if k != "history"})
                    pv = predict(
                        net,
                        ecg[va],
                        meta[va],
                        fs=model_fs,
                        settings=settings,
                        feats=None if fz is None else fz[va],
                    ).probs
                    pred_t = predict(
                        net,
                        ecg[te],
                        meta[te],
                        fs=model_fs,
                        settings=settings,
                        age_scale=(a_mean, a_std),
                        feats=None if fz is None else fz[te],
                    )
                    pt, weights_t, age_t = pred_t.probs, pred_t.modality_weights, pred_t.age_y
                if not ckpt.is_file():
                    np.savez(
                        ckpt,
                        pv=pv,
                        pt=pt,
                        weights=np.empty(0) if weights_t is None else weights_t,
                        age=np.empty(0) if age_t is None else age_t,
                        info=json.dumps(json_safe(info)),
                        seconds=time.perf_counter() - t0,
                    )
                val_probs[(test_fold, m)] = (pv, pt)
                thr = best_f1_thresholds(y_all[va], pv)
                oof[m]["probs"][te] = pt
                oof[m]["pred"][te] = (pt >= thr).astype(np.int64)
                if weights_t is not None:
                    oof[m]["weights"][te, : weights_t.shape[1]] = weights_t
                if age_t is not None:
                    oof[m]["age"][te] = age_t
                fold_auc[m].append(macro_auc(y_all[te], pt))
                info["thresholds"] = thr.round(4).tolist()
                info["test_macro_auc"] = fold_auc[m][-1]
                train_info[m].append(info)
                timings[m] += time.perf_counter() - t0
                bar.advance(task)
                log.info(
                    "fold %d %s: macro-AUC %.3f (%.0f s)",
                    test_fold,
                    m,
                    fold_auc[m][-1],
                    time.perf_counter() - t0,
                )

    # fixed-weight (1/2, 1/2) averages of two models' probabilities, chosen a priori (no weight
    # is fitted, so nothing is tuned on any fold)
    models = list(config.models)
    for name, (a, b) in ENSEMBLES.items():
        if a not in config.models or b not in config.models:
            continue
        oof[name] = {k: v.copy() for k, v in oof[a].items()}
        oof[name]["weights"][:] = np.nan
        oof[name]["age"][:] = np.nan
        fold_auc[name], train_info[name] = [], []
        timings[name] = timings[a] + timings[b]
        for test_fold, val_fold in plan:
            te, va = data.strat_fold == test_fold, data.strat_fold == val_fold
            pv = 0.5 * (val_probs[(test_fold, a)][0] + val_probs[(test_fold, b)][0])
            pt = 0.5 * (val_probs[(test_fold, a)][1] + val_probs[(test_fold, b)][1])
            thr = best_f1_thresholds(y_all[va], pv)
            oof[name]["probs"][te] = pt
            oof[name]["pred"][te] = (pt >= thr).astype(np.int64)
            fold_auc[name].append(macro_auc(y_all[te], pt))
            train_info[name].append({"test_fold": test_fold, "val_fold": val_fold})
        models.append(name)

    idx = np.flatnonzero(test_mask_all)
    y = y_all[idx]
    probs = {m: oof[m]["probs"][idx] for m in models}
    boots = _bootstrap_auc(y, probs, n_boot=config.n_boot, seed=config.seed)
    results: dict[str, Any] = {}
    for m in models:
        met = _class_metrics(y, probs[m], oof[m]["pred"][idx], names)
        b = boots[m][np.isfinite(boots[m])]
        met["macro_auc_ci95"] = [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))]
        met["fold_macro_auc"] = fold_auc[m]
        met["fold_mean_macro_auc"] = float(np.nanmean(fold_auc[m]))
        met["description"] = (
            MODELS[m][1] if m in MODELS else f"mean of {' and '.join(ENSEMBLES[m])}"
        )
        met["seconds"] = round(timings[m], 1)
        age_p = oof[m]["age"][idx]
        ok = np.isfinite(age_p) & np.isfinite(age_all[idx])
        met["age_mae_y"] = float(np.abs(age_p[ok] - age_all[idx][ok]).mean()) if ok.any() else None
        w = oof[m]["weights"][idx]
        w = w[:, np.isfinite(w).all(axis=0)]
        if (
            m in MODELS
            and w.shape[1] >= 2
            and (MODELS[m][0].startswith("attention") or MODELS[m][0] == "stacked")
        ):
            met["modality_weights_by_class"] = {
                name: {
                    mod: float(w[y[:, c] == 1, j].mean())
                    for j, mod in enumerate(("ecg", "metadata", "features")[: w.shape[1]])
                }
                for c, name in enumerate(names)
                if y[:, c].any()
            }
        met["folds"] = train_info[m]
        results[m] = met
    comparison: dict[str, Any] = {}
    for a, b_ in COMPARISONS:
        if a in results and b_ in results:
            diff = boots[a] - boots[b_]
            diff = diff[np.isfinite(diff)]
            entry = {
                "delta_pooled_macro_auc": results[a]["macro_auc"] - results[b_]["macro_auc"],
                "paired_bootstrap_ci95": [
                    float(np.percentile(diff, 2.5)),
                    float(np.percentile(diff, 97.5)),
                ],
            }
            if len(plan) >= 5:
                from scipy.stats import wilcoxon

                fa, fb = np.asarray(fold_auc[a]), np.asarray(fold_auc[b_])
                stat = wilcoxon(fa, fb)
                entry["wilcoxon_folds"] = {
                    "n": len(fa),
                    "statistic": float(stat.statistic),
                    "p_value": float(stat.pvalue),
                    "wins": int((fa > fb).sum()),
                }
            comparison[f"{a}_vs_{b_}"] = entry
    wall_s = time.perf_counter() - t_start
    report: dict[str, Any] = {
        "records": len(data),
        "records_evaluated": len(idx),
        "folds": len(plan),
        "protocol": config.protocol,
        "fs_hz": config.fs,
        "classes": list(names),
        "class_counts": {n: int(c) for n, c in zip(names, y.sum(axis=0), strict=True)},
        "models": results,
        "comparisons": comparison,
        "data_notes": list(data.notes),
        "settings": {
            "epochs": config.epochs,
            "seed": config.seed,
            "n_boot": config.n_boot,
            "train": base_settings.__dict__,
            "train_hybrid": hybrid_settings.__dict__,
            "hybrid_models": [m for m in config.models if m in HYBRID_MODELS],
            "stack_inner": config.stack_inner,
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
            "torch_threads": 1,
        },
        "wall_s": round(wall_s, 1),
        "cpu_s": round(time.process_time() - cpu_start, 1),
        "commit": git_head(short=True, default="unknown"),
        "machine": platform.processor() or platform.machine(),
    }
    (out / "multimodal.json").write_text(json.dumps(json_safe(report), indent=2, allow_nan=False))
    np.savez(
        out / "oof_predictions.npz",
        y=y,
        ecg_ids=data.ecg_ids[idx],
        **{f"{m}_probs": probs[m] for m in models},
    )
    _plots(out, y, probs, results, names)
    (out / "multimodal.md").write_text(_markdown(report))
    return report


def _plots(
    out: Path,
    y: np.ndarray,
    probs: dict[str, np.ndarray],
    results: dict[str, Any],
    names: tuple[str, ...],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4))
    for c, (ax, name) in enumerate(zip(np.atleast_1d(axes), names, strict=True)):
        if not 0 < y[:, c].sum() < len(y):
            continue
        for m, p in probs.items():
            fpr, tpr, _ = roc_curve(y[:, c], p[:, c])
            auc = results[m]["per_class"][name]["auc"]
            ax.plot(fpr, tpr, lw=1, label=f"{m} {auc:.3f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.5)
        ax.set_title(f"{name} (n={int(y[:, c].sum())})")
        ax.set_xlabel("false positive rate")
        ax.legend(fontsize=6, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("true positive rate")
    fig.tight_layout()
    fig.savefig(out / "roc_per_class.png", dpi=110)
    plt.close(fig)
    att = [m for m in results if "modality_weights_by_class" in results[m]]
    if att:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / len(att)
        for i, m in enumerate(att):
            w = results[m]["modality_weights_by_class"]
            ax.bar(
                np.arange(len(w)) + i * width, [v["metadata"] for v in w.values()], width, label=m
            )
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, list(names))
        ax.set_ylabel("metadata attention weight (ECG = 1 - this)")
        ax.set_title("modality attention by true class (out-of-fold)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "attention_by_class.png", dpi=110)
        plt.close(fig)


def _fmt_load(load: list[float] | None) -> str:
    return "unknown" if not load else " ".join(f"{v:.2f}" for v in load)


def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _markdown(r: dict[str, Any]) -> str:
    names = r["classes"]
    lines = [
        f"# Multimodal PTB-XL benchmark ({r['protocol']}, {r['records']} records, {r['folds']} fold(s))",
        "",
        f"Commit `{r['commit']}`, {r['fs_hz']} Hz, wall time {r['wall_s']:.0f} s, CPU time "
        f"{r.get('cpu_s', float('nan')):.0f} s (1 torch thread; shared machine: wall times are "
        "inflated by other load; load average at start "
        f"{_fmt_load(r['settings'].get('load_average_start'))}, at end "
        f"{_fmt_load(r['settings'].get('load_average_end'))}).",
        f"Class counts (evaluated records): {r['class_counts']}.",
        "",
        "| model | pooled macro-AUC [95 % CI] | "
        + " | ".join(f"AUC {n}" for n in names)
        + " | fold-mean macro-AUC | macro-F1 | label acc. | subset acc. | kappa | MCC | age MAE (y) | s |",
        "|---|---|" + "---|" * len(names) + "---|---|---|---|---|---|---|---|",
    ]
    for m, v in r["models"].items():
        per = " | ".join(
            "-" if v["per_class"][n]["auc"] is None else f"{v['per_class'][n]['auc']:.3f}"
            for n in names
        )
        age = "-" if v["age_mae_y"] is None else f"{v['age_mae_y']:.1f}"
        lines.append(
            f"| {m} ({v['description']}) | {v['macro_auc']:.3f} {_fmt_ci(v['macro_auc_ci95'])} | {per} | "
            f"{v['fold_mean_macro_auc']:.3f} | {v['macro_f1']:.3f} | {v['label_accuracy']:.3f} | {v['subset_accuracy']:.3f} | "
            f"{v['macro_kappa']:.3f} | {v['macro_mcc']:.3f} | {age} | {v['seconds']:.0f} |"
        )
    lines += [
        "",
        "Pooled: one AUC over all out-of-fold predictions; fold-mean: the mean of the per-fold "
        "values. The naive baseline scores a constant per fold (AUC 0.5 in every fold); pooled "
        "over folds whose training priors differ it moves away from 0.5, a reminder that pooled "
        "AUCs also reward calibration across folds. F1, accuracy, kappa and MCC use per-class "
        "thresholds chosen on each fold's validation fold; label accuracy is over all "
        "(record, class) pairs, subset accuracy counts records with all 5 labels right; kappa and "
        "MCC are per-class means.",
        "",
        "## Paired comparisons",
        "",
    ]
    for k, c in r["comparisons"].items():
        w = c.get("wilcoxon_folds")
        wtxt = (
            f"; Wilcoxon over {w['n']} folds p = {w['p_value']:.3f} ({w['wins']} wins)" if w else ""
        )
        lines.append(
            f"- {k}: delta pooled macro-AUC {c['delta_pooled_macro_auc']:+.4f}, paired bootstrap 95 % "
            f"CI {_fmt_ci(c['paired_bootstrap_ci95'])}{wtxt}"
        )
    for m, v in r["models"].items():
        if "modality_weights_by_class" in v:
            lines += [
                "",
                f"Modality attention of `{m}` (mean OOF weight, by true class): "
                + ", ".join(
                    f"{n}: " + " / ".join(f"{mod} {v:.2f}" for mod, v in w.items())
                    for n, w in v["modality_weights_by_class"].items()
                ),
            ]
    lines += ["", "## Data handling", ""] + [f"- {n}" for n in r["data_notes"]]
    lines += ["", "Plots: `roc_per_class.png`, `attention_by_class.png`.", ""]
    return "\n".join(lines)
