"""The notebook API: ``heartline.classify`` / ``read_record`` / ``detect_r_peaks``, model choice."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import heartline
from heartline.api import BeatTable
from heartline.data.paths import record_path
from heartline.edge.model_select import (
    LeadMismatchError,
    beat_model_specs,
    canonical_lead,
    select_beat_model,
)
from heartline.errors import SignalError
from heartline.io import read_record as read_wfdb
from heartline.pipeline import classify_record


def test_top_level_import_is_light() -> None:
    code = (
        "import sys, heartline\n"
        "assert callable(heartline.classify) and callable(heartline.read_record)\n"
        "assert callable(heartline.detect_r_peaks)\n"
        "bad = [m for m in ('torch', 'pandas', 'heartline.models', 'heartline.training') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        heartline.nope  # noqa: B018


def test_top_level_names_are_the_api_modules_names() -> None:
    """``heartline._API`` (served lazily) lists exactly :data:`heartline.api.__all__`."""
    from heartline import api

    assert sorted(heartline._API) == sorted(api.__all__)
    for name in api.__all__:
        assert getattr(heartline, name) is getattr(api, name)


def test_classify_matches_the_pipeline(data_dir, tiny_model_path, tiny_model) -> None:
    rec = read_wfdb(record_path("mitdb", "208", data_dir=data_dir))
    sig = rec.signal[: 360 * 40]
    table = heartline.classify(sig, fs=rec.fs, leads=rec.lead_names, model=tiny_model_path)
    assert isinstance(table, BeatTable) and table.leads_used == ("MLII", "V1")
    ref = classify_record(
        type(rec)(rec.name, sig, rec.fs, rec.lead_names, rec.units), model=tiny_model
    )
    assert table.sample_idx.tolist() == ref.sample_idx.tolist()
    np.testing.assert_allclose(table.probabilities, ref.probabilities, atol=1e-6)
    df = table.to_dataframe()
    assert list(df.columns[:5]) == ["sample", "time_s", "label", "confidence", "quality_ok"]
    assert len(df) == len(table) and set(df["lead"]) == {"MLII+V1"}
    s = table.summary()
    assert s.n_beats == len(table) and sum(s.counts.values()) == len(table)
    rr = np.diff(table.sample_idx) / rec.fs
    assert s.mean_hr_bpm == pytest.approx(60.0 / rr.mean())
    assert 40 < s.mean_hr_bpm < 160


def test_classify_arguments(data_dir, tiny_model_path) -> None:
    x = np.zeros((3600, 2))
    with pytest.raises(ValueError, match="name the 2 columns"):
        heartline.classify(x, fs=360.0, model=tiny_model_path)
    with pytest.raises(SignalError, match="fs"):
        heartline.classify(x[:, 0], fs=None, model=tiny_model_path)
    with pytest.raises(SignalError, match="below the 100 Hz"):
        heartline.classify(x, fs=80.0, leads=["MLII", "V1"], model=tiny_model_path)
    # a flat line is classified as no beats, not a crash
    flat = heartline.classify(x, fs=360.0, leads=["MLII", "V1"], model=tiny_model_path)
    assert len(flat) == 0 and np.isnan(flat.summary().mean_hr_bpm)


def test_detect_r_peaks_registry(data_dir) -> None:
    rec = read_wfdb(record_path("mitdb", "100", data_dir=data_dir))
    peaks = heartline.detect_r_peaks(rec.lead(0)[: 360 * 20], fs=rec.fs)
    assert 18 <= len(peaks.sample_idx) <= 35
    with pytest.raises(ValueError, match="valid methods"):
        heartline.detect_r_peaks(rec.lead(0), fs=rec.fs, method="nope")


def test_canonical_lead_names() -> None:
    assert {canonical_lead(n) for n in ("MLII", "ML II", "II", "lead II", "ml2")} == {"II"}
    assert canonical_lead("V1") == "V1" and canonical_lead("ECG") == "ECG"


def test_model_choice_from_leads() -> None:
    specs = beat_model_specs()
    two = next(s for s in specs if s.n_leads == 2)
    one = next(s for s in specs if s.n_leads == 1)
    both = [two, one]
    c = select_beat_model(["MLII", "V1"], specs=both)
    assert c.spec is two and c.columns == (0, 1)
    c = select_beat_model(["V1", "MLII"], specs=both)
    assert c.spec is two and c.columns == (1, 0) and c.leads_used == ("MLII", "V1")
    c = select_beat_model(["ECG"], specs=both)
    assert c.spec is one and c.columns == (0,) and "ECG as MLII" in c.note
    twelve = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    c = select_beat_model(twelve, specs=both)
    assert c.spec is one and c.leads_used == ("II",) and "12-lead" in c.note
    c = select_beat_model(["MLII", "III"], specs=both)  # III is not a second lead it knows
    assert c.spec is one and "III is not one" in c.note
    with pytest.raises(LeadMismatchError, match=r"\['V5', 'V2'\].*none is MLII/II"):
        select_beat_model(["V5", "V2"], specs=both)
    c = select_beat_model(["V5", "V2"], lead="V2", specs=both)
    assert c.spec is one and c.columns == (1,) and "chosen by the caller" in c.note
    with pytest.raises(LeadMismatchError, match="no single-lead beat model"):
        select_beat_model(["ECG"], specs=[two])
    with pytest.raises(LeadMismatchError, match="'aVF' is not in"):
        select_beat_model(["MLII", "V1"], lead="aVF", specs=both)


def test_shipped_registry_lists_both_models() -> None:
    specs = {s.name: s for s in beat_model_specs()}
    assert specs["hybrid"].n_leads == 2 and specs["hybrid"].installed
    assert specs["hybrid_mlii"].n_leads == 1
    assert specs["hybrid"].needs() == "MLII (or II) + V1 / V2 / V4 / V5"


def test_classify_af_gate_reports_s_calls_in_af_as_n(data_dir) -> None:
    """``classify(..., af_gate=True)``: the S calls of beats in AF (record 201 starts in AF)
    become N, every other beat and label as without the gate; the note says how many."""
    from heartline.edge.rhythm import shipped_rhythm_model_path

    if not shipped_rhythm_model_path().is_file():
        pytest.skip("shipped rhythm model not installed")
    rec = heartline.read_record(data_dir / "mitdb" / "201")
    x = rec.signal[: 90 * round(rec.fs), 0]
    off = heartline.classify(x, fs=rec.fs, leads=["MLII"])
    on = heartline.classify(x, fs=rec.fs, leads=["MLII"], af_gate=True)
    np.testing.assert_array_equal(off.sample_idx, on.sample_idx)
    changed = np.asarray(off.labels) != np.asarray(on.labels)
    assert changed.sum() > 0, "no S call in 201's AF: the test checks nothing"
    assert set(np.asarray(off.labels)[changed]) == {"S"}
    assert set(np.asarray(on.labels)[changed]) == {"N"}
    s, n = on.classes.index("S"), on.classes.index("N")
    np.testing.assert_allclose(on.probabilities[changed, s], 0.0)
    np.testing.assert_allclose(
        on.probabilities[changed, n],
        off.probabilities[changed, n] + off.probabilities[changed, s],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(on.probabilities[~changed], off.probabilities[~changed])
    assert f"AF gate: {int(changed.sum())} S call(s)" in on.note
    assert "AF gate" not in off.note
