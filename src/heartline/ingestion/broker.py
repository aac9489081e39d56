"""Mosquitto as a supervised child process, and broker URLs.

Heartline's one-command demo and the tests start a private Mosquitto 2 broker
(:class:`MosquittoSupervisor`) instead of depending on a system service: its own config file,
a free port on 127.0.0.1, persistence in the run directory (queued QoS 1 messages and persistent
sessions survive a restart), a watchdog thread that restarts it when it dies, and a clean stop.

In production mode anonymous access is refused and clients authenticate against a password file
written in Mosquitto's own PBKDF2-SHA512 format (``$7$``), so no ``mosquitto_passwd`` is needed.
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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from heartline.errors import HeartlineError

__all__ = [
    "BrokerAddress",
    "BrokerError",
    "MosquittoSupervisor",
    "find_mosquitto",
    "mosquitto_password_hash",
    "parse_broker_url",
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
    password: str | None = None

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (credentials left out)."""
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (port 1883 by default).

    >>> parse_broker_url("mqtt://heartline:s3cret@127.0.0.1:18830")
    BrokerAddress(host='127.0.0.1', port=18830, username='heartline', password='s3cret')
    """
    parts = urlsplit(url or "")
    if parts.scheme not in {"mqtt", "tcp"}:
        raise ValueError(f"broker url must look like mqtt://host:port, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker url {url!r} has no host")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise ValueError(f"broker url {url!r} has a bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


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
        ``{username: password}`` written to the password file.
    binary : path-like, optional
        The ``mosquitto`` executable (default: :func:`find_mosquitto`).
    supervise : bool
        Restart the broker when it dies unexpectedly.
    max_restarts : int
        Give up (and log an error) after this many unexpected deaths.
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
        users: dict[str, str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        supervise: bool = True,
        max_restarts: int = 10,
        max_queued_messages: int = 1_000_000,
        start_timeout_s: float = 10.0,
    ) -> None:
        if production and not users:
            raise ValueError(
                "production=True refuses anonymous access: give users={name: password}"
            )
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self.binary = find_mosquitto(binary)
        self.run_dir = Path(run_dir)
        self.host = host
        self.port = port
        self.production = production
        self.users = dict(users or {})
        self.supervise = supervise
        self.max_restarts = max_restarts
        self.max_queued_messages = max_queued_messages
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
    def address(self) -> BrokerAddress:
        """Address for clients (with the first user's credentials in production)."""
        if self.port is None:
            raise BrokerError("broker not started yet")
        user, password = next(iter(self.users.items())) if self.users else (None, None)
        return BrokerAddress(self.host, self.port, user, password)

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
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.production else 'true'}",
            "persistence true",
            f"persistence_location {persist.as_posix()}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
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
            pw = self.run_dir / "passwords"
            pw.write_text(
                "".join(f"{u}:{mosquitto_password_hash(p)}\n" for u, p in self.users.items())
            )
            pw.chmod(0o600)
            lines.append(f"password_file {pw.as_posix()}")
        self.config_path.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MosquittoSupervisor:
        """Start the broker (and the watchdog); returns once it accepts connections."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            if self.port is None:
                self.port = free_port(self.host)
            self._write_config()
            self._stopping.clear()
            self._spawn()
        if self.supervise and (self._watchdog is None or not self._watchdog.is_alive()):
            self._watchdog = threading.Thread(
                target=self._watch, name="mosquitto-watchdog", daemon=True
            )
            self._watchdog.start()
        return self

    def _spawn(self) -> None:
        if not port_is_free(self.host, int(self.port or 0)):
            raise BrokerError(
                f"cannot start mosquitto: {self.host}:{self.port} is already in use by another process"
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
                wait_for_port(self.host, int(self.port or 0), timeout_s=0.2)
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
