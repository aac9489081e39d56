"""Typed service configuration (pydantic-settings), built by :func:`load_settings`.

Every field can be set from the environment with the prefix ``HEARTLINE_`` (for example
``HEARTLINE_DATABASE_URL``, ``HEARTLINE_BROKER_URL``, ``HEARTLINE_ENVIRONMENT=production``).
Nothing is built at import time: call :func:`load_settings` (tests pass overrides).

Secrets are :class:`pydantic.SecretStr` fields. Every such field, including ones added later by
subclasses or by other modules of the service (JWT keys...), is checked by one validator: outside
``development`` a secret that is empty or a known placeholder (``"changeme"``...) is refused.

>>> s = load_settings(state_dir="/tmp/hl-doc", environment="development")
>>> s.resolved_database_url()
'sqlite:////tmp/hl-doc/heartline.db'
>>> s.broker_url is None
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PLACEHOLDER_SECRETS", "Settings", "default_state_dir", "load_settings"]

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
        for name in type(self).model_fields:
            value = getattr(self, name)
            if (
                isinstance(value, SecretStr)
                and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
            ):
                bad.append(f"HEARTLINE_{name.upper()}")
        if bad:
            raise ValueError(
                f"environment={self.environment!r} refuses placeholder secrets; set {', '.join(sorted(bad))} "
                "to real values (or use HEARTLINE_ENVIRONMENT=development for local work)"
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
