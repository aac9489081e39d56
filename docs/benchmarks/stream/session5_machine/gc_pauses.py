"""Garbage-collector pauses of one stream processor, default collector vs ``tune_gc``.

Usage: ``.venv/bin/python docs/benchmarks/stream/session5_machine/gc_pauses.py MODE N OUT``
with MODE ``default`` or ``tuned``: runs ``heartline bench stream-profile``'s harness for N
patients (40 s warm-up + 20 s measured, batches of 100 frames) with a ``gc.callbacks`` timer
over the whole run, and writes ``OUT/gc_pauses.json``. The processor's storage-ack publishes are
dropped (no broker is connected in the harness, so paho would queue them and add objects a live
processor does not keep).
"""

import gc
import json
import sys
import time
from pathlib import Path

from heartline.bench import stream_profile as sp
from heartline.edge.shipped import shipped_model_path
from heartline.ingestion import processor as pm

mode, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if mode not in ("default", "tuned"):
    raise SystemExit("MODE must be default or tuned")
stats = {"count": [0, 0, 0], "total_s": [0.0, 0.0, 0.0], "max_ms": [0.0, 0.0, 0.0]}
t0 = [0.0]


def timer(phase: str, info: dict) -> None:
    if phase == "start":
        t0[0] = time.perf_counter()
        return
    d, g = time.perf_counter() - t0[0], info["generation"]
    stats["count"][g] += 1
    stats["total_s"][g] += d
    stats["max_ms"][g] = max(stats["max_ms"][g], 1e3 * d)


orig_init = pm.StreamProcessor.__init__


def init(self, *a, **k):
    orig_init(self, *a, **k)
    for c in self._clients:
        c.publish = lambda *a, **k: None
    if mode == "tuned":
        pm.tune_gc()
    gc.callbacks.append(timer)


pm.StreamProcessor.__init__ = init
p = sp.run_stream_profile(
    out / "profile", model=shipped_model_path(), patients=n, seconds=20, warmup_s=40,
    batch_frames=100,
)
gc.callbacks.remove(timer)
res = {"mode": mode, "patients": n, "frames": n * 60, "threshold": gc.get_threshold(),
       "collections_by_generation": stats["count"],
       "collector_s_by_generation": [round(x, 3) for x in stats["total_s"]],
       "max_pause_ms_by_generation": [round(x, 1) for x in stats["max_ms"]],
       "worker_us_per_frame_measured_part": round(p.worker_us_per_frame)}
out.mkdir(parents=True, exist_ok=True)
(out / "gc_pauses.json").write_text(json.dumps(res, indent=2))
print(json.dumps(res))
