"""VF episodes from the detector become one critical alarm and no false 'pause' alarm."""

from __future__ import annotations

import numpy as np

from heartline.alerts.engine import AlertEngine
from heartline.alerts.rules import Beat


def _beats(start_s: float, stop_s: float, *, rr_s: float = 0.8, fs: float = 360.0) -> list[Beat]:
    return [
        Beat(time_s=float(t), sample_idx=int(t * fs), label="N")
        for t in np.arange(start_s, stop_s, rr_s)
    ]


def _kinds(engine: AlertEngine) -> set[str]:
    return {a.kind for a in engine.alerts()}


def test_gap_without_vf_is_a_pause():
    eng = AlertEngine("p1")
    eng.add_beats(_beats(0, 30))
    eng.add_beats(_beats(45, 70))
    assert "pause" in _kinds(eng)
    assert "vf" not in _kinds(eng)


def test_vf_span_raises_vf_not_pause():
    eng = AlertEngine("p1")
    eng.add_beats(_beats(0, 30))
    ups = eng.add_vf(30.5, None, now_s=36.0)
    opened = [u for u in ups if u.change == "opened"]
    assert [u.event.kind for u in opened] == ["vf"]
    assert opened[0].event.severity == "critical" and opened[0].event.ongoing
    eng.add_vf(30.5, 44.5)
    eng.add_beats(_beats(45, 100))  # the alarm closes after its hold-off (30 s) with beats back
    eng.advance(100.0)
    kinds = _kinds(eng)
    assert "vf" in kinds and "pause" not in kinds
    vf = [a for a in eng.alerts() if a.kind == "vf"]
    assert len(vf) == 1 and not vf[0].ongoing
