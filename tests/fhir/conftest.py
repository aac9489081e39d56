"""Reuse the service fixtures (database, seeded world, client)."""

from tests.service.conftest import client, db_url, pg_url, settings, window, world  # noqa: F401
