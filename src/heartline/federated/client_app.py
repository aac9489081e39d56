"""Flower ClientApp: one hospital trains and evaluates Heartline's network on its own records.

A thin adapter (Flower's PyTorch quickstart pattern): it reads the SuperNode's ``--node-config``
(``manifest``, ``partition-id`` and optional test behaviours), loads *only* that hospital's records
from the manifest, and hands arrays to :class:`heartline.federated.tasks.SiteTask`.

Node configuration keys
-----------------------
manifest : str
    Path of the partition manifest (validated on load).
partition-id : int
    This hospital's index in the manifest.
data-dir : str, optional
    Root of the databases (default: Heartline's usual resolution).
offline-rounds : str, optional
    Comma-separated rounds in which this hospital is unreachable and replies with an error
    (benchmark of a hospital dropping out and coming back).
train-delay-s : float, optional
    Seconds a training message waits before training (tests kill a SuperNode mid-round).
behaviour : {"honest", "nan", "scale100"}, optional
    A faulty or malicious hospital for the robustness benchmark: ``nan`` sends NaN weights,
    ``scale100`` sends ``w_global + 100 * (w_local - w_global)``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from heartline.federated.partition import load_manifest
from heartline.federated.tasks import (
    NOISE_SEED_STRIDE,
    SiteTask,
    load_site_data,
    model_features,
)

__all__ = ["BEHAVIOURS", "app", "node_settings", "site_task"]

logger = logging.getLogger(__name__)

BEHAVIOURS: tuple[str, ...] = ("honest", "nan", "scale100")
app = ClientApp()
_SITES: dict[tuple[Any, ...], SiteTask] = {}


class HospitalOffline(RuntimeError):
    """Raised in the rounds a hospital is configured to be unreachable."""


def node_settings(context: Context) -> dict[str, Any]:
    """This SuperNode's settings from its ``node_config`` (manifest, partition, behaviour)."""
    nc = context.node_config
    behaviour = str(nc.get("behaviour", "honest"))
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"node-config behaviour={behaviour!r}; valid: {list(BEHAVIOURS)}")
    offline = str(nc.get("offline-rounds", "")).strip()
    return {
        "manifest": str(nc["manifest"]),
        "partition_id": int(nc["partition-id"]),
        "data_dir": str(nc["data-dir"]) if nc.get("data-dir") else None,
        "behaviour": behaviour,
        "offline": {int(r) for r in offline.split(",") if r.strip()},
        "train_delay_s": float(nc.get("train-delay-s", 0.0)),
    }


def site_task(context: Context, node: dict[str, Any]) -> SiteTask:
    """The hospital's local training task for this run (cached per process and run config)."""
    rc = context.run_config
    key = (
        node["manifest"],
        node["partition_id"],
        str(rc["task"]),
        int(rc["local-epochs"]),
        float(rc["lr"]),
        float(rc["keep-normal"]),
        int(rc["seed"]),
        float(rc.get("record-dp-epsilon", 0.0)),
        str(rc.get("model", "hybrid")),
        int(rc.get("batch-size", 64)),
        str(rc.get("optimizer", "adamw")),
    )
    if key not in _SITES:
        import torch

        torch.set_num_threads(1)
        manifest = load_manifest(node["manifest"])
        if manifest.task != rc["task"]:
            raise ValueError(f"manifest task {manifest.task!r} but run task {rc['task']!r}")
        hospital = manifest.hospital(node["partition_id"])
        data = load_site_data(
            manifest.task,
            hospital.records,
            data_dir=node["data_dir"],
            keep_normal=float(rc["keep-normal"]),
            seed=int(rc["seed"]) + node["partition_id"],
            features=model_features(str(rc.get("model", "hybrid"))),
        )
        logger.info("%s: %d records loaded", hospital.name, len(hospital.records))
        dp_eps = float(rc.get("record-dp-epsilon", 0.0))
        _SITES[key] = SiteTask(
            manifest.task,
            data,
            epochs=int(rc["local-epochs"]),
            lr=float(rc["lr"]),
            seed=int(rc["seed"]),
            dp_epsilon=dp_eps if dp_eps > 0 else None,
            dp_delta=float(rc.get("dp-delta", 1e-5)),
            dp_rounds=int(rc["num-rounds"]),
            dp_clip=float(rc.get("dp-clip-norm", 1.0)),
            model=str(rc.get("model", "hybrid")),
            batch_size=int(rc.get("batch-size", 64)),
            optimizer=str(rc.get("optimizer", "adamw")),
        )
    return _SITES[key]


