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
