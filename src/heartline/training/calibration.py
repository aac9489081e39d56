"""Per-class decision offsets ("logit adjustment") fitted on out-of-fold predictions.

A classifier trained with class weights ranks beats well (one-vs-rest AUC) but its argmax
decisions can still sit in the wrong place for patients it has not seen: in the inter-patient
setting, SVEB beats of a new patient look more normal than those of the training patients.
Adding a constant offset ``b_c`` to each class's log-probability before the argmax moves the
decision boundaries without retraining (Menon et al. 2021, logit adjustment; Collell et al.
2016, threshold moving). The offsets are fitted by coordinate ascent on predictions for
patients the network did *not* train on (out-of-fold predictions inside DS1), never on the
test set.

References
----------
Menon AK, Jayasumana S, Rawat AS, Jain H, Veit A, Kumar S. Long-tail learning via logit
adjustment. ICLR (2021).
Collell G, Prelec D, Patil K. Reviving threshold-moving: a simple plug-in bagging ensemble for
binary and multiclass imbalanced data. arXiv:1606.08698 (2016).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heartline.training.trainer import macro_f1

__all__ = ["DecisionBias", "fit_decision_bias"]


@dataclass(frozen=True)
class DecisionBias:
    """Fitted offsets and what they did on the data they were fitted on.

    Attributes
    ----------
    bias : numpy.ndarray
        float32 ``(n_classes,)``, added to the log-probabilities before the argmax.
    objective : str
        What was maximised (e.g. ``"macro_f1[N,S,V,F]"``).
    score_before, score_after : float
        The objective with zero offsets and with the fitted ones (in-sample: optimistic).
    n_beats : int
        Labelled beats the offsets were fitted on.
    """

    bias: np.ndarray
    objective: str
    score_before: float
    score_after: float
    n_beats: int

    def to_dict(self) -> dict[str, object]:
        return {
            "bias": [float(b) for b in self.bias],
            "objective": self.objective,
            "score_before": self.score_before,
            "score_after": self.score_after,
            "n_beats": self.n_beats,
        }


def fit_decision_bias(
    log_proba: np.ndarray,
    labels: np.ndarray,
    *,
    tune: tuple[int, ...] = (1, 2),
    score_classes: tuple[int, ...] = (0, 1, 2),
    class_names: tuple[str, ...] = ("N", "S", "V", "F", "Q"),
    grid: np.ndarray | None = None,
    rounds: int = 3,
) -> DecisionBias:
    """Offsets for the classes ``tune`` that maximise the macro-F1 over ``score_classes``.

    Coordinate ascent: for each tuned class in turn, try every offset in ``grid`` with the
    others fixed and keep the best (ties: the offset closest to 0); ``rounds`` passes. The
    reference class (N, index 0) keeps offset 0, as do classes not in ``tune`` (F, see below;
    Q: 8 beats in DS1, too few to fit).

    Parameters
    ----------
    log_proba : numpy.ndarray
        ``(n, n_classes)`` log-probabilities (or logits) of beats the model did not train on.
    labels : numpy.ndarray
        ``(n,)`` class indices; ``-1`` (unknown) are ignored.
    tune : tuple of int
        Classes whose offsets are fitted (default S and V, the classes EC57 scores).
    score_classes : tuple of int
        Classes in the macro-F1 (default N, S, V). F is left out by default: inter-patient, the
        members do not rank fusion beats at all (out-of-fold F1 below 5 %, 373 of DS1's 415 F
        beats are in one record), and an offset fitted on such scores only trades thousands of
        N beats for a few F (seen in the first benchmark run: offset +2.55, N Se 92 -> 84 %).
    grid : numpy.ndarray, optional
        Candidate offsets (default -4 to 4 in steps of 0.05).
    rounds : int
        Coordinate-ascent passes.

    Returns
    -------
    DecisionBias

    Examples
    --------
    A class whose scores are shifted down by 2 gets an offset of about +2 back:

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> s = (y == 1).astype(float)
    >>> lp = np.stack([1 - s, s - 2.0], axis=1) + rng.normal(0, 0.3, (2000, 2))
    >>> fit = fit_decision_bias(lp, y, tune=(1,), score_classes=(0, 1), class_names=("A", "B"))
    >>> bool(1.5 < fit.bias[1] < 2.5), fit.score_after > fit.score_before
    (True, True)
    """
    log_proba = np.asarray(log_proba, dtype=np.float64)
    labels = np.asarray(labels)
    if log_proba.ndim != 2 or log_proba.shape[0] != labels.shape[0]:
        raise ValueError(
            f"log_proba must be (n, n_classes) with n = len(labels); got {log_proba.shape} "
            f"and {labels.shape}"
        )
    if not np.all(np.isfinite(log_proba)):
        raise ValueError("log_proba has NaN or infinite values")
    n_classes = log_proba.shape[1]
    for c in (*tune, *score_classes):
        if not 0 <= c < n_classes:
            raise ValueError(f"class index {c} out of range for {n_classes} classes")
    keep = labels >= 0
    lp, y = log_proba[keep], labels[keep]
    if len(y) == 0:
        raise ValueError("no labelled beats to fit decision offsets on")
    grid = np.round(np.arange(-4.0, 4.0001, 0.05), 4) if grid is None else np.asarray(grid)
    bias = np.zeros(n_classes)
    before = macro_f1(y, lp.argmax(axis=1), classes=score_classes, skip_absent=False)
    best = before
    for _ in range(max(1, rounds)):
        changed = False
        for c in tune:
            scores = []
            for b in grid:
                trial = bias.copy()
                trial[c] = b
                scores.append(
                    macro_f1(
                        y, (lp + trial).argmax(axis=1), classes=score_classes, skip_absent=False
                    )
                )
            scores_arr = np.asarray(scores)
            top = scores_arr.max()
            ties = grid[np.isclose(scores_arr, top)]
            b_best = float(ties[np.argmin(np.abs(ties))])
            if top > best + 1e-12 or (np.isclose(top, best) and b_best != bias[c]):
                changed = changed or b_best != bias[c]
                bias[c] = b_best
                best = max(best, float(top))
        if not changed:
            break
    names = ",".join(class_names[c] for c in score_classes if c < len(class_names))
    return DecisionBias(
        bias=bias.astype(np.float32),
        objective=f"macro_f1[{names}]",
        score_before=before,
        score_after=macro_f1(
            y, (lp + bias).argmax(axis=1), classes=score_classes, skip_absent=False
        ),
        n_beats=len(y),
    )
