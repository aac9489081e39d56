"""Optuna search: seeded, bounded, scored on DS1 validation records only, writes a loadable config."""

from __future__ import annotations

import json

import pytest
import torch

from heartline.data.splits import DS2
from heartline.training.config import TrainConfig, load_config
from heartline.training.deep import TorchBeatClassifier
from heartline.training.protocols import ProtocolData
from heartline.training.tune import tune_hybrid

torch.set_num_threads(1)

SMALL = {"channels": 4, "feature_dim": 8, "lstm_hidden": 8}
SPACE = {
    "train.lr": ("float", 1e-3, 5e-3, True),
    "context_k": ("categorical", (0, 2)),
    "train.imbalance": ("categorical", ("weighted_loss", "weighted_sampling")),
}


def test_two_trials_write_study_and_best_config_without_touching_ds2(
    tmp_path, data_dir, monkeypatch
) -> None:
    seen: list[set[str]] = []
    original = TorchBeatClassifier.fit

    def spy(self, train, val, **kw):
        seen.append(set(train.records) | set(val.records))
        return original(self, train, val, **kw)

    monkeypatch.setattr(TorchBeatClassifier, "fit", spy)
    data = ProtocolData(data_dir=data_dir, train_records=("106", "209"), val_records=("223",))
    res = tune_hybrid(
        out_dir=tmp_path,
        n_trials=2,
        seed=3,
        data=data,
        base_train=TrainConfig(max_epochs=1, batch_size=256),
        base_params=SMALL,
        space=SPACE,
    )
    assert res.n_trials == 2 and len(seen) == 2
    assert all(not s & set(DS2) for s in seen)
    study = json.loads((tmp_path / "study.json").read_text())
    assert [t["state"] for t in study["trials"]] == ["COMPLETE", "COMPLETE"]
    assert "223" in study["scored_on"]
    best = load_config(tmp_path / "best.toml")
    assert best.model.name == "hybrid" and best.model.params["context_k"] in (0, 2)
    assert best.model.params["channels"] == 4
    assert max(t["value"] for t in study["trials"]) == pytest.approx(res.best_value)
    assert (tmp_path / "trials.csv").read_text().count("\n") == 3


def test_tuning_refuses_ds2_records(tmp_path) -> None:
    with pytest.raises(ValueError, match="DS1"):
        tune_hybrid(
            out_dir=tmp_path,
            n_trials=1,
            data=ProtocolData(train_records=("100",), val_records=("101",)),
        )


def test_template_config_trials_get_the_template_columns(tmp_path, data_dir, monkeypatch) -> None:
    """A hybrid with ``template_features = True`` is tuned on beats that carry them (32 columns),
    on the DS1 validation records only, as before."""
    seen: list[tuple[int, int, tuple[str, ...]]] = []
    original = TorchBeatClassifier.fit

    def spy(self, train, val, **kw):
        seen.append((train.rr.shape[1], val.rr.shape[1], tuple(val.records)))
        return original(self, train, val, **kw)

    monkeypatch.setattr(TorchBeatClassifier, "fit", spy)
    data = ProtocolData(data_dir=data_dir, train_records=("106", "209"), val_records=("223",))
    res = tune_hybrid(
        out_dir=tmp_path,
        n_trials=1,
        data=data,
        base_train=TrainConfig(max_epochs=1, batch_size=256),
        base_params={**SMALL, "template_features": True},
        space={"train.lr": SPACE["train.lr"]},
    )
    assert seen == [(32, 32, ("223",))]
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["inputs"] == "13 RR columns + 19 template columns"
    assert study["trials"][0]["state"] == "COMPLETE"
    assert study["trials"][0]["inputs"] == study["inputs"]
    assert load_config(tmp_path / "best.toml").model.template_features
    assert res.best_config.model.template_features
