"""Engine and session factories built from a URL (never at import time).

SQLite connections get ``foreign_keys=ON`` (SQLite ignores foreign keys otherwise), a busy
timeout and the settings of a streaming store (see :data:`SQLITE_PRAGMAS`); the folder of a SQLite
file is created. PostgreSQL URLs use psycopg 3: ``postgresql+psycopg://user@127.0.0.1:5432/heartline``.

SQLite durability trade-off, stated once: ``journal_mode=WAL`` with ``synchronous=NORMAL``
does not ``fsync`` at each commit, only at checkpoints. A committed transaction survives a crash
of the process (the stream processor's PUBACK after commit stays safe against that), but a
power loss or operating-system crash may roll back the last transactions since the previous
checkpoint; the database itself stays consistent (never corrupt). ``synchronous=FULL`` would
close that window at the cost of one ``fsync`` per commit. Checkpoints run every
``wal_autocheckpoint`` pages (10,000, ~40 MB, instead of SQLite's 1,000): a streaming commit
writes ~200 pages, most of them the same few hundred index leaves over and over, and a
checkpoint copies each page once however often it was rewritten, so rarer checkpoints copy
and ``fsync`` far less per frame; the price is a WAL file of up to ~40 MB (capped at 64 MB by
``journal_size_limit`` after a checkpoint) and a longer WAL replay when the database is opened
after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["SQLITE_PRAGMAS", "make_engine", "make_session_factory", "session_scope"]

log = logging.getLogger(__name__)

#: Set on every SQLite connection, in this order (see the module docstring for the trade-offs).
SQLITE_PRAGMAS: tuple[tuple[str, str], ...] = (
    ("foreign_keys", "ON"),
    ("busy_timeout", "10000"),
    ("journal_mode", "WAL"),  # readers never block the writer
    ("synchronous", "NORMAL"),  # fsync at checkpoints, not at every commit (WAL-safe)
    ("wal_autocheckpoint", "10000"),  # pages (~40 MB at 4 KiB)
    ("journal_size_limit", str(64 * 1024 * 1024)),  # bytes kept of the WAL after a checkpoint
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        for name, value in SQLITE_PRAGMAS:
            cur.execute(f"PRAGMA {name}={value}")
    finally:
        cur.close()


def make_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Create an :class:`~sqlalchemy.Engine` for ``url``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL. A bare ``postgresql://`` URL is switched to the psycopg 3 driver.
    echo : bool
        Log SQL statements.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Raises
    ------
    ValueError
        ``url`` is empty or not a SQLAlchemy URL.
    """
    if not url:
        raise ValueError("url must be a SQLAlchemy database URL, got an empty string")
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError(f"url is not a database URL: {url!r} ({exc})") from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, echo=echo, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
