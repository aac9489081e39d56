"""The alert engine's speed-ups compute exactly what the straightforward code computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from heartline.alerts.engine import AlertEngine
from heartline.alerts.rules import (
    AF_METHODS,
    Beat,
    BeatSeries,
    detect_af_like,
    detect_frequent_ectopy,
    detect_ventricular_patterns,
    heart_rate,
)
from heartline.alerts.rules.af import _af_windows, _histogram16
from heartline.alerts.rules.events import _runs, json_value
from heartline.alerts.rules.rate import smoothed_rate
from heartline.alerts.rules.ventricular import _is_label


def _series(rng: np.random.Generator, n: int, n_spans: int) -> BeatSeries:
    t = np.cumsum(rng.uniform(0.3, 1.6, n))
    spans = [(float(a), float(a + rng.uniform(0.1, 4.0))) for a in rng.uniform(0, t[-1], n_spans)]
    return BeatSeries(
        t,
        rng.choice(list("NNNNSVFQ"), n),
        np.arange(n),
        np.arange(n) * 300,
        rng.uniform(0.2, 1.0, n),
        rng.uniform(size=n) > 0.1,
        tuple(spans),
    )


def test_cached_validity_equals_the_span_by_span_masks() -> None:
    rng = np.random.default_rng(0)
    for n, n_spans in [(0, 0), (1, 2), (2, 0), (50, 0), (150, 9), (300, 40)]:
        s = _series(rng, n, n_spans) if n else BeatSeries.empty()
        ok = s.quality_ok.copy()
        for a, b in s.noisy_spans_s:
            ok &= ~((s.time_s >= a) & (s.time_s < b))
        valid = ok[:-1] & ok[1:] if n > 1 else np.zeros(0, bool)
        for a, b in s.noisy_spans_s:
            valid &= ~((s.time_s[:-1] < b) & (s.time_s[1:] > a))
        np.testing.assert_array_equal(s.beat_ok(), ok)
        np.testing.assert_array_equal(s.rr_valid(), valid)
        assert s.beat_ok() is s.beat_ok()  # computed once
        with pytest.raises(ValueError):  # shared by the rules: read-only
            s.beat_ok()[:1] = False


def test_histogram16_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        x = rng.uniform(0.3, 1.5, rng.integers(2, 130))
        if rng.uniform() < 0.5:
            x = np.round(x, 2)  # values on bin edges
        lo, hi = float(x.min()), float(x.max())
        if hi > lo:
            ref = np.histogram(x, bins=16, range=(lo, hi))[0]
            np.testing.assert_array_equal(_histogram16(x, lo, hi), ref)


@pytest.mark.parametrize("method", sorted(AF_METHODS))
def test_batched_af_windows_equal_window_by_window(method) -> None:
    rng = np.random.default_rng(2)
    classify = AF_METHODS[method]
    for trial in range(60):
        irregular = trial % 2 == 0
        rr = rng.uniform(0.4, 1.2, 200) if irregular else 0.8 + rng.normal(0, 0.01, 200)
        if trial % 3 == 0:
            rr = np.round(rr, 2)
        width = int(rng.choice([16, 32, 64]))
        starts = list(range(0, rr.size - width + 1, 8))
        got = _af_windows(rr, starts, width, method, 0.1, 0.7)
        assert got is not None
        for (is_af, f), s in zip(got, starts, strict=True):
            ref_af, ref_f = classify(rr[s : s + width], nrmssd_min=0.1, entropy_min=0.7)
            assert is_af == ref_af
            if f is not None:  # features are kept for the windows that pass the first tests
                assert f == ref_f
            else:
                assert not ref_af


def test_af_rule_falls_back_for_a_user_method(monkeypatch) -> None:
    calls = []

    def always(rr, *, nrmssd_min, entropy_min):
        calls.append(rr.size)
        return AF_METHODS["rmssd_tpr"](rr, nrmssd_min=nrmssd_min, entropy_min=entropy_min)

    monkeypatch.setitem(AF_METHODS, "custom", always)  # type: ignore[arg-type]
    s = _series(np.random.default_rng(3), 200, 0)
    assert _af_windows(s.rr_s, [0, 8], 64, "custom", 0.1, 0.7) is None
    detect_af_like(s, method="custom")
    assert calls and set(calls) == {64}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_alert_json_equals_the_full_conversion() -> None:
    """Episode evidence is converted once; AlertEvent.to_dict gives what a full pass gives."""
    eng = AlertEngine("p")
    beats = [Beat(i * 0.8, i * 288, "N") for i in range(20)]
    beats += [Beat(16.0 + 0.4 * k, 5760 + 144 * k, "V", 0.91234567) for k in range(5)]
    beats += [Beat(18.0 + 0.8 * k, 6480 + 288 * k, "N") for k in range(10)]
    ups = eng.add_beats(beats) + eng.advance(60.0)
    assert ups
    for u in ups:
        d = u.event.to_dict()
        full = json_value(_plain(dict(u.event.evidence)))
        assert d["evidence"] == full
        assert json.loads(json.dumps(d)) == d


def test_deferred_quality_and_vf_run_the_rules_on_the_next_call() -> None:
    ref, lazy = AlertEngine("p"), AlertEngine("p")
    beats = [Beat(i * 0.8, i * 288, "N") for i in range(30)]
    for e in (ref, lazy):
        e.add_beats(beats)
    expected = ref.add_quality(24.5, 30.0, ok=False)
    expected += ref.add_vf(31.0, None)
    assert lazy.add_quality(24.5, 30.0, ok=False, evaluate=False) == []
    assert lazy.add_vf(31.0, None, evaluate=False) == []
    assert lazy.now_s == ref.now_s
    got = lazy.advance(lazy.now_s)
    kinds = lambda ups: sorted((u.event.kind, u.event.severity.value) for u in ups)  # noqa: E731
    assert kinds(got) == kinds(expected) and {k for k, _ in kinds(got)} >= {"vf", "signal_quality"}
    # the same alerts (one evaluation instead of two: fewer intermediate revisions)
    state = lambda e: [(a.id, a.kind, a.severity, a.start_s, a.end_s) for a in e.alerts()]  # noqa: E731
    assert state(lazy) == state(ref)


def test_af_rule_every_few_beats_raises_the_same_alert() -> None:
    """The AF-like rule runs every af_step_beats new beats: same alert, fewer revisions."""
    from heartline.alerts.engine import EngineConfig

    rng = np.random.default_rng(4)
    rr = np.r_[np.full(60, 0.8), rng.uniform(0.35, 1.1, 150), np.full(80, 0.8)]
    t = np.cumsum(rr)
    beats = [Beat(float(x), int(x * 360), "N") for x in t]
    every = AlertEngine("p", config=EngineConfig(af_every_beats=1))
    cadenced = AlertEngine("p")
    assert cadenced.config.af_cadence_beats == 8
    n_up = {"every": 0, "cadenced": 0}
    for second in range(int(t[-1]) + 40):  # fed one second at a time, as the processor does
        chunk = [b for b in beats if second <= b.time_s < second + 1]
        for name, eng in (("every", every), ("cadenced", cadenced)):
            ups = eng.add_beats(chunk) if chunk else eng.advance(float(second))
            n_up[name] += len(ups)
    state = lambda e: [(a.id, a.kind, a.severity, a.start_s, a.end_s) for a in e.alerts()]  # noqa: E731
    assert "af_like" in {a.kind for a in every.alerts()}
    assert state(cadenced) == state(every)
    assert n_up["cadenced"] < n_up["every"]
    with pytest.raises(ValueError, match="af_every_beats"):
        EngineConfig(af_every_beats=0)


# -- the rules' vectorised paths against the loops they replaced ------------------------------
def _ref_chain_ok(series: BeatSeries, step: int, min_confidence: float, max_rr_s: float):
    """Links between consecutive V beats, pair by pair (the loop the vectorised code replaced)."""
    import itertools

    isv = _is_label(series, "V", min_confidence)
    conducted = np.isin(series.label, ("N", "S")) & series.beat_ok()
    rr_ok = series.rr_valid() & (series.rr_s <= max_rr_s)
    vpos = np.flatnonzero(isv)
    bad_beat = np.concatenate([[0], np.cumsum(~conducted)]).tolist()
    bad_rr = np.concatenate([[0], np.cumsum(~rr_ok)]).tolist()
    return [
        q - p == step and bad_beat[q] - bad_beat[p + 1] == 0 and bad_rr[q] - bad_rr[p] == 0
        for p, q in itertools.pairwise(vpos.tolist())
    ], vpos


def _ref_member(t: np.ndarray, window_s: float, limit: float):
    first_in = np.searchsorted(t, t - window_s, side="right")
    counts = np.arange(t.size) - first_in + 1
    hot = counts > limit * window_s / 60.0
    member = np.zeros(t.size, dtype=bool)
    for j in np.flatnonzero(hot):
        member[first_in[j] : j + 1] = True
    return member


def _runs_ref(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 400), st.integers(0, 12))
# a PVC on the 60 s window edge: the reference measured the window on the drawn times, the rule
# on the sample-rounded times it is given (10 beats against 11); both now use the latter
@example(seed=592696, n=14, n_spans=10)
def test_vectorised_rule_paths_equal_the_loops(seed: int, n: int, n_spans: int) -> None:
    rng = np.random.default_rng(seed)
    s = _series(rng, n, n_spans) if n else BeatSeries.empty()
    # smoothed rate of the rate rules == heart_rate's, bit for bit (NaN where too few intervals)
    for w in (1, 4, 10):
        ref = heart_rate(s, window_beats=w, min_intervals=min(4, w)).smoothed_bpm
        np.testing.assert_array_equal(smoothed_rate(s, w), ref)
    # runs of a boolean mask
    mask = rng.uniform(size=n) < 0.4
    assert _runs(mask) == _runs_ref(mask)
    # bigeminy/trigeminy links
    if n >= 3:
        isv = _is_label(s, "V", 0.5)
        vpos = np.flatnonzero(isv)
        ref2, _ = _ref_chain_ok(s, 2, 0.5, 2.0)
        ref3, _ = _ref_chain_ok(s, 3, 0.5, 2.0)
        eps = detect_ventricular_patterns(s, min_cycles=2, min_confidence=0.5)
        want = []
        for kind, ref in (("ventricular_bigeminy", ref2), ("ventricular_trigeminy", ref3)):
            for a, b in _runs_ref(np.asarray(ref, dtype=bool)):
                want.append((kind, int(vpos[a : b + 1].size)))
        got = sorted((e.kind, e.values["cycles"]) for e in eps)
        assert got == sorted(want)
    # frequent-ectopy membership
    t_drawn = np.sort(rng.uniform(0, 120, rng.integers(0, 60)))
    samples = np.rint(t_drawn * 360).astype(int)
    if not np.all(np.diff(samples) > 0):
        return  # two beats on one sample: not a series
    ectopic = BeatSeries.from_samples(samples, ["V"] * t_drawn.size, fs=360.0)
    t = ectopic.time_s  # the window is measured on the times the rule sees, in both
    for limit in (1.0, 6.0):
        ref = _ref_member(t, 60.0, limit)
        got = [
            (int(e.beat_ids[0]), e.values["n_beats"])
            for e in detect_frequent_ectopy(ectopic, pvc_per_min=limit)
        ]
        want = [(a, b - a) for a, b in _runs_ref(ref)]
        assert got == want
