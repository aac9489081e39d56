"""The stacked multimodal hybrid: cross-fitting that never touches the test (or validation) fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heartline.bench import multimodal as bench
from heartline.bench.multimodal import MultimodalBenchConfig, inner_fold_plan, run_multimodal_bench
from heartline.models.multimodal import MultimodalConfig
from heartline.training import multimodal as training
from heartline.training.multimodal import TrainSettings

torch.set_num_threads(1)


def _folds(n_per_fold: int = 12) -> np.ndarray:
    return np.repeat(np.arange(1, 11), n_per_fold)


@pytest.mark.parametrize("n_inner", [2, 4, 8])
@pytest.mark.parametrize(("test_fold", "val_fold"), [(1, 2), (10, 1), (5, 6)])
def test_inner_folds_partition_the_training_folds_only(
    n_inner: int, test_fold: int, val_fold: int
) -> None:
    sf = _folds()
    train = (sf != test_fold) & (sf != val_fold)
    plan = inner_fold_plan(sf, train, n_inner=n_inner)
    assert len(plan) == n_inner
    held_all = np.concatenate([h for h, _ in plan])
    # every training row is held out exactly once, no other row ever appears
    assert np.array_equal(np.sort(held_all), np.flatnonzero(train))
    for held, fit in plan:
        assert not np.isin(sf[held], [test_fold, val_fold]).any()
        assert not np.isin(sf[fit], [test_fold, val_fold]).any()
        assert np.intersect1d(held, fit).size == 0
        assert np.array_equal(np.sort(np.concatenate([held, fit])), np.flatnonzero(train))
        # whole strat_folds (patient-disjoint) on each side
        assert not set(sf[held]) & set(sf[fit])


def test_inner_fold_count_is_checked() -> None:
    sf = _folds()
    with pytest.raises(ValueError, match="inner folds need"):
        inner_fold_plan(sf, sf <= 3, n_inner=4)
    with pytest.raises(ValueError, match="inner folds need"):
        inner_fold_plan(sf, sf <= 8, n_inner=1)


def _spy_networks(monkeypatch: pytest.MonkeyPatch, seen: dict[str, list[np.ndarray]]) -> None:
    """Replace the networks by spies: row ids travel in ``ecg[:, 0, 0]``; outputs = a label leak."""

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rows: np.ndarray = np.empty(0)

    def fake_train(net, *, train, val, fs, settings, **_):
        net.rows = train[0][:, 0, 0].astype(int)
        seen["fit"].append(net.rows)
        seen["val"].append(val[0][:, 0, 0].astype(int))
        return net, {"epochs_run": 1}

    def fake_predict(net, ecg, meta, *, fs, settings, **_):
        rows = ecg[:, 0, 0].astype(int)
        seen["predicted"].append(rows)
        # a network that memorised its training rows: perfect on them, noise elsewhere
        rng = np.random.default_rng(int(rows.sum()))
        p = rng.uniform(size=(len(rows), 3))
        mine = np.isin(rows, net.rows)
        p[mine] = seen["y"][0][rows[mine]]
        return training.Prediction(
            probs=p, modality_weights=np.full((len(rows), 2), 0.5), age_y=None
        )

    monkeypatch.setattr(training, "build_network", lambda kind, *, config: Spy())
    monkeypatch.setattr(training, "train_network", fake_train)
    monkeypatch.setattr(training, "predict", fake_predict)


def test_stacked_head_never_sees_the_test_fold_and_gets_out_of_fold_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    sf = _folds(15)
    n = sf.size
    y = (rng.uniform(size=(n, 3)) < 0.3).astype(np.int64)
    ecg = np.zeros((n, 2, 50), dtype=np.float32)
    ecg[:, 0, 0] = np.arange(n)  # row ids
    seen: dict[str, list[np.ndarray]] = {"fit": [], "val": [], "predicted": [], "y": [y]}
    _spy_networks(monkeypatch, seen)
    heads: list[np.ndarray] = []
    real_fit = training.fit_gbm

    def spy_fit(x, yy, *, seed=0):
        heads.append(x)
        return real_fit(x, yy, seed=seed)

    monkeypatch.setattr(training, "fit_gbm", spy_fit)
    te, va = sf == 3, sf == 4
    tr = ~(te | va)
    inner = inner_fold_plan(sf, tr, n_inner=2)
    feats = rng.normal(size=(n, 4))
    pv, pt, w, info = bench._stacked_hybrid(
        fusion="attention", head_meta=True, inner=inner, tr=tr, va=va, te=te, ecg=ecg,
        meta=np.zeros((n, 11), dtype=np.float32), feats=feats, meta_values=rng.normal(size=(n, 5)),
        y=y, age_z=np.zeros(n), net_config=MultimodalConfig(n_leads=2, n_classes=3),
        settings=TrainSettings(), fs=100.0, seed=0,
    )  # fmt: skip
    test_rows, val_rows = np.flatnonzero(te), np.flatnonzero(va)
    # the networks train on training rows only and stop early on the validation fold
    for rows in seen["fit"]:
        assert not np.isin(rows, test_rows).any() and not np.isin(rows, val_rows).any()
    for rows in seen["val"]:
        assert np.array_equal(rows, val_rows)
    # the head is fitted on training rows only, one row each ...
    assert len(heads) == 1 and heads[0].shape == (tr.sum(), 3 + 4 + 5)
    # ... with network outputs from networks that did not train on them: the memorising spy
    # is perfect on its own rows, so in-sample outputs would equal the labels exactly
    logits = heads[0][:, :3]
    in_sample = np.where(y[tr] == 1, np.log(0.9999 / 0.0001), np.log(0.0001 / 0.9999))
    assert not np.allclose(logits, in_sample)
    assert pv.shape == (va.sum(), 3) and pt.shape == (te.sum(), 3) and w.shape == (te.sum(), 2)
    assert info["inner_folds"] == 2 and info["head_inputs"] == 3 + 4 + 5


def test_stacked_refuses_inner_folds_that_leave_the_training_rows() -> None:
    sf = _folds()
    te, va = sf == 1, sf == 2
    bad = inner_fold_plan(sf, ~va, n_inner=2)  # includes the test fold
    with pytest.raises(ValueError, match="partition the outer training rows"):
        bench._stacked_hybrid(
            fusion="ecg", head_meta=False, inner=bad, tr=~(te | va), va=va, te=te,
            ecg=np.zeros((sf.size, 1, 10), dtype=np.float32), meta=np.zeros((sf.size, 11)),
            feats=np.zeros((sf.size, 2)), meta_values=np.zeros((sf.size, 5)),
            y=np.zeros((sf.size, 2)), age_z=np.zeros(sf.size), net_config=None,
            settings=TrainSettings(), fs=100.0, seed=0,
        )  # fmt: skip


def test_quick_bench_runs_the_stacked_hybrid(tmp_path: Path, data_dir: Path) -> None:
    cfg = MultimodalBenchConfig(models=("gbm", "stacked"), max_records=150, folds=(1, 2),
                                n_boot=20, data_dir=str(data_dir), hybrid_epochs=1,
                                hybrid_patience=None, stack_inner=2)  # fmt: skip
    run_multimodal_bench(tmp_path, cfg, progress=False)
    js = json.loads((tmp_path / "multimodal.json").read_text())
    st = js["models"]["stacked"]
    assert 0 <= st["macro_auc"] <= 1 and len(st["fold_macro_auc"]) == 2
    for f in st["folds"]:
        held = [k for g in f["inner_held_out_folds"] for k in g]
        assert f["test_fold"] not in held and f["val_fold"] not in held
        assert sorted(held) == sorted(set(range(1, 11)) - {f["test_fold"], f["val_fold"]})
    # the modality attention comes from the networks
    assert set(st["modality_weights_by_class"]["NORM"]) == {"ecg", "metadata"}
    assert "stacked_vs_gbm" in js["comparisons"]
