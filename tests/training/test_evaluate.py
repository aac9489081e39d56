"""Evaluation reports: metrics.json keys and values, report.md, plots, learning curve, ablations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from heartline.data.beat_set import BeatSet
from heartline.training.config import TrainConfig
from heartline.training.evaluate import (
    ABLATIONS,
    check_targets,
    learning_curve,
    per_record_table,
    run_ablations,
    select_ablations,
    write_evaluation,
)
from heartline.training.protocols import AlwaysNormal, Split, evaluate_on_split

torch.set_num_threads(1)


def synthetic(records=("a", "b", "c"), n=60, seed=0) -> BeatSet:
    """Classes 0..3 visible in the window shape and the RR features."""
    rng = np.random.default_rng(seed)
    total = n * len(records)
    labels = rng.choice(4, size=total, p=[0.6, 0.15, 0.15, 0.1]).astype(np.int64)
    t = np.linspace(-1, 1, 32, dtype=np.float32)
    w = 0.1 * rng.standard_normal((total, 2, 32)).astype(np.float32)
    for c in range(4):
        w[labels == c] += np.exp(-((t - (c - 1.5) / 2) ** 2) / 0.02).astype(np.float32)
    rr = (0.1 * rng.standard_normal((total, 3)) + labels[:, None] / 3.0).astype(np.float32)
    return BeatSet(
        w,
        rr,
        ("a", "b", "c"),
        labels,
        np.repeat(np.array(records), n),
        np.tile(np.arange(n) * 300, len(records)).astype(np.int64),
        360.0,
        ("L0", "L1"),
    )


TRAIN = synthetic(("t1", "t2", "t3", "t4"), seed=1)
VAL = synthetic(("v1",), seed=2)
TEST = synthetic(("x1", "x2"), seed=3)
SPLIT = Split("inter-patient", TRAIN, VAL, TEST, TRAIN.records, VAL.records, TEST.records)


class Oracle(AlwaysNormal):
    """Knows the answer except on record x2, where it calls every S beat N."""

    name = "oracle"

    def predict_proba(self, beats):
        y = np.maximum(beats.labels, 0)
        y = np.where((beats.record == "x2") & (y == 1), 0, y)
        return np.eye(5)[y]


def test_metrics_json_has_the_required_keys_and_fractions(tmp_path) -> None:
    res = evaluate_on_split(Oracle(), SPLIT, model_name="oracle", n_bootstrap=50)
    paths = write_evaluation(res, tmp_path)
    d = json.loads(paths["metrics"].read_text())
    assert d["protocol"] == "inter-patient" and d["model"] == "oracle"
    assert d["n_test_beats"] == len(TEST)
    for key in ("accuracy", "macro_f1", "kappa", "mcc"):
        assert 0 <= d[key] <= 1
    for c in ("N", "S", "V", "F"):
        assert set(d["classes"][c]) >= {"se", "ppv", "spec", "f1", "auc"}
    assert d["classes"]["V"]["se"] == 1.0
    n_s_x2 = int(np.sum((TEST.record == "x2") & (TEST.labels == 1)))
    n_s = int(np.sum(TEST.labels == 1))
    assert d["ec57"]["sveb"]["se"] == pytest.approx(1 - n_s_x2 / n_s)
    assert d["ec57"]["sveb"]["ppv"] == 1.0
    assert set(d["ci95"]) >= {"accuracy", "sveb_se", "veb_ppv"} and d["ci95_resampling"] == "record"
    # per-record table points at x2 for SVEB
    rows = {r["record"]: r for r in d["per_record"]}
    assert rows["x2"]["sveb_se"] == 0.0 and rows["x1"]["sveb_se"] == 1.0
    assert d["top_confusions"][0] == {
        "reference": "S",
        "predicted": "N",
        "count": n_s_x2,
        "fraction_of_reference": pytest.approx(n_s_x2 / n_s),
    }
    for name in ("confusion_matrix.png", "roc.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0


def test_report_says_which_target_is_missed_by_how_much(tmp_path) -> None:
    res = evaluate_on_split(Oracle(), SPLIT, model_name="oracle", n_bootstrap=0)
    checks = {t.key: t for t in check_targets(res)}
    assert checks["veb_se"].met and not checks["sveb_se"].met
    assert checks["sveb_se"].shortfall == pytest.approx(0.85 - res.metrics.sveb_se)
    write_evaluation(res, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "SVEB Se" in report and "points below 85.0 %" in report and "x2" in report
    assert "S -> N" in report


def test_intra_patient_report_is_labelled_leaky(tmp_path) -> None:
    import dataclasses

    res = evaluate_on_split(
        Oracle(),
        dataclasses.replace(SPLIT, protocol="intra-patient", leaky=True),
        model_name="oracle",
        n_bootstrap=0,
    )
    write_evaluation(res, tmp_path)
    d = json.loads((tmp_path / "metrics.json").read_text())
    assert d["leaky"] and "leaky" in d["protocol_label"]
    assert "LEAKY" in (tmp_path / "report.md").read_text()
    assert [t.key for t in check_targets(res)] == ["accuracy"] and check_targets(res)[
        0
    ].target == 0.995


def test_per_record_table_counts() -> None:
    res = evaluate_on_split(Oracle(), SPLIT, model_name="oracle", n_bootstrap=0)
    rows = per_record_table(res)
    assert [r["record"] for r in rows] == ["x1", "x2"]
    assert sum(r["veb_tp"] for r in rows) == int(np.sum(TEST.labels == 2))


SMALL = {"context_k": 2, "channels": 4, "feature_dim": 8, "lstm_hidden": 8}


def test_learning_curve_and_training_curve(tmp_path) -> None:
    from heartline.training.registry import get_model

    cfg = TrainConfig(max_epochs=1, batch_size=128, lr=5e-3)
    pts = learning_curve(
        lambda: get_model("hybrid", train=cfg, **SMALL), SPLIT, fractions=(0.25, 1.0)
    )
    assert [p["n_train_records"] for p in pts] == [1, 4]
    assert all(0 <= p["val_macro_f1"] <= 1 and 0 <= p["test_macro_f1"] <= 1 for p in pts)
    model = get_model("hybrid", train=cfg, **SMALL)
    model.fit(TRAIN, VAL)
    res = evaluate_on_split(model, SPLIT, model_name="hybrid", n_bootstrap=0)
    paths = write_evaluation(res, tmp_path, learning=pts)
    assert {"training_curve", "learning_curve"} <= set(paths)
    assert json.loads(paths["metrics"].read_text())["learning_curve"][1]["fraction"] == 1.0


def test_ablations_train_each_variant_and_report_unavailable_ones(tmp_path) -> None:
    rows = run_ablations(
        SPLIT,
        base_params=SMALL,
        base_train=TrainConfig(max_epochs=1, batch_size=128),
        score_test=True,
    )
    names = [r["name"] for r in rows]
    assert (
        names[0] == "base"
        and "rr off" in names
        and "context K=0" in names
        and "imbalance weighted_sampling" in names
    )
    fusion = next(r for r in rows if r["name"] == "fusion mean")
    rhythm = next(r for r in rows if r["name"] == "rhythm rr off")
    assert "val_macro_f1" in fusion and "val_macro_f1" in rhythm
    for r in rows:
        if "unavailable" not in r:
            assert 0 <= r["val_macro_f1"] <= 1 and "test_macro_f1" in r
    res = evaluate_on_split(Oracle(), SPLIT, model_name="oracle", n_bootstrap=0)
    write_evaluation(res, tmp_path, ablations=rows, split=SPLIT)
    assert "Ablations of the hybrid" in (tmp_path / "report.md").read_text()


def test_select_ablations_by_name_and_unknown_name() -> None:
    cfg = TrainConfig(max_epochs=1)
    chosen = select_ablations(SMALL, cfg, ["base", "fusion mean"])
    assert [a.name for a in chosen] == ["base", "fusion mean"]
    assert len(select_ablations(SMALL, cfg)) == len(ABLATIONS(SMALL, cfg))
    with pytest.raises(ValueError, match="valid"):
        select_ablations(SMALL, cfg, ["fusion median"])
