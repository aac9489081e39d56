"""Fixed standardisation constants of the rhythm hand features, from public data only.

A model trained with differential privacy must not standardise its inputs with statistics of the
private training data (means and standard deviations of the hospitals' records would be a
release outside the DP accounting). These constants, ``name -> (location, scale)``, are the
median and ``IQR / 1.349`` of each :data:`heartline.features.rhythm.HAND_FEATURE_NAMES` column on
data that is not CinC 2017: the 48 MIT-BIH Arrhythmia records (lead 0, up to 20 non-overlapping
30 s segments each, 360 Hz: 960 segments) and the 500 PTB-XL records on disk (lead I, 10 s,
100 Hz). A scale of 0 (a column constant on the public data) is replaced by 1.

Regenerate with::

    OMP_NUM_THREADS=1 python scripts/public_feature_scale.py --data-dir /work/shared/data
"""

from __future__ import annotations

import numpy as np

__all__ = ["PUBLIC_HAND_SCALE", "public_scale"]

PUBLIC_HAND_SCALE: dict[str, tuple[float, float]] = {
    "n_beats_per_10s": (12, 2.47097),
    "mean_hr_bpm": (72.7885, 16.2913),
    "median_rr_s": (0.82, 0.177601),
    "sd_rr_s": (0.0431821, 0.0559783),
    "cv_rr": (0.051869, 0.0696826),
    "rmssd_s": (0.0506051, 0.0832521),
    "nrmssd_dash": (0.036833, 0.0506024),
    "tpr_dash": (0.485714, 0.174579),
    "shannon_entropy_dash": (0.811852, 0.238463),
    "pnn50": (0.206897, 0.399951),
    "sarkar_irrev": (0.591751, 0.360015),
    "sarkar_origin": (0.16, 0.276481),
    "sarkar_afev": (0.424242, 0.609502),
    "cosen": (-1.95058, 0.520921),
    "frac_short_rr": (0, 0.0529493),
    "frac_long_rr": (0, 0.0549104),
    "max_rr_over_median": (1.09524, 0.179545),
    "min_rr_over_median": (0.904656, 0.178454),
    "sd_drr_s": (0.0501247, 0.0833012),
    "amp_p99_mv": (1.08605, 0.737761),
    "amp_iqr_mv": (0.16, 0.111193),
    "hf_power_ratio": (0.00700701, 0.014175),
    "frac_flat": (0.104104, 0.0688673),
    "peak_amp_cv": (0.141148, 0.0808415),
    "tmpl_corr_median": (0.983411, 0.0196693),
    "tmpl_corr_p10": (0.934797, 0.152969),
    "frac_beats_corr_lt_080": (0, 0.0926612),
    "frac_premature_abnormal": (0, 0.0205914),
    "qrs_width_s": (0.0444444, 0.0230624),
    "r_polarity": (1, 1),
    "p_amp_ratio": (0.131081, 0.080373),
    "p_corr_mean": (0.863905, 0.192231),
    "p_corr_median": (0.91996, 0.112355),
    "p_energy_ratio": (2.67031, 2.72132),
    "t_amp_ratio": (0.258506, 0.213277),
    "st_level_ratio": (-0.0445753, 0.0698847),
    "pr_interval_s": (0.144444, 0.0499341),
    "residual_rms_ratio": (0.0705907, 0.0822008),
    "residual_fwave_ratio": (0.180187, 0.0915688),
    "tq_rms_ratio": (0.0414776, 0.0264999),
    "tq_fwave_ratio": (0.375453, 0.199336),
    "rr_lag1_corr": (0.136582, 0.50643),
    "rr_alternation": (0.525, 0.181204),
    "rr_skew": (0.0522032, 0.520036),
    "local_hr_min_bpm": (69.7224, 14.508),
    "local_hr_max_bpm": (77.3695, 18.4197),
    "frac_long_gaps": (0, 1),
    "spec_0_3": (0.260393, 0.183156),
    "spec_3_10": (0.435959, 0.111491),
    "spec_10_20": (0.220645, 0.115181),
    "spec_20_40": (0.0577112, 0.0614993),
    "spec_entropy": (0.773201, 0.101182),
    "spec_peak_hz": (2.16667, 1.53818),
    "sig_kurtosis": (14.1589, 8.67055),
}


def public_scale(names: tuple[str, ...] | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(location, scale)`` float32 arrays of the features ``names`` (in that order).

    Raises
    ------
    ValueError
        A name without public constants.

    >>> loc, sc = public_scale(["mean_hr_bpm", "cv_rr"])
    >>> loc.shape, bool((sc > 0).all())
    ((2,), True)
    """
    missing = [n for n in names if n not in PUBLIC_HAND_SCALE]
    if missing:
        raise ValueError(f"no public scale for features {missing}")
    loc = np.array([PUBLIC_HAND_SCALE[n][0] for n in names], dtype=np.float32)
    sc = np.array([PUBLIC_HAND_SCALE[n][1] for n in names], dtype=np.float32)
    return loc, sc
