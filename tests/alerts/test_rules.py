"""Alert rules on crafted beat sequences: every rule, positive and negative cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heartline.alerts.rules import (
    AF_METHODS,
    KINDS,
    Beat,
    BeatSeries,
    RuleConfig,
    Severity,
    detect_af_like,
    detect_bradycardia,
    detect_frequent_ectopy,
    detect_pauses,
    detect_signal_quality,
    detect_tachycardia,
    detect_ventricular_patterns,
    detect_ventricular_runs,
    evaluate_rules,
    heart_rate,
)


def series(
    labels: str | list[str],
    rr_s: float | list[float],
    *,
    t0: float = 0.0,
    quality_ok=None,
    spans=(),
):
    """Beats with the given labels; ``rr_s[k]`` is the interval before beat k+1."""
    labels = list(labels)
    rr = np.full(len(labels) - 1, rr_s) if np.isscalar(rr_s) else np.asarray(rr_s, dtype=float)
    assert rr.size == len(labels) - 1
    t = t0 + np.concatenate([[0.0], np.cumsum(rr)])
    ok = np.ones(len(labels), bool) if quality_ok is None else np.asarray(quality_ok, bool)
    beats = [
        Beat(float(ti), int(np.rint(ti * 360)), lab, 1.0, bool(o))
        for ti, lab, o in zip(t, labels, ok, strict=True)
    ]
    return BeatSeries.from_beats(beats, noisy_spans_s=spans)


def kinds(episodes) -> list[str]:
    return [e.kind for e in episodes]


# ---------------------------------------------------------------------------------- inputs
def test_beat_series_validates_inputs():
    with pytest.raises(ValueError, match="label"):
        Beat(0.0, 0, "X")
    with pytest.raises(ValueError, match="confidence"):
        Beat(0.0, 0, "N", confidence=1.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        BeatSeries.from_beats([Beat(1.0, 360, "N"), Beat(0.5, 180, "N")])
    with pytest.raises(ValueError, match="fs"):
        BeatSeries.from_samples([0, 1], ["N", "N"], fs=0)
    # MIT-BIH symbols and integer classes are mapped to AAMI classes
    s = BeatSeries.from_samples([0, 360, 720], ["L", "E", 1], fs=360.0)
    assert s.label.tolist() == ["N", "V", "S"]


def test_rule_config_validates():
    with pytest.raises(ValueError, match="brady_high_bpm"):
        RuleConfig(brady_bpm=50, brady_high_bpm=55)
    with pytest.raises(ValueError, match="af_method"):
        RuleConfig(af_method="nope")
    with pytest.raises(ValueError, match="pause_s"):
        RuleConfig(pause_s=-1)


def test_empty_and_single_beat_series_raise_nothing():
    for s in (BeatSeries.empty(), series("N", [])):
        assert evaluate_rules(s, now_s=None) == ()
    # a single beat and a long wait is an (ongoing) pause
    assert kinds(detect_pauses(series("N", []), now_s=5.0)) == ["pause"]


# ---------------------------------------------------------------------------------- heart rate
def test_heart_rate_instantaneous_and_smoothed():
    s = series("N" * 12, [0.75] * 6 + [0.5] * 5)
    hr = heart_rate(s, window_beats=5)
    assert np.isnan(hr.instantaneous_bpm[0])
    assert hr.instantaneous_bpm[1] == pytest.approx(80.0)
    assert hr.instantaneous_bpm[-1] == pytest.approx(120.0)
    assert hr.smoothed_bpm[-1] == pytest.approx(120.0)
    assert hr.smoothed_bpm[6] == pytest.approx(80.0)
    hr_t = heart_rate(s, window_s=10.0)
    assert hr_t.smoothed_bpm[-1] == pytest.approx(60 * 11 / (6 * 0.75 + 5 * 0.5))


def test_heart_rate_skips_noisy_intervals():
    ok = [True] * 5 + [False] + [True] * 5
    hr = heart_rate(series("N" * 11, 1.0, quality_ok=ok), window_beats=10)
    assert np.isnan(hr.instantaneous_bpm[5]) and np.isnan(hr.instantaneous_bpm[6])
    assert hr.smoothed_bpm[-1] == pytest.approx(60.0)


# ---------------------------------------------------------------------------------- brady / tachy
@pytest.mark.parametrize(
    ("bpm", "expected"),
    [(45, Severity.WARNING), (35, Severity.HIGH), (55, None), (50, None)],
)
def test_bradycardia(bpm, expected):
    eps = detect_bradycardia(series("N" * 40, 60.0 / bpm))
    if expected is None:
        assert eps == ()
    else:
        assert kinds(eps) == ["bradycardia"] and eps[0].severity is expected
        assert eps[0].values["extreme_bpm"] == pytest.approx(bpm)


def test_bradycardia_must_be_sustained_and_is_configurable():
    rr = [0.8] * 20 + [1.4] * 8 + [0.8] * 20  # ~8 slow beats: a few seconds below 50 bpm
    assert detect_bradycardia(series("N" * 49, rr)) == ()
    assert kinds(detect_bradycardia(series("N" * 40, 60 / 55), threshold_bpm=60, high_bpm=40)) == [
        "bradycardia"
    ]


@pytest.mark.parametrize(
    ("bpm", "expected"), [(130, Severity.WARNING), (165, Severity.HIGH), (110, None)]
)
def test_tachycardia(bpm, expected):
    eps = detect_tachycardia(series("N" * 60, 60.0 / bpm))
    assert (
        (eps == ())
        if expected is None
        else (kinds(eps) == ["tachycardia"] and eps[0].severity is expected)
    )


# ---------------------------------------------------------------------------------- pauses
@pytest.mark.parametrize(
    ("gap", "expected"), [(1.9, None), (2.5, Severity.HIGH), (3.5, Severity.CRITICAL)]
)
def test_pause_and_asystole(gap, expected):
    eps = detect_pauses(series("N" * 10, [0.8] * 5 + [gap] + [0.8] * 3))
    if expected is None:
        assert eps == ()
    else:
        (e,) = eps
        assert (
            e.kind == "pause" and e.severity is expected and e.values["rr_s"] == pytest.approx(gap)
        )
        assert e.beat_ids == (5, 6) and e.duration_s == pytest.approx(gap)


def test_ongoing_asystole_is_detected_with_now():
    s = series("N" * 10, 0.8)
    last = float(s.time_s[-1])
    assert detect_pauses(s, now_s=last + 1.5) == ()
    (e,) = detect_pauses(s, now_s=last + 4.0)
    assert e.ongoing and e.severity is Severity.CRITICAL and e.end_s == pytest.approx(last + 4.0)


def test_pause_is_not_raised_across_noise():
    rr = [0.8] * 5 + [3.5] + [0.8] * 3
    ok = [True] * 5 + [False] + [True] * 4  # the beat before the gap is noisy
    assert detect_pauses(series("N" * 10, rr, quality_ok=ok)) == ()
    t_gap = 0.8 * 5
    assert detect_pauses(series("N" * 10, rr, spans=[(t_gap + 1.0, t_gap + 2.0)])) == ()
    s = series("N" * 10, 0.8, spans=[(7.5, 20.0)])  # lead off after the last beat
    assert detect_pauses(s, now_s=15.0) == ()


# ---------------------------------------------------------------------------------- ventricular
def test_two_v_beats_is_a_couplet_not_vt():
    eps = detect_ventricular_runs(series("NNNVVNNN", [0.8, 0.8, 0.8, 0.4, 0.8, 0.8, 0.8]))
    assert kinds(eps) == ["v_couplet"]
    assert eps[0].beat_ids == (3, 4)


def test_three_v_at_90_bpm_is_a_slow_run_not_vt():
    eps = detect_ventricular_runs(series("NNVVVNN", [0.8, 0.8, 60 / 90, 60 / 90, 0.8, 0.8]))
    assert kinds(eps) == ["v_run"]
    assert eps[0].values["rate_bpm"] == pytest.approx(90.0)


def test_three_v_at_150_bpm_is_vt():
    eps = detect_ventricular_runs(series("NNVVVNN", [0.8, 0.8, 0.4, 0.4, 0.8, 0.8]))
    (e,) = eps
    assert e.kind == "vt" and e.severity is Severity.HIGH and not e.values["sustained"]
    assert e.values["rate_bpm"] == pytest.approx(150.0) and e.beat_ids == (2, 3, 4)
    assert e.start_s == pytest.approx(1.6) and e.end_s == pytest.approx(2.4)


def test_sustained_vt_is_critical():
    n_v = 80  # 79 intervals of 0.4 s = 31.6 s
    eps = detect_ventricular_runs(
        series("NN" + "V" * n_v + "NN", [0.8] * 2 + [0.4] * (n_v - 1) + [0.8] * 2)
    )
    (e,) = eps
    assert e.kind == "vt" and e.severity is Severity.CRITICAL and e.values["sustained"]
    assert e.values["n_beats"] == n_v and e.values["duration_s"] >= 30.0
    assert len(e.beat_ids) <= 64  # evidence is capped


def test_vt_is_not_raised_on_noisy_or_uncertain_beats():
    rr = [0.8, 0.8, 0.4, 0.4, 0.4, 0.8, 0.8]
    noisy = [True, True, True, False, True, True, True, True]
    assert "vt" not in kinds(detect_ventricular_runs(series("NNVVVVNN", rr, quality_ok=noisy)))
    s = series("NNVVVNN", [0.8, 0.8, 0.4, 0.4, 0.8, 0.8])
    s = BeatSeries(s.time_s, s.label, s.beat_id, s.sample_idx, np.full(len(s), 0.4), s.quality_ok)
    assert detect_ventricular_runs(s, min_confidence=0.5) == ()
    assert kinds(detect_ventricular_runs(s)) == ["vt"]


def test_bigeminy_and_trigeminy():
    assert kinds(detect_ventricular_patterns(series("NN" + "NV" * 6 + "NN", 0.8))) == [
        "ventricular_bigeminy"
    ]
    assert kinds(detect_ventricular_patterns(series("N" + "NNV" * 5 + "NN", 0.8))) == [
        "ventricular_trigeminy"
    ]
    # too few cycles, or a run of N beats breaking the pattern
    assert detect_ventricular_patterns(series("NN" + "NV" * 3 + "NN", 0.8)) == ()
    assert detect_ventricular_patterns(series("NVNVNNNVNVNN", 0.8)) == ()


def test_frequent_pvc_and_sveb():
    # 10 isolated PVCs within 60 s -> frequent (> 6/min); 5 -> not
    labels = ["V" if i % 6 == 3 else "N" for i in range(60)]
    eps = detect_frequent_ectopy(series(labels, 0.8))
    assert kinds(eps) == ["frequent_pvc"] and eps[0].values["max_per_min"] > 6
    labels = ["V" if i % 12 == 3 else "N" for i in range(60)]
    assert detect_frequent_ectopy(series(labels, 0.8)) == ()
    labels = ["S" if i % 5 == 2 else "N" for i in range(80)]
    assert kinds(detect_frequent_ectopy(series(labels, 0.8))) == ["frequent_sveb"]


# ---------------------------------------------------------------------------------- AF-like
def _irregular(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.45, 1.15, n)


@pytest.mark.parametrize("method", sorted(AF_METHODS))
def test_af_like_fires_on_irregularly_irregular_rr(method):
    rr = np.concatenate([np.full(80, 0.8), _irregular(150, 1), np.full(80, 0.8)])
    eps = detect_af_like(series("N" * (rr.size + 1), rr), method=method)
    (e,) = eps
    af_start, af_end = 80 * 0.8, 80 * 0.8 + rr[80:230].sum()
    assert e.kind == "af_like" and e.severity is Severity.WARNING
    # the episode sits on the irregular stretch (within half a window of its edges)
    assert abs(e.start_s - af_start) < 30 and abs(e.end_s - af_end) < 30


@pytest.mark.parametrize("method", sorted(AF_METHODS))
def test_af_like_stays_quiet_on_sinus_rhythm_and_isolated_pvcs(method):
    k = np.arange(300)
    rr = 0.8 + 0.04 * np.sin(2 * np.pi * k / 5)  # respiratory sinus arrhythmia, +-5 %
    assert detect_af_like(series("N" * 301, rr), method=method) == ()
    labels = ["V" if i % 10 == 5 else "N" for i in range(301)]
    rr = np.where(np.array([lab == "V" for lab in labels[1:]]), 0.5, 0.8)  # premature V
    assert detect_af_like(series(labels, rr), method=method) == ()


def test_af_like_rapid_response_is_high_and_unknown_method_lists_valid():
    rr = _irregular(200, 2) * 0.6  # mean ~0.48 s: ~125 bpm
    (e,) = detect_af_like(series("N" * 201, rr))
    assert e.severity is Severity.HIGH and e.values["mean_bpm"] > 110
    with pytest.raises(ValueError, match="dash2009"):
        detect_af_like(series("N" * 201, rr), method="tateno")


# ---------------------------------------------------------------------------------- quality
def test_noise_gives_a_technical_alarm_instead_of_vt():
    labels = "N" * 10 + "VVVVVV" + "N" * 10
    rr = [0.8] * 9 + [0.4] * 6 + [0.8] * 10
    ok = [True] * 9 + [False] * 8 + [True] * 9
    eps = evaluate_rules(series(labels, rr, quality_ok=ok))
    assert kinds(eps) == ["signal_quality"]
    assert eps[0].category == "technical" and eps[0].severity is Severity.WARNING
    # the same beats with good quality are VT
    assert "vt" in kinds(evaluate_rules(series(labels, rr)))


def test_noisy_span_without_beats_is_reported():
    (e,) = detect_signal_quality(series("N" * 10, 0.8, spans=[(20.0, 30.0)]))
    assert e.start_s == 20.0 and e.end_s == 30.0
    assert (
        detect_signal_quality(series("N" * 10, 0.8, quality_ok=[True] * 9 + [False])) == ()
    )  # < 2 s


# ---------------------------------------------------------------------------------- all rules
def test_evaluate_rules_output_is_json_serialisable_and_known_kinds():
    labels = "N" * 20 + "VVVV" + "N" * 5 + "NV" * 6 + "N" * 20
    rr = [0.8] * 19 + [0.4] * 4 + [0.8] * 5 + [0.8] * 12 + [3.2] + [0.8] * 19
    eps = evaluate_rules(series(labels, rr))
    assert {"vt", "pause", "ventricular_bigeminy"} <= set(kinds(eps))
    for e in eps:
        assert e.kind in KINDS
        json.dumps(e.evidence())
    assert [e.start_s for e in eps] == sorted(e.start_s for e in eps)


def test_normal_sinus_rhythm_raises_nothing():
    rng = np.random.default_rng(0)
    rr = 0.85 + 0.02 * rng.standard_normal(400)
    assert evaluate_rules(series("N" * 401, rr)) == ()
