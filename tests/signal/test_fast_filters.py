"""Filters designed once and reused give SciPy's per-call results bit for bit."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from heartline.signal.filters import ZeroPhaseFilter, design_bandpass
from heartline.signal.preprocess import resample


@pytest.mark.parametrize(
    ("fs", "fs_out"), [(360.0, 100.0), (300.0, 100.0), (360.0, 250.0), (128.0, 100.0)]
)
def test_resample_is_resample_poly_bit_for_bit(fs, fs_out):
    rng = np.random.default_rng(int(fs))
    r = Fraction(fs_out / fs).limit_denominator(1000)
    for x in (rng.normal(size=999).cumsum(), rng.normal(size=(500, 2)), rng.normal(size=7)):
        want = signal.resample_poly(x, r.numerator, r.denominator, axis=0, padtype="line")
        np.testing.assert_array_equal(resample(x, fs=fs, fs_out=fs_out), want)
        np.testing.assert_array_equal(resample(x, fs=fs, fs_out=fs_out), want)  # cached filter


def test_zero_phase_filter_is_sosfiltfilt_bit_for_bit():
    rng = np.random.default_rng(3)
    for fs in (100.0, 300.0, 360.0):
        sos = design_bandpass(fs=fs, low_hz=0.5, high_hz=40.0, order=2)
        f = ZeroPhaseFilter(sos)
        for n in (f.padlen + 1, 1000, 4321):
            x = rng.normal(size=n).cumsum()
            np.testing.assert_array_equal(f(x), signal.sosfiltfilt(sos, x))
        with pytest.raises(ValueError, match="padlen"):
            f(np.zeros(f.padlen))


def test_bandpass_design_is_cached_and_safe_to_mutate() -> None:
    """Each band-pass design is computed once; callers get their own copy, equal to SciPy's."""
    import numpy as np
    from scipy import signal as sp_signal

    from heartline.signal.filters import design_bandpass

    ref = sp_signal.butter(2, [0.5, 40.0], btype="bandpass", fs=300.0, output="sos")
    first = design_bandpass(fs=300.0, low_hz=0.5, high_hz=40.0, order=2)
    assert np.array_equal(first, ref)
    first[0, 0] = 123.0  # a caller that changes its array must not change the next design
    assert np.array_equal(design_bandpass(fs=300.0, low_hz=0.5, high_hz=40.0, order=2), ref)
