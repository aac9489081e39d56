"""One stream-processor worker process: the body of ``heartline worker``.

:func:`run_worker` runs a :class:`~heartline.ingestion.processor.StreamProcessor` on some
partitions until SIGTERM/SIGINT (or until the process that started it dies, with
``parent_pid``), and every ``status_interval_s`` writes a small JSON status file (counters,
per-device states, idle flag, resident memory) that :class:`~heartline.ingestion.supervisor.WorkerSupervisor`
reads. The worker holds no state that the broker and the database do not also hold: the MQTT
sessions are persistent (``clean_session=False``, stable client ids) and storage
acknowledgements follow commits, so a worker killed at any moment loses nothing; a new worker
with the same client id resumes the sessions' queues and the devices replay what was not
acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["processor_settings", "read_rss_bytes", "run_worker", "write_status"]

log = logging.getLogger(__name__)


def processor_settings(settings: Any) -> dict[str, Any]:
    """The :class:`~heartline.ingestion.processor.StreamProcessor` keywords the settings decide.

    Fault isolation (no-data alert, clock skew, strikes, frame budget) and the rhythm model's
    cadence, from :class:`heartline.settings.Settings`: what ``heartline serve``/``live`` and a
    stand-alone ``heartline worker`` give their processors.

    >>> from heartline.settings import Settings
    >>> processor_settings(Settings(rhythm_interval_s=10))["rhythm_interval_s"]
    10.0
    """
    return {
        "no_data_alert_s": settings.no_data_alert_s,
        "max_clock_ahead_s": settings.frame_max_ahead_s,
        "max_frame_age_s": settings.frame_max_age_s,
        "device_strike_limit": settings.device_strike_limit,
        "device_strike_window_s": settings.device_strike_window_s,
        "device_backoff_s": settings.device_backoff_s,
        "device_rate_factor": settings.device_rate_factor,
        "device_burst_s": settings.device_burst_s,
        "device_initial_burst_s": settings.device_initial_burst_s,
        "rhythm_interval_s": settings.rhythm_interval_s,
        "af_gate": settings.af_gate,
    }


def read_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of process ``pid`` (default: this one) in bytes, from ``/proc`` (0 if gone)."""
    try:
        text = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` as JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, default=float))
    os.replace(tmp, path)


def run_worker(
    *,
    address: Any,
    database_url: str,
    model: str | os.PathLike[str],
    partitions: list[int],
    n_partitions: int,
    client_id: str | None = None,
    status_file: str | os.PathLike[str] | None = None,
    status_interval_s: float = 0.5,
    parent_pid: int | None = None,
    processor_options: dict[str, Any] | None = None,
    tune_gc: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """Run one worker until SIGTERM/SIGINT, ``stop`` or the death of ``parent_pid``.

    Parameters
    ----------
    address : BrokerAddress
        The MQTT broker (credentials and TLS included).
    database_url : str
        SQLAlchemy URL of a migrated database.
    model : path-like
        ONNX beat classifier.
    partitions, n_partitions : list of int, int
        Partitions this worker owns, of ``n_partitions``.
    client_id : str, optional
        MQTT client id prefix; keep it stable across restarts so the broker keeps the queues.
    status_file : path-like, optional
        JSON status written every ``status_interval_s`` seconds.
    parent_pid : int, optional
        Exit when this process is gone (a supervisor killed with SIGKILL leaves no orphan).
    processor_options : dict, optional
        Extra :class:`~heartline.ingestion.processor.StreamProcessor` keywords (JSON-friendly);
        ``"patient_models": {"refresh_s": s}`` builds the per-patient adapted models from the
        database (:func:`~heartline.ingestion.adaptation.resolve_patient_models`).
    tune_gc : bool
        :func:`~heartline.ingestion.processor.tune_gc` before starting (as ``serve`` does).
    stop : threading.Event, optional
        Set to stop (tests; signal handlers are installed only in the main thread).

    Returns
    -------
    int
        Exit status (0 after a clean stop).
    """
    from heartline.ingestion.adaptation import resolve_patient_models
    from heartline.ingestion.processor import StreamProcessor
    from heartline.ingestion.processor import tune_gc as _tune_gc

    stop = stop or threading.Event()
    if parent_pid is not None:
        _die_with_parent()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_a: stop.set())
    opts = dict(processor_options or {})
    if client_id:
        opts["client_id"] = client_id
    # "patient_models": {"refresh_s": ...} -> this process's registry over the database
    beat_model, opts = resolve_patient_models(opts, model=str(model), database_url=database_url)
    proc = StreamProcessor(
        address=address,
        database_url=database_url,
        model=beat_model,
        partitions=partitions,
        n_partitions=n_partitions,
        **opts,
    )
    if tune_gc:
        _tune_gc()
    status_path = Path(status_file) if status_file is not None else None
    proc.start(wait_s=60)
    log.info("worker %d: partitions %s of %d started", os.getpid(), partitions, n_partitions)
    started = time.time()
    try:
        while not stop.is_set():
            if parent_pid is not None and not _alive(parent_pid):
                log.warning("worker %d: parent %d is gone, stopping", os.getpid(), parent_pid)
                break
            if status_path is not None:
                _write(status_path, proc, started, partitions)
            stop.wait(status_interval_s)
    finally:
        proc.stop()
        if status_path is not None:
            with contextlib.suppress(OSError):
                _write(status_path, proc, started, partitions, stopped=True)
    return 0


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent process dies (no-op elsewhere)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _alive(pid: int) -> bool:
    if os.getppid() != pid:  # re-parented: the parent died
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(
    path: Path, proc: Any, started: float, partitions: list[int], *, stopped: bool = False
) -> None:
    write_status(
        path,
        {
            "pid": os.getpid(),
            "started": started,
            "written": time.time(),
            "partitions": partitions,
            "connected": proc.connected,
            "idle": proc.wait_idle(0.0),
            "stopped": stopped,
            "rss_bytes": read_rss_bytes(),
            "counters": proc.counters().to_dict(),
            "devices": proc.device_states(),
            "adaptation_notices": list(getattr(proc.patient_models, "notices", ()))[-10:],
        },
    )
