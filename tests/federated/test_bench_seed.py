"""``heartline bench federated --seed / --noise-seed / --dp-epsilons``: parsed into the
benchmark's configuration, passed to every federation's run config, recorded in the report and
checked by ``--resume`` (cheap: no federation runs here)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")

from typer.testing import CliRunner

import heartline.bench.federated as bench
from heartline.cli.main import app
from heartline.federated.deployment import FederatedRunConfig


def _captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> Any:
    """Invoke the command with ``args``; return (result, the BenchConfig it would have run)."""
    seen: dict[str, Any] = {}

    def fake(out: Any, **kw: Any) -> Path:
        seen["config"] = kw["config"]
        return Path(out) / "federated.json"

    monkeypatch.setattr(bench, "run_federated_bench", fake)
    res = CliRunner().invoke(
        app, ["bench", "federated", "--out", str(tmp_path / "b"), "--beats-runs", "none", *args]
    )
    return res, seen.get("config")


def test_seed_options_reach_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    res, cfg = _captured(monkeypatch, tmp_path, "--rhythm-runs", "central,dphead")
    assert res.exit_code == 0, res.output
    assert (cfg.seed, cfg.noise_seed, cfg.dpsgd_epsilons) == (0, 0, (1.0, 3.0, 8.0))
    res, cfg = _captured(
        monkeypatch,
        tmp_path,
        "--rhythm-runs",
        "central,dphead",
        "--seed",
        "2",
        "--noise-seed",
        "5",
        "--dp-epsilons",
        "3, 0.5",
    )
    assert res.exit_code == 0, res.output
    assert (cfg.seed, cfg.noise_seed, cfg.dpsgd_epsilons) == (2, 5, (3.0, 0.5))
    names = [n for n, _ in bench._scenarios(cfg, "rhythm")]
    assert names == ["dphead_eps3", "dphead_eps0.5"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dp-epsilons", "0"), "finite number > 0"),
        (("--dp-epsilons", "3,x"), "'x' is not a number"),
        (("--dp-epsilons", "nan"), "finite number > 0"),
        (("--seed", "-1"), "-1"),
        (("--noise-seed", "-2"), "-2"),
    ],
)
def test_bad_seed_options_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    res, cfg = _captured(monkeypatch, tmp_path, "--rhythm-runs", "dphead", *args)
    assert res.exit_code != 0 and cfg is None
    assert message in res.output


def test_noise_seed_is_in_the_run_config_the_app_declares(tmp_path: Path) -> None:
    """Flower refuses run-config keys its app does not declare: both apps declare every key."""
    rc = FederatedRunConfig(
        task="rhythm", manifest=tmp_path / "m.json", num_rounds=2, seed=1, noise_seed=3
    )
    text = rc.run_config(n_hospitals=5, out_dir=tmp_path, initial_weights=tmp_path / "w.npz")
    keys = {kv.split("=", 1)[0] for kv in text.split(" ")}
    assert "seed=1" in text.split(" ") and "noise-seed=3" in text.split(" ")
    root = Path(bench.__file__).parents[1] / "federated"
    for app_dir in ("app", "app_secagg"):
        with (root / app_dir / "pyproject.toml").open("rb") as f:
            declared = set(tomllib.load(f)["tool"]["flwr"]["app"]["config"])
        assert keys <= declared, (app_dir, sorted(keys - declared))
    with pytest.raises(ValueError, match="noise_seed"):
        FederatedRunConfig(task="rhythm", manifest=tmp_path / "m.json", num_rounds=2, noise_seed=-1)


def test_bench_passes_the_seeds_to_each_federation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each federated run gets the benchmark's seed and noise seed; the report records both;
    ``--resume`` refuses a report of another seed but not of other epsilons (run names)."""
    import heartline.federated.deployment as dep
    import heartline.federated.partition as part
    import heartline.federated.tasks as tasks

    calls: list[FederatedRunConfig] = []

    def fake_run(rcfg: FederatedRunConfig, **kw: Any) -> dict[str, Any]:
        calls.append(rcfg)
        raise RuntimeError("no federation in this test")

    m = part.Manifest(
        task="rhythm",
        database="cinc2017",
        seed=2,
        alpha=1.0,
        hospitals=tuple(
            part.Hospital(partition_id=i, name=f"h{i}", records=(f"A{i:05d}",)) for i in range(5)
        ),
        test_records=("A09999",),
    )
    monkeypatch.setattr(dep, "run_federation", fake_run)
    monkeypatch.setattr(part, "partition_rhythm", lambda *a, **k: m)
    monkeypatch.setattr(tasks, "load_test_data", lambda *a, **k: None)
    cfg = bench.BenchConfig(
        seed=2, noise_seed=4, tasks=("rhythm",), rhythm_scenarios=("dphead",), dpsgd_epsilons=(3.0,)
    )
    path = bench.run_federated_bench(tmp_path, config=cfg)
    assert [(c.seed, c.noise_seed, c.record_dp_epsilon) for c in calls] == [(2, 4, 3.0)]
    report = json.loads(path.read_text())
    assert (report["seed"], report["noise_seed"]) == (2, 4)
    assert report["config"]["noise_seed"] == 4
    with pytest.raises(ValueError, match="another budget"):
        bench.run_federated_bench(
            tmp_path, config=bench.BenchConfig(seed=1, tasks=("rhythm",)), resume=True
        )
    with pytest.raises(ValueError, match="another budget"):
        bench.run_federated_bench(
            tmp_path, config=bench.BenchConfig(seed=2, tasks=("rhythm",)), resume=True
        )
    calls.clear()
    other = bench.BenchConfig(
        seed=2, noise_seed=4, tasks=("rhythm",), rhythm_scenarios=("dphead",), dpsgd_epsilons=(8.0,)
    )
    bench.run_federated_bench(tmp_path, config=other, resume=True)
    assert [c.record_dp_epsilon for c in calls] == [8.0]


def test_seed_summary_means_sd_and_ratios() -> None:
    """``scripts/federated_seeds.py``: per-report values, mean, sd, `~` F1 and the ratios."""
    import importlib.util

    path = Path(bench.__file__).parents[3] / "scripts" / "federated_seeds.py"
    spec = importlib.util.spec_from_file_location("federated_seeds", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    conf = [[5, 0, 0, 1], [0, 5, 0, 0], [0, 0, 5, 0], [1, 0, 0, 1]]  # `~` F1 = 2 / 4
    zero = [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [2, 0, 0, 0]]

    def rep(c: float, d: float) -> dict[str, Any]:
        return {
            "tasks": {
                "rhythm": {
                    "central": {"macro_f1": c, "confusion": conf},
                    "dphead_eps3": {"macro_f1": d, "confusion": zero, "epsilon": 2.999},
                }
            }
        }

    s = mod.summarise([rep(0.6, 0.5), rep(0.8, 0.6), {"tasks": {"rhythm": {}}}])
    c, d = s["runs"]["central"], s["runs"]["dphead_eps3"]
    assert c["macro_f1"] == [0.6, 0.8, None] and c["n"] == 2
    assert c["mean"] == pytest.approx(0.7) and c["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert c["noise_f1"][:2] == [0.5, 0.5] and d["noise_f1"][:2] == [0.0, 0.0]
    (r,) = [r for r in s["ratios"] if r["ratio"].startswith("DP eps 3 / central CNN")]
    assert r["per_report"][:2] == [pytest.approx(0.5 / 0.6), pytest.approx(0.75)]
    assert r["per_report"][2] is None and r["of_means"] == pytest.approx(0.55 / 0.7)
