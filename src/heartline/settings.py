"""Typed service configuration (pydantic-settings), built by :func:`load_settings`.

Every field can be set from the environment with the prefix ``HEARTLINE_`` (for example
``HEARTLINE_DATABASE_URL``, ``HEARTLINE_BROKER_URL``, ``HEARTLINE_ENVIRONMENT=production``).
Nothing is built at import time: call :func:`load_settings` (tests pass overrides).

Secrets are :class:`pydantic.SecretStr` fields. Every such field, including ones added later by
subclasses or by other modules of the service (JWT keys...), is checked by one validator: outside
``development`` a secret that is empty, a known placeholder (``"changeme"``...) or of low
entropy (:func:`secret_entropy_bits` below :data:`MIN_SECRET_BITS`, or a repeated pattern such as
``"abab..."``) is refused. :func:`development_secret` gives development a random secret per state
directory instead of a published default.

>>> s = load_settings(state_dir="/tmp/hl-doc", environment="development")
>>> s.resolved_database_url()
'sqlite:////tmp/hl-doc/heartline.db'
>>> s.broker_url is None
True
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from heartline.defaults import (
    DEFAULT_RHYTHM_INTERVAL_S,
    MAX_RHYTHM_INTERVAL_S,
    MIN_RHYTHM_INTERVAL_S,
)

__all__ = [
    "MIN_SECRET_BITS",
    "PLACEHOLDER_SECRETS",
    "Settings",
    "default_state_dir",
    "development_secret",
    "load_settings",
    "secret_entropy_bits",
    "secret_weakness",
]

log = logging.getLogger(__name__)

#: Least estimated entropy (bits, :func:`secret_entropy_bits`) of a secret outside development.
MIN_SECRET_BITS = 48.0

#: Values that mark a secret as "not configured yet"; refused outside development.
PLACEHOLDER_SECRETS: frozenset[str] = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "placeholder",
        "dev",
        "development",
    }
)


def secret_entropy_bits(secret: str) -> float:
    """A conservative estimate of the entropy of ``secret`` in bits.

    The smaller of two per-character estimates, times the length: the empirical Shannon entropy
    of the character distribution (Shannon, 1948), which is 0 for ``"aaaa..."``, and
    ``log2`` of the pool implied by the character classes present (lower case, upper case,
    digits, other), which caps a hex string at 4 bits per character. Not a password-strength
    meter (dictionary words are not detected); it catches keyboard-mash placeholders such as
    ``"x"`` or 32 identical characters.

    >>> secret_entropy_bits("x"), secret_entropy_bits("a" * 32)
    (0.0, 0.0)
    >>> round(secret_entropy_bits("0123456789abcdef"))
    64
    """
    if not secret:
        return 0.0
    n = len(secret)
    counts = Counter(secret)
    shannon = -sum(c / n * math.log2(c / n) for c in counts.values())
    pool = (
        26 * any(ch.islower() for ch in secret)
        + 26 * any(ch.isupper() for ch in secret)
        + 10 * any(ch.isdigit() for ch in secret)
        + 33 * any(not ch.isalnum() for ch in secret)
    )
    per_char = min(shannon, math.log2(max(pool, 1)))
    return max(0.0, per_char * n)


def secret_weakness(secret: str, *, min_bits: float = MIN_SECRET_BITS) -> str | None:
    """Why ``secret`` is too weak for production, or ``None`` when it is acceptable.

    Refused: a placeholder (:data:`PLACEHOLDER_SECRETS`), a repetition of a shorter pattern
    (``"abab..."``, ``"0123456789" * 4``), or an estimated entropy below ``min_bits``
    (:func:`secret_entropy_bits`).

    >>> secret_weakness("x")
    'low entropy (about 0 bits, needs at least 48)'
    >>> secret_weakness("ab" * 20)
    'low entropy (a pattern of 2 characters repeated)'
    >>> secret_weakness("kV3q-8ZpL1x_Rw7TnB0yHc5sJ2mDf9Ga4EuQ6") is None
    True
    """
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "a placeholder"
    period = (secret + secret).find(secret, 1)
    if 0 < period < len(secret):
        if period == 1:
            return "low entropy (one character repeated)"
        return f"low entropy (a pattern of {period} characters repeated)"
    bits = secret_entropy_bits(secret)
    if bits < min_bits:
        return f"low entropy (about {bits:.0f} bits, needs at least {min_bits:.0f})"
    return None


def development_secret(state_dir: Path, *, name: str = "jwt-secret") -> str:
    """The random secret ``name`` of a state directory, created on first use.

    Stored as ``<state_dir>/<name>.key`` with permissions 0600 (created atomically, so two
    processes starting together agree on one secret) and reused on every later start with the
    same state directory. The value is never logged or printed. When the directory cannot be
    written, a random secret for this process only is returned (tokens then end with it) and a
    warning is logged.

    Parameters
    ----------
    state_dir : pathlib.Path
        The state directory (created when missing).
    name : str
        File stem of the secret.

    Returns
    -------
    str
        A 256-bit URL-safe random secret.
    """
    path = Path(state_dir) / f"{name}.key"
    try:
        existing = _read_secret(path)
        if existing is not None:
            return existing
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(value + "\n")
            try:
                os.link(tmp, path)  # fails if another process won the race: use theirs
            except FileExistsError:
                existing = _read_secret(path)
                if existing is not None:
                    return existing
                os.replace(tmp, path)
                return value
        finally:
            tmp.unlink(missing_ok=True)
        return value
    except OSError as exc:
        log.warning(
            "cannot keep the development secret %s (%s): using one for this process only; "
            "tokens stop working on restart",
            path,
            exc.strerror or exc,
        )
        return secrets.token_urlsafe(32)


def _read_secret(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by others (mode %o): set to 0600", path, mode)
    return text if len(text) >= 32 else None


def default_state_dir() -> Path:
    """Per-user state directory (``platformdirs.user_state_dir("heartline")``)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("heartline"))


