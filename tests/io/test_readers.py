"""``heartline.io.readers``: WFDB / EDF / CSV records in mV, folder expansion, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import wfdb

from heartline.errors import DataError, DataNotFoundError, SignalError
from heartline.io.readers import (
    RecordQualityWarning,
    check_processing_fs,
    detect_format,
    expand_record_paths,
    read_ecg,
)

FS = 250.0


def _signal(n: int = 1000, n_leads: int = 2) -> np.ndarray:
    t = np.arange(n) / FS
    cols = [np.sin(2 * np.pi * (1.0 + j) * t) * (1.0 + 0.5 * j) for j in range(n_leads)]
    return np.column_stack(cols)


def _write_wfdb(
    folder, name: str, sig: np.ndarray, *, names=("II", "V1"), units=None, gain=1000.0
) -> None:
    wfdb.wrsamp(
        name,
        fs=FS,
        units=list(units or ["mV"] * sig.shape[1]),
        sig_name=list(names),
        p_signal=sig,
        fmt=["16"] * sig.shape[1],
        adc_gain=[gain] * sig.shape[1],
        baseline=[0] * sig.shape[1],
        write_dir=str(folder),
    )


def test_wfdb_by_name_hea_and_dat(tmp_path) -> None:
    sig = _signal()
    _write_wfdb(tmp_path, "rec1", sig)
    for p in (tmp_path / "rec1", tmp_path / "rec1.hea", tmp_path / "rec1.dat"):
        rec = read_ecg(p)
        assert rec.name == "rec1" and rec.fs == FS and rec.lead_names == ("II", "V1")
        assert rec.units == ("mV", "mV") and rec.flags == ()
        np.testing.assert_allclose(rec.signal, sig, atol=1e-3)
    only = read_ecg(tmp_path / "rec1", lead_names=["V1"])
    assert only.lead_names == ("V1",)
    np.testing.assert_allclose(only.signal[:, 0], sig[:, 1], atol=1e-3)


def test_wfdb_units_converted_to_mv(tmp_path) -> None:
    sig = _signal() * 1000.0  # in uV
    _write_wfdb(tmp_path, "uv", sig, units=["uV", "uV"], gain=10.0)
    rec = read_ecg(tmp_path / "uv")
    assert rec.units == ("mV", "mV")
    np.testing.assert_allclose(rec.signal, sig / 1000.0, atol=1e-3)


def test_wfdb_unknown_unit_is_refused(tmp_path) -> None:
    _write_wfdb(tmp_path, "bp", _signal(), units=["mmHg", "mV"])
    with pytest.raises(SignalError, match=r"'II'.*'mmHg'.*not a voltage"):
        read_ecg(tmp_path / "bp")


def test_cinc2017_mat_record(data_dir) -> None:
    rec = read_ecg(data_dir / "cinc2017" / "A00002.mat")
    assert rec.fs == 300.0 and rec.lead_names == ("ECG",) and rec.name == "A00002"
    assert rec.n_samples == 9000 and np.isfinite(rec.signal).all()


def test_edf_file(tmp_path, write_edf) -> None:
    sig = _signal(n=1000)
    edf = tmp_path / "e1.edf"
    write_edf(edf, sig, ["II", "V1"])
    assert detect_format(edf) == "edf"
    rec = read_ecg(edf)
    assert rec.fs == FS and rec.lead_names == ("II", "V1") and rec.units == ("mV", "mV")
    assert rec.name == "e1" and rec.n_samples == 1000
    np.testing.assert_allclose(rec.signal, sig, atol=1e-3)
    with pytest.raises(SignalError, match="file says 250 Hz"):
        read_ecg(edf, fs=360)
    uv = tmp_path / "uv.edf"
    write_edf(uv, sig * 1000.0 / 1000.0, ["II", "V1"], unit="uV")
    np.testing.assert_allclose(read_ecg(uv).signal, sig / 1000.0, atol=1e-6)


def test_csv_needs_fs_and_names_leads(tmp_path) -> None:
    sig = _signal()
    path = tmp_path / "rec.csv"
    t = np.arange(sig.shape[0]) / FS
    np.savetxt(path, np.column_stack([t, sig]), delimiter=",", header="time_s,II,V5", comments="")
    with pytest.raises(SignalError, match=r"no sampling rate.*--fs"):
        read_ecg(path)
    rec = read_ecg(path, fs=FS)
    assert rec.lead_names == ("II", "V5") and rec.name == "rec" and rec.fs == FS
    np.testing.assert_allclose(rec.signal, sig, atol=1e-9)
    uv = read_ecg(path, fs=FS, units="uV")
    np.testing.assert_allclose(uv.signal, sig / 1000.0, atol=1e-12)
    with pytest.raises(SignalError, match=r"\['aVR'\] not in this record; it has \['II', 'V5'\]"):
        read_ecg(path, fs=FS, lead_names=["aVR"])


def test_csv_without_header(tmp_path) -> None:
    path = tmp_path / "raw.csv"
    np.savetxt(path, _signal(n_leads=1), delimiter=",")
    with pytest.raises(DataError, match="no header row"):
        read_ecg(path, fs=FS)
    assert read_ecg(path, fs=FS, lead_names=["ECG"]).lead_names == ("ECG",)


@pytest.mark.parametrize("fs", [0.0, -5.0, float("nan")])
def test_bad_fs(tmp_path, fs) -> None:
    path = tmp_path / "rec.csv"
    np.savetxt(path, _signal(n_leads=1), delimiter=",", header="II", comments="")
    with pytest.raises(SignalError, match="positive sampling rate"):
        read_ecg(path, fs=fs)


def test_low_fs_refused_for_processing(tmp_path) -> None:
    path = tmp_path / "rec.csv"
    np.savetxt(path, _signal(n_leads=1), delimiter=",", header="II", comments="")
    assert read_ecg(path, fs=50.0).fs == 50.0  # reading is fine
    with pytest.raises(SignalError, match="50 Hz is below the 100 Hz"):
        read_ecg(path, fs=50.0, min_fs_hz=100.0)
    with pytest.raises(SignalError, match="below"):
        check_processing_fs(80.0)


def test_flat_and_nan_leads_are_flagged_not_fatal(tmp_path) -> None:
    sig = _signal()
    sig[:, 1] = 0.25
    sig[:100, 0] = np.nan
    path = tmp_path / "bad.csv"
    np.savetxt(path, sig, delimiter=",", header="II,V1", comments="")
    with pytest.warns(RecordQualityWarning, match="V1: flat"):
        rec = read_ecg(path, fs=FS)
    assert rec.flags == ("II: 10.0 % NaN", "V1: flat")
    with pytest.warns(RecordQualityWarning):
        assert read_ecg(path, fs=FS, lead_names=["II"]).flags == ("II: 10.0 % NaN",)
    good = tmp_path / "good.csv"
    np.savetxt(good, _signal(), delimiter=",", header="II,V1", comments="")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_ecg(good, fs=FS).flags == ()


def test_unknown_format_and_missing(tmp_path) -> None:
    odd = tmp_path / "scan.xyz"
    odd.write_text("1,2\n")
    with pytest.raises(ValueError, match=r"unknown record format '\.xyz'"):
        read_ecg(odd)
    with pytest.raises(DataNotFoundError, match="no WFDB header"):
        read_ecg(tmp_path / "nothing")
    with pytest.raises(DataNotFoundError, match="EDF file not found"):
        read_ecg(tmp_path / "nothing.edf")


def test_expand_record_paths(tmp_path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    for name in ("b2", "a1"):
        _write_wfdb(folder, name, _signal())
    np.savetxt(folder / "z.csv", _signal(n_leads=1), delimiter=",", header="II", comments="")
    # no RECORDS file: headers in name order, then CSV files
    assert expand_record_paths([folder]) == [folder / "a1", folder / "b2", folder / "z.csv"]
    (folder / "RECORDS").write_text("b2\n# comment\n\na1\n")
    assert expand_record_paths([folder]) == [folder / "b2", folder / "a1", folder / "z.csv"]
    # files and record paths are kept (without extension for WFDB); duplicates dropped
    got = expand_record_paths([folder / "a1.hea", folder, folder / "z.csv"])
    assert got == [folder / "a1", folder / "b2", folder / "z.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="holds no records"):
        expand_record_paths([empty])
    with pytest.raises(DataNotFoundError, match="not found"):
        expand_record_paths([tmp_path / "missing"])
    with pytest.raises(ValueError, match="unknown record format"):
        expand_record_paths([tmp_path / "scan.xyz"])
