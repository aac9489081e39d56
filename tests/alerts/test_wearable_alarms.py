"""Wearable alarm gating: the RR second opinion on the rhythm model's AF windows."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import BeatSeries
from heartline.alerts.rules.af import rr_irregular


def _series(times: np.ndarray, labels: list[str]) -> BeatSeries:
    return BeatSeries.from_samples(
        np.round(np.asarray(times) * 1000).astype(int), labels, fs=1000.0
    )


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


# --------------------------------------------------------------------------------------------
# The signal-quality notice as a sustained condition
# --------------------------------------------------------------------------------------------
def _quality_windows(engine: AlertEngine, ends: list[int]) -> None:
    """2 s quality windows ending at the given seconds failed (as the processor reports them)."""
    for k in ends:
        engine.add_quality(float(k - 2), float(k), ok=False, evaluate=False)


def _sinus_series(duration_s: float) -> BeatSeries:
    return _series(np.arange(0.0, duration_s, 0.8), ["N"] * len(np.arange(0.0, duration_s, 0.8)))


def _notices(engine: AlertEngine) -> list[tuple[float, float]]:
    out = []
    for a in engine.alerts():
        if a.kind == "signal_quality":
            end = a.end_s if a.end_s is not None else a.evidence["last_evidence_s"]
            out.append((a.start_s, end))
    return out


def test_scattered_failing_windows_raise_no_sustained_notice() -> None:
    from heartline.alerts.rules import RuleConfig

    scattered = [5, 7, 9, 12, 14, 16, 19, 21]  # 2 s windows: gaps of 1-3 s, never 10 s unusable
    old = AlertEngine("p", config=EngineConfig(rules=RuleConfig(quality_min_duration_s=5.0)))
    new = AlertEngine(
        "p",
        config=EngineConfig(
            rules=RuleConfig(quality_min_duration_s=5.0, quality_sustain_window_s=10.0)
        ),
    )
    for eng in (old, new):
        _quality_windows(eng, scattered)
        eng.add_beats(_sinus_series(30.0))
    assert _notices(old)  # merged across 1 s gaps: a notice
    assert not _notices(new)
    # the beats in the failing windows are left out of the rules in both
    assert (
        not new.window().beat_ok()[(new.window().time_s >= 3.0) & (new.window().time_s < 5.0)].any()
    )
    # 12 s of unusable signal: a notice from its start
    eng = AlertEngine("p", config=new.config)
    _quality_windows(eng, list(range(6, 19)))  # [4, 18) unusable
    eng.add_beats(_sinus_series(30.0))
    (notice,) = _notices(eng)
    assert notice[0] == pytest.approx(4.0, abs=0.11) and notice[1] == pytest.approx(18.0, abs=0.11)


def test_sustain_settings_validated() -> None:
    from heartline.alerts.rules import RuleConfig

    with pytest.raises(ValueError, match="quality_sustain_window_s"):
        RuleConfig(quality_sustain_window_s=-1.0)
    with pytest.raises(ValueError, match="quality_sustain_fraction"):
        RuleConfig(quality_sustain_fraction=0.0)
    with pytest.raises(ValueError, match="noisy_notice_min_window_s"):
        EngineConfig(noisy_notice_min_window_s=-1.0)
    with pytest.raises(ValueError, match="rhythm_confirm_s"):
        EngineConfig(rhythm_confirm_s=float("nan"))


def test_short_noisy_window_masks_beats_without_notice() -> None:
    for min_window, notice in ((0.0, True), (30.0, False)):
        eng = AlertEngine("p", config=EngineConfig(noisy_notice_min_window_s=min_window))
        eng.add_beats(_sinus_series(10.0))
        eng.add_rhythm(0.0, 13.0, label="~", probabilities={"~": 0.6})
        eng.add_beats(_series(np.arange(10.4, 20.0, 0.8), ["N"] * 12))  # beats arriving later
        w = eng.window()
        inside = w.time_s < 13.0
        assert not w.beat_ok()[inside].any() and w.beat_ok()[~inside].all()
        assert bool(_notices(eng)) is notice


# --------------------------------------------------------------------------------------------
# Low-priority episodes wait for the rhythm model's verdict
# --------------------------------------------------------------------------------------------
def _couplet_beats() -> BeatSeries:
    t = list(np.arange(0.0, 4.0, 0.8))  # N at 0 .. 3.2
    t += [3.65, 4.05]  # V V, premature
    t += list(4.05 + 1.3 + np.arange(0, 8) * 0.8)  # compensatory pause, sinus to ~10.9 s
    lab = ["N"] * 5 + ["V", "V"] + ["N"] * 8
    return _series(np.asarray(t), lab)


@pytest.mark.parametrize("verdict", ["~", "N"])
def test_couplet_waits_for_rhythm_verdict(verdict: str) -> None:
    cfg = EngineConfig(rhythm_confirm_s=15.0)
    eng = AlertEngine("p", config=cfg)
    eng.add_beats(_couplet_beats())
    assert not [a for a in eng.alerts() if a.kind == "v_couplet"]  # held
    eng.add_rhythm(0.0, 13.0, label=verdict, probabilities={verdict: 0.9})
    raised = [a for a in eng.alerts() if a.kind == "v_couplet"]
    assert bool(raised) is (verdict == "N")  # "~" masks its beats: no couplet
    # without the hold the couplet is raised at once
    eng0 = AlertEngine("p", config=EngineConfig())
    eng0.add_beats(_couplet_beats())
    assert [a for a in eng0.alerts() if a.kind == "v_couplet"]


def test_held_episode_released_after_wait_or_at_flush() -> None:
    cfg = EngineConfig(rhythm_confirm_s=15.0)
    eng = AlertEngine("p", config=cfg)
    eng.add_beats(_couplet_beats())
    assert not [a for a in eng.alerts() if a.kind == "v_couplet"]
    ups = eng.flush_reports()  # a clean stop: no verdict is coming
    assert [u for u in ups if u.event.kind == "v_couplet" and u.change == "opened"]
    # no verdict within 15 s of data: raised then
    eng2 = AlertEngine("p", config=cfg)
    eng2.add_beats(_couplet_beats())
    eng2.add_beats(_series(np.arange(11.7, 22.0, 0.8), ["N"] * 13))
    assert [a for a in eng2.alerts() if a.kind == "v_couplet"]


def test_vt_is_never_held() -> None:
    t = [*list(np.arange(0.0, 4.0, 0.8)), 3.5, 3.9, 4.3, 4.7, *list(5.6 + np.arange(0, 6) * 0.8)]
    lab = ["N"] * 5 + ["V"] * 4 + ["N"] * 6
    eng = AlertEngine("p", config=EngineConfig(rhythm_confirm_s=15.0))
    eng.add_beats(_series(np.asarray(t), lab))
    assert [a for a in eng.alerts() if a.kind == "vt"]


def test_processor_engine_settings() -> None:
    from heartline.ingestion import processor as P

    assert P.QUALITY_SUSTAIN_WINDOW_S == 10.0 and P.NOISY_NOTICE_MIN_WINDOW_S == 30.0
    assert P.RHYTHM_CONFIRM_S == 15.0 and P.AF_MODEL_CONFIDENT_P == 0.9


def test_confident_model_window_needs_no_second_opinion() -> None:
    t, lab = _trigeminy(40.0)
    for p_af, raised in ((0.95, True), (0.6, False)):
        eng = AlertEngine(
            "p",
            config=EngineConfig(
                af_source="model", af_model_rr_check=True, af_model_confident_p=0.9
            ),
        )
        eng.add_beats(_series(t, lab))
        eng.add_rhythm(5.0, 35.0, label="A", probabilities={"A": p_af})
        assert any(a.kind == "af_like" for a in eng.alerts()) is raised
    with pytest.raises(ValueError, match="af_model_confident_p"):
        EngineConfig(af_model_confident_p=1.5)


def test_af_decision_does_not_depend_on_batching() -> None:
    """The RR check runs once the window's beats are all in: the same verdicts and beats, in
    different orders (rhythm verdict before or after the window's last beats), same alarm."""
    t, lab = _irregular(60.0, seed=3)
    cfg = EngineConfig(af_source="model", af_model_rr_check=True, af_model_confident_p=0.9)

    def alarms(split: float) -> list[tuple[float, float | None]]:
        eng = AlertEngine("p", config=cfg)
        k = int(np.searchsorted(t, split))
        eng.add_beats(_series(t[:k], lab[:k]))
        eng.add_rhythm(5.0, 35.0, label="A", probabilities={"A": 0.6}, evaluate=False)
        eng.add_beats(_series(t[k:], lab[k:]))
        eng.flush_reports()
        return [(a.start_s, a.end_s) for a in eng.alerts() if a.kind == "af_like"]

    # the verdict arrives with few of the window's beats in (split 12 s: under 16 intervals)
    # or with all of them (split 50 s)
    assert alarms(12.0) == alarms(50.0) and alarms(12.0)
    # no beat after the window ever comes: decided at flush_reports with the beats there
    eng = AlertEngine("p", config=cfg)
    k = int(np.searchsorted(t, 34.0))
    eng.add_beats(_series(t[:k], lab[:k]))
    eng.add_rhythm(5.0, 35.0, label="A", probabilities={"A": 0.6})
    assert not [a for a in eng.alerts() if a.kind == "af_like"]
    ups = eng.flush_reports()
    assert [u for u in ups if u.event.kind == "af_like" and u.change == "opened"]


@pytest.mark.parametrize(("mask_p", "raised"), [(1.0, True), (0.3, False)])
def test_unsure_clean_window_masks_its_beats(mask_p: float, raised: bool) -> None:
    """An ``N`` verdict with ``~`` probability >= ``noisy_mask_p`` is no evidence for a couplet."""
    cfg = EngineConfig(rhythm_confirm_s=15.0, noisy_mask_p=mask_p)
    eng = AlertEngine("p", config=cfg)
    eng.add_beats(_couplet_beats())
    eng.add_rhythm(0.0, 13.0, label="N", probabilities={"N": 0.55, "~": 0.4, "A": 0.05})
    assert bool([a for a in eng.alerts() if a.kind == "v_couplet"]) is raised
    assert not _notices(eng)  # masked without a signal-quality notice
    with pytest.raises(ValueError, match="noisy_mask_p"):
        EngineConfig(noisy_mask_p=0.0)
