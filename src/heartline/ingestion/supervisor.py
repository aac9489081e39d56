"""Stream-processor workers as supervised child processes (what ``heartline serve`` runs).

:class:`WorkerSupervisor` starts one ``heartline worker`` process per partition set (the same
entry point an operator runs on another machine), watches them and restarts any that exits
while the system runs. A restarted worker keeps its MQTT client id, so the broker hands it the
persistent sessions' queued messages; frames that were received but not committed are
redelivered (never acknowledged) and the devices replay what was not storage-acknowledged, so
a crash loses nothing.

No orphans: each worker runs in its own process group (a Ctrl-C in the terminal reaches only
the supervisor, which stops the workers in order: SIGTERM, drain, then SIGKILL of the group),
asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``) and also polls for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from heartline.ingestion.broker import BrokerAddress
from heartline.ingestion.processor import ProcessorCounters

__all__ = ["WORKER_COMMAND", "WorkerSupervisor", "broker_url_with_credentials"]

log = logging.getLogger(__name__)

#: The command that starts one worker (``heartline worker``), arguments follow.
WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "heartline.cli.worker")


def broker_url_with_credentials(address: BrokerAddress) -> str:
    """``mqtt[s]://user:password@host:port`` of ``address`` (the password is not in ``.url``)."""
    scheme = "mqtts" if address.tls else "mqtt"
    cred = ""
    if address.username:
        cred = quote(address.username, safe="")
        if address.password:
            cred += ":" + quote(address.password, safe="")
        cred += "@"
    return f"{scheme}://{cred}{address.host}:{address.port}"


class WorkerSupervisor:
    """Start, watch and restart ``heartline worker`` processes.

    Parameters
    ----------
    address : BrokerAddress
        The broker (credentials are handed to the workers in their environment, never on the
        command line).
    database_url : str
        SQLAlchemy URL (in the workers' environment too).
    model : path-like
        ONNX beat classifier.
    partition_sets : sequence of sequence of int
        The partitions of each worker.
    n_partitions : int
        Total partitions.
    run_dir : path-like
        Status files (``worker-<i>.json``).
    client_prefix : str
        Worker ``i``'s MQTT client id is ``<client_prefix>-w<i>`` (stable across restarts).
    processor_options : dict, optional
        Extra :class:`~heartline.ingestion.processor.StreamProcessor` keywords (JSON-able).
    restart_delay_s : float
        Pause before restarting a worker that exited.
    command : sequence of str
        The worker command (default :data:`WORKER_COMMAND`).
    """

    def __init__(
        self,
        *,
        address: BrokerAddress,
        database_url: str,
        model: str | os.PathLike[str],
        partition_sets: Sequence[Sequence[int]],
        n_partitions: int,
        run_dir: str | os.PathLike[str],
        client_prefix: str = "heartline-proc",
        processor_options: dict[str, Any] | None = None,
        restart_delay_s: float = 0.5,
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        if not partition_sets or any(not p for p in partition_sets):
            raise ValueError(f"partition_sets must be non-empty lists, got {partition_sets!r}")
        self.address = address
        self.database_url = database_url
        self.model = str(model)
        self.partition_sets = [list(map(int, p)) for p in partition_sets]
        self.n_partitions = int(n_partitions)
        self.run_dir = Path(run_dir)
        self.client_prefix = client_prefix
        self.processor_options = dict(processor_options or {})
        self.restart_delay_s = float(restart_delay_s)
        self.command = tuple(command)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.partition_sets)
        self.restarts = 0
        self.exits: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def status_path(self, i: int) -> Path:
        return self.run_dir / f"worker-{i}.json"

    def _spawn(self, i: int) -> None:
        parts = self.partition_sets[i]
        with contextlib.suppress(FileNotFoundError):
            self.status_path(i).unlink()
        args = [
            *self.command,
            "--partitions",
            ",".join(map(str, parts)),
            "--n-partitions",
            str(self.n_partitions),
            "--model",
            self.model,
            "--client-id",
            f"{self.client_prefix}-w{i}",
            "--status-file",
            str(self.status_path(i)),
            "--parent-pid",
            str(os.getpid()),
            "--options",
            json.dumps(self.processor_options),
        ]
        if self.address.ca_certs:
            args += ["--broker-ca", str(self.address.ca_certs)]
        env = {
            **os.environ,
            "HEARTLINE_WORKER_BROKER_URL": broker_url_with_credentials(self.address),
            "HEARTLINE_WORKER_DATABASE_URL": self.database_url,
        }
        self.procs[i] = subprocess.Popen(args, env=env, start_new_session=True)
        log.info("worker %d (pid %d): partitions %s", i, self.procs[i].pid, parts)

    def start(self, *, wait_s: float = 120.0) -> WorkerSupervisor:
        """Start every worker and wait until each is connected and subscribed."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        try:
            for i in range(len(self.partition_sets)):
                self._spawn(i)
            self.wait_connected(wait_s)
        except BaseException:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._monitor.start()
        return self

    def wait_connected(self, timeout_s: float) -> None:
        """Wait until every worker reports a connected broker session (RuntimeError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.statuses()
            if all(s is not None and s.get("connected") for s in st):
                return
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None and not self._monitor:
                    raise RuntimeError(
                        f"worker {i} exited with status {p.returncode} while starting"
                    )
            if time.monotonic() >= deadline:
                raise RuntimeError(f"workers not connected after {timeout_s:.0f} s: {st}")
            time.sleep(0.1)

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for i, p in enumerate(self.procs):
                if p is None or p.poll() is None:
                    continue
                with self._lock:
                    if self._stopping.is_set():
                        return
                    log.warning(
                        "worker %d (pid %d) exited with status %s; restarting it",
                        i,
                        p.pid,
                        p.returncode,
                    )
                    self.exits.append({"worker": i, "pid": p.pid, "status": p.returncode})
                    time.sleep(self.restart_delay_s)
                    self._spawn(i)
                    self.restarts += 1

    def kill(self, i: int) -> int:
        """SIGKILL worker ``i`` (as a crash would); the supervisor restarts it. Returns its pid."""
        p = self.procs[i]
        assert p is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        return p.pid

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker (they drain and disconnect), SIGKILL what is left (idempotent)."""
        with self._lock:
            self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
            self._monitor = None
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for p in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for p in self.procs:
            if p is None:
                continue
            if p.poll() is None:
                log.warning("worker pid %d did not stop in %.0f s; SIGKILL", p.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # the group: anything the worker started
            p.wait()

    def __enter__(self) -> WorkerSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ status
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def statuses(self) -> list[dict[str, Any] | None]:
        """The workers' latest status files (``None`` for a worker that has not written one)."""
        out: list[dict[str, Any] | None] = []
        for i in range(len(self.partition_sets)):
            try:
                out.append(json.loads(self.status_path(i).read_text()))
            except (OSError, ValueError):
                out.append(None)
        return out

    def counters(self) -> list[ProcessorCounters]:
        """Each worker's counters since it (re)started, as last reported."""
        out = []
        for st in self.statuses():
            if st is None:
                continue
            c = dict(st["counters"])
            c.pop("quarantined_total", None)
            out.append(ProcessorCounters(**c))
        return out

    def device_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for st in self.statuses():
            if st is not None:
                out.update(st.get("devices", {}))
        return out

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every worker reported, after this call began, that it has nothing pending."""
        t0 = time.time()
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.statuses()
            if all(s is not None and s["written"] >= t0 and s["idle"] for s in st):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
