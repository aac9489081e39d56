#!/bin/bash
# Back-to-back stream profiles before (9e1b1c8, A) and after (this tree, B) the one-gather context
# assembly of a batch (BeatPipeline._assemble), alternating A B A B, 100 patients with full
# template histories (150 s warm-up) and with histories still filling (5 s warm-up).
# Usage: docs/benchmarks/stream/session8/ab_assemble.sh   (prints one line per run)
set -e
cd "$(dirname "$0")/../../../.."
OLD=/tmp/hl-ab/9e1b1c8
if [ ! -d "$OLD/src" ]; then mkdir -p "$OLD" && git archive 9e1b1c8 src | tar -x -C "$OLD"; fi
for round in 1 2; do
  for t in A B; do
    case $t in A) P=$OLD/src;; B) P=$PWD/src;; esac
    for wu in 150 5; do
      out=$(mktemp -d /tmp/hl-ab/run-XXXX)
      PYTHONPATH=$P .venv/bin/heartline bench stream-profile --tune-gc --warmup "$wu" --out "$out" > "$out/log" 2>&1
      beats=$(grep -E '^\| beats ' "$out/log" | cut -d'|' -f4 | tr -d ' ')
      total=$(grep -E 'worker total' "$out/log" | cut -d'|' -f4 | tr -d ' *')
      echo "round=$round code=$t warmup_s=$wu beats_us_per_frame=$beats worker_total_us_per_frame=$total"
    done
  done
done
