"""Trainable wrapper of a beat network: fit / predict / save / load around the training loop.

:class:`TorchBeatClassifier` turns any :class:`~heartline.models.deep.BeatNet` factory of
:mod:`heartline.models.registry` into a :class:`~heartline.models.base.BeatClassifier`: it builds
the network once the input shapes are known, trains it with
:func:`heartline.training.trainer.train_net` and predicts with
:func:`heartline.training.trainer.predict_logits`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heartline.data.beat_set import BeatSet
from heartline.models.deep import BeatNet
from heartline.training.config import TrainConfig
from heartline.training.trainer import predict_logits, train_net

__all__ = ["TorchBeatClassifier"]


class TorchBeatClassifier:
    """A :class:`~heartline.models.base.BeatClassifier` around a :class:`~heartline.models.deep.BeatNet` factory.

    The network is built in :meth:`fit` once the input shapes (leads, window length, RR
    features) are known. ``dropout`` comes from the training config.

    Parameters
    ----------
    name : str
        Registry name.
    factory : callable
        ``factory(n_leads=, window_len=, n_rr=, dropout=, **params) -> BeatNet``.
    params : dict
        Architecture parameters passed to ``factory``.
    train : heartline.training.config.TrainConfig or None
        Training settings (defaults when ``None``).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[..., BeatNet],
        params: dict[str, Any] | None = None,
        train: Any = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.params = dict(params or {})
        self.train_config = train if train is not None else TrainConfig()
        self.net: BeatNet | None = None
        self.result: Any = None

    def build(self, *, n_leads: int, window_len: int, n_rr: int) -> BeatNet:
        """Build (and keep) the network for the given input shapes."""
        self.net = self.factory(
            n_leads=n_leads,
            window_len=window_len,
            n_rr=n_rr,
            dropout=self.train_config.dropout,
            **self.params,
        )
        return self.net

    def fit(
        self,
        train: BeatSet,
        val: BeatSet,
        *,
        run_dir: Path | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        """Train on ``train`` with early stopping on ``val`` (see :func:`~heartline.training.trainer.train_net`)."""
        cfg = dataclasses.replace(self.train_config, seed=seed)
        torch.manual_seed(seed)
        self.build(n_leads=train.n_leads, window_len=train.window_len, n_rr=train.rr.shape[1])
        assert self.net is not None
        self.result = train_net(self.net, train, val, cfg, run_dir=run_dir, progress=progress)

    def _require_net(self) -> BeatNet:
        if self.net is None:
            raise RuntimeError(f"model {self.name!r} is not trained: call fit() or load() first")
        return self.net

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        """Class probabilities ``(len(beats), 5)`` (rows sum to 1)."""
        logits = predict_logits(self._require_net(), beats)
        return _softmax(logits)

    def predict(self, beats: BeatSet) -> np.ndarray:
        """Most probable class index of every beat."""
        return self.predict_proba(beats).argmax(axis=1)

    def save(self, path: Path) -> None:
        """Write ``model.pt`` (state dict) and ``model.json`` (name, shapes, params) into ``path``."""
        net = self._require_net()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path / "model.pt")
        meta = {
            "name": self.name,
            "n_leads": net.n_leads,
            "window_len": net.window_len,
            "n_rr": net.n_rr,
            "dropout": self.train_config.dropout,
            "params": self.params,
        }
        (path / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TorchBeatClassifier:
        """Load a model saved by :meth:`save` (the registry rebuilds the network)."""
        from heartline.training.registry import get_model

        path = Path(path)
        meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
        model = get_model(meta["name"], **meta["params"])
        if not isinstance(model, TorchBeatClassifier):
            raise ValueError(f"{path}: {meta['name']!r} is not a deep model")
        model.train_config = dataclasses.replace(model.train_config, dropout=meta["dropout"])
        net = model.build(n_leads=meta["n_leads"], window_len=meta["window_len"], n_rr=meta["n_rr"])
        net.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        net.eval()
        return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
