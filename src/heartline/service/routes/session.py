"""Station sessions: rotating refresh tokens, so a central station stays signed in.

The access token keeps its 15-minute lifetime; a signed-in browser asks for a refresh token
(``POST /session/refresh-token`` with its access token) and, before each access token expires,
trades the refresh token for a new access token and a new refresh token
(``POST /session/refresh``). Refresh tokens are:

* **random** (256 bits, ``secrets.token_urlsafe``) and **stored hashed** (SHA-256; a database
  leak yields no usable token);
* **rotating**: each is good for one use; reusing a spent one (a stolen copy racing the
  legitimate station) revokes its whole family, so both must sign in again (OAuth 2.0 Security
  Best Current Practice, RFC 9700 section 4.14.2);
* **idle-limited** (:data:`REFRESH_IDLE_S`: unused that long, it expires) and
  **lifetime-limited** (:data:`REFRESH_LIFETIME_S` from sign-in, one shift);
* **revocable**: ``POST /session/revoke`` (sign out) ends the family; deactivating the user
  ends them all (checked on every refresh).

The dashboard adds an idle lock on top (the screen locks after a set time without input and
asks for the password again, while the data keeps streaming behind the lock).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select, update

from heartline.service.deps import CurrentUser, SessionDep, SettingsDep
from heartline.service.routes.alerts import request_now
from heartline.service.schemas import Role
from heartline.service.security import audit_action, client_ip, create_access_token
from heartline.storage.security_tables import User
from heartline.storage.station_tables import RefreshToken

__all__ = ["REFRESH_IDLE_S", "REFRESH_LIFETIME_S", "hash_refresh_token", "router"]

router = APIRouter(tags=["session"], prefix="/session")
log = logging.getLogger(__name__)

#: A refresh token unused this long expires (s): the station refreshes every ~13 min.
REFRESH_IDLE_S = 60 * 60.0
#: Absolute lifetime of a sign-in (s): one 12-hour shift.
REFRESH_LIFETIME_S = 12 * 60 * 60.0

RefreshTokenStr = Annotated[str, StringConstraints(min_length=20, max_length=128)]


class RefreshTokenPublic(BaseModel):
    """A new refresh token (shown once; only its hash is stored)."""

    refresh_token: str
    expires_in: int = Field(description="seconds until it expires if unused")
    session_expires_at: datetime = Field(description="end of the sign-in's absolute lifetime")


class RefreshRequest(BaseModel):
    """A refresh token to use (or revoke)."""

    refresh_token: RefreshTokenStr


class RefreshedTokens(BaseModel):
    """A new access token and the next refresh token of the same family."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: Role
    refresh_token: str
    refresh_expires_in: int


def hash_refresh_token(token: str) -> str:
    """SHA-256 hex digest (the only form stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _issue(
    session: SessionDep,
    *,
    user_id: int,
    family_id: str,
    family_expires_at: datetime,
    now: datetime,
    ip: str,
) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = min(now + timedelta(seconds=REFRESH_IDLE_S), family_expires_at)
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(token),
            created_at=now,
            expires_at=expires,
            family_expires_at=family_expires_at,
            client_ip=ip[:64],
        )
    )
    return token, expires


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _revoke_family(session: SessionDep, *, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


@router.post(
    "/refresh-token",
    response_model=RefreshTokenPublic,
    responses={401: {"description": "no valid access token"}},
)
def start_session(request: Request, user: CurrentUser, session: SessionDep) -> RefreshTokenPublic:
    """Start a refresh-token family for the signed-in user (call right after signing in)."""
    now = request_now(request)
    family_expires = now + timedelta(seconds=REFRESH_LIFETIME_S)
    token, expires = _issue(
        session,
        user_id=user.id,
        family_id=uuid.uuid4().hex,
        family_expires_at=family_expires,
        now=now,
        ip=client_ip(request),
    )
    audit_action(
        session,
        user=user,
        request=request,
        action="session-start",
        resource="refresh-token",
        patient_id=None,
        at=now,
    )
    return RefreshTokenPublic(
        refresh_token=token,
        expires_in=int((expires - now).total_seconds()),
        session_expires_at=family_expires,
    )


@router.post(
    "/refresh",
    response_model=RefreshedTokens,
    responses={401: {"description": "unknown, expired, revoked or reused refresh token"}},
)
def refresh(
    body: RefreshRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> RefreshedTokens:
    """Trade a refresh token for a new access token and the next refresh token (rotation)."""
    now = request_now(request)
    row = session.scalar(
        select(RefreshToken).where(
            RefreshToken.token_hash == hash_refresh_token(body.refresh_token)
        )
    )
    if row is None:
        raise _unauthorized("invalid refresh token")
    if row.revoked_at is not None:
        raise _unauthorized("refresh token revoked")
    if row.used_at is not None:
        # a spent token presented again: a copy is in someone else's hands; end the family
        log.warning(
            "refresh token reuse for user %s (family %s): revoked", row.user_id, row.family_id
        )
        _revoke_family(session, family_id=row.family_id, now=now)
        session.commit()
        raise _unauthorized("refresh token already used; the session was revoked")
    if now >= row.expires_at or now >= row.family_expires_at:
        raise _unauthorized("refresh token expired")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        _revoke_family(session, family_id=row.family_id, now=now)
        session.commit()
        raise _unauthorized("invalid refresh token")
    row.used_at = now
    token, expires = _issue(
        session,
        user_id=user.id,
        family_id=row.family_id,
        family_expires_at=row.family_expires_at,
        now=now,
        ip=client_ip(request),
    )
    access, _exp = create_access_token(
        settings=settings, user_id=user.id, token_key=user.token_key, role=user.role, now=now
    )
    return RefreshedTokens(
        access_token=access,
        expires_in=settings.access_token_minutes * 60,
        role=user.role,  # type: ignore[arg-type]
        refresh_token=token,
        refresh_expires_in=int((expires - now).total_seconds()),
    )


@router.post("/revoke", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def revoke(body: RefreshRequest, request: Request, session: SessionDep) -> Response:
    """Sign out: revoke the refresh token's whole family (204 whether or not it exists)."""
    row = session.scalar(
        select(RefreshToken).where(
            RefreshToken.token_hash == hash_refresh_token(body.refresh_token)
        )
    )
    if row is not None:
        _revoke_family(session, family_id=row.family_id, now=request_now(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def revoke_all(session: SessionDep, *, user_id: int, now: datetime | None = None) -> int:
    """Revoke every refresh token of a user (e.g. on deactivation); returns how many."""
    res = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    return int(res.rowcount or 0)
