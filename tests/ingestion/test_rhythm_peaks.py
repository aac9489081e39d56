"""The rhythm input takes the beat pipeline's R peaks (no second detector on the same lead).

``StreamProcessor.rhythm_own_detector = True`` is the reference path (a detector of the rhythm
input's own, started after the warm-up). The two differ at most while the detectors settle at
a segment's start, so their rhythm verdicts and alarms agree; the full comparison on the MIT-BIH
AF records and CinC 2017 is ``benchmarks/rhythm_peaks/compare.py``
(docs/results/stream.md, 2026-12-07).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from heartline.edge.rhythm import shipped_rhythm_model_path
from heartline.ingestion.replay import ReplayProcessor, replay_signal, shipped_beat_model
from heartline.io.readers import read_ecg

pytestmark = pytest.mark.skipif(
    not shipped_rhythm_model_path().is_file(), reason="shipped rhythm model not installed"
)


class _Verdicts(ReplayProcessor):
    def __init__(self, *, own: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rhythm_own_detector = own
        self.verdicts: list[tuple[float, float, str, dict[str, float]]] = []

    def _engine_call(self, st: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "add_rhythm":
            self.verdicts.append((*args, kwargs["label"], dict(kwargs["probabilities"])))
        return super()._engine_call(st, method, *args, **kwargs)


@pytest.fixture(scope="module")
def beat_model():
    return shipped_beat_model()


@pytest.mark.parametrize(("record", "seconds"), [("mitdb/202", 150.0), ("cinc2017/A00004", 60.0)])
def test_pipeline_peaks_give_the_own_detectors_verdicts_and_alarms(
    data_dir, beat_model, record, seconds
):
    rec = read_ecg(data_dir / record)
    sig = rec.signal[: round(seconds * rec.fs)]
    out = {}
    for own in (True, False):
        proc = _Verdicts(own=own, model=beat_model)
        alarms = replay_signal(
            sig, fs=rec.fs, lead_names=tuple(rec.lead_names), record=record, processor=proc
        )
        st = next(iter(proc._devices.values()))
        # the pipeline-peaks path runs no detector of its own
        assert (st.rhythm_stream._det is None) is (not own)
        out[own] = (proc.verdicts, [a.to_dict() for a in alarms])
    (va, aa), (vb, ab) = out[True], out[False]
    assert len(va) >= 5 and [v[:2] for v in va] == [v[:2] for v in vb]
    assert [v[2] for v in va] == [v[2] for v in vb]
    for a, b in zip(va, vb, strict=True):
        pa = np.array([a[3].get(c, 0.0) for c in "NAO~"])
        pb = np.array([b[3].get(c, 0.0) for c in "NAO~"])
        assert np.abs(pa - pb).max() < 0.02
    assert aa == ab
