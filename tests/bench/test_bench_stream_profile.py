"""``heartline bench stream-profile``: per-stage CPU of the stream processor, no broker."""

from __future__ import annotations

import json

import pytest

from heartline.bench.stream_profile import STAGES, run_stream_profile


def test_profile_accounts_every_frame_and_stage(tmp_path, tiny_model_path, data_dir) -> None:
    prof = run_stream_profile(
        tmp_path / "run",
        model=tiny_model_path,
        patients=3,
        seconds=4,
        warmup_s=3,
        batch_frames=2,
        data_dir=data_dir,
    )
    assert prof.frames == 12  # only the measured seconds, every frame stored once
    assert prof.beats > 0
    assert [s.stage for s in prof.stages] == list(STAGES)
    # the pipeline and engine stages are charged, and the stages add up to the worker total
    for name in ("parse", "detect", "clean", "quality", "alerts", "storage"):
        assert next(s for s in prof.stages if s.stage == name).us_per_frame > 0, name
    staged = sum(s.us_per_frame for s in prof.stages)
    assert staged + prof.unattributed_us_per_frame == pytest.approx(prof.worker_us_per_frame)
    assert 0 <= prof.unattributed_us_per_frame < 0.5 * prof.worker_us_per_frame
    saved = json.loads((tmp_path / "run" / "stream_profile.json").read_text())
    assert saved["frames"] == 12 and len(saved["stages"]) == len(STAGES)
    assert "| **worker total** |" in (tmp_path / "run" / "stream_profile.md").read_text()


def test_profile_refuses_bad_arguments(tmp_path, tiny_model_path) -> None:
    with pytest.raises(ValueError, match="patients"):
        run_stream_profile(tmp_path, model=tiny_model_path, patients=0)
    with pytest.raises(FileNotFoundError):
        run_stream_profile(tmp_path, model=tmp_path / "missing.onnx")


def test_profile_with_tuned_gc_restores_the_collector(tmp_path, tiny_model_path, data_dir) -> None:
    import gc

    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    prof = run_stream_profile(
        tmp_path / "run",
        model=tiny_model_path,
        patients=2,
        seconds=2,
        warmup_s=2,
        batch_frames=2,
        data_dir=data_dir,
        tune_gc=True,
    )
    assert prof.gc_tuned and prof.frames == 4
    assert "--tune-gc" in (tmp_path / "run" / "stream_profile.md").read_text()
    assert gc.get_threshold() == before  # the caller's settings are back
    assert gc.get_freeze_count() <= frozen_before


def test_profile_without_the_rhythm_model_charges_no_rhythm_stage(
    tmp_path, tiny_model_path, data_dir
) -> None:
    prof = run_stream_profile(
        tmp_path / "run",
        model=tiny_model_path,
        patients=2,
        seconds=2,
        warmup_s=2,
        batch_frames=2,
        data_dir=data_dir,
        rhythm_interval_s=None,
    )
    assert prof.rhythm_interval_s is None and prof.frames == 4
    assert next(s for s in prof.stages if s.stage == "rhythm").us_per_frame == 0
    assert "--no-rhythm-model" in (tmp_path / "run" / "stream_profile.md").read_text()
    with pytest.raises(ValueError, match="rhythm_interval_s"):
        run_stream_profile(tmp_path, model=tiny_model_path, rhythm_interval_s=0)


def test_profile_artefact_model_switch(tmp_path, tiny_model_path, data_dir) -> None:
    """``--artefact-model off`` reaches the processor (its cost is then the difference)."""
    prof = run_stream_profile(
        tmp_path / "off",
        model=tiny_model_path,
        patients=2,
        seconds=2,
        warmup_s=2,
        batch_frames=2,
        data_dir=data_dir,
        artefact_model="off",
    )
    assert prof.artefact_model == "off" and prof.frames == 4
    assert "--artefact-model off" in (tmp_path / "off" / "stream_profile.md").read_text()
    with pytest.raises((FileNotFoundError, OSError, ValueError)):
        run_stream_profile(
            tmp_path / "missing",
            model=tiny_model_path,
            patients=1,
            seconds=1,
            warmup_s=0,
            data_dir=data_dir,
            artefact_model=str(tmp_path / "no-such-model.json"),
        )
