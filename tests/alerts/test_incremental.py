"""The engine's incremental state equals recomputation, and pruning changes no alert.

* The validity masks the engine keeps (``beat_ok``, ``rr_valid``, updated for new beats and new
  noisy spans, sliced on trimming) equal what a fresh :class:`BeatSeries` computes.
* Episodes that ``_apply`` would ignore are not built (:class:`Reported`): an engine that builds
  everything (``_prune = False``) reports the very same updates and ends in the same state.
* The rate rules' shortcut (no interval long/short enough) returns what the full rule returns.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import (
    BeatSeries,
    Reported,
    Severity,
    detect_bradycardia,
    detect_tachycardia,
    evaluate_rules,
)
from heartline.alerts.rules.events import _all_aami
from heartline.alerts.rules.rate import _rate_episodes, smoothed_rate
from heartline.data.aami import AAMI_CLASSES


def _stream(seed: int, n_calls: int) -> list[tuple]:
    """A random engine call sequence: beats (V/S runs, long gaps), noisy spans, VF, silences."""
    rng = np.random.default_rng(seed)
    calls: list[tuple] = []
    t = 0.0
    sample = 0
    for _ in range(n_calls):
        r = rng.uniform()
        if r < 0.08:  # a noisy span around now
            a = t + rng.uniform(-3.0, 1.0)
            calls.append(("add_quality", a, a + rng.uniform(0.2, 6.0)))
            continue
        if r < 0.11:  # VF for a while, no beats
            end = t + rng.uniform(1.0, 8.0)
            calls.append(("add_vf", t + 0.1, None if rng.uniform() < 0.3 else end))
            t = end
            continue
        if r < 0.15:  # silence: asystole / pause detection, closing by hold-off
            t += rng.uniform(1.0, 40.0)
            calls.append(("advance", t))
            continue
        mode = rng.choice(["regular", "vt", "bigeminy", "sveb", "slow", "fast", "af"])
        rows = []
        for k in range(int(rng.integers(1, 6))):
            if mode == "regular":
                rr, lab = rng.uniform(0.7, 0.9), "N"
            elif mode == "vt":
                rr, lab = rng.uniform(0.35, 0.5), "V"
            elif mode == "bigeminy":
                rr, lab = (0.5, "V") if k % 2 else (0.9, "N")
            elif mode == "sveb":
                rr, lab = rng.uniform(0.4, 0.8), rng.choice(["S", "N"])
            elif mode == "slow":
                rr, lab = rng.choice([1.19, 1.2, 1.21, 1.6, 2.5]), "N"
            elif mode == "fast":
                rr, lab = rng.choice([0.49, 0.5, 0.51, 0.38]), "N"
            else:
                rr, lab = rng.uniform(0.4, 1.2), "N"
            t += float(rr)
            sample += int(rr * 360)
            rows.append((t, sample, lab, float(rng.uniform(0.3, 1.0)), bool(rng.uniform() > 0.05)))
        calls.append(("add_beats", rows))
    return calls


def _series(beats: list[tuple]) -> BeatSeries:
    """A recorded ``add_beats`` call's (time, sample, label, confidence, ok) rows as a series."""
    t, idx, lab, conf, ok = zip(*beats, strict=True)
    return BeatSeries(
        np.array(t), np.array(lab), np.arange(len(t)), np.array(idx), np.array(conf), np.array(ok)
    )


def _run(
    calls: list[tuple], *, prune: bool, config: EngineConfig
) -> tuple[list, list, AlertEngine]:
    eng = AlertEngine("p", config=config)
    eng._prune = prune
    out = []
    masks = []
    for call in calls:
        name = call[0]
        if name == "add_beats":
            ups = eng.add_beats(_series(call[1]))
        elif name == "add_quality":
            ups = eng.add_quality(call[1], call[2], ok=False)
        elif name == "add_vf":
            ups = eng.add_vf(call[1], call[2])
        else:
            ups = eng.advance(call[1])
        out.append([(u.change, u.event.to_dict()) for u in ups])
        masks.append((eng._beat_ok.copy(), eng._rr_valid.copy()))
    return out, masks, eng


