"""Run a federation with Flower's deployment engine: a SuperLink, N SuperNodes, ``flwr run``.

Everything is started by Flower's own command-line entry points, as separate processes talking
over the network (here, the loopback interface):

* ``flower-superlink --insecure --disable-runtime-dependency-installation`` with its Fleet,
  Control and runtime APIs on free ports (never Flower's defaults: other services on this machine
  may hold them);
* one ``flower-supernode --insecure --superlink 127.0.0.1:<fleet> --node-config
  'manifest="..." partition-id=i'`` per hospital (each reads only its own records);
* ``flwr run <app> heartline-local --stream`` against a private ``FLWR_HOME`` naming the
  SuperLink's Control API.

Every process starts in its own process group; :class:`Deployment` stops them all by PID (SIGTERM
to the group, then SIGKILL) at the end, on error and on Ctrl-C, so no orphan is left. With
``superlink=HOST:PORT`` the run joins an existing deployment instead (its Control API), starting
nothing but ``flwr run``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heartline.errors import HeartlineError
from heartline.federated import require_flwr

__all__ = [
    "APP_DIR",
    "SECAGG_APP_DIR",
    "Deployment",
    "DeploymentError",
    "FederatedRunConfig",
    "ManagedProcess",
    "find_free_port",
    "pid_alive",
    "port_is_free",
    "process_tree",
    "run_federation",
]

logger = logging.getLogger(__name__)

#: The Flower App directories (their pyproject.toml lists no torch): plain, and with SecAgg+.
APP_DIR = Path(__file__).resolve().parent / "app"
SECAGG_APP_DIR = Path(__file__).resolve().parent / "app_secagg"
ROUND_MARKER = "HEARTLINE-ROUND"
_STOP_GRACE_S = 5.0


class DeploymentError(HeartlineError, RuntimeError):
    """A SuperLink, SuperNode or ``flwr run`` failed (the message names which and its log)."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(host: str = "127.0.0.1", *, exclude: set[int] | None = None) -> int:
    """A port the OS reports free (never one in ``exclude``)."""
    exclude = exclude or set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in exclude:
            return port
    raise DeploymentError("no free TCP port found")


