#!/bin/bash
# CPU time to build one BeatPipeline (shipped model, 360 Hz, 2 leads), as a stream processor does
# for every device that connects: session 7's code (5586868, A) against this tree (B), A B A B,
# 500 pipelines per run after one warm-up build.
# Usage: docs/benchmarks/stream/session8/pipeline_build.sh   (prints one line per run)
set -e
cd "$(dirname "$0")/../../../.."
OLD=/tmp/hl-ab/5586868
if [ ! -d "$OLD/src" ]; then mkdir -p "$OLD" && git archive 5586868 src | tar -x -C "$OLD"; fi
for round in 1 2; do
  for t in A B; do
    case $t in A) P=$OLD/src;; B) P=$PWD/src;; esac
    PYTHONPATH=$P .venv/bin/python - "$round" "$t" <<'PY'
import sys, time
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.edge.shipped import shipped_model_path
from heartline.pipeline.beat_pipeline import BeatPipeline
model = OnnxBeatClassifier(shipped_model_path())
BeatPipeline(fs=360.0, lead_names=["MLII", "V5"], model=model)
t0 = time.process_time()
for _ in range(500):
    BeatPipeline(fs=360.0, lead_names=["MLII", "V5"], model=model)
ms = (time.process_time() - t0) / 500 * 1e3
print(f"round={sys.argv[1]} code={sys.argv[2]} ms_per_pipeline={ms:.3f}")
PY
  done
done
