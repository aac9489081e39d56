"""Local training from given weights: what one hospital does in one federated round.

No federated framework here (the Flower adapters in :mod:`heartline.federated` call these
functions, as Flower's PyTorch quickstart keeps ``task.py`` free of Flower). The same functions
train the *central* baseline of the federated benchmark, so that both see the same model, the
same optimiser and the same number of local epochs.

* :func:`build_federated_beat_net`: the small, fast hybrid CNN-LSTM configuration used for
  federated beat classification (:data:`FEDERATED_BEAT_PARAMS`).
* :func:`train_local`: ``epochs`` passes of Adam over the local beats (inverse-frequency class
  weights, chunks of consecutive beats as :func:`heartline.training.trainer.train_net` does),
  with the optional FedProx proximal term ``mu / 2 * ||w - w_global||^2`` (Li et al. 2020).
* :func:`evaluate_local`: loss and confusion matrix of the current weights on local beats, so a
  server can pool confusion matrices into one macro-F1 without seeing any beat.
* :func:`state_arrays` / :func:`load_state_arrays`: weights as ``name -> numpy array``.
* the same for the CinC 2017 rhythm task: :func:`build_federated_rhythm_net`,
  :func:`train_local_rhythm` (over :mod:`heartline.training.rhythm`'s batches),
  :func:`evaluate_local_rhythm`.

References
----------
McMahan B et al. Communication-efficient learning of deep networks from decentralized data.
AISTATS (2017).
Li T et al. Federated optimization in heterogeneous networks. MLSys (2020).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from heartline.data.beat_set import BeatSet
from heartline.models.cpu_math import flush_denormals
from heartline.models.deep import BeatNet
from heartline.training.config import TrainConfig
from heartline.training.trainer import (
    BatchMaker,
    class_weights,
    epoch_targets,
    macro_f1,
    predict_logits,
)

__all__ = [
    "CINC2017_PUBLISHED_COUNTS",
    "FEDERATED_BEAT_MODEL",
    "FEDERATED_BEAT_PARAMS",
    "FEDERATED_RHYTHM_MODEL",
    "FEDERATED_RHYTHM_PARAMS",
    "RHYTHM_HEAD_MODELS",
    "LocalConfig",
    "LocalEval",
    "LocalResult",
    "beat_label_weights",
    "build_federated_beat_net",
    "build_federated_rhythm_net",
    "build_rhythm_head",
    "confusion_macro_f1",
    "dp_sgd_epsilon",
    "dp_sgd_noise",
    "dp_sgd_steps",
    "evaluate_local",
    "evaluate_local_rhythm",
    "label_skew_adjustment",
    "load_state_arrays",
    "local_validation_split",
    "make_dp_compatible",
    "pooled_statistics",
    "public_rhythm_class_weights",
    "public_rhythm_logit_adjustment",
    "rhythm_label_weights",
    "site_statistics",
    "state_arrays",
    "subsample_normal",
    "subsample_rhythm_normal",
    "train_local",
    "train_local_rhythm",
]

#: Registry name and parameters of the federated beat model: the hybrid CNN-LSTM, narrowed so a
#: round of local training takes seconds on one core (the shipped model uses the defaults).
FEDERATED_BEAT_MODEL = "hybrid"
FEDERATED_BEAT_PARAMS: dict[str, Any] = {
    "channels": 8,
    "feature_dim": 16,
    "lstm_hidden": 16,
    "context_k": 4,
}
N_BEAT_CLASSES = 5


@dataclass(frozen=True)
class LocalConfig:
    """Local training settings of one round (the same for central and federated training).

    Attributes
    ----------
    epochs : int
        Passes over the local training beats per round.
    lr, batch_size, weight_decay, grad_clip, chunk_len : see :class:`TrainConfig`.
    proximal_mu : float
        FedProx proximal coefficient (0: plain local SGD, as FedAvg).
    max_class_weight : float
        Cap of the inverse-frequency class weights.
    seed : int
    """

    epochs: int = 1
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    chunk_len: int = 16
    proximal_mu: float = 0.0
    max_class_weight: float = 20.0
    seed: int = 0
    #: class weights of the loss; ``None``: from the local labels. A federation passes the
    #: weights of the pooled label counts (:func:`pooled_class_weights`), which are exactly the
    #: weights central training computes on the union of the hospitals' data.
    class_weights: tuple[float, ...] | None = None
    #: record-level DP-SGD (rhythm task): Gaussian noise multiplier on the sum of per-record
    #: gradients clipped to ``dp_clip`` (0: off); see :func:`train_local_rhythm`.
    dp_noise_multiplier: float = 0.0
    dp_clip: float = 1.0
    #: logit adjustment of the training loss (Menon et al. 2021; FedLC, Zhang et al. 2022):
    #: added to the logits inside the cross-entropy only (prediction uses the raw logits);
    #: ``None``: off. See :func:`label_skew_adjustment`.
    logit_adjustment: tuple[float, ...] | None = None
    #: local optimiser of the rhythm task: ``"adamw"`` or ``"sgd"`` (plain SGD, no momentum:
    #: a round of one full-batch step is then exactly a step of central gradient descent
    #: after averaging, whatever the sites' label mixes; AdamW's first step is close to the
    #: sign of each site's gradient, which averaging does not undo)
    optimizer: str = "adamw"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.proximal_mu < 0:
            raise ValueError(f"proximal_mu must be >= 0, got {self.proximal_mu}")
        if self.dp_noise_multiplier < 0 or self.dp_clip <= 0:
            raise ValueError("dp_noise_multiplier must be >= 0 and dp_clip > 0")


@dataclass(frozen=True)
class LocalResult:
    """Mean training loss of the last local epoch, labelled beats seen per epoch, seconds."""

    train_loss: float
    n_examples: int
    seconds: float


@dataclass(frozen=True)
class LocalEval:
    """Loss and ``(n_classes, n_classes)`` confusion matrix (rows: truth) of labelled beats."""

    loss: float
    confusion: np.ndarray
    n_examples: int

    @property
    def macro_f1(self) -> float:
        return confusion_macro_f1(self.confusion)


def build_federated_beat_net(
    *, n_leads: int = 2, window_len: int = 128, n_rr: int, seed: int = 0, **overrides: Any
) -> BeatNet:
    """A freshly initialised (seeded) federated beat network (:data:`FEDERATED_BEAT_PARAMS`)."""
    from heartline.models.registry import DEEP_MODELS

    torch.manual_seed(seed)
    params = {**FEDERATED_BEAT_PARAMS, **overrides}
    return DEEP_MODELS[FEDERATED_BEAT_MODEL](
        n_leads=n_leads, window_len=window_len, n_rr=n_rr, dropout=0.1, **params
    )


def state_arrays(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every parameter and buffer as a numpy array (copies), in ``state_dict`` order."""
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def load_state_arrays(net: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load ``arrays`` (from :func:`state_arrays` or an aggregate of them) into ``net``.

    Integer buffers (batch-norm counters) are rounded back to integers; running variances are
    kept positive (an adaptive server optimiser may step them below zero).

    Raises
    ------
    ValueError
        When a name is missing or a shape differs.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(arrays))
    if missing:
        raise ValueError(f"arrays lack {len(missing)} entries of the network, e.g. {missing[:3]}")
    new = {}
    for k, ref in own.items():
        a = np.asarray(arrays[k])
        if a.size == ref.numel() and a.ndim != ref.dim():  # 0-d arrays travel as shape (1,)
            a = a.reshape(tuple(ref.shape))
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(f"array {k!r} has shape {a.shape}, the network {tuple(ref.shape)}")
        t = torch.from_numpy(np.array(a, dtype=np.float64 if not ref.is_floating_point() else None))
        if not ref.is_floating_point():
            t = torch.round(t)
        t = t.to(ref.dtype)
        if k.endswith("running_var"):
            t = t.clamp_min(1e-5)
        new[k] = t
    net.load_state_dict(new)


