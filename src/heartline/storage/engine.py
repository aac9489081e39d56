"""Engine and session factories built from a URL (never at import time).

SQLite connections get ``journal_mode=WAL`` (readers never block the writer), ``foreign_keys=ON``
(SQLite ignores foreign keys otherwise) and a busy timeout; the folder of a SQLite file is created.
PostgreSQL URLs use psycopg 3: ``postgresql+psycopg://user@127.0.0.1:5432/heartline``.
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

__all__ = ["make_engine", "make_session_factory", "session_scope"]

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
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
