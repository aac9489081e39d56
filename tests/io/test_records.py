from __future__ import annotations

import shutil

import numpy as np
import pytest

from heartline.errors import DataError, DataNotFoundError
from heartline.io import read_annotations, read_record
from heartline.io.check import check_record


def test_read_record_carries_fs_units_and_leads(mitdb_dir):
    rec = read_record(mitdb_dir / "100")
    assert rec.fs == 360.0
    assert rec.lead_names == ("MLII", "V5")
    assert rec.units == ("mV", "mV")
    assert rec.signal.shape == (650000, 2)
    assert np.isclose(rec.duration_s, 650000 / 360)
    assert np.array_equal(rec.lead("V5"), rec.signal[:, 1])
    with pytest.raises(ValueError, match="unknown lead"):
        rec.lead("V1")


def test_read_annotations_beats_only(mitdb_dir):
    ann = read_annotations(mitdb_dir / "100")
    beats = ann.beats()
    assert len(beats) == 2273
    assert len(ann) > len(beats)
    assert beats.fs == 360.0


def test_missing_record_says_so(tmp_path):
    with pytest.raises(DataNotFoundError, match="not found"):
        read_record(tmp_path / "nope")


@pytest.fixture()
def copied_record(tmp_path, mitdb_dir):
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb_dir / f"100.{ext}", tmp_path / f"100.{ext}")
    return tmp_path / "100"


def test_truncated_dat_is_named(copied_record):
    dat = copied_record.with_suffix(".dat")
    data = dat.read_bytes()
    dat.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"100\.dat: truncated"):
        read_record(copied_record)
    result = check_record(copied_record)
    assert not result.ok and "truncated" in result.problems[0]


def test_corrupt_dat_fails_checksum(copied_record):
    dat = copied_record.with_suffix(".dat")
    data = bytearray(dat.read_bytes())
    data[1000:1010] = bytes(10)
    dat.write_bytes(bytes(data))
    result = check_record(copied_record)
    assert not result.ok
    assert any("checksum mismatch" in p for p in result.problems)


def test_garbage_header_is_a_data_error(copied_record):
    copied_record.with_suffix(".hea").write_text("this is not a header\n")
    with pytest.raises(DataError, match=r"100\.hea"):
        read_record(copied_record)


def test_sound_record_checks_ok(mitdb_dir):
    assert check_record(mitdb_dir / "100").ok
