"""Registry of every trainable beat classifier: ``get_model(name, **config)``.

Deep models (``hybrid``, ``cnn``, ``lstm``, ``gru``, ``transformer``) are the networks of
:mod:`heartline.models.registry` wrapped in a
:class:`~heartline.training.deep.TorchBeatClassifier` (``hybrid_ensemble``: its cross-fitting
subclass :class:`~heartline.training.crossfit.CrossFitHybridClassifier`); classical models come
from ``heartline.training.classical.CLASSICAL_MODELS`` (imported lazily, only when asked for).

>>> sorted(DEEP_MODELS)
['cnn', 'gru', 'hybrid', 'hybrid_ensemble', 'lstm', 'transformer']
>>> get_model("nope")
Traceback (most recent call last):
...
ValueError: unknown model 'nope'; valid names: ...
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from heartline.models.base import BeatClassifier
from heartline.models.registry import DEEP_MODELS, network_params

__all__ = ["DEEP_MODELS", "MODELS", "check_model_params", "get_model", "model_names"]

#: Deep model name -> ``"module:Class"`` of its classifier wrapper (default: TorchBeatClassifier).
_CLASSIFIERS: dict[str, str] = {
    "hybrid_ensemble": "heartline.training.crossfit:CrossFitHybridClassifier",
}
_DEFAULT_CLASSIFIER = "heartline.training.deep:TorchBeatClassifier"


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _classical() -> dict[str, type]:
    import importlib.util

    if importlib.util.find_spec("heartline.training.classical") is None:
        return {}
    from heartline.training.classical import CLASSICAL_MODELS

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
        valid = network_params(name)
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
        check_model_params(name, config)
        wrapper = _load(_CLASSIFIERS.get(name, _DEFAULT_CLASSIFIER))
        return wrapper(name, DEEP_MODELS[name], config, train=train)
    classical = _classical()
    if name not in classical:
        raise _unknown(name)
    check_model_params(name, config)
    return classical[name](**config)
