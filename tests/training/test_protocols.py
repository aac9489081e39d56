"""Evaluation protocols: no test patient reaches training or validation, leak labels, cv10 folds,
missed beats and false detections scored as errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from heartline.data.beat_set import BeatSet
from heartline.data.splits import DS1, DS2
from heartline.training.protocols import (
    LEAKY_LABEL,
    AlwaysNormal,
    ProtocolData,
    Split,
    compare_folds,
    cv10_splits,
    inter_patient_split,
    missed_beats,
    run_cv10,
    run_protocol,
    score_split,
)

torch.set_num_threads(1)


class Recorder(AlwaysNormal):
    """The naive model, remembering the beat sets passed to ``fit``."""

    calls: list[tuple[BeatSet, BeatSet]]

    def __init__(self) -> None:
        self.calls = []

    def fit(self, train, val, *, run_dir=None, seed=0):  # type: ignore[override]
        self.calls.append((train, val))


def _trained_records(beats: BeatSet) -> set[str]:
    """Records whose labels are visible to the model (labels -1 carry no loss)."""
    return set(beats.record[beats.labels >= 0].tolist())


def test_inter_patient_full_protocol_never_trains_or_validates_on_ds2(data_dir) -> None:
    rec = Recorder()
    _model, res = run_protocol(
        lambda: rec, "inter-patient", data=ProtocolData(data_dir=data_dir), n_bootstrap=0
    )
    ((train, val),) = rec.calls
    assert set(train.records) | set(val.records) <= set(DS1)
    assert not (set(train.records) | set(val.records)) & set(DS2)
    assert not set(train.records) & set(val.records)
    r = res["annotated"]
    assert set(r.records.tolist()) == set(DS2) and r.protocol == "inter-patient" and not r.leaky
    # always-N: accuracy is the N share of DS2, SVEB/VEB sensitivity 0
    assert r.metrics.accuracy == pytest.approx(np.mean(r.y_true == 0))
    assert r.metrics.sveb_se == 0 and r.metrics.veb_se == 0


def test_inter_patient_rejects_ds2_records_in_training() -> None:
    with pytest.raises(ValueError, match="outside their set"):
        inter_patient_split(
            ProtocolData(train_records=("100",), val_records=("101",), test_records=("232",))
        )
    with pytest.raises(ValueError, match="share records"):
        inter_patient_split(
            ProtocolData(train_records=("101",), val_records=("101",), test_records=("232",))
        )


def test_intra_patient_is_labelled_leaky_and_splits_beats(data_dir) -> None:
    rec = Recorder()
    data = ProtocolData.quick(data_dir=data_dir)
    _, res = run_protocol(lambda: rec, "intra-patient", data=data, n_bootstrap=0)
    ((train, val),) = rec.calls
    r = res["annotated"]
    assert r.leaky and r.label == LEAKY_LABEL and r.to_dict()["protocol_label"] == LEAKY_LABEL
    tr, va = train.labels >= 0, val.labels >= 0
    assert not (tr & va).any()
    # the scored test beats are neither training nor validation beats, and about 10 %
    n = len(train)
    assert r.metrics.n_test_beats == pytest.approx(0.1 * n, abs=2)
    assert tr.sum() == pytest.approx(0.8 * n, abs=2)


def test_cv10_folds_are_record_disjoint_and_cover_every_record(data_dir) -> None:
    data = ProtocolData(data_dir=data_dir)
    splits = cv10_splits(data)
    assert len(splits) == 10
    tested = [r for s in splits for r in s.test_records]
    assert sorted(tested) == sorted(DS1 + DS2)
    for s in splits:
        tr, va, te = set(s.train_records), set(s.val_records), set(s.test_records)
        assert not (tr & va or tr & te or va & te)
        assert set(s.train.records) == tr and set(s.val.records) == va and set(s.test.records) == te


def test_cv10_models_never_see_their_test_fold(data_dir) -> None:
    data = ProtocolData.quick(data_dir=data_dir)
    recorders: list[Recorder] = []

    def factory() -> Recorder:
        recorders.append(Recorder())
        return recorders[-1]

    splits = cv10_splits(data, n_folds=3)
    res = run_cv10({"hybrid": factory, "always_n": AlwaysNormal}, splits=splits)
    assert len(recorders) == 3
    for rec, split in zip(recorders, splits, strict=True):
        ((train, val),) = rec.calls
        assert not (_trained_records(train) | _trained_records(val)) & set(split.test_records)
    comp = compare_folds(res, reference="hybrid")
    entry = comp["comparisons"]["always_n"]["macro_f1"]
    assert entry["n_folds"] == 3 and entry["reference_mean"] == pytest.approx(entry["other_mean"])
    with pytest.raises(ValueError, match="reference"):
        compare_folds(res, reference="svm")


def _beats(sample_idx, labels, record="r") -> BeatSet:
    n = len(sample_idx)
    return BeatSet(
        np.zeros((n, 1, 8), np.float32),
        np.zeros((n, 1), np.float32),
        ("rr",),
        np.asarray(labels, np.int64),
        np.full(n, record),
        np.asarray(sample_idx, np.int64),
        360.0,
        ("MLII",),
    )


def test_missed_beats_and_false_detections_count_as_errors() -> None:
    ann = _beats([100, 400, 700, 1000], [0, 2, 0, 1])
    det = _beats([102, 398, 1003, 1500], [0, 2, 1, -1])  # 700 (N) missed, 1500 false
    missed, missed_rec = missed_beats(det, ann)
    assert missed.tolist() == [0] and missed_rec.tolist() == ["r"]
    split = Split(
        "inter-patient",
        ann,
        ann,
        det,
        ("a",),
        ("b",),
        ("r",),
        rpeaks="detected",
        missed_labels=missed,
        missed_records=missed_rec,
    )
    proba = np.eye(5)[[0, 2, 1, 2]]  # perfect on matched beats; the false detection called V
    m, _y, *_ = score_split(split, proba, n_bootstrap=0)
    assert m.n_test_beats == 4 and m.n_unmatched == 1
    assert m.accuracy == pytest.approx(3 / 4)  # the missed N beat is an error
    assert m.veb_se == 1.0 and m.veb_ppv == pytest.approx(
        1 / 2
    )  # the false detection is a V false positive
    ann_split = dataclasses.replace(
        split, test=ann, missed_labels=np.zeros(0, np.int64), missed_records=np.zeros(0, str)
    )
    m2, *_ = score_split(ann_split, np.eye(5)[[0, 2, 0, 1]], n_bootstrap=0)
    assert m2.accuracy == 1.0


def test_missed_v_beat_is_a_veb_false_negative() -> None:
    ann = _beats([100, 400], [0, 2])
    det = _beats([100], [0])
    missed, rec = missed_beats(det, ann)
    split = Split(
        "inter-patient",
        ann,
        ann,
        det,
        ("a",),
        ("b",),
        ("r",),
        rpeaks="detected",
        missed_labels=missed,
        missed_records=rec,
    )
    m, *_ = score_split(split, np.eye(5)[[0]], n_bootstrap=0)
    assert m.veb_se == 0.0 and m.classes["V"].support == 1


def test_unknown_protocol_and_rpeaks_are_rejected() -> None:
    with pytest.raises(ValueError, match="valid"):
        run_protocol(AlwaysNormal, "leave-one-out")
    with pytest.raises(ValueError, match="rpeaks"):
        inter_patient_split(rpeaks="guessed")
