"""Flower apps with secure aggregation (SecAgg+): the server only ever sees the sum of updates.

Flower 1.41 runs SecAgg+ through its workflow API: ``SecAggPlusWorkflow`` on the server (inside
``DefaultWorkflow`` with a ``LegacyContext``) and the ``secaggplus_mod`` on each ClientApp, which
masks each hospital's (weighted) update with pairwise masks and Shamir-shared secrets, so that the
masks cancel only in the sum (Bell et al. 2020). The hospital side is the same
:class:`heartline.federated.tasks.SiteTask` as the plain apps use, behind a ``NumPyClient``;
the server side is Flower's FedAvg. Progress records (``HEARTLINE-ROUND``) and the final weights
are written as :mod:`heartline.federated.server_app` does.

References
----------
Bell JH et al. Secure single-server aggregation with (poly)logarithmic overhead. CCS (2020).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from heartline.federated.client_app import HospitalOffline, node_settings, site_task
from heartline.federated.server_app import (
    ROUND_MARKER,
    MeteredGrid,
    save_npz_arrays,
    wait_for_nodes,
)

__all__ = ["client_app", "server_app"]


class _HospitalClient(NumPyClient):
    def __init__(self, context: Context) -> None:
        self.node = node_settings(context)
        self.site = site_task(context, self.node)
        self.keys = list(self.site.net.state_dict())

    def _arrays(self, parameters: list[np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.keys, parameters, strict=True))

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
        rnd = int(config.get("server-round", 0))
        if rnd in self.node["offline"]:
            raise HospitalOffline(f"hospital {self.node['partition_id']} is offline")
        new, metrics = self.site.fit(
            self._arrays(parameters), round_seed=rnd * 101 + self.node["partition_id"]
        )
        return (
            [new[k] for k in self.keys],
            int(metrics["num-examples"]),
            {"train-loss": float(metrics["train-loss"])},
        )

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
        ev = self.site.evaluate(self._arrays(parameters))
        loss = float(ev.loss) if np.isfinite(ev.loss) else 1e9
        return loss, int(ev.n_examples), {"confusion": json.dumps(ev.confusion.tolist())}


def _client_fn(context: Context) -> Any:
    return _HospitalClient(context).to_client()


client_app = ClientApp(client_fn=_client_fn, mods=[secaggplus_mod])
server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg with SecAgg+ for ``num-rounds`` rounds over the connected hospitals."""
    from heartline.training.local import confusion_macro_f1

    rc = context.run_config
    n_hosp = int(rc["num-hospitals"])
    rounds = int(rc["num-rounds"])
    out_dir = Path(str(rc["out-dir"])) if str(rc.get("out-dir", "")) else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    with np.load(str(rc["initial-weights"])) as z:
        keys = list(z.files)
        initial = [np.ascontiguousarray(z[k]) for k in keys]
    wait_for_nodes(grid, n_hosp, float(rc["connect-timeout-s"]))
    metered = MeteredGrid(grid)
    t0 = time.monotonic()
    state: dict[str, Any] = {"train_loss": None}

    def fit_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        n = sum(k for k, _ in results)
        state["train_loss"] = sum(k * float(m["train-loss"]) for k, m in results) / max(n, 1)
        return {"train-loss": state["train_loss"]}

    def eval_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        conf = sum(np.asarray(json.loads(str(m["confusion"]))) for _, m in results)
        f1 = confusion_macro_f1(np.asarray(conf))
        rec = {
            "round": state.get("round", 0),
            "rounds": rounds,
            "seconds": time.monotonic() - t0,
            "train_loss": state["train_loss"],
            "val_macro_f1": f1,
            "bytes_sent": metered.bytes_sent,
            "bytes_received": metered.bytes_received,
            "replies": metered.replies,
            "failures": metered.failures,
            "secure_aggregation": "SecAgg+",
        }
        metered.reset()
        line = json.dumps(rec)
        log(20, "%s %s", ROUND_MARKER, line)
        if out_dir is not None:
            with (out_dir / "rounds.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return {"val-macro-f1": f1}

    def server_evaluate(server_round: int, params: list[np.ndarray], config: dict) -> None:
        state["round"] = server_round  # called after each round's (secure) aggregation
        if out_dir is not None and server_round > 0:
            save_npz_arrays(out_dir / "global_final.npz", dict(zip(keys, params, strict=True)))
        return None

    strategy = LegacyFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=n_hosp,
        min_evaluate_clients=n_hosp,
        min_available_clients=n_hosp,
        initial_parameters=ndarrays_to_parameters(initial),
        fit_metrics_aggregation_fn=fit_metrics,
        evaluate_metrics_aggregation_fn=eval_metrics,
        evaluate_fn=server_evaluate,
        on_fit_config_fn=lambda rnd: {"server-round": rnd},
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=rounds, round_timeout=float(rc["round-timeout-s"])),
        strategy=strategy,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=max(2, n_hosp - 1))
    )
    workflow(metered, legacy)
    if out_dir is not None:
        (out_dir / "server_done.json").write_text(
            json.dumps({"rounds": rounds, "secure_aggregation": "SecAgg+"}), encoding="utf-8"
        )
