"""Where PhysioNet databases live on disk, and how to get them.

Resolution order of the data directory:

1. an explicit argument (the CLI's ``--data-dir``);
2. the environment variable ``HEARTLINE_DATA_DIR``;
3. ``shared/data`` beside the repository root (``<repo>/../shared/data``) when it exists;
4. the user cache directory (``platformdirs.user_cache_dir("heartline")/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

from heartline.errors import DataError, DataNotFoundError

__all__ = [
    "DATABASES",
    "database_dir",
    "fetch_database",
    "record_path",
    "resolve_data_dir",
]

ENV_VAR = "HEARTLINE_DATA_DIR"

#: Databases Heartline knows, with the PhysioNet slug and a one-line description.
DATABASES: dict[str, str] = {
    "mitdb": "MIT-BIH Arrhythmia Database (48 records, 360 Hz, 2 leads)",
    "nstdb": "MIT-BIH Noise Stress Test Database (118/119 with electrode-motion noise, bw/em/ma)",
    "svdb": "MIT-BIH Supraventricular Arrhythmia Database (78 records, 128 Hz)",
    "incartdb": "St Petersburg INCART 12-lead Arrhythmia Database (75 records, 257 Hz)",
    "ptb-xl": "PTB-XL 12-lead ECG (21,799 records, 500/100 Hz)",
}
# Folder names on disk that differ from the PhysioNet slug.
_FOLDER = {"ptb-xl": "ptbxl"}


def _repo_shared_data() -> Path | None:
    here = Path(__file__).resolve()
    candidates = [p / "shared" / "data" for p in here.parents]
    candidates += [p / "shared" / "data" for p in Path.cwd().resolve().parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory (see the module docstring for the order)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    shared = _repo_shared_data()
    if shared is not None:
        return shared
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("heartline")) / "data"


def database_dir(
    database: str, *, data_dir: str | os.PathLike[str] | None = None, must_exist: bool = True
) -> Path:
    """Directory of one database, e.g. ``<data_dir>/mitdb``.

    Raises
    ------
    DataNotFoundError
        When ``must_exist`` and the folder has no WFDB headers, with the command that fetches it.
    """
    if database not in DATABASES:
        raise ValueError(f"unknown database {database!r}; known: {sorted(DATABASES)}")
    root = resolve_data_dir(data_dir)
    path = root / _FOLDER.get(database, database)
    if must_exist and not (
        (path.is_dir() and any(path.glob("*.hea"))) or (path / "records100").is_dir()
    ):
        raise DataNotFoundError(
            f"{database} not found in {root}. Fetch it with `heartline data fetch {database}` "
            f"(needs internet), or point {ENV_VAR} / --data-dir at a folder holding {path.name}/"
        )
    return path


def record_path(
    database: str, record: str, *, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Path (without extension) of one record of a database."""
    return database_dir(database, data_dir=data_dir) / record


def fetch_database(
    database: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    records: list[str] | None = None,
) -> Path:
    """Download a PhysioNet database with :func:`wfdb.dl_database`.

    Raises
    ------
    DataError
        When PhysioNet cannot be reached (offline), with what to do instead.
    """
    import wfdb

    if database not in DATABASES:
        raise ValueError(f"unknown database {database!r}; known: {sorted(DATABASES)}")
    target = database_dir(database, data_dir=data_dir, must_exist=False)
    target.mkdir(parents=True, exist_ok=True)
    try:
        wfdb.dl_database(database, dl_dir=str(target), records=records or "all", annotators="all")
    except Exception as exc:
        raise DataError(
            f"could not download {database} from PhysioNet into {target} ({type(exc).__name__}: {exc}). "
            f"Check the internet connection, or copy the WFDB files there by hand "
            f"(or set {ENV_VAR} to a folder that has them)."
        ) from exc
    return target
