"""Training loop and run directories: learning, early stopping, budget, seeding, artefacts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from heartline.data.beat_set import BeatSet
from heartline.data.synthetic import synthetic_beats
from heartline.models.deep import RecurrentNet
from heartline.models.hybrid import HybridNet
from heartline.training.config import ExperimentConfig, ModelConfig, TrainConfig, load_config
from heartline.training.rundir import new_run_dir, write_metrics
from heartline.training.trainer import class_weights, macro_f1, predict_logits, train_net

torch.set_num_threads(1)


def net(**kw) -> HybridNet:
    torch.manual_seed(0)
    return HybridNet(
        n_leads=2,
        window_len=32,
        n_rr=3,
        context_k=2,
        channels=4,
        feature_dim=16,
        lstm_hidden=16,
        dropout=0.1,
        **kw,
    )


TRAIN = synthetic_beats(60, ("a", "b", "c"), seed=10)
VAL = synthetic_beats(40, ("d", "e"), seed=11)


def test_training_learns_and_writes_history(tmp_path) -> None:
    cfg = TrainConfig(max_epochs=6, batch_size=32, lr=5e-3)
    n = net()
    f1_before = macro_f1(VAL.labels, predict_logits(n, VAL).argmax(1), n_classes=5)
    res = train_net(n, TRAIN, VAL, cfg, run_dir=tmp_path)
    assert len(res.history) == res.history[-1].epoch <= 6
    assert res.history[-1].train_loss < res.history[0].train_loss
    assert res.best_score >= 0.9 > f1_before
    # the restored weights are those of the best epoch
    f1_after = macro_f1(VAL.labels, predict_logits(n, VAL).argmax(1), n_classes=5)
    assert f1_after == pytest.approx(res.best_score)
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["best_epoch"] == res.best_epoch and len(saved["history"]) == len(res.history)
    assert (tmp_path / "training_curve.png").stat().st_size > 1000


def test_same_seed_same_history() -> None:
    cfg = TrainConfig(max_epochs=2, batch_size=32, seed=7)
    a = train_net(net(), TRAIN, VAL, cfg)
    b = train_net(net(), TRAIN, VAL, cfg)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]


def test_early_stopping_and_time_budget() -> None:
    # a network without batch norm and a negligible lr: nothing changes after epoch 1, so
    # patience 2 stops at epoch 3
    torch.manual_seed(0)
    lstm = RecurrentNet(n_leads=2, window_len=32, n_rr=3, hidden=8)
    res = train_net(
        lstm, TRAIN, VAL, TrainConfig(max_epochs=20, lr=1e-12, patience=2, monitor="val_loss")
    )
    assert res.stop_reason == "early_stopping" and len(res.history) == 3 and res.best_epoch == 1
    res = train_net(net(), TRAIN, VAL, TrainConfig(max_epochs=50, time_budget_s=1e-3))
    assert res.stop_reason == "time_budget" and len(res.history) == 1


@pytest.mark.parametrize("imbalance", ["weighted_sampling", "none"])
def test_other_imbalance_modes_and_unlabelled_context(imbalance: str) -> None:
    labels = TRAIN.labels.copy()
    labels[::7] = -1  # unknown beats (false detections) stay as context, carry no loss
    train = BeatSet(
        TRAIN.windows,
        TRAIN.rr,
        TRAIN.rr_names,
        labels,
        TRAIN.record,
        TRAIN.sample_idx,
        TRAIN.fs,
        TRAIN.lead_names,
    )
    res = train_net(
        net(early_alarm=True, consistency_weight=0.1),
        train,
        VAL,
        TrainConfig(
            max_epochs=2,
            imbalance=imbalance,
            chunk_len=1 if imbalance == "none" else 8,
            augment=imbalance == "none",
        ),
    )
    assert np.isfinite(res.history[-1].train_loss)


def test_input_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="network expects"):
        train_net(net(), synthetic_beats(10, n_rr=4), VAL, TrainConfig(max_epochs=1))


def test_class_weights_and_macro_f1() -> None:
    w = class_weights(np.array([0] * 90 + [1] * 10 + [-1] * 5), n_classes=3)
    assert w[2] == 0 and w[1] / w[0] == pytest.approx(9.0)
    assert np.dot(w[:2], [90, 10]) / 100 == pytest.approx(1.0)
    w = class_weights(np.array([0] * 1000 + [1]), n_classes=2, max_weight=50)
    assert w[1] / w[0] == pytest.approx(50.0)
    y = np.array([0, 0, 1, 2, -1])
    assert macro_f1(y, np.array([0, 0, 1, 2, 3]), n_classes=5) == 1.0


def test_run_dir_records_config_revision_seed_and_metrics(tmp_path) -> None:
    cfg = ExperimentConfig(name="my run:1", model=ModelConfig("cnn"), train=TrainConfig(seed=42))
    a = new_run_dir(tmp_path, cfg.name, config=cfg)
    b = new_run_dir(tmp_path, cfg.name, config=cfg)
    assert a != b and a.parent == tmp_path and ":" not in a.name
    info = json.loads((a / "run.json").read_text())
    assert info["seed"] == 42 and info["git_revision"] and "start_time" in info
    # what training results can depend on besides code, data and seed (torch is imported here)
    import torch

    plat = info["platform"]
    assert plat["torch"] == torch.__version__ and plat["numpy"] == np.__version__
    assert plat["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert plat["python"] and plat["machine"]
    assert load_config(a / "config.toml") == cfg
    write_metrics(a, {"accuracy": np.float64(0.5)})
    assert json.loads((a / "metrics.json").read_text()) == {"accuracy": 0.5}
    assert "end_time" in json.loads((a / "run.json").read_text())


def test_run_experiment_writes_a_complete_run_dir(tmp_path, monkeypatch) -> None:
    import heartline.data.beat_dataset as beat_dataset
    from heartline.training.trainer import run_experiment

    def fake_build(records, **kwargs):
        return synthetic_beats(20, tuple(records), seed=len(records))

    monkeypatch.setattr(beat_dataset, "build_beat_set", fake_build)
    params = {"context_k": 2, "channels": 4, "feature_dim": 8, "lstm_hidden": 8}
    cfg = ExperimentConfig(
        name="tiny", model=ModelConfig("hybrid", params), train=TrainConfig(max_epochs=1)
    )
    run = run_experiment(cfg, out=tmp_path, n_bootstrap=0)
    for name in (
        "config.toml",
        "run.json",
        "history.json",
        "metrics.json",
        "model.onnx",
        "model.int8.onnx",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["onnx"]["fp32"]["max_abs_diff_vs_torch"] < 1e-4
    assert 0 <= metrics["test_ds2"]["ec57"]["accuracy"] <= 1
    assert set(json.loads((run / "run.json").read_text())["val_records"]).isdisjoint(
        json.loads((run / "run.json").read_text())["train_records"]
    )


def test_weight_average_tracks_the_weights_and_is_what_training_returns() -> None:
    from heartline.training.trainer import _WeightAverage

    a, b = net(), net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    avg = _WeightAverage(a, decay=0.5)
    for _ in range(200):  # warm-up decay min(0.5, (1+n)/(10+n)) -> 0.5: converges to b
        avg.update(b)
    for pa, pb in zip(avg.module.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5)
    assert not any(p.requires_grad for p in avg.module.parameters())
    # batch-norm running statistics are averaged too, the step counter copied
    bn = dict(avg.module.named_buffers())
    assert any(k.endswith("num_batches_tracked") for k in bn)

    cfg = TrainConfig(max_epochs=6, batch_size=32, lr=5e-3, ema_decay=0.5)
    n = net()
    res = train_net(n, TRAIN, VAL, cfg)
    assert res.best_score >= 0.8
    # the returned network is the averaged one that was scored
    f1 = macro_f1(VAL.labels, predict_logits(n, VAL).argmax(1), n_classes=5)
    assert f1 == pytest.approx(res.best_score)
    plain = net()
    train_net(plain, TRAIN, VAL, TrainConfig(max_epochs=6, batch_size=32, lr=5e-3))
    assert not torch.equal(next(plain.parameters()), next(n.parameters()))
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_fixed_epochs_without_validation_keeps_the_last_weights() -> None:
    empty = VAL.subset(np.zeros(len(VAL), dtype=bool))
    with pytest.raises(ValueError, match="early stopping needs validation"):
        train_net(net(), TRAIN, empty, TrainConfig(max_epochs=1))
    n = net()
    res = train_net(n, TRAIN, empty, TrainConfig(max_epochs=3, monitor="none", patience=1))
    assert len(res.history) == 3 and res.best_epoch == 3 and res.stop_reason == "max_epochs"
    assert all(np.isnan(h.val_loss) for h in res.history)
    # with validation beats they are scored for the history but never stop or select
    res = train_net(net(), TRAIN, VAL, TrainConfig(max_epochs=3, monitor="none", patience=1))
    assert res.best_epoch == 3 and all(np.isfinite(h.val_macro_f1) for h in res.history)


def test_refit_on_all_ds1_has_no_validation_records(tmp_path, monkeypatch) -> None:
    import heartline.data.beat_dataset as beat_dataset
    import heartline.data.splits as splits
    from heartline.training.config import DataConfig
    from heartline.training.trainer import run_experiment

    def fake_build(records, **kwargs):
        return synthetic_beats(20, tuple(records), seed=len(records))

    monkeypatch.setattr(beat_dataset, "build_beat_set", fake_build)
    monkeypatch.setattr(splits, "DS1", ("101", "106", "108"))
    params = {"context_k": 0, "channels": 4, "feature_dim": 8, "lstm_hidden": 8}
    with pytest.raises(ValueError, match='monitor = "none"'):
        ExperimentConfig(data=DataConfig(hold_out_validation=False))
    cfg = ExperimentConfig(
        name="refit",
        data=DataConfig(hold_out_validation=False),
        model=ModelConfig("hybrid", params),
        train=TrainConfig(max_epochs=2, monitor="none"),
    )
    run = run_experiment(cfg, out=tmp_path, evaluate_test=False)
    info = json.loads((run / "run.json").read_text())
    assert info["train_records"] == ["101", "106", "108"] and info["val_records"] == []
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and "validation" not in metrics
    assert metrics["onnx"]["checked_on"].startswith("training")
    assert metrics["onnx"]["fp32"]["max_abs_diff_vs_torch"] < 1e-4


def test_plateau_schedule_lowers_the_rate_after_epochs_without_improvement() -> None:
    # val_loss with lr 5e-2 on the synthetic beats stops improving within a few epochs
    cfg = TrainConfig(
        max_epochs=12,
        batch_size=32,
        lr=5e-2,
        monitor="val_loss",
        patience=12,
        lr_schedule="plateau",
        lr_factor=0.5,
        lr_patience=1,
        min_lr=5e-3,
    )
    res = train_net(net(), TRAIN, VAL, cfg)
    rates = [h.lr for h in res.history]
    losses = [h.val_loss for h in res.history]
    assert rates[0] == pytest.approx(5e-2)
    best = math.inf
    for i, loss in enumerate(losses[:-1]):
        improved = loss < best * (1 - 1e-4)
        best = min(best, loss)
        # lr_patience 1: an epoch that does not improve halves the rate for the next one
        expected = rates[i] if improved else max(rates[i] * 0.5, 5e-3)
        assert rates[i + 1] == pytest.approx(expected), (i, losses, rates)
    assert min(rates) < 5e-2  # the case above was exercised
    assert min(rates) >= 5e-3
    # the constant schedule keeps the rate
    const = train_net(net(), TRAIN, VAL, TrainConfig(max_epochs=3, batch_size=32, lr=5e-2))
    assert {h.lr for h in const.history} == {5e-2}
    # history carries the rate
    assert res.history_dicts()[0]["lr"] == pytest.approx(5e-2)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"lr_schedule": "cosine"}, "lr_schedule"),
        ({"lr_factor": 1.0}, "lr_factor"),
        ({"lr_patience": 0}, "lr_patience"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"lr_schedule": "plateau", "min_lr": 1.0}, "min_lr"),
        ({"lr_schedule": "plateau", "monitor": "none"}, "plateau"),
    ],
)
def test_schedule_settings_are_checked(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)
