"""CinC 2017 index, reader, folds and the fixed split."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.data.cinc2017 import (
    cinc2017_folds,
    cinc2017_holdout,
    load_cinc2017_index,
    read_cinc2017,
)
from heartline.errors import DataError


@pytest.fixture(scope="module")
def index(cinc_dir):
    return load_cinc2017_index(data_dir=cinc_dir.parent)


def test_index_has_every_record_and_the_documented_counts(index):
    assert len(index) == 5543
    assert list(index.columns) == ["record", "label", "n_samples", "fs"]
    assert index["label"].value_counts().to_dict() == {"N": 3299, "O": 1570, "A": 493, "~": 181}
    assert (index["fs"] == 300.0).all()
    assert index["n_samples"].between(9 * 300 - 300, 61 * 300).all()
    assert index["record"].is_unique


def test_read_returns_millivolts_at_300_hz(cinc_dir, index):
    x, fs = read_cinc2017("A00002", data_dir=cinc_dir.parent)
    assert fs == 300.0 and x.dtype == np.float32
    assert x.size == int(index.loc[index.record == "A00002", "n_samples"].iloc[0])
    assert 0.2 < np.percentile(x, 99.5) - np.percentile(x, 0.5) < 10  # mV, not adu


def test_read_unknown_record_names_it(cinc_dir):
    with pytest.raises(DataError, match="Z99999"):
        read_cinc2017("Z99999", data_dir=cinc_dir.parent)


def test_folds_partition_and_are_stratified(index):
    labels = index["label"].to_numpy()
    folds = cinc2017_folds(labels, n_splits=5, seed=0)
    assert folds.shape == labels.shape and set(np.unique(folds)) == set(range(5))
    for c in "NAO~":
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.array_equal(folds, cinc2017_folds(labels, n_splits=5, seed=0))
    assert not np.array_equal(folds, cinc2017_folds(labels, n_splits=5, seed=1))


def test_holdout_no_record_crosses_and_each_class_is_split(index):
    labels = index["label"].to_numpy()
    test = cinc2017_holdout(labels, test_fraction=0.2, seed=0)
    train_records = set(index.record[~test])
    test_records = set(index.record[test])
    assert not train_records & test_records
    assert len(train_records) + len(test_records) == len(index)
    for c in "NAO~":
        frac = test[labels == c].mean()
        assert abs(frac - 0.2) < 0.01
    assert np.array_equal(test, cinc2017_holdout(labels, test_fraction=0.2, seed=0))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cinc2017_folds(["N", "A"] * 10, n_splits=1), "n_splits"),
        (lambda: cinc2017_holdout(["N", "A"] * 10, test_fraction=1.5), "test_fraction"),
        (lambda: cinc2017_folds([]), "non-empty"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
