"""PTB-XL loader: 12-lead 10 s ECGs, superdiagnostic labels, folds and patient metadata.

Labels follow the PTB-XL benchmark code of Strodthoff et al. (2021,
``helme/ecg_ptbxl_benchmarking``, ``utils.compute_label_aggregations``): every SCP statement of a
record whose ``diagnostic`` flag is set in ``scp_statements.csv`` contributes its
``diagnostic_class`` (NORM, MI, STTC, CD, HYP), multi-label. The benchmark applies **no**
likelihood threshold (a statement with likelihood 0, "unknown", counts), so the default
``min_likelihood=0.0`` reproduces it; a stricter threshold (e.g. 50 or 100) is an option, not
the benchmark. Records with no superdiagnostic statement have an all-zero label row and
``has_label`` False; the benchmark drops them before training (:meth:`PtbxlDataset.labelled`).

Metadata (:class:`PtbxlMetadata`) carries explicit masks, never silent zero-fills:

* ``age_y``: PTB-XL codes every age above 89 as **300** (de-identification, Wagner et al.
  2020). Such ages become 90 (the lower bound of the category) with ``age_over_89`` set and a
  note in :attr:`PtbxlDataset.notes`; other ages outside 0-120 are marked missing.
* ``sex_male``: PTB-XL codes 0 = male, 1 = female. Any other code (or a blank) is marked missing
  and counted in the notes.
* ``height_cm``, ``weight_kg``: often blank (two thirds of heights); values outside
  50-250 cm / 2-300 kg are treated as entry errors and marked missing.
* ``bmi``: weight / height^2 where both are present, otherwise missing.
* ``device`` (string), ``site`` (integer code, -1 when missing).

Signals are read with wfdb from ``records100`` (``fs=100``) or ``records500`` (``fs=500``), in
mV, leads in the order of :data:`LEADS_12`. A record whose sampling rate differs from ``fs``,
which lacks a requested lead, or has non-finite samples raises :class:`~heartline.errors.DataError`
naming the record. Arrays are cached as ``.npz`` when ``cache_dir`` is given.

References
----------
Wagner P, Strodthoff N, Bousseljot R-D, et al. PTB-XL, a large publicly available
electrocardiography dataset. Sci Data 7:154 (2020).
Strodthoff N, Wagner P, Schaeffter T, Samek W. Deep learning for ECG analysis: benchmarks and
insights from PTB-XL. IEEE J Biomed Health Inform 25(5):1519-1528 (2021).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from heartline.errors import DataError, DataNotFoundError, HeartlineWarning

__all__ = [
    "AGE_OVER_89_CODE",
    "LEADS_12",
    "METADATA_FEATURES",
    "SUPERCLASSES",
    "SUPPORTED_FS_HZ",
    "PtbxlDataset",
    "PtbxlMetadata",
    "load_ptbxl",
    "parse_metadata",
    "ptbxl_record_metadata",
    "select_leads",
    "superdiagnostic_labels",
]

log = logging.getLogger(__name__)

#: The five superdiagnostic classes, in the benchmark's (alphabetical) order is not used: this
#: order (NORM first) is the one Heartline reports in.
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: PTB-XL's lead order (as in its WFDB headers).
LEADS_12: tuple[str, ...] = (
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
#: Numeric metadata columns, in the column order of :attr:`PtbxlMetadata.values`.
METADATA_FEATURES: tuple[str, ...] = ("age_y", "sex_male", "height_cm", "weight_kg", "bmi")
#: PTB-XL's code for an age above 89 years.
AGE_OVER_89_CODE = 300
#: Age given to the over-89 code (the category's lower bound).
AGE_OVER_89_VALUE_Y = 90.0
SUPPORTED_FS_HZ: dict[int, tuple[str, str]] = {
    100: ("records100", "filename_lr"),
    500: ("records500", "filename_hr"),
}
_HEIGHT_RANGE_CM = (50.0, 250.0)
_WEIGHT_RANGE_KG = (2.0, 300.0)
_AGE_RANGE_Y = (0.0, 120.0)


@dataclass(frozen=True)
class PtbxlMetadata:
    """Patient metadata with explicit masks.

    Attributes
    ----------
    values : numpy.ndarray
        ``(N, 5)`` float32 in the order of :data:`METADATA_FEATURES`; NaN where missing.
    present : numpy.ndarray
        ``(N, 5)`` bool, True where the value is known.
    age_over_89 : numpy.ndarray
        ``(N,)`` bool: the age was PTB-XL's over-89 code (300) and was set to 90.
    device : tuple of str
        Recording device per record ("" when missing).
    site : numpy.ndarray
        ``(N,)`` int recording site code, -1 when missing.
    """

    values: np.ndarray
    present: np.ndarray
    age_over_89: np.ndarray
    device: tuple[str, ...]
    site: np.ndarray
    names: tuple[str, ...] = METADATA_FEATURES

    def take(self, idx: np.ndarray) -> PtbxlMetadata:
        """Rows ``idx`` (integer or boolean index)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return PtbxlMetadata(
            values=self.values[idx],
            present=self.present[idx],
            age_over_89=self.age_over_89[idx],
            device=tuple(self.device[i] for i in idx),
            site=self.site[idx],
            names=self.names,
        )

    def missing_counts(self) -> dict[str, int]:
        """Missing values per column."""
        return {n: int((~self.present[:, j]).sum()) for j, n in enumerate(self.names)}


