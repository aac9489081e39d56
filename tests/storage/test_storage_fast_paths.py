"""The repository's compiled write paths store exactly what SQLAlchemy's generic paths store.

``store_frames``, ``add_beats_by_patient``, ``add_alert`` and ``update_alerts`` bypass
SQLAlchemy's per-row machinery (DBAPI ``executemany`` on SQLite, ``unnest`` array statements on
PostgreSQL). Each test writes the same content once through the repository and once through
``session.execute(insert/update(table), rows)`` or the ORM, then compares the raw column values
as the database holds them (``CAST(.. AS TEXT)``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, inspect, select, text, update
from tests.storage.conftest import make_test_frame

from heartline.ingestion.payloads import VitalReading
from heartline.storage import make_engine, make_session_factory, session_scope
from heartline.storage.repository import (
    BeatIn,
    acknowledge_alert,
    add_alert,
    add_beats_by_patient,
    alerts_between,
    beats_between,
    register_device,
    register_patient,
    store_frames,
    update_alerts,
)
from heartline.storage.tables import Alert, Beat, EcgBlock, FrameRecord, VitalSign

T0 = 1_700_000_000.0


def _t(s: float) -> datetime:
    return datetime.fromtimestamp(T0 + s, tz=UTC)


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        for d in ("dev-1", "dev-2"):
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    yield factory
    engine.dispose()


def _raw(s, table, skip, where: str) -> list[tuple]:
    cols = [c.name for c in table.columns if c.name not in skip]
    sql = ", ".join(c if c == "data" else f"CAST({c} AS TEXT)" for c in cols)  # data: bytes
    return [
        tuple(r)
        for r in s.execute(text(f"SELECT {sql} FROM {table.name} WHERE {where} ORDER BY id")).all()
    ]


_IDS = {"id", "frame_id", "device_id", "patient_id"}


def test_store_frames_and_beats_store_what_sqlalchemy_stores(factory):
    vit = (
        VitalReading(time_s=T0 + 0.25, hr_bpm=71.5, spo2_pct=None, temp_c=36.6),
        VitalReading(time_s=T0 + 0.75, sbp_mmhg=120.0, dbp_mmhg=80.0),
    )
    frames = [
        make_test_frame(device_id="dev-1", seq=k, start_time_s=T0 + k + 0.123457, vitals=vit)
        for k in range(3)
    ]
    received = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    beats = [
        BeatIn(
            device_id="dev-1",
            seq=k,
            sample_idx=10 * k + 1,
            time=_t(k + 0.1) if k else _t(0.1).astimezone(timezone(timedelta(hours=-5))),
            label=None if k == 2 else "V",
            probabilities=None if k == 2 else {"N": 0.1, "V": 0.9, 'q"\\': 1e-300},
            confidence=None if k == 2 else 0.9,
        )
        for k in range(3)
    ]
    with session_scope(factory) as s:
        assert (
            len(store_frames(s, frames=frames, received_at=received, payload_bytes=[7, 8, 9])) == 3
        )
        assert add_beats_by_patient(s, beats={"p-dev-1": beats}) == 3
    # the same content for dev-2 through SQLAlchemy's own insert()
    with session_scope(factory) as s:
        for k, f in enumerate(frames):
            fid = s.execute(
                insert(FrameRecord.__table__).returning(FrameRecord.__table__.c.id),
                {
                    "device_id": "dev-2",
                    "seq": f.seq,
                    "patient_id": "p-dev-2",
                    "device_time": f.start_time,
                    "received_at": received,
                    "payload_bytes": 7 + k,
                },
            ).scalar_one()
            s.execute(
                insert(EcgBlock.__table__),
                {
                    "frame_id": fid,
                    "device_id": "dev-2",
                    "seq": f.seq,
                    "patient_id": "p-dev-2",
                    "start_time": f.start_time,
                    "fs_hz": float(f.fs_hz),
                    "n_samples": f.n_samples,
                    "lead_names": list(f.lead_names),
                    "gains": [float(g) for g in f.adc_gain],
                    "baselines": [int(b) for b in f.adc_baseline],
                    "data": f.ecg_counts().astype("<i2").tobytes(),
                },
            )
            s.execute(
                insert(VitalSign.__table__),
                [
                    {
                        "frame_id": fid,
                        "device_id": "dev-2",
                        "patient_id": "p-dev-2",
                        "time": datetime.fromtimestamp(v.time_s, tz=UTC),
                        "hr_bpm": v.hr_bpm,
                        "spo2_pct": v.spo2_pct,
                        "temp_c": v.temp_c,
                        "sbp_mmhg": v.sbp_mmhg,
                        "dbp_mmhg": v.dbp_mmhg,
                    }
                    for v in f.vitals
                ],
            )
        s.execute(
            insert(Beat.__table__),
            [
                {
                    "patient_id": "p-dev-2",
                    "device_id": "dev-2",
                    "seq": b.seq,
                    "sample_idx": b.sample_idx,
                    "time": b.time,
                    "label": b.label,
                    "probabilities": b.probabilities,
                    "confidence": b.confidence,
                }
                for b in beats
            ],
        )
    with session_scope(factory) as s:
        for table in (FrameRecord, EcgBlock, VitalSign, Beat):
            t = table.__table__
            fast = _raw(s, t, _IDS, "device_id = 'dev-1'")
            ref = _raw(s, t, _IDS, "device_id = 'dev-2'")
            assert len(fast) == {"vitals": 6, "beats": 3}.get(t.name, 3)
            assert fast == ref, t.name
        got = beats_between(s, patient_id="p-dev-1", start=_t(0), stop=_t(10))
        assert [b.probabilities for b in got] == [b.probabilities for b in beats]
        assert got[2].probabilities is None and got[2].label is None
    # replays change nothing
    with session_scope(factory) as s:
        assert store_frames(s, frames=frames[::-1]) == set()
        assert add_beats_by_patient(s, beats={"p-dev-1": beats + beats}) == 0


def test_add_alert_and_update_alerts_store_what_the_orm_stores(factory):
    evidence = {"beats": [[1, 2]], "why": 'quote " and \\ backslash', "x": 1.5, "none": None}
    with session_scope(factory) as s:
        fast = add_alert(
            s,
            patient_id="p-dev-1",
            device_id="dev-1",
            type="vt",
            severity="high",
            start=_t(1),
            evidence=evidence,
        )
        assert inspect(fast).persistent and fast in s
        ref = Alert(
            patient_id="p-dev-1",
            device_id="dev-1",
            type="vt",
            severity="high",
            start_time=_t(1),
            evidence=dict(evidence),
            created_at=fast.created_at,
        )
        s.add(ref)
        s.flush()
        assert ref.id > fast.id
        assert fast.end_time is None and fast.acknowledged_at is None
        ids = (fast.id, ref.id)
    with session_scope(factory) as s:
        where = f"id IN ({ids[0]}, {ids[1]})"
        a, b = _raw(s, Alert.__table__, {"id"}, where)
        assert a == b

    # updates: the last change of an id wins; unknown ids change nothing
    end = _t(30).astimezone(timezone(timedelta(hours=9)))
    new_evidence = {**evidence, "revision": 7, "times_s": [T0 + 0.5, math.pi]}
    with session_scope(factory) as s:
        update_alerts(
            s,
            changes=[
                {"id": ids[0], "severity": "warning", "end": None, "evidence": {"old": 1}},
                {"id": 10**9, "severity": "critical", "end": end, "evidence": {}},
                {"id": ids[0], "severity": "critical", "end": end, "evidence": new_evidence},
            ],
        )
        t = Alert.__table__
        s.execute(
            update(t).where(t.c.id == ids[1]),
            {"severity": "critical", "end_time": end, "evidence": new_evidence},
        )
    with session_scope(factory) as s:
        a, b = _raw(s, Alert.__table__, {"id"}, where)
        assert a == b
        (got,) = [
            x
            for x in alerts_between(s, patient_id="p-dev-1", start=_t(0), stop=_t(2))
            if x.id == ids[0]
        ]
        assert got.severity == "critical" and got.end_time == end and got.evidence == new_evidence
        assert s.scalar(select(Alert.id).where(Alert.id == 10**9)) is None
        # the object add_alert returned stays usable with the ORM functions
        acknowledge_alert(s, alert_id=ids[0], user="nurse")
    with session_scope(factory) as s:
        assert s.get(Alert, ids[0]).acknowledged_by == "nurse"
    with pytest.raises(ValueError, match="naive"):
        with session_scope(factory) as s:
            update_alerts(
                s,
                changes=[
                    {"id": ids[0], "severity": "info", "end": datetime(2026, 1, 1), "evidence": {}}
                ],
            )
