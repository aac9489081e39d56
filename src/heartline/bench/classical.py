"""Inter-patient benchmark of the classical baselines (train DS1, test DS2; de Chazal 2004).

Builds the DS1 and DS2 beat sets (annotated R-peaks), fits every requested model on the DS1
training records with the DS1 validation records from
:func:`heartline.data.splits.validation_records`, scores DS2 once with
:func:`heartline.training.metrics.evaluate_predictions` (bootstrap CIs by record) and writes,
into the caller's run directory, one folder per model (``metrics.json``, ``val_metrics.json``,
the saved model) and ``summary.json``. DS2 chooses nothing.

Run it with ``python -m heartline.bench.classical --out RUN_DIR [--models svm,random_forest]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heartline.data.beat_dataset import build_beat_set
from heartline.data.splits import DS2, validation_records
from heartline.training.classical import CLASSICAL_MODELS
from heartline.training.metrics import evaluate_predictions

__all__ = ["run_classical_benchmark"]

logger = logging.getLogger(__name__)


def run_classical_benchmark(
    models: Sequence[str] | None = None,
    *,
    out_dir: Path,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    template_features: bool = False,
    quick: bool = False,
) -> dict[str, dict[str, Any]]:
    """Train each classical model on DS1 and evaluate on DS2; return the summary per model.

    ``quick``: the smoke-run records of :data:`heartline.training.protocols.QUICK_RECORDS` (3 DS1
    training, 1 DS1 validation, 2 DS2 test records) instead of all of DS1 and DS2: for tests of
    the wiring, never a result (``metrics.json`` says ``"quick": true``).

    ``template_features`` builds the beat sets with the 19 patient-adaptive template columns
    after the 13 RR columns (:mod:`heartline.signal.templates`, the shipped hybrid's inputs); the
    models take every RR-side column as features. ``metrics.json`` and the summary name the
    input set (``inputs``).
    """
    from heartline.training.protocols import QUICK_RECORDS, ProtocolData

    names = list(models) if models else list(CLASSICAL_MODELS)
    unknown = [m for m in names if m not in CLASSICAL_MODELS]
    if unknown:
        raise ValueError(f"unknown classical model(s) {unknown}; valid: {sorted(CLASSICAL_MODELS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        train_records, val_records = QUICK_RECORDS["train"], QUICK_RECORDS["val"]
        test_records = QUICK_RECORDS["test"]
    else:
        (train_records, val_records), test_records = validation_records(), DS2
    kw: dict[str, Any] = {"data_dir": data_dir, "cache_dir": cache_dir}
    if template_features:
        kw["template_features"] = True
    inputs = ProtocolData(template_features=template_features).describe_inputs()
    train = build_beat_set(train_records, **kw)
    val = build_beat_set(val_records, **kw)
    test = build_beat_set(test_records, **kw)
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        model = CLASSICAL_MODELS[name]()
        run = out_dir / name
        t0 = time.perf_counter()
        model.fit(train, val, run_dir=run, seed=seed)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        prob = model.predict_proba(test)
        predict_s = time.perf_counter() - t1
        metrics = evaluate_predictions(
            test.labels, prob, records=test.record, n_bootstrap=n_bootstrap, seed=seed
        )
        d = metrics.to_dict()
        d.update(
            {
                "model": name,
                "fit_seconds": fit_s,
                "predict_seconds": predict_s,
                "seed": seed,
                "train_records": list(train_records),
                "val_records": list(val_records),
                "test_records": list(test_records),
                "quick": quick,
                "inputs": inputs,
            }
        )
        (run / "metrics.json").write_text(json.dumps(d, indent=2))
        model.save(run / "model")
        summary[name] = {
            "accuracy": d["accuracy"],
            "macro_f1": d["macro_f1"],
            "kappa": d["kappa"],
            "sveb_se": d["ec57"]["sveb"]["se"],
            "sveb_ppv": d["ec57"]["sveb"]["ppv"],
            "veb_se": d["ec57"]["veb"]["se"],
            "veb_ppv": d["ec57"]["veb"]["ppv"],
            "fit_seconds": fit_s,
            "inputs": inputs,
            "ci95": d["ci95"],
        }
        logger.info(
            "%s: acc %.3f macro-F1 %.3f fit %.1f s", name, d["accuracy"], d["macro_f1"], fit_s
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="run directory (created)")
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument(
        "--template-features", action="store_true", help="add the 19 template columns"
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 records only (a smoke run, not a result)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    models = [m for m in args.models.split(",") if m] or None
    summary = run_classical_benchmark(
        models,
        out_dir=args.out,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        seed=args.seed,
        n_bootstrap=args.n_bootstrap,
        template_features=args.template_features,
        quick=args.quick,
    )
    logger.info(
        "summary: %s",
        json.dumps({k: {m: v[m] for m in v if m != "ci95"} for k, v in summary.items()}),
    )


if __name__ == "__main__":  # pragma: no cover
    main()
