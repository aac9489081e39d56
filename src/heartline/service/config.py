"""Service settings: :class:`ServiceSettings` extends :class:`heartline.settings.Settings`.

Every field reads ``HEARTLINE_<NAME>`` from the environment (``HEARTLINE_JWT_SECRET``,
``HEARTLINE_ACCESS_TOKEN_MINUTES``, ``HEARTLINE_TLS_CERTFILE``...). The base class's validator
checks every :class:`~pydantic.SecretStr` field, so a placeholder ``jwt_secret`` is refused outside
``development``; production additionally needs a JWT secret of at least 32 characters.

>>> s = load_service_settings(environment="development", state_dir="/tmp/hl-doc")
>>> s.access_token_minutes, s.login_max_failures
(15, 5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator

from heartline.settings import Settings

__all__ = ["ServiceSettings", "load_service_settings"]


class ServiceSettings(Settings):
    """Settings of the HTTP service (on top of the storage/broker :class:`Settings`).

    Attributes
    ----------
    jwt_secret : SecretStr
        HMAC key of the access tokens (HS256). Placeholders refused outside development.
    jwt_algorithm : str
        JWT signing algorithm (``HS256``).
    access_token_minutes : int
        Lifetime of an access token in minutes (short-lived: 15 by default).
    login_max_failures : int
        Failed logins allowed per username and client address within
        :attr:`login_window_s`; the next attempt gets HTTP 429.
    login_window_s : float
        Rate-limit window in seconds.
    argon2_time_cost, argon2_memory_kib, argon2_parallelism : int
        argon2id parameters of new password hashes (RFC 9106's second recommended option is
        t=3, m=64 MiB, p=4; tests lower them for speed).
    tls_certfile, tls_keyfile : pathlib.Path or None
        PEM certificate and key handed to uvicorn by :func:`heartline.service.run_api` (both or
        neither). Without them the API speaks plain HTTP (behind a TLS-terminating proxy only).
    cors_origins : list of str
        Origins allowed by CORS (empty: same-origin only, as the bundled dashboard needs).
    seed_demo_users : bool
        Create demo users and patients at start-up (development only).
    max_ecg_window_s : float
        Longest ECG window one request may read.
    """

    jwt_secret: SecretStr = SecretStr("changeme")
    jwt_algorithm: str = "HS256"
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window_s: float = Field(default=60.0, gt=0)
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    seed_demo_users: bool = False
    max_ecg_window_s: float = Field(default=300.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _check_service(self) -> ServiceSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile come together (set both or neither)")
        if self.jwt_algorithm not in {"HS256", "HS384", "HS512"}:
            raise ValueError(
                f"jwt_algorithm must be HS256, HS384 or HS512, got {self.jwt_algorithm!r}"
            )
        if not self.is_development:
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError(
                    "HEARTLINE_JWT_SECRET must be at least 32 characters outside development"
                )
            if self.seed_demo_users:
                raise ValueError("seed_demo_users is allowed in development only")
            if "*" in self.cors_origins:
                raise ValueError("cors_origins='*' is refused outside development")
        return self


def load_service_settings(**overrides: Any) -> ServiceSettings:
    """Build :class:`ServiceSettings` from the environment with keyword ``overrides`` on top.

    Raises
    ------
    pydantic.ValidationError
        A value is invalid, or a secret is a placeholder outside development.
    """
    return ServiceSettings(**overrides)
