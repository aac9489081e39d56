#!/bin/bash
# Back-to-back stream profiles of session 6's final code (da49c0c) and this tree, alternating
# A B A B, at the profile's default warm-up (150 s per patient: full template histories) and at
# a 5 s warm-up (templates still filling, as in the 20 s capacity steps).
# Usage: docs/benchmarks/stream/session7/ab_profile.sh   (prints one line per run)
set -e
cd "$(dirname "$0")/../../../.."
OLD=/tmp/hl-ab/da49c0c
if [ ! -d "$OLD/src" ]; then mkdir -p "$OLD" && git archive da49c0c src | tar -x -C "$OLD"; fi
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
