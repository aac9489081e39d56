"""RR-irregularity features and the network input signal."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.errors import SignalError
from heartline.features.rhythm import (
    RR_FEATURE_NAMES,
    rhythm_model_signal,
    rhythm_rr_features,
    rr_features_from_peaks,
)

from .conftest import synthetic_ecg


def _f(x: np.ndarray, name: str) -> float:
    return float(x[RR_FEATURE_NAMES.index(name)])


def test_irregular_rhythm_scores_higher_than_regular():
    fs = 300.0
    reg = rhythm_rr_features(synthetic_ecg(30, fs=fs, af=False), fs=fs)
    irr = rhythm_rr_features(synthetic_ecg(30, fs=fs, af=True, seed=3), fs=fs)
    assert reg.shape == (len(RR_FEATURE_NAMES),) and np.isfinite(reg).all()
    assert 70 < _f(reg, "mean_hr_bpm") < 80
    assert _f(reg, "nrmssd_dash") < 0.02 < 0.1 < _f(irr, "nrmssd_dash")
    assert _f(irr, "shannon_entropy_dash") > _f(reg, "shannon_entropy_dash") + 0.3
    assert _f(irr, "sarkar_afev") > _f(reg, "sarkar_afev")


def test_too_few_beats_gives_zeros_not_nan():
    x = np.random.default_rng(0).standard_normal(3000)
    f = rr_features_from_peaks(np.array([10, 500]), x, fs=300.0, duration_s=10.0)
    assert np.isfinite(f).all() and _f(f, "nrmssd_dash") == 0.0
    assert _f(f, "n_beats_per_10s") == pytest.approx(2.0)


def test_model_signal_is_resampled_and_scaled_whatever_the_gain():
    x = synthetic_ecg(20, fs=360.0, af=False)
    y = rhythm_model_signal(x, fs=360.0, fs_model_hz=100.0)
    y_uv = rhythm_model_signal(1000 * x, fs=360.0, fs_model_hz=100.0)
    assert y.dtype == np.float32 and y.size == 2000
    np.testing.assert_allclose(y, y_uv, atol=1e-4)
    assert np.abs(y).max() <= 10.0


def test_model_signal_refuses_flat_and_nan():
    with pytest.raises(SignalError, match="flat"):
        rhythm_model_signal(np.zeros(3000), fs=300.0, fs_model_hz=100.0)
    x = synthetic_ecg(10, fs=300.0, af=False)
    x[100] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        rhythm_model_signal(x, fs=300.0, fs_model_hz=100.0)
