"""parse_frame: the valid frame round-trips; every bad input is refused with the right reason."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heartline.ingestion.payloads import (
    REJECT_REASONS,
    Frame,
    FrameRejected,
    VitalReading,
    _parse_frame_reference,
    parse_frame,
)

T0 = 1_700_000_000.0
#: Frame.from_counts keywords of a 250 Hz two-lead device.
FRAME_250HZ = {
    "device_id": "dev-1",
    "seq": 0,
    "start_time_s": T0,
    "fs_hz": 250,
    "lead_names": ["I", "II"],
    "adc_bits": 11,
    "adc_gain": [200, 200],
    "adc_baseline": [1024, 1024],
}


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
    if not kw and info.value.reason != "oversized":  # fast path refuses as the reference does
        with pytest.raises(FrameRejected) as ref:
            _parse_frame_reference(payload)
        assert (ref.value.reason, ref.value.detail) == (info.value.reason, info.value.detail)
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
    f = Frame.from_counts(counts, **FRAME_250HZ)
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


def test_bool_and_huge_counts():
    # pydantic's StrictInt refused bools; the numpy check must too (True is also a count of 1)
    assert rejected(raw(good(ecg=[[1024] * 249 + [True], [1000] * 250]))).reason == "schema"
    assert rejected(raw(good(ecg=[[True] * 250, [False] * 250]))).reason == "schema"
    assert rejected(raw(good(ecg=[[1024] * 250, 5]))).reason == "schema"
    assert rejected(raw(good(ecg=[[1024] * 249 + [None], [1000] * 250]))).reason == "schema"
    assert rejected(raw(good(ecg=[[1024] * 249 + [[1]], [1000] * 250]))).reason == "schema"
    # beyond int64 (the old code crashed with OverflowError): outside every ADC range
    assert rejected(raw(good(ecg=[[1024] * 249 + [2**70], [1000] * 250]))).reason == "out_of_range"
    assert rejected(raw(good(ecg=[[1024] * 249 + [2**70], [1000] * 249]))).reason == "lead_mismatch"
    # 0 and 1 are valid counts (the exact check runs and lets them through)
    f = parse_frame(raw(good(ecg=[[0] * 249 + [1], [1] * 250])))
    assert f.ecg_counts()[0, -1] == 1 and f.ecg_counts().dtype == np.int64


def test_fast_path_matches_reference_on_valid_and_odd_json():
    payload = raw(good())
    assert parse_frame(payload) == _parse_frame_reference(payload)
    # a lone surrogate: the fast parser refuses it, the reference reads it and pydantic refuses
    odd = raw(good()).replace(b'"V5"', b'"\\ud800"')
    assert rejected(odd).reason == "schema"
    # an escaped name the fast parser reads as the reference does
    esc = raw(good()).replace(b'"V5"', b'"V\\u0035"')
    assert (
        parse_frame(esc) == _parse_frame_reference(esc) and parse_frame(esc).lead_names[1] == "V5"
    )
    assert parse_frame(memoryview(payload)) == parse_frame(bytearray(payload))


# ------------------------------------------------------------------- version 2 (base64 int16)
def b64_leads(ecg) -> list[str]:
    return [base64.b64encode(np.asarray(lead, dtype="<i2").tobytes()).decode() for lead in ecg]


def as_v2(d: dict) -> dict:
    return {**d, "v": 2, "ecg": b64_leads(d["ecg"])}


def test_v2_roundtrip_and_same_counts_as_v1():
    d = good(ecg=[list(range(1000, 1250)), [1000] * 250])
    f1, f2 = parse_frame(raw(d)), parse_frame(raw(as_v2(d)))
    assert f2.v == 2 and isinstance(f2.ecg[0], str)
    np.testing.assert_array_equal(f1.ecg_counts(), f2.ecg_counts())
    np.testing.assert_array_equal(f1.signal_mv(), f2.signal_mv())
    assert f1.model_dump(exclude={"v", "ecg"}) == f2.model_dump(exclude={"v", "ecg"})
    assert f2.n_samples == 250 and f2.counts().dtype == np.int16
    assert parse_frame(f2.to_json()) == f2
    assert len(f2.to_json()) < len(f1.to_json())


def test_from_counts_v2():
    counts = np.stack([np.arange(250) + 900, np.full(250, 1024)], axis=1)
    f1 = Frame.from_counts(counts, **FRAME_250HZ)
    f2 = Frame.from_counts(counts, **FRAME_250HZ, version=2)
    assert (f1.v, f2.v) == (1, 2)
    np.testing.assert_array_equal(f1.counts(), f2.counts())
    assert parse_frame(f2.to_json()) == f2
    with pytest.raises(ValueError, match="version"):
        Frame.from_counts(counts, **FRAME_250HZ, version=3)
    with pytest.raises(FrameRejected) as info:
        Frame.from_counts(counts + 40_000, **FRAME_250HZ, version=2)
    assert info.value.reason == "out_of_range"


@pytest.mark.parametrize(
    "ecg",
    [
        ["not base64!", "AAAA"],  # bad characters
        ["AAA", "AAAA"],  # bad padding
        ["AAAAAA==", "AAAAAA=="],  # 4 bytes... then an odd count below
        ["AAAA", 5],  # a lead that is not a string
        [[1024] * 250, [1000] * 250],  # version-1 lists in a version-2 frame
    ],
)
def test_v2_schema_errors(ecg):
    if ecg[0] == "AAAAAA==":
        ecg = [base64.b64encode(b"\x00" * 501).decode()] * 2
    assert rejected(raw(good(v=2, ecg=ecg))).reason == "schema"


def test_v1_lists_refused_as_v3():
    assert rejected(raw(good(v=3))).reason == "schema"


@pytest.mark.parametrize(
    "changes",
    [
        {"ecg": [[1024] * 250]},
        {"ecg": [[1024] * 250, [1000] * 249]},
        {"ecg": [[1024] * 200, [1000] * 200]},
        {"ecg": [[], []]},
        {"ecg": [[1024] * 249 + [2048], [1000] * 250]},
        {"ecg": [[1024] * 249 + [-1], [1000] * 250]},
        {"ecg": [[1024] * 250, [1000] * 250], "adc_bits": 16},
        {"ecg": [[1024] * 250, [1000] * 250], "fs_hz": 10},
        {"ecg": [[1024] * 250, [1000] * 250], "lead_names": ["I", "I"]},
        {"ecg": [[1024] * 250, [1000] * 250], "seq": "7"},
        {"ecg": [[1024] * 250, [1000] * 250], "start_time_s": 12.0},
        {"ecg": [[1024] * 250, [1000] * 250], "vitals": [{"time_s": T0, "hr_bpm": 400.0}]},
    ],
)
def test_v2_refused_like_v1(changes):
    d = good(**changes)
    r1, r2 = rejected(raw(d)), rejected(raw(as_v2(d)))
    assert r1.reason == r2.reason


def test_v2_non_finite_and_oversized_like_v1():
    d = good()
    for p in (raw(d), raw(as_v2(d))):
        assert rejected(p.replace(f"{T0}".encode(), b"NaN", 1)).reason == "non_finite"
        assert rejected(p.replace(f"{T0}".encode(), b"1e999", 1)).reason == "non_finite"
        assert rejected(p, max_bytes=100).reason == "oversized"
        assert rejected(p[:-5]).reason == "malformed_json"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_leads=st.integers(1, 3),
    n_samples=st.sampled_from([0, 24, 25, 26, 50]),
    adc_bits=st.integers(7, 16),
    data=st.data(),
)
def test_encodings_equivalent(n_leads, n_samples, adc_bits, data):
    """Any counts that fit int16: v1 and v2 payloads are accepted or refused alike."""
    lengths = [n_samples] * n_leads
    if data.draw(st.booleans()):  # sometimes one lead of another length
        lengths[-1] = data.draw(st.integers(0, 30))
    ecg = [
        data.draw(
            st.lists(st.integers(-3, min(2**adc_bits + 2, 2**15 - 1)), min_size=k, max_size=k)
        )
        for k in lengths
    ]
    names = [f"L{i}" for i in range(n_leads)]
    d = good(
        fs_hz=50.0,
        duration_s=0.5,
        lead_names=names,
        adc_bits=adc_bits,
        adc_gain=[200.0] * n_leads,
        adc_baseline=[min(1024, 2**adc_bits - 1)] * n_leads,
        ecg=ecg,
    )
    outcomes = []
    for payload in (raw(d), raw(as_v2(d))):
        try:
            outcomes.append(parse_frame(payload).ecg_counts().tolist())
        except FrameRejected as exc:
            outcomes.append(exc.reason)
    assert outcomes[0] == outcomes[1]
    if isinstance(outcomes[0], list):
        assert outcomes[0] == ecg
