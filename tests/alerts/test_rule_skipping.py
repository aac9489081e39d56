"""Skipping unchanged rules and caching AF-window verdicts changes no alert.

The engine skips the ventricular, frequent-ectopy and signal-quality rules while nothing they
depend on changed since they last ran (``AlertEngine._stale``), and keeps the AF-like rule's
window verdicts (``_af_cache``). ``_incremental = False`` is the reference path (every rule on
every evaluation, every AF window classified afresh): both must return the same updates, call
by call, field by field, and end in the same state, on random call sequences (V runs, bigeminy,
SVEB bursts, AF-like stretches, noisy beats and spans, VF, silences, vitals; long enough for the
120 s window to slide) and on MIT-BIH records replayed in 1 s chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import BeatSeries, RuleConfig, detect_af_like, evaluate_rules
from heartline.alerts.rules.af import (
    _af_windows,
    _af_windows_cached,
    _histogram16,
    _histogram16_rows,
)
from heartline.io import read_annotations

_MODES = ("regular", "vt", "couplet", "bigeminy", "trigeminy", "sveb", "af", "noisy")


def _calls(seed: int, n_calls: int) -> list[tuple]:
    """A random engine call sequence in the stream processor's style (batches of a few beats)."""
    rng = np.random.default_rng(seed)
    calls: list[tuple] = []
    t, sample, mode, k = 0.0, 0, "regular", 0
    for _ in range(n_calls):
        r = rng.uniform()
        if r < 0.05:  # a noisy span around now, rules deferred as the processor does
            a = t + rng.uniform(-4.0, 1.0)
            calls.append(("add_quality", a, a + rng.uniform(0.1, 6.0), bool(rng.uniform() < 0.5)))
            continue
        if r < 0.07:  # VF: no beats for a while
            end = t + rng.uniform(1.0, 6.0)
            calls.append(("add_vf", t + 0.1, None if rng.uniform() < 0.3 else end))
            t = end
            continue
        if r < 0.10:  # silence
            t += rng.uniform(0.5, 35.0)
            calls.append(("advance", t))
            continue
        if r < 0.13:
            calls.append(("add_vitals", t, float(rng.choice([45.0, 80.0, 135.0]))))
            continue
        if rng.uniform() < 0.15:
            mode = str(rng.choice(_MODES))
        rows = []
        for _ in range(int(rng.integers(1, 4))):
            k += 1
            ok = True
            if mode == "vt":
                rr, lab = rng.uniform(0.3, 0.7), "V"
            elif mode == "couplet":
                rr, lab = (0.45, "V") if k % 5 in (1, 2) else (0.8, "N")
            elif mode == "bigeminy":
                rr, lab = (0.5, "V") if k % 2 else (0.9, "N")
            elif mode == "trigeminy":
                rr, lab = (0.5, "V") if k % 3 == 0 else (0.85, "N")
            elif mode == "sveb":
                rr, lab = rng.uniform(0.35, 0.8), str(rng.choice(["S", "S", "N"]))
            elif mode == "af":
                rr, lab = rng.uniform(0.35, 1.3), str(rng.choice(["N"] * 9 + ["V"]))
            elif mode == "noisy":
                rr, lab = rng.uniform(0.6, 1.0), str(rng.choice(["N", "V", "Q"]))
                ok = bool(rng.uniform() < 0.4)
            else:
                rr, lab = rng.uniform(0.75, 0.95), "N"
            t += float(rr)
            sample += int(rr * 360)
            rows.append((t, sample, lab, float(rng.uniform(0.4, 1.0)), ok))
        calls.append(("add_beats", rows))
    return calls


def _series(rows: list[tuple]) -> BeatSeries:
    t, idx, lab, conf, ok = zip(*rows, strict=True)
    return BeatSeries(
        np.array(t), np.array(lab), np.arange(len(t)), np.array(idx), np.array(conf), np.array(ok)
    )


