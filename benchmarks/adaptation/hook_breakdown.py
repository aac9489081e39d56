"""Where the live adaptation hook's time goes inside the stream, step by step.

Replays MIT-BIH records through :class:`heartline.pipeline.beat_pipeline.BeatPipeline` in 1 s
chunks as :mod:`live_cost` does (the base model's classification, then the hook, with a prototype
artefact fitted on the record's first ``--fit-seconds`` and its mixture weight set to
``--weight``), and after each chunk's classification runs one of these *stages*, taking turns
from chunk to chunk so that every stage sees the same load and the same state of the processor's
caches:

``timer``
    Nothing (the cost of reading the clock).
``no registry``
    :func:`~heartline.edge.adapt.apply_batches` without a registry.
``lookup``
    The patient's model from the registry (``registry.get``).
``+ features``
    ... and the current beats' encoder features from the stream's feature cache.
``+ step``
    ... and the prototype step (``adapted.proba_from``): the hook's work without its loop.
``hook``
    :func:`~heartline.edge.adapt.apply_batches` (what the stream processor calls).
``hook again``
    The hook called a second time right after the first; the second call is timed: the same
    work with warm processor caches.

Thread CPU time per call (median and mean over the calls of a stage) and per beat. Only
functions present in the library since 2026-12-07 are used, so the script runs against an
earlier source tree too (``PYTHONPATH=<tree>/src``).

Usage::

    python benchmarks/adaptation/hook_breakdown.py --data-dir /work/shared/data/mitdb \\
        --records 208,119,100,232 --seconds 300 --weight 0.5 --out OUT.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_cost import _fit

from heartline.edge import adapt
from heartline.edge.adapt import PatientModelRegistry, apply_batches
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.edge.shipped import shipped_model_path
from heartline.io.records import read_record
from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches


def _stages(model: OnnxBeatClassifier, registry: PatientModelRegistry) -> dict:
    def lookup(batch, p):
        return registry.get("bench").adapted

    def features(batch, p):
        registry.get("bench").adapted  # noqa: B018
        return adapt._cached_features(model, batch)

    def step(batch, p):
        adapted = registry.get("bench").adapted
        return adapted.proba_from(adapt._cached_features(model, batch), p)

    def hook(batch, p):
        return apply_batches(registry, [("bench", batch)], [p], models=[model])

    return {
        "timer": lambda batch, p: None,
        "no registry": lambda batch, p: apply_batches(None, [("bench", batch)], [p]),
        "lookup": lookup,
        "+ features": features,
        "+ step": step,
        "hook": hook,
        "hook again": hook,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="MIT-BIH directory")
    ap.add_argument("--records", default="208,119,100,232")
    ap.add_argument("--seconds", type=float, default=300.0, help="replayed per record")
    ap.add_argument("--fit-seconds", type=float, default=300.0)
    ap.add_argument("--weight", type=float, default=0.5, help="mixture weight of the artefacts")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file")
    args = ap.parse_args()
    model = OnnxBeatClassifier(shipped_model_path())
    tick = time.thread_time_ns
    per_call: dict[str, list[float]] = {}
    beats: dict[str, int] = {}
    for rec in [r.strip() for r in args.records.split(",") if r.strip()]:
        r = read_record(args.data_dir / rec)
        fs, leads = float(r.fs), tuple(r.lead_names)
        art = _fit(model, r.signal[: int(args.fit_seconds * fs)], fs, leads)
        art = dataclasses.replace(art, weight=float(args.weight))
        stored = (1, "prototypes", art.to_bytes())
        registry = PatientModelRegistry(model, lambda _pid, s=stored: s, refresh_s=1e9)
        stages = _stages(model, registry)
        # load the artefact and compute its constants before anything is timed
        registry.get("bench").adapted.proba_from(
            np.zeros((1, int(model.feature_dim)), np.float32), np.full((1, 5), 0.2, np.float32)
        )
        names = list(stages)
        pipe = BeatPipeline(fs=fs, lead_names=leads, model=model)
        step, turn = round(fs), 0
        signal = r.signal[: int(args.seconds * fs)]
        for start in range(0, signal.shape[0], step):
            batch = pipe.prepare(signal[start : start + step])
            if not len(batch):
                continue
            (p,) = classify_batches(model, [batch])
            name = names[turn % len(names)]
            turn += 1
            if name == "hook again":
                stages[name](batch, p)
            t0 = tick()
            stages[name](batch, p)
            per_call.setdefault(name, []).append((tick() - t0) / 1e3)
            beats[name] = beats.get(name, 0) + len(batch)
        print(rec, "done", flush=True)
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(adapt.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    out = {
        "what": "thread CPU time of each stage after the base model's classification of a 1 s "
        "chunk, stages taking turns chunk by chunk",
        "library": str(Path(adapt.__file__).resolve()),
        "library_commit": commit,
        "records": args.records,
        "seconds_per_record": args.seconds,
        "weight": args.weight,
        "load_average": list(os.getloadavg()),
        "stages": {
            name: {
                "calls": len(v),
                "median_us_per_call": round(float(np.median(v)), 1),
                "mean_us_per_call": round(float(np.mean(v)), 1),
                "us_per_beat": round(float(np.sum(v)) / max(beats[name], 1), 1),
            }
            for name, v in per_call.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    for name, s in out["stages"].items():
        print(
            f"{name:12s} {s['median_us_per_call']:7.1f} us/call (median), {s['us_per_beat']:6.1f}"
        )
    print("load", out["load_average"])


if __name__ == "__main__":
    main()
