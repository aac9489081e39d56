"""`heartline data fetch` and `heartline data check`: clear one-line errors, never a traceback."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from heartline.cli.main import app

runner = CliRunner()


def test_fetch_offline_fails_with_what_to_do(tmp_path, monkeypatch):
    import wfdb

    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(wfdb, "dl_database", offline)
    res = runner.invoke(app, ["data", "fetch", "mitdb", "--data-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "could not download mitdb" in res.output and "HEARTLINE_DATA_DIR" in res.output
    assert "Traceback" not in res.output


def test_fetch_unknown_database_is_refused(tmp_path):
    res = runner.invoke(app, ["data", "fetch", "nosuchdb", "--data-dir", str(tmp_path)])
    assert res.exit_code != 0


def test_check_names_a_truncated_file(tmp_path, mitdb_dir):
    db = tmp_path / "mitdb"
    db.mkdir()
    for rec in ("100", "101"):
        for ext in ("hea", "dat", "atr"):
            shutil.copy(mitdb_dir / f"{rec}.{ext}", db / f"{rec}.{ext}")
    dat = db / "101.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    res = runner.invoke(app, ["data", "check", "mitdb", "--data-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "101.dat" in res.output and "truncated" in res.output
    assert "Traceback" not in res.output


def test_check_passes_sound_records(tmp_path, mitdb_dir):
    db = tmp_path / "mitdb"
    db.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb_dir / f"100.{ext}", db / f"100.{ext}")
    res = runner.invoke(app, ["data", "check", "mitdb", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output


def test_missing_data_says_how_to_fetch(tmp_path):
    res = runner.invoke(app, ["data", "check", "mitdb", "--data-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "heartline data fetch mitdb" in res.output