def local_validation_split(beats: BeatSet, *, fraction: float = 0.2) -> tuple[BeatSet, BeatSet]:
    """Split each record in time: the first ``1 - fraction`` of its beats train, the rest validate.

    Validation stays inside the hospital (the same patients, later in the recording); the
    central test set (DS2) is other patients and is never used here.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    is_val = np.zeros(len(beats), dtype=bool)
    for r in beats.records:
        idx = np.flatnonzero(beats.record == r)
        n_val = round(fraction * len(idx))
        if n_val:
            is_val[idx[len(idx) - n_val :]] = True
    return beats.subset(~is_val), beats.subset(is_val)


def subsample_normal(beats: BeatSet, *, keep_fraction: float, seed: int = 0) -> BeatSet:
    """Unlabel (label -1) a random ``1 - keep_fraction`` of the N beats; they remain as context.

    A budget knob for the federated benchmark: every S, V, F and Q beat keeps its label and every
    beat stays in place (the sequence context is unchanged), only fewer N beats carry a loss.
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if keep_fraction == 1:
        return beats
    import dataclasses

    rng = np.random.default_rng(seed)
    labels = beats.labels.copy()
    drop = (labels == 0) & (rng.random(len(labels)) >= keep_fraction)
    labels[drop] = -1
    return dataclasses.replace(beats, labels=labels)


