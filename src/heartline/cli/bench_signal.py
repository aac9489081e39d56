"""``heartline bench denoise``: SNR gain of every denoiser on NSTDB (thin wrapper)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors, progress
from heartline.cli.main import DataDirOpt, bench_app


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@bench_app.command("denoise")
@handle_errors
def bench_denoise(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for denoise.json, denoise.md, denoise.png.")
    ],
    data_dir: DataDirOpt = None,
    records: Annotated[
        str, typer.Option(help="Comma-separated MIT-BIH records with NSTDB versions.")
    ] = "118,119",
    snr: Annotated[
        str, typer.Option(help="Comma-separated NSTDB SNR labels (24,18,12,06,00,_6).")
    ] = "24,18,12,06,00,_6",
    methods: Annotated[
        str | None, typer.Option(help="Comma-separated methods (default: all).")
    ] = None,
    excerpt_s: Annotated[
        float, typer.Option(help="Excerpt length in seconds (EMD is scored on it only).")
    ] = 120.0,
    mains_hz: Annotated[
        float, typer.Option(help="Mains frequency for clean_ecg (MIT-BIH: 60).")
    ] = 60.0,
) -> None:
    """Input/output SNR and SNR gain of each denoiser on NSTDB 118/119 (electrode motion)."""
    from heartline.bench.denoise import (
        DEFAULT_METHODS,
        DenoiseBenchConfig,
        n_steps,
        run_denoise_benchmark,
        write_report,
    )

    try:
        config = DenoiseBenchConfig(
            records=_split(records) or (),
            snr_labels=_split(snr) or (),
            methods=_split(methods) or DEFAULT_METHODS,
            excerpt_s=excerpt_s,
            mains_hz=mains_hz,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with progress() as bar:
        task = bar.add_task("denoise benchmark", total=n_steps(config))
        report = run_denoise_benchmark(
            data_dir=data_dir, config=config, on_step=lambda _: bar.advance(task)
        )
    paths = write_report(report, out)
    console.print(paths["md"].read_text())
    console.print(f"[green]wrote[/] {paths['json']}, {paths['md']}, {paths['png']}")
