"""``heartline serve``: the whole system in one command.

Broker (its own Mosquitto unless ``--broker-url``), database migrations, stream-processor
workers as supervised child processes (``heartline worker``, one per ``--workers``, each in its
own process group, restarted when one exits, stopped with the server: no orphan), optional
simulated patients, and the API + dashboard (uvicorn) in the foreground until Ctrl-C. Every
worker runs each patient's active adapted model (``POST /patients/{id}/adaptation``; rollback
returns to the base model), read from the database within
:data:`~heartline.ingestion.adaptation.DEFAULT_REFRESH_S` seconds, and stores the model version
on every beat it labels.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, resolve_beat_model
from heartline.cli.main import AfGateOpt, BeatModelOpt, DataDirOpt, RhythmIntervalOpt, app


def prepare_demo(settings, *, patients: int, records: list[str], device_prefix: str = "sim"):
    """Migrate the database, register the simulated patients and their devices, seed demo users.

    Returns the :class:`~heartline.service.seed.DemoCredentials` (``None`` outside development,
    where demo users are never created).
    """
    from heartline.service.security import make_password_hasher
    from heartline.service.seed import seed_demo
    from heartline.storage import make_engine, make_session_factory, session_scope, upgrade_database
    from heartline.storage.repository import register_device, register_patient

    url = settings.resolved_database_url()
    upgrade_database(url)
    if patients <= 0:
        return None
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        patient_ids = []
        with session_scope(factory) as s:
            for i in range(patients):
                device_id = f"{device_prefix}-{i + 1:04d}"
                pid = f"p-{device_id}"
                record = records[i % len(records)]
                register_patient(
                    s, patient_id=pid, display_name=f"Simulated patient (MIT-BIH {record})"
                )
                register_device(s, device_id=device_id, patient_id=pid)
                patient_ids.append(pid)
        if not settings.is_development:
            return None
        with session_scope(factory) as s:
            return seed_demo(s, hasher=make_password_hasher(settings), patient_ids=patient_ids)
    finally:
        engine.dispose()


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="API/dashboard address.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="API/dashboard port (8000 is Flower's).")
    ] = 8080,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in the state dir)."),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option("--broker-url", help="mqtt://host:port (default: Heartline's own Mosquitto)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Run directory (database, broker, device queues)."),
    ] = None,
    patients: Annotated[
        int,
        typer.Option(
            "--patients", "-n", min=0, max=1000, help="Simulated patients (0: real devices only)."
        ),
    ] = 0,
    records: Annotated[
        str | None,
        typer.Option("--records", help="Comma-separated MIT-BIH records for simulated patients."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Stream-processor workers.")] = 2,
    model: BeatModelOpt = None,
    rhythm_interval_s: RhythmIntervalOpt = None,
    af_gate: AfGateOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the whole system: broker, processors, storage, API and dashboard."""
    from heartline.cli.streaming import parse_records, settings_overrides
    from heartline.ingestion.adaptation import DEFAULT_REFRESH_S
    from heartline.ingestion.live import ARRHYTHMIA_RECORDS, LiveSystem
    from heartline.service.app import create_app, run_api
    from heartline.service.config import load_service_settings

    settings = load_service_settings(
        **settings_overrides(
            state_dir=state_dir,
            broker_url=broker_url,
            database_url=database_url,
            rhythm_interval_s=rhythm_interval_s,
            af_gate=af_gate,
        )
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    recs = parse_records(records, default=ARRHYTHMIA_RECORDS)
    model_path = resolve_beat_model(model)
    creds = prepare_demo(settings, patients=patients, records=recs)

    with LiveSystem(
        settings,
        model=model_path,
        workers=workers,
        patients=patients,
        records=recs,
        realtime=True,
        data_dir=data_dir,
        processes=True,  # supervised `heartline worker` processes, restarted if they exit
        # each worker reads the patients' adapted models (API: adapt / rollback) from the database
        processor_options={"patient_models": {"refresh_s": DEFAULT_REFRESH_S}},
    ) as system:
        scheme = "https" if settings.tls_certfile else "http"
        console.rule("[bold]Heartline is running")
        console.print(f"dashboard  {scheme}://{host}:{port}/dashboard/")
        console.print(f"API docs   {scheme}://{host}:{port}/openapi.json")
        console.print(f"broker     {system.address.url if system.address else '?'}")
        console.print(f"database   {settings.resolved_database_url()}")
        console.print(f"state dir  {settings.state_dir}")
        if system.supervisor is not None:
            pids = ", ".join(map(str, system.supervisor.pids()))
            console.print(f"workers    {workers} processes (pids {pids})")
        if patients:
            console.print(
                f"patients   {patients} simulated wearables replaying MIT-BIH {', '.join(recs[:patients])}"
            )
        if creds is not None:
            console.print("[bold]demo logins[/] (development only):")
            for u in creds.users:
                pw = u.password if u.password is not None else "(existing user, password unchanged)"
                console.print(f"  {u.role:<9} {u.username:<10} {pw}")
        console.print("press Ctrl-C to stop")
        api = create_app(settings)
        broker = system.broker
        if broker is not None and getattr(broker, "acl", False):
            # devices registered or rotated through the API get the same secret on MQTT
            def sink(device_id: str, secret: str) -> None:
                broker.set_users({**broker.users, device_id: secret})

            api.state.device_credential_sink = sink
        # uvicorn re-raises SIGTERM once it has shut down; without a handler of ours the process
        # would die there, before the `with` block stops the workers and the broker
        previous = signal.signal(signal.SIGTERM, _sigterm_to_keyboard_interrupt)
        try:
            run_api(settings, host=host, port=port, app=api)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    console.print("stopped")


def _sigterm_to_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
