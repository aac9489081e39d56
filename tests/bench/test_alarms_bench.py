"""``heartline bench alarms``: the EC57-style AF episode scores and a quick run end to end."""

from __future__ import annotations

import json

import pytest

from heartline.bench.alarms import (
    af_episode_scores,
    reference_af_episodes,
    run_alarms_benchmark,
    write_alarms_report,
)


def test_episode_scores_count_overlaps_and_durations():
    ref = [(10.0, 70.0), (100.0, 110.0), (200.0, 260.0)]
    det = [(20.0, 80.0), (150.0, 160.0), (190.0, 230.0)]
    s = af_episode_scores(ref, det)
    assert (s["n_ref"], s["n_ref_detected"]) == (3, 2)  # the 10 s episode is missed
    assert (s["n_det"], s["n_det_true"]) == (3, 2)  # the alarm at 150 s is false
    assert s["ref_s"] == pytest.approx(130.0)
    assert s["det_s"] == pytest.approx(110.0)
    assert s["overlap_s"] == pytest.approx(50.0 + 30.0)


def test_reference_af_episodes_of_201(data_dir):
    eps, dur = reference_af_episodes(data_dir / "mitdb" / "201")
    assert dur == pytest.approx(1805.6, abs=0.1)
    assert len(eps) >= 2 and all(0 <= a < b <= dur for a, b in eps)


def test_quick_benchmark_writes_its_report(tmp_path, data_dir):
    report = run_alarms_benchmark(
        data_dir=data_dir, quick=True, af_records=("201",), cinc_normal=3, cinc_noisy=2
    )
    paths = write_alarms_report(report, tmp_path, command="test")
    data = json.loads(paths["json"].read_text())
    assert set(data["configs"]) == {"before", "after"}
    after = data["configs"]["after"]
    assert after["af"]["201"]["n_ref"] >= 1
    assert after["cost"]["rhythm_cpu_us_per_device_s"] > 0
    assert data["configs"]["before"]["cost"]["rhythm_cpu_us_per_device_s"] == 0
    assert set(data["targets"]) >= {"af_episode_se", "normal_signal_quality_frac"}
    assert paths["af_png"].stat().st_size > 0 and "AF episodes" in paths["md"].read_text()


def test_half_scores_only_that_half_and_split_summary_says_so(data_dir):
    from heartline.bench.alarms import cinc_dev_half, split_summary

    labels = dict(
        line.strip().split(",")[:2]
        for line in (data_dir / "cinc2017" / "REFERENCE-v3.csv").read_text().splitlines()
        if "," in line
    )
    report = run_alarms_benchmark(
        data_dir=data_dir,
        quick=True,
        af_records=("201",),
        cinc_normal=6,
        cinc_noisy=4,
        configs=("after",),
        half="dev",
        artefact_model="off",
    )
    dev = cinc_dev_half(labels)
    cinc = report["configs"]["after"]["cinc"]
    assert report["half"] == "dev" and report["cinc_records"] == {"N": 6, "~": 4}
    assert 0 < sum(report["cinc_scored"].values()) < 10
    assert cinc["N"]["errors"] == cinc["~"]["errors"] == 0
    assert set(cinc["N"]["records_with_physiological_alarm"]) <= dev
    summary = split_summary(report, labels)
    assert set(summary) == {"dev"}
    assert summary["dev"]["N"]["n"] == report["cinc_scored"]["N"]
    with pytest.raises(ValueError, match="half"):
        run_alarms_benchmark(data_dir=data_dir, quick=True, half="test")
