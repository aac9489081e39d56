"""Flower ServerApp: the strategy loop, with per-round progress and byte counts.

A thin adapter: it waits for the expected hospitals, builds the strategy by name
(:func:`heartline.federated.strategies.build_strategy`), runs Flower's ``Strategy.start`` and,
after every round, emits one progress record (pooled validation macro-F1 from the hospitals'
confusion matrices, losses, payload bytes sent and received, replies and failures). Records go
to the log as ``HEARTLINE-ROUND {json}`` lines (which ``flwr run --stream`` relays) and, when the
run config names an ``out-dir``, to ``rounds.jsonl`` there; the global weights of the last round
are written to ``global_final.npz``. The ServerApp imports no torch: initial weights come as an
``.npz`` file (``initial-weights``).

Run configuration keys: see ``src/heartline/federated/app/pyproject.toml``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from heartline.federated.strategies import build_strategy

__all__ = ["ROUND_MARKER", "MeteredGrid", "app", "message_bytes"]

ROUND_MARKER = "HEARTLINE-ROUND"
app = ServerApp()


def message_bytes(content: RecordDict) -> int:
    """Payload bytes of a message's records (arrays, metrics, configs)."""
    total = 0
    for rec in (*content.array_records.values(), *content.metric_records.values()):
        total += rec.count_bytes()
    for rec in content.config_records.values():
        total += _config_bytes(rec)
    return total


def _value_bytes(v: Any) -> int:
    if isinstance(v, bytes):
        return len(v)
    if isinstance(v, str):
        return len(v.encode("utf-8"))
    if isinstance(v, list):
        return sum(_value_bytes(x) for x in v)
    return 8  # int, float, bool


def _config_bytes(rec: Any) -> int:
    """Bytes of a ConfigRecord (Flower 1.41's ``count_bytes`` fails on empty lists, which the
    SecAgg+ workflow sends)."""
    return sum(len(k) + _value_bytes(v) for k, v in rec.items())


