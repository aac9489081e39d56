"""The whole live system in one context manager: broker, database, processors, simulated patients.

>>> with LiveSystem(settings, model=path, patients=8) as live:   # doctest: +SKIP
...     time.sleep(30)
...     print(live.status().beats)

:class:`LiveSystem` starts (in this order) its own Mosquitto (:class:`MosquittoSupervisor`, unless
``settings.broker_url`` names a broker), upgrades the database (alembic), starts ``workers``
:class:`~heartline.ingestion.processor.StreamProcessor` workers (threads, or supervised
``heartline worker`` processes with ``processes=True``) that split the
``settings.mqtt_partitions`` partitions between them (each device's state in exactly one
worker), and optionally simulated patients (:class:`~heartline.devices.simulator.VirtualWearable`
replaying MIT-BIH records with real arrhythmias, publishing with storage acknowledgements).
:meth:`LiveSystem.status` returns a snapshot for a live display.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heartline.ingestion.broker import BrokerAddress, MosquittoSupervisor, parse_broker_url
from heartline.ingestion.processor import ProcessorCounters, StreamProcessor, tune_gc
from heartline.settings import Settings

if TYPE_CHECKING:
    from heartline.ingestion.supervisor import WorkerSupervisor

__all__ = ["ARRHYTHMIA_RECORDS", "LiveStatus", "LiveSystem", "PatientStatus", "split_partitions"]

log = logging.getLogger(__name__)

#: MIT-BIH records with real arrhythmias handed to simulated patients (PVCs, bigeminy, VT runs,
#: AF/flutter, SVTA, fusion beats). "210:MLII@250" is a single-lead wearable with AF: lead MLII of
#: record 210 resampled to 250 Hz (see heartline.devices.simulator.parse_record_spec).
ARRHYTHMIA_RECORDS: tuple[str, ...] = (
    "119", "200", "203", "207", "208", "210:MLII@250", "213", "233",
)  # fmt: skip


def split_partitions(n_partitions: int, workers: int) -> list[list[int]]:
    """Partitions of each worker (round robin).

    >>> split_partitions(8, 3)
    [[0, 3, 6], [1, 4, 7], [2, 5]]
    """
    if workers < 1 or n_partitions < workers:
        raise ValueError(
            f"need 1 <= workers <= n_partitions, got workers={workers}, n_partitions={n_partitions}"
        )
    return [list(range(w, n_partitions, workers)) for w in range(workers)]


@dataclass(frozen=True)
class PatientStatus:
    """One simulated or live patient in the status snapshot."""

    device_id: str
    patient_id: str
    record: str | None
    beats: int
    active_alerts: tuple[str, ...]
    queued: int = 0


@dataclass(frozen=True)
class LiveStatus:
    """Snapshot of the system (sums over workers)."""

    elapsed_s: float
    broker_url: str
    database_url: str
    workers: int
    frames_in: int
    frames_stored: int
    frames_duplicate: int
    quarantined: int
    beats: int
    beats_per_s: float
    alerts_opened: int
    latency_p50_s: float
    latency_p99_s: float
    patients: tuple[PatientStatus, ...] = field(default=())


def _merge(counters: Sequence[ProcessorCounters]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (
        "frames_in",
        "frames_stored",
        "frames_duplicate",
        "beats",
        "alerts_opened",
        "db_errors",
    ):
        out[k] = sum(getattr(c, k) for c in counters)
    out["quarantined"] = sum(c.quarantined_total for c in counters)
    p50 = [c.latency_p50_s for c in counters if c.latency_p50_s == c.latency_p50_s]
    p99 = [c.latency_p99_s for c in counters if c.latency_p99_s == c.latency_p99_s]
    out["latency_p50_s"] = max(p50) if p50 else float("nan")
    out["latency_p99_s"] = max(p99) if p99 else float("nan")
    return out


class LiveSystem:
    """Broker + database + processors (+ simulated patients) as one context manager.

    Parameters
    ----------
    settings : Settings
        ``state_dir`` (SQLite default, broker run dir, device queues), ``database_url``,
        ``broker_url`` (``None``: own Mosquitto), ``mqtt_partitions``.
    model : OnnxBeatClassifier or path
        Beat classifier shared by the workers.
    workers : int
        Processor workers, each owning some partitions (``0``: none here, external
        ``heartline worker`` processes own the partitions).
    patients : int
        Simulated patients (0: none; real devices publish on their own).
    records : sequence of str
        MIT-BIH records handed to simulated patients in turn.
    realtime : bool
        Pace simulated frames at wall-clock speed. ``False`` (as fast as possible) also turns
        the processors' per-device frame budget off (``device_rate_factor=None``), which would
        otherwise throttle the simulated devices that run ahead of real time by design.
    duration_s : float
        Simulated seconds (``None``: until :meth:`close`).
    unknown_devices : {"register", "quarantine"}
        Processor policy (default: register in development, quarantine in production).
    data_dir : path-like, optional
        PhysioNet data directory.
    device_prefix : str
        Simulated device ids are ``<prefix>-0001``...
    instance : str, optional
        Added to the processors' MQTT client ids, so that several systems can share a broker.
    processor_options : dict, optional
        Extra :class:`~heartline.ingestion.processor.StreamProcessor` keywords.
    processes : bool
        Run the workers as supervised child processes (``heartline worker``, restarted when
        they exit; :class:`~heartline.ingestion.supervisor.WorkerSupervisor`), as
        ``heartline serve`` does, instead of threads of this process. ``model`` must then be a
        path.
    tune_gc : bool
        Before the processors start, set the process's garbage collector up for streaming
        (:func:`~heartline.ingestion.processor.tune_gc`: startup objects frozen, fewer
        collections). For processes that exist to run the system (``heartline serve``,
        ``heartline live``); it changes process-wide state, so it is off by default.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        model: Any,
        workers: int = 1,
        patients: int = 0,
        records: Sequence[str] = ARRHYTHMIA_RECORDS,
        realtime: bool = True,
        duration_s: float | None = None,
        unknown_devices: str | None = None,
        data_dir: str | Path | None = None,
        device_prefix: str = "sim",
        instance: str | None = None,
        processor_options: dict[str, Any] | None = None,
        tune_gc: bool = False,
        processes: bool = False,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if patients < 0:
            raise ValueError(f"patients must be >= 0, got {patients}")
        if patients and not records:
            raise ValueError("records must name at least one MIT-BIH record")
        self.settings = settings
        self.processes = processes
        if processes and not isinstance(model, (str, Path)):
            raise ValueError("processes=True needs the model as a path (each worker loads it)")
        self.model_path = Path(model) if isinstance(model, (str, Path)) else None
        if isinstance(model, (str, Path)) and not processes:
            from heartline.edge.runtime import OnnxBeatClassifier

            model = OnnxBeatClassifier(model)
        self.model = model
        self.workers = workers
        self.n_patients = patients
        self.records = tuple(records)
        self.realtime = realtime
        self.duration_s = duration_s
        self.unknown_devices = unknown_devices or (
            "register" if settings.is_development else "quarantine"
        )
        self.data_dir = data_dir
        self.device_prefix = device_prefix
        self.instance = instance
        self.processor_options = dict(processor_options or {})
        self.tune_gc = tune_gc
        self.database_url = settings.resolved_database_url()
        self.broker: MosquittoSupervisor | None = None
        self.address: BrokerAddress | None = None
        self.processors: list[StreamProcessor] = []
        self.supervisor: WorkerSupervisor | None = None
        self.publishers: list[Any] = []
        self.wearables: list[Any] = []
        self._stack = contextlib.ExitStack()
        self._sim_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t0 = 0.0
        self._last_beats = (0.0, 0)
        self.sim_done = threading.Event()
        self.frames_lost_on_device = 0
        #: Production with an own broker: ``{device_id: secret}`` of the simulated devices.
        self.device_secrets: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LiveSystem:
        from heartline.storage import upgrade_database

        s = self.settings
        try:
            if s.broker_url is None:
                users = (
                    {}
                    if s.is_development
                    else {s.broker_username: s.broker_password.get_secret_value()}
                )
                if not s.is_development:
                    # Per-device credentials: each simulated device gets its own random secret
                    # and may only write its own frames topic (broker ACL).
                    self.device_secrets = {d: secrets.token_urlsafe(24) for d in self._device_ids()}
                    users.update(self.device_secrets)
                self.broker = self._stack.enter_context(
                    MosquittoSupervisor(
                        s.state_dir / "broker",
                        production=not s.is_development,
                        users=users,
                        processor_user=s.broker_username if users else None,
                        tls_certfile=s.mqtt_tls_certfile,
                        tls_keyfile=s.mqtt_tls_keyfile,
                        tls_cafile=s.mqtt_tls_cafile,
                        binary=s.mosquitto_binary,
                    )
                )
                self.address = self.broker.address
            else:
                self.address = parse_broker_url(s.broker_url, ca_certs=s.mqtt_tls_cafile)
                if s.broker_username and not self.address.username and not s.is_development:
                    self.address = self.address.with_credentials(
                        s.broker_username, s.broker_password.get_secret_value()
                    )
            upgrade_database(self.database_url)
            if self.workers == 0:
                log.info("no processors here: external `heartline worker`s own the partitions")
            elif self.processes:
                self._start_supervisor()
            else:
                for parts in split_partitions(s.mqtt_partitions, self.workers):
                    self.processors.append(self._make_processor(parts))
            if self.tune_gc:
                tune_gc()
            for p in self.processors:
                p.start()
                self._stack.callback(p.stop)
            if self.n_patients:
                self._start_patients()
            self._t0 = time.monotonic()
        except BaseException:
            self.close()
            raise
        return self

    def _processor_options(self) -> dict[str, Any]:
        from heartline.ingestion.worker import processor_settings

        return {
            "unknown_devices": self.unknown_devices,
            **processor_settings(self.settings),
            **({} if self.realtime else {"device_rate_factor": None}),
            **self.processor_options,
        }

    def _start_supervisor(self) -> None:
        from heartline.ingestion.supervisor import WorkerSupervisor

        tag = f"-{self.instance}" if self.instance else ""
        self.supervisor = WorkerSupervisor(
            address=self.address,  # type: ignore[arg-type]
            database_url=self.database_url,
            model=self.model_path,  # type: ignore[arg-type]
            partition_sets=split_partitions(self.settings.mqtt_partitions, self.workers),
            n_partitions=self.settings.mqtt_partitions,
            run_dir=self.settings.state_dir / "workers",
            client_prefix=f"heartline-proc{tag}-of-{self.settings.mqtt_partitions}",
            processor_options=self._processor_options(),
        )
        self._stack.callback(self.supervisor.stop)
        self.supervisor.start()

    def _make_processor(self, partitions: list[int]) -> StreamProcessor:
        from heartline.ingestion.adaptation import resolve_patient_models

        opts = self._processor_options()
        model, opts = resolve_patient_models(opts, model=self.model, database_url=self.database_url)
        if self.instance:
            opts.setdefault(
                "client_id",
                f"heartline-proc-{self.instance}-{'-'.join(map(str, partitions))}-of-{self.settings.mqtt_partitions}",
            )
        return StreamProcessor(
            address=self.address,  # type: ignore[arg-type]
            database_url=self.database_url,
            model=model,
            partitions=partitions,
            n_partitions=self.settings.mqtt_partitions,
            **opts,
        )

    def restart_processor(self, index: int = 0, *, crash: bool = False) -> None:
        """Stop worker ``index`` (abruptly with ``crash``) and start a fresh one on its partitions.

        With ``processes`` the worker process is SIGKILLed (``crash``) or SIGTERMed and the
        supervisor starts a new one.
        """
        if self.supervisor is not None:
            p = self.supervisor.procs[index]
            if crash or p is None:
                self.supervisor.kill(index)
            else:
                p.terminate()
            return
        old = self.processors[index]
        if crash:
            old.kill()
        else:
            old.stop()
        new = self._make_processor(list(old.partitions))
        new.start()
        self._stack.callback(new.stop)
        self.processors[index] = new

    def _device_ids(self) -> list[str]:
        return [f"{self.device_prefix}-{i + 1:04d}" for i in range(self.n_patients)]

    def _start_patients(self) -> None:
        from heartline.devices.publisher import FramePublisher
        from heartline.devices.simulator import VirtualWearable, WearableConfig
        from heartline.devices.store_forward import StoreForwardQueue

        dev_dir = self.settings.state_dir / "devices"
        start_time_s = time.time()
        for i, device_id in enumerate(self._device_ids()):
            q = self._stack.enter_context(
                StoreForwardQueue(dev_dir / f"{device_id}.sqlite", synchronous="NORMAL")
            )
            start_seq = 0 if q.last_seq is None else q.last_seq + 1
            cfg = WearableConfig(
                device_id=device_id,
                record=self.records[i % len(self.records)],
                seed=i,
                start_seq=start_seq,
                start_offset_s=0.0,
                payload_version=2,  # compact int16 frames, as in the capacity benchmark
            )
            self.wearables.append(
                VirtualWearable(cfg, start_time_s=start_time_s, data_dir=self.data_dir)
            )
            address = self.address
            if device_id in self.device_secrets and address is not None:
                address = address.with_credentials(device_id, self.device_secrets[device_id])
            pub = FramePublisher(
                q,
                address=address,  # type: ignore[arg-type]
                device_id=device_id,
                partitions=self.settings.mqtt_partitions,
                delete_on="storage",
            ).start()
            self._stack.callback(pub.stop)
            self.publishers.append(pub)
        # the device clocks start now, not when the first record was read (that can take seconds
        # on a loaded machine, and every frame would look that much older than it is)
        start_time_s = time.time()
        for w in self.wearables:
            w.start_time_s = start_time_s
        self._sim_thread = threading.Thread(target=self._simulate, name="live-sim", daemon=True)
        self._sim_thread.start()

    def _simulate(self) -> None:
        from heartline.devices.simulator import SimFrame, run_simulation

        def publish(i: int, sf: SimFrame) -> None:
            pub = self.publishers[i]
            pub.set_link(sf.link_up)
            if sf.frame is None:
                self.frames_lost_on_device += 1
            else:
                pub.publish(sf.frame)

        try:
            run_simulation(
                self.wearables,
                publish=publish,
                duration_s=self.duration_s or 10 * 365 * 86400.0,
                realtime=self.realtime,
                should_stop=self._stop.is_set,
            )
        except Exception:
            log.exception("simulation stopped")
        finally:
            self.sim_done.set()

    def close(self) -> None:
        """Stop patients, processors and the broker (idempotent)."""
        self._stop.set()
        if self._sim_thread is not None:
            self._sim_thread.join(timeout=10)
        self._stack.close()

    def __enter__(self) -> LiveSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ status
    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until every simulated device's queue is empty (all frames storage-acknowledged)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (
                all(len(p.queue) == 0 for p in self.publishers)
                and all(p.wait_idle(0.0) for p in self.processors)
                and (self.supervisor is None or self.supervisor.wait_idle(1.0))
            ):
                return True
            time.sleep(0.1)
        return False

    def counters(self) -> list[ProcessorCounters]:
        if self.supervisor is not None:
            return self.supervisor.counters()
        return [p.counters() for p in self.processors]

    def status(self) -> LiveStatus:
        """Snapshot for a live display."""
        cs = self.counters()
        m = _merge(cs)
        now = time.monotonic()
        t_prev, b_prev = self._last_beats
        rate = (m["beats"] - b_prev) / (now - t_prev) if t_prev and now > t_prev else 0.0
        self._last_beats = (now, m["beats"])
        states: dict[str, dict[str, Any]] = {}
        for p in self.processors:
            states.update(p.device_states())
        if self.supervisor is not None:
            states.update(self.supervisor.device_states())
        records = {w.device_id: w.config.record for w in self.wearables}
        queued = {p.device_id: len(p.queue) for p in self.publishers}
        patients = tuple(
            PatientStatus(
                device_id=d,
                patient_id=st["patient_id"],
                record=records.get(d),
                beats=st["beats"],
                active_alerts=tuple(st["active_alerts"]),
                queued=queued.get(d, 0),
            )
            for d, st in sorted(states.items())
        )
        return LiveStatus(
            elapsed_s=now - self._t0 if self._t0 else 0.0,
            broker_url=self.address.url if self.address else "",
            database_url=self.database_url.split("@")[-1],
            workers=self.workers,
            frames_in=m["frames_in"],
            frames_stored=m["frames_stored"],
            frames_duplicate=m["frames_duplicate"],
            quarantined=m["quarantined"],
            beats=m["beats"],
            beats_per_s=rate,
            alerts_opened=m["alerts_opened"],
            latency_p50_s=m["latency_p50_s"],
            latency_p99_s=m["latency_p99_s"],
            patients=patients,
        )
