"""Training and prediction for the multimodal PTB-XL models (:mod:`heartline.models.multimodal`).

Everything that is fitted (the ECG and metadata scalers, the networks, the gradient boosting
baseline, the decision thresholds) is fitted on training folds only; the validation fold picks
the epoch and the thresholds; the test fold is only predicted. Conventions follow the PTB-XL
benchmark code of Strodthoff et al. (2021): per-lead standard scaling fitted on the training
data, random 2.5 s crops for training and the mean of sliding-window crops at prediction time.

References
----------
Strodthoff N, Wagner P, Schaeffter T, Samek W. Deep learning for ECG analysis: benchmarks and
insights from PTB-XL. IEEE J Biomed Health Inform 25(5):1519-1528 (2021).
Wang W, Tran D, Feiszli M. What makes training multi-modal classification networks hard?
CVPR (2020) (per-modality auxiliary losses).
Mehari T, Strodthoff N. Self-supervised representation learning from 12-lead ECG data. Comput
Biol Med 141:105114 (2022) (ECG augmentations).
Ke G et al. LightGBM: a highly efficient gradient boosting decision tree. NeurIPS (2017) (the
histogram algorithm of scikit-learn's ``HistGradientBoostingClassifier``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from heartline.data.ptbxl import METADATA_FEATURES, PtbxlMetadata
from heartline.errors import HeartlineWarning
from heartline.features.ecg12 import record_features
from heartline.models.multimodal import (
    N_META_INPUTS,
    MultimodalConfig,
    MultimodalNet,
    MultimodalOutput,
    ResNet1d,
)

__all__ = [
    "EcgScaler",
    "FeatureScaler",
    "MetaScaler",
    "Prediction",
    "TrainSettings",
    "augment_crops",
    "best_f1_thresholds",
    "build_network",
    "fit_gbm",
    "macro_auc",
    "predict",
    "predict_gbm",
    "record_features",
    "train_network",
]

log = logging.getLogger(__name__)


# -- scalers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EcgScaler:
    """Per-lead standardisation fitted on training records (``mean``/``std`` in mV, ``(leads,)``)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, signals: np.ndarray) -> EcgScaler:
        mean = signals.mean(axis=(0, 2))
        std = signals.std(axis=(0, 2))
        return cls(mean=mean.astype(np.float32), std=np.maximum(std, 1e-6).astype(np.float32))

    def transform(self, signals: np.ndarray) -> np.ndarray:
        return ((signals - self.mean[None, :, None]) / self.std[None, :, None]).astype(np.float32)


