"""PTB-XL loader: labels, folds, metadata masks, bad input (real subset in ../shared/data/ptbxl)."""

from __future__ import annotations

import ast
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heartline.data.ptbxl import (
    LEADS_12,
    METADATA_FEATURES,
    SUPERCLASSES,
    load_ptbxl,
    parse_metadata,
    select_leads,
    superdiagnostic_labels,
)
from heartline.errors import DataError, DataNotFoundError, HeartlineWarning


@pytest.fixture(scope="module")
def ptbxl(data_dir: Path):
    return load_ptbxl(data_dir=data_dir, max_records=60)


def test_shapes_leads_fs_and_folds(ptbxl) -> None:
    assert ptbxl.signals.shape == (60, 12, 1000)
    assert ptbxl.fs == 100.0 and ptbxl.lead_names == LEADS_12
    assert set(np.unique(ptbxl.strat_fold)) <= set(range(1, 11))
    assert np.isfinite(ptbxl.signals).all()
    # amplitudes in mV (a 12-lead ECG is within +-10 mV)
    assert 0.05 < np.abs(ptbxl.signals).max() < 20


def test_labels_follow_scp_statements(ptbxl, data_dir: Path) -> None:
    table = pd.read_csv(data_dir / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id").iloc[:60]
    st = pd.read_csv(data_dir / "ptbxl" / "scp_statements.csv", index_col=0)
    for i, codes in enumerate(table["scp_codes"]):
        d = ast.literal_eval(codes)
        want = {
            st.loc[c, "diagnostic_class"]
            for c in d
            if c in st.index and st.loc[c, "diagnostic"] == 1
        }
        got = {SUPERCLASSES[j] for j in np.flatnonzero(ptbxl.labels[i])}
        assert got == want, table.index[i]
    # record 1 is NORM (scp_codes {'NORM': 100, 'LVOLT': 0, 'SR': 0})
    assert ptbxl.labels[0].tolist() == [1, 0, 0, 0, 0]


def test_full_subset_class_counts(data_dir: Path) -> None:
    """The 500-record subset: 488 records with a superclass (as the outside check counted)."""
    d = load_ptbxl(data_dir=data_dir).labelled()
    assert len(d) == 488
    assert dict(zip(SUPERCLASSES, d.labels.sum(0).tolist(), strict=True)) == {
        "NORM": 297, "MI": 73, "STTC": 96, "CD": 78, "HYP": 40,
    }  # fmt: skip
    assert any("without a superdiagnostic" in n for n in d.notes)


def test_metadata_masks_match_missing_values(ptbxl) -> None:
    m = ptbxl.metadata
    assert m.values.shape == (60, len(METADATA_FEATURES))
    assert np.array_equal(m.present, np.isfinite(m.values))
    # BMI only where height and weight are both known
    assert np.array_equal(m.present[:, 4], m.present[:, 2] & m.present[:, 3])
    assert (~m.present[:, 2]).sum() > 0  # heights are often missing in PTB-XL
    assert any("height_cm" in n for n in ptbxl.notes)


def test_likelihood_threshold() -> None:
    st = pd.DataFrame(
        {"diagnostic": [1.0, 1.0, np.nan], "diagnostic_class": ["NORM", "MI", np.nan]},
        index=["NORM", "IMI", "SR"],
    )
    codes = [{"IMI": 35.0, "SR": 0.0}, {"NORM": 0.0}]
    assert superdiagnostic_labels(codes, st).tolist() == [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert superdiagnostic_labels(codes, st, min_likelihood=50).sum() == 0
    with pytest.raises(ValueError, match="min_likelihood"):
        superdiagnostic_labels(codes, st, min_likelihood=150)


def test_age_300_unknown_sex_and_implausible_values() -> None:
    table = pd.DataFrame(
        {"age": [300, 45, np.nan, 150], "sex": [0, 1, 2, np.nan], "height": [170, 20, np.nan, 180],
         "weight": [70, 60, 80, np.nan], "device": ["CS-12", None, "AT-6", "AT-6"], "site": [1, np.nan, 2, 0]}
    )  # fmt: skip
    with pytest.warns(HeartlineWarning, match="sex codes"):
        meta, notes = parse_metadata(table)
    assert meta.values[0, 0] == 90.0 and meta.age_over_89.tolist() == [True, False, False, False]
    assert meta.present[:, 0].tolist() == [True, True, False, False]  # NaN and 150 y missing
    assert meta.values[:2, 1].tolist() == [1.0, 0.0]  # 0 = male
    assert meta.present[:, 1].tolist() == [True, True, False, False]  # code 2 and blank missing
    assert meta.present[:, 2].tolist() == [True, False, False, True]  # 20 cm is not a height
    assert meta.values[0, 4] == pytest.approx(70 / 1.7**2, rel=1e-5)
    assert meta.site.tolist() == [1, -1, 2, 0] and meta.device[1] == ""
    text = " ".join(notes)
    assert "coded 300" in text and "unknown sex code" in text and "outside 0-120" in text


def test_missing_metadata_column_is_reported_not_zero_filled() -> None:
    table = pd.DataFrame({"age": [50.0], "sex": [0]})
    with pytest.warns(HeartlineWarning, match="height"):
        meta, notes = parse_metadata(table)
    assert not meta.present[0, 2] and np.isnan(meta.values[0, 2])
    assert any("'height' absent" in n for n in notes)


def test_bad_fs_and_missing_folder(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="fs must be one of"):
        load_ptbxl(data_dir=data_dir, fs=250)
    if not (data_dir / "ptbxl" / "records500").is_dir():
        with pytest.raises(DataNotFoundError, match="records500"):
            load_ptbxl(data_dir=data_dir, fs=500)
    with pytest.raises(ValueError, match="unknown lead"):
        load_ptbxl(data_dir=data_dir, leads=("I", "X7"))


def test_select_leads_refuses_missing_lead() -> None:
    x = np.zeros((1, 2, 10))
    with pytest.raises(ValueError, match=r"\['V1'\] are missing"):
        select_leads(x, ("I", "II"), ["I", "V1"])


def _fake_db(tmp_path: Path, data_dir: Path, *, n_leads: int, fs: int) -> Path:
    import wfdb

    root = tmp_path / "ptbxl"
    (root / "records100" / "00000").mkdir(parents=True)
    shutil.copy(data_dir / "ptbxl" / "scp_statements.csv", root / "scp_statements.csv")
    table = pd.read_csv(data_dir / "ptbxl" / "ptbxl_database.csv").iloc[:1]
    table.to_csv(root / "ptbxl_database.csv", index=False)
    sig = np.random.default_rng(0).normal(0, 0.1, (10 * fs, n_leads))
    wfdb.wrsamp("00001_lr", fs=fs, units=["mV"] * n_leads, sig_name=list(LEADS_12[:n_leads]),
                p_signal=sig, fmt=["16"] * n_leads, write_dir=str(root / "records100" / "00000"))  # fmt: skip
    return tmp_path


def test_record_with_fewer_leads_is_named(tmp_path: Path, data_dir: Path) -> None:
    root = _fake_db(tmp_path, data_dir, n_leads=2, fs=100)
    with pytest.raises(DataError, match=r"ecg_id 1: .*missing \['III'"):
        load_ptbxl(data_dir=root)
    d = load_ptbxl(data_dir=root, leads=("I", "II"))  # what the record has works
    assert d.signals.shape == (1, 2, 1000)


def test_record_with_wrong_fs_is_named(tmp_path: Path, data_dir: Path) -> None:
    root = _fake_db(tmp_path, data_dir, n_leads=12, fs=250)
    with pytest.raises(DataError, match="sampled at 250"):
        load_ptbxl(data_dir=root)


def test_cache_round_trip(tmp_path: Path, data_dir: Path) -> None:
    a = load_ptbxl(data_dir=data_dir, max_records=5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_ptbxl(data_dir=data_dir, max_records=5, cache_dir=tmp_path)
    assert np.array_equal(a.signals, b.signals)
