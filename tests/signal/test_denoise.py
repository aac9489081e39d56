"""Wavelet and EMD denoisers reduce broadband noise and keep the QRS."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.errors import SignalError
from heartline.signal.denoise import DENOISERS, denoise, emd_denoise, wavelet_denoise


def _synthetic_ecg(fs: float, duration_s: float = 8.0) -> np.ndarray:
    """Narrow Gaussian 'QRS' once per 0.8 s plus a broad 'T wave'."""
    t = np.arange(0, duration_s, 1 / fs)
    phase = t % 0.8
    qrs = np.exp(-((phase - 0.3) ** 2) / (2 * 0.012**2))
    t_wave = 0.3 * np.exp(-((phase - 0.6) ** 2) / (2 * 0.05**2))
    return qrs + t_wave


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize("fs", [128.0, 360.0, 500.0, 1000.0])
def test_wavelet_reduces_white_noise_at_any_rate(fs):
    clean = _synthetic_ecg(fs)
    noise = 0.08 * np.random.default_rng(0).standard_normal(clean.size)
    hard = wavelet_denoise(clean + noise, fs=fs, mode="hard")
    assert hard.shape == clean.shape
    assert _rms(hard - clean) < 0.75 * _rms(noise)
    assert hard.max() > 0.9 * clean.max()
    soft = wavelet_denoise(clean + noise, fs=fs)
    # soft shrinkage biases the few large QRS coefficients (Donoho 1995): at 128 Hz the QRS lives
    # in so few coefficients that the bias eats the gain; from 360 Hz up it removes noise.
    if fs >= 360:
        assert _rms(soft - clean) < 0.85 * _rms(noise)
    assert soft.max() > 0.65 * clean.max()


def test_wavelet_variants_and_two_leads():
    fs = 360.0
    clean = _synthetic_ecg(fs)
    noisy = clean + 0.08 * np.random.default_rng(1).standard_normal(clean.size)
    for kw in ({"wavelet": "db6"}, {"mode": "hard"}, {"level": 4}):
        assert _rms(wavelet_denoise(noisy, fs=fs, **kw) - clean) < _rms(noisy - clean)
    # per-level noise estimates also shrink the dense ECG content of the coarse bands
    assert _rms(wavelet_denoise(noisy, fs=fs, noise="level") - clean) > _rms(
        wavelet_denoise(noisy, fs=fs) - clean
    )
    two = wavelet_denoise(np.column_stack([noisy, 2 * noisy]), fs=fs)
    np.testing.assert_allclose(two[:, 0], wavelet_denoise(noisy, fs=fs))
    with pytest.raises(ValueError, match="mode"):
        wavelet_denoise(noisy, fs=fs, mode="firm")
    with pytest.raises(ValueError, match="wavelet"):
        wavelet_denoise(noisy, fs=fs, wavelet="nope")


@pytest.mark.parametrize(
    "kwargs", [{}, {"method": "drop", "n_drop": 2}, {"method": "threshold", "threshold_scale": 0.5}]
)
def test_emd_reduces_white_noise(kwargs):
    fs = 250.0
    clean = _synthetic_ecg(fs, 6.0)
    noise = 0.1 * np.random.default_rng(2).standard_normal(clean.size)
    out = emd_denoise(clean + noise, fs=fs, **kwargs)
    assert out.shape == clean.shape and np.all(np.isfinite(out))
    assert _rms(out - clean) < 0.85 * _rms(noise)


def test_emd_blocks_match_shape_and_keep_signal():
    fs = 128.0
    clean = _synthetic_ecg(fs, 25.0)
    noisy = clean + 0.1 * np.random.default_rng(3).standard_normal(clean.size)
    out = emd_denoise(noisy, fs=fs, block_s=8.0, overlap_s=1.0)
    assert out.shape == noisy.shape
    assert _rms(out - clean) < 0.8 * _rms(noisy - clean)
    whole = emd_denoise(noisy, fs=fs, block_s=None)
    assert abs(_rms(out - clean) - _rms(whole - clean)) < 0.02


def test_registry_and_errors():
    x = np.random.default_rng(0).standard_normal(1000)
    assert set(DENOISERS) == {"wavelet", "emd"}
    assert denoise(x, fs=360.0, method="wavelet").shape == x.shape
    with pytest.raises(ValueError, match=r"valid: \['emd', 'wavelet'\]"):
        denoise(x, fs=360.0, method="median")
    for method in DENOISERS:
        with pytest.raises(SignalError, match="NaN"):
            denoise(np.r_[x, np.nan], fs=360.0, method=method)
        with pytest.raises(SignalError, match="samples"):
            denoise(np.array([]), fs=360.0, method=method)
        with pytest.raises(SignalError, match="fs"):
            denoise(x, fs=-1, method=method)


def test_constant_and_short_inputs():
    const = np.full(500, 2.0)
    np.testing.assert_allclose(wavelet_denoise(const, fs=360.0), const, atol=1e-9)
    np.testing.assert_allclose(emd_denoise(const, fs=360.0), const)
    with pytest.raises(SignalError, match="sym8 wavelet needs at least"):
        wavelet_denoise(np.arange(5.0), fs=360.0)