@dataclass(frozen=True)
class MetaScaler:
    """Standardisation of the metadata values over the *present* training values.

    :meth:`transform` returns the :data:`~heartline.models.multimodal.N_META_INPUTS` network
    inputs: the 5 standardised values with missing ones at 0 (the training mean), the 5 presence
    masks, and the over-89 flag. A column with no value at all in the training data gets mean 0
    and std 1 and a warning (its mask is then always 0).
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, meta: PtbxlMetadata) -> MetaScaler:
        mean = np.zeros(len(METADATA_FEATURES), dtype=np.float32)
        std = np.ones(len(METADATA_FEATURES), dtype=np.float32)
        for j, name in enumerate(METADATA_FEATURES):
            vals = meta.values[meta.present[:, j], j]
            if vals.size == 0:
                warnings.warn(
                    f"no training record has {name}; it enters the model as missing everywhere",
                    HeartlineWarning,
                    stacklevel=2,
                )
                continue
            mean[j] = vals.mean()
            std[j] = max(float(vals.std()), 1e-6)
        return cls(mean=mean, std=std)

    def transform(self, meta: PtbxlMetadata) -> np.ndarray:
        z = (meta.values - self.mean) / self.std
        z = np.where(meta.present, z, 0.0)
        out = np.concatenate(
            [z, meta.present.astype(np.float32), meta.age_over_89[:, None].astype(np.float32)],
            axis=1,
        ).astype(np.float32)
        assert out.shape[1] == N_META_INPUTS
        return out


@dataclass(frozen=True)
class FeatureScaler:
    """Standardisation of the hand-crafted ECG features (:func:`record_features`) for the
    hybrid's features branch, fitted on the training records' finite values.

    :meth:`transform` returns the standardised features clipped to +-``clip`` SD (a few extreme
    records would otherwise dominate a small network), with non-finite values (a record without
    three detectable beats has NaN beat features) at 0, the training mean, and one extra column
    that is 1 for such records, so the network knows the features are missing rather than
    average. Features with no finite training value get mean 0 and SD 1 (always 0 after the
    fill). :func:`record_features` already warns with the count of such records.
    """

    mean: np.ndarray
    std: np.ndarray
    clip: float = 5.0

    @classmethod
    def fit(cls, feats: np.ndarray, *, clip: float = 5.0) -> FeatureScaler:
        if feats.ndim != 2:
            raise ValueError(f"features must be (records, features), got shape {feats.shape}")
        finite = np.isfinite(feats)
        n = finite.sum(axis=0)
        x = np.where(finite, feats, 0.0)
        mean = np.where(n > 0, x.sum(axis=0) / np.maximum(n, 1), 0.0)
        var = np.where(finite, (feats - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1)
        std = np.where((n > 1) & (var > 1e-12), np.sqrt(var), 1.0)
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32), clip=clip)

    @property
    def n_outputs(self) -> int:
        """Width of :meth:`transform`'s output (features + the missing-features column)."""
        return len(self.mean) + 1

    def transform(self, feats: np.ndarray) -> np.ndarray:
        if feats.ndim != 2 or feats.shape[1] != len(self.mean):
            raise ValueError(
                f"features must be (records, {len(self.mean)}), got shape {feats.shape}"
            )
        z = (feats - self.mean) / self.std
        missing = ~np.isfinite(z).all(axis=1, keepdims=True)
        z = np.clip(np.where(np.isfinite(z), z, 0.0), -self.clip, self.clip)
        return np.concatenate([z, missing], axis=1).astype(np.float32)


# -- metrics used during training -----------------------------------------------------------------
def macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean ROC AUC over the classes that have both positives and negatives (NaN if none)."""
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(y[:, c], p[:, c]) for c in range(y.shape[1]) if 0 < y[:, c].sum() < y.shape[0]
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def best_f1_thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising F1 on (validation) data; 0.5 where a class is absent."""
    from sklearn.metrics import precision_recall_curve

    out = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        if y[:, c].sum() == 0:
            continue
        prec, rec, thr = precision_recall_curve(y[:, c], p[:, c])
        f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
        out[c] = float(thr[int(np.argmax(f1))])
    return out


# -- networks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    """Training settings of one network (saved with the run).

    ``epochs`` is the most epochs run (the one-cycle learning-rate schedule spans all of them);
    with ``patience`` set, training stops once the validation macro-AUC has not improved for
    that many epochs (early stopping on the validation fold, never the test fold). ``augment``
    applies standard ECG augmentation to the training crops (besides the random crop itself):
    a random gain per record and lead, uniform in ``1 +- gain_range``, and additive Gaussian
    noise of ``noise_sd`` (in units of the per-lead training SD), as in the augmentation sets
    compared by Strodthoff et al. (2021) and Mehari & Strodthoff (2022). ``class_weight``
    weighs each label's positives in the BCE loss by ``sqrt(negatives / positives)`` of the
    training records (label-wise class weights for the rare classes, e.g. HYP 8 %).
    ``aux_weight`` weighs the mean BCE of the auxiliary per-modality heads of a model built with
    ``aux_heads=True`` (Wang et al. 2020); models without them ignore it.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    crop_s: float = 2.5
    eval_stride_s: float = 2.5
    age_weight: float = 0.3
    seed: int = 0
    patience: int | None = None
    augment: bool = False
    gain_range: float = 0.1
    noise_sd: float = 0.05
    class_weight: bool = False
    aux_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 epoch or None, got {self.patience}")
        if not 0.0 <= self.gain_range < 1.0:
            raise ValueError(f"gain_range must be in [0, 1), got {self.gain_range}")
        if self.noise_sd < 0.0:
            raise ValueError(f"noise_sd must be >= 0, got {self.noise_sd}")


