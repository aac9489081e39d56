"""DS1 out-of-fold model selection (heartline.training.selection) on a few records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heartline.data.splits import DS2
from heartline.training.config import ExperimentConfig, ModelConfig, TrainConfig, load_config
from heartline.training.protocols import ProtocolData
from heartline.training.selection import (
    crossfit_config,
    paired_record_bootstrap,
    pool_selections,
    refit_config,
    run_selection,
    summarise_oof,
)

torch.set_num_threads(1)

TINY = {"context_k": 0, "channels": 4, "feature_dim": 8, "lstm_hidden": 8}


def _config(name: str, **params: object) -> ExperimentConfig:
    return ExperimentConfig(
        name=name,
        model=ModelConfig(name="hybrid", params={**TINY, **params}),
        train=TrainConfig(max_epochs=1, batch_size=256, num_threads=1),
    )


def test_crossfit_config_keeps_architecture_and_sets_members() -> None:
    cfg = crossfit_config(_config("a", lstm_hidden=6), folds=4, seed=3, time_budget_s=60.0)
    assert cfg.model.name == "hybrid_ensemble"
    assert cfg.model.params["n_members"] == 4 and cfg.model.params["calibrate"] is True
    assert cfg.model.params["channels"] == 4 and cfg.model.params["lstm_hidden"] == 6
    assert cfg.train.seed == 3 and cfg.train.time_budget_s == 60.0
    with pytest.raises(ValueError, match="only hybrid"):
        crossfit_config(
            dataclasses.replace(_config("a"), model=ModelConfig(name="cnn")),
            folds=3,
            seed=0,
            time_budget_s=None,
        )
    with pytest.raises(ValueError, match="folds"):
        crossfit_config(_config("a"), folds=1, seed=0, time_budget_s=None)


@pytest.fixture(scope="module")
def selection(tmp_path_factory, data_dir):
    built: list[str] = []
    original = ProtocolData.build

    def spy(self, records, **kw):
        built.extend(records)
        return original(self, records, **kw)

    ProtocolData.build = spy  # type: ignore[method-assign]
    try:
        out = tmp_path_factory.mktemp("select")
        res = run_selection(
            {"small": _config("small"), "raw_rr": _config("raw_rr", rr_mode="raw")},
            out=out,
            data=ProtocolData.quick(data_dir=data_dir),
            seeds=(0, 1),
            folds=2,
            time_budget_s=None,
            n_boot=30,
        )
    finally:
        ProtocolData.build = original  # type: ignore[method-assign]
    return res, out, built


def test_selection_reads_no_test_record_and_picks_the_best_mean(selection) -> None:
    res, _out, built = selection
    assert built and not set(built) & set(DS2)
    assert len(res.runs) == 4
    means = {n: np.mean([r.macro_f1 for r in res.runs if r.name == n]) for n in ("small", "raw_rr")}
    assert res.winner == max(means, key=means.get)
    assert res.mean_macro_f1 == pytest.approx(means)
    loser = next(n for n in means if n != res.winner)
    d, lo, hi = res.differences[loser]
    assert d == pytest.approx(means[res.winner] - means[loser])
    assert lo <= hi
    # every beat of the four DS1 records is predicted out of fold, each record in one fold
    run = res.runs[0]
    assert sorted(r for f in res.folds for r in f) == sorted(e.record for e in run.per_record)
    assert run.n_beats == sum(e.n_beats for e in run.per_record)


def test_selection_writes_reports_and_shippable_runs(selection) -> None:
    res, out, _ = selection
    report = json.loads((out / "selection.json").read_text())
    assert report["winner"] == res.winner and len(report["runs"]) == 4
    md = (out / "selection.md").read_text()
    assert "DS2 is not read" in md and f"heartline ship {res.winner_run_dir}" in md
    assert (out / "selection.png").stat().st_size > 0
    refit = load_config(out / "refit.toml")
    assert refit.data.hold_out_validation is False and refit.train.monitor == "none"
    assert refit.train.max_epochs == res.refit_epochs == report["refit_epochs"] == 1
    assert refit.model.name == "hybrid" and refit.train.time_budget_s is None
    for r in res.runs:
        assert (r.run_dir / "model" / "model.pt").is_file()
        assert (r.run_dir / "config.toml").is_file()
        again = summarise_oof(r.run_dir, name=r.name, seed=r.seed)
        assert again.macro_f1 == r.macro_f1
        # the platform of each run (bit-for-bit reproduction holds per kind of CPU)
        import torch

        assert r.platform["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert report["runs"][0]["platform"] == dict(res.runs[0].platform)
    assert "Trained on: " in md and f"({torch.backends.cpu.get_cpu_capability()} kernels)" in md


def test_paired_bootstrap_of_a_run_with_itself_is_zero_and_checks_beats(
    selection, tmp_path
) -> None:
    res, _, _ = selection
    a = res.runs[0].run_dir
    assert paired_record_bootstrap([a], [a], n_boot=20) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equally many"):
        paired_record_bootstrap([a], [a, a])
    d = dict(np.load(a / "oof.npz"))
    d["sample_idx"] = d["sample_idx"] + 1
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "oof.npz", **d)
    (other / "crossfit.json").write_text((a / "crossfit.json").read_text())
    with pytest.raises(ValueError, match="same beats"):
        paired_record_bootstrap([a], [other])


def test_selection_refuses_bad_input(tmp_path, data_dir) -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        run_selection({}, out=tmp_path)
    with pytest.raises(ValueError, match="names"):
        run_selection({"a b": _config("a")}, out=tmp_path)
    with pytest.raises(ValueError, match="DS1"):
        run_selection(
            {"a": _config("a")},
            out=tmp_path,
            data=ProtocolData(data_dir=data_dir, train_records=("100",), val_records=()),
        )


def test_existing_run_folder_is_not_overwritten(tmp_path, data_dir) -> None:
    (tmp_path / "a-s0").mkdir()
    with pytest.raises(FileExistsError):
        run_selection(
            {"a": _config("a")},
            out=tmp_path,
            data=ProtocolData.quick(data_dir=data_dir),
            folds=2,
            time_budget_s=None,
        )


def test_refit_config_trains_fixed_epochs_on_all_ds1() -> None:
    cfg = refit_config(_config("a"), epochs=7)
    assert cfg.name == "a-refit" and cfg.train.max_epochs == 7 and cfg.train.monitor == "none"
    assert cfg.data.hold_out_validation is False and cfg.model == _config("a").model
    with pytest.raises(ValueError, match="epochs"):
        refit_config(_config("a"), epochs=0)


def test_summary_of_missing_run_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        summarise_oof(tmp_path, name="x", seed=0)


def test_pooling_a_selection_folder_reproduces_its_result(selection, tmp_path) -> None:
    res, out, _ = selection
    pooled = pool_selections(
        [out],
        out=tmp_path / "pool",
        candidates={"small": _config("small"), "raw_rr": _config("raw_rr", rr_mode="raw")},
        n_boot=30,
    )
    assert pooled.mean_macro_f1 == res.mean_macro_f1 and pooled.winner == res.winner
    assert pooled.differences == res.differences and pooled.refit_epochs == res.refit_epochs
    assert (tmp_path / "pool" / "refit.toml").read_text() == (out / "refit.toml").read_text()
    with pytest.raises(ValueError, match="not the one"):
        pool_selections(
            [out], out=tmp_path / "bad", candidates={"small": _config("small", lstm_hidden=6)}
        )
