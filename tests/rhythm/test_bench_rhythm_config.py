"""``RhythmBenchConfig.fit_config``: the training settings every network of a run shares."""

from __future__ import annotations

from heartline.bench.rhythm import RhythmBenchConfig
from heartline.training.rhythm import RhythmFitConfig


def test_fit_config_carries_the_run_settings_with_each_networks_epochs_and_seed() -> None:
    cfg = RhythmBenchConfig(
        batch_size=16, lr=1e-3, class_weight_power=0.25, window_s=20.0, train_crop_s=10.0,
        patience=3, epochs=9, seed=5,
    )  # fmt: skip
    assert cfg.fit_config(epochs=2, seed=7) == RhythmFitConfig(
        epochs=2, batch_size=16, lr=1e-3, class_weight_power=0.25, window_s=20.0,
        train_crop_s=10.0, patience=3, seed=7,
    )  # fmt: skip
    # the other fields keep RhythmFitConfig's defaults (weight decay, threads, augmentation)
    default = RhythmBenchConfig().fit_config(epochs=4, seed=0)
    assert (default.weight_decay, default.num_threads, default.augment) == (1e-3, 1, True)
