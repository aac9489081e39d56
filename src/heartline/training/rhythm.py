"""Rhythm classification (CinC 2017 classes N / A / O / ~): arrays, training, prediction, metrics.

* :func:`build_rhythm_arrays`: every record's network input at a fixed model rate
  (:func:`heartline.features.rhythm.rhythm_model_signal`), zero-padded with its length, plus
  its RR-irregularity features from Heartline's detector
  (:func:`heartline.features.rhythm.rhythm_rr_features`), cached on disk by record set;
* :func:`fit_rhythm`: AdamW, class-weighted cross-entropy (weights ``(n / n_c) ** power``, so
  the rare AF and noise classes count explicitly), random crops (15 s in the benchmark) of longer records, random
  gain and polarity (hand-held single-lead recordings are often inverted), early stopping on the
  validation CinC F1;
* :func:`predict_rhythm_proba`: the mean class probability over 30 s windows (15 s apart) of
  each record;
* :func:`rhythm_metrics`: the challenge's F1 (mean of F1_N, F1_A, F1_O; Clifford et al. 2017),
  per-class Se / +P / F1 / AUC, confusion matrix, 95 % bootstrap CIs by record.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from heartline.data.cinc2017 import CINC2017_CLASSES, read_cinc2017
from heartline.features.rhythm import (
    HAND_FEATURE_NAMES,
    RR_FEATURE_NAMES,
    rhythm_hand_features,
    rhythm_model_signal,
    rhythm_rr_features,
)
from heartline.models.rhythm import RhythmNet

__all__ = [
    "RhythmArrays",
    "RhythmFitConfig",
    "RhythmMetrics",
    "build_hand_features",
    "build_rhythm_arrays",
    "cinc_f1",
    "class_weights",
    "export_rhythm_onnx",
    "fit_rhythm",
    "predict_rhythm_proba",
    "rhythm_cache_path",
    "rhythm_metrics",
    "window_batches",
    "with_hand_features",
]

log = logging.getLogger(__name__)
_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RhythmArrays:
    """Network inputs of a set of records.

    Attributes
    ----------
    records : numpy.ndarray
        Record names ``(n,)``.
    y : numpy.ndarray
        int64 class index in :data:`heartline.data.cinc2017.CINC2017_CLASSES` order (``-1``
        when unknown).
    signals : numpy.ndarray
        float32 ``(n, max_len)`` model-rate signals, zero-padded.
    lengths : numpy.ndarray
        int64 ``(n,)`` valid samples of each row.
    rr : numpy.ndarray
        float32 ``(n, len(RR_FEATURE_NAMES))`` RR-irregularity features.
    fs_hz : float
        Model rate of ``signals``.
    """

    records: np.ndarray
    y: np.ndarray
    signals: np.ndarray
    lengths: np.ndarray
    rr: np.ndarray
    fs_hz: float

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def subset(self, idx: np.ndarray) -> RhythmArrays:
        """Rows ``idx`` (indices or a boolean mask)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return RhythmArrays(
            self.records[idx],
            self.y[idx],
            self.signals[idx],
            self.lengths[idx],
            self.rr[idx],
            self.fs_hz,
        )


