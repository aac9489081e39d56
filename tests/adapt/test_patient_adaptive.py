"""The patient-adaptive protocol and its CLI (two DS2 records, --quick)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from heartline.edge.adapt import kmeans
from heartline.training.patient_adaptive import confirm_beats


def test_confirm_beats_picks_one_per_template() -> None:
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 0.1, (50, 3)), rng.normal(5, 0.1, (5, 3))])
    picked = confirm_beats(f, 2)
    assert picked.size == 2 and (picked >= 50).sum() == 1  # the rare template gets a beat
    assert confirm_beats(f, None).size == 55 and confirm_beats(f, 0).size == 0
    with pytest.raises(ValueError, match="budget"):
        confirm_beats(f, -1)
    assert kmeans(f, 100)[0].shape[0] == 55


def test_cli_patient_adaptive_quick(tmp_path) -> None:
    from heartline.cli.main import app

    out = tmp_path / "pa"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--protocol",
            "patient-adaptive",
            "--quick",
            "--out",
            str(out),
            "--n-bootstrap",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "patient-adaptive"
    assert {"accuracy", "macro_f1"} <= set(m)
    assert m["test_records"] == ["100", "232"]
    curve = m["budget_curve"]
    assert [c["budget"] for c in curve] == [0, 10, 25, 50, 100, "all"]
    assert (out / "budget_curve.png").stat().st_size > 1000
    recs = m["adaptation"]["records"]
    assert all(r["n_scored_beats"] > 0 for r in recs)
    # scoring starts after 5 minutes: every record loses its first beats from the score
    assert m["n_test_beats"] == sum(r["n_scored_beats"] for r in recs)
    bad = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--protocol",
            "patient-adaptive",
            "--quick",
            "--labels",
            "some",
            "--out",
            str(out),
        ],
    )
    assert bad.exit_code != 0 and "--labels must be one of" in bad.output
