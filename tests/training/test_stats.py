"""Paired tests against scipy, and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from heartline.training.stats import paired_t_test, wilcoxon_signed_rank


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, size=10)
    b = a - 0.02 + rng.normal(0, 0.01, size=10)
    r = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert r.statistic == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert r.n == 10 and r.mean_difference == pytest.approx(np.mean(a - b))
    assert r.significant()
    assert paired_t_test(a, b, alternative="greater").p_value == pytest.approx(ref.pvalue / 2)


def test_wilcoxon_matches_scipy():
    a = np.array([0.81, 0.79, 0.85, 0.88, 0.90, 0.77, 0.83, 0.86])
    b = np.array([0.80, 0.75, 0.86, 0.80, 0.84, 0.70, 0.81, 0.79])
    r = wilcoxon_signed_rank(a, b)
    ref = stats.wilcoxon(a, b)
    assert r.statistic == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert r.test == "wilcoxon" and r.median_difference == pytest.approx(np.median(a - b))


def test_identical_scores_not_significant():
    a = [0.7, 0.8, 0.9]
    assert paired_t_test(a, a).p_value == 1.0
    assert wilcoxon_signed_rank(a, a).p_value == 1.0


def test_validation():
    with pytest.raises(ValueError, match="pair"):
        paired_t_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_signed_rank([1, 2, 3], [0, 1, 2], alternative="bigger")
    with pytest.raises(ValueError, match="NaN"):
        paired_t_test([1, np.nan], [1, 2])
