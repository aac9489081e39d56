"""Ectopy counted only when premature, and the rhythm model's AF alarm needs a 30 s window."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import BeatSeries, RuleConfig, evaluate_rules
from heartline.alerts.rules.ventricular import (
    detect_frequent_ectopy,
    detect_ventricular_runs,
    premature_beats,
)


def _series(times: list[float], labels: list[str]) -> BeatSeries:
    return BeatSeries.from_samples(
        np.round(np.asarray(times) * 1000).astype(int), labels, fs=1000.0
    )


def _sinus(n: int, rr: float = 0.9, t0: float = 0.0) -> list[float]:
    return [t0 + rr * k for k in range(n)]


def test_true_couplet_is_premature_and_alarms() -> None:
    t = _sinus(10)  # N beats 0.0 .. 8.1
    t += [t[-1] + 0.45, t[-1] + 0.85]  # V V: 0.45 s coupling, 0.40 s apart
    t += [t[-1] + 1.35 + 0.9 * k for k in range(5)]  # compensatory pause, then sinus
    lab = ["N"] * 10 + ["V", "V"] + ["N"] * 5
    s = _series(t, lab)
    prem = premature_beats(s, 0.85)
    assert prem[10] and prem[11]
    kinds = [e.kind for e in detect_ventricular_runs(s, prematurity=0.85)]
    assert kinds == ["v_couplet"]


def test_extra_beat_before_on_time_sinus_beat_is_not_a_couplet() -> None:
    # N ... N X Y N ... : X 0.57 s after a sinus beat, Y on the sinus schedule (0.9 s after it)
    t = _sinus(10)
    t += [t[-1] + 0.57, t[-1] + 0.9]
    t += [t[-1] + 0.9 * (k + 1) for k in range(5)]
    lab = ["N"] * 10 + ["V", "V"] + ["N"] * 5
    s = _series(t, lab)
    assert [e.kind for e in detect_ventricular_runs(s)] == ["v_couplet"]  # no gating
    assert detect_ventricular_runs(s, prematurity=0.85) == ()
    prem = premature_beats(s, 0.85)
    assert prem[10] and not prem[11]  # X early, Y on time


def test_v_labels_on_sinus_timing_are_not_frequent_pvcs() -> None:
    t = _sinus(70, rr=0.9)
    lab = ["N"] * 70
    for k in range(5, 70, 6):  # every 6th beat called V, none of them early
        lab[k] = "V"
    s = _series(t, lab)
    assert [e.kind for e in detect_frequent_ectopy(s)] == ["frequent_pvc"]
    assert detect_frequent_ectopy(s, prematurity=0.85) == ()


def test_vt_run_survives_gating() -> None:
    t = _sinus(10)
    t += [t[-1] + 0.45 + 0.42 * k for k in range(6)]  # 6 V beats at ~143 bpm
    t += [t[-1] + 1.2 + 0.9 * k for k in range(4)]
    lab = ["N"] * 10 + ["V"] * 6 + ["N"] * 4
    s = _series(t, lab)
    eps = detect_ventricular_runs(s, prematurity=0.85)
    assert [e.kind for e in eps] == ["vt"]
    assert eps[0].values["n_beats"] == 6


def test_rule_config_validates_and_passes_prematurity() -> None:
    with pytest.raises(ValueError, match="v_prematurity"):
        RuleConfig(v_prematurity=1.5)
    t = _sinus(10)
    t += [t[-1] + 0.57, t[-1] + 0.9]
    t += [t[-1] + 0.9 * (k + 1) for k in range(5)]
    s = _series(t, ["N"] * 10 + ["V", "V"] + ["N"] * 5)
    with_gate = {e.kind for e in evaluate_rules(s, config=RuleConfig(v_prematurity=0.85))}
    without = {e.kind for e in evaluate_rules(s, config=RuleConfig())}
    assert "v_couplet" in without and "v_couplet" not in with_gate


def test_model_af_needs_a_full_window() -> None:
    eng = AlertEngine("p", config=EngineConfig(af_source="model"))
    ups = eng.add_rhythm(0.0, 10.0, label="A", probabilities={"A": 0.6})
    assert not [u for u in ups if u.event.kind == "af_like"]
    assert not [a for a in eng.active_alerts() if a.kind == "af_like"]
    eng.add_rhythm(0.0, 30.0, label="A", probabilities={"A": 0.7})
    assert [a for a in eng.active_alerts() if a.kind == "af_like"]
    with pytest.raises(ValueError, match="af_model_min_window_s"):
        EngineConfig(af_model_min_window_s=-1.0)
