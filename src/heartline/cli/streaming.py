"""The streaming commands: ``heartline simulate``, ``live``, ``bench stream``, ``bench stream-profile``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, resolve_beat_model
from heartline.cli.main import (
    AfGateOpt,
    BeatModelOpt,
    DataDirOpt,
    ReplayRhythmIntervalOpt,
    RhythmIntervalOpt,
    app,
)
from heartline.defaults import DEFAULT_RHYTHM_INTERVAL_S

log = logging.getLogger(__name__)


def _parse_disconnect(text: str):
    from heartline.devices.simulator import Disconnect

    try:
        start, duration = (float(x) for x in text.split(":"))
    except ValueError:
        raise typer.BadParameter(
            f"--disconnect wants START:DURATION in seconds, got {text!r}"
        ) from None
    if start < 0 or duration <= 0:
        raise typer.BadParameter(f"--disconnect needs START >= 0 and DURATION > 0, got {text!r}")
    return Disconnect(start_s=start, duration_s=duration)


@app.command()
@handle_errors
def simulate(
    patients: Annotated[
        int, typer.Option("--patients", "-n", min=1, max=1000, help="Number of virtual wearables.")
    ] = 3,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url",
            help="mqtt://[user:pw@]host:port (default: $HEARTLINE_BROKER_URL, else start a private Mosquitto).",
        ),
    ] = None,
    duration: Annotated[
        float, typer.Option("--duration", min=0.1, help="Simulated seconds.")
    ] = 60.0,
    noise_snr: Annotated[
        float | None, typer.Option("--noise-snr", help="Add real NSTDB noise at this SNR (dB).")
    ] = None,
    noise_kind: Annotated[
        str, typer.Option("--noise-kind", help="NSTDB noise record: em, ma or bw.")
    ] = "em",
    drop_prob: Annotated[
        float,
        typer.Option(
            "--drop-prob", min=0.0, max=0.99, help="Probability a frame is lost on the device."
        ),
    ] = 0.0,
    clock_skew_ppm: Annotated[
        float, typer.Option("--clock-skew-ppm", help="Device clock skew.")
    ] = 0.0,
    disconnect: Annotated[
        list[str] | None,
        typer.Option("--disconnect", help="Radio outage START:DURATION (s); repeatable."),
    ] = None,
    realtime: Annotated[
        bool,
        typer.Option("--realtime/--fast", help="Pace at wall-clock speed, or as fast as possible."),
    ] = True,
    records: Annotated[
        str | None,
        typer.Option(
            "--records",
            help="Comma-separated records, handed out in turn: MIT-BIH (201), one lead at a"
            " device rate (221:MLII@250), CinC 2017 single-lead (cinc2017/A00004).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (signals, vitals, faults).")] = 0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Run directory for queues and the private broker (default: settings).",
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", min=1, help="MQTT topic partitions (default: settings)."),
    ] = None,
    data_dir: DataDirOpt = None,
    payload_version: Annotated[
        int,
        typer.Option(
            "--payload-version",
            min=1,
            max=2,
            help="Frame encoding: 2 = ECG as base64 int16 per lead (compact), 1 = JSON integer lists.",
        ),
    ] = 2,
) -> None:
    """Replay MIT-BIH records as live wearables (ECG + HR/SpO2/temperature/BP) over MQTT QoS 1."""
    from rich.live import Live

    from heartline.devices.publisher import FramePublisher
    from heartline.devices.simulator import (
        DEFAULT_RECORDS,
        NoiseSpec,
        SimFrame,
        VirtualWearable,
        WearableConfig,
        run_simulation,
    )
    from heartline.devices.store_forward import StoreForwardQueue
    from heartline.ingestion.broker import MosquittoSupervisor, parse_broker_url
    from heartline.settings import load_settings

    settings = load_settings(**settings_overrides(state_dir=state_dir))
    n_partitions = partitions or settings.mqtt_partitions
    url = broker_url or settings.broker_url
    record_list = parse_records(records, default=DEFAULT_RECORDS)
    noise = NoiseSpec(noise_kind, noise_snr) if noise_snr is not None else None
    outages = tuple(_parse_disconnect(d) for d in (disconnect or []))
    run_dir = settings.state_dir / "simulate"

    with contextlib.ExitStack() as stack:
        if url is None:
            users = (
                {}
                if settings.is_development
                else {settings.broker_username: settings.broker_password.get_secret_value()}
            )
            broker = stack.enter_context(
                MosquittoSupervisor(
                    run_dir / "broker", production=not settings.is_development, users=users
                )
            )
            address = broker.address
            console.print(
                f"started Mosquitto at [bold]{address.url}[/] (run dir {run_dir / 'broker'})"
            )
        else:
            address = parse_broker_url(url)
        start_time_s = time.time()
        wearables: list[VirtualWearable] = []
        publishers: list[FramePublisher] = []
        for i in range(patients):
            device_id = f"sim-{i + 1:04d}"
            queue = stack.enter_context(
                StoreForwardQueue(run_dir / "devices" / f"{device_id}.sqlite")
            )
            start_seq = 0 if queue.last_seq is None else queue.last_seq + 1
            cfg = WearableConfig(
                device_id=device_id,
                record=record_list[i % len(record_list)],
                noise=noise,
                drop_frame_prob=drop_prob,
                clock_skew_ppm=clock_skew_ppm,
                disconnects=outages,
                seed=seed + i,
                start_seq=start_seq,
                payload_version=payload_version,
            )
            wearables.append(VirtualWearable(cfg, start_time_s=start_time_s, data_dir=data_dir))
            pub = FramePublisher(
                queue, address=address, device_id=device_id, partitions=n_partitions
            ).start()
            stack.callback(pub.stop)
            publishers.append(pub)

        lost = [0]

        def publish(i: int, sf: SimFrame) -> None:
            pub = publishers[i]
            pub.set_link(sf.link_up)
            if sf.frame is None:
                lost[0] += 1
            else:
                pub.publish(sf.frame)

        def status(elapsed: float) -> str:
            cs = [p.counters() for p in publishers]
            down = sum(not c.connected for c in cs)
            return (
                f"[bold]t[/] {elapsed:6.1f}/{duration:.0f} s  [bold]devices[/] {patients}  "
                f"[bold]published[/] {sum(c.published for c in cs)}  [green]acked[/] {sum(c.acked for c in cs)}  "
                f"[yellow]queued[/] {sum(c.queued for c in cs)}  [red]lost on device[/] {lost[0]}  "
                f"[bold]offline[/] {down}  [dim]{address.url}[/]"
            )

        with Live(status(0.0), console=console, refresh_per_second=4, transient=False) as live:
            run_simulation(
                wearables,
                publish=publish,
                duration_s=duration,
                realtime=realtime,
                on_tick=lambda t: live.update(status(t)),
            )
            for p in publishers:
                p.set_link(True)
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline and not all(p.flush(0.05) for p in publishers):
                live.update(status(duration))
            live.update(status(duration))
        if not console.is_terminal:
            console.print()  # Live leaves its last line open on a non-terminal
        left = sum(len(p.queue) for p in publishers)
        if left:
            console.print(
                f"[yellow]{left} frame(s) still queued on disk; they are sent on the next run[/]"
            )
        else:
            console.print("[green]all frames acknowledged by the broker[/]")


def settings_overrides(**values: object) -> dict[str, object]:
    """The settings fields given on the command line (``None`` = not given: settings decide)."""
    return {k: v for k, v in values.items() if v is not None}


def parse_records(records: str | None, *, default: Sequence[str]) -> list[str]:
    """``"119, 208"`` -> ``["119", "208"]``; ``None`` or empty -> ``default``."""
    parsed = [r.strip() for r in records.split(",") if r.strip()] if records else []
    return parsed or list(default)


@app.command()
@handle_errors
def live(
    patients: Annotated[
        int, typer.Option("--patients", "-n", min=0, max=1000, help="Simulated patients.")
    ] = 8,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Stream-processor workers.")] = 2,
    model: BeatModelOpt = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url", help="mqtt://host:port (default: settings, else own Mosquitto)."
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: settings).")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Run directory (default: settings).")
    ] = None,
    records: Annotated[
        str | None,
        typer.Option("--records", help="Comma-separated MIT-BIH records for simulated patients."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=1.0, help="Stop after S seconds.")
    ] = None,
    rhythm_interval_s: RhythmIntervalOpt = None,
    af_gate: AfGateOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the live system (broker, processors, simulated patients) with a status table until Ctrl-C."""
    from rich.live import Live
    from rich.table import Table

    from heartline.ingestion.live import ARRHYTHMIA_RECORDS, LiveSystem
    from heartline.settings import load_settings

    settings = load_settings(
        **settings_overrides(
            state_dir=state_dir,
            broker_url=broker_url,
            database_url=database_url,
            rhythm_interval_s=rhythm_interval_s,
            af_gate=af_gate,
        )
    )
    recs = parse_records(records, default=ARRHYTHMIA_RECORDS)
    path = resolve_beat_model(model)

    def table(sys: LiveSystem) -> Table:
        st = sys.status()
        t = Table(
            title=f"Heartline live  t={st.elapsed_s:.0f} s  {st.broker_url}  db {st.database_url}  "
            f"frames {st.frames_stored}/{st.frames_in}  beats/s {st.beats_per_s:.1f}  alerts {st.alerts_opened}  "
            f"p99 {st.latency_p99_s:.3f} s  quarantined {st.quarantined}"
        )
        for col in ("device", "patient", "record", "beats", "queued", "active alerts"):
            t.add_column(col)
        for p in st.patients[:40]:
            t.add_row(
                p.device_id,
                p.patient_id,
                p.record or "-",
                str(p.beats),
                str(p.queued),
                ", ".join(p.active_alerts) or "-",
            )
        return t

    with LiveSystem(
        settings,
        model=path,
        workers=workers,
        patients=patients,
        records=recs,
        realtime=True,
        duration_s=duration,
        data_dir=data_dir,
        tune_gc=True,
    ) as sys:
        console.print(
            f"broker {sys.address.url if sys.address else '?'}; database {settings.resolved_database_url()}"
        )
        try:
            with Live(table(sys), console=console, refresh_per_second=2) as view:
                t_end = time.monotonic() + duration if duration else None
                while t_end is None or time.monotonic() < t_end:
                    time.sleep(0.5)
                    view.update(table(sys))
        except KeyboardInterrupt:
            console.print("stopping...")