def default_cache_dir() -> Path:
    """The per-user cache folder for prepared rhythm arrays (platformdirs)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("heartline")) / "rhythm"


def rhythm_cache_path(
    records: Sequence[str], fs_hz: float, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Cache file of :func:`build_rhythm_arrays` for this record list and model rate."""
    key = hashlib.sha256(
        ("|".join(records) + f"|{float(fs_hz)}|v{_CACHE_VERSION}").encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / f"cinc2017_{key}.npz"


def build_rhythm_arrays(
    index: pd.DataFrame,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    fs_hz: float = 100.0,
    cache_dir: str | os.PathLike[str] | None = None,
    on_record: Callable[[str], None] | None = None,
) -> RhythmArrays:
    """Read, preprocess and cache the records of ``index`` (``record`` and ``label`` columns).

    The cache file (``<cache_dir>/cinc2017_<hash>.npz``, the user cache by default) is keyed by
    the record list, the model rate and the code version; the R-peak detector over all 5,543
    records costs about a minute once.

    Parameters
    ----------
    index : pandas.DataFrame
        From :func:`heartline.data.cinc2017.load_cinc2017_index` (or a subset of its rows).
    data_dir : path, optional
        Data directory (see :mod:`heartline.data.paths`).
    fs_hz : float
        Model rate in Hz.
    cache_dir : path, optional
        Where to keep the cache; ``None`` uses the user cache directory.
    on_record : callable, optional
        Called with each record name as it is processed (progress bars).
    """
    records = [str(r) for r in index["record"]]
    labels = [str(v) for v in index["label"]] if "label" in index else ["?"] * len(records)
    path = rhythm_cache_path(records, fs_hz, cache_dir)
    cache = path.parent
    y = np.asarray(
        [CINC2017_CLASSES.index(v) if v in CINC2017_CLASSES else -1 for v in labels],
        dtype=np.int64,
    )
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            log.info("rhythm arrays from cache %s", path)
            return RhythmArrays(
                np.asarray(records), y, z["signals"], z["lengths"], z["rr"], float(fs_hz)
            )
    sigs: list[np.ndarray] = []
    rrs: list[np.ndarray] = []
    for rec in records:
        x, fs = read_cinc2017(rec, data_dir=data_dir)
        sigs.append(rhythm_model_signal(x, fs=fs, fs_model_hz=fs_hz))
        rrs.append(rhythm_rr_features(x, fs=fs))
        if on_record is not None:
            on_record(rec)
    lengths = np.asarray([s.size for s in sigs], dtype=np.int64)
    signals = np.zeros((len(sigs), int(lengths.max(initial=1))), dtype=np.float32)
    for i, s in enumerate(sigs):
        signals[i, : s.size] = s
    rr = np.stack(rrs).astype(np.float32) if rrs else np.zeros((0, len(RR_FEATURE_NAMES)))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, signals=signals, lengths=lengths, rr=rr)
    tmp.replace(path)
    return RhythmArrays(np.asarray(records), y, signals, lengths, rr, float(fs_hz))


