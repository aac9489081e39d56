"""Wall time of each rule and engine step over the measured calls of a recorded run (replay).

Wraps the rules and the engine's internal steps with ``time.perf_counter`` (the wrappers add
their own cost, so the figures are for ranking, not absolute) and replays the calls recorded by
``record_calls.py``; prints us per frame (3000 frames) and per call.

Usage::

    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock .venv/bin/python \
        docs/benchmarks/stream/profile_alerts3/stage_times.py /tmp/hl/calls100/engine_calls.pkl
"""

from __future__ import annotations

import collections
import pickle
import sys
import time

import heartline.alerts.engine as E
import heartline.alerts.rules as R
from heartline.alerts.rules import BeatSeries

FRAMES = 3000


def main() -> None:
    with open(sys.argv[1], "rb") as fh:
        calls = pickle.load(fh)

    def arg(v):
        if isinstance(v, tuple) and v and v[0] == "BeatSeries":
            return BeatSeries(*v[1:])
        return v

    prep = [
        (m, p, n, tuple(arg(a) for a in args), {k: arg(v) for k, v in kw.items()})
        for m, p, n, args, kw in calls
    ]
    acc: collections.Counter[str] = collections.Counter()
    cnt: collections.Counter[str] = collections.Counter()
    on = [False]

    def timed(f, name):
        def w(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                if on[0]:
                    acc[name] += time.perf_counter() - t
                    cnt[name] += 1

        return w

    for name in [n for n in dir(R) if n.startswith("detect_")]:
        setattr(R, name, timed(getattr(R, name), name))
    for name in ("evaluate_rules", "news2"):
        setattr(E, name, timed(getattr(E, name), name))
    for name in ("_apply", "_finish", "_trim", "window", "_reported", "_score_news2", "_step"):
        if hasattr(E.AlertEngine, name):
            setattr(E.AlertEngine, name, timed(getattr(E.AlertEngine, name), name))
    engines: dict[str, E.AlertEngine] = {}
    total: collections.Counter[str] = collections.Counter()
    for m, p, n, a, k in prep:
        eng = engines.get(p) or engines.setdefault(p, E.AlertEngine(p))
        on[0] = m
        t = time.perf_counter()
        getattr(eng, n)(*a, **k)
        if m:
            total[n] += time.perf_counter() - t
            cnt["call:" + n] += 1
    print(f"us per frame ({FRAMES} frames), measured calls only:")
    for k, v in sorted(total.items(), key=lambda x: -x[1]):
        print(f"  call {k:12s} {v / FRAMES * 1e6:7.1f}  n={cnt['call:' + k]}")
    for k, v in sorted(acc.items(), key=lambda x: -x[1]):
        print(f"  {k:28s} {v / FRAMES * 1e6:7.1f}  n={cnt[k]}  per call {v / cnt[k] * 1e6:.1f}")


if __name__ == "__main__":
    main()
