"""Federated training across hospitals with Flower's deployment engine.

No patient data leaves a site: one Flower SuperNode per hospital reads only the records that the
partition manifest (:mod:`heartline.federated.partition`) gives it, trains Heartline's network
locally (:mod:`heartline.training.local`, which imports no Flower) and sends weights to a
SuperLink, where the ServerApp aggregates them with the chosen strategy.

* :mod:`~heartline.federated.partition`: hospitals as manifests (no Flower needed);
* :mod:`~heartline.federated.client_app` / :mod:`~heartline.federated.server_app`: the thin Flower
  adapters (ClientApp, ServerApp);
* :mod:`~heartline.federated.strategies`: the strategy registry (FedAvg, FedProx, FedAdam and the
  robust FedMedian, Krum, FedTrimmedAvg; client-level differential privacy);
* :mod:`~heartline.federated.deployment`: starts a local SuperLink and N SuperNodes by Flower's
  own command-line entry points on free ports, runs ``flwr run``, stops every process.

Flower is the optional extra ``heartline[federated]``; :func:`require_flwr` names it when missing.
"""

from __future__ import annotations

__all__ = ["FLWR_EXTRA_MESSAGE", "FlowerMissingError", "require_flwr"]

from heartline.errors import HeartlineError

FLWR_EXTRA_MESSAGE = (
    "federated training needs Flower: install the extra with "
    "`pip install 'heartline[federated]'` (flwr==1.41.0)"
)


class FlowerMissingError(HeartlineError, ImportError):
    """``flwr`` is not installed (the message names the extra to install)."""


def require_flwr() -> None:
    """Raise :class:`FlowerMissingError` naming ``heartline[federated]`` when flwr is missing."""
    import importlib.util

    try:
        found = importlib.util.find_spec("flwr") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise FlowerMissingError(FLWR_EXTRA_MESSAGE)
    try:
        import flwr  # noqa: F401
    except ImportError as exc:
        raise FlowerMissingError(f"{FLWR_EXTRA_MESSAGE} ({exc})") from None