def _arrays(msg: Message) -> dict[str, np.ndarray]:
    rec = msg.content["arrays"]
    return {k: v.numpy() for k, v in rec.items()}


def _round(msg: Message) -> int:
    return int(msg.content["config"]["server-round"])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Score the global weights locally, train local epochs; reply with new weights and metrics."""
    node = node_settings(context)
    rnd = _round(msg)
    if rnd in node["offline"]:
        raise HospitalOffline(f"hospital {node['partition_id']} is offline in round {rnd}")
    site = site_task(context, node)
    if node["train_delay_s"] > 0:
        import time

        time.sleep(node["train_delay_s"])
    config = msg.content["config"]
    site.cfg = type(site.cfg)(
        **{**site.cfg.__dict__, "proximal_mu": float(config.get("proximal-mu", 0.0))}
    )
    # the pooled class weights the server sent (absent: weights of the local labels; a
    # hand-feature head: the public weights of the published label counts, never local ones)
    cw = config.get("class-weights")
    if site.model != "hybrid":
        from heartline.training.local import public_rhythm_class_weights

        keep = float(context.run_config["keep-normal"])
        site.set_class_weights(public_rhythm_class_weights(keep).tolist())
        cw = None
    else:
        site.set_class_weights([float(x) for x in cw] if cw else None)
    pooled_counts = config.get("pooled-label-counts")
    if pooled_counts and cw:
        site.set_label_skew_adjustment([float(x) for x in pooled_counts], [float(x) for x in cw])
    start = _arrays(msg)
    # the incoming global model, scored on local validation beats before training: the server
    # pools these confusion matrices into the previous round's validation macro-F1
    ev = site.evaluate(start)
    # the noise seed redraws DP-SGD noise, Poisson batches and shuffles (0: the earlier draws)
    noise_seed = int(context.run_config.get("noise-seed", 0))
    round_seed = rnd * 101 + node["partition_id"] + NOISE_SEED_STRIDE * noise_seed
    new, metrics = site.fit(start, round_seed=round_seed, rounds_done=rnd)
    metrics.update(_eval_metrics(ev))
    # reply in the dtypes received: a server that sent integer counters as floats (the DP
    # wrappers need float arrays) gets floats back
    new = {k: v.astype(start[k].dtype, copy=False) for k, v in new.items()}
    if node["behaviour"] == "nan":
        new = {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in new.items()}
    elif node["behaviour"] == "scale100":
        new = {
            k: (start[k] + 100.0 * (v - start[k])).astype(v.dtype) if v.dtype.kind == "f" else v
            for k, v in new.items()
        }
    metrics["unit-weight"] = 1
    metrics["update-norm"] = float(
        np.sqrt(
            sum(float(np.sum((v - start[k]) ** 2)) for k, v in new.items() if v.dtype.kind == "f")
        )
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in new.items()}),
            "metrics": MetricRecord(metrics),
        }
    )
    return Message(content=content, reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """This hospital's label counts (and rhythm RR-feature sums): aggregate statistics, sent once
    before training so the server can pool class weights and the RR standardisation."""
    node = node_settings(context)
    site = site_task(context, node)
    stats = site.statistics()
    metrics = MetricRecord({k: [float(x) for x in v] for k, v in stats.items()})
    return Message(content=RecordDict({"statistics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Loss and confusion matrix of the global weights on this hospital's validation beats."""
    node = node_settings(context)
    rnd = _round(msg)
    if rnd in node["offline"]:
        raise HospitalOffline(f"hospital {node['partition_id']} is offline in round {rnd}")
    site = site_task(context, node)
    ev = site.evaluate(_arrays(msg))
    metrics = MetricRecord(
        {**_eval_metrics(ev), "num-examples": int(ev.n_examples), "unit-weight": 1}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


def _eval_metrics(ev: Any) -> dict[str, Any]:
    return {
        "eval-loss": float(ev.loss) if np.isfinite(ev.loss) else -1.0,
        "eval-examples": int(ev.n_examples),
        "confusion": [int(x) for x in ev.confusion.ravel()],
    }
