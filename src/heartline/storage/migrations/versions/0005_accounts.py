"""accounts: per-user token keys, login-attempt indexes for per-address and global limits

Revision ID: 0005_accounts
Revises: 0003
Create Date: 2026-12-06 (hand-written from heartline.storage.security_tables)

``users.token_key`` is a random value carried by every access token of the user (claim
``uid``), so that a token never works for a later user given the same id. Existing users get
a fresh random key here (their older tokens, which carry none, stop working: they sign in
again). The two indexes serve the failed-login counts per client address and over all
addresses.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_accounts"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_key", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    users = sa.table("users", sa.column("id"), sa.column("token_key"))
    for (user_id,) in conn.execute(sa.select(users.c.id)).all():
        conn.execute(
            users.update().where(users.c.id == user_id).values(token_key=secrets.token_hex(16))
        )
    op.create_index("ix_login_attempts_ip_time", "login_attempts", ["client_ip", "time"])
    op.create_index("ix_login_attempts_time", "login_attempts", ["time"])


def downgrade() -> None:
    op.drop_index("ix_login_attempts_time", table_name="login_attempts")
    op.drop_index("ix_login_attempts_ip_time", table_name="login_attempts")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_key")
