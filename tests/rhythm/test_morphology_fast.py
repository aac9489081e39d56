"""The optimised beat-morphology features equal a frozen copy of the previous implementation.

:func:`heartline.features.rhythm.morphology_features_from_peaks` runs once per device every 5 s
on the live path, so it was rewritten for cost (slices instead of boolean masks, no ``np.power``,
one fancy index for the beats). Its float64 values must match the implementation it replaced
(frozen below, from commit 6220f4c) to rtol 1e-9 / atol 1e-12, and its float32 output (the
model's input) must be identical, on real CinC 2017 and MIT-BIH records and on edge cases.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from heartline.features.rhythm import (
    MORPH_FEATURE_NAMES,
    _morphology_features_f64,
    morphology_features_from_peaks,
)
from heartline.io.readers import read_ecg
from heartline.signal._validate import check_fs
from heartline.signal.filters import bandpass
from heartline.signal.rpeaks import detect_r_peaks

from .conftest import synthetic_ecg

# --- frozen reference (do not edit: it defines the expected outputs) ---------------------------


def _ref_band_ratio(seg: np.ndarray, fs: float, lo: float, hi: float) -> float:
    """Fraction of the power of ``seg`` (mean removed) between ``lo`` and ``hi`` Hz."""
    if seg.size < 8:
        return 0.0
    spec = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
    f = np.fft.rfftfreq(seg.size, 1.0 / fs)
    tot = float(spec[f >= 0.5].sum())
    return float(spec[(f >= lo) & (f < hi)].sum() / tot) if tot > 0 else 0.0


def _reference_morphology(peak_idx: np.ndarray, xf: np.ndarray, *, fs: float) -> np.ndarray:
    """The implementation of 2026-12-07 before the cost work (commit 6220f4c), verbatim."""
    fs = check_fs(fs)
    f = dict.fromkeys(MORPH_FEATURE_NAMES, 0.0)
    x = np.asarray(xf, dtype=np.float64)
    peaks = np.asarray(peak_idx, dtype=np.int64)
    if x.size >= 16:
        seg = x - x.mean()
        spec = np.abs(np.fft.rfft(seg)) ** 2
        fr = np.fft.rfftfreq(seg.size, 1.0 / fs)
        keep = (fr >= 0.5) & (fr < 40.0)
        tot = float(spec[keep].sum())
        if tot > 0:
            for name, lo, hi in (
                ("spec_0_3", 0.5, 3.0),
                ("spec_3_10", 3.0, 10.0),
                ("spec_10_20", 10.0, 20.0),
                ("spec_20_40", 20.0, 40.0),
            ):
                f[name] = float(spec[(fr >= lo) & (fr < hi)].sum() / tot)
            # spectral entropy over 1 Hz bins
            edges = np.arange(0.5, 40.5, 1.0)
            binp = np.asarray(
                [spec[(fr >= a) & (fr < a + 1.0)].sum() for a in edges[:-1]], dtype=np.float64
            )
            pb = binp[binp > 0] / max(binp.sum(), 1e-12)
            f["spec_entropy"] = float(-np.sum(pb * np.log(pb)) / np.log(len(edges) - 1))
            f["spec_peak_hz"] = float(fr[keep][int(np.argmax(spec[keep]))])
        sd = float(np.std(x))
        if sd > 0:
            f["sig_kurtosis"] = float(np.mean(((x - x.mean()) / sd) ** 4))
    if peaks.size >= 2:
        rr = np.diff(peaks) / fs
        f["frac_long_gaps"] = float(rr[rr > 2.0].sum() / max(x.size / fs, 1e-6))
    if peaks.size >= 5:
        rr = np.diff(peaks) / fs
        if rr.size >= 3 and np.std(rr[1:]) > 0 and np.std(rr[:-1]) > 0:
            f["rr_lag1_corr"] = float(np.corrcoef(rr[1:], rr[:-1])[0, 1])
        drr = np.diff(rr)
        if drr.size >= 2:
            f["rr_alternation"] = float(np.mean(drr[1:] * drr[:-1] < 0))
        sd = float(np.std(rr))
        if sd > 0:
            f["rr_skew"] = float(np.mean(((rr - rr.mean()) / sd) ** 3))
        if rr.size >= 5:
            loc = np.convolve(rr, np.ones(5) / 5.0, mode="valid")
            f["local_hr_min_bpm"] = float(60.0 / loc.max())
            f["local_hr_max_bpm"] = float(60.0 / loc.min())
    pre, post = round(0.30 * fs), round(0.45 * fs)
    ok = peaks[(peaks >= pre) & (peaks + post < x.size)]
    if ok.size >= 4:
        beats = np.stack([x[p - pre : p + post] for p in ok])
        beats = beats - np.median(beats[:, : round(0.05 * fs)], axis=1, keepdims=True)
        tmpl = np.median(beats, axis=0)
        r_amp = float(tmpl[pre])
        f["r_polarity"] = 1.0 if r_amp >= 0 else -1.0
        scale = max(abs(r_amp), float(np.max(np.abs(tmpl))) * 0.5, 1e-6)
        tc = tmpl - tmpl.mean()
        bc = beats - beats.mean(axis=1, keepdims=True)
        denom = np.linalg.norm(bc, axis=1) * max(float(np.linalg.norm(tc)), 1e-12)
        corr = (bc @ tc) / np.maximum(denom, 1e-12)
        f["tmpl_corr_median"] = float(np.median(corr))
        f["tmpl_corr_p10"] = float(np.percentile(corr, 10))
        f["frac_beats_corr_lt_080"] = float(np.mean(corr < 0.8))
        # premature (short preceding RR) and unlike the template: ectopic beats
        rr_ok = np.diff(peaks) / fs
        med_rr = float(np.median(rr_ok)) if rr_ok.size else 1.0
        prev_rr = np.interp(ok, peaks[1:], rr_ok) if rr_ok.size else np.full(ok.size, med_rr)
        f["frac_premature_abnormal"] = float(np.mean((prev_rr < 0.85 * med_rr) & (corr < 0.9)))
        a = np.abs(tmpl) / scale
        above = np.flatnonzero(a >= 0.3)
        around = above[np.abs(above - pre) < round(0.12 * fs)]
        if around.size:
            f["qrs_width_s"] = float((around.max() - around.min() + 1) / fs)
        p_lo, p_hi = pre - round(0.25 * fs), pre - round(0.08 * fs)
        ptm = tmpl[p_lo:p_hi]
        f["p_amp_ratio"] = float((ptm.max() - ptm.min()) / scale)
        if ptm.size:
            f["pr_interval_s"] = float(
                (pre - (p_lo + int(np.argmax(np.abs(ptm - ptm.mean()))))) / fs
            )
        pb_ = beats[:, p_lo:p_hi]
        pbc = pb_ - pb_.mean(axis=1, keepdims=True)
        ptc = ptm - ptm.mean()
        pden = np.linalg.norm(pbc, axis=1) * max(float(np.linalg.norm(ptc)), 1e-12)
        pcorr = (pbc @ ptc) / np.maximum(pden, 1e-12)
        f["p_corr_mean"] = float(np.mean(pcorr))
        f["p_corr_median"] = float(np.median(pcorr))
        base = beats[:, : round(0.05 * fs)]
        f["p_energy_ratio"] = float(
            np.sqrt(np.mean(ptc**2)) / max(float(np.sqrt(np.mean(base**2))), 1e-6 * scale)
        )
        t_seg = tmpl[pre + round(0.15 * fs) :]
        f["t_amp_ratio"] = float(np.max(np.abs(t_seg)) / scale) if t_seg.size else 0.0
        f["st_level_ratio"] = float(
            np.mean(tmpl[pre + round(0.06 * fs) : pre + round(0.12 * fs)]) / scale
        )
        resid = beats - tmpl
        f["residual_rms_ratio"] = float(np.sqrt(np.mean(resid**2)) / scale)
        f["residual_fwave_ratio"] = _ref_band_ratio(resid.ravel(), fs, 4.0, 9.0)
        # T-Q segments: 0.45 s after an R peak up to 0.10 s before the next one
        segs = []
        for a_, b_ in itertools.pairwise(peaks):
            lo_, hi_ = a_ + round(0.45 * fs), b_ - round(0.10 * fs)
            if hi_ - lo_ >= round(0.10 * fs):
                s_ = x[lo_:hi_]
                segs.append(s_ - s_.mean())
        if segs:
            tq = np.concatenate(segs)
            f["tq_rms_ratio"] = float(np.sqrt(np.mean(tq**2)) / scale)
            f["tq_fwave_ratio"] = float(np.mean([_ref_band_ratio(s_, fs, 4.0, 9.0) for s_ in segs]))
    out = np.zeros(len(MORPH_FEATURE_NAMES), dtype=np.float64)
    for i, name in enumerate(MORPH_FEATURE_NAMES):
        v = float(f[name])
        out[i] = v if math.isfinite(v) else 0.0
    return out


# --- comparisons -------------------------------------------------------------------------------


def _check(peaks: np.ndarray, xf: np.ndarray, fs: float) -> np.ndarray:
    want = _reference_morphology(peaks, xf, fs=fs)
    got64 = _morphology_features_f64(peaks, xf, fs=fs)
    got32 = morphology_features_from_peaks(peaks, xf, fs=fs)
    assert got64.dtype == np.float64 and got64.shape == (len(MORPH_FEATURE_NAMES),)
    assert np.isfinite(got64).all()
    bad = [
        f"{n}: {w!r} vs {g!r}"
        for n, w, g in zip(MORPH_FEATURE_NAMES, want, got64, strict=True)
        if not math.isclose(w, g, rel_tol=1e-9, abs_tol=1e-12)
    ]
    assert not bad, bad
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, want.astype(np.float32))
    return got64


def _record(path: Path, lead: int = 0, seconds: float = 30.0) -> tuple[np.ndarray, float]:
    rec = read_ecg(path)
    fs = float(rec.fs)
    x = np.asarray(rec.signal[: round(seconds * fs), lead], dtype=np.float64)
    return x, fs


def _live_inputs(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """R peaks and the 0.5-40 Hz lead exactly as ``rhythm_hand_features`` makes them."""
    peaks = detect_r_peaks(x, fs=fs).sample_idx
    if x.size > 3 * fs:
        xf = bandpass(x, fs=fs, low_hz=0.5, high_hz=min(40.0, 0.45 * fs), order=2)
    else:
        xf = x - np.median(x)
    return peaks, xf


CINC = (  # normal, AF, other rhythm, noisy
    "A00002",
    "A00003",
    "A00006",
    "A00004",
    "A00005",
    "A00009",
    "A00015",
    "A00054",
    "A00013",
    "A00017",
    "A00020",
    "A00022",
    "A00034",
    "A00106",
)


@pytest.mark.parametrize("name", CINC)
def test_equal_on_cinc2017_records(cinc_dir: Path, name: str) -> None:
    x, fs = _record(cinc_dir / name, seconds=60.0)
    peaks, xf = _live_inputs(x, fs)
    got = _check(peaks, xf, fs)
    assert np.count_nonzero(got) > 15  # the real-record path, not the all-zero fallback
    # inverted lead: negative R polarity
    _check(peaks, -xf, fs)


@pytest.mark.parametrize(
    ("name", "start_s"),
    [("201", 0.0), ("201", 600.0), ("203", 0.0), ("100", 0.0), ("119", 120.0), ("207", 0.0)],
)
def test_equal_on_mitdb_windows(mitdb_dir: Path, name: str, start_s: float) -> None:
    rec = read_ecg(mitdb_dir / name)
    fs = float(rec.fs)
    a = round(start_s * fs)
    x = np.asarray(rec.signal[a : a + round(30 * fs), 0], dtype=np.float64)
    peaks, xf = _live_inputs(x, fs)
    _check(peaks, xf, fs)
    _check(peaks, xf, 250.0)  # a different rate for the same samples: other band edges


def test_equal_on_synthetic_and_edge_cases() -> None:
    fs = 300.0
    rng = np.random.default_rng(7)
    for af in (False, True):
        x = synthetic_ecg(30, fs=fs, af=af, seed=5)
        peaks, xf = _live_inputs(x, fs)
        _check(peaks, xf, fs)
        _check(peaks, -xf, fs)  # negative polarity
        _check(peaks[:3], xf, fs)  # too few beats for a template
        _check(peaks[:4], xf, fs)  # just enough
        _check(peaks[:5], xf, fs)
        _check(peaks[:1], xf, fs)
        _check(np.array([], dtype=np.int64), xf, fs)  # no beats
        _check(peaks, xf[: peaks[-1] + 20], fs)  # last beat too close to the end
    noise = rng.standard_normal(9000)
    _check(np.array([], dtype=np.int64), noise, fs)
    _check(np.sort(rng.choice(9000, 40, replace=False)), noise, fs)  # random "beats"
    _check(np.arange(100, 9000, 240), np.zeros(9000), fs)  # flat signal
    _check(np.array([2, 5]), rng.standard_normal(10), fs)  # shorter than 16 samples
    _check(np.array([], dtype=np.int64), np.zeros(0), fs)  # empty
    _check(np.array([40, 90, 140, 190, 240]), rng.standard_normal(300), fs)  # 1 s signal
    # peaks closer than a T-Q segment, and irregular gaps (some T-Q segments, not all)
    _check(np.array([100, 200, 300, 800, 900, 1800, 2000, 3200, 3300]), noise[:4000], fs)
    # R peaks past the end of the signal (not from the detector): truncated T-Q slices
    _check(np.array([100, 400, 700, 1000, 1300, 1700, 2100]), noise[:1500], fs)
    for fs_ in (128.0, 250.0, 257.0, 360.0, 500.0, 1000.0):
        x = synthetic_ecg(20, fs=fs_, af=True, seed=11)
        _check(*_live_inputs(x, fs_), fs_)
