"""Pooling ``heartline select`` folders (heartline.training.selection.pool_selections) on
synthetic out-of-fold predictions: no training, a few hundred beats."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.training.config import (
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    load_config,
    save_config,
)
from heartline.training.selection import (
    _macro_f1_counts,
    compare_candidates,
    crossfit_config,
    paired_record_bootstrap,
    pool_selections,
    summarise_oof,
)
from heartline.training.trainer import macro_f1

RECORDS = ("101", "106", "108", "109", "112", "114")
FOLDS = [["101", "106", "108"], ["109", "112", "114"]]


def _beats(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rec = np.repeat(np.array(RECORDS), rng.integers(30, 80, size=len(RECORDS)))
    labels = rng.choice(5, size=len(rec), p=[0.7, 0.12, 0.12, 0.04, 0.02])
    labels[::37] = -1  # unlabelled beats are ignored
    sample_idx = np.concatenate([np.arange(np.sum(rec == r)) * 300 for r in RECORDS])
    return {"labels": labels, "record": rec, "sample_idx": sample_idx}


def _config(name: str, power: float = 1.0) -> ExperimentConfig:
    return ExperimentConfig(
        name=name,
        model=ModelConfig(name="hybrid", params={"channels": 4, "lstm_hidden": 8}),
        train=TrainConfig(max_epochs=5, class_weight_power=power, num_threads=1),
    )


CONFIGS = {"best": _config("best"), "w05": _config("w05", power=0.5)}


def _write_run(
    folder: Path, name: str, seed: int, skill: float, beats: dict[str, np.ndarray]
) -> Path:
    """A run directory as ``run_selection`` leaves it: ``oof.npz``, ``crossfit.json``,
    ``config.toml``; predictions right with probability ``skill``, else random."""
    rng = np.random.default_rng(1000 * seed + int(100 * skill))
    y = np.where(beats["labels"] < 0, 0, beats["labels"])
    pred = np.where(rng.random(len(y)) < skill, y, rng.integers(0, 5, size=len(y)))
    log_proba = np.full((len(y), 5), -5.0, dtype=np.float32)
    log_proba[np.arange(len(y)), pred] = -0.1
    run_dir = folder / f"{name}-s{seed}"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "oof.npz", log_proba=log_proba, **beats)
    info = {"folds": FOLDS, "member_best_epochs": [seed + 1, 2], "train_seconds": 5.0}
    (run_dir / "crossfit.json").write_text(json.dumps(info))
    cfg = crossfit_config(
        CONFIGS[name], folds=2, seed=seed, time_budget_s=60.0, num_threads=1, name=f"{name}-s{seed}"
    )
    save_config(cfg, run_dir / "config.toml")
    return run_dir


def _selection(
    folder: Path,
    seeds: tuple[int, ...],
    *,
    beats: dict[str, np.ndarray] | None = None,
    old_format: bool = False,
    folds: list[list[str]] = FOLDS,
) -> Path:
    """A ``heartline select --out`` folder of both candidates and ``seeds``; ``old_format``
    writes ``selection.json`` as reports did before the per-record confusions were stored."""
    beats = _beats() if beats is None else beats
    runs = []
    for name, skill in (("best", 0.6), ("w05", 0.7)):
        for s in seeds:
            run = summarise_oof(
                _write_run(folder, name, s, skill + 0.02 * s, beats), name=name, seed=s
            )
            d = run.to_dict()
            if old_format:
                del d["beats_sha256"]
                for e in d["per_record"]:
                    del e["confusion"]
            runs.append(d)
    (folder / "selection.json").write_text(json.dumps({"folds": folds, "runs": runs}))
    return folder


def _reference_bootstrap(
    runs_a: list[Path], runs_b: list[Path], n_boot: int, seed: int = 0
) -> tuple[float, float, float]:
    """The beat-level bootstrap that ``heartline select`` used before it worked on per-record
    confusion matrices (and that round 3's ``combine.py`` called)."""
    arrays = [np.load(r / "oof.npz") for r in (*runs_a, *runs_b)]
    y, rec = arrays[0]["labels"], arrays[0]["record"].astype(str)
    preds = [a["log_proba"].argmax(axis=1) for a in arrays]
    pa, pb = preds[: len(runs_a)], preds[len(runs_a) :]

    def diff(idx):
        return float(
            np.mean(
                [
                    macro_f1(y[idx], a[idx]) - macro_f1(y[idx], b[idx])
                    for a, b in zip(pa, pb, strict=True)
                ]
            )
        )

    records = np.unique(rec)
    index = {r: np.flatnonzero(rec == r) for r in records}
    rng = np.random.default_rng(seed)
    boots = [
        diff(np.concatenate([index[r] for r in rng.choice(records, size=len(records))]))
        for _ in range(n_boot)
    ]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return diff(slice(None)), float(lo), float(hi)


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_of_counts_equals_macro_f1_of_beats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    y = rng.choice(5, size=n, p=[0.6, 0.2, 0.1, 0.0, 0.1] if seed % 2 else None)
    y[: n // 10] = -1
    p = rng.integers(0, 5, size=n)
    keep = y >= 0
    conf = np.bincount(y[keep] * 5 + p[keep], minlength=25).reshape(5, 5)
    assert _macro_f1_counts(conf) == macro_f1(y, p)


def test_bootstrap_on_confusions_equals_the_beat_level_bootstrap(tmp_path: Path) -> None:
    folder = _selection(tmp_path / "sel", (0, 1, 2))
    best = [folder / f"best-s{s}" for s in (0, 1, 2)]
    w05 = [folder / f"w05-s{s}" for s in (0, 1, 2)]
    got = paired_record_bootstrap(w05, best, n_boot=200, seed=4)
    assert got == _reference_bootstrap(w05, best, n_boot=200, seed=4)
    assert got[1] < got[0] < got[2] and got[0] > 0


def test_pool_of_one_seed_per_folder_equals_one_folder_of_all_seeds(tmp_path: Path) -> None:
    beats = _beats()
    whole = _selection(tmp_path / "whole", (0, 1, 2), beats=beats)
    parts = [_selection(tmp_path / f"s{s}", (s,), beats=beats) for s in (2, 0, 1)]
    pooled = pool_selections(parts, out=tmp_path / "pool", n_boot=150)
    runs = [summarise_oof(whole / f"{n}-s{s}", name=n, seed=s) for n in CONFIGS for s in (0, 1, 2)]
    mean, winner, diffs = compare_candidates(runs, n_boot=150)
    assert (pooled.mean_macro_f1, pooled.winner, pooled.differences) == (mean, winner, diffs)
    assert winner == "w05"
    assert mean["best"] == np.mean([r.macro_f1 for r in runs if r.name == "best"])
    ref = _reference_bootstrap(
        [whole / f"w05-s{s}" for s in (0, 1, 2)],
        [whole / f"best-s{s}" for s in (0, 1, 2)],
        n_boot=150,
    )
    assert pooled.differences["best"] == ref
    assert [(r.name, r.seed) for r in pooled.runs] == [
        (n, s) for n in ("best", "w05") for s in (0, 1, 2)
    ]
    # w05's member best epochs over the three seeds: 1,2, 2,2, 3,2 -> median 2
    assert pooled.refit_epochs == 2
    report = json.loads((tmp_path / "pool" / "selection.json").read_text())
    assert report["pooled_from"] == [str(p) for p in parts]
    assert report["differences_vs_winner"]["best"]["diff"] == ref[0]
    assert "Pooled from 3 selection folders" in (tmp_path / "pool" / "selection.md").read_text()
    assert (tmp_path / "pool" / "selection.png").stat().st_size > 0
    assert not (tmp_path / "pool" / "refit.toml").exists()  # no --candidate given


def test_old_reports_are_read_through_oof_npz_and_refused_without_it(tmp_path: Path) -> None:
    beats = _beats()
    new = [_selection(tmp_path / f"n{s}", (s,), beats=beats) for s in (0, 1)]
    old = [_selection(tmp_path / f"o{s}", (s,), beats=beats, old_format=True) for s in (0, 1)]
    a = pool_selections(new, out=tmp_path / "pa", n_boot=50)
    b = pool_selections(old, out=tmp_path / "pb", n_boot=50)
    assert (a.mean_macro_f1, a.differences) == (b.mean_macro_f1, b.differences)
    (old[1] / "best-s1" / "oof.npz").unlink()
    with pytest.raises(ValueError, match=r"no per-record confusion.*oof\.npz does not exist"):
        pool_selections(old, out=tmp_path / "pc", n_boot=50)


def test_a_pool_is_recomputed_from_its_report_alone(tmp_path: Path) -> None:
    beats = _beats()
    parts = [_selection(tmp_path / f"s{s}", (s,), beats=beats, old_format=True) for s in (0, 1)]
    first = pool_selections(parts, out=tmp_path / "pool", n_boot=80)
    for p in parts:
        shutil.rmtree(p)  # the run directories are gone, as after a move to another machine
    again = pool_selections([tmp_path / "pool"], out=tmp_path / "again", n_boot=80)
    assert (again.mean_macro_f1, again.differences) == (first.mean_macro_f1, first.differences)


def test_pool_refuses_mismatched_folders(tmp_path: Path) -> None:
    beats = _beats()
    s0 = _selection(tmp_path / "s0", (0,), beats=beats)
    s1 = _selection(tmp_path / "s1", (1,), beats=beats)
    other_folds = _selection(tmp_path / "f", (1,), beats=beats, folds=[FOLDS[1], FOLDS[0]])
    with pytest.raises(ValueError, match="different record folds"):
        pool_selections([s0, other_folds], out=tmp_path / "o1")
    shifted = dict(beats, sample_idx=beats["sample_idx"] + 1)
    other_beats = _selection(tmp_path / "b", (1,), beats=shifted)
    with pytest.raises(ValueError, match="same beats"):
        pool_selections([s0, other_beats], out=tmp_path / "o2")
    with pytest.raises(ValueError, match="given twice"):
        pool_selections(
            [s0, _selection(tmp_path / "again", (0,), beats=beats)], out=tmp_path / "o3"
        )
    # one candidate only in the second folder
    report = json.loads((s1 / "selection.json").read_text())
    report["runs"] = [r for r in report["runs"] if r["name"] == "best"]
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "selection.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="different candidates"):
        pool_selections([s0, tmp_path / "one"], out=tmp_path / "o4")
    # a candidate renamed in the second folder: same count, different names
    report = json.loads((s1 / "selection.json").read_text())
    for r in report["runs"]:
        r["name"] = r["name"].replace("w05", "aug")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "selection.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="different candidates"):
        pool_selections([s0, tmp_path / "renamed"], out=tmp_path / "o5")
    with pytest.raises(FileNotFoundError, match=r"selection\.json"):
        pool_selections([s0, tmp_path], out=tmp_path / "o6")
    pool_selections([s0, s1], out=tmp_path / "ok", n_boot=10)
    with pytest.raises(FileExistsError):
        pool_selections([s0, s1], out=tmp_path / "ok", n_boot=10)


def test_pool_refuses_candidates_with_different_seeds_or_configs(tmp_path: Path) -> None:
    beats = _beats()
    s0 = _selection(tmp_path / "s0", (0,), beats=beats)
    s1 = _selection(tmp_path / "s1", (1,), beats=beats)
    report = json.loads((s1 / "selection.json").read_text())
    for r in report["runs"]:
        if r["name"] == "w05":
            r["seed"] = 2
    (s1 / "selection.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="different seeds"):
        pool_selections([s0, s1], out=tmp_path / "o1")
    s2 = _selection(tmp_path / "s2", (2,), beats=beats)
    cfg = load_config(s2 / "best-s2" / "config.toml")
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time_budget_s=90.0))
    save_config(longer, s2 / "best-s2" / "config.toml")
    with pytest.raises(ValueError, match=r"differ beyond the seed \(train.time_budget_s\)"):
        pool_selections([s0, s2], out=tmp_path / "o2")


def test_pool_with_the_winners_config_writes_its_refit(tmp_path: Path) -> None:
    beats = _beats()
    parts = [_selection(tmp_path / f"s{s}", (s,), beats=beats) for s in (0, 1, 2)]
    res = pool_selections(parts, out=tmp_path / "pool", candidates=CONFIGS, n_boot=20)
    refit = load_config(tmp_path / "pool" / "refit.toml")
    assert res.winner == "w05" and refit.train.class_weight_power == 0.5
    assert refit.train.max_epochs == res.refit_epochs == math.ceil(np.median([1, 2, 2, 2, 3, 2]))
    assert refit.data.hold_out_validation is False and refit.model.name == "hybrid"
    with pytest.raises(ValueError, match="not the one"):
        pool_selections(parts, out=tmp_path / "bad", candidates={"w05": CONFIGS["best"]}, n_boot=20)
    with pytest.raises(ValueError, match="has no runs of candidate aug"):
        pool_selections(parts, out=tmp_path / "bad2", candidates={"aug": CONFIGS["best"]})


def test_named_candidates_are_pooled_from_folders_holding_more(tmp_path: Path) -> None:
    """Round 3 pooled best and best_w05 of round 2's three-candidate folder with two-candidate
    folders: naming the candidates leaves the others out, and only then."""
    beats = _beats()
    s0 = _selection(tmp_path / "s0", (0,), beats=beats)
    s1 = _selection(tmp_path / "s1", (1,), beats=beats)
    # s0 also holds a third candidate (a copy of w05's run under another name)
    report = json.loads((s0 / "selection.json").read_text())
    extra = [dict(r, name="aug") for r in report["runs"] if r["name"] == "w05"]
    report["runs"] += extra
    (s0 / "selection.json").write_text(json.dumps(report))
    shutil.copytree(s0 / "w05-s0", s0 / "aug-s0")
    with pytest.raises(ValueError, match="different candidates"):
        pool_selections([s0, s1], out=tmp_path / "all")
    res = pool_selections([s0, s1], out=tmp_path / "two", candidates=CONFIGS, n_boot=20)
    assert {r.name for r in res.runs} == {"best", "w05"} and len(res.runs) == 4
    assert (
        res.mean_macro_f1
        == pool_selections(
            [_selection(tmp_path / "t0", (0,), beats=beats), s1], out=tmp_path / "ref", n_boot=20
        ).mean_macro_f1
    )


def test_select_pool_command(tmp_path: Path) -> None:
    beats = _beats()
    parts = [_selection(tmp_path / f"s{s}", (s,), beats=beats) for s in (0, 1)]
    runner = CliRunner()
    args = ["select", "--pool", str(parts[0]), "--pool", str(parts[1])]
    res = runner.invoke(app, [*args, "--n-bootstrap", "20", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "winner w05" in res.output and "seeds [0, 1]" in res.output
    report = json.loads((tmp_path / "p" / "selection.json").read_text())
    assert report["winner"] == "w05" and len(report["runs"]) == 4
    bad = runner.invoke(app, [*args, "--seeds", "3", "--out", str(tmp_path / "q")])
    assert bad.exit_code != 0 and "--pool trains nothing" in bad.output
    bad = runner.invoke(app, ["select", "--out", str(tmp_path / "r")])
    assert bad.exit_code != 0 and "--candidate" in bad.output


def test_select_pool_checks_candidates_of_epoch_capped_runs(tmp_path: Path) -> None:
    """Runs trained with ``select --epochs N`` carry max_epochs N; ``--pool --candidate`` checks
    the config files against them once told the cap with ``--epochs`` (round 5's pool)."""
    beats = _beats()
    parts = [_selection(tmp_path / f"s{s}", (s,), beats=beats) for s in (0, 1)]
    files = []
    for name, cfg in CONFIGS.items():  # the files say 40 epochs; the runs were capped at 5
        path = tmp_path / f"{name}.toml"
        save_config(
            dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_epochs=40)), path
        )
        files += ["--candidate", f"{name}={path}"]
    runner = CliRunner()
    args = ["select", "--pool", str(parts[0]), "--pool", str(parts[1]), *files]
    args += ["--n-bootstrap", "20"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code != 0 and "is not the one" in res.output  # the cap is not stated
    res = runner.invoke(app, [*args, "--epochs", "3", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "is not the one" in res.output  # a different cap
    res = runner.invoke(app, [*args, "--epochs", "5", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c" / "refit.toml").is_file()
    bare = ["select", "--pool", str(parts[0]), "--epochs", "5", "--out", str(tmp_path / "d")]
    res = runner.invoke(app, bare)
    assert res.exit_code != 0 and "--candidate" in res.output
