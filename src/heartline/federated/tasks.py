"""What a hospital computes, per task, without any federated framework (glue over ``training``).

A :class:`SiteTask` owns one hospital's local data (read from the records the manifest gives that
hospital, and nothing else) and turns global weights into local updates and evaluations. The
Flower adapters (:mod:`heartline.federated.client_app`) only move arrays in and out of it; the
central baseline of the benchmark uses the same class on the union of the hospitals' records.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartline.federated.partition import Manifest

__all__ = [
    "NOISE_SEED_STRIDE",
    "TASK_NAMES",
    "SiteData",
    "SiteTask",
    "build_initial_arrays",
    "build_net",
    "head_model_of",
    "load_site_data",
    "load_test_data",
    "model_features",
    "net_for_arrays",
]

logger = logging.getLogger(__name__)

TASK_NAMES: tuple[str, ...] = ("beats", "rhythm")
#: round seeds of noise seed ``k`` are offset by ``k * NOISE_SEED_STRIDE``: larger than any
#: ``101 * round + partition id`` (a SuperNode's round seed) of a run of up to 98 rounds, so no
#: two noise seeds share a round seed
NOISE_SEED_STRIDE = 10007


@dataclass(frozen=True)
class SiteData:
    """Local training and validation data of one site (or of the central pool)."""

    train: Any
    val: Any
    records: tuple[str, ...]


def _check_task(task: str) -> None:
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; valid tasks: {list(TASK_NAMES)}")


def load_site_data(
    task: str,
    records: tuple[str, ...],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    keep_normal: float = 1.0,
    seed: int = 0,
    features: str = "rr",
) -> SiteData:
    """Read exactly ``records`` and split them into local training and validation parts.

    ``features`` (rhythm task): ``"rr"``, the RR features every rhythm record carries, or
    ``"hand"``, the whole hand-feature vector in their place
    (:func:`heartline.training.rhythm.with_hand_features`; for the ``hand-head`` model).
    """
    _check_task(task)
    if task == "beats":
        from heartline.data.beat_dataset import build_beat_set
        from heartline.training.local import local_validation_split, subsample_normal

        beats = build_beat_set(records, data_dir=data_dir, progress=False)
        train, val = local_validation_split(beats)
        train = subsample_normal(train, keep_fraction=keep_normal, seed=seed)
        return SiteData(train, val, tuple(records))
    from heartline.training.local import subsample_rhythm_normal

    if features not in ("rr", "hand"):
        raise ValueError(f"features must be 'rr' or 'hand', got {features!r}")
    arrays = _rhythm_arrays(records, data_dir=data_dir, features=features)
    # local validation: a seeded 20 % of the site's records (other recordings, same site)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(arrays), dtype=bool)
    is_val[rng.permutation(len(arrays))[: max(1, round(0.2 * len(arrays)))]] = True
    train = subsample_rhythm_normal(arrays.subset(~is_val), keep_fraction=keep_normal, seed=seed)
    return SiteData(train, arrays.subset(is_val), tuple(records))


def _rhythm_arrays(records: tuple[str, ...], *, data_dir: Any = None, features: str = "rr") -> Any:
    """:func:`heartline.training.rhythm.build_rhythm_arrays` of exactly ``records`` (cached);
    ``features="hand"``: with the hand features in place of the RR ones."""
    from heartline.data.cinc2017 import load_cinc2017_index
    from heartline.training.local import RHYTHM_FS_HZ
    from heartline.training.rhythm import build_rhythm_arrays

    index = load_cinc2017_index(data_dir=data_dir)
    wanted = set(records)
    sub = index.loc[index["record"].isin(wanted)].sort_values("record")
    missing = wanted - set(sub["record"])
    if missing:
        raise ValueError(f"records not in the CinC 2017 index: {sorted(missing)[:5]}")
    arrays = build_rhythm_arrays(sub, data_dir=data_dir, fs_hz=RHYTHM_FS_HZ)
    if features == "hand":
        from heartline.training.rhythm import build_hand_features, with_hand_features

        hand = build_hand_features([str(r) for r in arrays.records], data_dir=data_dir)
        arrays = with_hand_features(arrays, hand)
    return arrays


def model_features(model: str) -> str:
    """The rhythm feature set (``"rr"`` or ``"hand"``) that network ``model`` reads."""
    from heartline.training.local import RHYTHM_HEAD_MODELS

    return RHYTHM_HEAD_MODELS.get(model, "rr")


def load_test_data(
    manifest: Manifest,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int = 0,
    features: str = "rr",
) -> Any:
    """The central test set of the manifest's task (DS2 beats; the CinC 2017 held-out fold).

    ``limit > 0`` keeps only its first ``limit`` records (beats) or ``25 * limit`` records
    (rhythm): for smoke tests, never for a reported figure.
    """
    records = tuple(manifest.test_records)
    if limit > 0:
        records = records[: limit if manifest.task == "beats" else 25 * limit]
    if manifest.task == "beats":
        from heartline.data.beat_dataset import build_beat_set

        return build_beat_set(records, data_dir=data_dir, progress=False)
    return _rhythm_arrays(records, data_dir=data_dir, features=features)


def build_net(
    task: str, *, seed: int = 0, dp: bool = False, model: str = "hybrid", hidden: int = 0
) -> Any:
    """A freshly initialised network of the task (seeded); ``dp``: the DP-SGD-compatible
    variant (:func:`heartline.training.local.make_dp_compatible`, rhythm task only).

    ``model`` (rhythm task): ``"hybrid"`` (the CNN-LSTM) or a hand-feature head of
    :data:`heartline.training.local.RHYTHM_HEAD_MODELS` (``hidden`` units, 0: linear), which
    is DP-compatible as it is.
    """
    _check_task(task)
    if model != "hybrid":
        from heartline.training.local import build_rhythm_head

        if task != "rhythm":
            raise ValueError(f"model {model!r} is a rhythm model; the beats task has 'hybrid'")
        return build_rhythm_head(model, hidden=hidden, seed=seed)
    if task == "beats":
        if dp:
            raise ValueError("record-level DP-SGD is implemented for the rhythm task only")
        from heartline.signal.segmentation import RR_FEATURE_NAMES
        from heartline.training.local import build_federated_beat_net

        return build_federated_beat_net(n_rr=len(RR_FEATURE_NAMES), seed=seed)
    from heartline.training.local import build_federated_rhythm_net, make_dp_compatible
    from heartline.training.rhythm import rr_feature_names

    net = build_federated_rhythm_net(n_rr=len(rr_feature_names()), seed=seed)
    return make_dp_compatible(net) if dp else net


def head_model_of(arrays: dict[str, np.ndarray]) -> str:
    """``"hybrid"`` or the hand-feature head (:data:`heartline.training.local.
    RHYTHM_HEAD_MODELS`) whose weights ``arrays`` are, from their names and input width."""
    from heartline.features.rhythm import RR_FEATURE_NAMES

    if any(k.startswith(("front.", "lstm.")) for k in arrays) or "rr_mean" not in arrays:
        return "hybrid"
    return "rr-head" if np.asarray(arrays["rr_mean"]).size == len(RR_FEATURE_NAMES) else "hand-head"


def net_for_arrays(task: str, arrays: dict[str, np.ndarray]) -> Any:
    """A network of ``task`` that ``arrays`` load into (hybrid, its DP-SGD variant, or a
    hand-feature head with ``hidden`` read from the weights), not yet loaded."""
    model = head_model_of(arrays) if task == "rhythm" else "hybrid"
    if model != "hybrid":
        w = arrays.get("head.weight")
        hidden = 0 if w is not None else int(np.asarray(arrays["head.0.weight"]).shape[0])
        return build_net(task, model=model, hidden=hidden)
    # the DP-SGD variant of the rhythm network (Opacus' DPLSTM, GroupNorm) has its own names
    return build_net(task, dp=task == "rhythm" and "lstm.l0.ih.weight" in arrays)


def build_initial_arrays(
    task: str, *, seed: int = 0, dp: bool = False, model: str = "hybrid", hidden: int = 0
) -> dict[str, np.ndarray]:
    """Initial global weights (``name -> array``) of the task's network (:func:`build_net`)."""
    from heartline.training.local import state_arrays

    return state_arrays(build_net(task, seed=seed, dp=dp, model=model, hidden=hidden))