@dataclass(frozen=True)
class Prediction:
    """Per-record outputs: probabilities ``(N, C)``, modality weights ``(N, 2)``, age (years) or None."""

    probs: np.ndarray
    modality_weights: np.ndarray
    age_y: np.ndarray | None


def _crop_starts(n_samples: int, crop: int, stride: int) -> list[int]:
    if crop >= n_samples:
        return [0]
    starts = list(range(0, n_samples - crop + 1, stride))
    if starts[-1] != n_samples - crop:
        starts.append(n_samples - crop)
    return starts


@torch.no_grad()
def predict(
    model: nn.Module,
    ecg: np.ndarray,
    meta: np.ndarray,
    *,
    fs: float,
    settings: TrainSettings,
    age_scale: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 128,
    feats: np.ndarray | None = None,
) -> Prediction:
    """Mean over sliding crops of the sigmoid outputs (and modality weights, and age).

    ``feats``: the :class:`FeatureScaler` output per record, for models with the features branch.
    """
    model.eval()
    crop = round(settings.crop_s * fs)
    stride = max(1, round(settings.eval_stride_s * fs))
    starts = _crop_starts(ecg.shape[2], crop, stride)
    probs, weights, ages = [], [], []
    meta_t = torch.from_numpy(meta)
    feats_t = None if feats is None else torch.from_numpy(feats)
    for i in range(0, ecg.shape[0], batch_size):
        x = torch.from_numpy(ecg[i : i + batch_size])
        m = meta_t[i : i + batch_size]
        f = None if feats_t is None else feats_t[i : i + batch_size]
        p_sum, w_sum, a_sum = 0.0, 0.0, 0.0
        for s in starts:
            out: MultimodalOutput = model(x[:, :, s : s + crop], m, f)
            p_sum = p_sum + torch.sigmoid(out.logits)
            w_sum = w_sum + out.modality_weights
            if out.age is not None:
                a_sum = a_sum + out.age
        probs.append((p_sum / len(starts)).numpy())
        weights.append((w_sum / len(starts)).numpy())
        if isinstance(a_sum, torch.Tensor):
            ages.append((a_sum / len(starts)).numpy() * age_scale[1] + age_scale[0])
    return Prediction(
        probs=np.concatenate(probs),
        modality_weights=np.concatenate(weights),
        age_y=np.concatenate(ages) if ages else None,
    )


def augment_crops(
    x: np.ndarray, rng: np.random.Generator, *, settings: TrainSettings
) -> np.ndarray:
    """Random gain per record and lead and additive Gaussian noise on scaled ECG crops.

    ``x`` is ``(B, leads, samples)`` in per-lead standardised units; returns a new float32 array.
    """
    b, leads, _ = x.shape
    gain = rng.uniform(1.0 - settings.gain_range, 1.0 + settings.gain_range, size=(b, leads, 1))
    out = x * gain
    if settings.noise_sd > 0:
        out = out + rng.normal(0.0, settings.noise_sd, size=x.shape)
    return out.astype(np.float32)


def build_network(kind: str, *, config: MultimodalConfig) -> nn.Module:
    """``"resnet1d"`` or a :class:`MultimodalNet` (any other kind)."""
    if kind == "resnet1d":
        return ResNet1d(n_leads=config.n_leads, n_classes=config.n_classes)
    return MultimodalNet(config)


