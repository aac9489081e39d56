"""Read an ECG record of any supported format, and expand folders into their records.

:func:`read_ecg` reads

* **WFDB** records (Goldberger et al. 2000, PhysioNet; read through wfdb-python): a record path
  without extension, its ``.hea`` header, or a ``.dat``/``.mat`` signal file beside a header (the
  CinC 2017 challenge records are ``.mat`` + ``.hea``);
* **EDF/EDF+** files (Kemp et al. 1992, 2003) through ``wfdb.io.convert.edf.read_edf``;
* **CSV** files, one column per lead, a header row naming the leads (``fs`` must be given: a
  CSV carries no sampling rate). Columns called ``time``, ``time_s``, ``t``, ``sample`` or
  ``index`` are skipped.

and returns an :class:`~heartline.io.records.EcgRecord` in millivolts. Signals in µV or V are
converted; raw ADC units (``adu``) only with ``adu_per_mv``; any other unit is refused with a
message naming the lead and its unit. A lead that is flat or holds NaN samples is not an error:
the record gets a quality flag (:attr:`EcgRecord.flags`) and a :class:`RecordQualityWarning`.

:func:`expand_record_paths` turns paths that may be folders into a stable list of records
(a folder: the records named by its ``RECORDS`` file, else its ``.hea`` files, plus any EDF or
CSV files in it).

>>> from heartline.io.readers import detect_format
>>> detect_format("scan.edf"), detect_format("holter.CSV")
('edf', 'csv')
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from heartline.errors import DataError, DataNotFoundError, HeartlineWarning, SignalError
from heartline.io.records import EcgRecord

__all__ = [
    "CSV_SUFFIXES",
    "EDF_SUFFIXES",
    "MIN_PROCESSING_FS_HZ",
    "RecordQualityWarning",
    "check_processing_fs",
    "detect_format",
    "expand_record_paths",
    "quality_flags",
    "read_ecg",
    "to_millivolts",
]

#: Lowest sampling rate at which Heartline's detector and beat windows are trusted.
MIN_PROCESSING_FS_HZ = 100.0
EDF_SUFFIXES = (".edf", ".bdf")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
#: CSV columns that hold time or sample numbers, not a lead.
_CSV_INDEX_COLUMNS = frozenset({"time", "time_s", "t", "sample", "samples", "index", "idx"})
#: Multiplier from a unit to millivolts (lower-cased unit names).
_TO_MV: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "nv": 1e-6,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
}
_ADU = frozenset({"adu", "nu", "counts", "digital"})
#: A lead whose peak-to-peak amplitude is below this (mV) is flagged flat.
FLAT_PTP_MV = 1e-3


class RecordQualityWarning(HeartlineWarning):
    """A lead is flat or holds NaN samples; the record was read and flagged."""


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"wfdb"``, ``"edf"`` or ``"csv"`` from a path's suffix (or a WFDB header beside it).

    Raises
    ------
    ValueError
        A suffix that is none of these, naming the path and the accepted forms.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in EDF_SUFFIXES:
        return "edf"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in WFDB_SUFFIXES:
        return "wfdb"
    if suffix == "" or Path(f"{p}.hea").exists():
        # a WFDB record path is given without extension (names such as "100" or "00001_lr")
        return "wfdb"
    raise ValueError(
        f"{p}: unknown record format {suffix!r}; expected a WFDB record (path without extension, "
        f".hea, .dat or .mat), an EDF file ({', '.join(EDF_SUFFIXES)}) or a CSV file "
        f"({', '.join(CSV_SUFFIXES)})"
    )


def to_millivolts(
    signal: np.ndarray,
    units: Sequence[str],
    *,
    lead_names: Sequence[str],
    adu_per_mv: float | None = None,
    source: str = "record",
) -> np.ndarray:
    """``signal`` (n_samples, n_leads) converted column by column from ``units`` to mV.

    Raises
    ------
    SignalError
        A unit that is not a voltage (naming the lead and its unit), or ``adu`` without
        ``adu_per_mv``.
    """
    out = np.array(signal, dtype=np.float64, copy=True)
    for j, (unit, lead) in enumerate(zip(units, lead_names, strict=True)):
        u = (unit or "mV").strip().lower().replace(" ", "")
        if u in _TO_MV:
            if _TO_MV[u] != 1.0:
                out[:, j] *= _TO_MV[u]
        elif u in _ADU:
            if adu_per_mv is None or not adu_per_mv > 0:
                raise SignalError(
                    f"{source}: lead {lead!r} is in raw ADC units ({unit!r}); pass adu_per_mv "
                    "(ADC counts per millivolt) to convert it"
                )
            out[:, j] /= float(adu_per_mv)
        else:
            raise SignalError(
                f"{source}: lead {lead!r} has unit {unit!r}, which is not a voltage; Heartline "
                "reads ECG in mV, uV (µV), V, or adu with adu_per_mv"
            )
    return out


def quality_flags(signal: np.ndarray, lead_names: Sequence[str]) -> tuple[str, ...]:
    """One flag per problem lead: ``"<lead>: flat"``, ``"<lead>: 12.5 % NaN"``, ``"<lead>: no samples"``."""
    flags: list[str] = []
    if signal.shape[0] == 0:
        return tuple(f"{name}: no samples" for name in lead_names)
    for j, name in enumerate(lead_names):
        col = signal[:, j]
        finite = np.isfinite(col)
        n_bad = int((~finite).sum())
        if n_bad == col.size:
            flags.append(f"{name}: all samples NaN")
            continue
        if n_bad:
            flags.append(f"{name}: {100.0 * n_bad / col.size:.1f} % NaN")
        good = col[finite]
        if float(good.max() - good.min()) < FLAT_PTP_MV:
            flags.append(f"{name}: flat")
    return tuple(flags)


def check_processing_fs(
    fs: float, *, min_fs_hz: float = MIN_PROCESSING_FS_HZ, source: str = "record"
) -> float:
    """``fs`` as a float when processing can use it, else a :class:`SignalError` saying why."""
    fs = float(fs)
    if not math.isfinite(fs) or fs <= 0:
        raise SignalError(f"{source}: fs must be a positive sampling rate in Hz, got {fs!r}")
    if fs < min_fs_hz:
        raise SignalError(
            f"{source}: fs = {fs:g} Hz is below the {min_fs_hz:g} Hz that beat detection and "
            "classification need"
        )
    return fs


def _wfdb_base(path: Path) -> Path:
    if path.suffix.lower() in WFDB_SUFFIXES:
        return path.with_suffix("")
    return path


def _read_wfdb(path: Path) -> tuple[np.ndarray, float, tuple[str, ...], tuple[str, ...], str]:
    from heartline.io.records import read_record

    base = _wfdb_base(path)
    if not Path(f"{base}.hea").exists():
        raise DataNotFoundError(
            f"{path}: record not found, no WFDB header {base}.hea (a WFDB record is given by its path without "
            "extension, its .hea file, or a .dat/.mat file beside its .hea)"
        )
    rec = read_record(base)
    return rec.signal, rec.fs, rec.lead_names, rec.units, rec.name


def _read_edf(path: Path) -> tuple[np.ndarray, float, tuple[str, ...], tuple[str, ...], str]:
    if not path.is_file():
        raise DataNotFoundError(f"{path}: EDF file not found")
    from wfdb.io.convert.edf import read_edf

    try:
        rec = read_edf(str(path))
    except Exception as exc:  # wfdb raises many types on bad EDF headers
        raise DataError(f"{path}: unreadable EDF file ({exc})") from exc
    spf = getattr(rec, "samps_per_frame", None) or [1] * int(rec.n_sig)
    if len(set(spf)) > 1:
        raise DataError(
            f"{path}: EDF signals have different sampling rates ({sorted(set(spf))} samples per "
            "record); convert them to one rate first"
        )
    fs = float(rec.fs) * float(spf[0])
    signal = np.asarray(rec.p_signal, dtype=np.float64)
    names = tuple(str(s).strip() for s in rec.sig_name)
    units = tuple(str(u).strip() for u in rec.units)
    return signal, fs, names, units, path.stem


def _read_csv(
    path: Path, lead_names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...], str]:
    if not path.is_file():
        raise DataNotFoundError(f"{path}: CSV file not found")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = next(csv.reader(fh, delimiter=delimiter), None)
    if first is None:
        raise DataError(f"{path}: empty CSV file")
    header = [c.strip() for c in first]

    def _is_number(s: str) -> bool:
        try:
            float(s)
        except ValueError:
            return False
        return True

    has_header = not all(_is_number(c) for c in header if c)
    try:
        data = np.loadtxt(
            path,
            delimiter=delimiter,
            skiprows=1 if has_header else 0,
            ndmin=2,
            encoding="utf-8-sig",
        )
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric CSV with one column per lead ({exc})") from exc
    if has_header:
        if len(header) != data.shape[1]:
            raise DataError(f"{path}: header has {len(header)} columns, rows have {data.shape[1]}")
        keep = [j for j, h in enumerate(header) if h.lower() not in _CSV_INDEX_COLUMNS]
        names = tuple(header[j] or f"ch{j + 1}" for j in keep)
        data = data[:, keep]
    else:
        if lead_names is None:
            raise DataError(
                f"{path}: the CSV has no header row naming its leads; add one (e.g. 'II') or "
                "pass lead_names"
            )
        if len(lead_names) != data.shape[1]:
            raise DataError(
                f"{path}: {data.shape[1]} columns but {len(lead_names)} lead_names {list(lead_names)}"
            )
        names = tuple(lead_names)
    if data.shape[1] == 0:
        raise DataError(f"{path}: no lead columns (only {header})")
    return data, names, path.stem


def read_ecg(
    path: str | os.PathLike[str],
    *,
    fs: float | None = None,
    lead_names: Sequence[str] | None = None,
    units: str | Sequence[str] | None = None,
    adu_per_mv: float | None = None,
    min_fs_hz: float | None = None,
) -> EcgRecord:
    """Read a WFDB, EDF or CSV ECG record into an :class:`EcgRecord` in mV.

    Parameters
    ----------
    path : str or path-like
        WFDB record (path without extension, ``.hea``, ``.dat`` or ``.mat``), EDF file
        (``.edf``) or CSV file (``.csv``, ``.tsv``, ``.txt``).
    fs : float, optional
        Sampling rate in Hz; required for CSV. For WFDB/EDF it must equal the file's rate
        (a check, never a silent re-labelling).
    lead_names : sequence of str, optional
        Leads to keep, by name, in this order (a clear error names the record's leads when one
        is missing). For a CSV without a header row: the name of each column.
    units : str or sequence of str, optional
        Units of a CSV's columns (default ``"mV"``); ignored for WFDB/EDF, whose headers say.
    adu_per_mv : float, optional
        ADC counts per mV, needed only for leads stored in raw ``adu``.
    min_fs_hz : float, optional
        Refuse records sampled below this rate (:data:`MIN_PROCESSING_FS_HZ` for processing).

    Returns
    -------
    EcgRecord
        ``signal`` (n_samples, n_leads) float64 in mV, ``units`` all ``"mV"``, ``flags`` naming
        flat or NaN leads.

    Raises
    ------
    DataNotFoundError
        The file or header does not exist.
    DataError
        Unreadable or inconsistent file.
    SignalError
        Missing/invalid ``fs``, a unit that is not a voltage, no samples, or ``fs`` below
        ``min_fs_hz``.

    Warns
    -----
    RecordQualityWarning
        A lead is flat or holds NaN samples (also listed in ``EcgRecord.flags``).
    """
    p = Path(path)
    fmt = detect_format(p)
    source = str(p)
    if fmt == "csv":
        if fs is None:
            raise SignalError(
                f"{source}: a CSV file carries no sampling rate; give fs (the CLI's --fs) in Hz"
            )
        signal, names, name = _read_csv(p, lead_names)
        file_units = (
            (units,) * len(names) if isinstance(units, str) or units is None else tuple(units)
        )
        file_units = tuple(u or "mV" for u in file_units)
        if len(file_units) != len(names):
            raise SignalError(f"{source}: {len(file_units)} units for {len(names)} leads")
        rec_fs = float(fs)
    else:
        signal, rec_fs, names, file_units, name = _read_wfdb(p) if fmt == "wfdb" else _read_edf(p)
        if fs is not None and not math.isclose(float(fs), rec_fs, rel_tol=1e-6):
            raise SignalError(
                f"{source}: fs={fs:g} Hz was given but the file says {rec_fs:g} Hz; omit fs or "
                "resample the record"
            )
    if not math.isfinite(rec_fs) or rec_fs <= 0:
        raise SignalError(f"{source}: fs must be a positive sampling rate in Hz, got {rec_fs!r}")
    if min_fs_hz is not None:
        check_processing_fs(rec_fs, min_fs_hz=min_fs_hz, source=source)
    if lead_names is not None and not (fmt == "csv" and tuple(lead_names) == names):
        missing = [n for n in lead_names if n not in names]
        if missing:
            raise SignalError(
                f"{source}: lead(s) {missing} not in this record; it has {list(names)}"
            )
        cols = [names.index(n) for n in lead_names]
        signal, names = signal[:, cols], tuple(lead_names)
        file_units = tuple(file_units[c] for c in cols)
    if signal.shape[0] == 0:
        raise SignalError(f"{source}: the record holds no samples")
    signal = to_millivolts(
        signal, file_units, lead_names=names, adu_per_mv=adu_per_mv, source=source
    )
    flags = quality_flags(signal, names)
    if flags:
        warnings.warn(
            f"{source}: {'; '.join(flags)} (read anyway and flagged)",
            RecordQualityWarning,
            stacklevel=2,
        )
    return EcgRecord(
        name=name,
        signal=signal,
        fs=rec_fs,
        lead_names=tuple(names),
        units=("mV",) * len(names),
        path=p if fmt != "wfdb" else _wfdb_base(p),
        flags=flags,
    )


def _folder_records(folder: Path) -> list[Path]:
    records_file = folder / "RECORDS"
    out: list[Path] = []
    if records_file.is_file():
        for line in records_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            target = folder / line
            if target.is_dir():
                out.extend(_folder_records(target))
            else:
                out.append(target)
    else:
        out.extend(sorted(h.with_suffix("") for h in folder.glob("*.hea")))
    listed = set(out)
    for suffix in (*EDF_SUFFIXES, ".csv", ".tsv"):
        for f in sorted(folder.glob(f"*{suffix}")):
            if f not in listed:
                out.append(f)
    return out


def expand_record_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Records named by ``paths``, where a folder stands for the records in it.

    A folder gives the records its ``RECORDS`` file lists (PhysioNet convention; a listed
    sub-folder is expanded too), or, without one, its ``*.hea`` files in name order; EDF and CSV
    files in it follow. A file or a WFDB record path (without extension) is kept; WFDB paths are
    returned without extension. Duplicates are dropped, the first occurrence kept.

    Raises
    ------
    DataNotFoundError
        A path that is neither a folder, a file nor a WFDB record, or a folder with no records.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = _folder_records(p)
            if not found:
                raise DataNotFoundError(
                    f"{p}: folder holds no records (no RECORDS file, .hea, EDF or CSV files)"
                )
        elif p.is_file() or Path(f"{p}.hea").is_file():
            found = [_wfdb_base(p) if detect_format(p) == "wfdb" else p]
        else:
            raise DataNotFoundError(f"{p}: no such record, file or folder")
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out
