"""NEWS2 against the Royal College of Physicians (2017) chart, at every boundary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartline.alerts.news2 import (
    RISK_BANDS,
    Vitals,
    news2,
    risk_band,
    score_consciousness,
    score_pulse,
    score_respiration_rate,
    score_spo2,
    score_supplemental_oxygen,
    score_systolic_bp,
    score_temperature,
)

# (value, expected sub-score) on both sides of every boundary of the RCP 2017 chart
RESPIRATION = [
    (0, 3),
    (8, 3),
    (9, 1),
    (11, 1),
    (12, 0),
    (20, 0),
    (21, 2),
    (24, 2),
    (25, 3),
    (60, 3),
]
SPO2_SCALE1 = [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SYSTOLIC = [
    (50, 3),
    (90, 3),
    (91, 2),
    (100, 2),
    (101, 1),
    (110, 1),
    (111, 0),
    (219, 0),
    (220, 3),
    (260, 3),
]
PULSE = [
    (20, 3),
    (40, 3),
    (41, 1),
    (50, 1),
    (51, 0),
    (90, 0),
    (91, 1),
    (110, 1),
    (111, 2),
    (130, 2),
    (131, 3),
    (220, 3),
]
TEMPERATURE = [
    (33.0, 3),
    (35.0, 3),
    (35.1, 1),
    (36.0, 1),
    (36.1, 0),
    (38.0, 0),
    (38.1, 1),
    (39.0, 1),
    (39.1, 2),
    (41.0, 2),
]


@pytest.mark.parametrize(("value", "score"), RESPIRATION)
def test_respiration_rate(value, score):
    assert score_respiration_rate(value) == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE1)
def test_spo2_scale1(value, score):
    assert score_spo2(value) == score
    assert score_spo2(value, supplemental_oxygen=True) == score  # scale 1 ignores oxygen


@pytest.mark.parametrize(
    ("value", "on_o2", "score"),
    [
        (83, False, 3),
        (84, False, 2),
        (85, False, 2),
        (86, False, 1),
        (87, False, 1),
        (88, False, 0),
        (92, False, 0),
        (93, False, 0),
        (100, False, 0),
        (92, True, 0),
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
        (100, True, 3),
    ],
)
def test_spo2_scale2(value, on_o2, score):
    assert score_spo2(value, scale=2, supplemental_oxygen=on_o2) == score


@pytest.mark.parametrize(("value", "score"), SYSTOLIC)
def test_systolic_bp(value, score):
    assert score_systolic_bp(value) == score


@pytest.mark.parametrize(("value", "score"), PULSE)
def test_pulse(value, score):
    assert score_pulse(value) == score


@pytest.mark.parametrize(("value", "score"), TEMPERATURE)
def test_temperature(value, score):
    assert score_temperature(value) == score


def test_air_oxygen_and_consciousness():
    assert score_supplemental_oxygen(True) == 2 and score_supplemental_oxygen(False) == 0
    assert score_consciousness("A") == 0
    assert [score_consciousness(x) for x in "CVPU"] == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="ACVPU"):
        score_consciousness("X")


def test_continuous_values_are_rounded_as_charted():
    assert score_pulse(90.4) == 0 and score_pulse(90.5) == 1
    assert score_temperature(36.04) == 1 and score_temperature(36.05) == 0
    assert score_spo2(95.5) == 0 and score_spo2(95.4) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_invalid_values_raise_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="heart_rate_bpm"):
        score_pulse(bad)
    with pytest.raises(ValueError, match="spo2_pct"):
        score_spo2(bad if bad == bad else 101.0)


@pytest.mark.parametrize(
    ("total", "max_sub", "band"),
    [
        (0, 0, "low"),
        (4, 2, "low"),
        (3, 3, "low-medium"),
        (4, 3, "low-medium"),
        (5, 2, "medium"),
        (6, 3, "medium"),
        (7, 2, "high"),
        (12, 3, "high"),
    ],
)
def test_risk_bands(total, max_sub, band):
    assert risk_band(total, max_subscore=max_sub) == band


def test_full_news2_example_is_complete():
    v = Vitals(
        heart_rate_bpm=135,
        spo2_pct=90,
        temperature_c=39.5,
        systolic_bp_mmhg=95,
        respiration_rate_per_min=26,
        consciousness="V",
        supplemental_oxygen=True,
    )
    r = news2(v)
    assert r.complete and r.missing == ()
    assert r.total == 3 + 3 + 2 + 2 + 3 + 3 + 2 and r.band == "high"
    json.dumps(r.to_dict())


def test_missing_parameters_give_a_lower_bound_and_are_listed():
    r = news2(Vitals(heart_rate_bpm=75, spo2_pct=97))
    assert r.total == 0 and r.band == "low" and not r.complete
    assert set(r.missing) == {
        "respiration_rate",
        "supplemental_oxygen",
        "systolic_bp",
        "consciousness",
        "temperature",
    }
    r = news2(Vitals(heart_rate_bpm=38, spo2_pct=97))
    assert r.total == 3 and r.band == "low-medium"


def test_skin_temperature_needs_an_explicit_offset():
    v = Vitals(temperature_c=33.5, temperature_site="skin")
    r = news2(v)
    assert "temperature" in r.missing and r.total == 0
    r = news2(v, skin_to_core_offset_c=3.5)  # 37.0 core estimate
    (sub,) = r.subscores
    assert sub.value == pytest.approx(37.0) and sub.score == 0 and "skin" in sub.note
    assert news2(Vitals(temperature_c=33.5)).total == 3  # a core reading is scored as is


# ---------------------------------------------------------------------------------- properties
def _u_shaped_ok(score, normal_lo, normal_hi):
    """Sub-score does not decrease moving away from the normal range in either direction."""

    @given(st.floats(0, 300), st.floats(0, 300))
    def check(a, b):
        lo, hi = sorted((a, b))
        if hi <= normal_lo:  # both below normal: the lower value scores at least as much
            assert score(lo) >= score(hi)
        if lo >= normal_hi:
            assert score(hi) >= score(lo)

    check()


def test_monotone_away_from_normal():
    _u_shaped_ok(score_pulse, 51, 90)
    _u_shaped_ok(score_respiration_rate, 12, 20)
    _u_shaped_ok(score_systolic_bp, 111, 219)
    _u_shaped_ok(lambda x: score_temperature(x / 7.5), 36.1 * 7.5, 38.0 * 7.5)


@given(st.floats(0, 100), st.floats(0, 100))
def test_spo2_scale1_is_non_increasing(a, b):
    lo, hi = sorted((a, b))
    assert score_spo2(lo) >= score_spo2(hi)


@given(
    hr=st.floats(20, 220),
    spo2=st.floats(70, 100),
    sbp=st.floats(60, 250),
    rr=st.floats(4, 40),
    temp=st.floats(33, 42),
    o2=st.booleans(),
    alert=st.booleans(),
    worse_hr=st.floats(0, 60),
)
def test_total_and_band_are_consistent(hr, spo2, sbp, rr, temp, o2, alert, worse_hr):
    v = Vitals(
        heart_rate_bpm=hr,
        spo2_pct=spo2,
        systolic_bp_mmhg=sbp,
        respiration_rate_per_min=rr,
        temperature_c=temp,
        supplemental_oxygen=o2,
        consciousness="A" if alert else "C",
    )
    r = news2(v)
    assert r.total == sum(s.score for s in r.subscores) and 0 <= r.total <= 20
    assert r.band == risk_band(r.total, max_subscore=r.max_subscore)
    # a faster tachycardia (beyond 90) never lowers the total nor the band
    if hr > 90:
        r2 = news2(Vitals(**{**v.__dict__, "heart_rate_bpm": hr + worse_hr}))
        assert r2.total >= r.total
        assert RISK_BANDS.index(r2.band) >= RISK_BANDS.index(r.band)
    # adding a missing measurement never lowers the (lower-bound) total
    partial = news2(Vitals(heart_rate_bpm=hr, spo2_pct=spo2))
    assert partial.total <= r.total
