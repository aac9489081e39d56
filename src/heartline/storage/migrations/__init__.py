"""Alembic migrations of the Heartline schema, runnable programmatically.

The migration scripts ship inside the package (``env.py`` and ``versions/``), so
:func:`upgrade_database` works from an installed wheel without an ``alembic.ini``.

For developers, a new revision is generated with::

    python -c "from heartline.storage.migrations import alembic_config; \\
from alembic import command; command.revision(alembic_config('sqlite:////tmp/x.db'), \\
message='...', autogenerate=True)"
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade_database",
]

log = logging.getLogger(__name__)

#: Folder holding ``env.py`` and ``versions/``.
MIGRATIONS_DIR = Path(__file__).resolve().parent


def import_table_modules() -> list[str]:
    """Import every ``heartline.storage.*tables`` module so that ``Base.metadata`` is complete.

    Convention: a module of :mod:`heartline.storage` whose name ends in ``tables``
    (``tables.py``, ``security_tables.py``...) declares ORM tables on
    :class:`heartline.storage.tables.Base`; migrations and schema checks see all of them.
    """
    import importlib
    import pkgutil

    import heartline.storage as pkg

    names = sorted(
        m.name
        for m in pkgutil.iter_modules(pkg.__path__, "heartline.storage.")
        if m.name.endswith("tables")
    )
    for name in names:
        importlib.import_module(name)
    return names


def alembic_config(url: str) -> Config:
    """An alembic :class:`~alembic.config.Config` for ``url`` without any ``alembic.ini``."""
    if not url:
        raise ValueError("url must be a SQLAlchemy database URL, got an empty string")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The URL goes through attributes, not the ini parser (which would choke on '%').
    cfg.attributes["heartline_url"] = url
    return cfg


def upgrade_database(url: str, *, revision: str = "head") -> str:
    """Create or upgrade the schema of the database at ``url`` to ``revision``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (SQLite or PostgreSQL).
    revision : str
        Target revision, ``"head"`` by default.

    Returns
    -------
    str
        The database's revision afterwards.
    """
    cfg = alembic_config(url)
    command.upgrade(cfg, revision)
    rev = current_revision(url)
    log.info("database %s at revision %s", _redact(url), rev)
    return rev or ""


def head_revision() -> str:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    from heartline.storage.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
