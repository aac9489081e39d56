"""The rhythm input hands over to the beat pipeline's R peaks (no second detector on the lead).

``StreamProcessor.rhythm_own_detector = True`` is the reference path (a detector of the rhythm
input's own, started after the warm-up). By default the rhythm input keeps its own detector
until the beat pipeline's peaks have been the same over the span it keeps, then takes those:
the verdicts and alarms must be the reference path's. The full comparison on the MIT-BIH AF
records and CinC 2017 is ``benchmarks/rhythm_peaks/compare.py`` (docs/results/stream.md,
2026-12-07).
"""

from __future__ import annotations

from typing import Any

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


# A00371: with the beat pipeline's peaks from the start (no handover) every window was "~"
# (unusable input) where the rhythm input's own detector gives "N"
@pytest.mark.parametrize(
    ("record", "seconds"),
    [("mitdb/202", 150.0), ("cinc2017/A00004", 60.0), ("cinc2017/A00371", 60.0)],
)
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
        out[own] = (proc.verdicts, [a.to_dict() for a in alarms], st.rhythm_stream)
    (va, aa, sa), (vb, ab, sb) = out[True], out[False]
    assert len(va) >= 4
    assert va == vb  # same windows, labels and probabilities
    assert aa == ab
    assert sa._det is not None and not sa.handed_over  # the reference path keeps its own
    if seconds >= 60 + 33:  # a long stream: the pipeline's peaks took over
        assert sb.handed_over and sb._det is None
