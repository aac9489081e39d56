"""Central-station tables: rotating refresh tokens and alarm silences.

Created by the alembic revision ``0006_station``.

* :class:`RefreshToken` keeps only the SHA-256 of each refresh token (the token itself is 256
  random bits, so a plain hash is enough: nothing to brute-force). Tokens rotate: using one marks
  it ``used_at`` and issues the next of the same ``family_id``; presenting a used token again
  (a stolen copy) revokes the whole family. Each token expires after the idle time
  (``expires_at``) and a family after its absolute lifetime (``family_expires_at``).
* :class:`AlarmSilence` records who silenced an alarm's audible/visual cue, when and until when;
  the audit log gets a row for each silence too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from heartline.storage.tables import Base, BigId, utcnow

__all__ = ["AlarmSilence", "RefreshToken"]


class RefreshToken(Base):
    """One refresh token (hash only) of a signed-in station or browser."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    family_expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    client_ip: Mapped[str | None] = mapped_column(String(64))


class AlarmSilence(Base):
    """Alarm ``alert_id`` silenced by ``silenced_by`` at ``silenced_at`` until ``until``."""

    __tablename__ = "alarm_silences"
    __table_args__ = (Index("ix_alarm_silences_alert_until", "alert_id", "until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    silenced_by: Mapped[str] = mapped_column(String(128))
    silenced_at: Mapped[datetime]
    until: Mapped[datetime]
