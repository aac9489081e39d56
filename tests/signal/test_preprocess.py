"""Imputation, normalisation, resampling and the clean_ecg pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.errors import HeartlineWarning, SignalError
from heartline.signal.preprocess import CleanConfig, clean_ecg, impute_gaps, normalize, resample


def test_impute_linear_and_mean_with_mask():
    x = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan])
    lin = impute_gaps(x, fs=100.0, method="linear")
    np.testing.assert_allclose(lin.signal, [1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
    assert lin.imputed_mask.tolist() == [True, False, True, True, False, True]
    assert lin.n_imputed == 4
    mean = impute_gaps(x, fs=100.0, method="mean")
    np.testing.assert_allclose(mean.signal, [2.5, 1.0, 2.5, 2.5, 4.0, 2.5])
    two = impute_gaps(np.column_stack([x, np.arange(6.0)]), fs=100.0)
    assert np.all(np.isfinite(two.signal)) and two.imputed_mask[:, 1].sum() == 0


def test_impute_errors():
    with pytest.raises(SignalError, match="only NaN"):
        impute_gaps(np.full(10, np.nan), fs=100.0)
    with pytest.raises(SignalError, match="empty"):
        impute_gaps(np.array([]), fs=100.0)
    with pytest.raises(SignalError, match="max_gap_s"):
        impute_gaps(np.r_[1.0, np.full(50, np.nan), 1.0], fs=100.0, max_gap_s=0.2)
    with pytest.raises(ValueError, match="valid"):
        impute_gaps(np.ones(3), fs=100.0, method="spline")


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_normalize_methods_and_constant_input(method):
    x = np.random.default_rng(0).standard_normal(500) * 3 + 7
    y = normalize(x, method=method)
    if method == "zscore":
        assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12
    elif method == "minmax":
        assert y.min() == 0.0 and y.max() == 1.0
    else:
        q1, q3 = np.percentile(y, [25, 75])
        assert abs(np.median(y)) < 1e-12 and abs((q3 - q1) - 1) < 1e-12
    with pytest.warns(HeartlineWarning, match="constant"):
        z = normalize(np.full(100, 5.0), method=method)
    assert np.all(z == 0.0)


def test_normalize_rejects_nan_and_unknown():
    with pytest.raises(SignalError, match="NaN"):
        normalize(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="valid"):
        normalize(np.ones(3), method="l2")


@pytest.mark.parametrize(
    ("fs", "fs_out"),
    [(360.0, 250.0), (500.0, 128.0), (128.0, 1000.0), (1000.0, 360.0), (360.0, 257.0)],
)
def test_resample_keeps_tone_and_length(fs, fs_out):
    duration = 4.0
    t = np.arange(0, duration, 1 / fs)
    y = resample(np.sin(2 * np.pi * 5 * t), fs=fs, fs_out=fs_out)
    assert abs(y.size - duration * fs_out) <= 1
    t_out = np.arange(y.size) / fs_out
    core = slice(y.size // 8, -y.size // 8)
    np.testing.assert_allclose(y[core], np.sin(2 * np.pi * 5 * t_out[core]), atol=0.02)


def test_resample_two_leads_and_errors():
    x = np.zeros((360, 2))
    assert resample(x, fs=360.0, fs_out=180.0).shape == (180, 2)
    with pytest.raises(SignalError, match="fs_out"):
        resample(x, fs=360.0, fs_out=0)


@pytest.mark.parametrize("fs", [128.0, 360.0, 500.0, 1000.0])
def test_clean_ecg_removes_wander_and_mains(fs):
    t = np.arange(0, 20, 1 / fs)
    qrs_band = np.sin(2 * np.pi * 10 * t)
    raw = qrs_band + np.sin(2 * np.pi * 0.2 * t) + 0.5 * np.sin(2 * np.pi * 60 * t)
    out = clean_ecg(raw, fs=fs, mains_hz=60, config=CleanConfig(baseline="highpass"))
    core = slice(int(2 * fs), -int(2 * fs))
    assert np.std((out - qrs_band)[core]) < 0.05


def test_clean_ecg_default_median_pipeline_on_real_record(mitdb_dir):
    from heartline.io import read_record

    rec = read_record(mitdb_dir / "100", sampto=3600)
    out = clean_ecg(rec.signal, fs=rec.fs, mains_hz=60)
    assert out.shape == rec.signal.shape and np.all(np.isfinite(out))
    # baseline gone: median near zero; R peaks (MLII ~1 mV) kept
    assert abs(np.median(out[:, 0])) < 0.05
    assert out[:, 0].max() > 0.7


def test_clean_ecg_nan_handling_and_options():
    fs = 360.0
    x = np.sin(np.linspace(0, 60, 3600))
    x[100:120] = np.nan
    with pytest.raises(SignalError, match="impute"):
        clean_ecg(x, fs=fs, mains_hz=60)
    out = clean_ecg(x, fs=fs, mains_hz=None, config=CleanConfig(impute="linear", denoise="wavelet"))
    assert np.all(np.isfinite(out))
    with pytest.raises(SignalError, match="mains_hz"):
        clean_ecg(np.zeros(3600), fs=fs, mains_hz=55)
    with pytest.raises(SignalError, match="padlen"):
        clean_ecg(np.zeros(20), fs=fs, mains_hz=60)
    with pytest.raises(ValueError, match="valid"):
        CleanConfig(baseline="spline")
    # mains above Nyquist is skipped, not an error
    assert clean_ecg(
        np.random.default_rng(0).standard_normal(1000), fs=100.0, mains_hz=60
    ).shape == (1000,)