def build_hand_features(
    records: Sequence[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_record: Callable[[str], None] | None = None,
) -> np.ndarray:
    """:data:`heartline.features.rhythm.HAND_FEATURE_NAMES` of every record, cached on disk.

    The cache file (``<cache_dir>/cinc2017_hand_<hash>.npy``) is keyed by the record list, the
    feature names and the code version. About 30 ms per record.
    """
    records = [str(r) for r in records]
    key = hashlib.sha256(
        (
            "|".join(records) + "|" + ",".join(HAND_FEATURE_NAMES) + f"|hand|v{_CACHE_VERSION}"
        ).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"cinc2017_hand_{key}.npy"
    if path.is_file():
        return np.load(path)
    rows = []
    for rec in records:
        x, fs = read_cinc2017(rec, data_dir=data_dir)
        rows.append(rhythm_hand_features(x, fs=fs))
        if on_record is not None:
            on_record(rec)
    out = (
        np.stack(rows).astype(np.float32)
        if rows
        else np.zeros((0, len(HAND_FEATURE_NAMES)), np.float32)
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def with_hand_features(arrays: RhythmArrays, hand: np.ndarray) -> RhythmArrays:
    """``arrays`` with its ``rr`` columns replaced by the hand features ``hand`` (same rows)."""
    hand = np.asarray(hand, dtype=np.float32)
    if hand.shape[0] != len(arrays):
        raise ValueError(f"hand has {hand.shape[0]} rows, arrays {len(arrays)}")
    return RhythmArrays(
        arrays.records, arrays.y, arrays.signals, arrays.lengths, hand, arrays.fs_hz
    )


# --------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------
def _window_starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def window_batches(
    arrays: RhythmArrays, *, window_s: float = 30.0, stride_s: float = 15.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every record cut into ``window_s`` windows ``stride_s`` apart (shorter ones padded).

    Returns
    -------
    tuple
        ``x`` ``(m, window)``, ``mask`` ``(m, window)``, ``rr`` ``(m, n_rr)`` and ``owner``
        ``(m,)`` (the row of ``arrays`` each window comes from).
    """
    w = round(window_s * arrays.fs_hz)
    s = max(1, round(stride_s * arrays.fs_hz))
    xs, ms, rrs, owner = [], [], [], []
    for i in range(len(arrays)):
        n = int(arrays.lengths[i])
        for a in _window_starts(n, w, s):
            seg = arrays.signals[i, a : min(a + w, n)]
            row = np.zeros(w, dtype=np.float32)
            row[: seg.size] = seg
            mask = np.zeros(w, dtype=np.float32)
            mask[: seg.size] = 1.0
            xs.append(row)
            ms.append(mask)
            rrs.append(arrays.rr[i])
            owner.append(i)
    n_rr = arrays.rr.shape[1]
    if not xs:
        return (
            np.zeros((0, w), np.float32),
            np.zeros((0, w), np.float32),
            np.zeros((0, n_rr), np.float32),
            np.zeros(0, np.int64),
        )
    return np.stack(xs), np.stack(ms), np.stack(rrs), np.asarray(owner, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def _f1_from_cm(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def cinc_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The challenge score: mean of the F1 of N, A and O (Clifford et al. 2017).

    >>> round(cinc_f1(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 2])), 3)
    0.889
    """
    cm = np.bincount(np.asarray(y_true) * 4 + np.asarray(y_pred), minlength=16).reshape(4, 4)
    return float(np.nanmean(_f1_from_cm(cm)[:3]))


@dataclass(frozen=True)
class RhythmMetrics:
    """Scores of one model (fractions). ``to_dict()`` gives JSON-ready values."""

    n_records: int
    cinc_f1: float
    accuracy: float
    se: dict[str, float]
    ppv: dict[str, float]
    f1: dict[str, float]
    auc: dict[str, float]
    confusion_matrix: np.ndarray
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        return {
            "n_records": self.n_records,
            "cinc_f1": num(self.cinc_f1),
            "accuracy": num(self.accuracy),
            "classes": {
                c: {
                    "se": num(self.se[c]),
                    "ppv": num(self.ppv[c]),
                    "f1": num(self.f1[c]),
                    "auc": num(self.auc[c]),
                    "support": int(self.confusion_matrix[i].sum()),
                }
                for i, c in enumerate(CINC2017_CLASSES)
            },
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "confusion_matrix_axes": {
                "rows": "reference",
                "columns": "predicted",
                "labels": list(CINC2017_CLASSES),
            },
            "ci95": {k: [num(a), num(b)] for k, (a, b) in self.ci95.items()},
            "ci95_resampling": "record",
        }


def rhythm_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    has_scores: bool = True,
) -> RhythmMetrics:
    """Score ``(n, 4)`` class probabilities against labels (one row per record).

    ``has_scores=False`` for a rule that gives hard labels only (AUC is then not reported).
    Bootstrap: records resampled with replacement ``n_bootstrap`` times; 2.5-97.5 percentiles.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (y_true.size, 4):
        raise ValueError(f"proba must have shape ({y_true.size}, 4), got {proba.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() > 3):
        raise ValueError("y_true must hold class indices 0..3")
    y_pred = proba.argmax(1)
    cm = np.bincount(y_true * 4 + y_pred, minlength=16).reshape(4, 4)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = tp / cm.sum(1)
        ppv = tp / cm.sum(0)
    f1 = _f1_from_cm(cm)
    auc = np.full(4, np.nan)
    if has_scores:
        from sklearn.metrics import roc_auc_score

        for c in range(4):
            pos = y_true == c
            if pos.any() and (~pos).any():
                auc[c] = float(roc_auc_score(pos, proba[:, c]))
    ci: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0 and y_true.size:
        rng = np.random.default_rng(seed)
        cell = y_true * 4 + y_pred
        samples: dict[str, list[float]] = {
            k: [] for k in ("cinc_f1", "f1_N", "f1_A", "f1_O", "f1_~")
        }
        for _ in range(int(n_bootstrap)):
            draw = rng.integers(0, y_true.size, size=y_true.size)
            cmb = np.bincount(cell[draw], minlength=16).reshape(4, 4)
            fb = _f1_from_cm(cmb)
            samples["cinc_f1"].append(float(np.nanmean(fb[:3])))
            for i, c in enumerate(CINC2017_CLASSES):
                samples[f"f1_{c}"].append(float(fb[i]))
        for k, v in samples.items():
            arr = np.asarray(v)
            arr = arr[np.isfinite(arr)]
            ci[k] = (
                (float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5)))
                if arr.size
                else (float("nan"), float("nan"))
            )
    names = CINC2017_CLASSES
    return RhythmMetrics(
        n_records=int(y_true.size),
        cinc_f1=float(np.nanmean(f1[:3])),
        accuracy=float(tp.sum() / max(cm.sum(), 1)),
        se={c: float(se[i]) for i, c in enumerate(names)},
        ppv={c: float(ppv[i]) for i, c in enumerate(names)},
        f1={c: float(f1[i]) for i, c in enumerate(names)},
        auc={c: float(auc[i]) for i, c in enumerate(names)},
        confusion_matrix=cm,
        ci95=ci,
    )


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RhythmFitConfig:
    """Training settings of :func:`fit_rhythm`.

    ``class_weight_power``: cross-entropy weight of class c is ``(n / (4 n_c)) ** power``
    (0: unweighted, 1: inverse frequency). ``patience``: epochs without a better validation
    CinC F1 before stopping. ``max_seconds``: wall-clock cap on training (0: none).
    ``train_crop_s``: length of the random training crops (``None``: ``window_s``); shorter
    crops cost less per epoch, and the masked pooling lets the network score 30 s windows.
    """

    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    class_weight_power: float = 0.5
    window_s: float = 30.0
    patience: int = 4
    seed: int = 0
    num_threads: int = 1
    max_seconds: float = 0.0
    augment: bool = True
    train_crop_s: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s}")


def crop_batch(
    arrays: RhythmArrays, idx: np.ndarray, w: int, rng: np.random.Generator, augment: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = np.zeros((idx.size, w), dtype=np.float32)
    m = np.zeros((idx.size, w), dtype=np.float32)
    for j, i in enumerate(idx):
        n = int(arrays.lengths[i])
        a = int(rng.integers(0, n - w + 1)) if (augment and n > w) else max(0, (n - w) // 2)
        seg = arrays.signals[i, a : min(a + w, n)]
        x[j, : seg.size] = seg
        m[j, : seg.size] = 1.0
    if augment:
        gain = rng.uniform(0.7, 1.3, size=(idx.size, 1)).astype(np.float32)
        sign = np.where(rng.random((idx.size, 1)) < 0.5, -1.0, 1.0).astype(np.float32)
        x *= gain * sign
    return torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(arrays.rr[idx])


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """``(n / (4 n_c)) ** power`` for the four classes (a class absent from ``y`` gets 1)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=4).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / (4 * np.maximum(counts, 1))) ** power, 1.0)
    return w.astype(np.float32)