class MeteredGrid:
    """A :class:`flwr.serverapp.Grid` that counts payload bytes and failed replies."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.bytes_sent = 0
        self.bytes_received = 0
        self.replies = 0
        self.failures = 0
        self.failure_reasons: list[str] = []

    def reset(self) -> None:
        """Zero the counters (called once per round)."""
        self.bytes_sent = self.bytes_received = self.replies = self.failures = 0
        self.failure_reasons = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> Any:
        messages = list(messages)
        self.bytes_sent += sum(message_bytes(m.content) for m in messages)
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        for r in replies:
            if r.has_error():
                self.failures += 1
                self.failure_reasons.append(str(r.error.reason)[:200])
            else:
                self.replies += 1
                self.bytes_received += message_bytes(r.content)
        return replies


def _pooled_eval(records: list[RecordDict]) -> dict[str, float] | None:
    """Pool the hospitals' confusion matrices (macro-F1 of all their validation beats) and
    average their losses by beats; ``None`` when no reply carries an evaluation."""
    from heartline.training.local import confusion_macro_f1

    conf = None
    n_total, loss_sum = 0, 0.0
    for rd in records:
        m = next(iter(rd.metric_records.values()))
        if "confusion" not in m:
            continue
        c = np.asarray(m["confusion"], dtype=np.int64)
        conf = c if conf is None else conf + c
        n = int(m["eval-examples"])
        n_total += n
        loss = float(m["eval-loss"])
        loss_sum += (loss if loss >= 0 else math.nan) * n
    if conf is None:
        return None
    k = round(math.sqrt(conf.size))
    return {
        "val_macro_f1": confusion_macro_f1(conf.reshape(k, k)),
        "val_loss": loss_sum / n_total if n_total and math.isfinite(loss_sum) else None,
        "val_beats": n_total,
    }


def _mean_train(records: list[RecordDict]) -> dict[str, float | None]:
    vals = [next(iter(rd.metric_records.values())) for rd in records]
    n = sum(int(v["num-examples"]) for v in vals)
    loss = sum(float(v["train-loss"]) * int(v["num-examples"]) for v in vals) / max(n, 1)
    norms = [float(v["update-norm"]) for v in vals if "update-norm" in v]
    return {
        "train_loss": loss if math.isfinite(loss) else None,
        "train_beats": n,
        "update_norm_median": float(np.median(norms)) if norms else None,
    }


def _metric_record(d: dict[str, Any]) -> MetricRecord:
    return MetricRecord({k: float(v) for k, v in d.items() if v is not None})


def _last_round_evaluation(strategy: Any, final_round: int) -> Any:
    """Make ``strategy`` (or the one a DP wrapper holds) evaluate only in ``final_round``.

    Every training reply already scores the incoming global model on the hospital's validation
    beats, so the validation curve of rounds ``0 .. R-1`` comes with training; one evaluation
    message per hospital after the last round completes it (half the ClientApp launches).
    """
    inner = getattr(strategy, "strategy", strategy)
    original = inner.configure_evaluate

    def configure_evaluate(server_round: int, arrays: Any, config: Any, grid: Any) -> Any:
        if server_round != final_round:
            return []
        return original(server_round, arrays, config, grid)

    inner.configure_evaluate = configure_evaluate
    return strategy


def wait_for_nodes(grid: Grid, n: int, timeout_s: float) -> None:
    """Block until ``n`` SuperNodes are connected; a clear error after ``timeout_s`` seconds."""
    t0 = time.monotonic()
    while len(list(grid.get_node_ids())) < n:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(
                f"only {len(list(grid.get_node_ids()))} of {n} hospitals connected within "
                f"{timeout_s:.0f} s"
            )
        time.sleep(0.5)


#: state-dict entries that are statistics, not trained weights: a server optimiser (FedAdam)
#: must not step them; they are averaged as FedAvg does (see ``strategies``)
STAT_SUFFIXES: tuple[str, ...] = ("running_mean", "running_var", "num_batches_tracked")


def _query_statistics(grid: Grid, task: str, timeout_s: float) -> dict[str, list[float]] | None:
    """Ask every connected hospital for its label counts (and RR sums) in one query message;
    pool them (:func:`heartline.training.local.pooled_statistics`); ``None`` when none answers.
    """
    from flwr.app import Message, MessageType

    from heartline.training.local import pooled_statistics

    messages = [
        Message(content=RecordDict(), dst_node_id=nid, message_type=MessageType.QUERY)
        for nid in grid.get_node_ids()
    ]
    stats = []
    for reply in grid.send_and_receive(messages, timeout=timeout_s):
        if reply.has_error():
            log(30, "statistics query failed on a hospital: %s", reply.error.reason)
            continue
        rec = reply.content.metric_records["statistics"]
        stats.append({k: [float(x) for x in v] for k, v in rec.items()})
    if not stats:
        return None
    pooled = pooled_statistics(task, stats)
    pooled["label-counts"] = np.sum([s["label-counts"] for s in stats], axis=0).tolist()
    pooled["hospitals"] = [float(len(stats))]
    return pooled


def save_npz_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _save_npz(path: Path, arrays: ArrayRecord) -> None:
    save_npz_arrays(path, {k: v.numpy() for k, v in arrays.items()})


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured strategy for ``num-rounds`` rounds over the connected hospitals."""
    rc = context.run_config
    n_hosp = int(rc["num-hospitals"])
    rounds = int(rc["num-rounds"])
    out_dir = Path(str(rc["out-dir"])) if str(rc.get("out-dir", "")) else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    init_path = str(rc.get("initial-weights", ""))
    if init_path:
        with np.load(init_path) as z:
            initial = ArrayRecord({k: Array(np.ascontiguousarray(z[k])) for k in z.files})
    else:  # a remote SuperLink without the file: build the network here (needs torch)
        from heartline.federated.tasks import build_initial_arrays

        arrays = build_initial_arrays(
            str(rc["task"]),
            seed=int(rc["seed"]),
            dp=float(rc.get("record-dp-epsilon", 0.0)) > 0,
            model=str(rc.get("model", "hybrid")),
        )
        initial = ArrayRecord({k: Array(v) for k, v in arrays.items()})
    wait_for_nodes(grid, n_hosp, float(rc["connect-timeout-s"]))
    train_config: dict[str, Any] = {"local-epochs": int(rc["local-epochs"])}
    if bool(rc.get("global-statistics", True)):
        # the same class weights and RR standardisation as central training on the union
        pooled = _query_statistics(grid, str(rc["task"]), float(rc["round-timeout-s"]))
        if pooled is not None:
            train_config["class-weights"] = [float(x) for x in pooled["class-weights"]]
            if bool(rc.get("label-skew", False)):
                # each hospital turns these into its own logit adjustment (label_skew_adjustment)
                train_config["pooled-label-counts"] = [float(x) for x in pooled["label-counts"]]
            arrays0 = {k: v.numpy() for k, v in initial.items()}
            if "rr-mean" in pooled and "rr_mean" in arrays0:
                arrays0["rr_mean"] = np.asarray(pooled["rr-mean"], dtype=arrays0["rr_mean"].dtype)
                arrays0["rr_std"] = np.asarray(pooled["rr-std"], dtype=arrays0["rr_std"].dtype)
                initial = ArrayRecord(
                    {k: Array(np.ascontiguousarray(v)) for k, v in arrays0.items()}
                )
            log(
                20,
                "pooled statistics of %d hospitals: %s",
                int(pooled["hospitals"][0]),
                json.dumps({k: [round(x, 4) for x in v] for k, v in pooled.items()}),
            )
            if out_dir is not None:
                (out_dir / "statistics.json").write_text(json.dumps(pooled), encoding="utf-8")

    dp_z = float(rc.get("dp-noise-multiplier", 0.0))
    if dp_z > 0:  # Flower's clipping scales every array in place: integer counters as floats
        initial = ArrayRecord(
            {
                k: Array(v.numpy().astype(np.float32)) if v.numpy().dtype.kind in "iu" else v
                for k, v in initial.items()
            }
        )
    state: dict[str, Any] = {"train": None, "pre_eval": None, "eval": None}

    def train_aggr(records: list[RecordDict], key: str) -> MetricRecord:
        state["train"] = _mean_train(records)
        eps = [
            float(m["dp-epsilon"])
            for m in (next(iter(rd.metric_records.values())) for rd in records)
            if "dp-epsilon" in m
        ]
        if eps:  # record-level DP-SGD: the largest epsilon of any hospital so far
            state["train"]["record_dp_epsilon"] = max(eps)
        state["pre_eval"] = _pooled_eval(records)
        return _metric_record(state["train"])

    def eval_aggr(records: list[RecordDict], key: str) -> MetricRecord:
        state["eval"] = _pooled_eval(records)
        return _metric_record(state["eval"] or {})

    strategy = build_strategy(
        str(rc["strategy"]),
        n_hospitals=n_hosp,
        proximal_mu=float(rc["proximal-mu"]),
        weighted_by_key="unit-weight" if dp_z > 0 else "num-examples",
        train_metrics_aggr_fn=train_aggr,
        evaluate_metrics_aggr_fn=eval_aggr,
        dp_noise_multiplier=dp_z,
        dp_clip_norm=float(rc.get("dp-clip-norm", 1.0)),
        trimmed_beta=float(rc.get("trimmed-beta", 0.25)),
        fedadam_eta=float(rc.get("fedadam-eta", 0.01)),
        server_lr=float(rc.get("server-lr", 1.0)),
        server_momentum=float(rc.get("server-momentum", 0.0)),
        stat_suffixes=STAT_SUFFIXES,
    )
    _last_round_evaluation(strategy, rounds)
    metered = MeteredGrid(grid)
    t0 = time.monotonic()
    pending: dict[int, dict[str, Any]] = {}

    def emit(rec: dict[str, Any]) -> None:
        line = json.dumps(rec)
        log(20, "%s %s", ROUND_MARKER, line)
        if out_dir is not None:
            with (out_dir / "rounds.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def on_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        # this round's training replies scored the model of the previous round
        prev = pending.pop(server_round - 1, {"round": 0, "rounds": rounds})
        prev.update(state["pre_eval"] or {"val_macro_f1": None, "val_loss": None})
        emit(prev)
        rec: dict[str, Any] = {
            "round": server_round,
            "rounds": rounds,
            "seconds": time.monotonic() - t0,
            **(state["train"] or {"train_loss": None}),
            "bytes_sent": metered.bytes_sent,
            "bytes_received": metered.bytes_received,
            "replies": metered.replies,
            "failures": metered.failures,
            "failure_reasons": metered.failure_reasons[-5:],
        }
        metered.reset()
        state["train"] = state["pre_eval"] = None
        if server_round == rounds:
            rec.update(state["eval"] or {"val_macro_f1": None, "val_loss": None})
            emit(rec)
        else:
            pending[server_round] = rec
        if out_dir is not None:
            _save_npz(out_dir / "global_final.npz", arrays)
        return None

    strategy.start(
        grid=metered,
        initial_arrays=initial,
        num_rounds=rounds,
        timeout=float(rc["round-timeout-s"]),
        train_config=ConfigRecord(train_config),
        evaluate_config=ConfigRecord(),
        evaluate_fn=on_round,
    )
    if out_dir is not None:
        (out_dir / "server_done.json").write_text(
            json.dumps({"rounds": rounds, "seconds": time.monotonic() - t0}), encoding="utf-8"
        )
