"""Ingestion fixtures: a scratch PostgreSQL database (the tiny model is in tests/conftest.py).

PostgreSQL tests never skip: an unreachable server at ``HEARTLINE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) fails them with a message.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this folder's tests (created and dropped per session)."""
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("heartline_proc") as url:
        yield url