from heartline.cli.main import bench_app  # noqa: E402


@bench_app.command("stream")
@handle_errors
def bench_stream(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for stream.json and stream.md.")
    ],
    patients: Annotated[
        int | None,
        typer.Option(
            "--patients",
            min=1,
            help="Run one fixed load of N patients instead of the capacity search.",
        ),
    ] = None,
    duration: Annotated[
        int | None, typer.Option("--duration", min=2, help="Seconds of the fixed load.")
    ] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, help="Run the fixed load this many times.")
    ] = 1,
    parts: Annotated[
        str,
        typer.Option(
            "--parts",
            help="Comma-separated parts to run: profile, capacity (search or fixed load), "
            "resilience, agreement.",
        ),
    ] = "profile,capacity,resilience,agreement",
    quick: Annotated[
        bool, typer.Option("--quick", help="Shorter steps and outages (a few minutes).")
    ] = False,
    outage_s: Annotated[
        float | None,
        typer.Option(
            "--outage-s",
            min=1.0,
            help="Seconds one device is offline in the resilience run (default 600; 8 with --quick).",
        ),
    ] = None,
    model: BeatModelOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Stream-processor processes.")
    ] = 2,
    target: Annotated[
        int, typer.Option("--target", min=1, help="Capacity at which the search stops.")
    ] = 1000,
    postgres_url: Annotated[
        str,
        typer.Option(
            "--postgres-url", help="PostgreSQL URL allowed to CREATE DATABASE (scratch db)."
        ),
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    broker_url: Annotated[
        str, typer.Option("--system-broker-url", help="System Mosquitto.")
    ] = "mqtt://127.0.0.1:1883",
    data_dir: DataDirOpt = None,
    serve_url: Annotated[
        str | None,
        typer.Option(
            "--serve-url",
            help="Drive a running `heartline serve` at this URL instead (capacity only; needs "
            "--serve-broker-url, --serve-database-url, --serve-user and HEARTLINE_SERVE_PASSWORD).",
        ),
    ] = None,
    serve_broker_url: Annotated[
        str | None, typer.Option("--serve-broker-url", help="The serve's broker (it prints it).")
    ] = None,
    serve_database_url: Annotated[
        str | None,
        typer.Option("--serve-database-url", help="The serve's database (read: loss, latency)."),
    ] = None,
    serve_user: Annotated[
        str, typer.Option("--serve-user", help="Admin user of the serve (registers devices).")
    ] = "admin",
    serve_password: Annotated[
        str | None,
        typer.Option(
            "--serve-password",
            envvar="HEARTLINE_SERVE_PASSWORD",
            help="Its password (prefer the env var).",
        ),
    ] = None,
    serve_partitions: Annotated[
        int, typer.Option("--serve-partitions", min=1, help="The serve's topic partitions.")
    ] = 8,
) -> None:
    """Capacity (own Mosquitto+SQLite; system Mosquitto+PostgreSQL), resilience and live/offline agreement."""
    from heartline.bench.stream import BENCH_PARTS, run_stream_bench

    if serve_url is not None:
        from heartline.bench.stream_serve import run_serve_stream_bench

        missing = [
            name
            for name, v in (
                ("--serve-broker-url", serve_broker_url),
                ("--serve-database-url", serve_database_url),
                ("HEARTLINE_SERVE_PASSWORD / --serve-password", serve_password),
            )
            if not v
        ]
        if missing:
            raise typer.BadParameter(f"--serve-url also needs {', '.join(missing)}")
        res = run_serve_stream_bench(
            out,
            serve_url=serve_url,
            broker_url=serve_broker_url,  # type: ignore[arg-type]
            database_url=serve_database_url,  # type: ignore[arg-type]
            username=serve_user,
            password=serve_password,  # type: ignore[arg-type]
            n_partitions=serve_partitions,
            target=target,
            patients=patients,
            duration_s=duration or (10 if quick else 20),
            data_dir=data_dir,
            report=lambda m: console.print(f"[dim]{m}[/]"),
        )
        console.print((Path(out) / "stream_serve.md").read_text())
        console.print(f"patients held {res['patients']}; wrote {Path(out) / 'stream_serve.json'}")
        return

    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(BENCH_PARTS))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown part(s) {unknown or chosen}; choose from {', '.join(BENCH_PARTS)}",
            param_hint="--parts",
        )
    if repeat > 1 and not patients:
        raise typer.BadParameter(
            "--repeat needs a fixed load (--patients N)", param_hint="--repeat"
        )
    path = resolve_beat_model(model)
    res = run_stream_bench(
        out,
        model=path,
        quick=quick,
        patients=patients,
        duration_s=duration,
        repeat=repeat,
        parts=chosen,
        outage_s=outage_s,
        data_dir=data_dir,
        postgres_admin_url=postgres_url,
        system_broker_url=broker_url,
        workers=workers,
        target=target,
        report=lambda m: console.print(f"[dim]{m}[/]"),
    )
    console.print((Path(out) / "stream.md").read_text())
    caps = {k: v.get("patients") for k, v in res["capacity"].items()}
    fixed = [(f["p99_latency_s"], f["frames_lost"]) for f in res.get("fixed_repeats", [])]
    console.print(
        (f"capacity {caps}; " if caps else "")
        + (f"fixed load (p99 s, lost) {fixed}; " if fixed else "")
        + f"wrote {Path(out) / 'stream.json'}"
    )


