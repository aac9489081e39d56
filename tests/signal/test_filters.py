"""Filters remove the band they should (FFT checks) at several sampling rates."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.errors import SignalError
from heartline.signal.filters import (
    CausalFilter,
    bandpass,
    design_bandpass,
    gaussian_smooth,
    highpass,
    lowpass,
    notch,
    remove_baseline,
)

RATES = [128.0, 360.0, 500.0, 1000.0]


def _tone(f_hz: float, fs: float, duration_s: float = 20.0) -> np.ndarray:
    t = np.arange(0, duration_s, 1 / fs)
    return np.sin(2 * np.pi * f_hz * t)


def _amplitude_at(x: np.ndarray, f_hz: float, fs: float) -> float:
    """Amplitude of the f_hz component (central part of x, Hann-windowed FFT peak)."""
    n = x.size
    core = x[n // 4 : 3 * n // 4]
    w = np.hanning(core.size)
    spec = np.abs(np.fft.rfft(core * w)) * 2 / w.sum()
    freqs = np.fft.rfftfreq(core.size, 1 / fs)
    k = int(np.argmin(np.abs(freqs - f_hz)))
    return float(spec[max(k - 2, 0) : k + 3].max())


def _attenuation_db(func, f_hz: float, fs: float, duration_s: float = 20.0) -> float:
    x = _tone(f_hz, fs, duration_s)
    y = func(x)
    return 20 * np.log10(_amplitude_at(x, f_hz, fs) / max(_amplitude_at(y, f_hz, fs), 1e-300))


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("mains_hz", [50, 60])
def test_notch_kills_mains_by_30_db_and_keeps_qrs(fs, mains_hz):
    f = lambda x: notch(x, fs=fs, mains_hz=mains_hz)  # noqa: E731
    assert _attenuation_db(f, mains_hz, fs, 10.0) > 30
    for qrs_hz in (5.0, 10.0, 15.0):
        assert abs(_attenuation_db(f, qrs_hz, fs, 10.0)) < 0.5


@pytest.mark.parametrize("fs", [360.0, 1000.0])
def test_notch_harmonics(fs):
    x = _tone(100.0, fs, 10.0)
    assert (
        _attenuation_db(lambda s: notch(s, fs=fs, mains_hz=50, harmonics=2), 100.0, fs, 10.0) > 30
    )
    assert _attenuation_db(lambda s: notch(s, fs=fs, mains_hz=50, harmonics=1), 100.0, fs, 10.0) < 1
    assert x.size > 0


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("f_hz", [0.1, 0.2, 0.3])
def test_highpass_and_baseline_removal_kill_wander(fs, f_hz):
    duration = 60.0
    assert _attenuation_db(lambda s: highpass(s, fs=fs, cutoff_hz=0.5), f_hz, fs, duration) > 20
    assert (
        _attenuation_db(lambda s: remove_baseline(s, fs=fs, method="highpass"), f_hz, fs, duration)
        > 20
    )
    assert (
        _attenuation_db(lambda s: remove_baseline(s, fs=fs, method="median"), f_hz, fs, duration)
        > 20
    )


@pytest.mark.parametrize("fs", RATES)
def test_bandpass_keeps_qrs_band_and_cuts_above_45_hz(fs):
    f = lambda x: bandpass(x, fs=fs, low_hz=0.5, high_hz=40.0)  # noqa: E731
    for qrs_hz in (5.0, 8.0, 10.0, 15.0):
        assert abs(_attenuation_db(f, qrs_hz, fs, 10.0)) < 1.0
    for hf in (50.0, 60.0):
        if hf < fs / 2:
            assert _attenuation_db(f, hf, fs, 10.0) > 12
    if fs >= 360:
        assert _attenuation_db(f, 100.0, fs, 10.0) > 40
    assert _attenuation_db(f, 0.1, fs, 60.0) > 20


def test_median_baseline_keeps_qrs_energy():
    fs = 360.0
    t = np.arange(0, 20, 1 / fs)
    qrs = np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.015**2))
    wander = 0.8 * np.sin(2 * np.pi * 0.15 * t)
    y = remove_baseline(qrs + wander, fs=fs, method="median")
    # QRS peaks survive at ~full height, and the wander is gone between beats
    peaks = y[np.isclose(t % 1.0, 0.5, atol=0.5 / fs)]
    assert np.all(peaks > 0.9)
    between = y[np.abs((t % 1.0) - 0.5) > 0.2]
    assert np.abs(between).max() < 0.1


def test_lowpass_and_gaussian_smooth():
    fs = 500.0
    assert _attenuation_db(lambda s: lowpass(s, fs=fs, cutoff_hz=40.0), 100.0, fs, 10.0) > 40
    assert abs(_attenuation_db(lambda s: lowpass(s, fs=fs, cutoff_hz=40.0), 10.0, fs, 10.0)) < 0.5
    g = lambda s: gaussian_smooth(s, fs=fs, sigma_ms=10.0)  # noqa: E731
    assert _attenuation_db(g, 50.0, fs, 10.0) > 20
    assert abs(_attenuation_db(g, 2.0, fs, 10.0)) < 0.5


def test_two_dimensional_input_is_filtered_per_column():
    fs = 360.0
    x = np.column_stack([_tone(10.0, fs, 5.0), _tone(60.0, fs, 5.0)])
    y = bandpass(x, fs=fs)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[:, 0], bandpass(x[:, 0], fs=fs))
    np.testing.assert_allclose(y[:, 1], bandpass(x[:, 1], fs=fs))


def test_causal_filter_chunks_equal_one_pass_and_removes_wander():
    fs = 250.0
    x = _tone(0.1, fs, 60.0) + _tone(10.0, fs, 60.0)
    f = CausalFilter.bandpass(fs=fs, low_hz=0.5, high_hz=40.0, order=2)
    chunks = np.array_split(x, 37)
    y = np.concatenate([f.process(c) for c in chunks])
    f.reset()
    np.testing.assert_allclose(y, f.process(x), atol=1e-12)
    assert _amplitude_at(y, 0.1, fs) < 0.1 * _amplitude_at(x, 0.1, fs)
    assert _amplitude_at(y, 10.0, fs) > 0.9


def test_causal_notch_multi_lead():
    fs = 500.0
    x = np.column_stack([_tone(50.0, fs, 10.0), _tone(10.0, fs, 10.0)])
    f = CausalFilter.notch(fs=fs, mains_hz=50, n_leads=2)
    y = np.concatenate([f.process(x[:1234]), f.process(x[1234:])])
    assert _amplitude_at(y[:, 0], 50.0, fs) < 0.03
    assert _amplitude_at(y[:, 1], 10.0, fs) > 0.95
    with pytest.raises(SignalError, match="shape"):
        f.process(np.zeros(10))
    with pytest.raises(SignalError, match="NaN"):
        f.process(np.full((4, 2), np.nan))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: bandpass(x, fs=360.0),
        lambda x: highpass(x, fs=360.0),
        lambda x: notch(x, fs=360.0, mains_hz=60),
        lambda x: remove_baseline(x, fs=360.0, method="median"),
        lambda x: gaussian_smooth(x, fs=360.0),
    ],
)
def test_bad_inputs_raise_signal_error(call):
    with pytest.raises(SignalError, match="at least 1"):
        call(np.array([]))
    with pytest.raises(SignalError, match="NaN"):
        call(np.r_[np.ones(1000), np.nan])
    with pytest.raises(SignalError, match="1-D or 2-D"):
        call(np.zeros((2, 2, 2)))


def test_constant_input_gives_finite_output():
    for y in (
        bandpass(np.full(2000, 3.0), fs=360.0),
        remove_baseline(np.full(2000, 3.0), fs=360.0, method="median"),
    ):
        assert np.all(np.isfinite(y))
        assert np.abs(y).max() < 1e-6


def test_short_signal_names_padlen():
    with pytest.raises(SignalError, match="padlen"):
        bandpass(np.zeros(20), fs=360.0)


def test_parameter_validation():
    with pytest.raises(SignalError, match="fs"):
        bandpass(np.zeros(1000), fs=0)
    with pytest.raises(SignalError, match="high_hz"):
        bandpass(np.zeros(1000), fs=100.0, high_hz=60.0)
    with pytest.raises(SignalError, match="low_hz"):
        design_bandpass(fs=360.0, low_hz=40.0, high_hz=10.0)
    with pytest.raises(SignalError, match="mains_hz"):
        notch(np.zeros(1000), fs=360.0, mains_hz=55)
    with pytest.raises(SignalError, match="mains_hz"):
        notch(np.zeros(1000), fs=100.0, mains_hz=60)
    with pytest.raises(ValueError, match="valid: \\['highpass', 'median'\\]"):
        remove_baseline(np.zeros(1000), fs=360.0, method="wavelet")
