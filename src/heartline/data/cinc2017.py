"""PhysioNet/Computing in Cardiology Challenge 2017 records (single-lead AliveCor ECG).

The shared folder ``<data_dir>/cinc2017`` holds 5,543 of the challenge's 8,528 training
records (300 Hz, 9-61 s, one lead, 1000 adu/mV) with the final labels of ``REFERENCE-v3.csv``:
``N`` normal sinus rhythm, ``A`` atrial fibrillation, ``O`` other rhythm, ``~`` too noisy to
classify. The other records are kept aside as an independent test, so results on this folder
come from cross-validation (:func:`cinc2017_folds`) or the fixed split
(:func:`cinc2017_holdout`), both stratified by label, seeded and by record.

References
----------
Clifford GD, Liu C, Moody B, Lehman LH, Silva I, Li Q, Johnson AE, Mark RG. AF classification
from a short single lead ECG recording: the PhysioNet/Computing in Cardiology Challenge 2017.
Computing in Cardiology 44 (2017). doi:10.22489/CinC.2017.065-469
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from heartline.data.paths import resolve_data_dir
from heartline.errors import DataError, DataNotFoundError

__all__ = [
    "CINC2017_CLASSES",
    "CINC2017_FS_HZ",
    "cinc2017_dir",
    "cinc2017_folds",
    "cinc2017_holdout",
    "load_cinc2017_index",
    "read_cinc2017",
]

#: Class letters in the order every rhythm model and report uses (index = class id).
CINC2017_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
#: Sampling rate of every challenge record.
CINC2017_FS_HZ: float = 300.0
_FOLDER = "cinc2017"
_REFERENCE = "REFERENCE-v3.csv"


def cinc2017_dir(*, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the challenge records (``<data_dir>/cinc2017``).

    Raises
    ------
    DataNotFoundError
        When the folder or its ``REFERENCE-v3.csv`` is missing.
    """
    path = resolve_data_dir(data_dir) / _FOLDER
    if not (path / _REFERENCE).is_file():
        raise DataNotFoundError(
            f"CinC 2017 records not found: {path / _REFERENCE} does not exist. Point "
            "HEARTLINE_DATA_DIR / --data-dir at a folder holding cinc2017/ (see "
            "shared/data/PROVENANCE.md)."
        )
    return path


def _header_length(path: Path) -> tuple[int, float]:
    first = path.read_text().split("\n", 1)[0].split()
    return int(first[3]), float(first[2].split("/")[0])


def load_cinc2017_index(*, data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every record with its label, length and rate.

    Returns
    -------
    pandas.DataFrame
        Columns ``record`` (e.g. ``"A00002"``), ``label`` (``N``/``A``/``O``/``~``),
        ``n_samples`` and ``fs`` (Hz, from the headers), in ``REFERENCE-v3.csv`` order.

    Raises
    ------
    DataNotFoundError
        Folder missing.
    DataError
        A label outside N/A/O/~ or a record without its header.
    """
    root = cinc2017_dir(data_dir=data_dir)
    ref = pd.read_csv(root / _REFERENCE, header=None, names=["record", "label"], dtype=str)
    ref["record"] = ref["record"].str.strip()
    ref["label"] = ref["label"].str.strip()
    bad = ref.loc[~ref["label"].isin(CINC2017_CLASSES)]
    if len(bad):
        raise DataError(
            f"{root / _REFERENCE}: labels {sorted(set(bad['label']))} are not in "
            f"{list(CINC2017_CLASSES)} (records {list(bad['record'][:5])})"
        )
    lengths = []
    rates = []
    for rec in ref["record"]:
        hea = root / f"{rec}.hea"
        if not hea.is_file():
            raise DataError(f"CinC 2017 record {rec!r} is in {_REFERENCE} but {hea} is missing")
        n, fs = _header_length(hea)
        lengths.append(n)
        rates.append(fs)
    ref["n_samples"] = np.asarray(lengths, dtype=np.int64)
    ref["fs"] = np.asarray(rates, dtype=np.float64)
    return ref.reset_index(drop=True)


def read_cinc2017(
    record: str, *, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, float]:
    """One record's single lead in mV (float32) and its sampling rate in Hz.

    Raises
    ------
    DataError
        When the record does not exist or cannot be read.
    """
    import wfdb

    root = cinc2017_dir(data_dir=data_dir)
    if not (root / f"{record}.hea").is_file():
        raise DataError(f"CinC 2017 record {record!r} not found in {root}")
    try:
        rec = wfdb.rdrecord(str(root / record), physical=True)
    except Exception as exc:  # wfdb raises many types on a damaged file
        raise DataError(f"cannot read CinC 2017 record {record!r}: {exc}") from exc
    x = np.asarray(rec.p_signal[:, 0], dtype=np.float32)
    return x, float(rec.fs)


def _labels_array(labels: object) -> np.ndarray:
    lab = np.asarray(labels).astype(str)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {lab.shape}")
    return lab


def cinc2017_folds(labels: object, *, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Stratified fold id (0..n_splits-1) of every record, by label (one record, one fold).

    Parameters
    ----------
    labels : array-like of str
        One label per record (the index's ``label`` column).
    n_splits : int
        Number of folds (>= 2; each class needs at least ``n_splits`` records).
    seed : int
        Shuffling seed.
    """
    from sklearn.model_selection import StratifiedKFold

    lab = _labels_array(labels)
    if int(n_splits) < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits!r}")
    fold = np.full(lab.size, -1, dtype=np.int64)
    skf = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=int(seed))
    for k, (_tr, te) in enumerate(skf.split(np.zeros(lab.size), lab)):
        fold[te] = k
    return fold


def cinc2017_holdout(labels: object, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """The fixed stratified split: ``True`` for the test records (``test_fraction`` of each class).

    The shipped rhythm model trains on the ``False`` records (its early-stopping validation
    carved out of them) and is scored once on the ``True`` ones.
    """
    from sklearn.model_selection import train_test_split

    lab = _labels_array(labels)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    idx = np.arange(lab.size)
    _tr, te = train_test_split(
        idx, test_size=float(test_fraction), stratify=lab, random_state=int(seed)
    )
    out = np.zeros(lab.size, dtype=bool)
    out[te] = True
    return out
