"""parse_frame: the valid frame round-trips; every bad input is refused with the right reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heartline.ingestion.payloads import (
    REJECT_REASONS,
    Frame,
    FrameRejected,
    VitalReading,
    parse_frame,
)

T0 = 1_700_000_000.0


def good(**changes) -> dict:
    d = {
        "v": 1,
        "device_id": "dev-1",
        "seq": 7,
        "start_time_s": T0,
        "fs_hz": 250.0,
        "duration_s": 1.0,
        "lead_names": ["MLII", "V5"],
        "adc_bits": 11,
        "adc_gain": [200.0, 200.0],
        "adc_baseline": [1024, 1024],
        "ecg": [[1024] * 250, [1000] * 250],
        "vitals": [{"time_s": T0 + 0.5, "hr_bpm": 72.0, "spo2_pct": 97.0}],
    }
    d.update(changes)
    return d


def raw(d: dict) -> bytes:
    return json.dumps(d).encode()


def rejected(payload: bytes, **kw) -> FrameRejected:
    with pytest.raises(FrameRejected) as info:
        parse_frame(payload, **kw)
    assert info.value.reason in REJECT_REASONS
    return info.value


def test_valid_frame_roundtrip():
    f = parse_frame(raw(good()))
    assert (f.device_id, f.seq, f.n_leads, f.n_samples) == ("dev-1", 7, 2, 250)
    assert f.counts().shape == (250, 2) and f.counts().dtype == np.int16
    np.testing.assert_allclose(f.signal_mv()[:, 1], -24 / 200)
    assert f.vitals[0].values() == {"hr_bpm": 72.0, "spo2_pct": 97.0}
    assert parse_frame(f.to_json()) == f
    assert f.start_time.timestamp() == T0


def test_from_counts_matches_parse():
    counts = np.full((250, 2), 1024, dtype=np.int16)
    f = Frame.from_counts(
        counts,
        device_id="dev-1",
        seq=0,
        start_time_s=T0,
        fs_hz=250,
        lead_names=["I", "II"],
        adc_bits=11,
        adc_gain=[200, 200],
        adc_baseline=[1024, 1024],
    )
    assert f.duration_s == 1.0 and parse_frame(f.to_json()) == f
    with pytest.raises(FrameRejected) as info:
        Frame.from_counts(
            counts,
            device_id="dev-1",
            seq=0,
            start_time_s=T0,
            fs_hz=10,
            lead_names=["I", "II"],
            adc_bits=11,
            adc_gain=[200, 200],
            adc_baseline=[1024, 1024],
        )
    assert info.value.reason == "bad_fs"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[1, 2, 3]", "malformed_json"),
        (b"", "malformed_json"),
        (b'"a string"', "malformed_json"),
    ],
)
def test_malformed_json(payload, reason):
    assert rejected(payload).reason == reason


@pytest.mark.parametrize(
    "field",
    [
        "device_id",
        "seq",
        "start_time_s",
        "fs_hz",
        "duration_s",
        "lead_names",
        "adc_bits",
        "adc_gain",
        "adc_baseline",
        "ecg",
    ],
)
def test_missing_field(field):
    d = good()
    del d[field]
    err = rejected(raw(d))
    assert err.reason == "schema" and field in err.detail


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": "7"},
        {"seq": -1},
        {"seq": 1.5},
        {"unexpected": 1},
        {"v": 2},
        {"device_id": "a/b"},
        {"device_id": "dev+#"},
        {"device_id": ""},
        {"lead_names": []},
        {"ecg": [[1024.5] * 250, [1000] * 250]},
        {"ecg": [["1024"] * 250, [1000] * 250]},
        {"vitals": [{"time_s": T0}]},
        {"vitals": [{"time_s": T0, "hr_bpm": 70, "pulse": 1}]},
        {"vitals": [{"time_s": T0, "sbp_mmhg": 120}]},
    ],
)
def test_schema_errors(changes):
    assert rejected(raw(good(**changes))).reason == "schema"


@pytest.mark.parametrize(
    "text",
    [
        '"start_time_s": NaN',
        '"start_time_s": Infinity',
        '"start_time_s": -Infinity',
        '"start_time_s": 1e999',
    ],
)
def test_non_finite_numbers(text):
    payload = raw(good()).replace(f'"start_time_s": {T0}'.encode(), text.encode())
    assert text.encode() in payload
    assert rejected(payload).reason == "non_finite"


def test_non_finite_in_ecg_and_vitals():
    p = raw(good(ecg=[[1024] * 249 + [0], [1000] * 250])).replace(b"1024, 0]", b"1024, NaN]")
    assert rejected(p).reason == "non_finite"
    p = raw(good(vitals=[{"time_s": T0, "hr_bpm": 1.0}])).replace(
        b'"hr_bpm": 1.0', b'"hr_bpm": NaN'
    )
    assert rejected(p).reason == "non_finite"


@pytest.mark.parametrize(
    "changes",
    [
        {"ecg": [[1024] * 250]},  # one lead for two names
        {"ecg": [[1024] * 250, [1000] * 249]},  # leads of different lengths
        {"adc_gain": [200.0]},
        {"adc_baseline": [1024, 1024, 1024]},
        {"lead_names": ["MLII", "MLII"]},
    ],
)
def test_lead_mismatch(changes):
    assert rejected(raw(good(**changes))).reason == "lead_mismatch"


@pytest.mark.parametrize(
    "changes",
    [
        {"ecg": [[1024] * 200, [1000] * 200]},  # 200 samples for 250 Hz x 1 s
        {"duration_s": 2.0},
        {"ecg": [[], []]},
    ],
)
def test_length_mismatch(changes):
    assert rejected(raw(good(**changes))).reason == "length_mismatch"


@pytest.mark.parametrize(
    "changes",
    [
        {"ecg": [[1024] * 249 + [2048], [1000] * 250]},  # above the 11-bit ADC
        {"ecg": [[1024] * 249 + [-1], [1000] * 250]},  # negative count
        {"adc_bits": 16},
        {"adc_bits": 4},
        {"adc_gain": [0.0, 200.0]},
        {"adc_baseline": [4096, 1024]},
        {"start_time_s": 12.0},  # clock never set
        {"duration_s": 60.0, "ecg": [[1024] * 15000, [1000] * 15000]},
        {"vitals": [{"time_s": T0, "hr_bpm": 400.0}]},
        {"vitals": [{"time_s": T0, "hr_bpm": 5.0}]},
        {"vitals": [{"time_s": T0, "spo2_pct": 101.0}]},
        {"vitals": [{"time_s": T0, "spo2_pct": 20.0}]},
        {"vitals": [{"time_s": T0, "temp_c": 50.0}]},
        {"vitals": [{"time_s": T0, "sbp_mmhg": 80.0, "dbp_mmhg": 90.0}]},
        {"vitals": [{"time_s": T0, "sbp_mmhg": 400.0, "dbp_mmhg": 90.0}]},
        {"vitals": [{"time_s": T0 + 3600, "hr_bpm": 70.0}]},  # far from the frame
    ],
)
def test_out_of_range(changes):
    assert rejected(raw(good(**changes))).reason == "out_of_range"


@pytest.mark.parametrize("fs", [0, -360, 10, 1e6])
def test_bad_fs(fs):
    assert rejected(raw(good(fs_hz=fs))).reason == "bad_fs"


def test_oversized():
    payload = raw(good())
    err = rejected(payload, max_bytes=len(payload) - 1)
    assert err.reason == "oversized" and str(len(payload)) in err.detail
    assert parse_frame(payload, max_bytes=len(payload)).seq == 7
    huge = b'{"pad": "' + b"x" * 600_000 + b'"}'
    assert rejected(huge).reason == "oversized"


def test_argument_validation():
    with pytest.raises(TypeError):
        parse_frame("{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        FrameRejected(reason="made_up", detail="x")


def test_vital_reading_api():
    v = VitalReading(time_s=T0, sbp_mmhg=120, dbp_mmhg=80)
    assert v.values() == {"sbp_mmhg": 120.0, "dbp_mmhg": 80.0}
