"""Mosquitto as a supervised child process, and broker URLs.

Heartline's one-command demo and the tests start a private Mosquitto 2 broker
(:class:`MosquittoSupervisor`) instead of depending on a system service: its own config file,
a free port on 127.0.0.1, persistence in the run directory (queued QoS 1 messages and persistent
sessions survive a restart), a watchdog thread that restarts it when it dies, and a clean stop.

In production mode anonymous access is refused and clients authenticate against a password file
written in Mosquitto's own PBKDF2-SHA512 format (``$7$``), so no ``mosquitto_passwd`` is needed.

Per-device credentials: devices are broker users named by their device id, and (in production,
or with ``acl=True``) an ACL file lets a device write only its own frames topic
(``heartline/v1/+/<device_id>/frames``) and read only its own storage acknowledgements
(``heartline/v1/acks/<device_id>``); the processor user has ``readwrite heartline/#``.
Mosquitto drops ACL-denied QoS 0/1 publishes silently (the client still gets its PUBACK).
:meth:`MosquittoSupervisor.set_users` registers or rotates devices at run time (SIGHUP reload).

TLS: given a certificate and key, the supervisor adds a TLS listener; clients connect with
``mqtts://`` addresses (:func:`configure_client` calls paho's ``tls_set``).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from heartline.errors import HeartlineError

__all__ = [
    "RESERVED_USERNAMES",
    "BrokerAddress",
    "BrokerError",
    "MosquittoSupervisor",
    "configure_client",
    "find_mosquitto",
    "mosquitto_password_hash",
    "parse_broker_url",
    "reserved_username",
    "wait_for_port",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with `apt-get install mosquitto` (Debian/Ubuntu), or pass mosquitto_binary= / "
    "HEARTLINE_MOSQUITTO_BINARY, or point HEARTLINE_BROKER_URL at a running broker"
)


class BrokerError(HeartlineError):
    """The MQTT broker is missing, cannot start, or died too often."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where and how to connect to an MQTT broker."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None

    @property
    def url(self) -> str:
        """``mqtt://host:port`` or ``mqtts://host:port`` (credentials left out)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        """The same broker with other credentials."""
        return replace(self, username=username, password=password)


def parse_broker_url(url: str, *, ca_certs: str | os.PathLike[str] | None = None) -> BrokerAddress:
    """Parse ``mqtt[s]://[user[:password]@]host[:port]`` (port 1883, or 8883 for ``mqtts``).

    ``ca_certs`` (a CA bundle that verifies the broker's certificate) turns TLS on even for an
    ``mqtt://`` URL; ``mqtts://`` without it uses the system's trusted CAs.

    >>> parse_broker_url("mqtt://heartline:s3cret@127.0.0.1:18830")
    BrokerAddress(host='127.0.0.1', port=18830, username='heartline', tls=False, ca_certs=None)
    >>> parse_broker_url("mqtts://broker.example.org").url
    'mqtts://broker.example.org:8883'
    """
    parts = urlsplit(url or "")
    if parts.scheme not in {"mqtt", "tcp", "mqtts", "ssl"}:
        raise ValueError(f"broker url must look like mqtt[s]://host:port, got {url!r}")
    tls = parts.scheme in {"mqtts", "ssl"} or ca_certs is not None
    if not parts.hostname:
        raise ValueError(f"broker url {url!r} has no host")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"broker url {url!r} has a bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        ca_certs=None if ca_certs is None else str(ca_certs),
    )


def configure_client(client: Any, address: BrokerAddress) -> None:
    """Apply ``address``'s credentials and TLS settings to a paho ``mqtt.Client``.

    TLS (``address.tls``) uses ``client.tls_set(ca_certs=address.ca_certs)``: the broker's
    certificate is verified, host name included, against that CA file (``None``: system CAs).
    """
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        if address.ca_certs is not None and not Path(address.ca_certs).is_file():
            raise ValueError(f"ca_certs file {address.ca_certs} does not exist")
        client.tls_set(ca_certs=address.ca_certs)


def find_mosquitto(binary: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``mosquitto`` executable (argument, ``PATH``, then ``/usr/sbin``).

    Raises
    ------
    BrokerError
        Not found, with install instructions.
    """
    if binary is not None:
        path = Path(binary)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BrokerError(f"mosquitto binary {path} is not an executable file; {INSTALL_HINT}")
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise BrokerError(f"the Mosquitto MQTT broker is not installed; {INSTALL_HINT}")
    return Path(found)


def mosquitto_password_hash(
    password: str, *, iterations: int = 101, salt: bytes | None = None
) -> str:
    """Mosquitto 2 password-file hash: ``$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """``True`` when nothing listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, *, timeout_s: float) -> bool:
    """Poll until a TCP connection to ``host:port`` succeeds; ``False`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


#: Broker account names that no device may take (compared case-insensitively): the default
#: service account of Heartline's processors and the usual administrative names.
RESERVED_USERNAMES: frozenset[str] = frozenset(
    {"heartline", "mosquitto", "admin", "administrator", "root", "system", "service", "processor"}
)


def reserved_username(name: str, *, service_accounts: tuple[str | None, ...] = ()) -> str | None:
    """Why ``name`` may not be a device's broker account, or ``None`` when it may.

    Device ids double as broker user names, so a device called like a service account would
    replace that account's password (and gain its ``readwrite heartline/#``).

    >>> reserved_username("HeartLine")
    "'HeartLine' is reserved for a broker service account"
    >>> reserved_username("proc", service_accounts=("proc",))
    "'proc' is reserved for a broker service account"
    >>> reserved_username("sim-0001") is None
    True
    """
    folded = name.casefold()
    names = RESERVED_USERNAMES | {s.casefold() for s in service_accounts if s}
    if folded in names:
        return f"{name!r} is reserved for a broker service account"
    return None


def _check_users(users: Mapping[str, str]) -> None:
    for name, password in users.items():
        if not name or any(c in name for c in ":+#/ \n\r\t"):
            raise ValueError(f"users: bad user name {name!r} (no ':', '+', '#', '/' or spaces)")
        if not isinstance(password, str) or not password or "\n" in password:
            raise ValueError(f"users: user {name!r} needs a non-empty one-line password")


class MosquittoSupervisor:
    """Run and supervise a private Mosquitto broker.

    Parameters
    ----------
    run_dir : path-like
        Directory for ``mosquitto.conf``, the password file, the log and the persistence file.
    port : int, optional
        TCP port on ``host`` (default: a free port, kept across restarts).
    host : str
        Listener address, loopback by default.
    production : bool
        Refuse anonymous clients; ``users`` must then name at least one account.
    users : dict, optional
        ``{username: password}`` written to the password file: the processor account and, for
        per-device credentials, one account per device named by its device id.
    acl : bool, optional
        Write an ACL file (default: ``production``): a device user may write only
        ``heartline/v1/+/<its id>/frames`` and read only ``heartline/v1/acks/<its id>``;
        ``processor_user`` may read and write ``heartline/#``.
    processor_user : str, optional
        The service account (``settings.broker_username``); :attr:`address` carries its
        credentials. Default: the first of ``users``.
    tls_certfile, tls_keyfile : path-like, optional
        PEM server certificate and key: adds a TLS listener on ``tls_port`` (clients need no
        certificate of their own).
    tls_cafile : path-like, optional
        CA that verifies the server certificate, handed to clients in :attr:`address`
        (default: ``tls_certfile``, right for a self-signed certificate).
    tls_port : int, optional
        Port of the TLS listener (default: a free port).
    plain_listener : bool
        Keep the plain listener on ``port`` when TLS is on (set ``False`` for TLS only).
    binary : path-like, optional
        The ``mosquitto`` executable (default: :func:`find_mosquitto`).
    supervise : bool
        Restart the broker when it dies unexpectedly.
    max_restarts : int
        Give up (and log an error) after this many unexpected deaths.
    message_size_limit : int
        Largest publication payload the broker accepts, in bytes (bigger ones are dropped
        there, before any processor reads them).
    max_queued_messages : int
        Per-client queue of QoS 1 messages for offline persistent sessions (Mosquitto's default
        1000 would silently drop frames of a processor that is down for 20 minutes).
    start_timeout_s : float
        How long to wait for the listener.

    Examples
    --------
    Start, use and stop a private broker (``broker.address`` has host, port and credentials)::

        with MosquittoSupervisor(run_dir) as broker:
            publisher = FramePublisher(queue, address=broker.address, device_id="sim-0001", partitions=8)
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        production: bool = False,
        users: Mapping[str, str] | None = None,
        acl: bool | None = None,
        processor_user: str | None = None,
        tls_certfile: str | os.PathLike[str] | None = None,
        tls_keyfile: str | os.PathLike[str] | None = None,
        tls_cafile: str | os.PathLike[str] | None = None,
        tls_port: int | None = None,
        plain_listener: bool = True,
        binary: str | os.PathLike[str] | None = None,
        supervise: bool = True,
        max_restarts: int = 10,
        max_queued_messages: int = 1_000_000,
        message_size_limit: int = 2 * 1024 * 1024,
        start_timeout_s: float = 10.0,
    ) -> None:
        if production and not users:
            raise ValueError(
                "production=True refuses anonymous access: give users={name: password}"
            )
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        if tls_port is not None and not 0 < tls_port < 65536:
            raise ValueError(f"tls_port must be in 1..65535, got {tls_port}")
        if (tls_certfile is None) != (tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile must be given together")
        for name, f in (("tls_certfile", tls_certfile), ("tls_keyfile", tls_keyfile)):
            if f is not None and not Path(f).is_file():
                raise ValueError(f"{name} {f} does not exist")
        if tls_certfile is None and not plain_listener:
            raise ValueError("plain_listener=False needs TLS (tls_certfile and tls_keyfile)")
        _check_users(users or {})
        if processor_user is not None and processor_user not in (users or {}):
            raise ValueError(f"processor_user {processor_user!r} is not one of users")
        self.binary = find_mosquitto(binary)
        self.run_dir = Path(run_dir)
        self.host = host
        self.port = port
        self.production = production
        self.users = dict(users or {})
        self.acl = production if acl is None else bool(acl)
        self.processor_user = processor_user
        self.tls_certfile = None if tls_certfile is None else Path(tls_certfile).resolve()
        self.tls_keyfile = None if tls_keyfile is None else Path(tls_keyfile).resolve()
        self.tls_cafile = (
            Path(tls_cafile).resolve() if tls_cafile is not None else self.tls_certfile
        )
        self.tls_port = tls_port
        self.plain_listener = plain_listener
        self.supervise = supervise
        self.max_restarts = max_restarts
        self.max_queued_messages = max_queued_messages
        if message_size_limit < 1:
            raise ValueError(f"message_size_limit must be >= 1 byte, got {message_size_limit}")
        self.message_size_limit = int(message_size_limit)
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._gave_up = False

    # ------------------------------------------------------------------ configuration
    @property
    def config_path(self) -> Path:
        return self.run_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "mosquitto.log"

    @property
    def acl_path(self) -> Path:
        return self.run_dir / "acl"

    @property
    def password_path(self) -> Path:
        return self.run_dir / "passwords"

    @property
    def tls(self) -> bool:
        """``True`` when a TLS listener is configured."""
        return self.tls_certfile is not None

    def _service_credentials(self) -> tuple[str | None, str | None]:
        if self.processor_user is not None:
            return self.processor_user, self.users[self.processor_user]
        if self.users:
            return next(iter(self.users.items()))
        return None, None

    @property
    def address(self) -> BrokerAddress:
        """Address for clients: the TLS listener when configured, with the processor user's
        credentials (first user when ``processor_user`` is not given)."""
        if self.port is None:
            raise BrokerError("broker not started yet")
        if self.tls:
            return self.tls_address
        return self.plain_address

    @property
    def plain_address(self) -> BrokerAddress:
        """The plain (non-TLS) listener, with the processor user's credentials."""
        if self.port is None or not self.plain_listener:
            raise BrokerError("no plain listener (not started, or plain_listener=False)")
        return BrokerAddress(self.host, self.port, *self._service_credentials())

    @property
    def tls_address(self) -> BrokerAddress:
        """The TLS listener (``mqtts://``), with the processor user's credentials."""
        if self.tls_port is None or not self.tls:
            raise BrokerError("no TLS listener (not started, or no tls_certfile)")
        user, password = self._service_credentials()
        return BrokerAddress(
            self.host,
            self.tls_port,
            user,
            password,
            tls=True,
            ca_certs=str(self.tls_cafile) if self.tls_cafile else None,
        )

    def device_address(self, device_id: str) -> BrokerAddress:
        """:attr:`address` with ``device_id``'s own credentials (a registered user)."""
        if device_id not in self.users:
            raise KeyError(f"device {device_id!r} has no broker credentials; use set_users()")
        return self.address.with_credentials(device_id, self.users[device_id])

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        persist = self.run_dir / "persistence"
        persist.mkdir(exist_ok=True)
        lines = [
            "# written by heartline.ingestion.broker.MosquittoSupervisor",
            "per_listener_settings false",
            f"allow_anonymous {'false' if self.production else 'true'}",
            "persistence true",
            f"persistence_location {persist.as_posix()}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
            # larger publications are dropped by the broker (frames are at most 512 KiB)
            f"message_size_limit {self.message_size_limit}",
            "max_queued_bytes 0",
            "max_inflight_messages 100",
            f"log_dest file {self.log_path.as_posix()}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto would switch to the `mosquitto` user, who cannot write run_dir.
            lines.append(f"user {getpass.getuser()}")
        if self.users:
            self._write_passwords()
            lines.append(f"password_file {self.password_path.as_posix()}")
        if self.acl:
            self._write_acl()
            lines.append(f"acl_file {self.acl_path.as_posix()}")
        # Listener-specific options follow their `listener` line.
        if self.plain_listener:
            lines.append(f"listener {self.port} {self.host}")
        if self.tls:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"certfile {self.tls_certfile.as_posix()}",  # type: ignore[union-attr]
                f"keyfile {self.tls_keyfile.as_posix()}",  # type: ignore[union-attr]
                "require_certificate false",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _write_passwords(self) -> None:
        tmp = self.password_path.with_suffix(".tmp")
        tmp.write_text(
            "".join(f"{u}:{mosquitto_password_hash(p)}\n" for u, p in self.users.items())
        )
        tmp.chmod(0o600)
        tmp.replace(self.password_path)  # atomic: a reload never sees half a file

    def _write_acl(self) -> None:
        service, _ = self._service_credentials()
        lines = ["# written by heartline.ingestion.broker.MosquittoSupervisor"]
        if service is not None:
            lines += [f"user {service}", "topic readwrite heartline/#"]
        lines += [
            # %u is the username = device id; Mosquitto refuses the pattern for names with + # /.
            "pattern write heartline/v1/+/%u/frames",
            "pattern read heartline/v1/acks/%u",
        ]
        tmp = self.acl_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)
        tmp.replace(self.acl_path)

    def set_users(self, users: Mapping[str, str], *, timeout_s: float = 5.0) -> None:
        """Replace the broker's accounts (register, rotate or revoke devices) without a restart.

        Rewrites the password (and ACL) file and sends SIGHUP; Mosquitto reloads them and new
        connections use the new accounts. Returns once the broker has logged the reload
        (or after ``timeout_s``). Clients already connected keep their sessions.

        Raises
        ------
        ValueError
            A user name or password is unusable, or ``processor_user`` is missing from ``users``.
        """
        users = dict(users)
        _check_users(users)
        if self.processor_user is not None and self.processor_user not in users:
            raise ValueError(f"users must keep the processor_user {self.processor_user!r}")
        service, service_password = self._service_credentials()
        if service is not None and service in users and users[service] != service_password:
            # Device accounts come and go here; the service account's password is fixed for the
            # broker's lifetime (a device registered under its name must not replace it).
            raise ValueError(
                f"set_users may not change the password of the service account {service!r}"
            )
        if self.production and not users:
            raise ValueError("production=True refuses anonymous access: users cannot be empty")
        with self._lock:
            had_users = bool(self.users)
            self.users = users
            if self._proc is None or self._proc.poll() is not None or not had_users:
                # Not running (the next start writes the files), or the config had no
                # password_file yet: only a restart adds one.
                if self._proc is not None and self._proc.poll() is None:
                    self._write_config()
                    self.restart()
                return
            self._write_passwords()
            if self.acl:
                self._write_acl()
            before = self._reload_count()
            self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._reload_count() <= before:
            time.sleep(0.02)

    def _reload_count(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Reloading config")
        except OSError:
            return 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MosquittoSupervisor:
        """Start the broker (and the watchdog); returns once it accepts connections."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            if self.port is None:
                self.port = free_port(self.host)
            if self.tls and self.tls_port is None:
                self.tls_port = free_port(self.host)
            self._write_config()
            self._stopping.clear()
            self._spawn()
        if self.supervise and (self._watchdog is None or not self._watchdog.is_alive()):
            self._watchdog = threading.Thread(
                target=self._watch, name="mosquitto-watchdog", daemon=True
            )
            self._watchdog.start()
        return self

    def _ports(self) -> list[int]:
        ports = [int(self.port or 0)] if self.plain_listener else []
        return ports + ([int(self.tls_port or 0)] if self.tls else [])

    def _spawn(self) -> None:
        for port in self._ports():
            if not port_is_free(self.host, port):
                raise BrokerError(
                    f"cannot start mosquitto: {self.host}:{port} is already in use by another process"
                )
        cmd = [str(self.binary), "-c", str(self.config_path)]
        log.info("starting %s on %s:%s", self.binary, self.host, self.port)
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode} at start: {err.strip() or self._log_tail()}"
                )
            if (
                all(wait_for_port(self.host, p, timeout_s=0.2) for p in self._ports())
                and self._proc.poll() is None
            ):
                return
        self._terminate(self._proc, timeout_s=2.0)
        raise BrokerError(
            f"mosquitto did not listen on {self.host}:{self.port} within {self.start_timeout_s} s: {self._log_tail()}"
        )

    def _log_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _watch(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                proc = self._proc
                if self._stopping.is_set() or proc is None or proc.poll() is None:
                    continue
                if self.restarts >= self.max_restarts:
                    if not self._gave_up:
                        log.error("mosquitto died %d times; not restarting any more", self.restarts)
                        self._gave_up = True
                    continue
                self.restarts += 1
                log.warning(
                    "mosquitto (pid %d) died with code %s; restart %d",
                    proc.pid,
                    proc.returncode,
                    self.restarts,
                )
                try:
                    self._spawn()
                except BrokerError as exc:
                    log.error("restart failed: %s", exc)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Mosquitto saves its persistence file on SIGTERM
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if proc.stderr is not None:
            proc.stderr.close()

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop the watchdog and the broker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        self._stopping.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2.0)
        with self._lock:
            if self._proc is not None:
                self._terminate(self._proc, timeout_s=timeout_s)
                log.info("mosquitto stopped")

    def restart(self, *, timeout_s: float = 5.0) -> None:
        """Graceful restart on the same port (persistence is saved and reloaded)."""
        with self._lock:
            if self._proc is not None:
                self._terminate(self._proc, timeout_s=timeout_s)
            self._spawn()

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (the watchdog restarts it when supervising)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(timeout=5.0)

    def is_running(self) -> bool:
        """``True`` while the broker process is alive."""
        return self.pid is not None

    def __enter__(self) -> MosquittoSupervisor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
