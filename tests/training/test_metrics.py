"""evaluate_predictions against scikit-learn, and a hand-computed EC57 case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from heartline.training.metrics import ec57_counts, evaluate_predictions


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.choice(5, size=n, p=[0.7, 0.1, 0.12, 0.06, 0.02])
    logits = rng.normal(size=(n, 5))
    logits[np.arange(n), y] += 1.5  # informative but imperfect
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    records = np.array([f"r{i % 20}" for i in range(n)])
    return y, prob, records


def test_against_sklearn(case):
    y, prob, _ = case
    pred = prob.argmax(1)
    m = evaluate_predictions(y, prob, n_bootstrap=0)
    assert m.n_test_beats == y.size
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.kappa == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m.mcc == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m.macro_f1 == pytest.approx(skm.f1_score(y, pred, labels=[0, 1, 2, 3], average="macro"))
    f1 = skm.f1_score(y, pred, labels=range(5), average=None)
    se = skm.recall_score(y, pred, labels=range(5), average=None)
    ppv = skm.precision_score(y, pred, labels=range(5), average=None)
    cm = skm.confusion_matrix(y, pred, labels=range(5))
    np.testing.assert_array_equal(m.confusion_matrix, cm)
    for i, c in enumerate("NSVFQ"):
        cls = m.classes[c]
        assert (
            cls.f1 == pytest.approx(f1[i])
            and cls.se == pytest.approx(se[i])
            and cls.ppv == pytest.approx(ppv[i])
        )
        assert cls.auc == pytest.approx(skm.roc_auc_score(y == i, prob[:, i]))
        tn = cm.sum() - cm[i].sum() - cm[:, i].sum() + cm[i, i]
        assert cls.spec == pytest.approx(tn / (cm.sum() - cm[i].sum()))


def test_ec57_hand_computed():
    # rows: reference N S V F Q; columns: predicted n s v f q
    cm = np.array(
        [
            [100, 4, 3, 2, 0],  # N
            [6, 20, 1, 0, 1],  # S
            [2, 5, 30, 3, 0],  # V
            [1, 2, 7, 9, 0],  # F
            [0, 1, 1, 0, 2],  # Q
        ]
    )
    y_true = np.repeat(np.repeat(np.arange(5), 5), cm.ravel())
    y_pred = np.tile(np.arange(5), 5).repeat(cm.ravel())
    m = evaluate_predictions(y_true, np.eye(5)[y_pred], n_bootstrap=0)
    # VEB: TP=Vv=30; FN=Vn+Vs+Vf+Vq=2+5+3+0=10; FP=Nv+Sv=3+1=4 (Fv=7 and Qv=1 not counted)
    assert m.veb_se == pytest.approx(30 / 40)
    assert m.veb_ppv == pytest.approx(30 / 34)
    # SVEB: TP=Ss=20; FN=Sn+Sv+Sf+Sq=6+1+0+1=8; FP=Ns+Vs+Fs=4+5+2=11 (Qs=1 not counted)
    assert m.sveb_se == pytest.approx(20 / 28)
    assert m.sveb_ppv == pytest.approx(20 / 31)
    assert ec57_counts(cm) == {
        "veb": {"tp": 30, "fn": 10, "fp": 4},
        "sveb": {"tp": 20, "fn": 8, "fp": 11},
    }
    d = m.to_dict()
    assert d["ec57"]["veb"]["se"] == pytest.approx(0.75)
    assert d["confusion_matrix"][2] == [2, 5, 30, 3, 0]


def test_unmatched_detections_are_ec57_false_positives():
    y = np.array([2, 2, 0, -1, -1])
    pred = np.array([2, 2, 0, 2, 0])
    m = evaluate_predictions(y, np.eye(5)[pred], n_bootstrap=0)
    assert m.n_test_beats == 3 and m.n_unmatched == 2
    assert m.accuracy == 1.0
    assert m.veb_se == 1.0 and m.veb_ppv == pytest.approx(2 / 3)


def test_absent_class_auc_is_nan_and_to_dict_is_json(case):
    import json

    y, prob, records = case
    y = np.where(y == 4, 0, y)  # no Q beats
    m = evaluate_predictions(y, prob, records=records, n_bootstrap=50)
    assert np.isnan(m.classes["Q"].auc)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["classes"]["Q"]["auc"] is None
    assert set(d["classes"]) == set("NSVFQ")
    assert set(d["classes"]["N"]) >= {"se", "ppv", "spec", "f1", "auc"}


def test_bootstrap_by_record(case):
    y, prob, records = case
    m = evaluate_predictions(y, prob, records=records, n_bootstrap=200, seed=1)
    assert m.ci_unit == "record"
    for name in ("accuracy", "macro_f1", "kappa", "mcc", "veb_se", "sveb_ppv"):
        lo, hi = m.ci95[name]
        assert lo <= getattr(m, name) <= hi and lo < hi
    again = evaluate_predictions(y, prob, records=records, n_bootstrap=200, seed=1)
    assert again.ci95 == m.ci95
    # records that differ a lot widen the interval compared with resampling beats
    y2, p2 = y.copy(), prob.copy()
    bad = np.isin(records, ["r0", "r1", "r2", "r3"])
    p2[bad] = np.roll(p2[bad], 1, axis=1)  # these patients are all wrong
    by_rec = evaluate_predictions(y2, p2, records=records, n_bootstrap=300)
    by_beat = evaluate_predictions(y2, p2, n_bootstrap=300)
    assert np.diff(by_rec.ci95["accuracy"]) > np.diff(by_beat.ci95["accuracy"])


def test_validation():
    with pytest.raises(ValueError, match="y_prob"):
        evaluate_predictions(np.array([0, 1]), np.ones((2, 4)))
    with pytest.raises(ValueError, match="y_true"):
        evaluate_predictions(np.array([0, 7]), np.ones((2, 5)))
    with pytest.raises(ValueError, match="records"):
        evaluate_predictions(np.array([0, 1]), np.ones((2, 5)), records=np.array(["a"]))
