"""Tiny NSTDB denoising benchmark: segment finding, SNR, report files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from heartline.bench.denoise import (
    DenoiseBenchConfig,
    find_noisy_segments,
    run_denoise_benchmark,
    segment_snr_db,
    write_report,
)


def test_segment_snr_matches_definition():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(2000)
    noise = 0.1 * rng.standard_normal(2000)
    expected = 10 * np.log10(np.sum((ref - ref.mean()) ** 2) / np.sum((noise - noise.mean()) ** 2))
    assert segment_snr_db(ref, ref + noise + 3.0, [(0, 2000)]) == pytest.approx(expected)
    # two segments pool their energies
    both = segment_snr_db(ref, ref + noise, [(0, 1000), (1000, 2000)])
    assert np.isfinite(both)


def test_find_noisy_segments_on_nstdb(data_dir):
    from heartline.io import read_record

    fs = 360.0
    stop = int(8 * 60 * fs)
    clean = read_record(data_dir / "mitdb" / "118", sampto=stop).signal
    noisy = read_record(data_dir / "nstdb" / "118e06", sampto=stop).signal
    segs = find_noisy_segments(noisy, clean, fs=fs)
    # NSTDB: clean for 5 min, then noise from 5:00 to 7:00
    assert len(segs) == 1
    start, end = segs[0]
    assert abs(start / fs - 300) < 1.0 and abs(end / fs - 420) < 1.0


def test_tiny_benchmark_and_cli(data_dir, tmp_path):
    cfg = DenoiseBenchConfig(
        records=("118",),
        snr_labels=("06",),
        methods=("bandpass", "wavelet", "emd", "clean_ecg", "neurokit"),
        excerpt_s=8.0,
        context_s=2.0,
        max_duration_s=320.0,
    )
    steps = []
    report = run_denoise_benchmark(data_dir=data_dir, config=cfg, on_step=steps.append)
    assert len(steps) == 5
    by = {(s.method, s.scope, s.lead): s for s in report.scores}
    assert ("emd", "all", "MLII") not in by and ("emd", "excerpt", "MLII") in by
    bp = by[("bandpass", "excerpt", "MLII")]
    assert bp.duration_s == pytest.approx(8.0, abs=0.01)
    assert bp.gain_db == pytest.approx(bp.output_snr_db - bp.input_snr_db)
    # the band-pass removes electrode-motion noise below 0.5 Hz: positive gain
    assert by[("bandpass", "all", "MLII")].gain_db > 0
    for s in report.scores:
        assert np.isfinite([s.input_snr_db, s.output_snr_db, s.output_snr_fixed_db]).all()

    paths = write_report(report, tmp_path / "run")
    payload = json.loads(paths["json"].read_text())
    assert payload["config"]["records"] == ["118"]
    assert len(payload["scores"]) == len(report.scores)
    assert "matched reference" in paths["md"].read_text().lower()
    assert paths["png"].stat().st_size > 1000


def test_cli_registers_and_validates(tmp_path):
    from heartline.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["bench", "denoise", "--help"])
    assert result.exit_code == 0 and "--out" in result.output
    bad = runner.invoke(app, ["bench", "denoise", "--out", str(tmp_path), "--methods", "fft"])
    assert bad.exit_code != 0
