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

__all__ = ["TASK_NAMES", "SiteData", "SiteTask", "build_initial_arrays", "load_test_data"]

logger = logging.getLogger(__name__)

TASK_NAMES: tuple[str, ...] = ("beats", "rhythm")


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
) -> SiteData:
    """Read exactly ``records`` and split them into local training and validation parts."""
    _check_task(task)
    if task == "beats":
        from heartline.data.beat_dataset import build_beat_set
        from heartline.training.local import local_validation_split, subsample_normal

        beats = build_beat_set(records, data_dir=data_dir, progress=False)
        train, val = local_validation_split(beats)
        train = subsample_normal(train, keep_fraction=keep_normal, seed=seed)
        return SiteData(train, val, tuple(records))
    raise NotImplementedError(
        "the rhythm task's training waits for heartline.training.rhythm (branch `rhythm`); "
        "`heartline federated partition --task rhythm` works"
    )


def load_test_data(manifest: Manifest, *, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """The central test set of the manifest's task (DS2 beats for ``beats``)."""
    if manifest.task == "beats":
        from heartline.data.beat_dataset import build_beat_set

        return build_beat_set(manifest.test_records, data_dir=data_dir, progress=False)
    raise NotImplementedError("rhythm test data waits for heartline.training.rhythm")


def build_net(task: str, *, seed: int = 0) -> Any:
    """A freshly initialised network of the task (seeded)."""
    _check_task(task)
    if task == "beats":
        from heartline.signal.beats import RR_FEATURE_NAMES
        from heartline.training.local import build_federated_beat_net

        return build_federated_beat_net(n_rr=len(RR_FEATURE_NAMES), seed=seed)
    raise NotImplementedError("rhythm network waits for heartline.models.rhythm")


def build_initial_arrays(task: str, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Initial global weights (``name -> array``) of the task's network."""
    from heartline.training.local import state_arrays

    return state_arrays(build_net(task, seed=seed))


class SiteTask:
    """Local training and evaluation of one site from given weights.

    Parameters
    ----------
    task : {"beats", "rhythm"}
    data : SiteData
    epochs, lr, proximal_mu, seed : local training settings
        (:class:`heartline.training.local.LocalConfig`).
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
    ) -> None:
        _check_task(task)
        from heartline.training.local import LocalConfig

        self.task = task
        self.data = data
        self.cfg = LocalConfig(epochs=epochs, lr=lr, proximal_mu=proximal_mu, seed=seed)
        self.net = build_net(task, seed=seed)

    def fit(
        self, arrays: dict[str, np.ndarray], *, round_seed: int = 0
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Train from ``arrays``; return the new weights and metrics (loss, examples, seconds)."""
        from heartline.training.local import load_state_arrays, state_arrays, train_local

        load_state_arrays(self.net, arrays)
        res = train_local(self.net, self.data.train, self.cfg, round_seed=round_seed)
        metrics = {
            "train-loss": float(res.train_loss),
            "num-examples": int(res.n_examples),
            "seconds": float(res.seconds),
        }
        return state_arrays(self.net), metrics

    def evaluate(self, arrays: dict[str, np.ndarray], *, on: str = "val") -> Any:
        """:class:`heartline.training.local.LocalEval` of ``arrays`` on local validation data."""
        from heartline.training.local import evaluate_local, load_state_arrays

        load_state_arrays(self.net, arrays)
        beats = self.data.val if on == "val" else self.data.train
        return evaluate_local(self.net, beats)
