"""``heartline classify``: CSV per beat at the record's own fs, summary, clear errors."""

from __future__ import annotations

import csv

import numpy as np
import wfdb
from scipy.signal import resample_poly
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.data.paths import record_path
from heartline.io import read_record
from heartline.pipeline import classify_record

runner = CliRunner()


def _excerpt_250hz(tmp_path, data_dir) -> str:
    rec = read_record(record_path("mitdb", "208", data_dir=data_dir))
    sig = resample_poly(rec.signal[: 360 * 60], 25, 36, axis=0)
    wfdb.wrsamp(
        "ex208",
        fs=250,
        units=["mV", "mV"],
        sig_name=list(rec.lead_names),
        p_signal=sig,
        fmt=["16", "16"],
        adc_gain=[200.0, 200.0],
        baseline=[0, 0],
        write_dir=str(tmp_path),
    )
    return str(tmp_path / "ex208")


def test_classify_writes_one_row_per_beat(tmp_path, data_dir, tiny_model_path, tiny_model) -> None:
    path = _excerpt_250hz(tmp_path, data_dir)
    out = tmp_path / "out" / "beats.csv"
    res = runner.invoke(app, ["classify", path, "--out", str(out), "--model", str(tiny_model_path)])
    assert res.exit_code == 0, res.output
    assert "ectopic burden" in res.output and "runs of >= 3 V beats" in res.output
    rows = list(csv.DictReader(out.open()))
    expected = classify_record(read_record(path), model=tiny_model)
    assert len(rows) == len(expected) > 50
    assert [int(r["sample"]) for r in rows] == expected.sample_idx.tolist()
    assert {r["label"] for r in rows} <= set("NSVFQ")
    r0 = rows[0]
    assert abs(float(r0["time_s"]) - int(r0["sample"]) / 250.0) < 1e-3
    probs = np.array([[float(r[f"p_{c}"]) for c in "NSVFQ"] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)


def test_classify_errors(tmp_path, data_dir, tiny_model_path, monkeypatch) -> None:
    out = tmp_path / "b.csv"
    res = runner.invoke(
        app,
        ["classify", str(tmp_path / "nope"), "--out", str(out), "--model", str(tiny_model_path)],
    )
    assert res.exit_code == 1 and "nope" in res.output and "not found" in res.output
    rec = str(record_path("mitdb", "100", data_dir=data_dir))
    res = runner.invoke(
        app, ["classify", rec, "--out", str(out), "--model", str(tmp_path / "missing.onnx")]
    )
    assert res.exit_code == 1 and "no ONNX model" in res.output

    import heartline.cli.classify as mod

    def absent():
        raise FileNotFoundError(
            "no shipped beat classifier in this installation: pass --model PATH.onnx"
        )

    monkeypatch.setattr(mod, "_default_model", absent)
    res = runner.invoke(app, ["classify", rec, "--out", str(out)])
    assert res.exit_code == 1 and "--model" in res.output
    assert not out.exists()
