"""Shared fixtures: the real PhysioNet data in ../shared/data (read-only), a tiny exported model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings

from heartline.data.paths import resolve_data_dir

# Property tests: with ``CI`` set, Hypothesis runs derandomized (examples drawn from a fixed
# seed per test), so a green CI run is reproducible; elsewhere it explores new examples and a
# failure it finds is kept as an ``@example`` in the test. ``HYPOTHESIS_PROFILE`` picks one.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = resolve_data_dir()
    if not (path / "mitdb" / "100.hea").exists():
        pytest.fail(
            f"MIT-BIH data not found in {path}: the test suite needs ../shared/data or HEARTLINE_DATA_DIR"
        )
    return path


@pytest.fixture(scope="session")
def mitdb_dir(data_dir: Path) -> Path:
    return data_dir / "mitdb"


def _tiny_model_path(tmp_path_factory) -> Path:
    """A tiny, seeded hybrid CNN-LSTM exported to ONNX once per test session (shared path)."""
    import torch

    from heartline.edge.onnx_export import export_onnx
    from heartline.models.hybrid import HybridNet
    from heartline.signal.segmentation import RR_FEATURE_NAMES

    torch.set_num_threads(1)
    path = tmp_path_factory.getbasetemp() / "tiny_hybrid_k3.onnx"
    lock = path.with_suffix(".lock")
    with open(lock, "w") as fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
        if not path.exists():
            torch.manual_seed(0)
            net = HybridNet(
                n_leads=2,
                window_len=128,
                n_rr=len(RR_FEATURE_NAMES),
                context_k=3,
                channels=4,
                feature_dim=16,
                lstm_hidden=16,
            ).eval()
            export_onnx(net, path.with_suffix(".tmp.onnx"), name="hybrid")
            path.with_suffix(".tmp.onnx").rename(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return _tiny_model_path(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from heartline.edge.runtime import OnnxBeatClassifier

    return OnnxBeatClassifier(tiny_model_path)


PG_ADMIN_URL = os.environ.get(
    "HEARTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """Create a uniquely named PostgreSQL database, yield its URL, drop it afterwards.

    PostgreSQL tests never skip: when the server at ``HEARTLINE_TEST_PG_URL`` (default
    ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is unreachable they fail with a message.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is required but {make_url(PG_ADMIN_URL).render_as_string()} is unreachable "
            f"or refuses CREATE DATABASE ({type(exc).__name__}: {exc}). Start PostgreSQL or set "
            "HEARTLINE_TEST_PG_URL."
        )
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset_pg(url: str) -> None:
    """Empty a scratch PostgreSQL database (drop and recreate its ``public`` schema)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database migrated to head once per test run (tests get copies)."""
    from heartline.storage.migrations import upgrade_database

    path = tmp_path_factory.mktemp("migrated") / "heartline.db"
    upgrade_database(f"sqlite:///{path}")
    return path


def copy_sqlite(src: Path, dst: Path) -> None:
    """Copy the closed SQLite database ``src`` to ``dst`` (with its WAL files, if it has any)."""
    import shutil

    for suffix in ("", "-wal", "-shm"):
        part = src.with_name(src.name + suffix)
        if part.exists():
            shutil.copyfile(part, dst.with_name(dst.name + suffix))


def migrated_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of the backend ``request.param`` for one test.

    ``"sqlite"``: a copy of :func:`migrated_sqlite` in ``tmp_path`` (the file ``upgrade_database``
    writes, without running every migration again per test); ``"postgresql"``: the folder's
    ``pg_url`` scratch database, emptied and migrated to head.
    """
    from heartline.storage.migrations import upgrade_database

    if request.param == "sqlite":
        dst = tmp_path / "heartline.db"
        copy_sqlite(request.getfixturevalue("migrated_sqlite"), dst)
        return f"sqlite:///{dst}"
    url = request.getfixturevalue("pg_url")
    reset_pg(url)
    upgrade_database(url)
    return url


def write_edf_file(
    path, sig_mv: np.ndarray, names, *, fs: int = 250, unit: str = "mV", phys_range: float = 5.0
) -> None:
    """A minimal EDF file (Kemp et al. 1992): 1 s data records, 16-bit samples over
    +-``phys_range`` physical units."""
    n_sig = sig_mv.shape[1]
    n_rec = sig_mv.shape[0] // fs
    pmin, pmax, dmin, dmax = -phys_range, phys_range, -32768, 32767

    def f(s, w):
        return f"{s:<{w}}"[:w].encode("ascii")

    head = b"".join(
        [
            *(f("0", 8), f("X X X X", 80), f("Startdate X X X X", 80), f("01.01.01", 8)),
            *(f("00.00.00", 8), f(str(256 * (n_sig + 1)), 8), f("", 44), f(str(n_rec), 8)),
            *(f("1", 8), f(str(n_sig), 4)),
        ]
    )
    per = [
        [f(n, 16) for n in names],
        [f("", 80)] * n_sig,
        [f(unit, 8)] * n_sig,
        [f(str(pmin), 8)] * n_sig,
        [f(str(pmax), 8)] * n_sig,
        [f(str(dmin), 8)] * n_sig,
        [f(str(dmax), 8)] * n_sig,
        [f("", 80)] * n_sig,
        [f(str(fs), 8)] * n_sig,
        [f("", 32)] * n_sig,
    ]
    head += b"".join(b"".join(col) for col in per)
    gain = (dmax - dmin) / (pmax - pmin)
    dig = np.round((sig_mv[: n_rec * fs] - pmin) * gain + dmin).astype("<i2")
    body = b"".join(dig[r * fs : (r + 1) * fs].T.tobytes() for r in range(n_rec))
    path.write_bytes(head + body)


@pytest.fixture
def write_edf():
    """:func:`write_edf_file`, for tests that need an EDF record."""
    return write_edf_file
