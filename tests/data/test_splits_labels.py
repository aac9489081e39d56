from __future__ import annotations

import collections

import numpy as np
import pytest

from heartline.data.aami import AAMI_CLASSES, aami_class, aami_labels
from heartline.data.splits import (
    ALL_RECORDS,
    DS1,
    DS2,
    PACED,
    grouped_kfold_records,
    intra_patient_split,
    validation_records,
)
from heartline.io import read_annotations

PUBLISHED = {
    "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
    "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
}


def test_inter_patient_split_is_disjoint_and_complete():
    assert len(DS1) == len(DS2) == 22
    assert not set(DS1) & set(DS2)
    assert not (set(DS1) | set(DS2)) & set(PACED)
    assert len(ALL_RECORDS) == 48


def test_validation_split_stays_inside_ds1():
    for seed in (None, 0, 1, 2):
        train, val = validation_records(seed=seed)
        assert not set(train) & set(val)
        assert set(train) | set(val) == set(DS1)
        assert not set(val) & set(DS2)


def test_grouped_kfold_puts_each_record_in_one_test_fold():
    folds = grouped_kfold_records(DS1 + DS2, n_folds=10, seed=3)
    tests = [r for _, test in folds for r in test]
    assert sorted(tests) == sorted(DS1 + DS2)
    for train, test in folds:
        assert not set(train) & set(test)


def test_intra_patient_split_is_labelled_leaky():
    s = intra_patient_split(1000, seed=0)
    assert s.leaky and "leaky" in s.description
    all_idx = np.concatenate([s.train_idx, s.val_idx, s.test_idx])
    assert sorted(all_idx.tolist()) == list(range(1000))


def test_aami_mapping_rejects_non_beats():
    assert aami_class("j") == "N" and aami_class("J") == "S" and aami_class("f") == "Q"
    with pytest.raises(ValueError, match="not a beat symbol"):
        aami_class("+")


@pytest.mark.parametrize("split", ["DS1", "DS2"])
def test_class_counts_match_published_table(mitdb_dir, split):
    records = DS1 if split == "DS1" else DS2
    counts: collections.Counter[str] = collections.Counter()
    for rec in records:
        beats = read_annotations(mitdb_dir / rec).beats()
        counts.update(AAMI_CLASSES[i] for i in aami_labels(beats.symbol))
    assert dict(counts) == PUBLISHED[split]
