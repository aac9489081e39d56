"""Record every alert-engine call of a ``heartline bench stream-profile`` run (for replays).

Runs :func:`heartline.bench.stream_profile.run_stream_profile` with the engine's input methods
wrapped: each call (patient, method, arguments; a ``BeatSeries`` as its arrays) is appended to a
list, flagged ``measured`` once the profile's warm-up is over. The list is pickled to
``OUT/engine_calls.pkl`` for ``replay_calls.py`` (CPU per call of the engine alone, old vs new
code, and equality of the updates against the reference path).

Usage (under the heavy-job lock, one thread)::

    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock .venv/bin/python \
        docs/benchmarks/stream/profile_alerts3/record_calls.py --out /tmp/hl/calls100 \
        --patients 100 --seconds 30 --warmup 150
"""

from __future__ import annotations

import argparse
import functools
import pickle
import time
from pathlib import Path

from heartline.alerts.engine import AlertEngine
from heartline.alerts.rules import BeatSeries

_METHODS = ("add_beats", "add_quality", "add_vf", "add_vitals", "advance", "flush_reports")


def _plain(value):
    if isinstance(value, BeatSeries):
        return (
            "BeatSeries",
            value.time_s.copy(),
            value.label.copy(),
            value.beat_id.copy(),
            value.sample_idx.copy(),
            value.confidence.copy(),
            value.quality_ok.copy(),
            tuple(value.noisy_spans_s),
        )
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--batch", type=int, default=25)
    args = ap.parse_args()

    from heartline.bench.stream_profile import run_stream_profile
    from heartline.edge.shipped import shipped_model_path

    calls: list[tuple] = []
    phase = {"measured": False}
    spent = {"engine": 0.0, "series": 0.0}

    def wrap(name: str):
        real = getattr(AlertEngine, name)

        @functools.wraps(real)
        def recorded(self, *a, **kw):
            calls.append(
                (
                    phase["measured"],
                    self.patient_id,
                    name,
                    tuple(_plain(x) for x in a),
                    {k: _plain(v) for k, v in kw.items()},
                )
            )
            t0 = time.thread_time()
            try:
                return real(self, *a, **kw)
            finally:
                if phase["measured"]:
                    spent["engine"] += time.thread_time() - t0

        return recorded

    for name in _METHODS:
        setattr(AlertEngine, name, wrap(name))
    real_init = BeatSeries.__init__

    def timed_init(self, *a, **kw):
        t0 = time.thread_time()
        try:
            real_init(self, *a, **kw)
        finally:
            if phase["measured"]:
                spent["series"] += time.thread_time() - t0

    BeatSeries.__init__ = timed_init  # type: ignore[method-assign]

    def report(msg: str) -> None:
        if msg.startswith("stream profile: measuring"):
            phase["measured"] = True
        print(msg, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    prof = run_stream_profile(
        args.out,
        model=shipped_model_path(),
        patients=args.patients,
        seconds=args.seconds,
        warmup_s=args.warmup,
        batch_frames=args.batch,
        report=report,
    )
    with open(args.out / "engine_calls.pkl", "wb") as fh:
        pickle.dump(calls, fh, protocol=pickle.HIGHEST_PROTOCOL)
    n_measured = sum(c[0] for c in calls)
    print(f"{len(calls)} engine calls ({n_measured} measured) -> {args.out / 'engine_calls.pkl'}")
    alerts = next(s.us_per_frame for s in prof.stages if s.stage == "alerts")
    print(
        f"measured phase, CPU us/frame: alerts stage {alerts:.0f}, inside engine calls "
        f"{1e6 * spent['engine'] / prof.frames:.0f}, BeatSeries construction "
        f"{1e6 * spent['series'] / prof.frames:.0f} (both timed by this script's wrappers)"
    )


if __name__ == "__main__":
    main()
