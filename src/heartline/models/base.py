"""The interface every beat classifier implements, deep or classical."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from heartline.data.beat_set import BeatSet

__all__ = ["BeatClassifier"]


@runtime_checkable
class BeatClassifier(Protocol):
    """A model that labels beats with the AAMI classes.

    Implementations train only on ``train`` and use ``val`` (patient-grouped, from DS1) for early
    stopping and model selection; they never see test data during ``fit``.
    """

    #: Registry name, e.g. ``"hybrid"``, ``"cnn"``, ``"random_forest"``.
    name: str

    def fit(
        self, train: BeatSet, val: BeatSet, *, run_dir: Path | None = None, seed: int = 0
    ) -> None:
        """Train on labelled beats of ``train``; ``run_dir`` receives logs, curves and checkpoints."""
        ...

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        """Class probabilities, shape ``(len(beats), len(AAMI_CLASSES))``, rows summing to 1."""
        ...

    def save(self, path: Path) -> None:
        """Save the trained model into the directory ``path``."""
        ...
