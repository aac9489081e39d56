"""``heartline bench models``: one input set for every model, the template columns included when
the hybrid's config reads them, and RR-only configs left as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from heartline.bench.models import (
    BENCH_MODELS,
    HYBRID_LIKE,
    default_configs,
    resolve_inputs,
    run_models_benchmark,
)
from heartline.training.config import load_config
from heartline.training.protocols import ProtocolData

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TPL_LABEL = "13 RR columns + 19 template columns"
ALL_COLUMNS = ProtocolData(template_features=True).rr_columns


def _params(name: str) -> dict:
    return dict(load_config(CONFIGS / name).model.params)


def _columns_read(model_dir: Path) -> int | None:
    """RR-side columns a saved model reads (deep: ``n_rr``; classical: its feature names)."""
    if (model_dir / "config.json").is_file():  # classical
        names = json.loads((model_dir / "config.json").read_text())["feature_names"]
        return sum(n in ALL_COLUMNS for n in names)
    return json.loads((model_dir / "model.json").read_text()).get("n_rr")  # None: always_n


@pytest.fixture(scope="module")
def tpl_run(tmp_path_factory, data_dir) -> tuple[dict, Path]:
    """Every model, quick, on the annotated R-peaks, with the shipped (template) hybrid config."""
    out = tmp_path_factory.mktemp("bench_tpl")
    configs = default_configs(quick=True, hybrid_params=_params("shipped/hybrid_best_tpl.toml"))
    report = run_models_benchmark(
        out_dir=out,
        quick=True,
        data=ProtocolData.quick(data_dir=data_dir),
        configs=configs,
        rpeaks=("annotated",),
        n_bootstrap=0,
    )
    return report, out


@pytest.mark.slow
def test_template_config_gives_every_model_the_template_columns(tpl_run) -> None:
    report, out = tpl_run
    assert list(report["models"]) == list(BENCH_MODELS)
    assert report["inputs"]["label"] == TPL_LABEL and report["inputs"]["template_features"]
    assert report["inputs"]["rr_columns"][-1] == "tpl_fill"
    for name, m in report["models"].items():
        assert m["inputs"] == TPL_LABEL, name
        assert json.loads((out / name / "metrics.json").read_text())["inputs"] == TPL_LABEL
        # what the trained model actually reads, not only what the report says
        assert _columns_read(out / name / "model") in (32, None), name
    for name in HYBRID_LIKE:
        assert report["configs"][name]["model"]["params"]["template_features"] is True
    md = (out / "models.md").read_text()
    assert f"the beat windows and {TPL_LABEL}" in md


def test_rr_only_config_keeps_13_columns(tmp_path, data_dir) -> None:
    params = _params("experiments/hybrid_best.toml")
    for quick in (False, True):
        configs = default_configs(quick=quick, hybrid_params=params)
        assert all("template_features" not in c.model.params for c in configs.values())
    configs = default_configs(quick=True, hybrid_params=params)
    data = ProtocolData.quick(data_dir=data_dir)
    assert resolve_inputs(data, configs, BENCH_MODELS) is data
    report = run_models_benchmark(
        ["cnn", "decision_tree"],
        out_dir=tmp_path,
        data=data,
        configs=configs,
        rpeaks=("annotated",),
        n_bootstrap=0,
    )
    assert report["inputs"]["label"] == "13 RR columns"
    assert not report["inputs"]["template_features"]
    assert len(report["inputs"]["rr_columns"]) == 13
    for name in ("cnn", "decision_tree"):
        assert report["models"][name]["inputs"] == "13 RR columns"
        assert _columns_read(tmp_path / name / "model") == 13


def test_template_switch_overrides_the_hybrid_config() -> None:
    tpl, rr = _params("shipped/hybrid_best_tpl.toml"), _params("experiments/hybrid_best.toml")
    off = default_configs(hybrid_params=tpl, template_features=False)
    on = default_configs(hybrid_params=rr, template_features=True)
    for name in HYBRID_LIKE:
        assert off[name].model.template_features is False
        assert on[name].model.template_features is True
        assert {k: v for k, v in on[name].model.params.items() if k != "template_features"} == {
            k: v for k, v in off[name].model.params.items() if k != "template_features"
        }
    for name in ("cnn", "lstm", "gru", "transformer"):  # the baselines have no such parameter
        assert on[name] == off[name]
    data = ProtocolData()
    assert resolve_inputs(data, on, ["cnn"]).template_features
    assert not resolve_inputs(data, off, ["cnn"]).template_features


def test_template_columns_for_a_hybrid_that_does_not_read_them_are_refused() -> None:
    rr_only = default_configs(hybrid_params=_params("experiments/hybrid_best.toml"))
    forced = ProtocolData(template_features=True)
    with pytest.raises(ValueError, match="hybrid would take them for RR columns"):
        resolve_inputs(forced, rr_only, ["hybrid", "cnn"])
    assert resolve_inputs(forced, rr_only, ["cnn"]).template_features  # no hybrid in the run
    mixed = dict(default_configs(template_features=True))
    mixed["hybrid_ensemble"] = rr_only["hybrid_ensemble"]
    with pytest.raises(ValueError, match="read by hybrid"):
        resolve_inputs(ProtocolData(), mixed, ["hybrid", "hybrid_ensemble"])
