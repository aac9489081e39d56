"""``heartline rhythm`` and ``heartline bench rhythm``."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from heartline.cli.main import app

from .conftest import synthetic_ecg

runner = CliRunner()


def test_rhythm_cli_one_row_per_record_and_bad_records_do_not_stop_the_batch(
    cinc_dir, tiny_rhythm_onnx, tmp_path
):
    folder = tmp_path / "recs"
    folder.mkdir()
    for rec in ("A00002", "A00004"):
        for ext in (".hea", ".mat"):
            shutil.copy(cinc_dir / f"{rec}{ext}", folder / f"{rec}{ext}")
    (folder / "RECORDS").write_text("A00002\nA00004\nGONE\n")
    flat = tmp_path / "flat.csv"
    np.savetxt(flat, np.zeros((3000, 1)), header="ECG", comments="")
    good = tmp_path / "sine.csv"
    np.savetxt(good, synthetic_ecg(12, fs=250.0, af=True)[:, None], header="I", comments="")
    out = tmp_path / "rhythm.csv"
    res = runner.invoke(
        app,
        ["rhythm", str(folder), str(flat), str(good), "--fs", "250", "--out", str(out),
         "--model", str(tiny_rhythm_onnx)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert [r["record"].rsplit("/", 1)[-1] for r in rows] == [
        "A00002", "A00004", "GONE", "flat.csv", "sine.csv",
    ]  # fmt: skip
    assert list(rows[0])[:7] == ["record", "label", "p_N", "p_A", "p_O", "p_noisy", "error"]
    for r in (rows[0], rows[1], rows[4]):
        assert r["error"] == "" and r["label"] in "NAO~"
        assert sum(float(r[k]) for k in ("p_N", "p_A", "p_O", "p_noisy")) == pytest.approx(
            1, abs=1e-3
        )
    assert rows[1]["fs_hz"] == "300" and rows[4]["lead"] == "I"
    assert rows[2]["label"] == "~" and "GONE" in rows[2]["error"]
    assert rows[3]["label"] == "~" and "flat" in rows[3]["error"]


def test_rhythm_cli_rejects_a_non_csv_output(tiny_rhythm_onnx, cinc_dir, tmp_path):
    res = runner.invoke(
        app,
        ["rhythm", str(cinc_dir / "A00002"), "--out", str(tmp_path / "x.txt"),
         "--model", str(tiny_rhythm_onnx)],
    )  # fmt: skip
    assert res.exit_code != 0 and "csv" in res.output.lower()


@pytest.mark.slow
def test_bench_rhythm_quick_writes_every_model(cinc_dir, tmp_path):
    out = tmp_path / "bench"
    res = runner.invoke(
        app,
        ["bench", "rhythm", "--out", str(out), "--quick", "--cache-dir", str(tmp_path / "cache"),
         "--data-dir", str(cinc_dir.parent)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((out / "rhythm.json").read_text())
    assert list(report["models"]) == [
        "af_rule", "dash_rule", "rr_gbm", "hand_gbm", "lstm", "cnn", "hybrid", "hybrid+hand_gbm"
    ]  # fmt: skip
    # the hybrid is stacked: two cross-fitted networks per fold, each with its history
    assert {h["half"] for h in report["models"]["hybrid"]["history"][0]} == {0.0, 1.0}
    assert report["effective_config"]["n_folds"] == 2
    n = report["dataset"]["n_records"]
    for m in report["models"].values():
        assert np.asarray(m["confusion_matrix"]).sum() == n
        assert 0.0 <= m["cinc_f1"] <= 1.0
    # the AF rule never predicts O or ~
    cm = np.asarray(report["models"]["af_rule"]["confusion_matrix"])
    assert cm[:, 2:].sum() == 0
    md = (out / "rhythm.md").read_text()
    assert "QUICK" in md and "hybrid" in md
    assert (out / "rhythm_confusion.png").stat().st_size > 1000
    assert (out / "rhythm_f1.png").stat().st_size > 1000
    # a second run reuses the cached arrays
    assert len(list((tmp_path / "cache").glob("cinc2017_*.npz"))) == 1
