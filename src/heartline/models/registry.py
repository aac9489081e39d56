"""Registry of every beat classifier: ``get_model(name, **config)``.

Deep models (``hybrid``, ``cnn``, ``lstm``, ``gru``, ``transformer``) are
:class:`~heartline.models.deep.TorchBeatClassifier` instances (``hybrid_ensemble``: its
cross-fitting subclass :class:`~heartline.models.ensemble.CrossFitHybridClassifier`); classical models come from
``heartline.models.classical.CLASSICAL_MODELS`` (imported lazily, only when asked for).

>>> sorted(DEEP_MODELS)
['cnn', 'gru', 'hybrid', 'hybrid_ensemble', 'lstm', 'transformer']
>>> get_model("nope")
Traceback (most recent call last):
...
ValueError: unknown model 'nope'; valid names: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from heartline.models.base import BeatClassifier

__all__ = ["DEEP_MODELS", "MODELS", "check_model_params", "get_model", "model_names"]

# Architecture parameters set from the data or from the training config, never by users.
_SHAPE_ARGS = frozenset({"n_leads", "window_len", "n_rr", "n_classes", "dropout"})


def _hybrid(**kw: Any) -> Any:
    from heartline.models.hybrid import HybridNet

    return HybridNet(**kw)


def _hybrid_ensemble(**kw: Any) -> Any:
    from heartline.models.ensemble import HybridEnsemble

    return HybridEnsemble(**kw)


def _cnn(**kw: Any) -> Any:
    from heartline.models.deep import CnnNet

    return CnnNet(**kw)


def _lstm(**kw: Any) -> Any:
    from heartline.models.deep import RecurrentNet

    return RecurrentNet(cell="lstm", **kw)


def _gru(**kw: Any) -> Any:
    from heartline.models.deep import RecurrentNet

    return RecurrentNet(cell="gru", **kw)


def _transformer(**kw: Any) -> Any:
    from heartline.models.deep import TransformerNet

    return TransformerNet(**kw)


def _net_class(name: str) -> type:
    from heartline.models.deep import CnnNet, RecurrentNet, TransformerNet
    from heartline.models.ensemble import HybridEnsemble
    from heartline.models.hybrid import HybridNet

    return {
        "hybrid": HybridNet,
        "hybrid_ensemble": HybridEnsemble,
        "cnn": CnnNet,
        "lstm": RecurrentNet,
        "gru": RecurrentNet,
        "transformer": TransformerNet,
    }[name]


#: Deep model name -> network factory ``(n_leads=, window_len=, n_rr=, dropout=, **params)``.
DEEP_MODELS: dict[str, Callable[..., Any]] = {
    "hybrid": _hybrid,
    "hybrid_ensemble": _hybrid_ensemble,
    "cnn": _cnn,
    "lstm": _lstm,
    "gru": _gru,
    "transformer": _transformer,
}


def _classical() -> dict[str, type]:
    import importlib.util

    if importlib.util.find_spec("heartline.models.classical") is None:
        return {}
    from heartline.models.classical import CLASSICAL_MODELS

    return dict(CLASSICAL_MODELS)


class _ModelRegistry(Mapping[str, Any]):
    """Read-only name -> factory mapping; the classical models are imported on first use."""

    def _all(self) -> dict[str, Any]:
        return {**DEEP_MODELS, **_classical()}

    def __getitem__(self, name: str) -> Any:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"MODELS({sorted(self._all())})"


#: Every model, deep (network factories) and classical (classes), by registry name.
MODELS: Mapping[str, Any] = _ModelRegistry()


def model_names() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(MODELS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")


def check_model_params(name: str, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or ``params`` has keys its constructor lacks."""
    if name in DEEP_MODELS:
        sig = inspect.signature(_net_class(name).__init__)
        valid = set(sig.parameters) - _SHAPE_ARGS - {"self", "cell"}
        if name == "hybrid_ensemble":  # members take the hybrid's architecture parameters
            hybrid = inspect.signature(_net_class("hybrid").__init__)
            valid = (valid | set(hybrid.parameters)) - _SHAPE_ARGS - {"self", "hybrid"}
    else:
        classical = _classical()
        if name not in classical:
            raise _unknown(name)
        sig = inspect.signature(classical[name])
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            return
        valid = set(sig.parameters) - {"self"}
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model {name!r}; valid: {sorted(valid)}"
        )


def get_model(name: str, *, train: Any = None, **config: Any) -> BeatClassifier:
    """Build the model registered as ``name``.

    Parameters
    ----------
    name : str
        Registry name (see :func:`model_names`).
    train : heartline.training.config.TrainConfig, optional
        Training settings of deep models (ignored by classical models).
    **config
        Architecture parameters (deep) or constructor arguments (classical).

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid names) or unknown parameter.
    """
    if name in DEEP_MODELS:
        from heartline.models.deep import TorchBeatClassifier

        check_model_params(name, config)
        if name == "hybrid_ensemble":
            from heartline.models.ensemble import CrossFitHybridClassifier

            return CrossFitHybridClassifier(name, DEEP_MODELS[name], config, train=train)
        return TorchBeatClassifier(name, DEEP_MODELS[name], config, train=train)
    classical = _classical()
    if name not in classical:
        raise _unknown(name)
    check_model_params(name, config)
    return classical[name](**config)