def fit_rhythm(
    model: RhythmNet,
    train: RhythmArrays,
    val: RhythmArrays | None,
    config: RhythmFitConfig | None = None,
    *,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[RhythmNet, list[dict[str, float]]]:
    """Train ``model`` on ``train``; keep the weights with the best validation CinC F1.

    The RR-feature standardisation is fitted on ``train`` only and stored in the model.
    Without ``val`` every epoch runs and the last weights are kept.

    Returns
    -------
    tuple
        The trained model (eval mode) and one history dict per epoch (``epoch``,
        ``train_loss``, ``val_cinc_f1``, ``seconds``).
    """
    cfg = config or RhythmFitConfig()
    if len(train) == 0 or (train.y < 0).any():
        raise ValueError("train must hold labelled records (y in 0..3)")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(cfg.num_threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    try:
        if model.n_rr:
            rr = torch.from_numpy(train.rr.astype(np.float32))
            model.set_rr_scaler(rr.mean(0), rr.std(0))
        weight = torch.from_numpy(class_weights(train.y, cfg.class_weight_power))
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.2
        )
        w = round((cfg.train_crop_s or cfg.window_s) * train.fs_hz)
        y_all = torch.from_numpy(train.y)
        history: list[dict[str, float]] = []
        best = (-1.0, copy.deepcopy(model.state_dict()))
        stale = 0
        t0 = time.perf_counter()
        for epoch in range(cfg.epochs):
            model.train()
            order = rng.permutation(len(train))
            total = 0.0
            t_ep = time.perf_counter()
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x, m, r = crop_batch(train, idx, w, rng, cfg.augment)
                loss = loss_fn(model(x, m, r), y_all[idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()
                total += float(loss.detach()) * idx.size
            rec: dict[str, float] = {
                "epoch": float(epoch + 1),
                "train_loss": total / len(train),
                "seconds": time.perf_counter() - t_ep,
            }
            if val is not None and len(val):
                p = predict_rhythm_proba(model, val, window_s=cfg.window_s)
                score = cinc_f1(val.y, p.argmax(1))
                rec["val_cinc_f1"] = score
                if score > best[0]:
                    best = (score, copy.deepcopy(model.state_dict()))
                    stale = 0
                else:
                    stale += 1
            history.append(rec)
            log.info("rhythm epoch %d: %s", epoch + 1, rec)
            if on_epoch is not None:
                on_epoch(rec)
            if val is not None and stale >= cfg.patience:
                break
            if cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds:
                log.info("rhythm training stopped by max_seconds=%s", cfg.max_seconds)
                break
        if val is not None and len(val) and best[0] >= 0:
            model.load_state_dict(best[1])
        model.eval()
        return model, history
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def predict_rhythm_proba(
    model: RhythmNet,
    arrays: RhythmArrays,
    *,
    window_s: float = 30.0,
    stride_s: float = 15.0,
    batch_size: int = 128,
) -> np.ndarray:
    """Class probabilities ``(n, 4)``: the mean softmax over each record's windows."""
    was_training = model.training
    model.eval()
    x, m, rr, owner = window_batches(arrays, window_s=window_s, stride_s=stride_s)
    probs = np.zeros((x.shape[0], 4), dtype=np.float64)
    for a in range(0, x.shape[0], batch_size):
        sl = slice(a, a + batch_size)
        out = model(torch.from_numpy(x[sl]), torch.from_numpy(m[sl]), torch.from_numpy(rr[sl]))
        probs[sl] = torch.softmax(out, dim=1).numpy()
    if was_training:
        model.train()
    out_p = np.zeros((len(arrays), 4), dtype=np.float64)
    np.add.at(out_p, owner, probs)
    counts = np.bincount(owner, minlength=len(arrays)).astype(np.float64)
    return out_p / np.maximum(counts, 1)[:, None]


def rr_feature_names() -> Sequence[str]:
    """Column names of :attr:`RhythmArrays.rr`."""
    return RR_FEATURE_NAMES


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
class _ProbaModule(torch.nn.Module):
    def __init__(self, net: RhythmNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x, mask, rr), dim=1)


class _MeanProbaModule(torch.nn.Module):
    """Mean of several networks' softmax outputs (the stacked hybrid's two networks)."""

    def __init__(self, nets: Sequence[RhythmNet]) -> None:
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.nets[0](x, mask, rr), dim=1)
        for net in self.nets[1:]:
            p = p + torch.softmax(net(x, mask, rr), dim=1)
        return p / len(self.nets)


#: Added to the networks' mean probability before the log in the stacked head's input.
STACK_LOG_EPS = 1e-6


def _append_stacked_head(m: Any, head: Any, n_rr: int) -> Any:
    """Append the boosted head to an exported ``net_proba`` graph (outputs ``proba``, ``record_proba``).

    Head input, as in :func:`heartline.bench.rhythm.fit_stacked_hybrid`: ``[rr, log(p + 1e-6)]``
    in double precision. ``proba`` ``(m, 4)``: the head on each window's own network mean (the
    stream's one-window case). ``record_proba`` ``(1, 4)``: the head on the mean of the networks'
    probabilities over all ``m`` windows with the first window's ``rr`` (the windows of one
    recording, as the cross-validation scored records).
    """
    from onnx import TensorProto, helper, numpy_helper

    from heartline.training.gbm_onnx import ML_OPSET, hgb_classifier_nodes

    if list(head.classes_) != [0, 1, 2, 3]:
        raise ValueError(f"the head must know the four classes, has {list(head.classes_)}")
    if int(head.n_features_in_) != n_rr + 4:
        raise ValueError(f"head takes {head.n_features_in_} inputs, expected {n_rr + 4}")
    g = m.graph
    del g.output[:]
    D = TensorProto.DOUBLE
    c = numpy_helper.from_array
    g.initializer.extend(
        [
            c(np.asarray(STACK_LOG_EPS, dtype=np.float64), name="stack_eps"),
            c(np.asarray([0], dtype=np.int64), name="stack_axis0"),
            c(np.asarray([1], dtype=np.int64), name="stack_one"),
            c(np.asarray([-1], dtype=np.int64), name="stack_minus1"),
            c(np.asarray([np.iinfo(np.int64).max], dtype=np.int64), name="stack_end"),
        ]
    )
    mk = helper.make_node
    nodes = [
        mk("Cast", ["rr"], ["stack_rr"], to=D),
        mk("Cast", ["net_proba"], ["stack_p"], to=D),
        mk("Add", ["stack_p", "stack_eps"], ["stack_p_eps"]),
        mk("Log", ["stack_p_eps"], ["stack_logp"]),
        mk("Concat", ["stack_rr", "stack_logp"], ["stack_in_w"], axis=1),
        mk("ReduceMean", ["stack_p", "stack_axis0"], ["stack_p_rec"], keepdims=1),
        mk("Add", ["stack_p_rec", "stack_eps"], ["stack_p_rec_eps"]),
        mk("Log", ["stack_p_rec_eps"], ["stack_logp_rec"]),
        mk("Slice", ["stack_rr", "stack_axis0", "stack_one", "stack_axis0"], ["stack_rr0"]),
        mk("Concat", ["stack_rr0", "stack_logp_rec"], ["stack_in_r"], axis=1),
        mk("Concat", ["stack_in_w", "stack_in_r"], ["stack_in"], axis=0),
    ]
    head_nodes, head_inits = hgb_classifier_nodes(head, "stack_in", "stack_out", prefix="head_")
    nodes += head_nodes
    nodes += [
        mk("Slice", ["stack_out", "stack_axis0", "stack_minus1", "stack_axis0"], ["proba"]),
        mk("Slice", ["stack_out", "stack_minus1", "stack_end", "stack_axis0"], ["record_proba"]),
    ]
    g.node.extend(nodes)
    g.initializer.extend(head_inits)
    g.output.extend(
        [
            helper.make_tensor_value_info("proba", D, ["batch", 4]),
            helper.make_tensor_value_info("record_proba", D, [1, 4]),
            helper.make_tensor_value_info("net_proba", TensorProto.FLOAT, ["batch", 4]),
        ]
    )
    if not any(o.domain == "ai.onnx.ml" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    m.ir_version = min(int(m.ir_version), 10)
    return m


def export_rhythm_onnx(
    model: RhythmNet | Sequence[RhythmNet],
    path: str | os.PathLike[str],
    *,
    name: str,
    window_s: float = 30.0,
    stride_s: float = 15.0,
    min_duration_s: float = 9.0,
    extra_metadata: dict[str, str] | None = None,
    head: Any = None,
) -> Path:
    """Export ``model`` as one ONNX file (inputs ``x``, ``mask``, ``rr``; output ``proba``).

    The batch dimension is dynamic; the window length is ``window_s * model.fs_hz``. The
    metadata carries the rate, window, stride and minimum duration that
    :class:`heartline.edge.rhythm.OnnxRhythmClassifier` reads. Uses the dynamo exporter with
    ``external_data=False`` (one self-contained file; see STACK.md).

    The stacked hybrid: ``model`` is a sequence of networks (their softmax outputs averaged,
    output ``net_proba``) and ``head`` the fitted ``HistGradientBoostingClassifier`` on
    ``[rr, log(net_proba + 1e-6)]``, appended as an ``ai.onnx.ml`` TreeEnsemble
    (:mod:`heartline.training.gbm_onnx`): outputs ``proba`` (per window), ``record_proba``
    (all windows of one recording) and ``net_proba``; metadata ``heartline.head`` is ``gbm``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nets = list(model) if isinstance(model, (list, tuple)) else [model]
    nets = [n.eval() for n in nets]
    if head is not None and len(nets) < 1:
        raise ValueError("a stacked model needs at least one network")
    if len({(n.fs_hz, n.n_rr) for n in nets}) != 1:
        raise ValueError("the networks must share the rate and the feature count")
    model = nets[0]
    module: torch.nn.Module = _ProbaModule(model) if len(nets) == 1 else _MeanProbaModule(nets)
    w = round(window_s * model.fs_hz)
    n_rr = max(model.n_rr, 1) if model.n_rr else len(RR_FEATURE_NAMES)
    args = (torch.zeros(2, w), torch.ones(2, w), torch.zeros(2, n_rr))
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=["x", "mask", "rr"],
        output_names=["net_proba" if head is not None else "proba"],
        dynamic_shapes={"x": {0: batch}, "mask": {0: batch}, "rr": {0: batch}},
        opset_version=18,
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    meta = {
        "heartline.model": name,
        "heartline.classes": ",".join(CINC2017_CLASSES),
        "heartline.fs_hz": str(model.fs_hz),
        "heartline.window_s": str(window_s),
        "heartline.stride_s": str(stride_s),
        "heartline.min_duration_s": str(min_duration_s),
        "heartline.n_rr": str(n_rr),
        "heartline.rr_features": ",".join(
            HAND_FEATURE_NAMES if n_rr == len(HAND_FEATURE_NAMES) else RR_FEATURE_NAMES
        ),
        **(extra_metadata or {}),
    }
    m = onnx.load(str(path))
    if head is not None:
        m = _append_stacked_head(m, head, n_rr)
        meta.update(
            {
                "heartline.head": "gbm",
                "heartline.n_networks": str(len(nets)),
                "heartline.stack_log_eps": repr(STACK_LOG_EPS),
            }
        )
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path
