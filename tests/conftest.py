"""Shared fixtures: the real PhysioNet data in ../shared/data (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartline.data.paths import resolve_data_dir


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
