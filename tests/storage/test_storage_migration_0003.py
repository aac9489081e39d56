"""Migration 0003 (ecg_blocks loses UNIQUE (device_id, seq)) on SQLite and PostgreSQL.

Upgrading a populated 0002 database keeps every row and every remaining constraint (CHECKs,
foreign keys with ON DELETE CASCADE, UNIQUE (frame_id)), ends with exactly the schema of
``tables.py``, and the downgrade puts the unique constraint back.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from tests.storage.conftest import make_test_frame

from heartline.storage import make_engine, make_session_factory, session_scope
from heartline.storage.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade_database,
)
from heartline.storage.repository import (
    ecg_between,
    register_device,
    register_patient,
    store_frames,
    vitals_between,
)
from heartline.storage.tables import Base, EcgBlock, FrameRecord, VitalSign

T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database of each backend (no revision applied)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'heartline.db'}"
    url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _unique_sets(url: str, table: str) -> set[tuple[str, ...]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        insp = inspect(conn)
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
        uniques |= {tuple(i["column_names"]) for i in insp.get_indexes(table) if i.get("unique")}
    engine.dispose()
    return uniques


def _populate_0002(url: str) -> None:
    """Two devices, 6 frames each with a vital, stored through the 0002 schema."""
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        for d in ("dev-1", "dev-2"):
            register_patient(s, patient_id=f"p-{d}")
            register_device(s, device_id=d, patient_id=f"p-{d}")
    from heartline.ingestion.payloads import VitalReading

    frames = [
        make_test_frame(
            device_id=d,
            seq=k,
            start_time_s=T0 + k,
            vitals=(VitalReading(time_s=T0 + k + 0.5, hr_bpm=60.0 + k),),
        )
        for d in ("dev-1", "dev-2")
        for k in range(6)
    ]
    with session_scope(make_session_factory(engine)) as s:
        assert len(store_frames(s, frames=frames)) == 12
    engine.dispose()


def test_upgrade_0002_to_head_keeps_data_and_constraints(empty_url):
    url = empty_url
    assert upgrade_database(url, revision="0002") == "0002"
    assert ("device_id", "seq") in _unique_sets(url, "ecg_blocks")
    _populate_0002(url)
    upgrade_database(url)
    assert current_revision(url) == head_revision()  # 0003 or a later revision

    # the schema is tables.py's (columns, types, indexes, unique constraints, foreign keys)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == [], f"0002 -> head and tables.py disagree: {diff}"
    uniques = _unique_sets(url, "ecg_blocks")
    assert ("device_id", "seq") not in uniques
    assert ("frame_id",) in uniques

    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(EcgBlock)) == 12
        segs = ecg_between(
            s,
            patient_id="p-dev-1",
            start=datetime.fromtimestamp(T0, tz=UTC),
            stop=datetime.fromtimestamp(T0 + 6, tz=UTC),
        )
        assert [g.seq for g in segs] == list(range(6))
        assert sum(g.signal_mv.shape[0] for g in segs) == 6 * 360

    # the rebuilt table kept its CHECK constraints, UNIQUE (frame_id) and foreign keys
    block = {
        "device_id": "dev-1",
        "seq": 99,
        "patient_id": "p-dev-1",
        "start_time": datetime.fromtimestamp(T0 + 99, tz=UTC),
        "fs_hz": 360.0,
        "n_samples": 1,
        "lead_names": ["MLII"],
        "gains": [200.0],
        "baselines": [1024],
        "data": b"\x00\x00",
    }
    with session_scope(factory) as s:
        fid = s.scalar(select(FrameRecord.id).where(FrameRecord.seq == 0).limit(1))
    bad_rows = [
        {**block, "frame_id": fid},  # a second block for a frame
        {**block, "frame_id": 10**9},  # no such frame
        {**block, "frame_id": fid, "n_samples": 0},  # CHECK n_samples > 0 (and unique)
        {**block, "frame_id": 10**9, "fs_hz": 0.0},  # CHECK fs_hz > 0 (and FK)
        {**block, "frame_id": fid, "patient_id": "nobody"},
    ]
    for row in bad_rows:
        with pytest.raises(IntegrityError):
            with session_scope(factory) as s:
                s.execute(EcgBlock.__table__.insert(), row)
    # a CHECK alone (valid frame without a block)
    with session_scope(factory) as s:
        free = s.scalar(
            select(FrameRecord.id).where(FrameRecord.device_id == "dev-2", FrameRecord.seq == 5)
        )
        s.execute(EcgBlock.__table__.delete().where(EcgBlock.frame_id == free))
    own = {**block, "frame_id": free, "device_id": "dev-2", "seq": 5, "patient_id": "p-dev-2"}
    with pytest.raises(IntegrityError):
        with session_scope(factory) as s:
            s.execute(EcgBlock.__table__.insert(), {**own, "fs_hz": -1.0})
    with session_scope(factory) as s:  # the same row with a valid rate is accepted
        s.execute(EcgBlock.__table__.insert(), own)

    # ON DELETE CASCADE from frames still removes the frame's block and vitals
    with session_scope(factory) as s:
        s.execute(FrameRecord.__table__.delete().where(FrameRecord.device_id == "dev-1"))
    with session_scope(factory) as s:
        left = s.scalars(select(EcgBlock.device_id)).all()
        assert left and set(left) == {"dev-2"}
        assert (
            vitals_between(
                s,
                patient_id="p-dev-1",
                start=datetime.fromtimestamp(T0, tz=UTC),
                stop=datetime.fromtimestamp(T0 + 10, tz=UTC),
            )
            == []
        )
        assert s.scalar(select(func.count()).select_from(VitalSign)) == 6
    engine.dispose()


def test_downgrade_to_0002_restores_the_unique_constraint(empty_url):
    url = empty_url
    upgrade_database(url)
    _populate_0002(url)
    command.downgrade(alembic_config(url), "0002")
    assert current_revision(url) == "0002"
    assert ("device_id", "seq") in _unique_sets(url, "ecg_blocks")
    assert ("frame_id",) in _unique_sets(url, "ecg_blocks")
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        assert s.scalar(select(func.count()).select_from(EcgBlock)) == 12
    engine.dispose()
    upgrade_database(url)
    assert ("device_id", "seq") not in _unique_sets(url, "ecg_blocks")
