"""``heartline bench stream-profile``: where the stream processor's CPU goes, per frame and stage.

No broker and no load generator: pre-built frames of simulated 360 Hz 2-lead patients (the
same frame pool as ``heartline bench stream``) are handed as MQTT messages straight to
:meth:`heartline.ingestion.processor.StreamProcessor.handle`, the code a live worker runs for
each batch (parse, sequencing, beat pipeline, ONNX classification, alert engine, one SQLite
transaction, acknowledgements), with ``profile=True``: the worker thread's CPU time
(``time.thread_time``) is charged to each stage. Frames arrive in the generator's order (device
``i`` phase-shifted by ``i/N`` s) and are cut into batches of ``batch_frames`` messages (a live
worker at 500 frames/s with its 50 ms batch wait sees about 25). The first ``warmup_s`` seconds
(pipelines filling, the alert engines' windows growing) are left out of the statistics; with the
default 150 s warm-up every engine holds its full 120 s beat window, as in a long-running system.

Writes ``OUT/stream_profile.json`` and ``OUT/stream_profile.md``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from heartline.defaults import DEFAULT_RHYTHM_INTERVAL_S
from heartline.revision import git_head

__all__ = ["STAGES", "StageCost", "StreamProfile", "run_stream_profile"]

log = logging.getLogger(__name__)

#: Stages in processing order, with what each covers.
STAGES: dict[str, str] = {
    "parse": "topic + JSON payload parse and validation",
    "sequencing": "device lookup, duplicate/gap/late tracking",
    "dispatch": "per-device state, segment and frame book-keeping",
    "decode": "ADC counts -> mV array",
    "detect": "streaming R-peak detector",
    "clean": "block band-pass (look-back/look-ahead) of both leads",
    "quality": "signal-quality indices at the end of each block",
    "beats": "beat windows, normalisation, RR features, context",
    "classify": "one ONNX Runtime call for the batch",
    "results": "probabilities -> beats, frame/sample location, storage rows",
    "rhythm": "rhythm model: incremental window input (R peaks, model-rate signal, RR "
    "features) and one ONNX call per batch for the devices due",
    "alerts": "alert engine: beats, quality spans, VF, vitals (rules, NEWS2)",
    "storage": "one SQLite transaction (frames, beats, alerts)",
    "acks": "MQTT PUBACKs, storage acknowledgements, counters",
}


@dataclass(frozen=True)
class StageCost:
    """CPU time of one stage."""

    stage: str
    description: str
    us_per_frame: float
    share_pct: float


@dataclass(frozen=True)
class StreamProfile:
    """Result of :func:`run_stream_profile` (``stream_profile.json``)."""

    patients: int
    seconds: int
    warmup_s: int
    batch_frames: int
    frames: int
    beats: int
    alert_updates: int
    model: str
    stages: tuple[StageCost, ...]
    worker_us_per_frame: float
    unattributed_us_per_frame: float
    process_cpu_us_per_frame: float
    frames_per_cpu_second: float
    wall_s: float
    git_revision: str
    python: str
    cpu_count: int | None
    load_average: tuple[float, float, float]
    gc_tuned: bool = False
    rhythm_interval_s: float | None = DEFAULT_RHYTHM_INTERVAL_S  # None: no rhythm model
    artefact_model: str = "default"  # the processor's default, "off", "shipped" or a path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_stream_profile(
    out: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    patients: int = 100,
    seconds: int = 30,
    warmup_s: int = 150,
    batch_frames: int = 25,
    n_partitions: int = 8,
    data_dir: str | os.PathLike[str] | None = None,
    tune_gc: bool = False,
    rhythm_interval_s: float | None = DEFAULT_RHYTHM_INTERVAL_S,
    artefact_model: str | None = None,
    report: Callable[[str], None] | None = None,
) -> StreamProfile:
    """Profile the stream processor's CPU per frame and stage (see the module docstring).

    Parameters
    ----------
    out : path-like
        Run directory (created): ``stream_profile.json``, ``stream_profile.md``, the SQLite db.
    model : path-like
        ONNX beat classifier.
    patients : int
        Simulated 360 Hz 2-lead patients.
    seconds : int
        Seconds of frames per patient that are measured (after the warm-up).
    warmup_s : int
        Seconds of frames per patient processed first and left out.
    batch_frames : int
        Messages per processor batch.
    n_partitions : int
        Topic partitions (all owned by the one processor).
    data_dir : path-like, optional
        PhysioNet data directory.
    tune_gc : bool
        Profile with the garbage-collector settings of the live processes
        (:func:`heartline.ingestion.processor.tune_gc`, as ``heartline serve``/``live`` and the
        benchmark's processors run); the process's settings are restored afterwards. Off by
        default so that profiles stay comparable with earlier ones.
    rhythm_interval_s : float or None
        The rhythm model's cadence (the processor's ``rhythm_interval_s``, default 5 s, as
        ``heartline serve``); ``None``: no rhythm model (what the rest of the path costs).
    artefact_model : str or None
        The beat artefact model (:mod:`heartline.signal.artefact`): ``None`` (the processor's
        default, on), ``"off"`` (what the detector costs is the difference), ``"shipped"`` or a
        path to a model file.

    Returns
    -------
    StreamProfile
    """
    from heartline.bench.stream_load import FramePool, register_devices
    from heartline.ingestion.broker import BrokerAddress
    from heartline.ingestion.live import ARRHYTHMIA_RECORDS
    from heartline.ingestion.processor import Message, StreamProcessor
    from heartline.ingestion.topics import frames_topic
    from heartline.storage import upgrade_database

    if patients < 1 or seconds < 1 or warmup_s < 0 or batch_frames < 1:
        raise ValueError(
            f"need patients >= 1, seconds >= 1, warmup_s >= 0, batch_frames >= 1; got "
            f"{patients}, {seconds}, {warmup_s}, {batch_frames}"
        )
    if rhythm_interval_s is not None and not rhythm_interval_s > 0:
        raise ValueError(f"rhythm_interval_s must be > 0 or None, got {rhythm_interval_s}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_p = Path(model)
    if not model_p.is_file():
        raise FileNotFoundError(f"model: no ONNX model at {model_p}")
    report = report or (lambda msg: log.info(msg))
    db_url = f"sqlite:///{out_dir / 'heartline.db'}"
    upgrade_database(db_url)
    ids = [f"prof-{i:05d}" for i in range(patients)]
    register_devices(db_url, ids)
    pool = FramePool(ARRHYTHMIA_RECORDS, 60, Path(data_dir) if data_dir is not None else None)
    topics = [frames_topic(d, partitions=n_partitions) for d in ids]
    offsets = [(7 * i) % pool.seconds for i in range(patients)]
    # an address nothing listens on: the processor is never started, only fed
    proc = StreamProcessor(
        address=BrokerAddress("127.0.0.1", 9),
        database_url=db_url,
        model=str(model_p),
        partitions=list(range(n_partitions)),
        n_partitions=n_partitions,
        client_id="bench-profile",
        profile=True,
        **(
            {"rhythm_model": None}
            if rhythm_interval_s is None
            else {"rhythm_interval_s": rhythm_interval_s}
        ),
        **(
            {}
            if artefact_model is None
            else {"artefact_model": None if artefact_model == "off" else artefact_model}
        ),
    )
    t0_dev = 1.7e9

    def messages(k: int) -> list[Message]:
        return [
            Message(
                topics[i],
                pool.payload(
                    i % len(pool.records), offsets[i] + k, d, k, t0_dev + k + i / patients
                ),
                0,
                0,
                time.monotonic(),
            )
            for i, d in enumerate(ids)
        ]

    def feed(k0: int, k1: int) -> None:
        pending: list[Message] = []
        for k in range(k0, k1):
            pending.extend(messages(k))
            while len(pending) >= batch_frames:
                proc.handle(pending[:batch_frames])
                del pending[:batch_frames]
        if pending:
            proc.handle(pending)

    saved_gc = gc.get_threshold()
    try:
        if tune_gc:
            from heartline.ingestion.processor import tune_gc as _tune_gc

            _tune_gc()
        return _measure(
            proc,
            feed,
            out_dir,
            model_p,
            patients,
            seconds,
            warmup_s,
            batch_frames,
            tune_gc,
            report,
            rhythm_interval_s=rhythm_interval_s,
            artefact_model="default" if artefact_model is None else str(artefact_model),
        )
    finally:
        if tune_gc:
            gc.unfreeze()
            gc.set_threshold(*saved_gc)


def _measure(
    proc: Any,
    feed: Callable[[int, int], None],
    out_dir: Path,
    model_p: Path,
    patients: int,
    seconds: int,
    warmup_s: int,
    batch_frames: int,
    gc_tuned: bool,
    report: Callable[[str], None],
    *,
    rhythm_interval_s: float | None,
    artefact_model: str = "default",
) -> StreamProfile:
    report(f"stream profile: {patients} patients, {warmup_s} s warm-up")
    feed(0, warmup_s)
    assert proc.stage_times is not None
    proc.stage_times.clear()
    c0 = proc.counters()
    report(f"stream profile: measuring {seconds} s")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    feed(warmup_s, warmup_s + seconds)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    c1 = proc.counters()
    tm = dict(proc.stage_times)
    proc.kill()
    frames = c1.frames_stored - c0.frames_stored
    if frames != patients * seconds:
        raise RuntimeError(f"profile: {frames} frames stored, expected {patients * seconds}")
    total = tm.pop("total", 0.0)
    unknown = sorted(set(tm) - set(STAGES))
    if unknown:
        raise RuntimeError(f"profile: unexpected stages {unknown}")
    stages = tuple(
        StageCost(
            stage=name,
            description=desc,
            us_per_frame=1e6 * tm.get(name, 0.0) / frames,
            share_pct=100.0 * tm.get(name, 0.0) / total if total > 0 else float("nan"),
        )
        for name, desc in STAGES.items()
    )
    attributed = sum(tm.values())
    prof = StreamProfile(
        patients=patients,
        seconds=seconds,
        warmup_s=warmup_s,
        batch_frames=batch_frames,
        frames=frames,
        beats=c1.beats - c0.beats,
        alert_updates=c1.alert_updates - c0.alert_updates,
        model=model_p.name,
        stages=stages,
        worker_us_per_frame=1e6 * total / frames,
        unattributed_us_per_frame=1e6 * (total - attributed) / frames,
        process_cpu_us_per_frame=1e6 * cpu / frames,
        frames_per_cpu_second=frames / cpu if cpu > 0 else float("nan"),
        wall_s=wall,
        git_revision=git_head(short=True),
        python=platform.python_version(),
        cpu_count=os.cpu_count(),
        load_average=tuple(os.getloadavg()),  # type: ignore[arg-type]
        gc_tuned=gc_tuned,
        rhythm_interval_s=rhythm_interval_s,
        artefact_model=artefact_model,
    )
    (out_dir / "stream_profile.json").write_text(json.dumps(prof.to_dict(), indent=2))
    (out_dir / "stream_profile.md").write_text(profile_markdown(prof))
    return prof


def _rhythm_flag(interval_s: float | None) -> str:
    if interval_s is None:
        return " --no-rhythm-model"
    return "" if interval_s == DEFAULT_RHYTHM_INTERVAL_S else f" --rhythm-interval-s {interval_s:g}"


def profile_markdown(p: StreamProfile) -> str:
    """The Markdown report of a :class:`StreamProfile`."""
    lines = [
        "# Stream processor CPU profile",
        "",
        f"`heartline bench stream-profile --patients {p.patients} --seconds {p.seconds} "
        f"--warmup {p.warmup_s} --batch {p.batch_frames}{' --tune-gc' if p.gc_tuned else ''}"
        f"{_rhythm_flag(p.rhythm_interval_s)}"
        f"{'' if p.artefact_model == 'default' else ' --artefact-model ' + p.artefact_model}` "
        f"(git `{p.git_revision or '?'}`, "
        f"model `{p.model}`, Python {p.python}, load average at the end "
        f"{'/'.join(f'{x:.1f}' for x in p.load_average)}). Frames of simulated 360 Hz 2-lead "
        "patients fed straight to one stream processor's batch handler (no broker); CPU time "
        "of the worker thread per stage, after the warm-up.",
        "",
        "| stage | what | CPU us/frame | share % |",
        "|---|---|---:|---:|",
    ]
    for s in p.stages:
        lines.append(f"| {s.stage} | {s.description} | {s.us_per_frame:.0f} | {s.share_pct:.1f} |")
    lines += [
        f"| (unattributed) | | {p.unattributed_us_per_frame:.0f} | |",
        f"| **worker total** | | **{p.worker_us_per_frame:.0f}** | 100.0 |",
        "",
        f"{p.frames} frames ({p.beats} beats, {p.alert_updates} alert updates) in {p.wall_s:.1f} s; "
        f"process CPU {p.process_cpu_us_per_frame:.0f} us/frame, i.e. "
        f"{p.frames_per_cpu_second:.0f} frames (patient-seconds) per CPU second for the "
        "processor alone (the broker, the load generator and the database share the cores in "
        "`heartline bench stream`).",
        "",
    ]
    return "\n".join(lines)