def _bin(name: str) -> str:
    """Path of a Flower entry point next to this interpreter, else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise DeploymentError(f"{name} not found: install the extra `heartline[federated]`")
    return found


def _proc_table() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, start time in clock ticks)`` of every process (Linux ``/proc``)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def process_tree(roots: list[int]) -> dict[int, int]:
    """Every descendant of ``roots`` (roots included) that is alive: ``pid -> start time``.

    Flower detaches some of its helpers (``flower-superexec``, ServerApp and ClientApp
    processes) into sessions of their own, so a process group does not hold them all; the
    tree does, while their parents live.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out[pid] = table[pid][1]
        stack.extend(children.get(pid, []))
    return out


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs (and, given ``start_time``, is the same process, not a reuse)."""
    info = _proc_table().get(pid) if start_time is not None else None
    if start_time is not None:
        return info is not None and info[1] == start_time and not _is_zombie(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] == "Z"


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n_chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n_chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``grace_s``; reaps the child."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # children of the group (ClientApp / ServerApp processes) may outlive the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_s)


@dataclass(frozen=True)
class FederatedRunConfig:
    """Everything ``heartline federated run`` passes to the Flower App's run config."""

    task: str
    manifest: Path
    num_rounds: int
    strategy: str = "fedavg"
    local_epochs: int = 1
    lr: float = 2e-3
    keep_normal: float = 1.0
    seed: int = 0
    #: redraws the hospitals' training randomness (DP-SGD noise, Poisson batches, shuffles) at
    #: the same partition, data and initialisation (``seed``): round ``r`` of hospital ``p``
    #: trains with round seed ``101 r + p + 10007 noise_seed`` (0: the draws before this option)
    noise_seed: int = 0
    proximal_mu: float = 0.01
    trimmed_beta: float = 0.25
    dp_noise_multiplier: float = 0.0
    dp_clip_norm: float = 1.0
    #: record-level DP-SGD inside each hospital (Opacus) at this epsilon over the whole run (0: off)
    record_dp_epsilon: float = 0.0
    dp_delta: float = 1e-5
    #: pool the hospitals' label counts (and RR sums) once before training into the class
    #: weights and RR standardisation central training would use (off: each site its own)
    global_statistics: bool = True
    #: per-hospital logit adjustment against label skew (needs ``global_statistics``; see
    #: :func:`heartline.training.local.label_skew_adjustment`)
    label_skew: bool = False
    #: FedAdam's server learning rate
    fedadam_eta: float = 0.01
    #: FedAvgM's server learning rate and momentum
    server_lr: float = 1.0
    server_momentum: float = 0.0
    round_timeout_s: float = 600.0
    connect_timeout_s: float = 120.0
    data_dir: Path | None = None
    #: SecAgg+ (Flower's secaggplus_mod + SecAggPlusWorkflow; FedAvg only)
    secure_aggregation: bool = False
    #: the network: ``"hybrid"`` or (rhythm) a hand-feature head of
    #: :data:`heartline.training.local.RHYTHM_HEAD_MODELS` (public input scaler and public class
    #: weights: it runs without the statistics query, ``global_statistics=False``)
    model: str = "hybrid"
    #: local (expected, under DP-SGD: Poisson) batch size and optimiser (rhythm task)
    batch_size: int = 64
    optimizer: str = "adamw"
    #: per-hospital node-config extras, e.g. ``{1: {"behaviour": "nan"}}``
    node_extra: dict[int, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seed < 0 or self.noise_seed < 0:
            raise ValueError(
                f"seed and noise_seed must be >= 0, got {self.seed}, {self.noise_seed}"
            )
        if self.record_dp_epsilon and self.dp_noise_multiplier:
            raise ValueError("choose client-level DP (noise multiplier) or record-level DP-SGD")
        if self.record_dp_epsilon and self.task != "rhythm":
            raise ValueError("record-level DP-SGD is implemented for the rhythm task only")
        if self.model != "hybrid":
            from heartline.training.local import RHYTHM_HEAD_MODELS

            if self.task != "rhythm" or self.model not in RHYTHM_HEAD_MODELS:
                raise ValueError(
                    f"model {self.model!r}: the rhythm task has 'hybrid' and "
                    f"{sorted(RHYTHM_HEAD_MODELS)}, the beats task 'hybrid'"
                )
            if self.global_statistics or self.label_skew:
                raise ValueError(
                    f"model {self.model!r} uses public input scaling and class weights: run it "
                    "with global_statistics=False and label_skew=False (no private statistics)"
                )
        if self.secure_aggregation and (self.strategy != "fedavg" or self.dp_noise_multiplier):
            raise ValueError(
                "secure aggregation runs with --strategy fedavg and without --dp-epsilon "
                "(Flower 1.41's SecAgg+ workflow wraps its FedAvg only)"
            )

    def run_config(self, *, n_hospitals: int, out_dir: Path, initial_weights: Path) -> str:
        items: dict[str, Any] = {
            "task": self.task,
            "num-hospitals": n_hospitals,
            "num-rounds": self.num_rounds,
            "local-epochs": self.local_epochs,
            "lr": float(self.lr),
            "keep-normal": float(self.keep_normal),
            "seed": self.seed,
            "noise-seed": int(self.noise_seed),
            "strategy": self.strategy,
            "proximal-mu": float(self.proximal_mu),
            "trimmed-beta": float(self.trimmed_beta),
            "dp-noise-multiplier": float(self.dp_noise_multiplier),
            "dp-clip-norm": float(self.dp_clip_norm),
            "record-dp-epsilon": float(self.record_dp_epsilon),
            "dp-delta": float(self.dp_delta),
            "global-statistics": bool(self.global_statistics),
            "label-skew": bool(self.label_skew),
            "fedadam-eta": float(self.fedadam_eta),
            "server-lr": float(self.server_lr),
            "server-momentum": float(self.server_momentum),
            "round-timeout-s": float(self.round_timeout_s),
            "connect-timeout-s": float(self.connect_timeout_s),
            "model": self.model,
            "batch-size": int(self.batch_size),
            "optimizer": self.optimizer,
            "out-dir": str(out_dir),
            "initial-weights": str(initial_weights) if str(initial_weights) != "." else "",
        }
        return " ".join(f"{k}={_toml(v)}" for k, v in items.items())


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    """Ask the kernel to SIGTERM this child when the process that started it dies, so that
    even an orchestrator killed with SIGKILL leaves no SuperLink or SuperNode behind (Flower's
    own helpers follow their parents through ``--parent-pid``)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_env(flwr_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLWR_HOME"] = str(flwr_home)
    src = str(Path(__file__).resolve().parents[2])  # .../src: this checkout's heartline wins
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    bin_dir = str(Path(sys.executable).parent)  # the SuperLink spawns flower-superexec by name
    env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Deployment:
    """A local SuperLink and N SuperNodes, or a connection to an existing SuperLink.

    Use as a context manager: every process started is stopped on exit (also on errors and
    Ctrl-C). ``nice`` > 0 starts the children with that niceness.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        superlink: str | None = None,
        nice: int = 0,
        port_picker: Callable[[set[int]], int] | None = None,
    ) -> None:
        require_flwr()
        self.out_dir = Path(out_dir)
        self.log_dir = self.out_dir / "logs"
        self.flwr_home = self.out_dir / "flwr_home"
        self.remote = superlink
        self.nice = int(nice)
        self.processes: list[ManagedProcess] = []
        self.supernodes: dict[int, ManagedProcess] = {}
        self._port_picker = port_picker or (lambda used: find_free_port(exclude=used))
        self._used_ports: set[int] = set()
        self.fleet_address = ""
        self.control_address = superlink or ""
        #: every process seen in the tree of the started ones: pid -> start time
        self.seen: dict[int, int] = {}
        #: set by :meth:`close`; a closed deployment refuses to start another process, so a
        #: worker thread cannot start one after another thread has stopped everything
        self.closed = False
        self._spawn_lock = threading.Lock()

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        with self._spawn_lock:  # close() waits for a spawn in progress, then stops it too
            if self.closed:
                raise DeploymentError(
                    f"deployment in {self.out_dir} was stopped; not starting {name}"
                )
            return self._spawn_locked(name, argv)

    def _spawn_locked(self, name: str, argv: list[str]) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        if self.nice > 0:
            argv = ["nice", "-n", str(self.nice), *argv]
        fh = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(self.flwr_home),
                cwd=self.out_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            fh.close()
        proc = ManagedProcess(name, popen, log_path)
        self.processes.append(proc)
        logger.info("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return proc

    def _port(self) -> int:
        for _ in range(20):
            p = int(self._port_picker(self._used_ports))
            self._used_ports.add(p)
            if port_is_free(p):
                return p
            logger.info("port %d is in use, picking another", p)
        raise DeploymentError("could not find a free port after 20 tries")

    def _wait_listening(self, proc: ManagedProcess, port: int, timeout_s: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if not proc.alive():
                raise DeploymentError(
                    f"{proc.name} exited with code {proc.popen.returncode}; log "
                    f"{proc.log_path}:\n{proc.log_tail()}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise DeploymentError(f"{proc.name} did not listen on port {port} within {timeout_s} s")

    def start_superlink(self, *, timeout_s: float = 60.0, attempts: int = 3) -> None:
        """Start ``flower-superlink`` on a free port (Flower 1.41 serves its Fleet, Control and
        runtime APIs over one HTTP port); retried on another port when it fails to listen."""
        if self.remote:
            return
        last: Exception | None = None
        for attempt in range(attempts):
            port = self._port()
            proc = self._spawn(
                f"superlink-{attempt}" if attempt else "superlink",
                [
                    _bin("flower-superlink"),
                    "--insecure",
                    "--disable-runtime-dependency-installation",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
            )
            try:
                self._wait_listening(proc, port, timeout_s)
                self.track()
            except DeploymentError as exc:
                last = exc
                proc.stop()
                logger.warning("SuperLink attempt %d failed: %s", attempt + 1, exc)
                continue
            self.superlink_proc = proc
            self.fleet_address = self.control_address = f"127.0.0.1:{port}"
            self._write_flwr_config()
            return
        raise DeploymentError(f"the SuperLink did not start in {attempts} attempts: {last}")

    def _write_flwr_config(self) -> None:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        (self.flwr_home / "config.toml").write_text(
            "[superlink]\n"
            'default = "heartline-local"\n\n'
            "[superlink.heartline-local]\n"
            f'address = "{self.control_address}"\n'
            "insecure = true\n",
            encoding="utf-8",
        )

    def start_supernode(self, partition_id: int, node_config: dict[str, Any]) -> ManagedProcess:
        """Start one ``flower-supernode`` for hospital ``partition_id``."""
        if not self.fleet_address:
            raise DeploymentError("start the SuperLink first")
        cfg = " ".join(
            f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in node_config.items()
        )
        proc = self._spawn(
            f"supernode-{partition_id}",
            [
                _bin("flower-supernode"),
                "--insecure",
                "--superlink",
                self.fleet_address,
                "--port",
                str(self._port()),
                "--node-config",
                cfg,
            ],
        )
        self.supernodes[partition_id] = proc
        return proc

    def kill_supernode(self, partition_id: int) -> None:
        """Stop one hospital's SuperNode (and its ClientApp) abruptly, as a crash would."""
        proc = self.supernodes[partition_id]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=_STOP_GRACE_S)

    def pids(self) -> list[int]:
        """PIDs of every process started or seen in their trees (for no-orphan checks)."""
        self.track()
        return sorted({p.pid for p in self.processes} | set(self.seen))

    def track(self) -> None:
        """Record the current descendants of every started process."""
        self.seen.update(process_tree([p.pid for p in self.processes if p.alive()]))

    def stop_all(self) -> None:
        """Stop every process this deployment started or saw in their trees, by PID.

        SIGTERM to each process group, then to each remembered descendant; SIGKILL to whatever
        is left after the grace period (a remembered PID is only signalled while its start time
        still matches, so a reused PID is never hit).
        """
        self.track()
        seen = dict(self.seen)
        for proc in reversed(self.processes):
            if proc.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for pid, start in seen.items():
            if pid_alive(pid, start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            proc.stop()
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline and any(pid_alive(p, s) for p, s in seen.items()):
            time.sleep(0.1)
        for pid, start in seen.items():
            if pid_alive(pid, start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Refuse any further process, then :meth:`stop_all` (safe from any thread)."""
        with self._spawn_lock:
            self.closed = True
        self.stop_all()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # ------------------------------------------------------------------ flwr run
    def flwr_run(
        self,
        run_config: str,
        *,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        timeout_s: float = 3600.0,
        app_dir: Path = APP_DIR,
        on_line: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """``flwr run APP heartline-local --stream``; parse the round records it streams.

        Returns the round records. Raises :class:`DeploymentError` when ``flwr run`` fails,
        exceeds ``timeout_s`` or a local SuperLink dies.
        """
        if self.remote:
            self._write_flwr_config()
        argv = [
            _bin("flwr"),
            "run",
            str(app_dir),
            "heartline-local",
            "--stream",
            "--run-config",
            run_config,
        ]
        proc = self._spawn("flwr-run", argv)
        rounds: list[dict[str, Any]] = []
        t0 = time.monotonic()
        pos = 0
        buf = b""
        while True:
            self.track()
            done = not proc.alive()
            with proc.log_path.open("rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                if on_line is not None:
                    on_line(line)
                if ROUND_MARKER in line:
                    try:
                        rec = json.loads(line.split(ROUND_MARKER, 1)[1].strip())
                    except json.JSONDecodeError:
                        continue
                    if not any(r["round"] == rec["round"] for r in rounds):
                        rounds.append(rec)
                        if on_round is not None:
                            on_round(rec)
            if done:
                break
            if time.monotonic() - t0 > timeout_s:
                proc.stop()
                raise DeploymentError(f"flwr run exceeded {timeout_s:.0f} s; log {proc.log_path}")
            sl = getattr(self, "superlink_proc", None)
            if sl is not None and not sl.alive():
                proc.stop()
                raise DeploymentError(f"the SuperLink died; log {sl.log_path}:\n{sl.log_tail()}")
            time.sleep(0.3)
        if proc.popen.returncode != 0:
            raise DeploymentError(
                f"flwr run failed (exit {proc.popen.returncode}); log {proc.log_path}:\n"
                f"{proc.log_tail()}"
            )
        return rounds


def run_federation(
    cfg: FederatedRunConfig,
    *,
    out_dir: Path,
    superlink: str | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    nice: int = 0,
    during: Callable[[Deployment, dict[str, Any]], None] | None = None,
    on_start: Callable[[Deployment], None] | None = None,
    on_create: Callable[[Deployment], None] | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Start (or join) a deployment, run the Flower App, stop everything; return the outcome.

    Returns ``{"rounds": [...], "final_weights": path or None, "seconds": s, "pids": [...]}``.
    ``on_start(deployment)`` is called once every process is started and ``during(deployment,
    round_record)`` after each round (e.g. to kill a SuperNode). ``on_create(deployment)`` is
    called before the first process starts, so that another thread can :meth:`Deployment.close`
    it at any moment (``heartline bench federated`` does on SIGTERM/Ctrl-C).
    """
    import numpy as np

    from heartline.federated.partition import load_manifest
    from heartline.federated.tasks import build_initial_arrays

    manifest = load_manifest(cfg.manifest)
    if manifest.task != cfg.task:
        raise DeploymentError(f"manifest is for task {manifest.task!r}, not {cfg.task!r}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    server_dir = out_dir / "server"
    if server_dir.exists():
        shutil.rmtree(server_dir)
    server_dir.mkdir()
    init = out_dir / "initial_weights.npz"
    np.savez(
        init,
        **build_initial_arrays(
            cfg.task, seed=cfg.seed, dp=cfg.record_dp_epsilon > 0, model=cfg.model
        ),
    )
    # a remote SuperLink cannot read this machine's files: its ServerApp builds the network
    rc = cfg.run_config(
        n_hospitals=manifest.n_hospitals,
        out_dir=server_dir,
        initial_weights=Path("") if superlink else init,
    )
    t0 = time.monotonic()
    dep = Deployment(out_dir, superlink=superlink, nice=nice)
    if on_create is not None:
        on_create(dep)
    # Ctrl-C and SIGTERM both unwind through the finally below
    previous = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        dep.start_superlink()
        if not superlink:
            for h in manifest.hospitals:
                node_cfg: dict[str, Any] = {
                    "manifest": str(Path(cfg.manifest).resolve()),
                    "partition-id": h.partition_id,
                    "num-partitions": manifest.n_hospitals,
                }
                if cfg.data_dir is not None:
                    node_cfg["data-dir"] = str(Path(cfg.data_dir).resolve())
                node_cfg.update(cfg.node_extra.get(h.partition_id, {}))
                dep.start_supernode(h.partition_id, node_cfg)

        if on_start is not None:
            on_start(dep)

        def round_cb(rec: dict[str, Any]) -> None:
            if on_round is not None:
                on_round(rec)
            if during is not None:
                during(dep, rec)

        rounds = dep.flwr_run(
            rc,
            on_round=round_cb,
            timeout_s=timeout_s,
            app_dir=SECAGG_APP_DIR if cfg.secure_aggregation else APP_DIR,
        )
        pids = dep.pids()
    finally:
        dep.stop_all()
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)
    final = server_dir / "global_final.npz"
    if not rounds and (server_dir / "rounds.jsonl").is_file():
        rounds = [
            json.loads(line)
            for line in (server_dir / "rounds.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if not (server_dir / "server_done.json").is_file() and not superlink:
        raise DeploymentError(
            f"the ServerApp did not finish its {cfg.num_rounds} rounds; logs in {dep.log_dir}"
        )
    return {
        "rounds": rounds,
        "final_weights": final if final.is_file() else None,
        "seconds": time.monotonic() - t0,
        "pids": pids,
        "n_hospitals": manifest.n_hospitals,
    }


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """Signal handler: SIGTERM unwinds like Ctrl-C, so every started process is stopped."""
    raise KeyboardInterrupt
