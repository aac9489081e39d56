"""Wearable alarm gating: the RR second opinion on the rhythm model's AF windows."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import BeatSeries
from heartline.alerts.rules.af import rr_irregular


def _series(times: np.ndarray, labels: list[str]) -> BeatSeries:
    return BeatSeries.from_samples(np.round(np.asarray(times) * 1000).astype(int), labels, fs=1000.0)


def _trigeminy(duration_s: float) -> tuple[np.ndarray, list[str]]:
    """N N V repeated: sinus at 0.8 s, each V 0.45 s after an N, a compensatory pause after."""
    t, lab, now = [], [], 0.0
    while now < duration_s:
        for dt, lb in ((0.8, "N"), (0.45, "N"), (1.15, "V")):  # interval after each beat
            t.append(now)
            lab.append(lb)
            now += dt
    return np.asarray(t), lab


def _irregular(duration_s: float, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    rr = rng.uniform(0.45, 1.1, size=int(duration_s / 0.5) + 10)
    t = np.concatenate([[0.0], np.cumsum(rr)])
    t = t[t < duration_s]
    return t, ["N"] * t.size


def test_rr_irregular_leaves_ventricular_ectopy_out() -> None:
    t, lab = _trigeminy(60.0)
    ok, f = rr_irregular(_series(t, lab), 0.0, 60.0)
    assert not ok and f["n_rr"] >= 16 and f["nrmssd"] < 0.1  # N-N intervals are regular
    # in 30 s of trigeminy too few N-N intervals are left: not confirmed either
    assert rr_irregular(_series(t, lab), 0.0, 30.0)[1]["n_rr"] < 16
    # the same beat times all called N: irregular (the pattern is what the model sees)
    ok_all_n, _ = rr_irregular(_series(t, ["N"] * t.size), 0.0, 60.0)
    assert ok_all_n
    t2, lab2 = _irregular(40.0)
    assert rr_irregular(_series(t2, lab2), 0.0, 40.0)[0]
    # too few usable intervals: not confirmed
    assert not rr_irregular(_series(t2, lab2), 0.0, 5.0)[0]
    with pytest.raises(ValueError, match="min_intervals"):
        rr_irregular(_series(t2, lab2), 0.0, 40.0, min_intervals=2)


@pytest.mark.parametrize("check", [False, True])
def test_model_af_window_needs_rr_agreement(check: bool) -> None:
    cfg = EngineConfig(af_source="model", af_model_rr_check=check)
    t, lab = _trigeminy(40.0)
    eng = AlertEngine("p", config=cfg)
    eng.add_beats(_series(t, lab))
    eng.add_rhythm(5.0, 35.0, label="A", probabilities={"A": 0.55})
    raised = any(a.kind == "af_like" for a in eng.alerts())
    assert raised is (not check)
    # an irregular rhythm is confirmed
    t2, lab2 = _irregular(40.0)
    eng2 = AlertEngine("p", config=cfg)
    eng2.add_beats(_series(t2, lab2))
    eng2.add_rhythm(5.0, 35.0, label="A", probabilities={"A": 0.9})
    assert any(a.kind == "af_like" for a in eng2.alerts())


def test_af_model_min_rr_validated() -> None:
    with pytest.raises(ValueError, match="af_model_min_rr"):
        EngineConfig(af_model_min_rr=2)


def test_processor_engines_check_rr() -> None:
    from heartline.ingestion import processor

    assert processor.AF_MODEL_RR_CHECK is True
