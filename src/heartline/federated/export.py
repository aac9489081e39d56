"""The federated model as a Heartline run directory, shipped like a centrally trained one.

:func:`write_run_dir` turns the final global weights (``global_final.npz`` written by the
ServerApp) into the run-directory layout of central training (``model/model.pt`` +
``model/model.json`` of a :class:`~heartline.models.deep.TorchBeatClassifier`, ``config.toml``,
``history.json``, ``run.json``), so that :func:`heartline.edge.shipped.ship` (the code behind
``heartline ship``) exports it to ONNX, checks ONNX-PyTorch parity, measures DS2 and writes the
model card; the live system then loads the federated model unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["evaluate_arrays", "load_npz", "ship_run_dir", "write_run_dir"]


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file as a dict."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def evaluate_arrays(task: str, arrays: dict[str, np.ndarray], test: Any) -> dict[str, Any]:
    """Macro-F1, accuracy and confusion matrix of ``arrays`` on the test set.

    Macro-F1 over N, S, V, F for beats (Q left out, as everywhere in Heartline) and over N, A, O,
    noise for rhythm; ``cinc_f1`` (mean F1 of N, A, O: the CinC 2017 score) for rhythm. The
    network is recognised from the weights (:func:`heartline.federated.tasks.net_for_arrays`);
    a hand-feature head needs ``test`` loaded with its features
    (:func:`heartline.federated.tasks.load_test_data`, ``features="hand"``).
    """
    from heartline.federated.tasks import net_for_arrays
    from heartline.training.local import (
        confusion_macro_f1,
        evaluate_local,
        evaluate_local_rhythm,
        load_state_arrays,
    )

    net = net_for_arrays(task, arrays)
    load_state_arrays(net, arrays)
    ev = (evaluate_local if task == "beats" else evaluate_local_rhythm)(net, test)
    conf = ev.confusion
    return {
        "macro_f1": float(ev.macro_f1),
        "accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
        "loss": None if not np.isfinite(ev.loss) else float(ev.loss),
        "n_beats": int(ev.n_examples),
        "confusion": conf.tolist(),
        **({"cinc_f1": confusion_macro_f1(conf, classes=(0, 1, 2))} if task == "rhythm" else {}),
    }


def write_run_dir(
    task: str,
    arrays: dict[str, np.ndarray],
    run_dir: str | os.PathLike[str],
    *,
    rounds: list[dict[str, Any]],
    info: dict[str, Any],
) -> Path:
    """Write the global weights as a central-training run directory (see the module docstring)."""
    if task != "beats":
        raise NotImplementedError("only the beats task ships through heartline ship")
    from heartline.federated.tasks import build_net
    from heartline.models.deep import TorchBeatClassifier
    from heartline.models.registry import DEEP_MODELS
    from heartline.training.local import (
        FEDERATED_BEAT_MODEL,
        FEDERATED_BEAT_PARAMS,
        load_state_arrays,
    )
    from heartline.training.rundir import git_revision, write_json

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    net = build_net(task)
    load_state_arrays(net, arrays)
    model = TorchBeatClassifier(
        FEDERATED_BEAT_MODEL, DEEP_MODELS[FEDERATED_BEAT_MODEL], dict(FEDERATED_BEAT_PARAMS)
    )
    import dataclasses

    model.train_config = dataclasses.replace(model.train_config, dropout=0.1)
    model.net = net
    model.save(run_dir / "model")
    params = "\n".join(f"{k} = {json.dumps(v)}" for k, v in FEDERATED_BEAT_PARAMS.items())
    (run_dir / "config.toml").write_text(
        f'name = "federated-{task}"\n\n[model]\nname = "{FEDERATED_BEAT_MODEL}"\n\n'
        f"[model.params]\n{params}\n",
        encoding="utf-8",
    )
    history = [
        {
            "epoch": r["round"],
            "train_loss": r.get("train_loss") if r.get("train_loss") is not None else float("nan"),
            "val_loss": r.get("val_loss") if r.get("val_loss") is not None else float("nan"),
            "val_macro_f1": r.get("val_macro_f1")
            if r.get("val_macro_f1") is not None
            else float("nan"),
        }
        for r in rounds
        if r["round"] > 0
    ]
    write_json(
        run_dir / "history.json",
        {
            "history": history,
            "best_epoch": len(history),
            "best_score": history[-1]["val_macro_f1"] if history else None,
            "monitor": "none (federated rounds, final global model)",
            "train_seconds": max((r.get("seconds") or 0.0) for r in rounds) if rounds else None,
            "stop_reason": "max_epochs",
            "n_params": int(sum(p.numel() for p in net.parameters())),
        },
    )
    write_json(run_dir / "run.json", {"git_revision": git_revision(), "federated": info})
    return run_dir


def ship_run_dir(
    run_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    name: str = "heartline_federated",
    n_bootstrap: int = 200,
    data_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """``heartline ship`` on the federated run directory (ONNX, parity check, DS2, model card)."""
    from heartline.edge.shipped import ship
    from heartline.training.protocols import ProtocolData

    return ship(
        run_dir,
        dest=dest,
        name=name,
        data=ProtocolData(data_dir=data_dir),
        n_bootstrap=n_bootstrap,
        latency_beats=200,
    )
