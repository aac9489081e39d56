"""Registry of Flower strategies by name, and the client-level differential-privacy wrapper.

``fedavg`` (McMahan et al. 2017), ``fedprox`` (Li et al. 2020; the proximal term is applied by
:func:`heartline.training.local.train_local`), ``fedadam`` (Reddi et al. 2021) and the robust
aggregators ``fedmedian`` (Yin et al. 2018), ``krum`` (Blanchard et al. 2017) and
``trimmedavg`` (Yin et al. 2018). Differential privacy: Flower's
``DifferentialPrivacyServerSideFixedClipping`` (each hospital's update clipped to an L2 norm, then
Gaussian noise added to the sum; Geyer et al. 2017) with the noise multiplier calibrated to a
target epsilon at a fixed delta (:func:`heartline.federated.privacy.noise_for_epsilon`).

References
----------
McMahan B et al. Communication-efficient learning of deep networks from decentralized data.
AISTATS (2017). Li T et al. Federated optimization in heterogeneous networks. MLSys (2020).
Reddi S et al. Adaptive federated optimization. ICLR (2021). Hsu TMH et al. Measuring the effects
of non-identical data distribution for federated visual classification. arXiv:1909.06335 (2019). Yin D et al. Byzantine-robust
distributed learning: towards optimal statistical rates. ICML (2018). Blanchard P et al.
Machine learning with adversaries: Byzantine tolerant gradient descent. NeurIPS (2017). Geyer RC
et al. Differentially private federated learning: a client level perspective. arXiv:1712.07557.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heartline.federated import require_flwr

__all__ = ["ROBUST_STRATEGIES", "STRATEGY_NAMES", "build_strategy"]

STRATEGY_NAMES: tuple[str, ...] = (
    "fedavg",
    "fedprox",
    "fedadam",
    "fedavgm",
    "fedmedian",
    "krum",
    "trimmedavg",
)
ROBUST_STRATEGIES: tuple[str, ...] = ("fedmedian", "krum", "trimmedavg")


def build_strategy(
    name: str,
    *,
    n_hospitals: int,
    proximal_mu: float = 0.01,
    weighted_by_key: str = "num-examples",
    train_metrics_aggr_fn: Callable[..., Any] | None = None,
    evaluate_metrics_aggr_fn: Callable[..., Any] | None = None,
    dp_noise_multiplier: float = 0.0,
    dp_clip_norm: float = 1.0,
    trimmed_beta: float = 0.25,
    krum_malicious: int = 1,
    fedadam_eta: float = 0.01,
    server_lr: float = 1.0,
    server_momentum: float = 0.0,
    stat_suffixes: tuple[str, ...] = (),
) -> Any:
    """A Flower strategy by name (``ValueError`` listing the valid names otherwise).

    Every strategy samples all connected hospitals, needs only one of them per round (so a
    round goes on with the survivors when a hospital drops out) and, with
    ``dp_noise_multiplier > 0``, is wrapped in server-side fixed clipping + Gaussian noise.
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; valid names: {list(STRATEGY_NAMES)}")
    require_flwr()
    from flwr.serverapp import strategy as st

    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 1,
        "min_available_nodes": 1,
        "weighted_by_key": weighted_by_key,
        "train_metrics_aggr_fn": train_metrics_aggr_fn,
        "evaluate_metrics_aggr_fn": evaluate_metrics_aggr_fn,
    }
    if name == "fedavg":
        strategy = st.FedAvg(**common)
    elif name == "fedprox":
        strategy = st.FedProx(**common, proximal_mu=proximal_mu)
    elif name == "fedadam":
        strategy = _fedadam_class(st)(
            **common, eta=fedadam_eta, eta_l=fedadam_eta, tau=1e-3, stat_suffixes=stat_suffixes
        )
    elif name == "fedavgm":
        strategy = _fedavgm_class(st)(
            **common,
            server_learning_rate=server_lr,
            server_momentum=server_momentum,
            stat_suffixes=stat_suffixes,
        )
    elif name == "fedmedian":
        strategy = st.FedMedian(**common)
    elif name == "krum":
        strategy = st.Krum(**common, num_malicious_nodes=krum_malicious)
    else:
        strategy = st.FedTrimmedAvg(**common, beta=trimmed_beta)
    if dp_noise_multiplier > 0:
        strategy = st.DifferentialPrivacyServerSideFixedClipping(
            strategy,
            noise_multiplier=dp_noise_multiplier,
            clipping_norm=dp_clip_norm,
            num_sampled_clients=n_hospitals,
        )
    return strategy


class _PlainStatsMixin:
    """Strategy mixin: after the strategy's own aggregation, the entries named by
    ``stat_suffixes`` (batch-norm running statistics and counters) take the plain weighted
    average of the replies, as :class:`flwr.serverapp.strategy.FedAvg` aggregates them."""

    def __init__(self, *args: Any, stat_suffixes: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._stat_suffixes = tuple(stat_suffixes)

    def aggregate_train(self, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        if arrays is None or not self._stat_suffixes:
            return arrays, metrics
        from flwr.serverapp import strategy as st

        plain, _ = st.FedAvg.aggregate_train(self, server_round, replies)
        from flwr.app import ArrayRecord

        out = {}
        for k, v in arrays.items():
            out[k] = plain[k] if k.endswith(self._stat_suffixes) and plain is not None else v
        return ArrayRecord(out), metrics


def _fedadam_class(st: Any) -> type:
    """Flower's FedAdam whose Adam step skips the entries named by ``stat_suffixes`` (batch-norm
    running statistics and counters): those are replaced by their plain weighted average, as
    FedAvg aggregates them. An adaptive server step on a running variance moves it by about
    ``eta`` per round whatever the hospitals measured, which leaves the global model's
    normalisation far from the data (Reddi et al. 2021 adapt the trainable weights only).
    """

    class FedAdamStats(_PlainStatsMixin, st.FedAdam):  # type: ignore[misc,name-defined]
        pass

    return FedAdamStats


def _fedavgm_class(st: Any) -> type:
    """Flower's FedAvgM (Hsu et al. 2019: server learning rate and momentum on the averaged
    update) whose server step skips the entries named by ``stat_suffixes``: batch-norm running
    statistics and counters take the plain weighted average, as in FedAvg. A server learning rate
    above 1 makes up for averaging: each hospital makes only its share of a pass over the pooled
    data per round, so the mean update is about ``1 / N`` of a central epoch's.
    """

    class FedAvgMStats(_PlainStatsMixin, st.FedAvgM):  # type: ignore[misc,name-defined]
        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            record, metrics = super().aggregate_train(server_round, replies)
            if record is not None and self._stat_suffixes:
                self.current_arrays = record  # the next round's momentum starts from it
            return record, metrics

    return FedAvgMStats
