"""``heartline bench explain-diagnosis``: timing, deletion check and PNG on one PTB-XL record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heartline.cli.main import app


def test_bench_explain_diagnosis_one_record(data_dir: Path, tmp_path: Path) -> None:
    if not (data_dir / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip("PTB-XL not found")
    res = CliRunner().invoke(
        app, ["bench", "explain-diagnosis", "--out", str(tmp_path), "--records", "1"]
    )
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "explain_diagnosis.json").read_text())
    assert r["n_records"] == 1 and r["records"][0]["explained"] == "NORM"
    assert r["records"][0]["cpu_s"] > 0 and r["env_start"]["load_average"] is not None
    assert (tmp_path / "explain_1.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(
        app, ["bench", "explain-diagnosis", "--out", str(tmp_path), "--records", "99999999"]
    )
    assert bad.exit_code != 0 and "not in" in bad.output
