"""``POST /api/v1/login/access-token``: OAuth2 password flow, rate limited per user+address, per
address and globally, answering in the same time for unknown, deactivated and wrong-password
attempts."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from heartline.service.deps import CurrentUser, HasherDep, SessionDep, SettingsDep
from heartline.service.schemas import Token, UserPublic
from heartline.service.security import (
    client_ip,
    create_access_token,
    login_rate_limited,
    verify_login,
)
from heartline.storage import security_repository as srepo
from heartline.storage.security_tables import new_token_key

router = APIRouter(tags=["auth"])
log = logging.getLogger(__name__)


@router.post(
    "/login/access-token",
    response_model=Token,
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed attempts"},
    },
)
def login_access_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
) -> Token:
    """Exchange username and password for a short-lived bearer token."""
    ip = client_ip(request)
    username = form.username[:64]
    limited = login_rate_limited(session, settings=settings, username=username, ip=ip)
    if limited is not None:
        log.warning("login rate limit (%s) hit for %r from %s", limited, username, ip)
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed login attempts; try again later",
            headers={"Retry-After": str(int(settings.login_window_s))},
        )
    user = srepo.get_user_by_username(session, username=username)
    ok = verify_login(hasher, user, form.password)  # one argon2 verification in every case
    srepo.record_login_attempt(session, username=username, client_ip=ip, success=ok)
    session.commit()  # the failed attempt must count even though we answer with an error
    if not ok or user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(form.password)
    if not user.token_key:
        user.token_key = new_token_key()
    token, _expires = create_access_token(
        settings=settings, user_id=user.id, token_key=user.token_key, role=user.role
    )
    return Token(
        access_token=token,
        expires_in=settings.access_token_minutes * 60,
        role=user.role,  # type: ignore[arg-type]
    )


@router.get("/users/me", response_model=UserPublic, tags=["users"])
def read_me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user)
