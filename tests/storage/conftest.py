"""Storage fixtures: a SQLite file per test and a scratch PostgreSQL database per session.

PostgreSQL tests never skip: when the server at ``HEARTLINE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is unreachable they fail with a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import migrated_db_url

from heartline.ingestion.payloads import Frame, VitalReading


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this folder's tests (created and dropped per session)."""
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("heartline_test") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'heartline.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend (PostgreSQL: fresh schema per test)."""
    return migrated_db_url(request, tmp_path)


def make_test_frame(
    *,
    device_id: str = "dev-1",
    seq: int = 0,
    start_time_s: float = 1_700_000_000.0,
    fs_hz: float = 360.0,
    n_samples: int = 360,
    seed: int = 0,
    vitals: tuple[VitalReading, ...] = (),
) -> Frame:
    rng = np.random.default_rng(seed + seq)
    counts = rng.integers(800, 1300, size=(n_samples, 2))
    return Frame.from_counts(
        counts,
        device_id=device_id,
        seq=seq,
        start_time_s=start_time_s,
        fs_hz=fs_hz,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
        vitals=vitals,
    )


@pytest.fixture
def frame_factory():
    return make_test_frame
