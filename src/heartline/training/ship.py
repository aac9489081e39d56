"""``heartline ship``: turn a trained hybrid run into the package's shipped model files.

:func:`ship` exports the ONNX file, checks it against the PyTorch weights (max absolute
difference of the probabilities <= 1e-4 on real beats), scores the ONNX model once on DS2
(inter-patient, annotated and detected R-peaks, bootstrap CIs by record), measures the ONNX
latency per beat and writes the model card into :data:`heartline.edge.shipped.ASSETS_DIR`.

For a hybrid with ``context_k > 0`` it also writes the split form beside ``hybrid.onnx``
(``hybrid.encoder.onnx`` and ``hybrid.sequence.onnx``,
:func:`heartline.edge.onnx_export.export_onnx_split`), with which the live pipeline encodes each
beat once instead of ``context_k + 1`` times, and checks that encoder + sequence graph give the
full model's and PyTorch's probabilities (within
:data:`~heartline.edge.shipped.PARITY_TOLERANCE`). :func:`ship_split` adds the split form to an
already shipped model without re-exporting or re-scoring it::

    python -c "from heartline.training.ship import ship_split; print(ship_split())"

The run-time side (finding the files, checking the split form with ONNX Runtime) is
:mod:`heartline.edge.shipped`; this module needs torch (``heartline[train]``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.edge.shipped import (
    ASSETS_DIR,
    DEFAULT_NAME,
    MAX_WEIGHTS_BYTES,
    PARITY_TOLERANCE,
    SplitReport,
    check_split_parity,
    missing_asset,
)

__all__ = ["SPLIT_CHECK_RECORDS", "ShipReport", "render_model_card", "ship", "ship_split"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipReport:
    """What :func:`ship` wrote and measured."""

    dest: Path
    onnx_path: Path
    max_abs_diff: float
    metrics: dict[str, Any]
    latency_ms_per_beat: float
    card_path: Path


def _export_split(net: Any, onnx_path: Path, *, name: str) -> bool:
    """Write the split form beside ``onnx_path`` for a hybrid with context, else remove a stale
    pair; whether a split was written."""
    from heartline.edge.onnx_export import export_onnx_split
    from heartline.edge.runtime import split_paths
    from heartline.models.hybrid import HybridNet

    if isinstance(net, HybridNet) and net.context_k > 0:
        export_onnx_split(net, onnx_path, name=name)
        return True
    for p in split_paths(onnx_path):
        p.unlink(missing_ok=True)
    return False


def _load_shipped_torch(dest: Path, name: str) -> Any:
    """The shipped PyTorch model ``<name>.pt`` + ``<name>.json`` as a TorchBeatClassifier."""
    import tempfile

    from heartline.training.deep import TorchBeatClassifier

    weights, meta = dest / f"{name}.pt", dest / f"{name}.json"
    for p in (weights, meta):
        if not p.is_file():
            raise missing_asset(p)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(weights, Path(tmp) / "model.pt")
        shutil.copyfile(meta, Path(tmp) / "model.json")
        return TorchBeatClassifier.load(Path(tmp))


#: DS1 records whose beats :func:`ship_split` checks the split on (N, S, V and F beats).
SPLIT_CHECK_RECORDS = ("106", "119", "208", "209")


def ship_split(
    *,
    dest: str | Path | None = None,
    name: str = DEFAULT_NAME,
    records: tuple[str, ...] = SPLIT_CHECK_RECORDS,
    data_dir: str | Path | None = None,
) -> SplitReport:
    """Add the split form to an already shipped hybrid (``<name>.onnx`` is left as it is).

    Loads the shipped PyTorch weights (``<name>.pt``, ``<name>.json``), checks that they are the
    weights of ``<name>.onnx`` (PyTorch vs full ONNX within :data:`PARITY_TOLERANCE` on the beats
    of ``records``), exports the encoder and sequence graphs beside it and checks them
    (:func:`check_split_parity`). Rerunnable; on a failed check the split files are removed.

    Parameters
    ----------
    dest : path, optional
        Folder of the shipped model (default :data:`ASSETS_DIR`).
    name : str
        File stem of the shipped model.
    records : tuple of str
        MIT-BIH records whose (annotated) beats the checks run on.
    data_dir : path, optional
        PhysioNet data directory.

    Raises
    ------
    ValueError
        The model has no split form (not a hybrid, or ``context_k == 0``), the PyTorch weights do
        not match the ONNX model, or the split differs by more than :data:`PARITY_TOLERANCE`.
    """
    from heartline.data.beat_dataset import build_beat_set
    from heartline.edge.runtime import OnnxBeatClassifier, split_paths
    from heartline.training.protocols import ProtocolData

    dest = Path(dest) if dest is not None else ASSETS_DIR
    onnx_path = dest / f"{name}.onnx"
    if not onnx_path.is_file():
        raise missing_asset(onnx_path)
    model = _load_shipped_torch(dest, name)
    beats = build_beat_set(
        list(records),
        data_dir=data_dir,
        progress=False,
        template_features=ProtocolData().for_model(model.net).template_features,
    )
    torch_proba = model.predict_proba(beats)
    full = OnnxBeatClassifier(onnx_path, split=False).predict_proba(beats)
    diff = float(np.abs(full - torch_proba).max())
    if diff > PARITY_TOLERANCE:
        raise ValueError(
            f"{name}.pt/.json are not the weights of {onnx_path.name}: probabilities differ by "
            f"{diff:.2e} > {PARITY_TOLERANCE}"
        )
    if not _export_split(model.net, onnx_path, name=model.name):
        raise ValueError(f"{name}: not a hybrid with context_k > 0, no split form to ship")
    try:
        report = check_split_parity(onnx_path, beats, torch_proba=torch_proba)
    except ValueError:
        for p in split_paths(onnx_path):
            p.unlink(missing_ok=True)
        raise
    logger.info(
        "split form of %s: max |split - full| %.2e, |split - torch| %.2e on %d beats",
        name,
        report.max_abs_diff_full,
        report.max_abs_diff_torch,
        report.n_beats,
    )
    metrics = dest / f"{name}_metrics.json"
    if metrics.is_file():  # record the split in the shipped summary and its model card
        from heartline.training.rundir import write_json

        summary = json.loads(metrics.read_text(encoding="utf-8"))
        summary.update(
            split_files=[report.encoder_path.name, report.sequence_path.name],
            max_abs_diff_split_vs_onnx=report.max_abs_diff_full,
            max_abs_diff_split_vs_torch=report.max_abs_diff_torch,
            split_check=f"{report.n_beats} beats of DS1 records {', '.join(records)}",
        )
        write_json(metrics, summary)
        if "ds2" in summary:
            (dest / "MODEL_CARD.md").write_text(render_model_card(summary), encoding="utf-8")
    return report


def _train_info(run_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name in ("history.json", "metrics.json", "run.json"):
        p = run_dir / name
        if p.is_file():
            info[name] = json.loads(p.read_text(encoding="utf-8"))
    return info


def _latency(onnx_path: Path, beats: Any, *, n: int = 500) -> dict[str, float]:
    """ONNX Runtime latency (1 thread): one beat per call (median, p95) and batched per beat."""
    from heartline.edge.runtime import OnnxBeatClassifier

    clf = OnnxBeatClassifier(onnx_path, num_threads=1)
    ctx = beats.context_index(clf.context_k)[: min(n, len(beats))]
    w, r = beats.windows[ctx], beats.rr[ctx]
    clf.predict_proba_arrays(w[:8], r[:8])  # warm-up
    times = []
    for i in range(len(ctx)):
        t0 = time.perf_counter()
        clf.predict_proba_arrays(w[i : i + 1], r[i : i + 1])
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    clf.predict_proba_arrays(w, r, batch_size=256)
    batched = (time.perf_counter() - t0) / len(ctx)
    return {
        "single_beat_median_ms": 1000 * float(np.median(times)),
        "single_beat_p95_ms": 1000 * float(np.percentile(times, 95)),
        "batched_per_beat_ms": 1000 * batched,
        "n_beats": len(ctx),
        "threads": 1,
    }


def ship(
    run_dir: str | Path,
    *,
    dest: str | Path | None = None,
    name: str = DEFAULT_NAME,
    data: Any = None,
    n_bootstrap: int = 1000,
    latency_beats: int = 500,
    card_name: str = "MODEL_CARD.md",
) -> ShipReport:
    """Turn a trained hybrid run directory into the shipped model files and its model card.

    Parameters
    ----------
    run_dir : path
        A run directory with ``model/`` (a saved :class:`~heartline.training.deep.TorchBeatClassifier`)
        and ``config.toml``, as written by ``heartline train`` or ``heartline bench models``.
    dest : path, optional
        Output folder (default :data:`ASSETS_DIR`, the package's own).
    name : str
        File stem of the shipped model.
    data : heartline.training.protocols.ProtocolData, optional
        Records / beat settings (default: the full inter-patient protocol).
    n_bootstrap : int
        Bootstrap resamples of the DS2 confidence intervals.
    card_name : str
        File name of the model card in ``dest`` (``MODEL_CARD_mlii.md`` for the single-lead
        model, so that both cards sit side by side).

    The leads of ``data`` default to the run's ``config.toml`` (``data.leads``), so a
    single-lead run is scored on its one lead.

    Raises
    ------
    ValueError
        If the ONNX export differs from the PyTorch model by more than :data:`PARITY_TOLERANCE`.
    """
    from heartline.edge.onnx_export import export_onnx
    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.training.deep import TorchBeatClassifier
    from heartline.training.evaluate import check_targets, per_record_table, top_confusions
    from heartline.training.protocols import ProtocolData, evaluate_on_split, inter_patient_split
    from heartline.training.rundir import git_revision, write_json

    run_dir = Path(run_dir)
    if not (run_dir / "model" / "model.json").is_file():
        raise FileNotFoundError(f"run_dir: no saved deep model in {run_dir / 'model'}")
    dest = Path(dest) if dest is not None else ASSETS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    model = TorchBeatClassifier.load(run_dir / "model")
    assert model.net is not None
    onnx_path = export_onnx(model.net, dest / f"{name}.onnx", name=model.name)
    has_split = _export_split(model.net, onnx_path, name=model.name)
    onnx_model = OnnxBeatClassifier(onnx_path, split=False)
    # the template columns for a model that reads them (ProtocolData.for_model)
    if data is None:
        data = ProtocolData(leads=run_leads(run_dir))
    data = data.for_model(model.net)

    results: dict[str, Any] = {}
    split_ann = inter_patient_split(data, rpeaks="annotated")
    torch_proba = model.predict_proba(split_ann.test)
    diff = float(np.abs(onnx_model.predict_proba(split_ann.test) - torch_proba).max())
    if diff > PARITY_TOLERANCE:
        raise ValueError(f"ONNX and PyTorch differ by {diff:.2e} > {PARITY_TOLERANCE} on DS2 beats")
    split_report = (
        check_split_parity(onnx_path, split_ann.test, torch_proba=torch_proba)
        if has_split
        else None
    )
    info = _train_info(run_dir)
    hist = info.get("history.json", {})
    train_s = float(
        hist.get("train_seconds", info.get("metrics.json", {}).get("train_seconds", float("nan")))
    )
    per_record: dict[str, Any] = {}
    for rp in ("annotated", "detected"):
        split = split_ann if rp == "annotated" else inter_patient_split(data, rpeaks="detected")
        res = evaluate_on_split(
            onnx_model, split, model_name=name, train_seconds=train_s, n_bootstrap=n_bootstrap
        )
        d = res.to_dict()
        d["targets"] = [t.__dict__ for t in check_targets(res)]
        d["top_confusions"] = top_confusions(res)
        per_record[rp] = per_record_table(res)
        d["per_record"] = per_record[rp]
        results[rp] = d
    latency = _latency(onnx_path, split_ann.test, n=latency_beats)

    weights = run_dir / "model" / "model.pt"
    shipped_weights = None
    if weights.stat().st_size < MAX_WEIGHTS_BYTES:
        shutil.copyfile(weights, dest / f"{name}.pt")
        shutil.copyfile(run_dir / "model" / "model.json", dest / f"{name}.json")
        shipped_weights = f"{name}.pt"
    if (run_dir / "config.toml").is_file() and (run_dir / "config.toml").resolve() != (
        dest / f"{name}.toml"
    ).resolve():
        shutil.copyfile(run_dir / "config.toml", dest / f"{name}.toml")
    summary = {
        "model": model.name,
        "params": model.params,
        "source_run": str(run_dir),
        "git_revision": git_revision(),
        "onnx_file": onnx_path.name,
        "onnx_bytes": onnx_path.stat().st_size,
        "pytorch_weights": shipped_weights,
        "max_abs_diff_torch_vs_onnx": diff,
        "split_files": (
            [split_report.encoder_path.name, split_report.sequence_path.name]
            if split_report
            else None
        ),
        "max_abs_diff_split_vs_onnx": split_report.max_abs_diff_full if split_report else None,
        "max_abs_diff_split_vs_torch": split_report.max_abs_diff_torch if split_report else None,
        "train_seconds": train_s,
        "best_epoch": hist.get("best_epoch"),
        "validation_best_macro_f1": hist.get("best_score"),
        "stop_reason": hist.get("stop_reason"),
        "n_params": hist.get("n_params"),
        "training_protocol": _training_protocol(model.name, info.get("run.json", {}), hist)
        + (_SINGLE_LEAD_NOTE if len(data.leads) == 1 else ""),
        "leads": list(data.leads),
        "n_leads": len(data.leads),
        "latency": latency,
        "ds2": results,
    }
    write_json(dest / f"{name}_metrics.json", summary)
    card = dest / card_name
    card.write_text(render_model_card(summary), encoding="utf-8")
    logger.info("shipped %s into %s (max |torch - onnx| %.2e)", name, dest, diff)
    return ShipReport(dest, onnx_path, diff, summary, latency["single_beat_median_ms"], card)


#: Added to the training protocol of a single-lead model (the selection above ran on two leads).
_SINGLE_LEAD_NOTE = (
    " The selection was run for the two-lead model; this single-lead model reuses that "
    "configuration and epoch count unchanged with data.leads = [0] (MLII), nothing re-tuned "
    "(configs/shipped/hybrid_mlii.toml)."
)


def run_leads(run_dir: Path) -> tuple[int, ...]:
    """``data.leads`` of the run's ``config.toml`` (the two-lead default ``(0, 1)`` without one)."""
    import tomllib

    cfg = run_dir / "config.toml"
    if not cfg.is_file():
        return (0, 1)
    leads = tomllib.loads(cfg.read_text(encoding="utf-8")).get("data", {}).get("leads", [0, 1])
    return tuple(int(x) for x in leads)


def _p(x: Any) -> str:
    return "n/a" if x is None or not np.isfinite(float(x)) else f"{100 * float(x):.1f}"


def _training_protocol(model_name: str, run_info: dict[str, Any], hist: dict[str, Any]) -> str:
    """How the shipped run used DS1: validation records, a cross-fitted ensemble or a refit."""
    val = run_info.get("val_records")
    if model_name == "hybrid_ensemble":
        return (
            "Cross-fitted ensemble (heartline.models.ensemble): DS1's records dealt into record folds, "
            "one member trained per fold and early-stopped on its held-out fold, decision offsets fitted "
            "on the out-of-fold predictions; DS2 (22 other patients) scored once for this card."
        )
    if val is not None and len(val) == 0:
        return (
            f"Trained on all 22 DS1 records for a fixed {hist.get('best_epoch')} epochs with no validation "
            'records (train.monitor = "none"): the configuration and the number of epochs were chosen '
            "beforehand on DS1 alone by cross-fitted out-of-fold selection (`heartline select`, "
            "docs/results/history.md); DS2 (22 other patients) scored once for this card."
        )
    records = ", ".join(val) if val else "101, 116, 220, 223, 230"
    return (
        f"Trained on DS1 minus the validation records {records}; early stopping and model selection "
        "on those validation records only; DS2 (22 other patients) scored once for this card."
    )


def _ci(d: dict[str, Any], key: str) -> str:
    ci = d.get("ci95", {}).get(key)
    return "" if not ci or ci[0] is None else f" [{_p(ci[0])}, {_p(ci[1])}]"


def _split_lines(s: dict[str, Any]) -> list[str]:
    """The model card's paragraph on the encoder/sequence split (none when not shipped)."""
    files = s.get("split_files")
    if not files:
        return []
    where = s.get("split_check", "all DS2 beats")
    return [
        "",
        f"Live form: `{files[0]}` (per-beat features) and `{files[1]}` (LSTM and heads over the "
        "K+1 feature rows), the same network split in two so that the stream processor encodes "
        "each beat once (`heartline.edge.onnx_export.export_onnx_split`); each carries the "
        "SHA-256 of the full graph and is loaded only beside it. Max probability difference on "
        f"{where}: split vs full ONNX {s['max_abs_diff_split_vs_onnx']:.1e}, split vs PyTorch "
        f"{s['max_abs_diff_split_vs_torch']:.1e} (tolerance 1e-4).",
    ]


def render_model_card(s: dict[str, Any]) -> str:
    """The model card (Mitchell et al. 2019 headings) from :func:`ship`'s summary."""
    ann, det = s["ds2"]["annotated"], s["ds2"]["detected"]
    n_leads = int(s.get("n_leads", 2))
    single = n_leads == 1
    fusion = "one lead (MLII)" if single else "attention fusion of the two leads"
    use = (
        "single-lead ambulatory ECG (MLII or lead II; a wearable's one lead is fed as MLII)"
        if single
        else "2-lead ambulatory ECG"
    )
    not_for = "12-lead interpretation" if single else "single-lead or 12-lead recordings"
    lines = [
        f"# Model card: heartline `{s['onnx_file']}`",
        "",
        "Generated by `heartline ship` (`heartline.training.ship.ship`); do not edit by hand.",
        f"Source run `{s['source_run']}`, git revision `{s['git_revision']}`.",
        "",
        "## Model",
        "",
        f"Hybrid CNN-LSTM beat classifier (`heartline.models.hybrid.HybridNet`, {s.get('n_params')} parameters): "
        f"multi-scale dilated CNN per beat and lead, {fusion}, RR features, causal LSTM "
        "over the current and previous beats. Parameters: `" + json.dumps(s["params"]) + "`.",
        f"Inputs: `windows` (batch, K+1, {n_leads} lead(s), 128 samples = 0.25 s before to 0.45 s after the R-peak, resampled), "
        f"`rr` (batch, K+1, RR features); output: probabilities of the AAMI classes N, S, V, F, Q. "
        f"ONNX file {s['onnx_bytes'] / 1024:.0f} KiB; PyTorch weights: {s['pytorch_weights'] or 'not shipped (>= 2 MB)'}. "
        f"Max |PyTorch - ONNX Runtime| probability difference on all DS2 beats: {s['max_abs_diff_torch_vs_onnx']:.1e} (tolerance 1e-4).",
        *_split_lines(s),
        "",
        "## Data and protocol",
        "",
        "MIT-BIH Arrhythmia Database (PhysioNet), 360 Hz, leads MLII and V1/V2/V4/V5; paced records 102, 104, 107, "
        "217 excluded. Inter-patient protocol of de Chazal et al. (2004). "
        + s.get(
            "training_protocol",
            "Trained on DS1 minus the validation records 101, 116, 220, 223, 230; early stopping and "
            "model selection on those validation records only; DS2 (22 other patients) scored once.",
        )
        + " Labels: AAMI EC57 classes from the beat annotations.",
        f"Training: {s['train_seconds']:.0f} s on this machine's CPU (best epoch {s.get('best_epoch')}, stop: {s.get('stop_reason')}, "
        f"validation macro-F1 {_p(s.get('validation_best_macro_f1'))} %).",
        "",
        "## Metrics on DS2 (inter-patient), percent, [95 % CI by record bootstrap]",
        "",
        "| metric | annotated R-peaks | detected R-peaks (heartline detector) |",
        "|---|---|---|",
    ]
    for key, label in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1 (N,S,V,F)"),
        ("kappa", "kappa"),
        ("mcc", "MCC"),
    ):
        lines.append(f"| {label} | {_p(ann[key])}{_ci(ann, key)} | {_p(det[key])}{_ci(det, key)} |")
    for kind, label in (("sveb", "SVEB"), ("veb", "VEB")):
        for q, ql in (("se", "Se"), ("ppv", "+P")):
            lines.append(
                f"| {label} {ql} (EC57) | {_p(ann['ec57'][kind][q])}{_ci(ann, f'{kind}_{q}')} | {_p(det['ec57'][kind][q])}{_ci(det, f'{kind}_{q}')} |"
            )
    for c in ("N", "S", "V", "F"):
        a, b = ann["classes"][c], det["classes"][c]
        lines.append(
            f"| {c} Se / +P / AUC | {_p(a['se'])} / {_p(a['ppv'])} / {_p(a['auc'])} | {_p(b['se'])} / {_p(b['ppv'])} / {_p(b['auc'])} |"
        )
    lines += [
        "",
        f"Detected R-peaks: {det.get('n_missed_beats', 0)} reference beats missed (scored as errors of their class) and "
        f"{det.get('n_false_detections', 0)} false detections (EC57 false positives when labelled S or V).",
        "",
        "## Targets",
        "",
        "| target | measured (annotated) | met |",
        "|---|---|---|",
    ]
    for t in ann["targets"]:
        v = (
            "n/a"
            if t["value"] is None
            else (
                f"{t['value']:.0f} s"
                if t["key"] == "train_seconds"
                else f"{100 * t['value']:.1f} %"
            )
        )
        lines.append(
            f"| {t['name']} (>= {100 * t['target']:.1f} %) | {v} | {'yes' if t['met'] else 'NO'} |"
            if t["key"] != "train_seconds"
            else f"| {t['name']} (<= {t['target']:.0f} s) | {v} | {'yes' if t['met'] else 'NO'} |"
        )
    lines += ["", "## Known failure modes (DS2, annotated R-peaks)", ""]
    conf = ann["top_confusions"][:5]
    if conf:
        lines.append(
            "Largest confusions: "
            + ", ".join(
                f"{c['reference']}->{c['predicted']} {c['count']} beats ({_p(c['fraction_of_reference'])} % of {c['reference']})"
                for c in conf
            )
            + "."
        )
    rows = ann["per_record"]
    for kind, label in (("sveb", "SVEB"), ("veb", "VEB")):
        worst = sorted(rows, key=lambda r: -(r[f"{kind}_fn"] + r[f"{kind}_fp"]))[:5]
        parts = [
            f"{r['record']} (n={r[f'{kind}_n']}, FN {r[f'{kind}_fn']}, FP {r[f'{kind}_fp']})"
            for r in worst
            if r[f"{kind}_fn"] + r[f"{kind}_fp"]
        ]
        if parts:
            lines.append(f"- {label} errors concentrate in records " + ", ".join(parts) + ".")
    f = ann["classes"]["F"]
    lines += [
        f"- Fusion (F) beats: Se {_p(f['se'])} %, +P {_p(f['ppv'])} %; F is rare in DS1 (401 training beats), mostly from record 208.",
        "- Q (unclassifiable) has almost no examples (6 in DS1) and is not a usable output.",
        "",
        "## Latency (ONNX Runtime, CPU, 1 thread)",
        "",
        f"One beat per call: median {s['latency']['single_beat_median_ms']:.2f} ms, p95 {s['latency']['single_beat_p95_ms']:.2f} ms; "
        f"batched (256): {s['latency']['batched_per_beat_ms']:.3f} ms per beat ({s['latency']['n_beats']} DS2 beats, shared 2-core machine under load).",
        "",
        "## Intended use",
        "",
        f"Research and engineering of the Heartline monitoring pipeline: labelling beats of {use} "
        "(360 Hz MIT-BIH-like recordings, R-peaks from the heartline detector) to drive arrhythmia alerts that a clinician "
        f"reviews. Not a medical device, not validated for diagnosis, not for paced patients, {not_for} "
        "recordings, other sampling pipelines or paediatric use without re-validation. Scores are from 22 DS2 patients: "
        "wide confidence intervals, and per-patient performance varies a lot (see above).",
        "",
        "## References",
        "",
        "de Chazal P, O'Dwyer M, Reilly RB. IEEE Trans Biomed Eng 51(7):1196-1206 (2004). "
        "ANSI/AAMI EC57:1998/(R)2008. Moody GB, Mark RG. IEEE Eng Med Biol 20(3):45-50 (2001). "
        "Mitchell M et al. Model cards for model reporting. FAT* (2019).",
        "",
    ]
    return "\n".join(lines)