def _state(eng: AlertEngine, updates: dict) -> tuple:
    return (
        {k: (op.event, op.last_evidence_s, op.n_episodes, op.dirty) for k, op in eng._open.items()},
        dict(eng._last_closed_end),
        eng._seq,
        dict(updates),
    )


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_kept_masks_equal_recomputation_and_pruning_changes_nothing(seed: int) -> None:
    calls = _stream(seed, 160)
    config = EngineConfig(window_s=60.0, hold_off_s=10.0, af_every_beats=1)
    pruned, _masks, eng = _run(calls, prune=True, config=config)
    # the unpruned engine checks the lemma on every episode: covered (under the state before
    # its call) means _apply changes nothing
    apply = AlertEngine._apply
    reported_at_call: dict[int, dict] = {}
    seen = {"covered": 0}

    def checked(self, ep, updates, now):  # type: ignore[no-untyped-def]
        rep = reported_at_call.setdefault(id(updates), self._reported()).get(ep.kind)
        before = _state(self, updates)
        apply(self, ep, updates, now)
        if rep is not None and rep.covers(ep.severity, ep.start_s, ep.end_s):
            seen["covered"] += 1
            assert _state(self, updates) == before

    AlertEngine._apply = checked  # type: ignore[method-assign]
    try:
        full, _, ref = _run(calls, prune=False, config=config)
    finally:
        AlertEngine._apply = apply  # type: ignore[method-assign]
    assert seen["covered"] > 0
    assert pruned == full
    assert [e.to_dict() for e in eng.alerts()] == [e.to_dict() for e in ref.alerts()]
    # the masks after the last call equal a fresh series' (no memo carried over)
    w = eng.window()
    fresh = BeatSeries(
        w.time_s, w.label, w.beat_id, w.sample_idx, w.confidence, w.quality_ok, w.noisy_spans_s
    )
    np.testing.assert_array_equal(w.beat_ok(), fresh.beat_ok())
    np.testing.assert_array_equal(w.rr_valid(), fresh.rr_valid())


def test_kept_masks_after_every_call() -> None:
    calls = _stream(7, 300)
    config = EngineConfig(window_s=60.0)
    eng = AlertEngine("p", config=config)
    for call in calls:
        if call[0] == "add_beats":
            eng.add_beats(_series(call[1]))
        elif call[0] == "add_quality":
            eng.add_quality(call[1], call[2], ok=False, evaluate=False)
        elif call[0] == "add_vf":
            eng.add_vf(call[1], call[2])
        else:
            eng.advance(call[1])
        w = eng.window()
        fresh = BeatSeries(
            w.time_s,
            w.label,
            w.beat_id,
            w.sample_idx,
            w.confidence,
            w.quality_ok,
            w.noisy_spans_s,
        )
        np.testing.assert_array_equal(eng._beat_ok, fresh.beat_ok())
        np.testing.assert_array_equal(eng._rr_valid, fresh.rr_valid())
    assert eng._time.size > 20 and eng._noisy  # the stream exercised trimming and spans


def test_an_episode_seen_late_after_its_kind_closed_is_not_pruned() -> None:
    # a couplet at the end of the data is held back while ongoing; the first couplet's alert
    # closes during the silence; the next beat ends the second couplet 3 s after the first
    # alert's last evidence: it opens a new alert, with and without pruning
    def beats(rows: list[tuple[float, str]]) -> BeatSeries:
        t = np.array([r[0] for r in rows])
        return BeatSeries(
            t,
            [r[1] for r in rows],
            np.arange(t.size),
            (t * 360).astype(int),
            np.ones(t.size),
            np.ones(t.size, bool),
        )

    first = [(0.8 * i, "N") for i in range(1, 11)] + [(8.4, "V"), (8.8, "V"), (9.6, "N")]
    second = [(10.4, "N"), (11.2, "V"), (11.6, "V")]
    out = {}
    for prune in (True, False):
        eng = AlertEngine("p", config=EngineConfig(hold_off_s=10.0))
        eng._prune = prune
        ups = eng.add_beats(beats(first)) + eng.add_beats(beats(second))
        ups += eng.advance(25.0) + eng.add_beats(beats([(26.0, "N")]))
        out[prune] = [(u.change, u.event.to_dict()) for u in ups]
    assert out[True] == out[False]
    couplets = {e["id"] for _c, e in out[True] if e["kind"] == "v_couplet"}
    assert len(couplets) == 2


