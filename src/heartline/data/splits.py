"""Evaluation splits as code.

* :data:`DS1` / :data:`DS2`: the inter-patient split of de Chazal et al. (2004); paced records
  (:data:`PACED`) are excluded. No record is in both.
* :func:`validation_records`: a patient-grouped validation split inside DS1 (for early stopping,
  thresholds and hyper-parameter search; DS2 is never touched for these).
* :func:`lopo_folds`: leave-one-patient-out folds (every DS1 patient once the test patient;
  model selection on DS1 alone, :mod:`heartline.training.lopo`).
* :func:`intra_patient_split`: the random beat-level split that most published papers use. The
  same patient appears in training and test, so it leaks; every report labels it so.

MIT-BIH records 201 and 202 come from the same patient (Moody & Mark 2001); the de Chazal split
puts 201 in DS1 and 202 in DS2, which we keep for comparability with the literature.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALL_RECORDS",
    "DS1",
    "DS2",
    "PACED",
    "IntraPatientSplit",
    "grouped_kfold_records",
    "inner_fold_plan",
    "intra_patient_split",
    "lopo_folds",
    "stratified_record_folds",
    "validation_records",
]

DS1: tuple[str, ...] = (
    "101",
    "106",
    "108",
    "109",
    "112",
    "114",
    "115",
    "116",
    "118",
    "119",
    "122",
    "124",
    "201",
    "203",
    "205",
    "207",
    "208",
    "209",
    "215",
    "220",
    "223",
    "230",
)
DS2: tuple[str, ...] = (
    "100",
    "103",
    "105",
    "111",
    "113",
    "117",
    "121",
    "123",
    "200",
    "202",
    "210",
    "212",
    "213",
    "214",
    "219",
    "221",
    "222",
    "228",
    "231",
    "232",
    "233",
    "234",
)
PACED: tuple[str, ...] = ("102", "104", "107", "217")
ALL_RECORDS: tuple[str, ...] = tuple(sorted(DS1 + DS2 + PACED))

#: Default validation records inside DS1, chosen from the DS1 class counts alone (never from DS2)
#: so that S, V and F beats are present both in validation (S 171, V 583, F 14 beats) and in the
#: remaining 17 training records (S 773, V 3,205, F 401).
DEFAULT_VALIDATION: tuple[str, ...] = ("101", "116", "220", "223", "230")


def validation_records(
    *, seed: int | None = None, n_records: int = 5
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split DS1 by record (patient) into training and validation records.

    Parameters
    ----------
    seed : int or None
        ``None`` returns the fixed default validation set; an int draws ``n_records`` DS1
        records at random (for repeated validation).
    n_records : int
        Number of validation records when ``seed`` is given.

    Returns
    -------
    (train_records, val_records)

    >>> train, val = validation_records()
    >>> set(train) & set(val), set(train) | set(val) == set(DS1)
    (set(), True)
    """
    if seed is None:
        val = DEFAULT_VALIDATION
    else:
        rng = np.random.default_rng(seed)
        val = tuple(sorted(rng.choice(DS1, size=n_records, replace=False).tolist()))
    train = tuple(r for r in DS1 if r not in val)
    return train, val


def grouped_kfold_records(
    records: tuple[str, ...], *, n_folds: int = 10, seed: int = 0
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """K folds over records (each record, i.e. patient, in exactly one test fold).

    Returns a list of ``(train_records, test_records)``.

    >>> folds = grouped_kfold_records(DS1 + DS2, n_folds=10)
    >>> sorted(r for _, test in folds for r in test) == sorted(DS1 + DS2)
    True
    """
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(records))
    folds = [tuple(sorted(order[i::n_folds])) for i in range(n_folds)]
    return [(tuple(r for r in records if r not in f), f) for f in folds]


