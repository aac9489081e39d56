"""Repository behaviour on SQLite and on the real PostgreSQL (each test runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from heartline.ingestion.payloads import Frame, VitalReading
from heartline.storage import make_engine, make_session_factory, session_scope
from heartline.storage.repository import (
    AlertNotFoundError,
    BeatIn,
    UnknownDeviceError,
    acknowledge_alert,
    add_alert,
    add_beats,
    alerts_between,
    beats_between,
    close_alert,
    ecg_between,
    quarantine,
    register_device,
    register_patient,
    store_frame,
    vitals_between,
)
from heartline.storage.tables import EcgBlock, FrameRecord, QuarantinedPayload, VitalSign

T0 = 1_700_000_000.0


def _t(s: float) -> datetime:
    return datetime.fromtimestamp(T0 + s, tz=UTC)


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        register_patient(s, patient_id="p1", display_name="Patient One")
        register_device(s, device_id="dev-1", patient_id="p1")
    yield factory
    engine.dispose()


def test_replayed_frame_is_stored_once(factory, frame_factory):
    vit = (VitalReading(time_s=T0 + 0.5, hr_bpm=72, spo2_pct=97),)
    frame = frame_factory(seq=5, vitals=vit)
    with session_scope(factory) as s:
        assert store_frame(s, frame=frame) is True
    # Replays in the same and in a later transaction are both ignored.
    with session_scope(factory) as s:
        assert store_frame(s, frame=frame) is False
        assert store_frame(s, frame=frame_factory(seq=5, vitals=vit)) is False
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(FrameRecord)) == 1
        assert s.scalar(select(func.count()).select_from(EcgBlock)) == 1
        assert s.scalar(select(func.count()).select_from(VitalSign)) == 1


def test_ecg_roundtrip_is_lossless_and_windowed(factory, frame_factory):
    frames = [frame_factory(seq=i, start_time_s=T0 + i) for i in range(3)]
    with session_scope(factory) as s:
        for f in reversed(frames):  # arrival order does not matter
            assert store_frame(s, frame=f)
    with session_scope(factory) as s:
        segs = ecg_between(s, patient_id="p1", start=_t(0), stop=_t(3))
        assert [g.seq for g in segs] == [0, 1, 2]
        whole = np.concatenate([g.signal_mv for g in segs])
        expected = np.concatenate([f.signal_mv() for f in frames])
        np.testing.assert_array_equal(whole, expected)
        assert segs[0].lead_names == ("MLII", "V5") and segs[0].fs == 360.0
        # Trimmed half-open window [0.5 s, 1.25 s): 180 samples of frame 0, 90 of frame 1.
        part = ecg_between(s, patient_id="p1", start=_t(0.5), stop=_t(1.25))
        assert [(g.seq, g.first_sample_idx, len(g.signal_mv)) for g in part] == [
            (0, 180, 180),
            (1, 0, 90),
        ]
        np.testing.assert_array_equal(part[0].signal_mv, frames[0].signal_mv()[180:])
        assert part[0].start_time == _t(0.5)
        assert ecg_between(s, patient_id="p1", start=_t(10), stop=_t(20)) == []
        with pytest.raises(ValueError, match="stop"):
            ecg_between(s, patient_id="p1", start=_t(2), stop=_t(1))
        with pytest.raises(ValueError, match="timezone"):
            ecg_between(s, patient_id="p1", start=datetime(2023, 1, 1), stop=_t(1))


def test_vitals_between(factory, frame_factory):
    v0 = (
        VitalReading(time_s=T0, hr_bpm=70, spo2_pct=98),
        VitalReading(time_s=T0 + 0.2, temp_c=33.4),
    )
    v1 = (VitalReading(time_s=T0 + 1, hr_bpm=71, spo2_pct=97, sbp_mmhg=121, dbp_mmhg=79),)
    with session_scope(factory) as s:
        store_frame(s, frame=frame_factory(seq=0, vitals=v0))
        store_frame(s, frame=frame_factory(seq=1, start_time_s=T0 + 1, vitals=v1))
    with session_scope(factory) as s:
        rows = vitals_between(s, patient_id="p1", start=_t(0), stop=_t(2))
        assert [r.hr_bpm for r in rows] == [70, None, 71]
        assert rows[1].temp_c == pytest.approx(33.4)
        assert (rows[2].sbp_mmhg, rows[2].dbp_mmhg) == (121, 79)
        assert rows[0].time == _t(0) and rows[0].time.tzinfo is not None
        assert len(vitals_between(s, patient_id="p1", start=_t(0.1), stop=_t(1))) == 1


def test_unknown_or_unassigned_device_is_refused(factory, frame_factory):
    with session_scope(factory) as s, pytest.raises(UnknownDeviceError, match="not registered"):
        store_frame(s, frame=frame_factory(device_id="ghost"))
    with session_scope(factory) as s:
        register_device(s, device_id="spare", patient_id=None)
    with session_scope(factory) as s, pytest.raises(UnknownDeviceError, match="not assigned"):
        store_frame(s, frame=frame_factory(device_id="spare"))


def test_beats_are_idempotent(factory):
    beats = [
        BeatIn(
            device_id="dev-1",
            seq=0,
            sample_idx=100,
            time=_t(0.28),
            label="N",
            probabilities={"N": 0.9, "V": 0.1},
            confidence=0.9,
        ),
        BeatIn(device_id="dev-1", seq=0, sample_idx=400, time=_t(1.1), label="V", confidence=0.8),
        BeatIn(device_id="dev-1", seq=1, sample_idx=20, time=_t(1.9)),
    ]
    with session_scope(factory) as s:
        assert add_beats(s, patient_id="p1", beats=beats) == 3
    with session_scope(factory) as s:
        assert add_beats(s, patient_id="p1", beats=beats[1:]) == 0
        assert add_beats(s, patient_id="p1", beats=[]) == 0
    with session_scope(factory) as s:
        got = beats_between(s, patient_id="p1", start=_t(0), stop=_t(2))
        assert [(b.seq, b.sample_idx, b.label) for b in got] == [
            (0, 100, "N"),
            (0, 400, "V"),
            (1, 20, None),
        ]
        assert got[0].probabilities == {"N": 0.9, "V": 0.1}
        assert [
            b.label for b in beats_between(s, patient_id="p1", start=_t(0), stop=_t(2), label="V")
        ] == ["V"]
    with session_scope(factory) as s, pytest.raises(ValueError, match="confidence"):
        add_beats(
            s,
            patient_id="p1",
            beats=[BeatIn(device_id="dev-1", seq=2, sample_idx=0, time=_t(2), confidence=1.5)],
        )


def test_alert_lifecycle(factory):
    evidence = {
        "beats": [[0, 100], [0, 400]],
        "strip": {"device_id": "dev-1", "start": _t(0).isoformat(), "stop": _t(10).isoformat()},
    }
    with session_scope(factory) as s:
        a = add_alert(
            s,
            patient_id="p1",
            device_id="dev-1",
            type="vtach",
            severity="critical",
            start=_t(1),
            evidence=evidence,
        )
        b = add_alert(s, patient_id="p1", type="low_spo2", severity="warning", start=_t(5))
        alert_id = a.id
    with session_scope(factory) as s:
        close_alert(s, alert_id=alert_id, end=_t(4))
        acked = acknowledge_alert(s, alert_id=alert_id, user="nurse.kim", at=_t(6))
        assert acked.acknowledged_by == "nurse.kim"
    with session_scope(factory) as s:
        again = acknowledge_alert(s, alert_id=alert_id, user="dr.lee")
        assert (again.acknowledged_by, again.acknowledged_at) == ("nurse.kim", _t(6))
        rows = alerts_between(s, patient_id="p1", start=_t(0), stop=_t(10))
        assert [r.type for r in rows] == ["vtach", "low_spo2"]
        assert rows[0].evidence == evidence and rows[0].end_time == _t(4)
        open_ = alerts_between(
            s, patient_id=None, start=_t(0), stop=_t(10), unacknowledged_only=True
        )
        assert [r.id for r in open_] == [b.id]
        assert [
            r.type
            for r in alerts_between(
                s, patient_id="p1", start=_t(0), stop=_t(10), severities=["critical"]
            )
        ] == ["vtach"]
    with session_scope(factory) as s:
        with pytest.raises(AlertNotFoundError):
            acknowledge_alert(s, alert_id=999_999, user="x")
        with pytest.raises(ValueError, match="severity"):
            add_alert(s, patient_id="p1", type="x", severity="apocalyptic", start=_t(0))


def test_quarantine_keeps_payload_verbatim(factory):
    raw = b'{"not": "a frame"\xff'
    with session_scope(factory) as s:
        quarantine(
            s,
            payload=raw,
            reason="malformed_json",
            topic="heartline/v1/3/dev-1/frames",
            device_id="dev-1",
        )
    with session_scope(factory) as s:
        row = s.scalars(select(QuarantinedPayload)).one()
        assert (row.payload, row.reason, row.device_id) == (raw, "malformed_json", "dev-1")
        assert row.received_at.tzinfo is not None


def test_ecg_storage_is_compact(factory, frame_factory):
    frame = frame_factory(seq=0)
    with session_scope(factory) as s:
        store_frame(s, frame=frame)
    with session_scope(factory) as s:
        block = s.scalars(select(EcgBlock)).one()
        assert len(block.data) == 2 * 360 * 2  # int16 per sample per lead


def test_store_frames_batch_mixes_new_replayed_and_encodings(factory, frame_factory):
    from heartline.storage.repository import store_frames

    vit = (VitalReading(time_s=T0 + 0.5, hr_bpm=72, spo2_pct=97),)
    f0 = frame_factory(seq=0, vitals=vit)
    with session_scope(factory) as s:
        assert store_frames(s, frames=[f0]) == {("dev-1", 0)}
    f1 = frame_factory(seq=1, start_time_s=T0 + 1)
    # the same counts sent as a version-2 payload store the same block
    f2_v1 = frame_factory(seq=2, start_time_s=T0 + 2, vitals=vit)
    f2 = Frame.from_counts(
        f2_v1.counts(),
        device_id="dev-1",
        seq=2,
        start_time_s=T0 + 2,
        fs_hz=360.0,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
        vitals=vit,
        version=2,
    )
    with session_scope(factory) as s:
        new = store_frames(s, frames=[f0, f1, f2, f1], payload_bytes=[10, 11, 12, 11])
        assert new == {("dev-1", 1), ("dev-1", 2)}
    with session_scope(factory) as s:
        blocks = {b.seq: b for b in s.scalars(select(EcgBlock))}
        assert sorted(blocks) == [0, 1, 2]
        assert blocks[2].data == f2_v1.ecg_counts().astype("<i2").tobytes()
        assert blocks[2].lead_names == ["MLII", "V5"] and blocks[2].baselines == [1024, 1024]
        frames = {r.seq: r for r in s.scalars(select(FrameRecord))}
        assert frames[1].payload_bytes == 11 and blocks[1].frame_id == frames[1].id
        assert s.scalar(select(func.count()).select_from(VitalSign)) == 2


def test_fast_inserts_store_what_sqlalchemy_stores(factory):
    """The DBAPI executemany path binds values exactly like ``session.execute(insert(...))``."""
    from sqlalchemy import insert, text

    from heartline.storage.tables import Beat

    t = _t(0.123456)
    row = {
        "patient_id": "p1",
        "device_id": "dev-1",
        "seq": 3,
        "time": t,
        "label": "N",
        "probabilities": {"N": 0.25, "V": 0.75},
        "confidence": 0.75,
    }
    with session_scope(factory) as s:
        s.execute(insert(Beat.__table__), [{**row, "sample_idx": 1}])
        n = add_beats(
            s,
            patient_id="p1",
            beats=[
                BeatIn(
                    device_id="dev-1",
                    seq=3,
                    sample_idx=2,
                    time=t,
                    label="N",
                    probabilities={"N": 0.25, "V": 0.75},
                    confidence=0.75,
                )
            ],
        )
        assert n == 1
    with session_scope(factory) as s:
        # raw column values as the database holds them (no SQLAlchemy type processing)
        got = s.execute(
            text(
                "SELECT sample_idx, CAST(time AS TEXT), CAST(probabilities AS TEXT), confidence "
                "FROM beats ORDER BY sample_idx"
            )
        ).all()
        assert [r[1:] for r in got[:1]] == [r[1:] for r in got[1:]]


@settings(max_examples=200, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_min=st.integers(-14 * 60, 14 * 60),
)
def test_sqlite_time_binding_matches_sqlalchemy(when, offset_min):
    from datetime import timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from heartline.storage.bulk import _sqlite_utc_text
    from heartline.storage.tables import UtcDateTime

    dialect = sqlite.dialect()
    reference = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    value = when.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    assert _sqlite_utc_text(value) == reference(value)
    with pytest.raises(ValueError, match="naive"):
        _sqlite_utc_text(when)
