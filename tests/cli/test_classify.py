"""``heartline classify``: CSV per beat at the record's own fs, summary, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
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


# --- formats, lead handling and annotations -------------------------------------------------


def _out(res) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def tiny_mlii_path(tmp_path_factory) -> Path:
    """A tiny, seeded single-lead hybrid exported to ONNX (stands in for the shipped MLII model)."""
    import torch

    from heartline.edge.onnx_export import export_onnx
    from heartline.models.hybrid import HybridNet
    from heartline.signal.segmentation import RR_FEATURE_NAMES

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = HybridNet(
        n_leads=1,
        window_len=128,
        n_rr=len(RR_FEATURE_NAMES),
        context_k=2,
        channels=4,
        feature_dim=16,
        lstm_hidden=16,
    ).eval()
    path = tmp_path_factory.mktemp("mlii") / "tiny_mlii.onnx"
    export_onnx(net, path, name="hybrid")
    return path


def test_annotations_round_trip_with_wfdb(tmp_path, data_dir, tiny_model_path) -> None:
    path = _excerpt_250hz(tmp_path, data_dir)
    out = tmp_path / "res" / "beats.csv"
    res = runner.invoke(
        app,
        ["classify", path, "--out", str(out), "--model", str(tiny_model_path), "--annotations"],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    ann = wfdb.rdann(str(tmp_path / "res" / "ex208"), "hlb")
    assert ann.fs == 250
    assert ann.sample.tolist() == [int(r["sample"]) for r in rows]
    assert ann.symbol == [r["label"] for r in rows]
    assert set(ann.symbol) <= set("NSVFQ")
    assert {r["lead"] for r in rows} == {"MLII+V1"}
    assert "leads used: MLII+V1" in _out(res)


def test_twelve_lead_record_uses_lead_ii(tmp_path, data_dir, tiny_mlii_path) -> None:
    rec = data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"
    out = tmp_path / "ptb.csv"
    res = runner.invoke(
        app, ["classify", str(rec), "--out", str(out), "--model", str(tiny_mlii_path)]
    )
    assert res.exit_code == 0, res.output
    assert "leads used: II" in _out(res) and "12-lead record" in _out(res)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 5 and {r["lead"] for r in rows} == {"II"}


def test_cinc_record_at_300_hz(tmp_path, data_dir, tiny_mlii_path) -> None:
    out = tmp_path / "a.csv"
    rec = data_dir / "cinc2017" / "A00002.mat"
    res = runner.invoke(
        app, ["classify", str(rec), "--out", str(out), "--model", str(tiny_mlii_path)]
    )
    assert res.exit_code == 0, res.output
    assert "lead ECG as MLII" in _out(res)
    rows = list(csv.DictReader(out.open()))
    # 30 s at 300 Hz of a normal rhythm: 20 to 60 beats, times at the record's own rate
    assert 20 <= len(rows) <= 60
    assert abs(float(rows[3]["time_s"]) - int(rows[3]["sample"]) / 300.0) < 1e-3


def test_lead_mismatch_is_explained(tmp_path, data_dir, tiny_model_path, tiny_mlii_path) -> None:
    # a single-lead record given to a two-lead model
    out = tmp_path / "x.csv"
    rec = data_dir / "cinc2017" / "A00002"
    res = runner.invoke(
        app, ["classify", str(rec), "--out", str(out), "--model", str(tiny_model_path)]
    )
    assert res.exit_code == 1
    assert "['ECG']" in _out(res) and "no single-lead beat model" in _out(res)
    assert "MLII (or II)" in _out(res) and not out.exists()
    # two leads, neither MLII/II (record 102 is V5 + V2)
    sig = read_record(record_path("mitdb", "102", data_dir=data_dir)).signal[: 360 * 20]
    csv_path = tmp_path / "v.csv"
    np.savetxt(csv_path, sig, delimiter=",", header="V5,V2", comments="")
    res = runner.invoke(
        app,
        [
            "classify",
            str(csv_path),
            "--fs",
            "360",
            "--out",
            str(out),
            "--model",
            str(tiny_model_path),
        ],
    )
    assert res.exit_code == 1 and "['V5', 'V2']" in _out(res) and "--lead" in _out(res)
    # --lead picks one explicitly and the output says so
    res = runner.invoke(
        app,
        [
            "classify",
            str(csv_path),
            "--fs",
            "360",
            "--out",
            str(out),
            "--model",
            str(tiny_mlii_path),
            "--lead",
            "V5",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "lead V5 as MLII" in _out(res) and "chosen by the caller" in _out(res)


def test_csv_and_edf_inputs(tmp_path, data_dir, tiny_mlii_path) -> None:
    sig = read_record(record_path("mitdb", "119", data_dir=data_dir)).signal[: 360 * 30, :1]
    csv_path = tmp_path / "patch.csv"
    np.savetxt(csv_path, sig, delimiter=",", header="MLII", comments="")
    out = tmp_path / "c.csv"
    res = runner.invoke(
        app, ["classify", str(csv_path), "--out", str(out), "--model", str(tiny_mlii_path)]
    )
    assert res.exit_code == 1 and "--fs" in _out(res)
    res = runner.invoke(
        app,
        [
            "classify",
            str(csv_path),
            "--fs",
            "360",
            "--out",
            str(out),
            "--model",
            str(tiny_mlii_path),
        ],
    )
    assert res.exit_code == 0, res.output
    n_csv = len(list(csv.DictReader(out.open())))
    assert n_csv > 20
    res = runner.invoke(
        app,
        ["classify", str(tmp_path / "scan.xyz"), "--out", str(out), "--model", str(tiny_mlii_path)],
    )
    assert res.exit_code == 1 and "unknown record format" in _out(res)


def test_several_records_and_a_folder(tmp_path, data_dir, tiny_mlii_path) -> None:
    folder = tmp_path / "patches"
    folder.mkdir()
    for name in ("119", "200"):
        sig = read_record(record_path("mitdb", name, data_dir=data_dir)).signal[: 360 * 20, :1]
        np.savetxt(folder / f"p{name}.csv", sig, delimiter=",", header="MLII", comments="")
    (folder / "broken.csv").write_text("MLII\nnot-a-number\n")
    out = tmp_path / "all.csv"
    res = runner.invoke(
        app,
        ["classify", str(folder), "--fs", "360", "--out", str(out), "--model", str(tiny_mlii_path)],
    )
    # the broken file is reported and skipped, the others are written; exit code 1 says so
    assert res.exit_code == 1, res.output
    assert "broken.csv" in _out(res) and "skipped" in _out(res)
    rows = list(csv.DictReader(out.open()))
    assert {r["record"] for r in rows} == {"p119", "p200"}
    assert all(r["lead"] == "MLII" and r["model"] == "tiny_mlii" for r in rows)


def test_explain_writes_per_beat_attributions(tmp_path, data_dir) -> None:
    """``--explain`` with the shipped two-lead model on 30 s of MIT-BIH 119 (bigeminy): one
    attribution map per CSV row, and the V beats' maps lie mostly on the QRS (R +- 80 ms)."""
    rec = read_record(record_path("mitdb", "119", data_dir=data_dir))
    wfdb.wrsamp(
        "ex119", fs=360, units=["mV", "mV"], sig_name=list(rec.lead_names),
        p_signal=rec.signal[360 * 60 : 360 * 90], fmt=["16", "16"], adc_gain=[200.0, 200.0],
        baseline=[0, 0], write_dir=str(tmp_path),
    )  # fmt: skip
    out = tmp_path / "beats.csv"
    res = runner.invoke(app, ["classify", str(tmp_path / "ex119"), "--out", str(out), "--explain"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    z = np.load(tmp_path / "beats.ex119.explain.npz")
    n = len(rows)
    assert z["attributions"].shape == (n, 2, 128) and z["window_t_s"].shape == (128,)
    assert z["sample"].tolist() == [int(r["sample"]) for r in rows]
    assert z["label"].tolist() == [r["label"] for r in rows]
    assert z["leads"].tolist() == ["MLII", "V1"] and str(z["model"]) == "hybrid"
    a = np.abs(z["attributions"]).sum(axis=1)
    qrs = np.abs(z["window_t_s"]) <= 0.08
    v = z["label"] == "V"
    assert v.sum() >= 5
    share = a[v][:, qrs].sum(axis=1) / a[v].sum(axis=1)
    assert share.mean() > 0.5, share


def test_explain_without_attributions_is_refused(tmp_path) -> None:
    from heartline.api import BeatTable
    from heartline.cli.classify import write_explanations

    t = BeatTable(np.zeros(0, np.int64), np.zeros(0, "<U1"), np.zeros((0, 5)), np.zeros(0, bool),
                  tuple("NSVFQ"), 360.0, "hybrid", ("MLII",))  # fmt: skip
    with pytest.raises(ValueError, match="explain=True"):
        write_explanations(t, tmp_path / "b.csv", record="r1")
