"""Run directories: every training or benchmark run writes into its own folder.

A run directory holds ``run.json`` (name, seed, git revision, start time, later the end time),
``config.toml`` (the resolved experiment config), ``metrics.json``, ``history.json``, the
training-curve PNG and the model artefacts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "git_revision",
    "new_run_dir",
    "platform_info",
    "plot_history",
    "update_run_info",
    "write_json",
    "write_metrics",
]

logger = logging.getLogger(__name__)


def git_revision(path: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding this package (``"+dirty"`` if modified),
    or ``"unknown"`` outside a git checkout (:func:`heartline.revision.git_head`)."""
    from heartline.revision import git_head

    return git_head(mark_dirty=True, default="unknown", path=path)


def platform_info() -> dict[str, Any]:
    """What a run's floating-point results can depend on besides code, data and seed.

    PyTorch promises bit-identical training only on one machine: the same code, seed and threads
    can train differently on another CPU, whose kernels (AVX2, AVX-512, AMX) round differently.
    Recorded in every ``run.json`` so that a failed reproduction can be told apart from a code
    change. Torch is reported only when it is already imported (no import for a benchmark that
    does not train).

    >>> sorted(platform_info())[:3]
    ['cpu', 'machine', 'numpy']
    """
    import platform
    import sys

    import numpy as np

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "machine": platform.machine(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch.get_num_threads()
    return info


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (numpy scalars and paths converted)."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot serialise {type(obj).__name__}")

    path.write_text(json.dumps(data, indent=2, default=default), encoding="utf-8")
    return path


def new_run_dir(
    root: str | Path, name: str, *, config: Any = None, seed: int | None = None
) -> Path:
    """Create ``root/<UTC timestamp>-<name>`` (unique) and write ``run.json`` (and ``config.toml``).

    Parameters
    ----------
    root : path
        Parent folder, given by the caller (e.g. the CLI's ``--out``).
    name : str
        Run name (letters, digits, ``-``, ``_`` and ``.`` kept; other characters become ``_``).
    config : heartline.training.config.ExperimentConfig, optional
        Resolved config, saved as ``config.toml``.
    seed : int, optional
        Seed recorded in ``run.json`` (defaults to ``config.train.seed`` when a config is given).

    Returns
    -------
    pathlib.Path
        The new, empty run directory (apart from ``run.json`` and ``config.toml``).
    """
    root = Path(root)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "run"
    now = dt.datetime.now(dt.UTC)
    stem = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{safe}"
    root.mkdir(parents=True, exist_ok=True)
    path = root / stem
    i = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            i += 1
            path = root / f"{stem}-{i}"
    if config is not None:
        from heartline.training.config import save_config

        save_config(config, path / "config.toml")
        if seed is None:
            seed = config.train.seed
    write_json(
        path / "run.json",
        {
            "name": name,
            "seed": seed,
            "git_revision": git_revision(),
            "start_time": now.isoformat(),
            "platform": platform_info(),
        },
    )
    logger.info("run directory %s", path)
    return path


def update_run_info(run_dir: Path, **fields: Any) -> None:
    """Add or replace fields of ``run_dir/run.json`` (e.g. ``end_time``, ``train_seconds``)."""
    path = Path(run_dir) / "run.json"
    info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    info.update(fields)
    write_json(path, info)


def write_metrics(
    run_dir: Path, metrics: Mapping[str, Any], *, filename: str = "metrics.json"
) -> Path:
    """Write metrics into the run directory (and stamp ``end_time`` in ``run.json``)."""
    path = write_json(Path(run_dir) / filename, dict(metrics))
    # again at the end: the libraries a run imported (torch) are loaded by now
    update_run_info(run_dir, end_time=dt.datetime.now(dt.UTC).isoformat(), platform=platform_info())
    return path


def plot_history(history: Sequence[Mapping[str, float]], path: Path, *, title: str = "") -> Path:
    """Training curve PNG: train/val loss (left axis) and val macro-F1 (right axis) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_macro_f1"] for h in history], color="tab:green", label="val macro-F1")
    ax2.set_ylabel("macro-F1")
    ax2.set_ylim(0, 1)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
