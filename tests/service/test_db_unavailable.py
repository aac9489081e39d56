"""A database that is busy past its timeout (SQLite ``database is locked``) is a 503 with
``Retry-After``, never a 500, and the request can be repeated once the database is free."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from heartline.service.app import DB_RETRY_AFTER_S, create_app


def test_a_locked_sqlite_database_answers_503_and_the_retry_succeeds(
    settings, world, monkeypatch
) -> None:
    import heartline.storage.engine as engine

    # a short busy timeout, so that the locked write gives up in 0.2 s instead of 10 s
    pragmas = tuple((k, "200" if k == "busy_timeout" else v) for k, v in engine.SQLITE_PRAGMAS)
    monkeypatch.setattr(engine, "SQLITE_PRAGMAS", pragmas)
    path = make_url(settings.resolved_database_url()).database
    body = {"id": "p9", "display_name": "Nine"}
    with TestClient(create_app(settings)) as client:
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
            r = client.post("/api/v1/patients", json=body, headers=world.auth("admin"))
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == str(DB_RETRY_AFTER_S)
            assert "retry" in r.json()["detail"]
        finally:
            other.execute("ROLLBACK")
            other.close()
        # nothing half-written: the same request now succeeds, once
        r = client.post("/api/v1/patients", json=body, headers=world.auth("admin"))
        assert r.status_code == 201, r.text
        ids = [p["id"] for p in client.get("/api/v1/patients", headers=world.auth("admin")).json()]
        assert ids.count("p9") == 1
