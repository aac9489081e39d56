"""Storage: engine/session factories, typed ORM tables, keyword-only repository functions, migrations.

The schema is created by alembic (:func:`heartline.storage.migrations.upgrade_database`), never by
``metadata.create_all`` in production code.
"""

from heartline.storage.engine import make_engine, make_session_factory, session_scope
from heartline.storage.migrations import upgrade_database

__all__ = ["make_engine", "make_session_factory", "session_scope", "upgrade_database"]
