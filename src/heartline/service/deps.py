"""FastAPI dependencies and their ``Annotated`` aliases.

Nothing here is built at import time: settings, the engine and the password hasher live on
``app.state`` (set by :func:`heartline.service.app.create_app`), and the engine is created on
first use. Tests override :func:`get_settings` or :func:`get_session_factory` through
``app.dependency_overrides``.

Aliases: :data:`SettingsDep`, :data:`SessionDep`, :data:`HasherDep`, :data:`CurrentUser`,
:data:`CurrentDevice`.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from typing import Annotated

import jwt
from argon2 import PasswordHasher
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials, OAuth2PasswordBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from heartline.service.config import ServiceSettings
from heartline.service.security import decode_access_token, verify_device_secret
from heartline.storage.engine import make_engine, make_session_factory, session_scope
from heartline.storage.security_tables import User
from heartline.storage.tables import Device

__all__ = [
    "CurrentDevice",
    "CurrentUser",
    "Database",
    "HasherDep",
    "SessionDep",
    "SettingsDep",
    "get_current_device",
    "get_current_user",
    "get_password_hasher",
    "get_session",
    "get_session_factory",
    "get_settings",
]

TOKEN_URL = "/api/v1/login/access-token"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
device_basic = HTTPBasic(
    auto_error=False,
    realm="heartline-devices",
    description="Device id as username and the device secret as password",
)


class Database:
    """Engine and session factory of one settings object, created on first use."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None

    def factory(self) -> sessionmaker[Session]:
        """The session factory (the engine is created on the first call)."""
        with self._lock:
            if self._factory is None:
                self._engine = make_engine(self._settings.resolved_database_url())
                self._factory = make_session_factory(self._engine)
            return self._factory

    def dispose(self) -> None:
        """Close the engine's connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._factory = None, None


def get_settings(request: Request) -> ServiceSettings:
    """The app's settings."""
    return request.app.state.settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory."""
    return request.app.state.database.factory()


def get_session(
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
) -> Iterator[Session]:
    """One session per request: committed when the route returns, rolled back on error."""
    with session_scope(factory) as session:
        yield session


def get_password_hasher(request: Request) -> PasswordHasher:
    """The app's argon2id hasher."""
    return request.app.state.password_hasher


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
# scope="function": commit (audit rows included) before the response leaves.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
HasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


def _unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": scheme},
    )


def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The signed-in user (401 without a valid, unexpired token for an active user)."""
    if not token:
        raise _unauthorized("not authenticated")
    try:
        claims = decode_access_token(settings=settings, token=token)
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("invalid token") from None
    user = session.get(User, claims.user_id)
    if (
        user is None
        or not user.is_active
        or not user.token_key
        or not hmac.compare_digest(user.token_key.encode(), claims.token_key.encode())
    ):
        # a deleted user's token must not work for a later user given the same id
        raise _unauthorized("invalid token")
    return user


def get_current_device(
    session: SessionDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(device_basic)],
) -> Device:
    """The device authenticated by HTTP Basic (device id + secret); 401 otherwise."""
    if credentials is None:
        raise _unauthorized("device credentials required", 'Basic realm="heartline-devices"')
    device = session.get(Device, credentials.username)
    if device is None or not verify_device_secret(device.credential_hash, credentials.password):
        raise _unauthorized("invalid device credentials", 'Basic realm="heartline-devices"')
    return device


CurrentUser = Annotated[User, Depends(get_current_user)]
CurrentDevice = Annotated[Device, Depends(get_current_device)]
