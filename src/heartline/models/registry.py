"""Registry of the beat networks: ``DEEP_MODELS[name](n_leads=, window_len=, n_rr=, ...)``.

Every name maps to a factory of a :class:`~heartline.models.deep.BeatNet` (``hybrid``, ``cnn``,
``lstm``, ``gru``, ``transformer``, and ``hybrid_ensemble``:
:class:`~heartline.models.ensemble.HybridEnsemble`). The registry of trainable classifiers,
deep and classical, that wraps these networks with a training loop is
:mod:`heartline.training.registry` (``get_model``): this package holds networks only and never
imports :mod:`heartline.training`.

>>> sorted(DEEP_MODELS)
['cnn', 'gru', 'hybrid', 'hybrid_ensemble', 'lstm', 'transformer']
>>> check_network_params("nope", {})
Traceback (most recent call last):
...
ValueError: unknown network 'nope'; valid names: cnn, gru, hybrid, hybrid_ensemble, lstm, transformer
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEEP_MODELS",
    "SHAPE_ARGS",
    "check_network_params",
    "network_class",
    "network_names",
    "network_params",
]

#: Architecture parameters set from the data or from the training config, never by users.
SHAPE_ARGS = frozenset({"n_leads", "window_len", "n_rr", "n_classes", "dropout"})


@dataclass(frozen=True)
class _DeepSpec:
    """How a network registry name is built: its class and the parameters the name fixes."""

    net: str  #: ``"module:Class"`` of the network
    fixed: tuple[tuple[str, Any], ...] = ()  #: constructor arguments the name fixes
    #: another network whose architecture parameters this one also accepts (ensemble members)
    member_of: str | None = None


_DEEP_SPECS: dict[str, _DeepSpec] = {
    "hybrid": _DeepSpec("heartline.models.hybrid:HybridNet"),
    "hybrid_ensemble": _DeepSpec("heartline.models.ensemble:HybridEnsemble", member_of="hybrid"),
    "cnn": _DeepSpec("heartline.models.deep:CnnNet"),
    "lstm": _DeepSpec("heartline.models.deep:RecurrentNet", fixed=(("cell", "lstm"),)),
    "gru": _DeepSpec("heartline.models.deep:RecurrentNet", fixed=(("cell", "gru"),)),
    "transformer": _DeepSpec("heartline.models.deep:TransformerNet"),
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def network_class(name: str) -> type:
    """The :class:`~heartline.models.deep.BeatNet` subclass registered as ``name``."""
    if name not in _DEEP_SPECS:
        raise _unknown(name)
    return _load(_DEEP_SPECS[name].net)


def _factory(name: str) -> Callable[..., Any]:
    spec = _DEEP_SPECS[name]

    def build(**kw: Any) -> Any:
        return network_class(name)(**dict(spec.fixed), **kw)

    build.__name__ = f"build_{name}"
    return build


#: Network name -> factory ``(n_leads=, window_len=, n_rr=, dropout=, **params) -> BeatNet``.
DEEP_MODELS: dict[str, Callable[..., Any]] = {name: _factory(name) for name in _DEEP_SPECS}


def network_names() -> list[str]:
    """Sorted names of every registered network."""
    return sorted(DEEP_MODELS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown network {name!r}; valid names: {', '.join(network_names())}")


def network_params(name: str) -> set[str]:
    """Architecture parameters a user may set for the network ``name``."""
    if name not in _DEEP_SPECS:
        raise _unknown(name)
    spec = _DEEP_SPECS[name]
    valid = set(inspect.signature(network_class(name).__init__).parameters)
    if spec.member_of is not None:
        member = inspect.signature(network_class(spec.member_of).__init__).parameters
        valid = (valid | set(member)) - {spec.member_of}
    return valid - SHAPE_ARGS - {"self"} - {k for k, _ in spec.fixed}


def check_network_params(name: str, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or ``params`` has keys its constructor lacks."""
    valid = network_params(name)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model {name!r}; valid: {sorted(valid)}"
        )
