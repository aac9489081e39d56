"""`heartline evaluate --af-gate on|off` (the AF gate on SVEB calls, heartline.edge.af_gate)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.edge.rhythm import shipped_rhythm_model_path
from heartline.edge.shipped import shipped_model_path

runner = CliRunner()
pytestmark = pytest.mark.skipif(
    not (shipped_rhythm_model_path().is_file() and shipped_model_path().is_file()),
    reason="shipped models not installed",
)


def _evaluate(out, data_dir, *extra: str):
    return runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            "shipped",
            "--quick",
            "--n-bootstrap",
            "0",
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
            *extra,
        ],
    )


def test_af_gate_on_and_off_are_recorded(tmp_path, data_dir) -> None:
    off = _evaluate(tmp_path / "off", data_dir)
    assert off.exit_code == 0, off.output
    on = _evaluate(tmp_path / "on", data_dir, "--af-gate", "on")
    assert on.exit_code == 0, on.output
    d_off = json.loads((tmp_path / "off" / "metrics.json").read_text())
    d_on = json.loads((tmp_path / "on" / "metrics.json").read_text())
    assert d_off["af_gate"] is False and "af_gate_settings" not in d_off
    assert d_on["af_gate"] is True
    assert d_on["af_gate_settings"]["interval_s"] == 5.0
    beats = d_on["af_gate_beats"]
    assert set(beats) == set(d_on["test_records"])
    for rec in beats.values():
        assert 0 <= rec["n_s_gated"] <= rec["n_s_calls"] <= rec["n_beats"]
    # the gate only removes S calls: SVEB Se cannot rise
    assert d_on["classes"]["S"]["se"] <= d_off["classes"]["S"]["se"] + 1e-12


def test_af_gate_rejects_bad_values_and_trained_models(tmp_path, data_dir) -> None:
    res = _evaluate(tmp_path, data_dir, "--af-gate", "maybe")
    assert res.exit_code != 0 and "on or off" in res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            "decision_tree",
            "--quick",
            "--af-gate",
            "on",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert res.exit_code != 0 and "saved or shipped" in res.output


def test_af_gate_in_the_patient_adaptive_protocol(tmp_path, data_dir) -> None:
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--protocol",
            "patient-adaptive",
            "--quick",
            "--no-curve",
            "--n-bootstrap",
            "0",
            "--af-gate",
            "on",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "metrics.json").read_text())
    assert d["protocol"] == "patient-adaptive" and d["af_gate"] is True
    assert d["model"].endswith("+prototypes+af_gate")
    assert d["af_gate_settings"]["lead"] == "MLII"
    for rec in d["adaptation"]["records"]:
        assert rec["n_af_window"] <= rec["n_scored_beats"]


def test_classify_af_gate_option(tmp_path, data_dir) -> None:
    """``heartline classify --af-gate``: a 90 s excerpt of 201 (AF from the start) as one-lead CSV;
    the S calls in AF are written as N, the beats are the same."""
    import csv

    import numpy as np

    from heartline.io.records import read_record

    r = read_record(data_dir / "mitdb" / "201")
    x = r.lead("MLII")[: 90 * round(r.fs)]
    src = tmp_path / "af201.csv"
    np.savetxt(src, x, delimiter=",", header="MLII", comments="", fmt="%.4f")
    rows = {}
    for gate in (False, True):
        out = tmp_path / f"beats-{gate}.csv"
        args = ["classify", str(src), "--fs", str(r.fs), "--out", str(out)]
        res = runner.invoke(app, [*args, "--af-gate"] if gate else args)
        assert res.exit_code == 0, res.output
        with out.open() as fh:
            rows[gate] = list(csv.DictReader(fh))
    assert [r["sample"] for r in rows[False]] == [r["sample"] for r in rows[True]]
    off = [r["label"] for r in rows[False]]
    on = [r["label"] for r in rows[True]]
    changed = [(a, b) for a, b in zip(off, on, strict=True) if a != b]
    assert changed and set(changed) == {("S", "N")}