def _adjustment(cfg: LocalConfig) -> torch.Tensor | None:
    if cfg.logit_adjustment is None:
        return None
    return torch.tensor(cfg.logit_adjustment, dtype=torch.float32)


def label_skew_adjustment(
    local_counts: np.ndarray, pooled_counts: np.ndarray, pooled_weights: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(logit adjustment, class weights) that make one site's local loss agree with central
    training's under label skew.

    Central training minimises the cross-entropy weighted by ``pooled_weights`` ``w`` over the
    pooled labels ``p``: its optimum is the posterior under the prior ``pi_c(y) ~ p(y) w(y)``.
    A site whose labels follow ``p_k`` and that uses the same weights has the optimum of the
    prior ``p_k(y) w(y)`` instead, so every site pulls the shared model towards its own label
    mix (the client drift of label-skewed FedAvg). Training the site with an *unweighted*
    cross-entropy on ``logits + log p_k(y) - log pi_c(y)`` (logit adjustment, Menon et al.
    2021; per site as in FedLC, Zhang et al. 2022) moves every site's optimum to the raw-logit
    posterior of ``pi_c``: the same function for all sites, and the one central training
    targets, whenever the sites differ only in their label mix. A class a site never saw gets
    ``log 1e-4`` (its logit is left to the other sites).

    >>> adj, w = label_skew_adjustment(np.array([10, 0]), np.array([10, 10]), np.array([1., 1.]))
    >>> [round(a, 3) for a in adj], w
    ([0.693, -8.517], (1.0, 1.0))
    """
    pk = np.asarray(local_counts, dtype=float)
    pc = np.asarray(pooled_counts, dtype=float) * np.asarray(pooled_weights, dtype=float)
    pk = pk / max(pk.sum(), 1.0)
    pc = pc / max(pc.sum(), 1e-12)
    adj = np.log(np.maximum(pk, 1e-4)) - np.log(np.maximum(pc, 1e-4))
    return tuple(float(a) for a in adj), tuple(1.0 for _ in adj)


def _params_vector(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def train_local(
    net: BeatNet,
    train: BeatSet,
    cfg: LocalConfig,
    *,
    round_seed: int = 0,
) -> LocalResult:
    """Train ``net`` in place for ``cfg.epochs`` epochs on ``train`` from its current weights.

    With ``cfg.proximal_mu > 0`` the loss adds ``mu / 2 * ||w - w_start||^2`` where ``w_start``
    are the weights ``net`` held on entry (the global model of the round, FedProx).

    Parameters
    ----------
    net : BeatNet
    train : BeatSet
        Local training beats (unlabelled beats serve as context only).
    cfg : LocalConfig
    round_seed : int
        Mixed into the seed so each round shuffles differently.
    """
    targets = np.flatnonzero(train.labels >= 0)
    if len(targets) == 0:
        raise ValueError("train has no labelled beats")
    seed = cfg.seed * 1_000_003 + round_seed
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tc = TrainConfig(chunk_len=cfg.chunk_len, batch_size=cfg.batch_size, seed=seed)
    if cfg.class_weights is not None:
        cw = np.asarray(cfg.class_weights, dtype=float)
    else:
        cw = class_weights(train.labels, n_classes=net.n_classes, max_weight=cfg.max_class_weight)
    loss_w = torch.tensor(cw, dtype=torch.float32)
    adj = _adjustment(cfg)
    maker = BatchMaker(train, net.context_k)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    anchor = _params_vector(net) if cfg.proximal_mu > 0 else None
    t0 = time.perf_counter()
    total, count = 0.0, 0
    with flush_denormals():
        for _ in range(cfg.epochs):
            net.train()
            order = epoch_targets(train, targets, tc, None, rng)
            total, count = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                b = maker.make(order[start : start + cfg.batch_size])
                out = net.forward_context(b.windows, b.rr, b.ctx)
                logits = out.logits if adj is None else out.logits + adj
                loss = F.cross_entropy(logits, b.y, weight=loss_w, ignore_index=-1)
                loss = loss + net.auxiliary_loss(out, b.y_ctx, b.y_next)
                if anchor is not None:
                    prox = sum(
                        torch.sum((p - a) ** 2)
                        for p, a in zip(net.parameters(), anchor, strict=True)
                    )
                    loss = loss + 0.5 * cfg.proximal_mu * prox
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                total += float(loss.detach()) * len(b.y)
                count += len(b.y)
    net.eval()
    return LocalResult(total / max(count, 1), len(targets), time.perf_counter() - t0)


def confusion_macro_f1(confusion: np.ndarray, *, classes: tuple[int, ...] = (0, 1, 2, 3)) -> float:
    """Macro-F1 over ``classes`` present in the truth (rows) of a confusion matrix.

    Same definition as :func:`heartline.training.trainer.macro_f1` (N, S, V, F; absent classes
    skipped), so a pooled confusion matrix gives the macro-F1 of the pooled beats.

    >>> confusion_macro_f1(np.array([[1, 1], [0, 2]]), classes=(0, 1))
    0.7333333333333334
    """
    c = np.asarray(confusion, dtype=float)
    f1s = []
    for k in classes:
        if k >= len(c) or c[k].sum() == 0:
            continue
        tp = c[k, k]
        denom = c[k].sum() + c[:, k].sum()
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def evaluate_local(net: BeatNet, beats: BeatSet) -> LocalEval:
    """Cross-entropy and confusion matrix of ``net`` on the labelled beats of ``beats``."""
    n = net.n_classes
    keep = beats.labels >= 0
    if not keep.any():
        return LocalEval(math.nan, np.zeros((n, n), dtype=np.int64), 0)
    logits = predict_logits(net, beats)
    y = beats.labels[keep]
    lg = logits[keep]
    if not np.isfinite(lg).all():
        loss = math.nan
    else:
        loss = float(F.cross_entropy(torch.from_numpy(lg), torch.from_numpy(y.astype(np.int64))))
    pred = lg.argmax(axis=1)
    conf = np.zeros((n, n), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    assert abs(confusion_macro_f1(conf) - macro_f1(y, pred, n_classes=n)) < 1e-9
    return LocalEval(loss, conf, int(keep.sum()))


# --------------------------------------------------------------------------- rhythm (CinC 2017)
#: Registry name and parameters of the federated rhythm model: the hybrid rhythm network
#: (:mod:`heartline.models.rhythm`), narrowed for fast rounds.
FEDERATED_RHYTHM_MODEL = "hybrid"
FEDERATED_RHYTHM_PARAMS: dict[str, Any] = {
    "channels": (8, 16, 24, 32),
    "hidden": 16,
    "rr_hidden": 16,
}
RHYTHM_FS_HZ = 100.0
RHYTHM_CROP_S = 10.0
RHYTHM_WINDOW_S = 30.0


def build_federated_rhythm_net(*, n_rr: int, seed: int = 0) -> Any:
    """A freshly initialised (seeded) federated rhythm network (:data:`FEDERATED_RHYTHM_PARAMS`)."""
    from heartline.models.rhythm import build_rhythm_model

    torch.manual_seed(seed)
    return build_rhythm_model(
        FEDERATED_RHYTHM_MODEL, n_rr=n_rr, fs_hz=RHYTHM_FS_HZ, **FEDERATED_RHYTHM_PARAMS
    )


#: The small rhythm models over hand features only (:class:`heartline.models.rhythm.
#: FeatureRhythmNet`), for record-level DP-SGD: name -> the feature set they read.
#: ``rr-head``: the 24 RR-irregularity features every rhythm record already carries
#: (:data:`heartline.features.rhythm.RR_FEATURE_NAMES`); ``hand-head``: the 54 hand features
#: (RR + morphology, :data:`heartline.features.rhythm.HAND_FEATURE_NAMES`).
RHYTHM_HEAD_MODELS: dict[str, str] = {"rr-head": "rr", "hand-head": "hand"}

#: Label counts (N, A, O, ~) of the CinC 2017 training set as published (Clifford et al. 2017,
#: 8,528 records): a public prior, used for the class weights of DP training instead of the
#: hospitals' own (private) label counts.
CINC2017_PUBLISHED_COUNTS: tuple[int, int, int, int] = (5050, 738, 2456, 284)


def build_rhythm_head(kind: str, *, hidden: int = 0, seed: int = 0) -> Any:
    """A freshly initialised (seeded) hand-feature rhythm model (:data:`RHYTHM_HEAD_MODELS`)
    whose input standardisation is the fixed public one
    (:func:`heartline.features.public_scale.public_scale`), never fitted on training data.

    Raises
    ------
    ValueError
        Unknown ``kind`` (the message lists the valid ones).
    """
    from heartline.features.public_scale import public_scale
    from heartline.features.rhythm import HAND_FEATURE_NAMES, RR_FEATURE_NAMES
    from heartline.models.rhythm import build_rhythm_model

    if kind not in RHYTHM_HEAD_MODELS:
        raise ValueError(f"unknown rhythm head {kind!r}; valid: {sorted(RHYTHM_HEAD_MODELS)}")
    names = RR_FEATURE_NAMES if RHYTHM_HEAD_MODELS[kind] == "rr" else HAND_FEATURE_NAMES
    torch.manual_seed(seed)
    net = build_rhythm_model("features", n_rr=len(names), fs_hz=RHYTHM_FS_HZ, hidden=hidden)
    loc, scale = public_scale(names)
    net.set_rr_scaler(torch.from_numpy(loc), torch.from_numpy(scale))
    return net


def public_rhythm_class_weights(keep_normal: float = 1.0) -> np.ndarray:
    """:func:`rhythm_label_weights` of the published CinC 2017 label counts, the N count scaled
    by ``keep_normal`` (the benchmark keeps that share of the N records): class weights that
    cost no privacy.

    >>> [round(float(w), 3) for w in public_rhythm_class_weights(0.3)]
    [0.908, 1.301, 0.713, 2.096]
    """
    c = np.asarray(CINC2017_PUBLISHED_COUNTS, dtype=np.float64)
    c[0] *= keep_normal
    return rhythm_label_weights(c)


def public_rhythm_logit_adjustment(keep_normal: float = 1.0, tau: float = 1.0) -> tuple[float, ...]:
    """Logit adjustment (Menon et al. 2021) towards a balanced classifier from the public prior:
    ``tau * log pi(y)``, ``pi`` the published CinC 2017 label shares with N scaled by
    ``keep_normal``, centred. Trained with an unweighted loss on ``logits + adjustment`` and
    predicting with the raw logits, a model targets the balanced posterior.

    Unlike class weights, this survives DP-SGD's per-record clipping: a weight scales a
    record's gradient, which clipping to ``dp_clip`` undoes whenever the gradient is larger
    than the clip norm (nearly always, see docs/results/federated.md); the adjustment changes
    the gradient's direction instead.

    >>> [round(a, 2) for a in public_rhythm_logit_adjustment(0.3)]
    [0.48, -0.24, 0.96, -1.2]

    References
    ----------
    Menon AK et al. Long-tail learning via logit adjustment. ICLR (2021).
    """
    c = np.asarray(CINC2017_PUBLISHED_COUNTS, dtype=np.float64)
    c[0] *= keep_normal
    log_pi = np.log(c / c.sum())
    return tuple(float(tau * (v - log_pi.mean())) for v in log_pi)


def subsample_rhythm_normal(arrays: Any, *, keep_fraction: float, seed: int = 0) -> Any:
    """Keep every non-N record and a random ``keep_fraction`` of the N records (budget knob)."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if keep_fraction == 1:
        return arrays
    rng = np.random.default_rng(seed)
    keep = (arrays.y != 0) | (rng.random(len(arrays)) < keep_fraction)
    return arrays.subset(keep)


def train_local_rhythm(
    net: Any, train: Any, cfg: LocalConfig, *, round_seed: int = 0
) -> LocalResult:
    """``cfg.epochs`` epochs of AdamW on random ``RHYTHM_CROP_S`` crops of the local records.

    Same batches, augmentation and class weighting as :func:`heartline.training.rhythm.fit_rhythm`
    (whose private helpers it reuses), at a constant learning rate and with the optional FedProx
    term. The RR standardisation is fitted on the local records only when the network still holds
    the identity scaler (a federation sets the pooled scaler in the initial global weights, see
    :func:`pooled_rr_scaler`, so this happens only for a site trained on its own).

    With ``cfg.dp_noise_multiplier > 0`` this is record-level DP-SGD (Abadi et al. 2016) through
    Opacus: ``net`` must be DP-compatible (:func:`make_dp_compatible`); every step takes a
    Poisson sample of the records (rate ``batch_size / n``), clips each record's gradient to
    ``cfg.dp_clip`` and adds Gaussian noise of standard deviation ``z * dp_clip`` to the sum
    (Opacus' ``GradSampleModule`` + ``DPOptimizer``); ``n / batch_size`` steps make an epoch.
    The privacy accounting of these steps is :func:`dp_sgd_epsilon`.

    References
    ----------
    Abadi M et al. Deep learning with differential privacy. CCS (2016).
    """
    from heartline.training.rhythm import crop_batch

    if len(train) == 0 or (train.y < 0).any():
        raise ValueError("train must hold labelled records (y in 0..3)")
    seed = cfg.seed * 1_000_003 + round_seed
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if net.n_rr and bool(torch.all(net.rr_std == 1)) and bool(torch.all(net.rr_mean == 0)):
        rr = torch.from_numpy(train.rr.astype(np.float32))
        net.set_rr_scaler(rr.mean(0), rr.std(0))
    if cfg.class_weights is not None:
        cw = np.asarray(cfg.class_weights, dtype=np.float32)
    else:
        cw = rhythm_label_weights(np.bincount(train.y, minlength=4))
    dp = cfg.dp_noise_multiplier > 0
    adj = _adjustment(cfg)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.from_numpy(cw.astype(np.float32)), reduction="none" if dp else "mean"
    )
    model = net
    if dp:
        from opacus import GradSampleModule

        model = GradSampleModule(net)
    opt: Any = (
        torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw"
        else torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    )
    if dp:
        from opacus.optimizers import DPOptimizer

        opt = DPOptimizer(
            opt,
            noise_multiplier=cfg.dp_noise_multiplier,
            max_grad_norm=cfg.dp_clip,
            expected_batch_size=cfg.batch_size,
        )
    anchor = _params_vector(net) if cfg.proximal_mu > 0 else None
    w = round(RHYTHM_CROP_S * train.fs_hz)
    y_all = torch.from_numpy(train.y)
    n = len(train)
    q = min(1.0, cfg.batch_size / n)
    t0 = time.perf_counter()
    total, count = 0.0, 0
    with flush_denormals():
        for _ in range(cfg.epochs):
            model.train()
            if dp:  # Poisson sampling: each record joins each step with probability q
                batches = [np.flatnonzero(rng.random(n) < q) for _ in range(max(1, round(1 / q)))]
            else:
                order = rng.permutation(n)
                batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
            total, count = 0.0, 0
            for idx in batches:
                if idx.size == 0:
                    # an empty Poisson sample is still a step of the mechanism: noise only
                    idx = rng.integers(0, n, size=1)
                    empty = True
                else:
                    empty = False
                x, m, r = crop_batch(train, idx, w, rng, True)
                out = model(x, m, r)
                if adj is not None:
                    out = out + adj
                if dp:
                    # class-weighted per-record losses, averaged over the sample (Opacus'
                    # "mean" reduction: per-record gradients, noisy sum / expected batch size)
                    loss = (loss_fn(out, y_all[idx]) * (0.0 if empty else 1.0)).mean()
                else:
                    loss = loss_fn(out, y_all[idx])
                if anchor is not None:
                    prox = sum(
                        torch.sum((p - a) ** 2)
                        for p, a in zip(net.parameters(), anchor, strict=True)
                    )
                    loss = loss + 0.5 * cfg.proximal_mu * prox
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0 and not dp:  # DP-SGD clips per record instead
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                if not empty:
                    total += float(loss.detach()) * idx.size
                    count += idx.size
    if dp:
        model.zero_grad(set_to_none=True)
        model._close()  # remove Opacus' hooks: ``net`` is a plain module again
    net.eval()
    return LocalResult(total / max(count, 1), len(train), time.perf_counter() - t0)


