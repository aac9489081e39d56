"""The QRS benchmark: matching rule and the ``heartline bench qrs`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from heartline.bench.qrs import MatchCounts, match_beats
from heartline.cli.main import app


def test_match_beats_one_to_one_within_tolerance() -> None:
    ref = np.array([100, 200, 300, 400])
    assert match_beats(ref, ref, tolerance=0) == MatchCounts(4, 0, 0)
    # two detections near one beat: one TP, one FP
    assert match_beats(np.array([100]), np.array([95, 104]), tolerance=10) == MatchCounts(1, 1, 0)
    # boundary inclusive, just outside excluded
    assert match_beats(np.array([100]), np.array([110]), tolerance=10) == MatchCounts(1, 0, 0)
    assert match_beats(np.array([100]), np.array([111]), tolerance=10) == MatchCounts(0, 1, 1)
    assert match_beats(ref, np.zeros(0, dtype=np.int64), tolerance=5) == MatchCounts(0, 0, 4)
    c = MatchCounts(90, 10, 0)
    assert c.se == 1.0 and c.ppv == 0.9 and abs(c.f1 - 180 / 190) < 1e-12


def test_bench_qrs_cli_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "qrs",
            "--records",
            "100",
            "--nstdb-records",
            "118e00,119e00",
            "--detectors",
            "heartline,heartline_2lead,neurokit_pantompkins1985",
            "--repeats",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "qrs.json").read_text())
    assert report["tolerance_ms"] == 150 and report["quick"] is True
    assert set(report["detectors"]) == {"heartline", "heartline_2lead", "neurokit_pantompkins1985"}
    assert report["repeats"] == 2 and "heartline_2lead" in report["lead"]
    two = report["detectors"]["heartline_2lead"]["mitdb"]
    assert two["se"] > 0.99 and two["tp"] + two["fn"] == 2273
    h = report["detectors"]["heartline"]
    for key in ("se", "ppv", "f1", "tp", "fp", "fn", "seconds", "realtime_factor", "per_record"):
        assert key in h["mitdb"]
    assert 0.99 < h["mitdb"]["se"] <= 1.0 and h["mitdb"]["tp"] + h["mitdb"]["fn"] == 2273
    assert set(h["nstdb"]) == {"e00"} and {"se", "ppv", "f1"} <= set(h["nstdb"]["e00"])
    assert "100" in h["mitdb"]["per_record"]
    assert "mitdb" in report["tolerance_50ms"]["heartline"]
    assert (out / "qrs.md").read_text().startswith("# QRS detection benchmark (QUICK")
    assert (out / "qrs_nstdb_f1.png").stat().st_size > 1000


def test_bench_qrs_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "bench",
            "qrs",
            "--records",
            "100",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert "heartline data fetch mitdb" in result.output
    result = runner.invoke(
        app, ["bench", "qrs", "--detectors", "nope", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "nope" in result.output


def test_run_qrs_benchmark_rejects_bad_repeats() -> None:
    import pytest

    from heartline.bench.qrs import run_qrs_benchmark

    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="repeats"):
            run_qrs_benchmark(
                detectors=["heartline"], repeats=bad, mitdb_records=(), nstdb_records=()
            )
