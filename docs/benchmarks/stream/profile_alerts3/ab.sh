#!/bin/bash
# Old vs new alert code, back to back, under the heavy-job lock (see NOTES.md):
#   flock /tmp/hl/heavy.lock docs/benchmarks/stream/profile_alerts3/ab.sh OLD_ALERTS_COMMIT [ROUNDS]
# Both snapshots are `git archive HEAD src`; the old one gets src/heartline/alerts of
# OLD_ALERTS_COMMIT, so only the alert code differs. Needs the calls recorded by
# record_calls.py in /tmp/hl/calls100/engine_calls.pkl for the engine-only replays.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
old_commit=$1
rounds=${2:-3}
export OMP_NUM_THREADS=1
rm -rf /tmp/hl/ab_old /tmp/hl/ab_new
mkdir -p /tmp/hl/ab_old /tmp/hl/ab_new
git archive HEAD src | tar -x -C /tmp/hl/ab_old
git archive HEAD src | tar -x -C /tmp/hl/ab_new
rm -rf /tmp/hl/ab_old/src/heartline/alerts
git archive "$old_commit" src/heartline/alerts | tar -x -C /tmp/hl/ab_old
replay=docs/benchmarks/stream/profile_alerts3/replay_calls.py
echo "HEAD $(git rev-parse --short HEAD), old alerts $old_commit; load $(cat /proc/loadavg)"
for r in $(seq "$rounds"); do
  for v in old new; do
    echo -n "replay $v $r: "
    PYTHONPATH=/tmp/hl/ab_$v/src .venv/bin/python $replay /tmp/hl/calls100/engine_calls.pkl
  done
done
for r in $(seq "$rounds"); do
  for v in old new; do
    out=/tmp/hl/prof_alerts_${v}_$r
    rm -rf "$out"
    PYTHONPATH=/tmp/hl/ab_$v/src .venv/bin/heartline bench stream-profile --patients 100 \
      --seconds 30 --warmup 150 --batch 25 --out "$out" > "$out.log" 2>&1
    echo "profile $v $r: $(grep -E '^\| alerts' "$out/stream_profile.md" | cut -d'|' -f4,5)" \
      "worker $(grep -E 'worker total' "$out/stream_profile.md" | cut -d'|' -f4)"
  done
done
echo "load $(cat /proc/loadavg)"