def _play(calls: list[tuple], *, incremental: bool, config: EngineConfig) -> tuple[list, tuple]:
    eng = AlertEngine("p", config=config)
    eng._incremental = incremental
    out = []
    for call in calls:
        name = call[0]
        if name == "add_beats":
            ups = eng.add_beats(_series(call[1]))
        elif name == "add_quality":
            ups = eng.add_quality(call[1], call[2], ok=False, evaluate=call[3])
        elif name == "add_vf":
            ups = eng.add_vf(call[1], call[2])
        elif name == "add_vitals":
            ups = eng.add_vitals(time_s=call[1], heart_rate_bpm=call[2])
        else:
            ups = eng.advance(call[1])
        out.append([(u.change, u.event.to_dict()) for u in ups])
    out.append([(u.change, u.event.to_dict()) for u in eng.flush_reports()])
    state = (
        [a.to_dict() for a in eng.alerts()],
        {
            k: (op.last_evidence_s, op.n_episodes, op.dirty, op.reported_s)
            for k, op in eng._open.items()
        },
        dict(eng._last_closed_end),
        eng._seq,
        eng.dropped_beats,
    )
    return out, state


_CONFIGS = {
    # every extension reported: a skipped rule that mattered would show in the evidence
    "report_all": EngineConfig(report_interval_s=0.0),
    "default": EngineConfig(),
    # a confidence floor (V beats that do not count), AF windows every few beats, short hold-off
    "strict": EngineConfig(
        rules=RuleConfig(min_confidence=0.6, af_window_beats=32, af_step_beats=4),
        hold_off_s=5.0,
        report_interval_s=0.0,
        af_every_beats=3,
    ),
}


@pytest.mark.parametrize("config", sorted(_CONFIGS))
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_skipping_rules_returns_the_reference_updates(config: str, seed: int) -> None:
    calls = _calls(seed, 500)
    cfg = _CONFIGS[config]
    ref, ref_state = _play(calls, incremental=False, config=cfg)
    got, got_state = _play(calls, incremental=True, config=cfg)
    for i, (a, b) in enumerate(zip(got, ref, strict=True)):
        assert a == b, f"call {i} ({calls[i][0] if i < len(calls) else 'flush'})"
    assert got_state == ref_state


def test_rules_are_skipped_on_such_a_stream() -> None:
    """The fast path is taken (else the equality above would prove nothing)."""
    calls = _calls(7, 400)
    eng = AlertEngine("p", config=EngineConfig())
    skipped = 0
    import heartline.alerts.engine as engine_mod

    real = engine_mod.evaluate_rules

    def spy(series, **kw):
        nonlocal skipped
        skipped += len(set(kw["skip"]) - {"af_like"})
        return real(series, **kw)

    engine_mod.evaluate_rules = spy
    try:
        for call in calls:
            if call[0] == "add_beats":
                eng.add_beats(_series(call[1]))
    finally:
        engine_mod.evaluate_rules = real
    assert skipped > 0


def test_skip_validation() -> None:
    s = BeatSeries.from_samples(range(0, 360 * 60, 288), ["N"] * 75, fs=360.0)
    with pytest.raises(ValueError, match="one rule"):
        evaluate_rules(s, skip=("vt",))
    with pytest.raises(ValueError, match="unknown or unskippable"):
        evaluate_rules(s, skip=("pause",))
    assert evaluate_rules(s, skip=("vt", "v_run", "v_couplet", "frequent_sveb")) == ()


