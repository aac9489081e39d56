"""Live cost of a patient's adapted model in the stream processor's classification stage.

Replays MIT-BIH records through :class:`heartline.pipeline.beat_pipeline.BeatPipeline` in 1 s
chunks, as a stream-processor worker receives them, and measures the thread CPU time per beat of
the classification stage (:func:`~heartline.pipeline.beat_pipeline.classify_batches`) plus the
adaptation hook (:func:`heartline.edge.adapt.apply_batches`), and of the hook alone (its own
cost, less exposed to the load's noise than the sum), in three set-ups:

``base``
    No per-patient registry (the base model alone).
``adapted``
    The registry with an active prototype model for the patient; the hook takes the current
    beats' encoder features from the stream's feature cache (what the processor does).
``adapted-reencode``
    The same, but the hook encodes the current beats again (the behaviour before the cache was
    used), for comparison.

The prototype model is fitted on the record's first ``--fit-seconds`` with the base model's own
labels (this measures cost, not accuracy: the accuracy figures come from
``heartline evaluate --protocol patient-adaptive``). Fitted on the base model's own labels the
mixture weight often comes out 0 (the prototypes add nothing to the base model's opinion), and
a zero weight costs nothing since 2026-12-07; ``--weight W`` sets the weight of every fitted
artefact to ``W`` so that the cost of an active adaptation is measured (the cost does not depend
on the value of a non-zero weight). Thread CPU time, not wall time, so that other
processes on a shared machine inflate it less; still, report the load average beside it.

Usage::

    python benchmarks/adaptation/live_cost.py --data-dir /work/shared/data/mitdb \\
        --records 208,119 --out runs/adapt-live-cost.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.edge.adapt import PatientModelRegistry, apply_batches, fit_prototypes
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.edge.shipped import shipped_model_path
from heartline.io.records import read_record
from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches

SETUPS = ("base", "adapted", "adapted-reencode")


def _fit(model: OnnxBeatClassifier, signal: np.ndarray, fs: float, leads: tuple[str, ...]):
    pipe = BeatPipeline(fs=fs, lead_names=leads, model=model)
    batches = [b for b in (pipe.prepare(signal), pipe.flush_prepare()) if len(b)]
    p = np.concatenate(classify_batches(model, batches))
    f = model.encode(
        np.concatenate([b.windows[:, -1] for b in batches]),
        np.concatenate([b.rr[:, -1] for b in batches]),
    )
    return fit_prototypes(
        f, p.argmax(1), p, patient_id="bench", base_sha256=file_sha256(model.path), version=1
    )


def _replay(model, registry, signal, fs, leads, *, reencode: bool) -> tuple[float, float, int]:
    """CPU seconds of classification + hook, of the hook alone, and beats, over the record in
    1 s chunks."""
    pipe = BeatPipeline(fs=fs, lead_names=leads, model=model)
    step = round(fs)
    cpu, hook, n = 0.0, 0.0, 0
    for start in range(0, signal.shape[0], step):
        batch = pipe.prepare(signal[start : start + step])
        if not len(batch):
            continue
        t0 = time.thread_time()
        probs = classify_batches(model, [batch])
        t1 = time.thread_time()
        if registry is not None:
            b = dataclasses.replace(batch, context=None) if reencode else batch
            apply_batches(registry, [("bench", b)], probs, models=[model])
        t2 = time.thread_time()
        cpu += t2 - t0
        hook += t2 - t1
        n += len(batch)
    return cpu, hook, n


def _replay_together(model, registry, streams, *, reencode: bool) -> tuple[float, float, int]:
    """:func:`_replay` for several streams handled by one worker: each second, every stream's
    chunk goes through its own pipeline, then one classification call and one hook call take
    all of their beats (what the stream processor does with a batch of several devices)."""
    pipes = [BeatPipeline(fs=fs, lead_names=leads, model=model) for _, _, fs, leads in streams]
    steps = [round(fs) for _, _, fs, _ in streams]
    chunks = max(-(-sig.shape[0] // st) for (_, sig, _, _), st in zip(streams, steps, strict=True))
    cpu, hook, n = 0.0, 0.0, 0
    for k in range(chunks):
        batches = []
        for (pid, sig, _, _), pipe, st in zip(streams, pipes, steps, strict=True):
            if k * st < sig.shape[0]:
                b = pipe.prepare(sig[k * st : (k + 1) * st])
                if len(b):
                    batches.append((pid, dataclasses.replace(b, context=None) if reencode else b))
        if not batches:
            continue
        t0 = time.thread_time()
        probs = classify_batches(model, [b for _, b in batches])
        t1 = time.thread_time()
        if registry is not None:
            apply_batches(registry, batches, probs, models=[model] * len(batches))
        t2 = time.thread_time()
        cpu += t2 - t0
        hook += t2 - t1
        n += sum(len(b) for _, b in batches)
    return cpu, hook, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="MIT-BIH directory")
    ap.add_argument("--records", default="208,119")
    ap.add_argument("--seconds", type=float, default=600.0, help="replayed per record")
    ap.add_argument("--fit-seconds", type=float, default=300.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--weight",
        type=float,
        default=None,
        help="mixture weight of every artefact (default: fitted)",
    )
    ap.add_argument(
        "--together",
        action="store_true",
        help="replay the records as simultaneous streams of one worker (one classification "
        "and one hook call per second for all of them) instead of one after the other",
    )
    ap.add_argument("--out", type=Path, required=True, help="JSON results file")
    args = ap.parse_args()
    model = OnnxBeatClassifier(shipped_model_path())
    results: dict[str, dict[str, list[float]]] = {}
    fitted_weight: dict[str, float] = {}
    hooks: dict[str, dict[str, list[float]]] = {}
    stored_by_record: dict[str, tuple[int, str, bytes]] = {}
    streams = []
    for rec in [r.strip() for r in args.records.split(",") if r.strip()]:
        r = read_record(args.data_dir / rec)
        fs, leads = float(r.fs), tuple(r.lead_names)
        art = _fit(model, r.signal[: int(args.fit_seconds * fs)], fs, leads)
        fitted_weight[rec] = float(art.weight)
        if args.weight is not None:
            art = dataclasses.replace(art, weight=float(args.weight))
        stored = (1, "prototypes", art.to_bytes())
        registry = PatientModelRegistry(model, lambda _pid, s=stored: s, refresh_s=1e9)
        signal = r.signal[: int(args.seconds * fs)]
        if args.together:
            stored_by_record[rec] = stored
            streams.append((rec, signal, fs, leads))
            continue
        per = {s: [] for s in SETUPS}
        per_hook = {s: [] for s in SETUPS}
        for _ in range(args.repeats):  # interleaved, so that load changes hit every set-up
            for setup in SETUPS:
                cpu, hook, n = _replay(
                    model,
                    None if setup == "base" else registry,
                    signal,
                    fs,
                    leads,
                    reencode=setup == "adapted-reencode",
                )
                per[setup].append(1e6 * cpu / max(n, 1))
                per_hook[setup].append(1e6 * hook / max(n, 1))
        results[rec] = per
        hooks[rec] = per_hook
        print(rec, {s: round(float(np.median(v)), 1) for s, v in per.items()}, "us/beat (median)")
        print(rec, {s: round(float(np.median(v)), 1) for s, v in per_hook.items()}, "hook us/beat")
    if args.together:
        registry = PatientModelRegistry(model, stored_by_record.get, refresh_s=1e9)
        per = {s: [] for s in SETUPS}
        per_hook = {s: [] for s in SETUPS}
        for _ in range(args.repeats):
            for setup in SETUPS:
                cpu, hook, n = _replay_together(
                    model,
                    None if setup == "base" else registry,
                    streams,
                    reencode=setup == "adapted-reencode",
                )
                per[setup].append(1e6 * cpu / max(n, 1))
                per_hook[setup].append(1e6 * hook / max(n, 1))
        key = "+".join(stored_by_record)
        results[key], hooks[key] = per, per_hook
        print(key, {s: round(float(np.median(v)), 1) for s, v in per.items()}, "us/beat (median)")
        print(key, {s: round(float(np.median(v)), 1) for s, v in per_hook.items()}, "hook us/beat")
    out = {
        "what": "thread CPU time per beat of classify_batches + apply_batches, 1 s chunks",
        "together": bool(args.together),
        "model": str(model.path.name),
        "classes": list(AAMI_CLASSES),
        "seconds_per_record": args.seconds,
        "repeats": args.repeats,
        "fitted_weight": fitted_weight,
        "weight": args.weight,
        "load_average": list(os.getloadavg()),
        "us_per_beat": results,
        "median_us_per_beat": {
            s: float(np.median([np.median(results[r][s]) for r in results])) for s in SETUPS
        },
        "hook_us_per_beat": hooks,
        "median_hook_us_per_beat": {
            s: float(np.median([np.median(hooks[r][s]) for r in hooks])) for s in SETUPS
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out["median_us_per_beat"]), json.dumps(out["median_hook_us_per_beat"]))
    print("load", out["load_average"])


if __name__ == "__main__":
    main()
