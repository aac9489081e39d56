#!/bin/bash
# Back-to-back single capacity steps (own Mosquitto + SQLite, 2 processor processes, 20 s) of
#   A = c710bd0 (session 5's code and its shipped 13-column model),
#   B = this code with session 5's model (performance work alone),
#   C = this code with its shipped model (template columns),
# in the order A B C C B A. Make the trees first:
#   mkdir -p /tmp/hl/tA /tmp/hl/tB
#   git archive c710bd0 src | tar -x -C /tmp/hl/tA
#   git archive HEAD src | tar -x -C /tmp/hl/tB
#   rm -rf /tmp/hl/tB/src/heartline/assets/models
#   cp -r /tmp/hl/tA/src/heartline/assets/models /tmp/hl/tB/src/heartline/assets/models
# Usage: docs/benchmarks/stream/session6/abc.sh N  (prints one JSON line per step)
cd "$(dirname "$0")/../../../.."
N=$1
for t in A B C C B A; do
  case $t in A) P=/tmp/hl/tA/src;; B) P=/tmp/hl/tB/src;; C) P=$PWD/src;; esac
  echo -n "$t N=$N "
  PYTHONPATH=$P .venv/bin/python docs/benchmarks/stream/session5_machine/step.py "$N" 20 \
    "/tmp/hl/abc_${t}_${N}_$RANDOM" 1 2>/dev/null | tail -1
done