def make_dp_compatible(net: torch.nn.Module) -> torch.nn.Module:
    """``opacus.validators.ModuleValidator.fix``: BatchNorm -> GroupNorm, LSTM -> DPLSTM.

    Raises
    ------
    ValueError
        When Opacus still reports an incompatible module after the fix.
    """
    from opacus.validators import ModuleValidator

    fixed = ModuleValidator.fix(net)
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ValueError(f"network not DP-compatible after ModuleValidator.fix: {errors[:2]}")
    return fixed


def dp_sgd_steps(n_records: int, cfg: LocalConfig, rounds: int) -> tuple[float, int]:
    """(Poisson sampling rate, steps) of ``rounds`` rounds of :func:`train_local_rhythm`."""
    q = min(1.0, cfg.batch_size / n_records)
    return q, rounds * cfg.epochs * max(1, round(1 / q))


def dp_sgd_noise(
    epsilon: float, delta: float, n_records: int, cfg: LocalConfig, rounds: int
) -> float:
    """Noise multiplier that makes ``rounds`` rounds of DP-SGD on ``n_records`` records
    (epsilon, delta)-DP, by Opacus' RDP accountant (``get_noise_multiplier``)."""
    from opacus.accountants.utils import get_noise_multiplier

    q, steps = dp_sgd_steps(n_records, cfg, rounds)
    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=q,
            steps=steps,
            accountant="rdp",
            epsilon_tolerance=0.005,
        )
    )


