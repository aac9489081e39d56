"""Paired significance tests between two models' per-fold (or per-record) scores.

Both tests pair the scores fold by fold (the same folds / records for both models):

* :func:`paired_t_test`: Student's paired t-test (:func:`scipy.stats.ttest_rel`); assumes
  roughly normal differences. With cross-validation folds the folds share training data, so
  the test is optimistic (Dietterich 1998; Nadeau & Bengio 2003); report it with that caveat.
* :func:`wilcoxon_signed_rank`: Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`),
  distribution-free, as recommended by Demšar (2006) for comparing classifiers.

References
----------
Demšar J. Statistical comparisons of classifiers over multiple data sets. JMLR 7:1-30 (2006).

Dietterich TG. Approximate statistical tests for comparing supervised classification learning
algorithms. Neural Computation 10(7):1895-1923 (1998).

Nadeau C, Bengio Y. Inference for the generalization error. Machine Learning 52:239-281 (2003).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairedTestResult", "paired_t_test", "wilcoxon_signed_rank"]


@dataclass(frozen=True)
class PairedTestResult:
    """Result of a paired test of ``scores_a`` against ``scores_b``.

    Attributes
    ----------
    test : str
        ``"paired_t"`` or ``"wilcoxon"``.
    statistic : float
        t statistic, or Wilcoxon's W (the smaller signed-rank sum for two-sided tests).
    p_value : float
        p-value for ``alternative``.
    mean_difference : float
        Mean of ``a - b``.
    median_difference : float
        Median of ``a - b``.
    n : int
        Number of pairs.
    alternative : str
        ``"two-sided"``, ``"greater"`` (a > b) or ``"less"``.
    """

    test: str
    statistic: float
    p_value: float
    mean_difference: float
    median_difference: float
    n: int
    alternative: str

    def significant(self, alpha: float = 0.05) -> bool:
        """``p_value < alpha``."""
        return bool(self.p_value < alpha)


_ALTERNATIVES = ("two-sided", "greater", "less")


def _pairs(
    scores_a: object, scores_b: object, alternative: str, min_n: int
) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"scores_a and scores_b must be 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must pair up, got {a.size} and {b.size} scores")
    if a.size < min_n:
        raise ValueError(f"need at least {min_n} paired scores, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("scores hold NaN/inf")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"unknown alternative {alternative!r}; valid: {list(_ALTERNATIVES)}")
    return a, b


def paired_t_test(
    scores_a: object, scores_b: object, *, alternative: str = "two-sided"
) -> PairedTestResult:
    """Paired t-test of two models' per-fold scores.

    >>> r = paired_t_test([0.80, 0.82, 0.85, 0.79], [0.70, 0.75, 0.74, 0.72])
    >>> r.test, r.n, round(r.mean_difference, 4), r.p_value < 0.05
    ('paired_t', 4, 0.0875, True)
    """
    from scipy import stats

    a, b = _pairs(scores_a, scores_b, alternative, 2)
    d = a - b
    if np.all(d == d[0]):
        # zero variance: scipy returns nan; the differences are identical
        p = 1.0 if d[0] == 0 else 0.0
        stat = 0.0 if d[0] == 0 else float(np.sign(d[0]) * np.inf)
    else:
        res = stats.ttest_rel(a, b, alternative=alternative)
        stat, p = float(res.statistic), float(res.pvalue)
    return PairedTestResult(
        "paired_t", stat, p, float(d.mean()), float(np.median(d)), int(a.size), alternative
    )


def wilcoxon_signed_rank(
    scores_a: object, scores_b: object, *, alternative: str = "two-sided"
) -> PairedTestResult:
    """Wilcoxon signed-rank test of two models' per-fold scores (zero differences dropped,
    exact p-value for small samples without ties, as :func:`scipy.stats.wilcoxon`).

    >>> r = wilcoxon_signed_rank([0.80, 0.82, 0.85, 0.79, 0.9, 0.88], [0.70, 0.75, 0.74, 0.72, 0.8, 0.8])
    >>> r.test, r.statistic, round(r.p_value, 4)
    ('wilcoxon', 0.0, 0.0312)
    """
    from scipy import stats

    a, b = _pairs(scores_a, scores_b, alternative, 1)
    d = a - b
    if np.all(d == 0):
        return PairedTestResult("wilcoxon", 0.0, 1.0, 0.0, 0.0, int(a.size), alternative)
    res = stats.wilcoxon(a, b, alternative=alternative)
    return PairedTestResult(
        "wilcoxon",
        float(res.statistic),
        float(res.pvalue),
        float(d.mean()),
        float(np.median(d)),
        int(a.size),
        alternative,
    )
