"""The beat classifier shipped with the package: where its files are, and the split-form check.

``src/heartline/assets/models/`` holds the hybrid CNN-LSTM trained on DS1 only (how exactly,
validation records or a refit chosen by ``heartline select``, is in its model card): ``hybrid.onnx`` (what devices and the service
run, through :class:`heartline.edge.runtime.OnnxBeatClassifier`), ``hybrid.pt`` with
``hybrid.json`` (PyTorch weights, kept because they are small), ``hybrid.toml`` (the training
config), ``hybrid_metrics.json`` and ``MODEL_CARD.md``. For a hybrid with ``context_k > 0`` the
split form (``hybrid.encoder.onnx`` and ``hybrid.sequence.onnx``) lies beside ``hybrid.onnx``;
:func:`check_split_parity` checks it against the full model with ONNX Runtime alone.

This module is on the run-time side: it imports no torch and nothing of
:mod:`heartline.models` or :mod:`heartline.training`. The command that produces the files,
``heartline ship`` (:func:`heartline.training.ship.ship`, :func:`heartline.training.ship.ship_split`),
lives in :mod:`heartline.training.ship`::

    heartline train --config src/heartline/assets/models/hybrid.toml --out runs/ship
    heartline ship runs/ship/<run>          # or a `heartline bench models` DIR/hybrid folder
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ASSETS_DIR",
    "PARITY_TOLERANCE",
    "SplitReport",
    "check_split_parity",
    "missing_asset",
    "shipped_model_card",
    "shipped_model_path",
]

logger = logging.getLogger(__name__)

#: Folder of the shipped models inside the installed package.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
DEFAULT_NAME = "hybrid"
#: Largest allowed |PyTorch - ONNX Runtime| difference of a probability.
PARITY_TOLERANCE = 1e-4
#: PyTorch weights are shipped only below this size.
MAX_WEIGHTS_BYTES = 2 * 1024 * 1024


def missing_asset(path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} is missing: regenerate it with `heartline train --config "
        f"{ASSETS_DIR / 'hybrid.toml'} --out runs/ship` then `heartline ship RUN_DIR`"
    )


def shipped_model_path(name: str = DEFAULT_NAME) -> Path:
    """The shipped ONNX model ``assets/models/<name>.onnx`` (``FileNotFoundError`` if absent)."""
    path = ASSETS_DIR / f"{name}.onnx"
    if not path.is_file():
        raise missing_asset(path)
    return path


def shipped_model_card() -> Path:
    """``assets/models/MODEL_CARD.md``."""
    path = ASSETS_DIR / "MODEL_CARD.md"
    if not path.is_file():
        raise missing_asset(path)
    return path


@dataclass(frozen=True)
class SplitReport:
    """What :func:`ship_split` / :func:`check_split_parity` wrote and measured.

    ``max_abs_diff_full`` and ``max_abs_diff_torch``: largest |split - full ONNX| and |split -
    PyTorch| probability difference over ``n_beats`` real beats (``nan`` without PyTorch).
    """

    encoder_path: Path
    sequence_path: Path
    max_abs_diff_full: float
    max_abs_diff_torch: float
    n_beats: int


def check_split_parity(
    onnx_path: str | Path, beats: Any, *, torch_proba: np.ndarray | None = None
) -> SplitReport:
    """Check the split form beside ``onnx_path`` against the full model (and PyTorch).

    Encodes every beat of ``beats`` with the encoder, gathers the causal contexts
    (:meth:`~heartline.data.beat_set.BeatSet.context_index`) and runs the sequence graph; compares
    the probabilities with the full ONNX model's and, when given, with ``torch_proba``.

    Raises
    ------
    ValueError
        A difference above :data:`PARITY_TOLERANCE`, or no loadable split form.
    """
    from heartline.edge.runtime import OnnxBeatClassifier, split_paths

    clf = OnnxBeatClassifier(onnx_path, split=True)
    split = clf.predict_proba(beats, use_split=True)
    full = clf.predict_proba(beats)
    diff_full = float(np.abs(split - full).max()) if len(beats) else 0.0
    diff_torch = float("nan")
    if torch_proba is not None:
        diff_torch = float(np.abs(split - torch_proba).max()) if len(beats) else 0.0
    worst = max(diff_full, 0.0 if np.isnan(diff_torch) else diff_torch)
    if not worst <= PARITY_TOLERANCE:
        raise ValueError(
            f"split ONNX differs from the full model by {diff_full:.2e} and from PyTorch by "
            f"{diff_torch:.2e} (> {PARITY_TOLERANCE}) on {len(beats)} beats"
        )
    enc, seq = split_paths(onnx_path)
    return SplitReport(enc, seq, diff_full, diff_torch, len(beats))