@bench_app.command("stream-profile")
@handle_errors
def bench_stream_profile(
    out: Annotated[
        Path,
        typer.Option("--out", help="Run directory for stream_profile.json and stream_profile.md."),
    ],
    patients: Annotated[
        int, typer.Option("--patients", min=1, help="Simulated 360 Hz 2-lead patients.")
    ] = 100,
    seconds: Annotated[
        int, typer.Option("--seconds", min=1, help="Seconds of frames measured per patient.")
    ] = 30,
    warmup: Annotated[
        int,
        typer.Option(
            "--warmup", min=0, help="Seconds per patient processed first and not measured."
        ),
    ] = 150,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Messages per batch.")] = 25,
    model: BeatModelOpt = None,
    data_dir: DataDirOpt = None,
    tune_gc: Annotated[
        bool,
        typer.Option(
            "--tune-gc", help="Use the live processes' garbage-collector settings (tune_gc)."
        ),
    ] = False,
    rhythm_interval_s: ReplayRhythmIntervalOpt = DEFAULT_RHYTHM_INTERVAL_S,
    no_rhythm_model: Annotated[
        bool,
        typer.Option("--no-rhythm-model", help="No rhythm model: what the rest of the path costs."),
    ] = False,
    artefact_model: Annotated[
        str | None,
        typer.Option(
            "--artefact-model",
            help="Beat artefact model: 'off', 'shipped' or a path (default: the processor's).",
        ),
    ] = None,
) -> None:
    """CPU per frame of each stream-processor stage (no broker: frames fed to the batch handler)."""
    from heartline.bench.stream_profile import run_stream_profile

    path = resolve_beat_model(model)
    run_stream_profile(
        out,
        model=path,
        rhythm_interval_s=None if no_rhythm_model else rhythm_interval_s,
        artefact_model=artefact_model,
        patients=patients,
        seconds=seconds,
        warmup_s=warmup,
        batch_frames=batch,
        data_dir=data_dir,
        tune_gc=tune_gc,
        report=lambda m: console.print(f"[dim]{m}[/]"),
    )
    console.print((Path(out) / "stream_profile.md").read_text())
