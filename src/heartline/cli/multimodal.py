"""``heartline bench multimodal`` (PTB-XL benchmark of the multimodal hybrid), ``heartline train multimodal`` (ship it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors
from heartline.cli.main import DataDirOpt, bench_app
from heartline.cli.models import train_app


@bench_app.command("multimodal")
@handle_errors
def bench_multimodal(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for multimodal.json, multimodal.md, plots.")
    ],
    data_dir: DataDirOpt = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="cv10: 10-fold CV over strat_fold; benchmark: folds 1-8 train, 9 val, 10 test."
        ),
    ] = "cv10",
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Smoke run: 150 records, test folds 1-2, 1 epoch, 50 bootstrap draws.",
        ),
    ] = False,
    fs: Annotated[int, typer.Option(help="PTB-XL records to read: 100 or 500 Hz.")] = 100,
    epochs: Annotated[
        int, typer.Option(help="Training epochs of the ResNet and metadata-only networks.")
    ] = 10,
    hybrid_epochs: Annotated[
        int, typer.Option(help="Most training epochs of the hybrid's variants.")
    ] = 50,
    hybrid_patience: Annotated[
        int,
        typer.Option(
            help="Early stopping of the hybrid on the validation fold after this many epochs "
            "without improvement (0: none)."
        ),
    ] = 10,
    hybrid_augment: Annotated[
        bool, typer.Option(help="Random gain and noise on the hybrid's training crops.")
    ] = True,
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated models (default: the baselines, the network ablations and the "
            "stacked hybrids; feat_only, hybrid_no_meta, hybrid only when named)."
        ),
    ] = None,
    stack_inner: Annotated[
        int,
        typer.Option(
            help="Inner folds of the stacked hybrid's cross-fitting (groups of the training folds)."
        ),
    ] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap draws over records for the CIs (--quick: 50).")
    ] = 1000,
    hybrid_class_weight: Annotated[
        bool,
        typer.Option(help="Label-wise class weights sqrt(neg/pos) in the hybrid's BCE loss."),
    ] = True,
    folds: Annotated[
        str | None,
        typer.Option(
            help="cv10 only: comma-separated test folds to run, in this order (default all 10); "
            "for splitting work between processes, the report of a subset says so."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Cache for arrays, features and finished (fold, model) results (default OUT/cache); "
            "runs with the same settings resume from it, so several processes with disjoint "
            "--models can share one."
        ),
    ] = None,
) -> None:
    """Ablations and baselines of the multimodal (12-lead ECG + metadata) hybrid on PTB-XL."""
    from heartline.bench.multimodal import (
        DEFAULT_MODELS,
        MultimodalBenchConfig,
        run_multimodal_bench,
    )

    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else DEFAULT_MODELS
    try:
        config = MultimodalBenchConfig(
            protocol=protocol,
            fs=fs,
            models=names,
            epochs=1 if quick else epochs,
            hybrid_epochs=1 if quick else hybrid_epochs,
            hybrid_patience=hybrid_patience or None,
            hybrid_augment=hybrid_augment,
            hybrid_class_weight=hybrid_class_weight,
            stack_inner=stack_inner,
            max_records=150 if quick else None,
            folds=(1, 2)
            if quick and protocol == "cv10"
            else (tuple(int(f) for f in folds.split(",")) if folds else None),
            n_boot=50 if quick else n_boot,
            seed=seed,
            data_dir=None if data_dir is None else str(data_dir),
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
        report = run_multimodal_bench(out, config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print((out / "multimodal.md").read_text(), soft_wrap=True)
    console.print(f"[green]wrote[/] {out / 'multimodal.json'} ({report['wall_s']:.0f} s)")


@bench_app.command("explain")
@handle_errors
def bench_explain(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for explain.json, explain.md, explain.png.")
    ],
    data_dir: DataDirOpt = None,
    records: Annotated[
        str, typer.Option(help="Comma-separated MIT-BIH records with V beats.")
    ] = "119,208,233",
    n_beats: Annotated[int, typer.Option(help="V and N beats per check.")] = 30,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run: 4 beats, 5 repeats, 8 IG steps.")
    ] = False,
    timing_only: Annotated[
        bool,
        typer.Option(
            "--timing-only",
            help="Only the timings (wall and CPU time, load average): no attribution checks.",
        ),
    ] = False,
) -> None:
    """Time the live (ONNX occlusion) explanation of an alert; QRS and randomisation sanity checks."""
    from heartline.explain.report import run_explain_bench

    recs = tuple(r.strip() for r in records.split(",") if r.strip())
    run_explain_bench(
        out, records=recs, n_beats=4 if quick else n_beats, n_repeats=5 if quick else 50,
        data_dir=None if data_dir is None else str(data_dir), ig_steps=8 if quick else 32,
        timing_only=timing_only,
    )  # fmt: skip
    console.print((out / "explain.md").read_text(), soft_wrap=True)
    console.print(f"[green]wrote[/] {out / 'explain.json'}")


@bench_app.command("explain-diagnosis")
@handle_errors
def bench_explain_diagnosis(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Run directory for explain_diagnosis.json/.md and one PNG per record."
        ),
    ],
    data_dir: DataDirOpt = None,
    records: Annotated[
        str | None,
        typer.Option(help="Comma-separated PTB-XL ecg_ids (default: the first of fold 10)."),
    ] = None,
    n_records: Annotated[
        int, typer.Option("--n-records", help="Fold-10 records when --records is not given.")
    ] = 10,
) -> None:
    """Time the torch-free explanation of `heartline diagnose` (wall, CPU) and run the deletion
    check on PTB-XL records."""
    from heartline.bench.explain_diagnosis import run_diagnosis_explain_bench

    try:
        ids = [int(r) for r in records.split(",") if r.strip()] if records else None
    except ValueError:
        raise typer.BadParameter(f"--records must be ecg_ids (integers), got {records!r}") from None
    try:
        run_diagnosis_explain_bench(out, ecg_ids=ids, n_records=n_records, data_dir=data_dir)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print((out / "explain_diagnosis.md").read_text(), soft_wrap=True)
    console.print(f"[green]wrote[/] {out / 'explain_diagnosis.json'}")


@train_app.command("multimodal")
@handle_errors
def train_multimodal(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for multimodal.json, the ONNX files and MODEL_CARD_multimodal.md "
            "(copy them to src/heartline/assets/models to ship).",
        ),
    ],
    data_dir: DataDirOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap draws over the fold-10 records for the CIs.")
    ] = 1000,
    threads: Annotated[
        int, typer.Option("--threads", help="torch threads (keep 1 on a shared machine).")
    ] = 1,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Smoke run: 120 records, 1 epoch, 20 bootstrap draws."),
    ] = False,
) -> None:
    """Train the stacked multimodal hybrid (folds 1-8 / 9 / 10 of PTB-XL), score fold 10, export."""
    import torch

    from heartline.cli.common import invoked_command
    from heartline.training.multimodal_ship import ShipMultimodalConfig, ship_multimodal

    if threads < 1:
        raise typer.BadParameter("--threads must be >= 1")
    torch.set_num_threads(threads)
    config = ShipMultimodalConfig(
        seed=seed,
        n_boot=20 if quick else n_boot,
        data_dir=None if data_dir is None else str(data_dir),
        max_records=120 if quick else None,
        epochs=1 if quick else ShipMultimodalConfig.epochs,
        patience=None if quick else ShipMultimodalConfig.patience,
    )
    try:
        spec = ship_multimodal(out, config, command=invoked_command(), progress=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    t = spec["test"]
    ci = t["macro_auc_ci95"] or [float("nan")] * 2
    console.print(
        f"[green]wrote[/] {out} (version {spec['version']}, {spec['wall_s']:.0f} s): fold-10 "
        f"macro-AUC {t['macro_auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] on {t['records']} records; "
        f"ONNX vs torch max |dp| {spec['onnx_check']['max_abs_diff_proba']:.1e}"
    )
