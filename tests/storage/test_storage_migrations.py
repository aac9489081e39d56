"""Alembic: the shipped migration builds exactly the ORM schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from heartline.storage.engine import make_engine
from heartline.storage.migrations import (
    MIGRATIONS_DIR,
    current_revision,
    head_revision,
    import_table_modules,
    upgrade_database,
)
from heartline.storage.tables import Base


def test_upgrade_matches_tables(db_url):
    # db_url is already upgraded by the fixture; upgrading again is a no-op.
    assert upgrade_database(db_url) == head_revision()
    assert "heartline.storage.tables" in import_table_modules()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"migration and tables.py disagree: {diff}"
    assert {
        "patients",
        "devices",
        "frames",
        "ecg_blocks",
        "vitals",
        "beats",
        "alerts",
        "quarantine",
    } <= names


def test_fresh_sqlite_upgrade_and_downgrade(sqlite_url):
    assert current_revision(sqlite_url) is None
    assert upgrade_database(sqlite_url) == head_revision()
    from alembic import command

    from heartline.storage.migrations import alembic_config

    command.downgrade(alembic_config(sqlite_url), "base")
    assert current_revision(sqlite_url) is None
    upgrade_database(sqlite_url)
    assert current_revision(sqlite_url) == head_revision()


def test_sqlite_pragmas(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 10000
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == 64 * 1024 * 1024
    engine.dispose()


def test_migrations_ship_with_the_package():
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert any(MIGRATIONS_DIR.glob("versions/*.py"))


def test_bad_url():
    with pytest.raises(ValueError, match="url"):
        make_engine("")
    with pytest.raises(ValueError, match="url"):
        upgrade_database("")


def test_plain_postgresql_url_uses_psycopg(pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(plain)
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