def dp_sgd_epsilon(
    noise_multiplier: float, delta: float, n_records: int, cfg: LocalConfig, rounds: int
) -> float:
    """Epsilon at ``delta`` of ``rounds`` rounds of DP-SGD, composed by Opacus' RDP accountant."""
    from opacus.accountants import RDPAccountant

    q, steps = dp_sgd_steps(n_records, cfg, rounds)
    acc = RDPAccountant()
    acc.history = [(noise_multiplier, q, steps)]
    return float(acc.get_epsilon(delta))


def beat_label_weights(counts: np.ndarray, *, max_weight: float = 20.0) -> np.ndarray:
    """:func:`heartline.training.trainer.class_weights` from label counts (beats task).

    Equal to ``class_weights(labels, ...)`` of any labels with these counts, so the weights of
    the hospitals' pooled counts are the weights of central training on their pooled beats.

    >>> beat_label_weights(np.array([3, 1, 0])).round(3).tolist()
    [0.667, 2.0, 0.0]
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    w = np.zeros(len(counts))
    present = counts > 0
    if not present.any():
        return np.ones(len(counts))
    w[present] = n / counts[present]
    w[present] = np.minimum(w[present] / w[present].min(), max_weight)
    w *= n / float((w * counts).sum())
    return w


def rhythm_label_weights(counts: np.ndarray, power: float = 0.5) -> np.ndarray:
    """:func:`heartline.training.rhythm.class_weights` from the four label counts."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, (counts.sum() / (4 * np.maximum(counts, 1))) ** power, 1.0)
    return w.astype(np.float32)