def train_network(
    model: nn.Module,
    *,
    train: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    fs: float,
    settings: TrainSettings,
    feats_train: np.ndarray | None = None,
    feats_val: np.ndarray | None = None,
) -> tuple[nn.Module, dict[str, object]]:
    """Train with BCE (+ age loss), keep the epoch with the best validation macro-AUC.

    With ``settings.patience`` set, stops early once the validation macro-AUC has not improved
    for ``patience`` epochs; the info dict gives ``best_epoch`` and ``epochs_run``.

    Parameters
    ----------
    train : (ecg, meta, labels, age_z)
        Scaled ECG ``(N, leads, T)``, metadata inputs ``(N, 11)``, labels ``(N, C)``, standardised
        age ``(N,)`` with NaN where unknown (those records get no age loss).
    val : (ecg, meta, labels)
        The validation fold (never the test fold).
    feats_train, feats_val : numpy.ndarray, optional
        :class:`FeatureScaler` outputs, for models with the ECG-features branch.
    """
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    ecg, meta, y, age = train
    crop = round(settings.crop_s * fs)
    if crop > ecg.shape[2]:
        raise ValueError(
            f"crop_s={settings.crop_s} s is longer than the records ({ecg.shape[2] / fs} s)"
        )
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * int(np.ceil(len(ecg) / settings.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=max(steps, 1))
    pos_weight = None
    if settings.class_weight:
        pos = y.mean(axis=0).clip(1.0 / len(y), 1.0 - 1.0 / len(y))
        pos_weight = torch.from_numpy(np.sqrt((1.0 - pos) / pos).astype(np.float32))
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    feats_t = None if feats_train is None else torch.from_numpy(feats_train)
    y_t = torch.from_numpy(y.astype(np.float32))
    age_t = torch.from_numpy(age.astype(np.float32))
    best = (-np.inf, 0, None)
    history: list[dict[str, float]] = []
    for epoch in range(settings.epochs):
        model.train()
        order = rng.permutation(len(ecg))
        total = 0.0
        for i in range(0, len(order), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            if len(idx) < 2:  # batch norm needs two records
                continue
            starts = rng.integers(0, ecg.shape[2] - crop + 1, size=len(idx))
            xb = np.stack([ecg[j, :, s : s + crop] for j, s in zip(idx, starts, strict=True)])
            if settings.augment:
                xb = augment_crops(xb, rng, settings=settings)
            x = torch.from_numpy(xb)
            out = model(x, torch.from_numpy(meta[idx]), None if feats_t is None else feats_t[idx])
            loss = bce(out.logits, y_t[idx])
            if out.aux_logits is not None and settings.aux_weight > 0:
                n_mod = out.aux_logits.shape[1]
                aux = sum(bce(out.aux_logits[:, k], y_t[idx]) for k in range(n_mod)) / n_mod
                loss = loss + settings.aux_weight * aux
            if out.age is not None and settings.age_weight > 0:
                a = age_t[idx]
                ok = torch.isfinite(a)
                if bool(ok.any()):
                    loss = loss + settings.age_weight * nn.functional.smooth_l1_loss(
                        out.age[ok], a[ok]
                    )
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        pv = predict(model, val[0], val[1], fs=fs, settings=settings, feats=feats_val).probs
        auc = macro_auc(val[2], pv)
        history.append({"epoch": epoch + 1, "train_loss": total / len(ecg), "val_macro_auc": auc})
        if np.isfinite(auc) and auc > best[0]:
            best = (auc, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if settings.patience is not None and epoch + 1 - best[1] >= settings.patience:
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    return model, {
        "best_epoch": best[1],
        "best_val_macro_auc": float(best[0]),
        "epochs_run": len(history),
        "history": history,
    }


# -- gradient boosting on ECG features -----------------------------------------------------------
# record_features lives in the torch-free heartline.features.ecg12 (the run time computes it too)
def fit_gbm(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> list[object]:
    """One ``HistGradientBoostingClassifier`` per class (NaN inputs handled natively)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    models = []
    for c in range(y.shape[1]):
        clf = HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=10,
            l2_regularization=1.0,
            max_features=0.5,
            random_state=seed,
        )
        clf.fit(x, y[:, c])
        models.append(clf)
    return models


def predict_gbm(models: list[object], x: np.ndarray) -> np.ndarray:
    """``(N, C)`` probabilities of :func:`fit_gbm`'s models."""
    return np.stack([m.predict_proba(x)[:, 1] for m in models], axis=1)  # type: ignore[attr-defined]