class Settings(BaseSettings):
    """Heartline service settings.

    Attributes
    ----------
    environment : {"development", "production"}
        ``production`` refuses placeholder secrets and anonymous broker access.
    state_dir : pathlib.Path
        Run/data directory: default SQLite database, the child broker's config and persistence,
        the simulated devices' store-and-forward queues.
    database_url : str or None
        SQLAlchemy URL (``postgresql+psycopg://user@host/db`` or ``sqlite:///path``). ``None``
        means ``sqlite:///<state_dir>/heartline.db`` (see :meth:`resolved_database_url`).
    broker_url : str or None
        ``mqtt[s]://[user:password@]host:port``. ``None``: Heartline starts its own Mosquitto.
    mqtt_partitions : int
        Number of topic partitions (processor workers); devices and processors must agree.
    mosquitto_binary : str or None
        Path of the ``mosquitto`` executable (``None``: found on ``PATH`` or ``/usr/sbin``).
    broker_username, broker_password : str, SecretStr
        Credentials used by Heartline's own clients on a broker that refuses anonymous access
        (the processor account; devices have their own accounts named by their device id).
    mqtt_tls_certfile, mqtt_tls_keyfile : pathlib.Path or None
        PEM certificate and key of Heartline's own Mosquitto: it then listens with TLS and
        clients connect with ``mqtts://``. ``None``: plain MQTT.
    mqtt_tls_cafile : pathlib.Path or None
        CA file clients verify the broker's certificate with (turns TLS on for the clients;
        default with an own broker: the certificate itself, right when it is self-signed).
    no_data_alert_s : float or None
        A patient whose frames stop arriving for this long gets a technical ``no_data`` alert
        (closed when frames arrive again); ``None``: off.
    frame_max_ahead_s, frame_max_age_s : float or None
        Frames starting more than ``frame_max_ahead_s`` after the server's clock, or ending
        more than ``frame_max_age_s`` before it, are quarantined as ``clock_skew``
        (``None``: no limit). The age limit leaves room for a device's store-and-forward queue
        (a day of frames by default) to be replayed after a long outage.
    device_strike_limit, device_strike_window_s, device_backoff_s : int, float, float
        A device with ``device_strike_limit`` refused frames within ``device_strike_window_s``
        has its frames dropped for ``device_backoff_s`` and is flagged to the admins
        (a ``device_faulty`` alert).
    device_rate_factor, device_burst_s, device_initial_burst_s : float or None, float, float
        Per-device frame budget: seconds of signal a device may send per second beyond a burst
        of ``device_burst_s`` (``device_initial_burst_s`` for a device first seen, more when its
        first frame is an older backlog); frames over it are quarantined as ``rate_limited``,
        count towards the block above, and are sent again by the device later
        (``device_rate_factor=None``: no budget). See :mod:`heartline.ingestion.processor`.
    rhythm_interval_s : float
        The stream processors classify each device's last 30 s with the rhythm model (AF alarm,
        noisy-signal masking) every ``rhythm_interval_s`` seconds of its data (default 5 s).
        The rhythm stage is the largest share of a processor's CPU per patient, so a longer
        interval holds more patients per core at the cost of later rhythm verdicts (what it
        costs and saves: ``docs/results/stream.md``).
    af_gate : bool
        The stream processors turn a beat model's ``S`` call into ``N`` while the device's latest
        rhythm verdict is atrial fibrillation (AAMI EC57 convention; :mod:`heartline.edge.af_gate`,
        ``StreamProcessor(af_gate=...)``). Off by default; what it changes on MIT-BIH DS2:
        ``docs/results/beat-classifier.md``.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARTLINE_", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production"] = "development"
    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: str | None = None
    broker_url: str | None = None
    mqtt_partitions: int = Field(default=8, ge=1, le=1024)
    mosquitto_binary: str | None = None
    broker_username: str = "heartline"
    broker_password: SecretStr = SecretStr("changeme")
    mqtt_tls_certfile: Path | None = None
    mqtt_tls_keyfile: Path | None = None
    mqtt_tls_cafile: Path | None = None
    # stream-processor fault isolation (see heartline.ingestion.processor)
    no_data_alert_s: float | None = Field(default=30.0, gt=0)
    frame_max_ahead_s: float | None = Field(default=300.0, gt=0)
    frame_max_age_s: float | None = Field(default=7 * 86_400.0, gt=0)
    device_strike_limit: int = Field(default=20, ge=1)
    device_strike_window_s: float = Field(default=60.0, gt=0)
    device_backoff_s: float = Field(default=60.0, gt=0)
    device_rate_factor: float | None = Field(default=4.0, ge=1)
    device_burst_s: float = Field(default=600.0, gt=0)
    device_initial_burst_s: float = Field(default=60.0, gt=0)
    rhythm_interval_s: float = Field(
        default=DEFAULT_RHYTHM_INTERVAL_S, ge=MIN_RHYTHM_INTERVAL_S, le=MAX_RHYTHM_INTERVAL_S
    )
    af_gate: bool = False

    @field_validator("state_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(v).expanduser()

    @field_validator("mqtt_tls_certfile", "mqtt_tls_keyfile", "mqtt_tls_cafile")
    @classmethod
    def _expand_optional(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser()

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.mqtt_tls_certfile is None) != (self.mqtt_tls_keyfile is None):
            raise ValueError(
                "set HEARTLINE_MQTT_TLS_CERTFILE and HEARTLINE_MQTT_TLS_KEYFILE together"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        bad = []
        for name in sorted(type(self).model_fields):
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                why = secret_weakness(value.get_secret_value())
                if why is not None:
                    bad.append(f"HEARTLINE_{name.upper()} is {why}")
        if bad:
            kind = "placeholder" if all("placeholder" in b for b in bad) else "weak"
            raise ValueError(
                f"environment={self.environment!r} refuses {kind} secrets: {'; '.join(bad)}. "
                'Use a random value, e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"` '
                "(or HEARTLINE_ENVIRONMENT=development for local work)"
            )
        return self

    @property
    def is_development(self) -> bool:
        """``True`` in the development environment."""
        return self.environment == "development"

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in :attr:`state_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'heartline.db').as_posix()}"


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment, with keyword ``overrides`` on top.

    Raises
    ------
    pydantic.ValidationError
        A value is invalid, or a secret is a placeholder outside development.
    """
    return Settings(**overrides)
