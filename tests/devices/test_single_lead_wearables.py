"""Single-lead wearables in the simulator (issue 19, item 5): one lead at the device's own rate,
CinC 2017 AliveCor recordings, and the demo's AF wearable raising the AF alarm live."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from heartline.devices.simulator import (
    NoiseSpec,
    RecordSpec,
    VirtualWearable,
    WearableConfig,
    parse_record_spec,
)
from heartline.ingestion.live import ARRHYTHMIA_RECORDS


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("201", RecordSpec("mitdb", "201")),
        ("221:MLII@250", RecordSpec("mitdb", "221", "MLII", 250.0)),
        ("cinc2017/A00004", RecordSpec("cinc2017", "A00004")),
        ("mitdb/119:V1", RecordSpec("mitdb", "119", "V1")),
    ],
)
def test_record_specs(spec, expected):
    assert parse_record_spec(spec) == expected


@pytest.mark.parametrize("spec", ["ptb/1", "201@50", "201@fast", "cinc2017/", ":MLII"])
def test_bad_record_specs_are_refused_clearly(spec):
    with pytest.raises(ValueError, match="record spec"):
        WearableConfig(device_id="w1", record=spec)


def _frames(spec: str, n: int, data_dir, **kw):
    w = VirtualWearable(
        WearableConfig(device_id="w1", record=spec, start_offset_s=0.0, payload_version=2, **kw),
        start_time_s=1_700_000_000.0,
        data_dir=data_dir,
    )
    return [sf.frame for sf in itertools.islice(w.frames(), n)]


def test_mitdb_lead_resampled_to_the_patch_rate(data_dir):
    from scipy.signal import resample_poly

    from heartline.io import read_record

    frames = _frames("221:MLII@250", 3, data_dir)
    assert [f.fs_hz for f in frames] == [250.0] * 3
    assert all(f.lead_names == ["MLII"] and f.n_samples == 250 for f in frames)
    got = np.concatenate([f.signal_mv()[:, 0] for f in frames])
    rec = read_record(str(data_dir / "mitdb" / "221"))
    ref = resample_poly(rec.signal[:, 0], 25, 36)[:750]
    # 11-bit ADC at 200 counts/mV: within one count, except where the ADC saturates
    assert np.mean(np.abs(got - ref) <= 0.5 / 200 + 1e-9) > 0.99


def test_cinc_record_at_its_own_rate(data_dir):
    frames = _frames("cinc2017/A00004", 40, data_dir)  # 30 s record: loops
    assert frames[0].fs_hz == 300.0 and frames[0].lead_names == ["ECG"]
    assert all(f.seq == i for i, f in enumerate(frames))


def test_noise_on_a_resampled_wearable(data_dir):
    frames = _frames("119:MLII@250", 2, data_dir, noise=NoiseSpec("em", 6.0))
    assert frames[0].fs_hz == 250.0 and np.isfinite(frames[0].signal_mv()).all()


def test_the_demo_has_a_single_lead_af_wearable_that_raises_the_af_alarm(data_dir):
    """``make run`` (heartline serve --patients 8) hands out ARRHYTHMIA_RECORDS in turn."""
    from heartline.ingestion.replay import ReplayProcessor, shipped_beat_model

    single = [r for r in ARRHYTHMIA_RECORDS[:8] if parse_record_spec(r).lead is not None]
    assert single == ["210:MLII@250"]
    proc = ReplayProcessor(model=shipped_beat_model())
    frames = _frames(single[0], 90, data_dir)
    for k in range(0, len(frames), 5):
        proc.feed(frames[k : k + 5])
    assert proc._devices["w1"].beat_model.n_leads == 1
    kinds = {ev.kind for ev in proc.alerts()}
    assert "af_like" in kinds, kinds
