"""Typed WFDB record and annotation readers.

Records are read through :mod:`wfdb` (Xie et al., wfdb-python) and returned as frozen
dataclasses that carry the sampling rate, units and lead names, so that no caller has to
remember a hidden default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heartline.errors import DataError, DataNotFoundError

__all__ = ["Annotations", "EcgRecord", "read_annotations", "read_record"]


@dataclass(frozen=True)
class EcgRecord:
    """A multi-lead ECG record in physical units.

    Attributes
    ----------
    name : str
        Record name, e.g. ``"100"``.
    signal : numpy.ndarray
        Samples, shape ``(n_samples, n_leads)``, float64, in ``units``.
    fs : float
        Sampling rate in Hz.
    lead_names : tuple of str
        One name per column of ``signal`` (``"MLII"``, ``"V1"``...).
    units : tuple of str
        Physical unit per lead (usually ``"mV"``).
    path : pathlib.Path or None
        Record path without extension, when read from disk.
    flags : tuple of str
        Signal problems found when reading (``"II: flat"``, ``"V1: 3.2 % NaN"``), see
        :func:`heartline.io.readers.read_ecg`; empty when none were looked for or found.
    """

    name: str
    signal: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    units: tuple[str, ...]
    path: Path | None = field(default=None, compare=False)
    flags: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.signal.ndim != 2:
            raise ValueError(
                f"signal must be 2-D (n_samples, n_leads), got shape {self.signal.shape}"
            )
        if not (self.fs > 0):
            raise ValueError(f"fs must be > 0 Hz, got {self.fs}")
        if len(self.lead_names) != self.signal.shape[1]:
            raise ValueError("lead_names must have one entry per signal column")

    @property
    def n_samples(self) -> int:
        """Number of samples per lead."""
        return int(self.signal.shape[0])

    @property
    def n_leads(self) -> int:
        """Number of leads."""
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        """Record duration in seconds."""
        return self.n_samples / self.fs

    def lead(self, lead: int | str = 0) -> np.ndarray:
        """Return one lead as a 1-D array, by index or by name."""
        if isinstance(lead, str):
            if lead not in self.lead_names:
                raise ValueError(f"unknown lead {lead!r}; this record has {list(self.lead_names)}")
            lead = self.lead_names.index(lead)
        return self.signal[:, lead]


@dataclass(frozen=True)
class Annotations:
    """Annotations of one record (sample positions at the record's own ``fs``).

    Attributes
    ----------
    record : str
        Record name.
    sample_idx : numpy.ndarray
        int64 sample positions.
    symbol : numpy.ndarray
        Annotation symbols (str), e.g. ``"N"``, ``"V"``, ``"+"``.
    fs : float
        Sampling rate in Hz of the annotated record.
    aux_note : tuple of str
        Auxiliary notes (rhythm labels such as ``"(AFIB"``), one per annotation.
    """

    record: str
    sample_idx: np.ndarray
    symbol: np.ndarray
    fs: float
    aux_note: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])

    def beats(self) -> Annotations:
        """Only the beat annotations (see :data:`heartline.data.aami.BEAT_SYMBOLS`)."""
        from heartline.data.aami import BEAT_SYMBOLS

        mask = np.isin(self.symbol, list(BEAT_SYMBOLS))
        aux = (
            tuple(a for a, m in zip(self.aux_note, mask, strict=False) if m)
            if self.aux_note
            else ()
        )
        return Annotations(self.record, self.sample_idx[mask], self.symbol[mask], self.fs, aux)


def _split_path(record: str | os.PathLike[str]) -> Path:
    path = Path(record)
    if path.suffix in {".hea", ".dat", ".atr"}:
        path = path.with_suffix("")
    return path


def read_record(
    record: str | os.PathLike[str],
    *,
    channels: list[int] | None = None,
    sampfrom: int = 0,
    sampto: int | None = None,
) -> EcgRecord:
    """Read a WFDB record from disk.

    Parameters
    ----------
    record : str or path-like
        Path of the record without extension (``.../mitdb/100``); a ``.hea`` suffix is accepted.
    channels : list of int, optional
        Leads to read (all by default).
    sampfrom, sampto : int
        Half-open sample range to read.

    Returns
    -------
    EcgRecord

    Raises
    ------
    DataNotFoundError
        The header does not exist.
    DataError
        The header or signal file is unreadable, truncated or inconsistent.
    """
    import wfdb

    path = _split_path(record)
    hea = path.with_suffix(".hea")
    if not hea.exists():
        raise DataNotFoundError(f"{hea}: record header not found")
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types on bad headers
        raise DataError(f"{hea}: unreadable WFDB header ({exc})") from exc
    # Check that the signal files hold every sample the header promises before reading.
    from heartline.io.check import check_signal_files

    problems = check_signal_files(path, header=header, verify_checksums=False)
    if problems:
        raise DataError("; ".join(problems))
    try:
        rec = wfdb.rdrecord(str(path), channels=channels, sampfrom=sampfrom, sampto=sampto)
    except Exception as exc:
        raise DataError(f"{path}: cannot read signal ({exc})") from exc
    signal = np.asarray(rec.p_signal, dtype=np.float64)
    return EcgRecord(
        name=str(rec.record_name),
        signal=signal,
        fs=float(rec.fs),
        lead_names=tuple(str(s) for s in rec.sig_name),
        units=tuple(str(u) for u in rec.units),
        path=path,
    )


def read_annotations(
    record: str | os.PathLike[str],
    *,
    extension: str = "atr",
    sampfrom: int = 0,
    sampto: int | None = None,
) -> Annotations:
    """Read a WFDB annotation file.

    Parameters
    ----------
    record : str or path-like
        Record path without extension.
    extension : str
        Annotator extension, ``"atr"`` for the reference beat labels.
    sampfrom, sampto : int
        Keep only annotations in ``[sampfrom, sampto)``.

    Returns
    -------
    Annotations
    """
    import wfdb

    path = _split_path(record)
    ann_file = Path(f"{path}.{extension}")
    if not ann_file.exists():
        raise DataNotFoundError(f"{ann_file}: annotation file not found")
    try:
        ann = wfdb.rdann(str(path), extension, sampfrom=sampfrom, sampto=sampto)
    except Exception as exc:
        raise DataError(f"{ann_file}: unreadable annotation file ({exc})") from exc
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol, dtype=str)
    aux = tuple(str(a) for a in (ann.aux_note or [""] * len(samples)))
    fs = float(ann.fs) if ann.fs else float("nan")
    if not np.isfinite(fs):
        try:
            fs = float(wfdb.rdheader(str(path)).fs)
        except Exception:  # pragma: no cover - header missing, keep nan
            pass
    return Annotations(path.name, samples, symbols, fs, aux)