def site_statistics(task: str, train: Any) -> dict[str, list[float]]:
    """What a site shares once before training: its label counts and, for rhythm, the sums
    and sums of squares of its RR features (``rr-n`` records), from which the server forms the
    pooled class weights and RR standardisation (:func:`pooled_statistics`)."""
    if task == "beats":
        y = train.labels[train.labels >= 0]
        return {"label-counts": np.bincount(y, minlength=N_BEAT_CLASSES).astype(float).tolist()}
    rr = np.asarray(train.rr, dtype=np.float64)
    return {
        "label-counts": np.bincount(train.y, minlength=4).astype(float).tolist(),
        "rr-sum": rr.sum(0).tolist(),
        "rr-sumsq": (rr**2).sum(0).tolist(),
        "rr-n": [float(len(rr))],
    }


def pooled_statistics(task: str, stats: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Pool :func:`site_statistics`: ``class-weights`` and (rhythm) ``rr-mean``, ``rr-std``.

    The weights are the ones :func:`train_local` / :func:`train_local_rhythm` compute on the
    union of the sites' training data, and the RR scaler is that union's mean and (unbiased)
    standard deviation, as central training fits them.
    """
    if not stats:
        raise ValueError("no site statistics to pool")
    counts = np.sum([np.asarray(s["label-counts"]) for s in stats], axis=0)
    if task == "beats":
        return {"class-weights": beat_label_weights(counts).tolist()}
    n = float(sum(s["rr-n"][0] for s in stats))
    total = np.sum([np.asarray(s["rr-sum"]) for s in stats], axis=0)
    sq = np.sum([np.asarray(s["rr-sumsq"]) for s in stats], axis=0)
    mean = total / n
    var = np.maximum(sq - n * mean**2, 0.0) / max(n - 1.0, 1.0)
    return {
        "class-weights": rhythm_label_weights(counts).astype(float).tolist(),
        "rr-mean": mean.tolist(),
        "rr-std": np.sqrt(var).tolist(),
    }


def evaluate_local_rhythm(net: Any, arrays: Any) -> LocalEval:
    """Cross-entropy and 4 x 4 confusion matrix (N, A, O, noise) over each record's 30 s windows."""
    from heartline.training.rhythm import predict_rhythm_proba

    keep = arrays.y >= 0
    if not keep.any():
        return LocalEval(math.nan, np.zeros((4, 4), dtype=np.int64), 0)
    arrays = arrays.subset(keep)
    proba = predict_rhythm_proba(net, arrays, window_s=RHYTHM_WINDOW_S)
    y = arrays.y
    p_true = proba[np.arange(len(y)), y]
    loss = (
        float(-np.mean(np.log(np.clip(p_true, 1e-12, 1.0))))
        if np.isfinite(proba).all()
        else math.nan
    )
    pred = np.nan_to_num(proba, nan=0.0).argmax(axis=1)
    conf = np.zeros((4, 4), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    return LocalEval(loss, conf, len(y))
