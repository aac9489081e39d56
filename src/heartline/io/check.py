"""Integrity checks for WFDB records: file sizes against the header, and header checksums.

A truncated or corrupt file gets a message naming the file and the problem, never a traceback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RecordCheck", "check_record", "check_signal_files"]

# Bits per sample of each WFDB storage format (see the WFDB ``signal(5)`` manual page).
_BITS_PER_SAMPLE: dict[str, float] = {
    "8": 8,
    "16": 16,
    "24": 24,
    "32": 32,
    "61": 16,
    "80": 8,
    "160": 16,
    "212": 12,
    "310": 32 / 3,
    "311": 32 / 3,
}


@dataclass(frozen=True)
class RecordCheck:
    """Outcome of :func:`check_record` for one record."""

    record: str
    ok: bool
    problems: tuple[str, ...]


def check_signal_files(
    path: str | os.PathLike[str], *, header=None, verify_checksums: bool = True
) -> list[str]:
    """Return a list of problems with the signal files of a record (empty when sound).

    Parameters
    ----------
    path : path-like
        Record path without extension.
    header : wfdb.Record, optional
        Already-read header (read from ``path`` when omitted).
    verify_checksums : bool
        Also read the samples and compare each signal's sum (mod 65536) with the header's
        checksum, and the first sample with the header's initial value.
    """
    import wfdb

    path = Path(path)
    problems: list[str] = []
    if header is None:
        try:
            header = wfdb.rdheader(str(path))
        except Exception as exc:
            return [f"{path.with_suffix('.hea')}: unreadable WFDB header ({exc})"]
    if header.sig_len is None or header.n_sig in (None, 0):
        return problems
    # Group signals by file: each file must hold sig_len frames of its signals.
    files: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name or []):
        files.setdefault(name, []).append(i)
    for fname, sig_idx in files.items():
        fpath = path.parent / fname
        if not fpath.exists():
            problems.append(f"{fpath}: signal file missing")
            continue
        fmt = str(header.fmt[sig_idx[0]])
        bits = _BITS_PER_SAMPLE.get(fmt)
        if bits is None:
            continue
        spf = [int((header.samps_per_frame or [1] * header.n_sig)[i] or 1) for i in sig_idx]
        offset = int((header.byte_offset or [0] * header.n_sig)[sig_idx[0]] or 0)
        expected = offset + math.ceil(header.sig_len * sum(spf) * bits / 8)
        actual = fpath.stat().st_size
        if actual < expected:
            problems.append(
                f"{fpath}: truncated, {actual} bytes on disk but the header implies {expected} "
                f"({header.sig_len} samples x {len(sig_idx)} signals, format {fmt})"
            )
        elif actual > expected + 2:
            problems.append(
                f"{fpath}: {actual} bytes on disk, more than the {expected} the header implies"
            )
    if problems or not verify_checksums:
        return problems
    try:
        rec = wfdb.rdrecord(str(path), physical=False)
    except Exception as exc:
        return [f"{path}: cannot read signal ({exc})"]
    digital = np.asarray(rec.d_signal, dtype=np.int64)
    for i in range(rec.n_sig):
        name = rec.sig_name[i]
        if rec.checksum is not None and rec.checksum[i] is not None:
            got = int(digital[:, i].sum()) & 0xFFFF
            want = int(rec.checksum[i]) & 0xFFFF
            if got != want:
                problems.append(
                    f"{path.parent / rec.file_name[i]}: checksum mismatch on signal {name!r} "
                    f"(header {want}, data {got}): the file is corrupt"
                )
        if rec.init_value is not None and rec.init_value[i] is not None and digital.shape[0]:
            if int(digital[0, i]) != int(rec.init_value[i]):
                problems.append(
                    f"{path.parent / rec.file_name[i]}: first sample of {name!r} is {int(digital[0, i])}, "
                    f"header says {int(rec.init_value[i])}"
                )
    return problems


def check_record(
    path: str | os.PathLike[str], *, annotations: tuple[str, ...] = ("atr",)
) -> RecordCheck:
    """Check a record's header, signal files (size, checksums) and annotation files.

    Parameters
    ----------
    path : path-like
        Record path without extension.
    annotations : tuple of str
        Annotation extensions to try to read when present.
    """
    import wfdb

    path = Path(path)
    hea = path.with_suffix(".hea")
    if not hea.exists():
        return RecordCheck(path.name, False, (f"{hea}: header missing",))
    problems = check_signal_files(path, verify_checksums=True)
    for ext in annotations:
        ann = Path(f"{path}.{ext}")
        if not ann.exists():
            continue
        try:
            a = wfdb.rdann(str(path), ext)
            if len(a.sample) and not problems:
                hdr = wfdb.rdheader(str(path))
                if hdr.sig_len is not None and int(np.max(a.sample)) > hdr.sig_len:
                    problems.append(f"{ann}: annotations beyond the end of the signal")
        except Exception as exc:
            problems.append(f"{ann}: unreadable annotation file ({type(exc).__name__}: {exc})")
    return RecordCheck(path.name, not problems, tuple(problems))
