"""Replay recorded alert-engine calls (``record_calls.py``): CPU per call, digest of the updates.

Feeds the recorded calls, in their order, to one :class:`~heartline.alerts.engine.AlertEngine`
per patient of whatever ``heartline`` is on the path (``PYTHONPATH=/tmp/hl/baseX/src`` for an
old snapshot) and prints the engine's CPU time (``time.thread_time``) over the calls of the
profile's measured phase, per call and per frame (``--frames``), and a SHA-256 digest of every
update (change and ``AlertEvent.to_dict()``, call by call) and of the final alerts: two code
versions that print the same digest returned the same updates. ``--reference`` runs the
reference path (``_incremental = False``), ``--cprofile N`` prints the top ``N`` functions of a
cProfile of the measured phase, ``--check`` compares every call's updates with the reference
path's directly (both engines fed side by side).

Usage::

    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock .venv/bin/python \
        docs/benchmarks/stream/profile_alerts3/replay_calls.py /tmp/hl/calls100/engine_calls.pkl
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pickle
import pstats
import time

from heartline.alerts.engine import AlertEngine
from heartline.alerts.rules import BeatSeries


def _arg(value):
    if isinstance(value, tuple) and value and value[0] == "BeatSeries":
        _, t, lab, bid, idx, conf, ok, spans = value
        return BeatSeries(t, lab, bid, idx, conf, ok, spans)
    return value


def _dump(updates) -> bytes:
    return json.dumps(
        [(u.change, u.event.to_dict()) for u in updates], sort_keys=True, default=str
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calls")
    ap.add_argument("--reference", action="store_true", help="_incremental = False")
    ap.add_argument("--cprofile", type=int, default=0, metavar="N")
    ap.add_argument("--check", action="store_true", help="compare with the reference path")
    ap.add_argument("--frames", type=int, default=3000, help="measured frames of the run")
    ap.add_argument("--repeat", type=int, default=1, help="replays (the fastest is printed)")
    args = ap.parse_args()
    with open(args.calls, "rb") as fh:
        calls = pickle.load(fh)
    # arguments rebuilt before timing (the processor builds the BeatSeries in its own stage...
    # which the profile charges to "alerts": _beat_series is called inside that lap)
    prepared = [
        (m, pid, name, tuple(_arg(a) for a in args_), {k: _arg(v) for k, v in kw.items()})
        for m, pid, name, args_, kw in calls
    ]
    best = None
    for _rep in range(args.repeat):
        engines: dict[str, AlertEngine] = {}
        refs: dict[str, AlertEngine] = {}
        digest = hashlib.sha256()
        spent = 0.0
        n_measured = 0
        prof = cProfile.Profile() if args.cprofile else None
        for i, (measured, pid, name, a, kw) in enumerate(prepared):
            eng = engines.get(pid)
            if eng is None:
                eng = engines[pid] = AlertEngine(pid)
                eng._incremental = not args.reference
                if args.check:
                    refs[pid] = AlertEngine(pid)
                    refs[pid]._incremental = False
            if measured and prof is not None:
                prof.enable()
            t0 = time.thread_time()
            ups = getattr(eng, name)(*a, **kw)
            dt = time.thread_time() - t0
            if measured and prof is not None:
                prof.disable()
            if measured:
                spent += dt
                n_measured += 1
            out = _dump(ups)
            digest.update(out)
            if args.check:
                ref = _dump(getattr(refs[pid], name)(*a, **kw))
                if ref != out:
                    raise SystemExit(f"call {i} ({pid} {name}): updates differ from the reference")
        for pid in sorted(engines):
            digest.update(_dump(engines[pid].flush_reports()))
            digest.update(
                json.dumps([e.to_dict() for e in engines[pid].alerts()], default=str).encode()
            )
        if best is None or spent < best:
            best = spent
        if prof is not None:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(args.cprofile)
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.cprofile)
    assert best is not None
    print(
        f"{len(prepared)} calls, {n_measured} measured: engine CPU {best:.3f} s = "
        f"{1e6 * best / n_measured:.0f} us/call = {1e6 * best / args.frames:.0f} us/frame "
        f"({args.frames} frames); updates digest {digest.hexdigest()[:16]}"
        + ("; all calls equal the reference path" if args.check else "")
    )


if __name__ == "__main__":
    main()