def test_reported_covers_only_what_apply_ignores() -> None:
    r = Reported(
        closed_end_s=10.0, open_last_s=50.0, open_until_s=80.0, open_severity=Severity.HIGH
    )
    assert r.covers(Severity.CRITICAL, 0.0, 10.0)  # ended under a closed alert
    assert r.covers(Severity.HIGH, 20.0, 50.0)  # inside the open alert, not worse
    assert not r.covers(Severity.CRITICAL, 20.0, 50.0)  # an escalation
    assert not r.covers(Severity.WARNING, 20.0, 50.5)  # new evidence
    assert not Reported().covers(Severity.INFO, 0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 200))
def test_rate_rule_shortcut_equals_the_full_rule(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.choice([1.2, 0.5, 0.8, 1.19, 0.505])
    rr = base * rng.uniform(0.97, 1.03, n) if rng.uniform() < 0.5 else np.full(n, base)
    t = np.cumsum(rr)
    s = BeatSeries(t, ["N"] * n, np.arange(n), np.arange(n), np.ones(n), rng.uniform(size=n) > 0.02)
    for threshold, below in ((50.0, True), (120.0, False)):
        smoothed = smoothed_rate(s, 10)
        cond = smoothed < threshold if below else smoothed > threshold
        kind = "bradycardia" if below else "tachycardia"
        ref = _rate_episodes(
            kind,
            s,
            cond,
            smoothed,
            min_duration_s=1.0,
            severity_of=lambda r: Severity.WARNING,
            describe=lambda r: "",
            extreme=lambda r: float(np.min(r)),
        )
        rule = detect_bradycardia if below else detect_tachycardia
        got = rule(s, threshold_bpm=threshold, high_bpm=threshold, min_duration_s=1.0)
        assert [(e.start_s, e.end_s, e.beat_ids) for e in got] == [
            (e.start_s, e.end_s, e.beat_ids) for e in ref
        ]


def test_evaluate_rules_with_reported_drops_only_covered_episodes() -> None:
    rng = np.random.default_rng(3)
    n = 300
    t = np.cumsum(rng.uniform(0.35, 1.4, n))
    s = BeatSeries(
        t,
        rng.choice(list("NNNVVS"), n),
        np.arange(n),
        np.arange(n),
        np.ones(n),
        rng.uniform(size=n) > 0.05,
        ((30.0, 33.0),),
    )
    every = evaluate_rules(s, now_s=float(t[-1]) + 4.0)
    assert every
    cut = float(np.median([e.end_s for e in every]))
    reported = {
        k: Reported(
            closed_end_s=cut,
            open_last_s=cut + 5,
            open_until_s=cut + 20,
            open_severity=Severity.WARNING,
        )
        for k in {e.kind for e in every}
    }
    again = BeatSeries(
        s.time_s, s.label, s.beat_id, s.sample_idx, s.confidence, s.quality_ok, s.noisy_spans_s
    )
    kept = evaluate_rules(again, now_s=float(t[-1]) + 4.0, reported=reported)
    want = [e for e in every if not reported[e.kind].covers(e.severity, e.start_s, e.end_s)]
    assert kept == tuple(want)
    assert len(kept) < len(every)


def test_label_check_equals_isin() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 2000):
        for pool in (list(AAMI_CLASSES), [*AAMI_CLASSES, "X"], ["N", "NN"]):
            raw = np.array(rng.choice(pool, n), dtype=str) if n else np.array([], dtype="<U1")
            assert _all_aami(raw) == bool(np.all(np.isin(raw, AAMI_CLASSES)))
