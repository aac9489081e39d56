#!/bin/bash
# Back-to-back stream profiles of session 7's final code (5586868, A) and this tree (B),
# alternating A B A B: the first 3 s of 200 devices that have just connected (--warmup 0: every
# device's pipeline is built inside the measured span, as when a step of the capacity search
# starts or a processor restarts) and, as a check for regressions, 20 s at full histories.
# Reports the processor's whole CPU per frame (process_cpu_us_per_frame of stream_profile.json).
# Usage: docs/benchmarks/stream/session8/ab_startup.sh   (prints one line per run)
set -e
cd "$(dirname "$0")/../../../.."
OLD=/tmp/hl-ab/5586868
if [ ! -d "$OLD/src" ]; then mkdir -p "$OLD" && git archive 5586868 src | tar -x -C "$OLD"; fi
for round in 1 2; do
  for t in A B; do
    case $t in A) P=$OLD/src;; B) P=$PWD/src;; esac
    for spec in "0 3" "150 20"; do
      set -- $spec
      out=$(mktemp -d /tmp/hl-ab/run-XXXX)
      PYTHONPATH=$P .venv/bin/heartline bench stream-profile --tune-gc --patients 200 --warmup "$1" --seconds "$2" --out "$out" > "$out/log" 2>&1
      cpu=$(.venv/bin/python -c "import json,sys; print(round(json.load(open(sys.argv[1]))['process_cpu_us_per_frame']))" "$out/stream_profile.json")
      echo "round=$round code=$t warmup_s=$1 seconds=$2 process_cpu_us_per_frame=$cpu"
    done
  done
done
