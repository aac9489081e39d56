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

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from heartline.models.base import BeatClassifier

__all__ = ["DEEP_MODELS", "MODELS", "check_model_params", "get_model", "model_names"]

# Architecture parameters set from the data or from the training config, never by users.
_SHAPE_ARGS = frozenset({"n_leads", "window_len", "n_rr", "n_classes", "dropout"})


@dataclass(frozen=True)
class _DeepSpec:
    """How a deep registry name is built: its network, its classifier wrapper, its parameters."""

    net: str  #: ``"module:Class"`` of the network
    classifier: str = "heartline.models.deep:TorchBeatClassifier"
    fixed: tuple[tuple[str, Any], ...] = ()  #: constructor arguments the name fixes
    #: another deep model whose architecture parameters this one also accepts (ensemble members)
    member_of: str | None = None


_DEEP_SPECS: dict[str, _DeepSpec] = {
    "hybrid": _DeepSpec("heartline.models.hybrid:HybridNet"),
    "hybrid_ensemble": _DeepSpec(
        "heartline.models.ensemble:HybridEnsemble",
        classifier="heartline.models.ensemble:CrossFitHybridClassifier",
        member_of="hybrid",
    ),
    "cnn": _DeepSpec("heartline.models.deep:CnnNet"),
    "lstm": _DeepSpec("heartline.models.deep:RecurrentNet", fixed=(("cell", "lstm"),)),
    "gru": _DeepSpec("heartline.models.deep:RecurrentNet", fixed=(("cell", "gru"),)),
    "transformer": _DeepSpec("heartline.models.deep:TransformerNet"),
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _net_class(name: str) -> type:
    return _load(_DEEP_SPECS[name].net)


def _factory(name: str) -> Callable[..., Any]:
    spec = _DEEP_SPECS[name]

    def build(**kw: Any) -> Any:
        return _net_class(name)(**dict(spec.fixed), **kw)

    build.__name__ = f"build_{name}"
    return build


#: Deep model name -> network factory ``(n_leads=, window_len=, n_rr=, dropout=, **params)``.
DEEP_MODELS: dict[str, Callable[..., Any]] = {name: _factory(name) for name in _DEEP_SPECS}


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
        spec = _DEEP_SPECS[name]
        valid = set(inspect.signature(_net_class(name).__init__).parameters)
        if spec.member_of is not None:
            member = inspect.signature(_net_class(spec.member_of).__init__).parameters
            valid = (valid | set(member)) - {spec.member_of}
        valid -= _SHAPE_ARGS | {"self"} | {k for k, _ in spec.fixed}
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
        wrapper = _load(_DEEP_SPECS[name].classifier)
        return wrapper(name, DEEP_MODELS[name], config, train=train)
    classical = _classical()
    if name not in classical:
        raise _unknown(name)
    check_model_params(name, config)
    return classical[name](**config)