@dataclass(frozen=True)
class PtbxlDataset:
    """PTB-XL records as arrays.

    Attributes
    ----------
    ecg_ids, patient_ids : numpy.ndarray
        ``(N,)`` int identifiers.
    signals : numpy.ndarray
        ``(N, leads, T)`` float32, mV.
    fs : float
        Sampling rate (Hz).
    lead_names : tuple of str
    labels : numpy.ndarray
        ``(N, 5)`` uint8 multi-hot over :data:`SUPERCLASSES`.
    strat_fold : numpy.ndarray
        ``(N,)`` int, PTB-XL's official folds 1-10 (patient-disjoint; 9 and 10 human-validated).
    metadata : PtbxlMetadata
    notes : tuple of str
        How the data was handled (missing values, recoded ages, unknown codes), for reports.
    """

    ecg_ids: np.ndarray
    patient_ids: np.ndarray
    signals: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    labels: np.ndarray
    strat_fold: np.ndarray
    metadata: PtbxlMetadata
    class_names: tuple[str, ...] = SUPERCLASSES
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.ecg_ids.shape[0])

    @property
    def has_label(self) -> np.ndarray:
        """``(N,)`` bool: at least one superdiagnostic class."""
        return self.labels.any(axis=1)

    def take(self, idx: np.ndarray) -> PtbxlDataset:
        """Rows ``idx`` (integer or boolean index)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return replace(
            self,
            ecg_ids=self.ecg_ids[idx],
            patient_ids=self.patient_ids[idx],
            signals=self.signals[idx],
            labels=self.labels[idx],
            strat_fold=self.strat_fold[idx],
            metadata=self.metadata.take(idx),
        )

    def labelled(self) -> PtbxlDataset:
        """Only the records with at least one superdiagnostic class (as the benchmark trains on)."""
        keep = self.has_label
        n_drop = int((~keep).sum())
        out = self.take(keep)
        return replace(
            out,
            notes=(*self.notes, f"{n_drop} record(s) without a superdiagnostic statement left out"),
        )


def _parse_scp(value: Any, *, ecg_id: int) -> dict[str, float]:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"ecg_id {ecg_id}: scp_codes {value!r} is not a dict literal") from exc
    if not isinstance(parsed, dict):
        raise DataError(f"ecg_id {ecg_id}: scp_codes {value!r} is not a dict literal")
    return {str(k): float(v) for k, v in parsed.items()}


def superdiagnostic_labels(
    scp_codes: list[dict[str, float]],
    statements: Any,
    *,
    min_likelihood: float = 0.0,
    classes: tuple[str, ...] = SUPERCLASSES,
) -> np.ndarray:
    """Multi-hot superdiagnostic labels from per-record SCP statement dicts.

    Parameters
    ----------
    scp_codes : list of dict
        ``{statement: likelihood (0-100)}`` per record (PTB-XL's ``scp_codes`` column).
    statements : pandas.DataFrame
        ``scp_statements.csv`` indexed by statement, with ``diagnostic`` and ``diagnostic_class``.
    min_likelihood : float
        Statements below this likelihood are ignored; 0 (default) keeps all, as the benchmark
        code of Strodthoff et al. (2021) does.

    >>> import pandas as pd
    >>> st = pd.DataFrame({"diagnostic": [1.0, 1.0, None], "diagnostic_class": ["NORM", "MI", None]},
    ...                   index=["NORM", "IMI", "SR"])
    >>> superdiagnostic_labels([{"NORM": 100.0, "SR": 0.0}, {"IMI": 15.0}], st).tolist()
    [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]
    >>> superdiagnostic_labels([{"IMI": 15.0}], st, min_likelihood=50).tolist()
    [[0, 0, 0, 0, 0]]
    """
    if not 0.0 <= min_likelihood <= 100.0:
        raise ValueError(f"min_likelihood must be in [0, 100], got {min_likelihood}")
    diag = statements[statements["diagnostic"] == 1.0]
    to_class = {str(k): str(v) for k, v in diag["diagnostic_class"].items() if isinstance(v, str)}
    col = {c: j for j, c in enumerate(classes)}
    out = np.zeros((len(scp_codes), len(classes)), dtype=np.uint8)
    for i, codes in enumerate(scp_codes):
        for code, likelihood in codes.items():
            cls = to_class.get(code)
            if cls is not None and cls in col and likelihood >= min_likelihood:
                out[i, col[cls]] = 1
    return out


def parse_metadata(table: Any) -> tuple[PtbxlMetadata, tuple[str, ...]]:
    """Metadata arrays with masks from PTB-XL's database table, and notes on what was done.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``ptbxl_database.csv``. Missing columns (``age``, ``sex``, ``height``,
        ``weight``, ``device``, ``site``) are reported in the notes and the whole column is
        marked missing, never zero-filled.

    Returns
    -------
    metadata : PtbxlMetadata
    notes : tuple of str
    """
    import pandas as pd

    n = len(table)
    notes: list[str] = []

    def column(name: str) -> np.ndarray:
        if name not in table.columns:
            notes.append(f"column {name!r} absent from the metadata table: all values missing")
            warnings.warn(
                f"PTB-XL metadata has no {name!r} column; marked missing for every record",
                HeartlineWarning,
                stacklevel=3,
            )
            return np.full(n, np.nan)
        return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)

    age = column("age")
    over = age == AGE_OVER_89_CODE
    age = np.where(over, AGE_OVER_89_VALUE_Y, age)
    bad_age = np.isfinite(age) & ((age < _AGE_RANGE_Y[0]) | (age > _AGE_RANGE_Y[1]))
    age[bad_age] = np.nan
    if over.any():
        notes.append(
            f"{int(over.sum())} age(s) coded {AGE_OVER_89_CODE} (PTB-XL: over 89) set to "
            f"{AGE_OVER_89_VALUE_Y:g} and flagged age_over_89"
        )
    if bad_age.any():
        notes.append(f"{int(bad_age.sum())} age(s) outside 0-120 y marked missing")

    sex_raw = column("sex")
    sex_ok = np.isin(sex_raw, (0.0, 1.0))
    n_unknown_sex = int((~sex_ok & np.isfinite(sex_raw)).sum())
    if n_unknown_sex:
        codes = sorted({float(v) for v in sex_raw[~sex_ok & np.isfinite(sex_raw)]})
        notes.append(
            f"{n_unknown_sex} unknown sex code(s) {codes} (PTB-XL: 0 male, 1 female) marked missing"
        )
        warnings.warn(
            f"{n_unknown_sex} PTB-XL record(s) have sex codes {codes} other than 0/1; "
            "marked missing",
            HeartlineWarning,
            stacklevel=2,
        )
    sex_male = np.where(sex_ok, (sex_raw == 0.0).astype(float), np.nan)

    def ranged(x: np.ndarray, lo: float, hi: float, what: str) -> np.ndarray:
        bad = np.isfinite(x) & ((x < lo) | (x > hi))
        if bad.any():
            notes.append(f"{int(bad.sum())} {what} outside {lo:g}-{hi:g} marked missing")
        return np.where(bad, np.nan, x)

    height = ranged(column("height"), *_HEIGHT_RANGE_CM, "height(s) (cm)")
    weight = ranged(column("weight"), *_WEIGHT_RANGE_KG, "weight(s) (kg)")
    bmi = weight / (height / 100.0) ** 2
    values = np.stack([age, sex_male, height, weight, bmi], axis=1).astype(np.float32)
    present = np.isfinite(values)
    for j, name in enumerate(METADATA_FEATURES):
        miss = int((~present[:, j]).sum())
        if miss:
            notes.append(f"{name}: {miss} of {n} missing (masked)")
    if "device" in table.columns:
        device = tuple("" if pd.isna(v) else str(v).strip() for v in table["device"])
    else:
        notes.append("column 'device' absent: empty for every record")
        device = ("",) * n
    site_f = column("site")
    site = np.where(np.isfinite(site_f), site_f, -1).astype(np.int64)
    meta = PtbxlMetadata(values=values, present=present, age_over_89=over, device=device, site=site)
    return meta, tuple(notes)


def select_leads(
    signals: np.ndarray, lead_names: tuple[str, ...], wanted: tuple[str, ...] | list[str]
) -> np.ndarray:
    """Reorder/select leads by name; a missing lead raises ``ValueError`` naming it.

    >>> x = np.zeros((2, 3, 10))
    >>> select_leads(x, ("I", "II", "V1"), ["V1", "I"]).shape
    (2, 2, 10)
    """
    upper = [name.upper() for name in lead_names]
    missing = [w for w in wanted if w.upper() not in upper]
    if missing:
        raise ValueError(
            f"signals have leads {list(lead_names)}; the model needs {list(wanted)} "
            f"and {missing} are missing (no lead is zero-filled)"
        )
    idx = [upper.index(w.upper()) for w in wanted]
    return signals[:, idx]


def _read_record(path: Path, *, fs: int, leads: tuple[str, ...], ecg_id: int) -> np.ndarray:
    import wfdb

    if not path.with_suffix(".hea").is_file():
        raise DataNotFoundError(f"ecg_id {ecg_id}: WFDB header {path}.hea not found")
    try:
        rec = wfdb.rdrecord(str(path))
    except Exception as exc:
        raise DataError(
            f"ecg_id {ecg_id}: cannot read {path} ({type(exc).__name__}: {exc})"
        ) from exc
    if abs(float(rec.fs) - fs) > 1e-6:
        raise DataError(f"ecg_id {ecg_id}: {path} is sampled at {rec.fs} Hz, expected fs={fs} Hz")
    names = tuple(str(s).upper() for s in rec.sig_name)
    missing = [lead for lead in leads if lead.upper() not in names]
    if missing:
        raise DataError(
            f"ecg_id {ecg_id}: {path} has leads {list(rec.sig_name)}, missing {missing}"
        )
    sig = rec.p_signal[:, [names.index(lead.upper()) for lead in leads]].T
    if not np.isfinite(sig).all():
        raise DataError(f"ecg_id {ecg_id}: {path} has non-finite samples")
    return sig.astype(np.float32)


def load_ptbxl(
    *,
    fs: int = 100,
    data_dir: str | os.PathLike[str] | None = None,
    leads: tuple[str, ...] | list[str] = LEADS_12,
    min_likelihood: float = 0.0,
    max_records: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> PtbxlDataset:
    """Load PTB-XL (the whole table that is on disk: 500 records here, 21,799 in the full set).

    Parameters
    ----------
    fs : {100, 500}
        Sampling rate (Hz): ``records100`` or ``records500``.
    data_dir : path-like, optional
        Data directory holding ``ptbxl/`` (see :mod:`heartline.data.paths`).
    leads : sequence of str
        Leads to load, in order (default all 12).
    min_likelihood : float
        SCP likelihood threshold (0 = the benchmark's convention, see the module docstring).
    max_records : int, optional
        Only the first ``max_records`` rows (for quick runs).
    cache_dir : path-like, optional
        Where to cache the signal array (``.npz``), keyed by the table, fs and leads.
    progress : bool
        Show a progress bar while reading records.

    Raises
    ------
    ValueError
        ``fs`` not 100 or 500, or an unknown lead.
    DataNotFoundError
        PTB-XL (or its ``records<fs>`` folder) not on disk, with the command that fetches it.
    DataError
        A record with another sampling rate, a missing lead or non-finite samples (named).
    """
    import pandas as pd

    from heartline.data.paths import database_dir

    if fs not in SUPPORTED_FS_HZ:
        raise ValueError(f"fs must be one of {sorted(SUPPORTED_FS_HZ)} Hz for PTB-XL, got {fs}")
    leads = tuple(str(lead).upper() for lead in leads)
    unknown = [lead for lead in leads if lead not in LEADS_12]
    if unknown or not leads:
        raise ValueError(f"unknown lead(s) {unknown or leads}; PTB-XL has {list(LEADS_12)}")
    root = database_dir("ptb-xl", data_dir=data_dir)
    table_path, st_path = root / "ptbxl_database.csv", root / "scp_statements.csv"
    for p in (table_path, st_path):
        if not p.is_file():
            raise DataNotFoundError(
                f"{p} not found; fetch PTB-XL with `heartline data fetch ptb-xl`"
            )
    folder, fname_col = SUPPORTED_FS_HZ[fs]
    if not (root / folder).is_dir():
        raise DataNotFoundError(
            f"{root / folder} not found: fs={fs} needs PTB-XL's {folder}/ "
            f"(available: {[f for f, _ in SUPPORTED_FS_HZ.values() if (root / f).is_dir()]})"
        )
    table = pd.read_csv(table_path, index_col="ecg_id")
    if max_records is not None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        table = table.iloc[:max_records]
    for required in ("scp_codes", "strat_fold", fname_col):
        if required not in table.columns:
            raise DataError(f"{table_path} has no {required!r} column")
    statements = pd.read_csv(st_path, index_col=0)
    ecg_ids = table.index.to_numpy(dtype=np.int64)
    scp = [_parse_scp(v, ecg_id=int(i)) for i, v in zip(ecg_ids, table["scp_codes"], strict=True)]
    labels = superdiagnostic_labels(scp, statements, min_likelihood=min_likelihood)
    folds = pd.to_numeric(table["strat_fold"], errors="coerce").to_numpy()
    bad_fold = ~np.isin(folds, np.arange(1, 11))
    if bad_fold.any():
        raise DataError(
            f"{table_path}: strat_fold must be 1-10; ecg_id(s) "
            f"{ecg_ids[bad_fold][:5].tolist()} have {folds[bad_fold][:5].tolist()}"
        )
    meta, notes = parse_metadata(table)
    patient_ids = (
        pd.to_numeric(table["patient_id"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
        if "patient_id" in table.columns
        else np.full(len(table), -1, dtype=np.int64)
    )
    files = [str(f) for f in table[fname_col]]
    signals = None
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(("|".join(files) + f"|{fs}|{','.join(leads)}").encode()).hexdigest()[
            :16
        ]
        cache_file = Path(cache_dir) / f"ptbxl_{fs}hz_{len(files)}_{key}.npz"
        if cache_file.is_file():
            signals = np.load(cache_file)["signals"]
            log.info("PTB-XL signals from cache %s", cache_file)
    if signals is None:
        it: Any = zip(ecg_ids, files, strict=True)
        if progress:
            from rich.progress import track

            it = track(list(it), description=f"reading PTB-XL ({fs} Hz)")
        signals = np.stack(
            [_read_record(root / f, fs=fs, leads=leads, ecg_id=int(i)) for i, f in it]
        )
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache_file, signals=signals)
    return PtbxlDataset(
        ecg_ids=ecg_ids,
        patient_ids=patient_ids,
        signals=signals,
        fs=float(fs),
        lead_names=leads,
        labels=labels,
        strat_fold=folds.astype(np.int64),
        metadata=meta,
        notes=notes,
    )


def ptbxl_record_metadata(record_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Patient data of a PTB-XL record from ``ptbxl_database.csv``, or None outside PTB-XL.

    ``record_path`` is a record of ``records100/`` or ``records500/`` (with or without
    extension); the database table is looked for in the folder above ``records*/``. Returns
    ``{"ecg_id", "patient_id", "age", "sex", "height", "weight", "recording_date"}`` as the table
    gives them (``age`` 300 = over 89; ``sex`` ``"male"``/``"female"``; None where missing), for
    :func:`heartline.diagnose`'s ``metadata``.
    """
    import pandas as pd

    path = Path(record_path)
    if path.suffix in (".hea", ".dat"):
        path = path.with_suffix("")
    parts = path.resolve().parts
    idx = [i for i, part in enumerate(parts) if part in ("records100", "records500")]
    if not idx:
        return None
    root = Path(*parts[: idx[-1]])
    table_path = root / "ptbxl_database.csv"
    if not table_path.is_file():
        return None
    rel = "/".join(parts[idx[-1] :])
    col = "filename_lr" if parts[idx[-1]] == "records100" else "filename_hr"
    table = pd.read_csv(table_path, usecols=lambda c: c in _RECORD_META_COLUMNS)
    if col not in table.columns:
        return None
    row = table[table[col] == rel]
    if row.empty:
        return None
    r = row.iloc[0]

    def num(name: str) -> float | None:
        v = pd.to_numeric(r.get(name), errors="coerce")
        return None if pd.isna(v) else float(v)

    sex = num("sex")
    return {
        "ecg_id": int(r["ecg_id"]),
        "patient_id": None if num("patient_id") is None else str(int(num("patient_id") or 0)),
        "age": num("age"),
        "sex": {0.0: "male", 1.0: "female"}.get(sex) if sex is not None else None,
        "height": num("height"),
        "weight": num("weight"),
        "recording_date": None if pd.isna(r.get("recording_date")) else str(r["recording_date"]),
    }


_RECORD_META_COLUMNS = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "recording_date",
    "filename_lr", "filename_hr",
)  # fmt: skip
