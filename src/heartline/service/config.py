"""Service settings: :class:`ServiceSettings` extends :class:`heartline.settings.Settings`.

Every field reads ``HEARTLINE_<NAME>`` from the environment (``HEARTLINE_JWT_SECRET``,
``HEARTLINE_ACCESS_TOKEN_MINUTES``, ``HEARTLINE_TLS_CERTFILE``...). The base class's validator
checks every :class:`~pydantic.SecretStr` field, so a placeholder or low-entropy ``jwt_secret`` is
refused outside ``development``; production additionally needs a JWT secret of at least 32
characters and about 96 bits of estimated entropy, and refuses wildcard CORS origins.

In development, a JWT secret that is not set (or set to a placeholder) is replaced by a random
one kept in the state directory (:func:`heartline.settings.development_secret`), so a reachable
development server never accepts tokens signed with a published default.

>>> s = load_service_settings(environment="development", state_dir="/tmp/hl-doc")
>>> s.access_token_minutes, s.login_max_failures
(15, 5)
>>> s.jwt_secret.get_secret_value() != "changeme"
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator

from heartline.settings import PLACEHOLDER_SECRETS, Settings, development_secret, secret_weakness

__all__ = ["MIN_JWT_SECRET_BITS", "ServiceSettings", "cors_origin_problem", "load_service_settings"]

#: Least estimated entropy (bits) of the JWT signing key outside development.
MIN_JWT_SECRET_BITS = 96.0


def cors_origin_problem(origin: str) -> str | None:
    """Why ``origin`` may not be a production CORS origin, or ``None`` when it may.

    An origin must be one exact ``http(s)://host[:port]``: wildcards (``*``, ``http://*``,
    ``https://*.example.org``) and ``null`` (sandboxed frames, ``file://`` pages) are refused.

    >>> cors_origin_problem("https://clinic.example.org") is None
    True
    >>> cors_origin_problem("http://*")
    "'http://*' is a wildcard"
    """
    if "*" in origin:
        return f"{origin!r} is a wildcard"
    if origin.strip().lower() == "null":
        return "'null' matches every sandboxed or file:// page"
    if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
        return f"{origin!r} is not scheme://host[:port]"
    return None


class ServiceSettings(Settings):
    """Settings of the HTTP service (on top of the storage/broker :class:`Settings`).

    Attributes
    ----------
    jwt_secret : SecretStr
        HMAC key of the access tokens (HS256). Placeholders and low-entropy keys are refused
        outside development; in development an unset or placeholder key is replaced by a random
        one stored in ``<state_dir>/jwt-secret.key`` (mode 0600, reused on restart).
    jwt_algorithm : str
        JWT signing algorithm (``HS256``).
    access_token_minutes : int
        Lifetime of an access token in minutes (short-lived: 15 by default).
    login_max_failures : int
        Failed logins allowed per username and client address within
        :attr:`login_window_s`; the next attempt gets HTTP 429.
    login_max_failures_per_ip : int
        Failed logins allowed from one client address over all usernames in the window
        (slows one password sprayed over many usernames).
    login_max_failures_global : int
        Failed logins allowed from all addresses together in the window (slows spraying from
        many addresses; while it holds, every login gets HTTP 429 until the window moves on).
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
    max_request_body_bytes : int
        Largest request body of any route, enforced at the ASGI layer before authentication
        (HTTP 413). Login has a smaller cap (:attr:`max_login_body_bytes`); ingestion keeps its
        own frame limit (``heartline.ingestion.payloads.MAX_FRAME_BYTES``).
    max_login_body_bytes : int
        Largest body of the login form.
    """

    jwt_secret: SecretStr = SecretStr("changeme")
    jwt_algorithm: str = "HS256"
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_max_failures_per_ip: int = Field(default=20, ge=1, le=100_000)
    login_max_failures_global: int = Field(default=200, ge=1, le=1_000_000)
    login_window_s: float = Field(default=60.0, gt=0)
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    seed_demo_users: bool = False
    max_ecg_window_s: float = Field(default=300.0, gt=0, le=3600)
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)
    max_login_body_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)

    @model_validator(mode="after")
    def _development_jwt_secret(self) -> ServiceSettings:
        if not self.is_development:
            return self
        given = self.jwt_secret.get_secret_value()
        if (
            "jwt_secret" not in self.model_fields_set
            or given.strip().lower() in PLACEHOLDER_SECRETS
        ):
            self.jwt_secret = SecretStr(development_secret(self.state_dir, name="jwt-secret"))
        return self

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
            why = secret_weakness(self.jwt_secret.get_secret_value(), min_bits=MIN_JWT_SECRET_BITS)
            if why is not None:
                raise ValueError(
                    f"HEARTLINE_JWT_SECRET is {why} outside development; use e.g. "
                    '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
                )
            if self.seed_demo_users:
                raise ValueError("seed_demo_users is allowed in development only")
            problems = [p for p in map(cors_origin_problem, self.cors_origins) if p is not None]
            if problems:
                raise ValueError(
                    "cors_origins (HEARTLINE_CORS_ORIGINS) outside development must list exact "
                    f"origins: {'; '.join(problems)}"
                )
        return self


def load_service_settings(**overrides: Any) -> ServiceSettings:
    """Build :class:`ServiceSettings` from the environment with keyword ``overrides`` on top.

    Raises
    ------
    pydantic.ValidationError
        A value is invalid, or a secret is a placeholder outside development.
    """
    return ServiceSettings(**overrides)
