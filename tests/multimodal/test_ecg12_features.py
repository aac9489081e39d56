"""The torch-free 12-lead features (heartline.features.ecg12) equal the benchmark's, bit for bit."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from heartline.features.ecg12 import record_feature_names, record_features

GOLDEN = Path(__file__).parent / "data" / "ecg12_features_golden.npz"


def test_training_module_reexports_the_same_function() -> None:
    from heartline.training import multimodal as mm

    assert mm.record_features is record_features
    assert "record_features" in mm.__all__


def test_features_equal_the_benchmark_code_bit_for_bit(data_dir: Path) -> None:
    """Golden file: ``training.multimodal.record_features`` at 2e3cb28 (before the move) on the
    first 12 PTB-XL records, the last one flattened (NaN beat features)."""
    from heartline.data.ptbxl import load_ptbxl

    if not (data_dir / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip(f"PTB-XL not found in {data_dir}")
    golden = np.load(GOLDEN)
    d = load_ptbxl(max_records=12, data_dir=data_dir)
    assert d.ecg_ids.tolist() == golden["ecg_ids"].tolist()
    x = d.signals.copy()
    x[-1, :, :] = x[-1, :, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, names = record_features(x, fs=100.0)
    assert names == golden["names"].tolist() == record_feature_names(12)
    assert f.dtype == golden["features"].dtype
    np.testing.assert_array_equal(f, golden["features"])  # NaN where NaN, else identical bits
