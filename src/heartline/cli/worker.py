"""``heartline worker``: one stream-processor worker process against a broker and a database.

``heartline serve`` starts its workers with this same command (see
:class:`~heartline.ingestion.supervisor.WorkerSupervisor`); an operator can run more on other
machines against the same broker and database, each owning some partitions::

    heartline worker --broker-url mqtt://heartline:PASSWORD@broker:1883 \\
        --database-url postgresql+psycopg://heartline@db/heartline --partitions 4,5,6,7

Every partition must be owned by exactly one worker (the MQTT client id carries the partitions,
so two workers on the same partitions take each other's session over). Stops on SIGTERM/Ctrl-C
after committing what it has received.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import handle_errors, resolve_beat_model
from heartline.cli.main import BeatModelOpt, app


def parse_partitions(text: str, *, n_partitions: int) -> list[int]:
    """``"0,1,5"`` -> ``[0, 1, 5]``; ValueError naming ``--partitions`` for anything else.

    >>> parse_partitions("3, 1", n_partitions=8)
    [1, 3]
    """
    try:
        parts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"--partitions must be comma-separated integers, got {text!r}") from None
    bad = [p for p in parts if not 0 <= p < n_partitions]
    if not parts or bad:
        raise ValueError(
            f"--partitions must name partitions in 0..{n_partitions - 1}, got {text!r}"
        )
    return parts


@app.command()
@handle_errors
def worker(
    partitions: Annotated[
        str, typer.Option("--partitions", help="Comma-separated partitions this worker owns.")
    ],
    broker_url: Annotated[
        str,
        typer.Option(
            "--broker-url",
            envvar="HEARTLINE_WORKER_BROKER_URL",
            help="mqtt[s]://user:password@host:port (or the env var, to keep the password off "
            "the command line).",
        ),
    ],
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="HEARTLINE_WORKER_DATABASE_URL",
            help="SQLAlchemy URL of the migrated database (or the env var).",
        ),
    ],
    n_partitions: Annotated[
        int | None,
        typer.Option("--n-partitions", min=1, help="Total partitions (default: settings)."),
    ] = None,
    model: BeatModelOpt = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", help="MQTT client id prefix (stable across restarts)."),
    ] = None,
    broker_ca: Annotated[
        Path | None, typer.Option("--broker-ca", help="CA bundle of the broker's certificate.")
    ] = None,
    status_file: Annotated[
        Path | None, typer.Option("--status-file", help="JSON status written every 0.5 s.")
    ] = None,
    parent_pid: Annotated[
        int | None, typer.Option("--parent-pid", help="Stop when this process is gone.")
    ] = None,
    options: Annotated[
        str | None,
        typer.Option(
            "--options",
            help="Extra StreamProcessor keywords as a JSON object (default: from the settings).",
        ),
    ] = None,
) -> None:
    """Run one stream-processor worker on some partitions until SIGTERM/Ctrl-C."""
    from heartline.ingestion.adaptation import DEFAULT_REFRESH_S
    from heartline.ingestion.broker import parse_broker_url
    from heartline.ingestion.worker import processor_settings, run_worker
    from heartline.settings import load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s"
    )
    settings = load_settings()
    n = n_partitions or settings.mqtt_partitions
    parts = parse_partitions(partitions, n_partitions=n)
    address = parse_broker_url(broker_url, ca_certs=broker_ca)
    if options is not None:
        try:
            opts = json.loads(options)
        except ValueError as exc:
            raise ValueError(f"--options must be a JSON object: {exc}") from None
        if not isinstance(opts, dict):
            raise ValueError(f"--options must be a JSON object, got {options!r}")
    else:
        opts = {
            "patient_models": {"refresh_s": DEFAULT_REFRESH_S},  # the patients' adapted models
            "unknown_devices": "register" if settings.is_development else "quarantine",
            **processor_settings(settings),
        }
    raise typer.Exit(
        run_worker(
            address=address,
            database_url=database_url,
            model=resolve_beat_model(model),
            partitions=parts,
            n_partitions=n,
            client_id=client_id,
            status_file=status_file,
            parent_pid=parent_pid,
            processor_options=opts,
        )
    )


if __name__ == "__main__":  # ``python -m heartline.cli.worker ...``: what serve's supervisor runs
    app(["worker", *sys.argv[1:]], prog_name="heartline")
