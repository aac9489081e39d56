"""Experiment configs: defaults, TOML round trip, unknown keys and bad values are errors."""

from __future__ import annotations

import pytest

from heartline.training.config import (
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)


def test_defaults_follow_the_brief() -> None:
    t = TrainConfig()
    assert (t.lr, t.batch_size, t.dropout, t.weight_decay, t.patience) == (1e-3, 64, 0.3, 1e-4, 10)
    assert (
        t.monitor == "val_macro_f1" and t.imbalance == "weighted_loss" and t.time_budget_s is None
    )


def test_toml_round_trip(tmp_path) -> None:
    cfg = ExperimentConfig(
        name="hybrid-k4",
        model=ModelConfig(
            "hybrid", {"context_k": 4, "early_alarm": True, "branches": {"qrs": [1, 1]}}
        ),
        train=TrainConfig(
            lr=3e-3, max_epochs=7, time_budget_s=540.0, imbalance="weighted_sampling", seed=3
        ),
    )
    path = save_config(cfg, tmp_path / "c.toml")
    assert 'name = "hybrid-k4"' in path.read_text()
    back = load_config(path)
    assert back == cfg
    assert back.data.leads == (0, 1)  # lists come back as tuples


def test_none_values_are_left_out_and_restored(tmp_path) -> None:
    cfg = ExperimentConfig(name="x", model=ModelConfig("cnn"))
    assert "time_budget_s" not in config_to_dict(cfg)["train"]
    assert load_config(save_config(cfg, tmp_path / "c.toml")).train.time_budget_s is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"nmae": "x"}, r"unknown key\(s\) \['nmae'\].*valid keys"),
        ({"train": {"learning_rate": 0.1}}, r"unknown key\(s\) \['learning_rate'\] in \[train\]"),
        ({"data": {"lead": [0]}}, r"\[data\]"),
        ({"model": {"name": "hybrid", "params": {"kontext": 3}}}, "unknown parameter"),
        ({"model": {"name": "nope"}}, "unknown model 'nope'"),
        ({"train": {"imbalance": "smote"}}, "imbalance must be one of"),
        ({"train": {"lr": -1.0}}, "train.lr"),
        ({"train": {"monitor": "accuracy"}}, "monitor must be one of"),
    ],
)
def test_invalid_configs_raise_value_error(data, match) -> None:
    with pytest.raises(ValueError, match=match):
        config_from_dict(data)


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"train\.batch_size"):
        config_from_dict({"train": {"batch_size": "64"}})
    with pytest.raises(TypeError, match=r"train\.max_epochs"):
        config_from_dict({"train": {"max_epochs": 2.5}})


def test_load_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nbogus = 1\n")
    with pytest.raises(ValueError, match=r"bad\.toml"):
        load_config(path)


# ---------------------------------------------------------------------------------------------
# Every shipped and experiment TOML loads to the values it states (pydantic configs)
# ---------------------------------------------------------------------------------------------

import dataclasses  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

from heartline.training.config import DataConfig  # noqa: E402

_ROOT = Path(__file__).resolve().parents[2]
_TOMLS = [
    *sorted((_ROOT / "configs").rglob("*.toml")),
    _ROOT / "src" / "heartline" / "assets" / "models" / "hybrid.toml",
]


def test_configs_are_split_into_shipped_and_experiments() -> None:
    shipped = sorted(p.name for p in (_ROOT / "configs" / "shipped").glob("*.toml"))
    assert "hybrid_best_tpl.toml" in shipped
    assert len(list((_ROOT / "configs" / "experiments").glob("*.toml"))) >= 10
    assert not list((_ROOT / "configs").glob("*.toml")), "configs/ holds only the two folders"


@pytest.mark.parametrize("path", _TOMLS, ids=lambda p: str(p.relative_to(_ROOT)))
def test_every_toml_loads_to_the_values_it_states(path: Path) -> None:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    cfg = load_config(path)
    assert cfg.name == raw["name"]
    defaults = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    for section, default in defaults.items():
        loaded = getattr(cfg, section)
        given = raw.get(section, {})
        for f in dataclasses.fields(default):
            value = getattr(loaded, f.name)
            if f.name in given:
                expected = given[f.name]
                assert value == (tuple(expected) if isinstance(expected, list) else expected)
                if isinstance(expected, int) and not isinstance(expected, bool):
                    # TOML integers stay integers where the field is an integer, else a float
                    assert type(value) is type(getattr(default, f.name) or value)
            else:
                assert value == getattr(default, f.name)


@pytest.mark.parametrize("path", _TOMLS, ids=lambda p: str(p.relative_to(_ROOT)))
def test_every_toml_round_trips(path: Path, tmp_path) -> None:
    cfg = load_config(path)
    assert load_config(save_config(cfg, tmp_path / path.name)) == cfg


@pytest.mark.parametrize("section", ["", "data", "model", "train"])
def test_unknown_key_names_the_key_the_section_and_the_file(section: str, tmp_path) -> None:
    text = (_ROOT / "configs" / "shipped" / "hybrid_best_tpl.toml").read_text(encoding="utf-8")
    if section:
        text = text.replace(f"[{section}]\n", f"[{section}]\nbogus_key = 1\n", 1)
    else:
        text = "bogus_key = 1\n" + text
    path = tmp_path / "typo.toml"
    path.write_text(text, encoding="utf-8")
    where = section or "top level"
    with pytest.raises(
        ValueError, match=rf"typo\.toml: unknown key\(s\) \['bogus_key'\] in \[{where}\]"
    ):
        load_config(path)


def test_configs_are_pydantic_dataclasses_forbidding_extra_keys() -> None:
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="must be > 0"):
        dataclasses.replace(TrainConfig(), lr=0.0)  # replace validates again
    assert dataclasses.replace(TrainConfig(), seed=3).seed == 3
