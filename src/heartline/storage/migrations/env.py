"""Alembic environment: migrates the URL handed over by :func:`heartline.storage.migrations.alembic_config`."""

from __future__ import annotations

from alembic import context

from heartline.storage.migrations import import_table_modules
from heartline.storage.tables import Base

import_table_modules()
target_metadata = Base.metadata


def _url() -> str:
    cfg = context.config
    url = cfg.attributes.get("heartline_url") or cfg.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use heartline.storage.migrations.alembic_config(url)")
    return str(url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    from heartline.storage.engine import make_engine

    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            context.configure(
                connection=conn, target_metadata=target_metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


# Only run inside alembic (importing this module elsewhere, e.g. for doctests, does nothing).
if getattr(context, "_proxy", None) is not None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
