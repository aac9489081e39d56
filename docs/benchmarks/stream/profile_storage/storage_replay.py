"""Record the stream profile's write transactions once, replay them into a fresh database.

The storage stage of ``heartline bench stream-profile`` is the processor's one write
transaction per batch (``StreamProcessor._write``: frames, ECG blocks, vitals, quarantine,
beats, alerts, commit). ``record`` runs that harness (SQLite) and pickles the arguments of
every ``_write`` call, marking where the measured seconds start; ``replay`` feeds the same calls
to ``StreamProcessor._write`` of the code on ``PYTHONPATH`` against a fresh SQLite file or a
scratch PostgreSQL database, and reports the worker thread's CPU per frame
(``time.thread_time``, as the harness) over the measured calls only, the warm-up calls filling
the database first. Without the parse/detect/classify/alert stages in between, runs take
seconds instead of a minute and the figures vary less, so old and new storage code can be
compared several times back to back on identical writes. ``--cprofile wall|cpu`` profiles the
measured calls with a wall-clock or thread-CPU timer (take figures from runs without it);
``--wal-pages`` (SQLite) turns checkpoints off and prints the WAL pages each measured commit
wrote.

Usage (repository root; heavy jobs under the lock, one thread)::

    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock .venv/bin/python \
        docs/benchmarks/stream/profile_storage/storage_replay.py record --out /tmp/rec
    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock env PYTHONPATH=OLD/src .venv/bin/python \
        docs/benchmarks/stream/profile_storage/storage_replay.py replay --rec /tmp/rec \
        --db sqlite --repeat 3
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pickle
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def record(args: argparse.Namespace) -> None:
    import heartline.ingestion.processor as processor_mod
    from heartline.bench.stream_profile import run_stream_profile
    from heartline.cli.live import _resolve_model

    cls = processor_mod.StreamProcessor
    calls: list[bytes] = []
    state: dict[str, Any] = {"measure_from": None, "measure_to": None, "known": None}
    orig_write, orig_counters = cls._write, cls.counters

    def write(self, to_store, bad, beat_rows, updates, now_utc):
        calls.append(pickle.dumps((to_store, bad, beat_rows, updates, now_utc), protocol=5))
        state["known"] = dict(self._known)
        return orig_write(self, to_store, bad, beat_rows, updates, now_utc)

    def counters(self):  # read by the harness right before and right after the measured part
        key = "measure_from" if state["measure_from"] is None else "measure_to"
        state[key] = len(calls)
        return orig_counters(self)

    cls._write, cls.counters = write, counters  # type: ignore[method-assign]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_stream_profile(
            tmp,
            model=_resolve_model(None),
            patients=args.patients,
            seconds=args.seconds,
            warmup_s=args.warmup,
            batch_frames=args.batch,
            report=lambda m: print(m, file=sys.stderr),
        )
    (args.out / "calls.pkl").write_bytes(pickle.dumps(calls, protocol=5))
    meta = {
        "patients": args.patients,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "batch": args.batch,
        "calls": len(calls),
        "measure_from": state["measure_from"],
        "measure_to": state["measure_to"],
        "known": state["known"],
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps({k: v for k, v in meta.items() if k != "known"}))


def _fresh_db(args: argparse.Namespace, tmp: Path) -> tuple[str, Any]:
    """A migrated empty database URL and a cleanup callable."""
    if args.db == "sqlite":
        return f"sqlite:///{tmp / 'heartline.db'}", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"heartline_storage_replay_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(args.pg_admin_url).set(database=name).render_as_string(False), drop


def replay_once(args: argparse.Namespace, calls: list[bytes], meta: dict[str, Any]) -> dict:
    from heartline.bench.stream import _register
    from heartline.ingestion.processor import StreamProcessor
    from heartline.storage import make_engine, make_session_factory, upgrade_database

    known: dict[str, str] = meta["known"]
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = _fresh_db(args, Path(tmp))
        try:
            upgrade_database(url)
            _register(url, sorted(known))
            engine = make_engine(url)
            wal = Path(tmp) / "heartline.db-wal"
            if args.wal_pages:  # no checkpoints: the WAL file grows by every page written
                from sqlalchemy import event

                event.listen(
                    engine,
                    "connect",
                    lambda c, _r: c.execute("PRAGMA wal_autocheckpoint=0"),
                )
            proc = object.__new__(StreamProcessor)  # only what _write reads
            proc._factory = make_session_factory(engine)
            proc._known = dict(known)
            proc._alert_rows = {}
            proc._devices = {
                d: SimpleNamespace(device_id=d, patient_id=p) for d, p in known.items()
            }
            lo, hi = meta["measure_from"], meta["measure_to"]
            prof = (
                cProfile.Profile(time.thread_time_ns, 1e-9)
                if args.cprofile == "cpu"
                else cProfile.Profile()
                if args.cprofile == "wall"
                else None
            )
            cpu = 0.0
            frames = 0
            for i, blob in enumerate(calls[:hi]):
                call = pickle.loads(blob)
                measured = i >= lo
                if i == lo and args.wal_pages:
                    wal0 = wal.stat().st_size
                if measured and prof is not None:
                    prof.enable()
                t0 = time.thread_time()
                n = StreamProcessor._write(proc, *call)
                t1 = time.thread_time()
                if measured and prof is not None:
                    prof.disable()
                if measured:
                    cpu += t1 - t0
                    frames += n
            if args.wal_pages:
                with engine.connect() as c:
                    page = c.exec_driver_sql("PRAGMA page_size").scalar()
                wal_pages = (wal.stat().st_size - wal0) / (page + 24) / (hi - lo)
            engine.dispose()
        finally:
            cleanup()
    out = {"frames": frames, "us_per_frame": 1e6 * cpu / max(frames, 1)}
    if args.wal_pages:
        out["wal_pages_per_commit"] = wal_pages
    if prof is not None:
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(40)
        st.sort_stats("cumulative").print_stats(50)
        out["cprofile"] = buf.getvalue()
    return out


def replay(args: argparse.Namespace) -> None:
    import heartline

    calls = pickle.loads((args.rec / "calls.pkl").read_bytes())
    meta = json.loads((args.rec / "meta.json").read_text())
    runs = []
    for _ in range(args.repeat):
        r = replay_once(args, calls, meta)
        runs.append(r["us_per_frame"])
        if "cprofile" in r:
            print(r["cprofile"])
        print(
            f"  {args.db}: {r['frames']} frames, {r['us_per_frame']:.1f} us/frame", file=sys.stderr
        )
        if "wal_pages_per_commit" in r:
            print(f"  WAL pages written per commit: {r['wal_pages_per_commit']:.1f}")
    print(
        json.dumps(
            {
                "code": str(Path(heartline.__file__).parent),
                "db": args.db,
                "runs_us_per_frame": [round(x, 1) for x in runs],
                "median_us_per_frame": round(statistics.median(runs), 1),
                "load_average": os.getloadavg(),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--patients", type=int, default=100)
    r.add_argument("--seconds", type=int, default=30)
    r.add_argument("--warmup", type=int, default=150)
    r.add_argument("--batch", type=int, default=25)
    p = sub.add_parser("replay")
    p.add_argument("--rec", required=True, type=Path)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--wal-pages",
        action="store_true",
        help="SQLite: checkpoints off, print the WAL pages written per measured commit.",
    )
    p.add_argument(
        "--cprofile", choices=("wall", "cpu"), help="cProfile the measured calls with this timer."
    )
    args = ap.parse_args(argv)
    record(args) if args.cmd == "record" else replay(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
