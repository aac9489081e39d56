"""``heartline simulate``: virtual wearables publishing live frames over MQTT."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors
from heartline.cli.main import app

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
        typer.Option("--records", help="Comma-separated MIT-BIH records, handed out in turn."),
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
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="PhysioNet data directory.")
    ] = None,
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

    overrides = {"state_dir": state_dir} if state_dir is not None else {}
    settings = load_settings(**overrides)
    n_partitions = partitions or settings.mqtt_partitions
    url = broker_url or settings.broker_url
    record_list = (
        [r.strip() for r in records.split(",") if r.strip()] if records else list(DEFAULT_RECORDS)
    )
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