def lopo_folds(
    records: tuple[str, ...] | list[str] = DS1,
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Leave-one-patient-out folds: ``(train_records, (test_record,))`` for each record in order.

    Each MIT-BIH record is one patient except 201/202 (one patient, split across DS1 and DS2
    by de Chazal et al.); within DS1 every record is its own patient.

    >>> folds = lopo_folds()
    >>> len(folds), folds[0][1], len(folds[0][0]), all(t[0] not in tr for tr, t in folds)
    (22, ('101',), 21, True)
    """
    recs = tuple(str(r) for r in records)
    if len(recs) < 2:
        raise ValueError(f"leave-one-patient-out needs at least 2 records, got {len(recs)}")
    if len(set(recs)) != len(recs):
        raise ValueError("records repeat: each patient must appear once")
    return [(tuple(r for r in recs if r != test), (test,)) for test in recs]


def stratified_record_folds(
    counts: dict[str, tuple[int, ...]], *, n_folds: int
) -> list[tuple[str, ...]]:
    """Deal records (patients) into ``n_folds`` groups with the rare classes spread evenly.

    Each record goes whole into one fold. Records are sorted by decreasing counts (the first
    count is the rarest class to balance, e.g. SVEB, then the next) and dealt in snake order
    (0, 1, ..., k-1, k-1, ..., 0, 0, 1, ...), as in stratified group k-fold: every fold gets
    one of the richest records of each round and the same number of records (+-1). The result
    is deterministic. MIT-BIH's SVEB beats sit in a handful of records (209 alone has 383 of
    DS1's 944), so random record folds often leave a fold with almost none.

    Parameters
    ----------
    counts : dict
        Record -> tuple of counts (same length for every record), most important first.
    n_folds : int
        Number of folds (2 <= n_folds <= number of records).

    Returns
    -------
    list of tuple of str
        The records of each fold, sorted.

    >>> stratified_record_folds({"a": (5,), "b": (4,), "c": (1,), "d": (0,)}, n_folds=2)
    [('a', 'd'), ('b', 'c')]
    """
    if not 2 <= n_folds <= len(counts):
        raise ValueError(
            f"n_folds must be in [2, {len(counts)}] for {len(counts)} records, got {n_folds}"
        )
    widths = {len(c) for c in counts.values()}
    if len(widths) != 1:
        raise ValueError("every record needs the same number of counts")
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    order = sorted(counts, key=lambda r: (tuple(-c for c in counts[r]), r))
    for i, rec in enumerate(order):
        rnd, pos = divmod(i, n_folds)
        folds[pos if rnd % 2 == 0 else n_folds - 1 - pos].append(rec)
    return [tuple(sorted(f)) for f in folds]


@dataclass(frozen=True)
class IntraPatientSplit:
    """Beat indices of the leaky random beat split. ``leaky`` is always True."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    leaky: bool = True
    description: str = "intra-patient random beat split (same patients in train and test: leaky)"


def intra_patient_split(
    n_beats: int, *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> IntraPatientSplit:
    """The papers' random 80/10/10 beat split (leaky: patients are shared).

    >>> s = intra_patient_split(100, seed=1)
    >>> len(s.train_idx), len(s.val_idx), len(s.test_idx), s.leaky
    (80, 10, 10, True)
    """
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n_beats)
    n_train = round(fractions[0] * n_beats)
    n_val = round(fractions[1] * n_beats)
    return IntraPatientSplit(
        np.sort(perm[:n_train]),
        np.sort(perm[n_train : n_train + n_val]),
        np.sort(perm[n_train + n_val :]),
    )


def inner_fold_plan(
    strat_fold: np.ndarray, train_mask: np.ndarray, *, n_inner: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-fitting splits of an outer training set: ``(held_out_rows, fit_rows)`` per inner fold.

    The training records' ``strat_fold`` values are dealt round-robin into ``n_inner`` groups
    (PTB-XL's folds are patient-disjoint, so the inner folds are too); inner fold ``g`` trains on
    the other groups and predicts group ``g``. Only rows of ``train_mask`` appear: the outer test
    and validation folds are never in an inner fold.

    >>> sf = np.array([1, 1, 2, 3, 4, 5, 9, 10])
    >>> [(h.tolist(), f.tolist()) for h, f in inner_fold_plan(sf, sf <= 4, n_inner=2)]
    [([0, 1, 3], [2, 4]), ([2, 4], [0, 1, 3])]
    """
    folds = sorted(np.unique(strat_fold[train_mask]).tolist())
    if not 2 <= n_inner <= len(folds):
        raise ValueError(
            f"n_inner={n_inner} inner folds need 2 to {len(folds)} (the training folds present)"
        )
    plan = []
    for g in range(n_inner):
        held = train_mask & np.isin(strat_fold, folds[g::n_inner])
        plan.append((np.flatnonzero(held), np.flatnonzero(train_mask & ~held)))
    return plan
