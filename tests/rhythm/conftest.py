"""Fixtures of the rhythm tests: the shared CinC 2017 records and a tiny exported rhythm model."""

from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cinc_dir(data_dir: Path) -> Path:
    path = data_dir / "cinc2017"
    if not (path / "REFERENCE-v3.csv").is_file():
        pytest.fail(f"CinC 2017 records not found in {path} (see shared/data/PROVENANCE.md)")
    return path


def synthetic_ecg(duration_s: float, *, fs: float, af: bool, seed: int = 0) -> np.ndarray:
    """Gaussian QRS spikes (mV) on a small baseline: regular at 75 bpm, or irregular (AF-like)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs)
    t = np.arange(n) / fs
    x = 0.05 * np.sin(2 * np.pi * 0.3 * t) + 0.01 * rng.standard_normal(n)
    beat_t = 0.4
    while beat_t < duration_s - 0.4:
        x += 1.2 * np.exp(-0.5 * ((t - beat_t) / 0.012) ** 2)
        x += 0.2 * np.exp(-0.5 * ((t - beat_t - 0.25) / 0.04) ** 2)
        beat_t += rng.uniform(0.4, 1.1) if af else 0.8
    return x


@pytest.fixture(scope="session")
def tiny_rhythm_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained tiny hybrid rhythm network exported once per session."""
    import torch

    from heartline.features.rhythm import RR_FEATURE_NAMES
    from heartline.models.rhythm import build_rhythm_model
    from heartline.training.rhythm import export_rhythm_onnx

    torch.set_num_threads(1)
    path = tmp_path_factory.getbasetemp() / "tiny_rhythm.onnx"
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not path.exists():
            torch.manual_seed(0)
            net = build_rhythm_model(
                "hybrid", n_rr=len(RR_FEATURE_NAMES), channels=(4, 8, 8, 8, 8), hidden=8
            ).eval()
            tmp = path.with_suffix(".tmp.onnx")
            export_rhythm_onnx(net, tmp, name="hybrid")
            tmp.rename(path)
    return path
