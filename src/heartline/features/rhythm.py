"""Record-level rhythm features and the rhythm models' input signal (numpy/scipy only).

Shared by training (:mod:`heartline.training.rhythm`) and the torch-free run time
(:mod:`heartline.edge.rhythm`), so that both compute exactly the same inputs:

* :func:`rhythm_model_signal`: band-pass 0.5-40 Hz, resample to the model rate, robust scaling;
* :func:`rhythm_rr_features`: RR-irregularity features from Heartline's own R-peak detector
  (Dash et al. 2009 normalised RMSSD, turning-point ratio and Shannon entropy; Sarkar et al.
  2008 Lorenz-plot AF evidence; Lake & Moorman 2011 coefficient of sample entropy) plus a few
  beat-count and amplitude features that tell noise apart.

References
----------
Dash S, Chon KH, Lu S, Raeder EA. Automatic real time detection of atrial fibrillation. Ann
Biomed Eng 37(9):1701-1709 (2009).
Sarkar S, Ritscher D, Mehra R. A detector for a chronic implantable atrial tachyarrhythmia
monitor. IEEE Trans Biomed Eng 55(3):1219-1224 (2008).
Lake DE, Moorman JR. Accurate estimation of entropy in very short physiological time series:
the problem of atrial fibrillation detection in implanted ventricular devices. Am J Physiol
Heart Circ Physiol 300(1):H319-H325 (2011).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from heartline.errors import SignalError
from heartline.signal._validate import check_fs

__all__ = [
    "HAND_FEATURE_NAMES",
    "MORPH_FEATURE_NAMES",
    "RR_FEATURE_NAMES",
    "linear_percentiles",
    "morphology_features_from_peaks",
    "rhythm_hand_features",
    "rhythm_model_signal",
    "rhythm_rr_features",
    "rr_features_from_peaks",
]

#: Column order of :func:`rhythm_rr_features`.
RR_FEATURE_NAMES: tuple[str, ...] = (
    "n_beats_per_10s",
    "mean_hr_bpm",
    "median_rr_s",
    "sd_rr_s",
    "cv_rr",
    "rmssd_s",
    "nrmssd_dash",
    "tpr_dash",
    "shannon_entropy_dash",
    "pnn50",
    "sarkar_irrev",
    "sarkar_origin",
    "sarkar_afev",
    "cosen",
    "frac_short_rr",
    "frac_long_rr",
    "max_rr_over_median",
    "min_rr_over_median",
    "sd_drr_s",
    "amp_p99_mv",
    "amp_iqr_mv",
    "hf_power_ratio",
    "frac_flat",
    "peak_amp_cv",
)


#: Beat-morphology, P-wave, atrial-activity and spectral features
#: (:func:`morphology_features_from_peaks`), appended to :data:`RR_FEATURE_NAMES` in
#: :data:`HAND_FEATURE_NAMES`.
MORPH_FEATURE_NAMES: tuple[str, ...] = (
    "tmpl_corr_median",
    "tmpl_corr_p10",
    "frac_beats_corr_lt_080",
    "frac_premature_abnormal",
    "qrs_width_s",
    "r_polarity",
    "p_amp_ratio",
    "p_corr_mean",
    "p_corr_median",
    "p_energy_ratio",
    "t_amp_ratio",
    "st_level_ratio",
    "pr_interval_s",
    "residual_rms_ratio",
    "residual_fwave_ratio",
    "tq_rms_ratio",
    "tq_fwave_ratio",
    "rr_lag1_corr",
    "rr_alternation",
    "rr_skew",
    "local_hr_min_bpm",
    "local_hr_max_bpm",
    "frac_long_gaps",
    "spec_0_3",
    "spec_3_10",
    "spec_10_20",
    "spec_20_40",
    "spec_entropy",
    "spec_peak_hz",
    "sig_kurtosis",
)

#: Column order of :func:`rhythm_hand_features`: the RR features, then the morphology ones.
HAND_FEATURE_NAMES: tuple[str, ...] = RR_FEATURE_NAMES + MORPH_FEATURE_NAMES


def linear_percentiles(
    x: np.ndarray, q: tuple[float, ...], *, median: bool = False
) -> tuple[float, ...]:
    """``np.percentile(x, q)`` (linear method), then ``np.median(x)`` if asked, of a 1-D array.

    One partial sort (``np.partition``) for all of them, where NumPy does one per call; the
    arithmetic on the order statistics is NumPy's (virtual index ``(n - 1) * q / 100``, the
    two-sided linear interpolation of ``numpy.lib``'s ``_lerp``, the median as the mean of the
    middle pair), so the values are NumPy's bit for bit (a test checks it). Input holding NaN
    goes to NumPy itself.

    Parameters
    ----------
    x : numpy.ndarray
        1-D, at least one value (not modified).
    q : tuple of float
        Percentiles in [0, 100].
    median : bool
        Append the median.
    """
    n = x.size
    if x.dtype != np.float64 or x.ndim != 1 or n == 0:  # NumPy's own arithmetic (and errors)
        out = [float(v) for v in np.percentile(x, list(q))]
        return (*out, float(np.median(x))) if median else tuple(out)
    pos: list[tuple[int, int, float]] = []
    kth = {0, n - 1}
    for qi in q:
        vi = (n - 1) * (qi / 100)
        if vi >= n - 1:
            pos.append((n - 1, n - 1, 0.0))
        else:
            lo = max(math.floor(vi), 0)
            pos.append((lo, lo + 1, vi - lo))
            kth.update((lo, lo + 1))
    if median:
        kth.update((n // 2, (n - 1) // 2))
    part = np.partition(x, sorted(kth))
    if math.isnan(part[-1]):  # NaN sorts last
        out = [float(v) for v in np.percentile(x, list(q))]
        return (*out, float(np.median(x))) if median else tuple(out)
    vals: list[float] = []
    for lo, hi, t in pos:
        a, b = float(part[lo]), float(part[hi])
        d = b - a
        vals.append(b - d * (1 - t) if t >= 0.5 else a + d * t)
    if median:
        mid = n // 2
        vals.append(float(part[mid]) if n % 2 else (float(part[mid - 1]) + float(part[mid])) / 2)
    return tuple(vals)


def _trimmed(rr: np.ndarray) -> np.ndarray:
    n = rr.size
    trim = (n + 8) // 16
    if trim == 0 or n - 2 * trim < 2:
        return rr
    return np.sort(rr)[trim : n - trim]


def _dash(rr: np.ndarray) -> tuple[float, float, float]:
    """Dash et al. (2009) nRMSSD, TPR and Shannon entropy (after trimming 1/16 per tail).

    The trimmed values keep their time order (only the outliers are removed).
    """
    n = rr.size
    trim = (n + 8) // 16
    if trim > 0 and n - 2 * trim >= 3:
        order = np.argsort(rr, kind="stable")
        rr = rr[np.sort(order[trim : n - trim])]
    m = rr.size
    mean = float(np.mean(rr))
    nrmssd = float(np.sqrt(np.mean(np.diff(rr) ** 2)) / mean) if m > 1 and mean > 0 else 0.0
    if m >= 3:
        mid = rr[1:-1]
        tp = ((mid > rr[:-2]) & (mid > rr[2:])) | ((mid < rr[:-2]) & (mid < rr[2:]))
        tpr = float(np.count_nonzero(tp)) / m
    else:
        tpr = 0.0
    lo, hi = float(rr.min()), float(rr.max())
    if hi > lo:
        hist = np.histogram(rr, bins=16, range=(lo, hi))[0]
        p = hist[hist > 0] / m
        she = float(-np.sum(p * np.log(p)) / np.log(16))
    else:
        she = 0.0
    return nrmssd, tpr, she


def _sarkar(rr: np.ndarray, bin_s: float = 0.04) -> tuple[float, float, float]:
    """Lorenz-plot (dRR_i, dRR_i-1) evidence of Sarkar et al. (2008), simplified.

    Counts the occupied 40 ms bins of the scatter over +-0.6 s (irregularity evidence), the
    points in the origin bin (regular rhythm) and their difference (AF evidence), each
    normalised by the number of points.
    """
    d = np.diff(rr)
    if d.size < 2:
        return 0.0, 0.0, 0.0
    a, b = d[1:], d[:-1]
    m = a.size
    qa = np.clip(np.floor(a / bin_s + 0.5), -15, 15).astype(np.int64)
    qb = np.clip(np.floor(b / bin_s + 0.5), -15, 15).astype(np.int64)
    occupied = np.unique(qa * 64 + qb).size
    origin = int(np.count_nonzero((qa == 0) & (qb == 0)))
    irrev = occupied / m
    orig = origin / m
    return float(irrev), float(orig), float(irrev - orig)


def _cosen(rr: np.ndarray, r_s: float = 0.03, m: int = 1) -> float:
    """Coefficient of sample entropy (Lake & Moorman 2011): SampEn + ln(2 r) - ln(mean RR)."""
    n = rr.size
    if n < m + 3:
        return 0.0
    x = rr
    if m == 1:
        # the same counts from one matrix of |x_i - x_j|: a pair of length-2 templates
        # matches when both of its element pairs do (the Chebyshev distance is their max)
        close = np.abs(x[:, None] - x[None, :]) <= r_s
        head = close[: n - 1, : n - 1]
        b = (np.count_nonzero(head) - (n - 1)) / 2
        a = (np.count_nonzero(head & close[1:, 1:]) - (n - 1)) / 2
    else:
        tmpl_m = np.lib.stride_tricks.sliding_window_view(x, m)[: n - m]
        tmpl_m1 = np.lib.stride_tricks.sliding_window_view(x, m + 1)
        dist_m = np.max(np.abs(tmpl_m[:, None, :] - tmpl_m[None, :, :]), axis=2)
        dist_m1 = np.max(np.abs(tmpl_m1[:, None, :] - tmpl_m1[None, :, :]), axis=2)
        b = (np.count_nonzero(dist_m <= r_s) - tmpl_m.shape[0]) / 2
        a = (np.count_nonzero(dist_m1 <= r_s) - tmpl_m1.shape[0]) / 2
    # matches found: both ends at least one (Lake & Moorman use a minimum count; we add one)
    sampen = -math.log((a + 1) / (b + 1))
    return float(sampen + math.log(2 * r_s) - math.log(float(np.mean(rr))))


def rr_features_from_peaks(
    peak_idx: np.ndarray, x: np.ndarray, *, fs: float, duration_s: float
) -> np.ndarray:
    """:data:`RR_FEATURE_NAMES` from detected R-peak positions (samples) of signal ``x``.

    Records with fewer than four beats get the irregularity features at 0 (and their beat
    count says why); every value is finite.
    """
    fs = check_fs(fs)
    out = np.zeros(len(RR_FEATURE_NAMES), dtype=np.float64)
    f = dict.fromkeys(RR_FEATURE_NAMES, 0.0)
    peaks = np.asarray(peak_idx, dtype=np.int64)
    f["n_beats_per_10s"] = 10.0 * peaks.size / max(duration_s, 1e-6)
    ax = np.zeros(1)
    if x.size:
        # one partial sort per array (linear_percentiles: np.percentile's values, bit for bit)
        q75, q25, med = linear_percentiles(x, (75, 25), median=True)
        ax = np.abs(x - med)
        (f["amp_p99_mv"],) = linear_percentiles(ax, (99,))
        f["amp_iqr_mv"] = float(q75 - q25)
        d = np.abs(np.diff(x))
        if d.size:  # (a single sample has no differences: both stay 0)
            scale = max(linear_percentiles(d, (95,))[0], 1e-9)
            f["frac_flat"] = float(np.mean(d < 1e-3 * max(f["amp_p99_mv"], 1e-6)))
            # energy of the fastest differences relative to the typical ones (muscle/motion noise)
            f["hf_power_ratio"] = float(np.mean(d > 3 * scale))
    if peaks.size >= 2:
        amps = ax[np.clip(peaks, 0, ax.size - 1)]
        f["peak_amp_cv"] = float(np.std(amps) / max(float(np.mean(amps)), 1e-9))
    if peaks.size >= 4:
        rr = np.diff(peaks) / fs
        med = float(np.median(rr))
        mean = float(np.mean(rr))
        drr = np.diff(rr)
        f["mean_hr_bpm"] = 60.0 / mean
        f["median_rr_s"] = med
        f["sd_rr_s"] = float(np.std(rr))
        f["cv_rr"] = float(np.std(rr) / mean)
        f["rmssd_s"] = float(np.sqrt(np.mean(drr**2)))
        f["nrmssd_dash"], f["tpr_dash"], f["shannon_entropy_dash"] = _dash(rr)
        f["pnn50"] = float(np.mean(np.abs(drr) > 0.05))
        f["sarkar_irrev"], f["sarkar_origin"], f["sarkar_afev"] = _sarkar(rr)
        f["cosen"] = _cosen(rr)
        f["frac_short_rr"] = float(np.mean(rr < 0.85 * med))
        f["frac_long_rr"] = float(np.mean(rr > 1.15 * med))
        f["max_rr_over_median"] = float(rr.max() / med)
        f["min_rr_over_median"] = float(rr.min() / med)
        f["sd_drr_s"] = float(np.std(drr))
    for i, name in enumerate(RR_FEATURE_NAMES):
        v = float(f[name])
        out[i] = v if math.isfinite(v) else 0.0
    return out.astype(np.float32)


def rhythm_rr_features(x: object, *, fs: float) -> np.ndarray:
    """RR-irregularity and signal features of one single-lead record (float32, :data:`RR_FEATURE_NAMES`).

    Runs Heartline's R-peak detector (:func:`heartline.signal.rpeaks.detect_r_peaks`) on the
    record at its own rate.

    Raises
    ------
    SignalError
        ``x`` not 1-D, NaN/inf samples, or a bad ``fs``.
    """
    from heartline.signal._validate import as_1d_signal
    from heartline.signal.rpeaks import detect_r_peaks

    fs = check_fs(fs)
    arr = as_1d_signal(x, name="ecg", min_samples=1)
    peaks = detect_r_peaks(arr, fs=fs).sample_idx
    return rr_features_from_peaks(peaks, arr, fs=fs, duration_s=arr.size / fs)


def rhythm_model_signal(x: object, *, fs: float, fs_model_hz: float) -> np.ndarray:
    """The network input: band-pass 0.5-40 Hz, resampled to ``fs_model_hz``, robustly scaled.

    Scaling divides by the 1-99 percentile range of the filtered signal (so a record's units
    and gain do not matter) and clips to +-10.

    Raises
    ------
    SignalError
        ``x`` not 1-D or too short to filter, NaN/inf samples, or a bad ``fs``.
    """
    from heartline.signal._validate import as_1d_signal
    from heartline.signal.filters import bandpass
    from heartline.signal.preprocess import resample

    fs = check_fs(fs)
    fs_model_hz = check_fs(fs_model_hz, name="fs_model_hz")
    arr = as_1d_signal(x, name="ecg", min_samples=int(fs) + 1)
    high = min(40.0, 0.45 * fs)
    y = bandpass(arr, fs=fs, low_hz=0.5, high_hz=high, order=2)
    if fs != fs_model_hz:
        y = resample(y, fs=fs, fs_out=fs_model_hz)
    lo, hi = np.percentile(y, [1, 99])
    scale = float(hi - lo)
    if not math.isfinite(scale) or scale <= 0:
        raise SignalError("ecg is flat after band-pass filtering (no usable signal)")
    y = np.clip((y - np.median(y)) / scale, -10.0, 10.0)
    return y.astype(np.float32)


def _band_ratio(seg: np.ndarray, fs: float, lo: float, hi: float) -> float:
    """Fraction of the power of ``seg`` (mean removed) between ``lo`` and ``hi`` Hz."""
    if seg.size < 8:
        return 0.0
    spec = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
    f = np.fft.rfftfreq(seg.size, 1.0 / fs)
    tot = float(spec[f >= 0.5].sum())
    return float(spec[(f >= lo) & (f < hi)].sum() / tot) if tot > 0 else 0.0


def _first_freq_at_least(n: int, fs: float, f0: float) -> int:
    """Index of the first bin of ``np.fft.rfftfreq(n, 1.0 / fs)`` at ``f0`` Hz or above.

    Same float arithmetic as ``rfftfreq`` (``k * (1.0 / (n * d))``) without building the array,
    so ``spec[i:j].sum()`` equals ``spec[(f >= lo) & (f < hi)].sum()`` exactly.
    """
    val = 1.0 / (n * (1.0 / fs))
    top = n // 2 + 1
    k = max(0, int(f0 / val) - 2)
    while k < top and k * val < f0:
        k += 1
    return k


@functools.lru_cache(maxsize=4096)
def _fwave_bins(n: int, fs: float) -> tuple[int, int, int]:
    """First rfft bins of an ``n``-sample segment at 0.5, 4 and 9 Hz (cached per length)."""
    return (
        _first_freq_at_least(n, fs, 0.5),
        _first_freq_at_least(n, fs, 4.0),
        _first_freq_at_least(n, fs, 9.0),
    )


def _fwave_ratio(seg: np.ndarray, fs: float) -> float:
    """``_band_ratio(seg, fs, 4.0, 9.0)`` with slices instead of boolean masks (same result)."""
    n = seg.size
    if n < 8:
        return 0.0
    spec = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
    i05, i4, i9 = _fwave_bins(n, fs)
    tot = float(spec[i05:].sum())
    return float(spec[i4:i9].sum() / tot) if tot > 0 else 0.0


def _tq_features(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, fs: float) -> tuple[float, float]:
    """RMS and mean 4-9 Hz power share of the mean-removed T-Q segments ``x[lo:hi]``.

    The segments' means come from one ``np.add.reduceat`` and their spectra from one 2-D FFT
    per distinct segment length, instead of a Python loop over the segments.
    """
    if lo.min() < 0 or hi.max() > x.size:  # not from a valid detector: plain per-segment loop
        segs = []
        for a_, b_ in zip(lo.tolist(), hi.tolist(), strict=True):
            s_ = x[a_:b_]
            segs.append(s_ - s_.mean())
        tq = np.concatenate(segs)
        rms = float(np.sqrt(np.mean(tq**2)))
        return rms, float(np.mean([_fwave_ratio(s_, fs) for s_ in segs]))
    lens = hi - lo
    starts = np.zeros(lens.size, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    idx = np.repeat(lo - starts, lens) + np.arange(int(starts[-1] + lens[-1]))
    tq = x[idx]
    tq -= np.repeat(np.add.reduceat(tq, starts) / lens, lens)
    rms = float(np.sqrt(np.mean(tq**2)))
    # _fwave_ratio removes each segment's (now ~0) mean again before its FFT
    c2 = tq - np.repeat(np.add.reduceat(tq, starts) / lens, lens)
    ratio = np.zeros(lens.size, dtype=np.float64)
    lens_l, starts_l = lens.tolist(), starts.tolist()
    counts: dict[int, int] = {}
    for n in lens_l:
        counts[n] = counts.get(n, 0) + 1
    for n, count in counts.items():
        if n < 8:
            continue
        i05, i4, i9 = _fwave_bins(n, fs)
        if count == 1:  # most lengths are unique: a 1-D FFT has less overhead
            j = lens_l.index(n)
            a_ = starts_l[j]
            spec1 = np.abs(np.fft.rfft(c2[a_ : a_ + n])) ** 2
            tot1 = float(spec1[i05:].sum())
            if tot1 > 0:
                ratio[j] = float(spec1[i4:i9].sum() / tot1)
            continue
        rows = np.flatnonzero(lens == n)
        spec = np.abs(np.fft.rfft(c2[starts[rows, None] + np.arange(n)], axis=1)) ** 2
        tot = spec[:, i05:].sum(axis=1)
        good = tot > 0
        ratio[rows[good]] = spec[:, i4:i9].sum(axis=1)[good] / tot[good]
    return rms, float(np.mean(ratio))


_SPEC_BANDS = (
    ("spec_0_3", 0.5, 3.0),
    ("spec_3_10", 3.0, 10.0),
    ("spec_10_20", 10.0, 20.0),
    ("spec_20_40", 20.0, 40.0),
)
#: Lower edges of the 1 Hz bins of the spectral entropy (0.5-39.5 Hz).
_ENTROPY_EDGES = np.arange(0.5, 40.5, 1.0)


def morphology_features_from_peaks(
    peak_idx: np.ndarray, xf: np.ndarray, *, fs: float
) -> np.ndarray:
    """:data:`MORPH_FEATURE_NAMES` from R peaks of a band-passed (0.5-40 Hz) single lead ``xf``.

    Beats are cut from 0.30 s before to 0.45 s after each R peak and compared with their
    median template: template correlation (noise, ectopy), QRS width, the P wave of the
    template and its beat-to-beat consistency (absent or inconsistent in atrial fibrillation),
    T and ST levels, the residual after template subtraction and the T-Q segment activity with
    its 4-9 Hz share (fibrillatory waves), RR sequence structure (bigeminy alternation,
    lag-1 correlation), and the record's spectrum (Welch-free periodogram bands, spectral
    entropy). Amplitudes are relative to the template's R amplitude, so gain does not matter.
    Too few beats give zeros; every value is finite.

    References
    ----------
    Clifford GD et al. AF classification from a short single lead ECG recording: the
    PhysioNet/Computing in Cardiology Challenge 2017. Computing in Cardiology 44 (2017).
    Datta S et al. Identifying normal, AF and other abnormal ECG rhythms using a cascaded
    binary classifier. Computing in Cardiology 44 (2017) (P-wave and morphology features).
    """
    return _morphology_features_f64(peak_idx, xf, fs=fs).astype(np.float32)


def _morphology_features_f64(peak_idx: np.ndarray, xf: np.ndarray, *, fs: float) -> np.ndarray:
    """:func:`morphology_features_from_peaks` before the float32 cast (float64, finite).

    Written for the live path's cost (one call per device every 5 s): contiguous-slice band
    sums instead of boolean masks, beats cut with one fancy index, no per-beat Python loop
    except the T-Q segments' own spectra (their lengths differ).
    """
    fs = check_fs(fs)
    f = dict.fromkeys(MORPH_FEATURE_NAMES, 0.0)
    x = np.asarray(xf, dtype=np.float64)
    peaks = np.asarray(peak_idx, dtype=np.int64)
    n = x.size
    if n >= 16:
        seg = x - x.mean()
        spec = np.abs(np.fft.rfft(seg)) ** 2
        fr = np.fft.rfftfreq(n, 1.0 / fs)
        # fr is non-decreasing, so every band mask is a contiguous slice
        i_keep = fr.searchsorted([0.5, 40.0])
        tot = float(spec[i_keep[0] : i_keep[1]].sum())
        if tot > 0:
            for name, lo, hi in _SPEC_BANDS:
                i, j = fr.searchsorted([lo, hi])
                f[name] = float(spec[i:j].sum() / tot)
            # spectral entropy over 1 Hz bins
            edges = _ENTROPY_EDGES
            lo_i = fr.searchsorted(edges[:-1])
            hi_i = fr.searchsorted(edges[:-1] + 1.0)
            binp = np.asarray(
                [spec[i:j].sum() for i, j in zip(lo_i.tolist(), hi_i.tolist(), strict=True)],
                dtype=np.float64,
            )
            pb = binp[binp > 0] / max(binp.sum(), 1e-12)
            f["spec_entropy"] = float(-np.sum(pb * np.log(pb)) / np.log(len(edges) - 1))
            k = int(np.argmax(spec[i_keep[0] : i_keep[1]]))
            f["spec_peak_hz"] = float(fr[i_keep[0] + k])
        sd = float(np.std(x))
        if sd > 0:
            z2 = np.square(seg / sd)  # z**4 as (z**2)**2: np.power is ~20x slower here
            f["sig_kurtosis"] = float(np.mean(z2 * z2))
    rr = np.diff(peaks) / fs if peaks.size >= 2 else None
    if rr is not None:
        f["frac_long_gaps"] = float(rr[rr > 2.0].sum() / max(n / fs, 1e-6))
    if peaks.size >= 5:
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
    ok = peaks[(peaks >= pre) & (peaks + post < n)]
    if ok.size >= 4:
        beats = x[ok[:, None] + np.arange(-pre, post)]
        n_base = round(0.05 * fs)
        beats -= np.median(beats[:, :n_base], axis=1, keepdims=True)
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
        rr_ok = rr if rr is not None else np.diff(peaks) / fs
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
        base = beats[:, :n_base]
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
        f["residual_fwave_ratio"] = _fwave_ratio(resid.ravel(), fs)
        # T-Q segments: 0.45 s after an R peak up to 0.10 s before the next one
        tq_lo = peaks[:-1] + round(0.45 * fs)
        tq_hi = peaks[1:] - round(0.10 * fs)
        use = tq_hi - tq_lo >= round(0.10 * fs)
        if use.any():
            tq_rms, tq_fwave = _tq_features(x, tq_lo[use], tq_hi[use], fs)
            f["tq_rms_ratio"] = tq_rms / scale
            f["tq_fwave_ratio"] = tq_fwave
    out = np.zeros(len(MORPH_FEATURE_NAMES), dtype=np.float64)
    for i, name in enumerate(MORPH_FEATURE_NAMES):
        v = float(f[name])
        out[i] = v if math.isfinite(v) else 0.0
    return out


def rhythm_hand_features(x: object, *, fs: float) -> np.ndarray:
    """:data:`HAND_FEATURE_NAMES` of one single-lead record (float32): RR, then morphology.

    One run of Heartline's R-peak detector at the record's own rate; the morphology part is
    computed on the 0.5-40 Hz band-passed lead (:func:`morphology_features_from_peaks`).

    Raises
    ------
    SignalError
        ``x`` not 1-D, NaN/inf samples, or a bad ``fs``.
    """
    from heartline.signal._validate import as_1d_signal
    from heartline.signal.filters import bandpass
    from heartline.signal.rpeaks import detect_r_peaks

    fs = check_fs(fs)
    arr = as_1d_signal(x, name="ecg", min_samples=1)
    peaks = detect_r_peaks(arr, fs=fs).sample_idx
    rr = rr_features_from_peaks(peaks, arr, fs=fs, duration_s=arr.size / fs)
    if arr.size > 3 * fs:
        xf = bandpass(arr, fs=fs, low_hz=0.5, high_hz=min(40.0, 0.45 * fs), order=2)
    else:
        xf = arr - np.median(arr)
    morph = morphology_features_from_peaks(peaks, xf, fs=fs)
    return np.concatenate([rr, morph]).astype(np.float32)
