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


def _with_p_waves(x: np.ndarray, fs: float, p: bool) -> np.ndarray:
    """Add a P wave 0.16 s before every R spike of ``synthetic_ecg`` (found as its maxima)."""
    from heartline.signal.rpeaks import detect_r_peaks

    t = np.arange(x.size) / fs
    y = x.copy()
    if p:
        for r in detect_r_peaks(x, fs=fs).sample_idx:
            y += 0.15 * np.exp(-0.5 * ((t - r / fs + 0.16) / 0.02) ** 2)
    return y


def test_hand_features_are_rr_then_morphology_and_see_the_p_wave():
    from heartline.features.rhythm import (
        HAND_FEATURE_NAMES,
        MORPH_FEATURE_NAMES,
        rhythm_hand_features,
    )

    fs = 300.0
    base = synthetic_ecg(30, fs=fs, af=False)
    with_p = rhythm_hand_features(_with_p_waves(base, fs, True), fs=fs)
    without = rhythm_hand_features(base, fs=fs)
    assert with_p.shape == (len(HAND_FEATURE_NAMES),) and np.isfinite(with_p).all()
    assert HAND_FEATURE_NAMES[: len(RR_FEATURE_NAMES)] == RR_FEATURE_NAMES
    np.testing.assert_allclose(with_p[:3], rhythm_rr_features(base, fs=fs)[:3], rtol=0.05)

    def m(v: np.ndarray, name: str) -> float:
        return float(v[len(RR_FEATURE_NAMES) + MORPH_FEATURE_NAMES.index(name)])

    assert m(with_p, "p_amp_ratio") > 0.08 > m(without, "p_amp_ratio")
    assert m(with_p, "p_corr_median") > 0.8
    assert m(with_p, "tmpl_corr_median") > 0.95
    assert 0.13 < m(with_p, "pr_interval_s") < 0.19
    # gain does not change the morphology features (they are relative to the R amplitude)
    scaled = rhythm_hand_features(3.0 * _with_p_waves(base, fs, True), fs=fs)
    np.testing.assert_allclose(
        scaled[len(RR_FEATURE_NAMES) :], with_p[len(RR_FEATURE_NAMES) :], rtol=1e-3, atol=1e-3
    )


def test_morphology_features_of_noise_and_too_few_beats_are_finite():
    from heartline.features.rhythm import MORPH_FEATURE_NAMES, morphology_features_from_peaks

    x = np.random.default_rng(1).standard_normal(3000)
    for peaks in (np.array([], dtype=np.int64), np.array([400, 900]), np.arange(200, 2900, 250)):
        f = morphology_features_from_peaks(peaks, x, fs=300.0)
        assert f.shape == (len(MORPH_FEATURE_NAMES),) and np.isfinite(f).all()
    noisy = morphology_features_from_peaks(np.arange(200, 2900, 250), x, fs=300.0)
    assert noisy[MORPH_FEATURE_NAMES.index("tmpl_corr_median")] < 0.5
