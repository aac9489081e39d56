"""Throttled "extended" reports: same alerts, same final rows, bounded staleness while open."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartline.alerts.engine import AlertEngine, EngineConfig
from heartline.alerts.rules import Beat


def _stream(
    seed: int, seconds: int = 240
) -> list[tuple[float, list[Beat], list[tuple[float, float]]]]:
    """One-second chunks of beats (runs of V, ectopy, pauses) and noisy spans."""
    rng = np.random.default_rng(seed)
    t, chunks, k = 0.0, [], 0
    for sec in range(1, seconds + 1):
        beats = []
        while t < sec:
            mode = (k // 40) % 4
            p_v = (0.05, 0.4, 0.15, 0.8)[mode]
            label = "V" if rng.uniform() < p_v else ("S" if rng.uniform() < 0.1 else "N")
            beats.append(Beat(t, int(t * 360), label, 1.0, bool(rng.uniform() > 0.03)))
            t += float(rng.uniform(0.35, 1.1)) + (2.6 if rng.uniform() < 0.01 else 0.0)
            k += 1
        spans = [(sec - 1.0, sec - 0.2)] if rng.uniform() < 0.04 else []
        chunks.append((float(sec), beats, spans))
    return chunks


def _run(chunks, interval: float):
    eng = AlertEngine("p", config=EngineConfig(report_interval_s=interval))
    stored: dict[str, dict] = {}
    snapshots: dict[str, list[tuple[float, dict]]] = {}  # every change the engine made
    for now, beats, spans in chunks:
        for a, b in spans:
            eng.add_quality(a, b, ok=False, evaluate=False)
        ups = eng.add_beats(beats, now_s=now) if beats else eng.advance(now)
        for u in ups:
            d = u.event.to_dict()
            stored[d["id"]] = d  # the processor's upsert
        for ev in eng.alerts():
            d = ev.to_dict()
            hist = snapshots.setdefault(d["id"], [])
            if not hist or hist[-1][1] != d:
                hist.append((now, d))
    return eng, stored, snapshots


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "revision"}


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000))
def test_throttled_reports_keep_alerts_and_final_rows(seed: int) -> None:
    chunks = _stream(seed)
    full, stored_full, _ = _run(chunks, 0.0)
    thr, stored_thr, snaps = _run(chunks, 10.0)
    # the engine's state is the same alert for alert
    assert [_strip(e.to_dict()) for e in full.alerts()] == [
        _strip(e.to_dict()) for e in thr.alerts()
    ]
    assert set(stored_full) == set(stored_thr)
    end = chunks[-1][0]
    for alert_id, row in stored_full.items():
        got = stored_thr[alert_id]
        if row["end_s"] is not None:  # closed: the stored row is the final state exactly
            assert _strip(got) == _strip(row)
            continue
        # open: the stored row is the engine's state at a time at most 10 s (+1 call) ago
        hist = snaps[alert_id]
        times = [t for t, d in hist if _strip(d) == _strip(got)]
        assert times, "stored row is no state the engine had"
        later = [t for t, d in hist if t > times[-1]]
        assert not later or end - min(later) <= 10.0 + 1.0
        assert got["severity"] == row["severity"] and got["start_s"] == row["start_s"]


def test_throttling_reports_far_fewer_extensions() -> None:
    chunks = _stream(3)
    n = {}
    for interval in (0.0, 10.0):
        eng = AlertEngine("p", config=EngineConfig(report_interval_s=interval))
        ups = []
        for now, beats, spans in chunks:
            for a, b in spans:
                eng.add_quality(a, b, ok=False, evaluate=False)
            ups += eng.add_beats(beats, now_s=now) if beats else eng.advance(now)
        n[interval] = ups
    kinds = lambda ups, c: sorted((u.event.kind, u.event.start_s) for u in ups if u.change == c)  # noqa: E731
    for change in ("opened", "escalated", "closed"):  # never delayed
        assert kinds(n[0.0], change) == kinds(n[10.0], change)
    ext0 = sum(u.change == "extended" for u in n[0.0])
    ext10 = sum(u.change == "extended" for u in n[10.0])
    assert ext0 > 50 and ext10 <= ext0 / 2


def test_report_interval_validation() -> None:
    with pytest.raises(ValueError, match="report_interval_s"):
        EngineConfig(report_interval_s=-1.0)


def test_flush_reports_brings_every_open_row_up_to_date() -> None:
    chunks = _stream(3, seconds=150)
    eng, stored, _ = _run(chunks, 10.0)
    pending = {op.event.id for op in eng._open.values() if op.dirty}
    flushed = eng.flush_reports()
    assert {u.event.id for u in flushed} == pending and pending
    assert all(u.change == "extended" for u in flushed)
    for u in flushed:
        stored[u.event.id] = u.event.to_dict()
    # after the flush every open alert's stored row is the engine's current state
    for ev in eng.active_alerts():
        assert _strip(stored[ev.id]) == _strip(ev.to_dict())
    assert eng.flush_reports() == []
