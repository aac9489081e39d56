"""Per-record 12-lead ECG features (numpy/scipy only), shared by training and the run time.

:func:`record_features` is the input of the gradient-boosting baseline and of the stacked
multimodal hybrid's boosted head: RR statistics from Heartline's R-peak detector on lead II and,
per lead, the median beat averaged down to 14 points, R/S amplitudes, QRS and T areas, the ST
level 80 ms after the R peak, and the signal's SD, skewness and kurtosis (270 features for 12
leads). Training (:mod:`heartline.training.multimodal`, which re-exports it) and the torch-free
run time (:mod:`heartline.edge.multimodal`) call this same function, so both compute the same
inputs bit for bit.

References
----------
Strodthoff N, Wagner P, Schaeffter T, Samek W. Deep learning for ECG analysis: benchmarks and
insights from PTB-XL. IEEE J Biomed Health Inform 25(5):1519-1528 (2021) (the feature-based
baselines it compares with).
"""

from __future__ import annotations

import warnings

import numpy as np

from heartline.errors import HeartlineWarning

__all__ = ["record_feature_names", "record_features"]

#: Median-beat window around the R peak (s) and the number of points it is averaged down to.
_BEAT_PRE_S, _BEAT_POST_S, _BEAT_POINTS = 0.25, 0.45, 14


def record_features(
    signals: np.ndarray, *, fs: float, rpeak_lead: int = 1
) -> tuple[np.ndarray, list[str]]:
    """Per-record ECG features for the gradient boosting baseline.

    Per record: R peaks on lead II with Heartline's detector
    (:func:`heartline.signal.rpeaks.detect_r_peaks`), RR statistics (mean heart rate, RR SD,
    RMSSD, min/max RR); per lead, on the band-passed (0.5-40 Hz) signal, the median beat
    (-0.25 to +0.45 s) averaged down to 14 points, its R and S amplitudes, QRS and T areas, the
    ST level 80 ms after the R peak, and the signal's SD, skewness and kurtosis. A record
    without three detectable beats gets NaN beat features (gradient boosting handles NaN),
    counted in a warning.

    Returns
    -------
    features : numpy.ndarray
        ``(N, n_features)`` float32.
    names : list of str
    """
    from scipy.stats import kurtosis, skew

    from heartline.signal.filters import bandpass
    from heartline.signal.rpeaks import detect_r_peaks

    n, n_leads, n_samples = signals.shape
    pre, post = round(_BEAT_PRE_S * fs), round(_BEAT_POST_S * fs)
    win = pre + post
    edges = np.linspace(0, win, _BEAT_POINTS + 1).astype(int)
    names = ["hr_bpm", "rr_sd_s", "rmssd_s", "rr_min_s", "rr_max_s", "n_beats"]
    per_lead = [f"beat_{k}" for k in range(_BEAT_POINTS)] + [
        "r_amp", "s_amp", "qrs_area", "st80", "t_area", "sd", "skew", "kurt",
    ]  # fmt: skip
    names += [f"L{lead}_{f}" for lead in range(n_leads) for f in per_lead]
    out = np.full((n, len(names)), np.nan, dtype=np.float32)
    n_failed = 0
    r_idx, qrs_hi = pre, pre + round(0.06 * fs)
    st_idx = min(win - 1, pre + round(0.08 * fs))
    t_lo, t_hi = pre + round(0.15 * fs), win
    for i in range(n):
        x = bandpass(signals[i].T, fs=fs, low_hz=0.5, high_hz=min(40.0, 0.45 * fs))
        peaks = detect_r_peaks(x[:, rpeak_lead], fs=fs).sample_idx
        peaks = peaks[(peaks >= pre) & (peaks + post <= n_samples)]
        col = 6
        if len(peaks) >= 3:
            rr = np.diff(peaks) / fs
            out[i, :6] = [
                60.0 / rr.mean(),
                rr.std(),
                np.sqrt(np.mean(np.diff(rr) ** 2)) if len(rr) > 1 else 0.0,
                rr.min(),
                rr.max(),
                len(peaks),
            ]
        else:
            n_failed += 1
        for lead in range(n_leads):
            sig = x[:, lead]
            feats = np.full(len(per_lead), np.nan, dtype=np.float32)
            if len(peaks) >= 3:
                beats = np.stack([sig[p - pre : p + post] for p in peaks])
                med = np.median(beats, axis=0)
                med = med - np.median(med[: max(1, pre // 3)])  # PR-segment baseline
                feats[:_BEAT_POINTS] = [
                    med[edges[k] : edges[k + 1]].mean() for k in range(_BEAT_POINTS)
                ]
                qrs = med[r_idx - round(0.06 * fs) : qrs_hi]
                feats[_BEAT_POINTS : _BEAT_POINTS + 5] = [
                    qrs.max(),
                    qrs.min(),
                    np.abs(qrs).sum() / fs,
                    med[st_idx],
                    med[t_lo:t_hi].sum() / fs,
                ]
            feats[-3:] = [sig.std(), skew(sig), kurtosis(sig)]
            out[i, col + lead * len(per_lead) : col + (lead + 1) * len(per_lead)] = feats
    if n_failed:
        warnings.warn(
            f"{n_failed} of {n} record(s) had fewer than 3 detectable beats; their beat "
            "features are NaN (handled natively by gradient boosting)",
            HeartlineWarning,
            stacklevel=2,
        )
    return out, names


def record_feature_names(n_leads: int = 12) -> list[str]:
    """Names of :func:`record_features`'s columns for ``n_leads`` leads (``L{lead}_{feature}``).

    >>> names = record_feature_names(12)
    >>> len(names), names[:2], names[-1]
    (270, ['hr_bpm', 'rr_sd_s'], 'L11_kurt')
    """
    per_lead = [f"beat_{k}" for k in range(_BEAT_POINTS)] + [
        "r_amp", "s_amp", "qrs_area", "st80", "t_area", "sd", "skew", "kurt",
    ]  # fmt: skip
    names = ["hr_bpm", "rr_sd_s", "rmssd_s", "rr_min_s", "rr_max_s", "n_beats"]
    return names + [f"L{lead}_{f}" for lead in range(n_leads) for f in per_lead]
