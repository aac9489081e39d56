"""Seeded training loop for every deep beat classifier, and the experiment runner.

:func:`train_net` trains a :class:`~heartline.models.deep.BeatNet` on the labelled beats of a
training :class:`~heartline.data.beat_set.BeatSet` with Adam, class-imbalance handling, early
stopping on the *validation* records (macro-F1 or loss) and restoration of the best epoch.
Batches are runs of consecutive beats (``TrainConfig.chunk_len``), so a sequence model encodes
each context beat once per batch.

:func:`run_experiment` is the whole protocol from a config: DS1 training records and validation
records inside DS1 (:func:`heartline.data.splits.validation_records`), DS2 touched once at the
end, everything written to a fresh run directory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from heartline.data.beat_set import BeatSet
from heartline.models.cpu_math import flush_denormals
from heartline.models.deep import BeatNet, NetOutput
from heartline.signal.segmentation import model_rr_columns
from heartline.training.config import ExperimentConfig, TrainConfig

__all__ = [
    "EpochStats",
    "TrainResult",
    "class_weights",
    "macro_f1",
    "predict_logits",
    "run_experiment",
    "train_net",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss, validation loss and macro-F1, seconds taken, learning rate."""

    epoch: int
    train_loss: float
    val_loss: float
    val_macro_f1: float
    seconds: float
    lr: float = math.nan


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_net`.

    Attributes
    ----------
    history : tuple of EpochStats
    best_epoch : int
        Epoch whose weights were restored (1-based).
    best_score : float
        Its value of the monitored quantity.
    train_seconds : float
        Wall-clock seconds of the whole loop (validation included).
    stop_reason : str
        ``"max_epochs"``, ``"early_stopping"`` or ``"time_budget"``.
    n_params : int
        Trainable parameters.
    """

    history: tuple[EpochStats, ...]
    best_epoch: int
    best_score: float
    train_seconds: float
    stop_reason: str
    n_params: int

    def history_dicts(self) -> list[dict[str, float]]:
        return [asdict(h) for h in self.history]


def class_weights(
    labels: np.ndarray, *, n_classes: int, power: float = 1.0, max_weight: float = 50.0
) -> np.ndarray:
    """Inverse-frequency class weights ``(n_total / count) ** power``, clipped, mean 1 over beats.

    Classes absent from ``labels`` get weight 0. Unknown labels (-1) are ignored.

    >>> class_weights(np.array([0, 0, 0, 1]), n_classes=3).round(3).tolist()
    [0.667, 2.0, 0.0]
    """
    y = labels[labels >= 0]
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.zeros(n_classes)
    present = counts > 0
    w[present] = (len(y) / counts[present]) ** power
    w[present] = np.minimum(w[present] / w[present].min(), max_weight)
    w *= len(y) / float((w * counts).sum())
    return w


def macro_f1(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int = 4,
    classes: tuple[int, ...] | None = None,
    skip_absent: bool = True,
) -> float:
    """Mean F1 over ``classes`` (default N, S, V, F: indices ``0 .. min(n_classes, 4) - 1``).

    Labels < 0 are ignored. Q (index 4, a handful of beats in MIT-BIH) is left out by default as
    in :mod:`heartline.training.metrics`. With ``skip_absent`` a class absent from ``y_true`` is
    left out of the mean (model selection on a few records); otherwise it counts, scoring 0 when
    it is predicted and 0 when it is not (a fixed objective for decision offsets).

    >>> macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), n_classes=5)
    0.7333333333333334
    >>> macro_f1(np.array([0, 0]), np.array([0, 1]), classes=(0, 1), skip_absent=False)
    0.3333333333333333
    """
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    classes = tuple(range(min(n_classes, 4))) if classes is None else tuple(classes)
    f1s = []
    for c in classes:
        t = y_true == c
        if skip_absent and not t.any():
            continue
        p = y_pred == c
        tp = float(np.count_nonzero(t & p))
        denom = float(t.sum() + p.sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


class _WeightAverage:
    """Exponential moving average of a network's parameters and buffers (``TrainConfig.ema_decay``).

    ``module`` is a copy of the network holding the averages (batch-norm running statistics
    averaged the same way, integer buffers copied); :meth:`update` folds in the current weights.
    The first updates use ``min(decay, (1 + n) / (10 + n))`` so the average is not dominated by
    the random initialisation (the warm-up of TensorFlow's ExponentialMovingAverage).
    """

    def __init__(self, net: BeatNet, decay: float) -> None:
        self.module = copy.deepcopy(net)
        self.decay = float(decay)
        self.n = 0
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: BeatNet) -> None:
        self.n += 1
        d = min(self.decay, (1.0 + self.n) / (10.0 + self.n))
        avg = self.module.state_dict()
        for name, value in net.state_dict().items():
            if value.dtype.is_floating_point:
                avg[name].mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                avg[name].copy_(value)


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class _Batch:
    windows: torch.Tensor
    rr: torch.Tensor
    ctx: torch.Tensor
    y: torch.Tensor
    y_ctx: torch.Tensor
    y_next: torch.Tensor


class BatchMaker:
    """Gathers the unique context beats of a set of target beats into tensors."""

    def __init__(self, beats: BeatSet, context_k: int) -> None:
        self.beats = beats
        self.k = context_k
        self.ctx = beats.context_index(context_k)
        n = len(beats)
        nxt = np.arange(1, n + 1)
        valid = nxt < n
        valid[:-1] &= beats.record[1:] == beats.record[:-1]
        self.y_next = np.where(valid, beats.labels[np.minimum(nxt, n - 1)], -1)

    def make(self, targets: np.ndarray) -> _Batch:
        ctx = self.ctx[targets]
        uniq, inv = np.unique(ctx, return_inverse=True)
        y_ctx = self.beats.labels[ctx].copy()
        if self.k > 0:
            y_ctx[:, :-1][ctx[:, :-1] == ctx[:, 1:]] = -1  # padding before a record's first beat
        return _Batch(
            windows=torch.from_numpy(
                np.ascontiguousarray(self.beats.windows[uniq], dtype=np.float32)
            ),
            rr=torch.from_numpy(np.ascontiguousarray(self.beats.rr[uniq], dtype=np.float32)),
            ctx=torch.from_numpy(inv.reshape(ctx.shape).astype(np.int64)),
            y=torch.from_numpy(self.beats.labels[targets].astype(np.int64)),
            y_ctx=torch.from_numpy(y_ctx.astype(np.int64)),
            y_next=torch.from_numpy(self.y_next[targets].astype(np.int64)),
        )


def _augment(windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random amplitude scale, baseline offset, noise and time shift (<= 3 samples) per beat and lead."""
    u, c, n = windows.shape
    scale = torch.exp((torch.rand(u, c, 1, generator=generator) - 0.5) * 0.45)
    offset = 0.05 * torch.randn(u, c, 1, generator=generator)
    noise = 0.02 * torch.randn(u, c, n, generator=generator)
    shift = int(torch.randint(-3, 4, (1,), generator=generator))
    return torch.roll(windows, shift, dims=2) * scale + offset + noise


def epoch_targets(
    beats: BeatSet,
    targets: np.ndarray,
    cfg: TrainConfig,
    sample_w: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Target order of one epoch: shuffled chunks of consecutive beats of one record."""
    chunks: list[np.ndarray] = []
    rec = beats.record[targets]
    bounds = np.flatnonzero(np.r_[True, rec[1:] != rec[:-1], True])
    for a, b in itertools.pairwise(bounds):
        t = targets[a:b]
        if cfg.chunk_len == 1:
            chunks.extend(t[:, None])
            continue
        offset = int(rng.integers(cfg.chunk_len))
        cuts = np.arange(offset, len(t), cfg.chunk_len)
        chunks.extend(c for c in np.split(t, cuts[cuts > 0]) if len(c))
    if sample_w is not None:
        p = np.array([sample_w[c].mean() for c in chunks])
        pick = rng.choice(len(chunks), size=len(chunks), replace=True, p=p / p.sum())
    else:
        pick = rng.permutation(len(chunks))
    return np.concatenate([chunks[i] for i in pick])


@torch.no_grad()
def predict_logits(
    net: BeatNet, beats: BeatSet, *, batch_size: int = 2048, head: str = "current"
) -> np.ndarray:
    """Logits ``(len(beats), n_classes)`` of every beat (eval mode, causal context from ``beats``).

    ``head="next"`` returns the early-alarm head's logits (prediction of the next beat's class).
    """
    if head not in ("current", "next"):
        raise ValueError(f"head must be 'current' or 'next', got {head!r}")
    if head == "next" and not net.has_next_head:
        raise ValueError("this network has no early-alarm head")
    net.eval()
    if beats.rr.shape[1] != net.n_rr:  # e.g. a network of the older 8-column RR set
        beats = dataclasses.replace(
            beats, rr=model_rr_columns(beats.rr, net.n_rr), rr_names=beats.rr_names[: net.n_rr]
        )
    maker = BatchMaker(beats, net.context_k)
    out = np.zeros((len(beats), net.n_classes), dtype=np.float32)
    with flush_denormals():
        for start in range(0, len(beats), batch_size):
            tgt = np.arange(start, min(start + batch_size, len(beats)))
            b = maker.make(tgt)
            o: NetOutput = net.forward_context(b.windows, b.rr, b.ctx)
            res = o.logits if head == "current" else o.next_logits
            assert res is not None
            out[tgt] = res.numpy()
    return out


def _val_scores(net: BeatNet, val: BeatSet) -> tuple[float, float]:
    logits = predict_logits(net, val)
    y = val.labels
    keep = y >= 0
    loss = (
        float(F.cross_entropy(torch.from_numpy(logits[keep]), torch.from_numpy(y[keep])))
        if keep.any()
        else math.nan
    )
    return loss, macro_f1(y, logits.argmax(axis=1), n_classes=net.n_classes)


def train_net(
    net: BeatNet,
    train: BeatSet,
    val: BeatSet,
    cfg: TrainConfig,
    *,
    run_dir: Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``net`` in place; the weights of the best validation epoch are restored at the end.

    Parameters
    ----------
    net : BeatNet
        Freshly built network.
    train, val : BeatSet
        Training beats, and validation beats (other patients) for early stopping. Unlabelled
        beats (-1) stay as context but carry no loss.
    cfg : TrainConfig
        Optimiser, imbalance handling, early stopping, seed, threads.
    run_dir : path, optional
        Receives ``history.json`` and ``training_curve.png``.
    progress : bool
        Show a rich progress bar (on stderr).

    Returns
    -------
    TrainResult
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if (
        train.n_leads != net.n_leads
        or train.window_len != net.window_len
        or train.rr.shape[1] != net.n_rr
    ):
        raise ValueError(
            f"train beats have shape (leads={train.n_leads}, len={train.window_len}, n_rr={train.rr.shape[1]}), "
            f"the network expects ({net.n_leads}, {net.window_len}, {net.n_rr})"
        )
    targets = np.flatnonzero(train.labels >= 0)
    if len(targets) == 0:
        raise ValueError("train has no labelled beats")
    scored_val = len(val) > 0 and bool((val.labels >= 0).any())
    if not scored_val and cfg.monitor != "none":
        raise ValueError(
            'val has no labelled beats (early stopping needs validation data; monitor = "none" '
            "trains fixed epochs without it)"
        )
    # before the first parallel op starts the worker threads (see cpu_math); restored in finally
    scope = contextlib.ExitStack()
    scope.enter_context(flush_denormals())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    try:
        cw = class_weights(
            train.labels,
            n_classes=net.n_classes,
            power=cfg.class_weight_power,
            max_weight=cfg.max_class_weight,
        )
        loss_w = torch.tensor(cw, dtype=torch.float32) if cfg.imbalance == "weighted_loss" else None
        sample_w = cw[np.maximum(train.labels, 0)] if cfg.imbalance == "weighted_sampling" else None
        logger.info("class weights %s (%s)", np.round(cw, 3).tolist(), cfg.imbalance)
        maker = BatchMaker(train, net.context_k)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = _WeightAverage(net, cfg.ema_decay) if cfg.ema_decay is not None else None
        sign = 1.0 if cfg.monitor == "val_macro_f1" else -1.0
        sched = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt,
                # on the raw monitored value: torch's relative threshold assumes positive values
                mode="max" if cfg.monitor == "val_macro_f1" else "min",
                factor=cfg.lr_factor,
                patience=cfg.lr_patience - 1,  # torch reduces after patience + 1 bad epochs
                min_lr=cfg.min_lr,
            )
            if cfg.lr_schedule == "plateau"
            else None
        )
        best_score, best_epoch, best_state = -math.inf, 0, copy.deepcopy(net.state_dict())
        history: list[EpochStats] = []
        stop_reason = "max_epochs"
        n_batches = math.ceil(len(targets) / cfg.batch_size)
        t0 = time.perf_counter()
        with Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            disable=not progress,
            transient=False,
        ) as bar:
            task = bar.add_task("epoch 1", total=n_batches, info="")
            for epoch in range(1, cfg.max_epochs + 1):
                t_epoch = time.perf_counter()
                if cfg.time_budget_s is not None and history:
                    elapsed = t_epoch - t0
                    if elapsed + max(h.seconds for h in history) > cfg.time_budget_s:
                        stop_reason = "time_budget"
                        break
                net.train()
                order = epoch_targets(train, targets, cfg, sample_w, rng)
                bar.reset(
                    task, total=math.ceil(len(order) / cfg.batch_size), description=f"epoch {epoch}"
                )
                total, count = 0.0, 0
                for start in range(0, len(order), cfg.batch_size):
                    b = maker.make(order[start : start + cfg.batch_size])
                    windows = _augment(b.windows, gen) if cfg.augment else b.windows
                    out = net.forward_context(windows, b.rr, b.ctx)
                    loss = F.cross_entropy(out.logits, b.y, weight=loss_w, ignore_index=-1)
                    loss = loss + net.auxiliary_loss(out, b.y_ctx, b.y_next)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    opt.step()
                    if ema is not None:
                        ema.update(net)
                    total += float(loss.detach()) * len(b.y)
                    count += len(b.y)
                    bar.advance(task)
                scored = ema.module if ema is not None else net
                val_loss, val_f1 = _val_scores(scored, val) if scored_val else (math.nan, math.nan)
                stats = EpochStats(
                    epoch,
                    total / count,
                    val_loss,
                    val_f1,
                    time.perf_counter() - t_epoch,
                    float(opt.param_groups[0]["lr"]),
                )
                history.append(stats)
                bar.update(
                    task, info=f"loss {stats.train_loss:.3f} val {val_loss:.3f} F1 {val_f1:.3f}"
                )
                logger.info(
                    "epoch %d: train loss %.4f, val loss %.4f, val macro-F1 %.4f (%.1f s, lr %.2g)",
                    epoch,
                    stats.train_loss,
                    val_loss,
                    val_f1,
                    stats.seconds,
                    stats.lr,
                )
                if cfg.monitor == "none":  # fixed epochs: the latest weights are the result
                    best_epoch, best_state = epoch, copy.deepcopy(scored.state_dict())
                    best_score = sign * (val_loss if scored_val else math.nan)
                    continue
                monitored = val_f1 if cfg.monitor == "val_macro_f1" else val_loss
                score = sign * monitored
                if sched is not None:
                    sched.step(monitored)
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best_state = copy.deepcopy(scored.state_dict())
                elif epoch - best_epoch >= cfg.patience:
                    stop_reason = "early_stopping"
                    break
        net.load_state_dict(best_state)
        net.eval()
        result = TrainResult(
            tuple(history),
            best_epoch,
            sign * best_score,
            time.perf_counter() - t0,
            stop_reason,
            sum(p.numel() for p in net.parameters() if p.requires_grad),
        )
    finally:
        torch.set_num_threads(previous_threads)
        scope.close()
    if run_dir is not None:
        from heartline.training.rundir import plot_history, write_json

        run_dir = Path(run_dir)
        write_json(
            run_dir / "history.json",
            {
                "history": result.history_dicts(),
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "monitor": cfg.monitor,
                "train_seconds": result.train_seconds,
                "stop_reason": result.stop_reason,
                "n_params": result.n_params,
                "class_weights": cw.tolist(),
            },
        )
        if result.history:
            plot_history(
                result.history_dicts(), run_dir / "training_curve.png", title=type(net).__name__
            )
    return result


# --------------------------------------------------------------------------- experiment
def per_class_rates(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]
) -> dict[str, dict[str, float | None]]:
    """Sensitivity and positive predictivity of each class (``None`` when undefined).

    Labels < 0 are ignored.

    >>> per_class_rates(np.array([0, 0, 1, -1]), np.array([0, 1, 1, 1]), ("N", "S"))
    {'N': {'se': 0.5, 'ppv': 1.0}, 'S': {'se': 1.0, 'ppv': 0.5}}
    """
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    out: dict[str, dict[str, float | None]] = {}
    for i, c in enumerate(classes):
        t, p = y_true == i, y_pred == i
        tp = int(np.count_nonzero(t & p))
        out[c] = {
            "se": tp / int(t.sum()) if t.any() else None,
            "ppv": tp / int(p.sum()) if p.any() else None,
        }
    return out


def _quick_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class sensitivity / positive predictivity (AAMI-style)."""
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    out: dict[str, Any] = {"n_beats": len(y_true), "accuracy": float(np.mean(y_true == y_pred))}
    for c, rates in per_class_rates(y_true, y_pred, classes).items():
        out[f"{c}_se"], out[f"{c}_ppv"] = rates["se"], rates["ppv"]
    out["macro_f1"] = macro_f1(y_true, y_pred, n_classes=len(classes))
    return out


def evaluate(beats: BeatSet, proba: np.ndarray, *, n_bootstrap: int = 0) -> dict[str, Any]:
    """Metrics of predictions on ``beats``: :func:`heartline.training.metrics.evaluate_predictions`
    (as a dict, bootstrap over records) under ``"ec57"`` and the compact :func:`_quick_metrics`."""
    from heartline.training.metrics import evaluate_predictions

    result: dict[str, Any] = {
        "quick": _quick_metrics(beats.labels, proba.argmax(axis=1), beats.classes)
    }
    result["ec57"] = evaluate_predictions(
        beats.labels, proba, records=beats.record, n_bootstrap=n_bootstrap
    ).to_dict()
    return result


def run_experiment(
    config: ExperimentConfig,
    *,
    out: str | Path,
    data_dir: str | Path | None = None,
    evaluate_test: bool = True,
    export: bool = True,
    progress: bool = False,
    n_bootstrap: int = 200,
) -> Path:
    """Train ``config`` on DS1 (validation records inside DS1), evaluate, write a run directory.

    Writes ``config.toml``, ``run.json``, ``history.json``, ``training_curve.png``, ``model/``
    (weights), ``metrics.json`` (validation and, if ``evaluate_test``, DS2 metrics, training
    seconds) and, for deep models with ``export``, ``model.onnx``.

    Returns the run directory.
    """
    from heartline.data.beat_dataset import build_beat_set
    from heartline.data.splits import DS1, DS2, validation_records
    from heartline.training.deep import TorchBeatClassifier
    from heartline.training.registry import get_model
    from heartline.training.rundir import new_run_dir, update_run_info, write_metrics

    d = config.data
    common: dict[str, Any] = {
        "leads": d.leads,
        "rpeaks": d.rpeaks,
        "window_len": d.window_len,
        "progress": False,
    }
    if config.model.template_features:  # the RR-only sets stay as they were otherwise
        common["template_features"] = True
    if data_dir is not None:
        common["data_dir"] = data_dir
    if d.hold_out_validation:
        train_recs, val_recs = validation_records(seed=d.validation_seed)
    else:  # a refit on all of DS1 for a fixed number of epochs (train.monitor = "none")
        train_recs, val_recs = DS1, ()
    train = build_beat_set(train_recs, **common)
    val = (
        build_beat_set(val_recs, **common)
        if val_recs
        else train.subset(np.zeros(len(train), dtype=bool))
    )
    run_dir = new_run_dir(out, config.name, config=config)
    update_run_info(run_dir, train_records=list(train_recs), val_records=list(val_recs))
    model = get_model(config.model.name, train=config.train, **config.model.params)
    t0 = time.perf_counter()
    if isinstance(model, TorchBeatClassifier):
        model.fit(train, val, run_dir=run_dir, seed=config.train.seed, progress=progress)
    else:
        model.fit(train, val, run_dir=run_dir, seed=config.train.seed)
    train_seconds = time.perf_counter() - t0
    model.save(run_dir / "model")
    metrics: dict[str, Any] = {
        "model": config.model.name,
        "train_seconds": train_seconds,
        "n_train_beats": len(train),
        "n_val_beats": len(val),
    }
    if isinstance(model, TorchBeatClassifier) and model.result is not None:
        metrics.update(
            n_params=model.result.n_params,
            best_epoch=model.result.best_epoch,
            stop_reason=model.result.stop_reason,
        )
    if len(val):
        metrics["validation"] = evaluate(val, model.predict_proba(val))
    if evaluate_test:
        test = build_beat_set(DS2, **common)
        t1 = time.perf_counter()
        proba = model.predict_proba(test)
        metrics["test_predict_seconds"] = time.perf_counter() - t1
        metrics["test_ds2"] = evaluate(test, proba, n_bootstrap=n_bootstrap)
    if export and isinstance(model, TorchBeatClassifier):
        from heartline.edge.onnx_export import export_onnx, quantize_onnx
        from heartline.edge.runtime import OnnxBeatClassifier

        assert model.net is not None
        onnx_path = export_onnx(model.net, run_dir / "model.onnx", name=config.model.name)
        int8_path = quantize_onnx(onnx_path, run_dir / "model.int8.onnx")
        if evaluate_test:
            check, checked_on = test, "DS2"
        elif len(val):
            check, checked_on = val, "validation"
        else:
            check, checked_on = (
                train.subset(np.arange(min(len(train), 5000))),
                "training (first beats)",
            )
        reference = model.predict_proba(check)
        export_info: dict[str, Any] = {"checked_on": checked_on}
        for key, path in (("fp32", onnx_path), ("int8", int8_path)):
            proba = OnnxBeatClassifier(path).predict_proba(check)
            export_info[key] = {
                "bytes": path.stat().st_size,
                "max_abs_diff_vs_torch": float(np.abs(proba - reference).max()),
                "argmax_agreement": float(np.mean(proba.argmax(1) == reference.argmax(1))),
            }
        metrics["onnx"] = export_info
    write_metrics(run_dir, metrics)
    return run_dir
