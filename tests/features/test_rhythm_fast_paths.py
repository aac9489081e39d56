"""Fast paths of the rhythm features give the reference computations' values exactly."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.features.rhythm import linear_percentiles

QS = (0, 1, 5, 25, 50, 75, 95, 99, 100, 33.3)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 100, 101, 3000, 10800])
def test_values_are_numpys_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for x in (
        rng.normal(size=n),
        np.round(rng.normal(size=n), 1),  # ties
        rng.normal(size=n).cumsum() * 1e3,
        np.abs(np.diff(rng.normal(size=n + 1))),
    ):
        got = linear_percentiles(x, QS, median=True)
        want = [*np.percentile(x, list(QS)), np.median(x)]
        assert [np.float64(v).tobytes() for v in got[:-1]] == [
            np.float64(v).tobytes() for v in want[:-1]
        ]
        assert got[-1] == want[-1]
        for q in QS:  # the single-percentile form
            assert linear_percentiles(x, (q,))[0] == np.percentile(x, q)


def test_nan_and_other_dtypes_go_to_numpy():
    x = np.array([1.0, np.nan, 3.0])
    assert all(np.isnan(v) for v in linear_percentiles(x, (50,), median=True))
    x32 = np.arange(10, dtype=np.float32)
    assert linear_percentiles(x32, (25,))[0] == np.percentile(x32, 25)
    original = np.array([3.0, 1.0, 2.0])
    linear_percentiles(original, (50,))
    np.testing.assert_array_equal(original, [3.0, 1.0, 2.0])  # not modified


def _cosen_reference(rr: np.ndarray, r_s: float = 0.03, m: int = 1) -> float:
    """Coefficient of sample entropy from the templates' Chebyshev distances (the definition)."""
    import math

    n = rr.size
    tmpl_m = np.lib.stride_tricks.sliding_window_view(rr, m)[: n - m]
    tmpl_m1 = np.lib.stride_tricks.sliding_window_view(rr, m + 1)
    dist_m = np.max(np.abs(tmpl_m[:, None, :] - tmpl_m[None, :, :]), axis=2)
    dist_m1 = np.max(np.abs(tmpl_m1[:, None, :] - tmpl_m1[None, :, :]), axis=2)
    b = (np.count_nonzero(dist_m <= r_s) - tmpl_m.shape[0]) / 2
    a = (np.count_nonzero(dist_m1 <= r_s) - tmpl_m1.shape[0]) / 2
    sampen = -math.log((a + 1) / (b + 1))
    return float(sampen + math.log(2 * r_s) - math.log(float(np.mean(rr))))


def test_cosen_counts_are_the_template_definitions():
    from heartline.features.rhythm import _cosen

    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(4, 100))
        rr = np.round(rng.uniform(0.3, 1.5, n), int(rng.integers(1, 4)))  # ties and near-ties
        assert _cosen(rr) == _cosen_reference(rr)
    assert _cosen(np.array([0.8, 0.8, 0.8])) == 0.0  # too short