# ------------------------------------------------------------------------- AF window cache
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(64, 400),
    method=st.sampled_from(["dash2009", "rmssd_tpr"]),
)
def test_cached_af_windows_equal_the_batch(seed: int, n: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    rr = rng.choice([rng.uniform(0.4, 1.2, n), np.round(rng.uniform(0.5, 1.0, n), 2)])
    cache: dict = {}
    for _ in range(4):  # overlapping calls: some windows come from the cache
        starts = sorted(set(rng.integers(0, n - 63, int(rng.integers(1, 12))).tolist()))
        ref = _af_windows(rr, starts, 64, method, 0.1, 0.7)
        got = _af_windows_cached(cache, rr, starts, 64, method, 0.1, 0.7)
        assert got == ref
        assert len(cache) <= len(starts) + 1


def test_af_cache_is_keyed_by_the_parameters() -> None:
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.4, 1.2, 300))
    s = BeatSeries.from_samples((t * 360).astype(int), ["N"] * 300, fs=360.0)
    cache: dict = {}
    for entropy_min in (0.7, 0.99, 0.7):
        ref = detect_af_like(s, entropy_min=entropy_min)
        assert detect_af_like(s, entropy_min=entropy_min, window_cache=cache) == ref
    assert detect_af_like(s, entropy_min=0.99) != detect_af_like(s, entropy_min=0.7)


# ------------------------------------------------------------------------------ MIT-BIH
def _record_calls(mitdb_dir, record: str, minutes: float) -> list[tuple]:
    """The record's annotated beats in 1 s batches, with noise spans and VF as the processor sends."""
    ann = read_annotations(mitdb_dir / record)
    s = BeatSeries.from_annotations(ann)
    rng = np.random.default_rng(int(record))
    end = min(float(s.time_s[-1]), 60.0 * minutes)
    notes = [
        (i / ann.fs, n.strip("\x00").strip())
        for i, n in zip(ann.sample_idx, ann.aux_note, strict=True)
    ]
    vf = [t for t, n in notes if n.startswith("(VF")]
    calls: list[tuple] = []
    for t in np.arange(1.0, end + 1.0, 1.0):
        m = (s.time_s >= t - 1.0) & (s.time_s < t)
        rows = [
            (
                float(s.time_s[i]),
                int(s.sample_idx[i]),
                str(s.label[i]),
                float(rng.uniform(0.5, 1.0)),
                True,
            )
            for i in np.flatnonzero(m)
        ]
        if rng.uniform() < 0.03:
            calls.append(("add_quality", t - 2.0, t - 2.0 + rng.uniform(0.5, 4.0), False))
        if any(t - 1.0 <= v < t for v in vf):
            calls.append(("add_vf", t - 0.5, t + 3.0))
        if rows:
            calls.append(("add_beats", rows))
        else:
            calls.append(("advance", float(t)))
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("record", ["203", "207", "208", "210"])
def test_mitdb_replay_skipping_equals_reference(mitdb_dir, record: str) -> None:
    calls = _record_calls(mitdb_dir, record, minutes=12.0)
    cfg = EngineConfig(report_interval_s=0.0)
    ref, ref_state = _play(calls, incremental=False, config=cfg)
    got, got_state = _play(calls, incremental=True, config=cfg)
    assert sum(len(u) for u in ref) > 10  # the record raises alerts
    for i, (a, b) in enumerate(zip(got, ref, strict=True)):
        assert a == b, f"record {record}, call {i}"
    assert got_state == ref_state


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(1, 20), width=st.integers(2, 80))
def test_row_histograms_equal_histogram16(seed: int, n_rows: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.choice(
        [
            rng.uniform(0.3, 1.5, (n_rows, width)),
            np.round(rng.uniform(0.3, 1.5, (n_rows, width)), 2),  # ties, values on edges
            np.full((n_rows, width), 0.8),  # max == min
        ]
    )
    if n_rows > 1:
        rows[0] = np.round(np.linspace(0.5, 1.3, width), 3)
    got = _histogram16_rows(rows)
    for r in range(n_rows):
        lo, hi = float(np.min(rows[r])), float(np.max(rows[r]))
        if hi > lo:
            np.testing.assert_array_equal(got[r], _histogram16(rows[r], lo, hi))
            np.testing.assert_array_equal(got[r], np.histogram(rows[r], bins=16, range=(lo, hi))[0])
        else:
            assert r not in got