class SiteTask:
    """Local training and evaluation of one site from given weights.

    Parameters
    ----------
    task : {"beats", "rhythm"}
    data : SiteData
    epochs, lr, proximal_mu, seed : local training settings
        (:class:`heartline.training.local.LocalConfig`).
    dp_epsilon : float, optional
        Record-level DP-SGD at this epsilon (at ``dp_delta``) over ``dp_rounds`` rounds: the
        noise multiplier is calibrated to this site's record count by Opacus' RDP accountant.
    model, hidden : str, int
        The network (:func:`build_net`); a hand-feature head needs ``data`` loaded with its
        feature set (:func:`model_features`).
    batch_size : int
        Local (expected, under DP-SGD: Poisson) batch size.
    optimizer : {"adamw", "sgd"}
        Local optimiser (rhythm task, :class:`heartline.training.local.LocalConfig`).
    """

    def __init__(
        self,
        task: str,
        data: SiteData,
        *,
        epochs: int = 1,
        lr: float = 2e-3,
        proximal_mu: float = 0.0,
        seed: int = 0,
        dp_epsilon: float | None = None,
        dp_delta: float = 1e-5,
        dp_rounds: int = 1,
        dp_clip: float = 1.0,
        model: str = "hybrid",
        hidden: int = 0,
        batch_size: int = 64,
        optimizer: str = "adamw",
    ) -> None:
        _check_task(task)
        from heartline.training.local import LocalConfig, dp_sgd_noise

        self.task = task
        self.data = data
        self.model = model
        self.cfg = LocalConfig(
            epochs=epochs,
            lr=lr,
            proximal_mu=proximal_mu,
            seed=seed,
            batch_size=batch_size,
            optimizer=optimizer,
        )
        self.dp_delta = dp_delta
        self.dp_rounds = dp_rounds
        if dp_epsilon is not None:
            z = dp_sgd_noise(dp_epsilon, dp_delta, len(data.train), self.cfg, dp_rounds)
            self.cfg = type(self.cfg)(
                **{**self.cfg.__dict__, "dp_noise_multiplier": z, "dp_clip": dp_clip}
            )
        self.net = build_net(
            task,
            seed=seed,
            dp=dp_epsilon is not None and model == "hybrid",
            model=model,
            hidden=hidden,
        )

    def statistics(self) -> dict[str, list[float]]:
        """:func:`heartline.training.local.site_statistics` of the local training data."""
        from heartline.training.local import site_statistics

        return site_statistics(self.task, self.data.train)

    def set_class_weights(self, weights: list[float] | None) -> None:
        """Use ``weights`` (e.g. of the pooled label counts) instead of the local ones (and no
        logit adjustment)."""
        self.cfg = type(self.cfg)(
            **{
                **self.cfg.__dict__,
                "class_weights": None if weights is None else tuple(weights),
                "logit_adjustment": None,
            }
        )

    def set_label_skew_adjustment(
        self, pooled_counts: list[float], pooled_weights: list[float]
    ) -> None:
        """Train with the logit adjustment that aligns this site's loss with central training's
        under label skew (:func:`heartline.training.local.label_skew_adjustment`): an unweighted
        loss on ``logits + log p_site(y) - log pi_central(y)``, from the pooled label counts and
        class weights the server sent and this site's own label counts."""
        from heartline.training.local import label_skew_adjustment

        local = np.asarray(self.statistics()["label-counts"], dtype=float)
        adj, cw = label_skew_adjustment(
            local, np.asarray(pooled_counts, dtype=float), np.asarray(pooled_weights, dtype=float)
        )
        self.cfg = type(self.cfg)(
            **{**self.cfg.__dict__, "class_weights": cw, "logit_adjustment": adj}
        )

    def epsilon(self, rounds_done: int) -> float | None:
        """Record-level epsilon after ``rounds_done`` rounds of local DP-SGD (Opacus' RDP
        accountant, composed over the rounds), None without DP."""
        from heartline.training.local import dp_sgd_epsilon

        if self.cfg.dp_noise_multiplier <= 0 or rounds_done < 1:
            return None
        return dp_sgd_epsilon(
            self.cfg.dp_noise_multiplier, self.dp_delta, len(self.data.train), self.cfg, rounds_done
        )

    def fit(
        self, arrays: dict[str, np.ndarray], *, round_seed: int = 0, rounds_done: int = 1
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Train from ``arrays``; return the new weights and metrics (loss, examples, seconds;
        with DP-SGD the epsilon after ``rounds_done`` rounds, this one included)."""
        from heartline.training.local import (
            load_state_arrays,
            state_arrays,
            train_local,
            train_local_rhythm,
        )

        load_state_arrays(self.net, arrays)
        fit = train_local if self.task == "beats" else train_local_rhythm
        res = fit(self.net, self.data.train, self.cfg, round_seed=round_seed)
        metrics = {
            "train-loss": float(res.train_loss),
            "num-examples": int(res.n_examples),
            "seconds": float(res.seconds),
        }
        eps = self.epsilon(rounds_done)
        if eps is not None:
            metrics["dp-epsilon"] = eps
            metrics["dp-noise-multiplier"] = float(self.cfg.dp_noise_multiplier)
        return state_arrays(self.net), metrics

    def evaluate(self, arrays: dict[str, np.ndarray], *, on: str = "val") -> Any:
        """:class:`heartline.training.local.LocalEval` of ``arrays`` on local validation data."""
        from heartline.training.local import (
            evaluate_local,
            evaluate_local_rhythm,
            load_state_arrays,
        )

        load_state_arrays(self.net, arrays)
        data = self.data.val if on == "val" else self.data.train
        return (evaluate_local if self.task == "beats" else evaluate_local_rhythm)(self.net, data)
