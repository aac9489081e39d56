"""The stream-profile harness on SQLite or PostgreSQL, optionally with cProfile on the writes.

``heartline bench stream-profile`` always stores into a SQLite file in its run directory. This
script runs the same harness (:func:`heartline.bench.stream_profile.run_stream_profile`, same
frames, batches and stage timing) and, with ``--db postgresql``, swaps the database URL for a
scratch PostgreSQL database (created, migrated, dropped afterwards). With ``--cprofile`` the
processor's one write transaction per batch (``StreamProcessor._write``: frames, ECG blocks,
vitals, quarantine, beats, alerts, commit) runs under :mod:`cProfile` during the measured
seconds only, and the top functions by internal and cumulative time are written to
``OUT/write_cprofile.txt`` (cProfile slows the write path down: use the stage table of a run
without it for figures).

Usage (from the repository root, under the heavy-job lock, one thread)::

    OMP_NUM_THREADS=1 flock /tmp/hl/heavy.lock .venv/bin/python \
        docs/benchmarks/stream/profile_storage/storage_profile.py --out OUT --db sqlite
    ... --db postgresql --pg-admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test

``PYTHONPATH=/path/to/other/src`` runs another checkout's code (old vs new back to back).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument(
        "--pg-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL URL allowed to CREATE DATABASE (a scratch database is made and dropped).",
    )
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--cprofile", action="store_true", help="cProfile the measured writes.")
    args = ap.parse_args(argv)

    import heartline
    import heartline.bench.stream as bench_stream
    import heartline.ingestion.processor as processor_mod
    import heartline.storage as storage_pkg
    from heartline.bench.stream_profile import run_stream_profile
    from heartline.cli.live import _resolve_model

    print(f"heartline from {Path(heartline.__file__).parent}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    sqlite_url = f"sqlite:///{args.out / 'heartline.db'}"

    def run() -> None:
        run_stream_profile(
            args.out,
            model=_resolve_model(None),
            patients=args.patients,
            seconds=args.seconds,
            warmup_s=args.warmup,
            batch_frames=args.batch,
            report=lambda m: print(m, file=sys.stderr),
        )

    prof = cProfile.Profile() if args.cprofile else None
    cls = processor_mod.StreamProcessor
    if prof is not None:
        orig_write = cls._write

        def write(self, *a, **kw):  # profile only the measured part
            if getattr(self, "_measuring", False):
                prof.enable()
                try:
                    return orig_write(self, *a, **kw)
                finally:
                    prof.disable()
            return orig_write(self, *a, **kw)

        orig_counters = cls.counters

        def counters(self):  # the harness reads the counters right before/after measuring
            self._measuring = not getattr(self, "_measuring", False)
            return orig_counters(self)

        cls._write = write  # type: ignore[method-assign]
        cls.counters = counters  # type: ignore[method-assign]

    if args.db == "sqlite":
        run()
    else:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
        name = f"heartline_storage_profile_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        pg_url = make_url(args.pg_admin_url).set(database=name).render_as_string(False)
        swap = {sqlite_url: pg_url}
        orig_upgrade, orig_register, orig_init = (
            storage_pkg.upgrade_database,
            bench_stream._register,
            cls.__init__,
        )

        def init(self, *a, database_url, **kw):
            orig_init(self, *a, database_url=swap.get(database_url, database_url), **kw)

        storage_pkg.upgrade_database = lambda url: orig_upgrade(swap.get(url, url))
        bench_stream._register = lambda url, ids: orig_register(swap.get(url, url), ids)
        cls.__init__ = init  # type: ignore[method-assign]
        try:
            run()
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    md = (args.out / "stream_profile.md").read_text()
    md = md.replace(
        "one SQLite transaction",
        f"one {'PostgreSQL' if args.db != 'sqlite' else 'SQLite'} transaction",
    )
    (args.out / "stream_profile.md").write_text(md)
    print(md)
    if prof is not None:
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(45)
        st.sort_stats("cumulative").print_stats(45)
        (args.out / "write_cprofile.txt").write_text(buf.getvalue())
        print(buf.getvalue()[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
