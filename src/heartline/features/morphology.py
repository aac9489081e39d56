"""Hand-crafted beat features for the classical baselines: RR intervals plus QRS morphology.

The feature families follow the two classical inter-patient references:

* de Chazal et al. (2004): RR intervals (pre, post, local, average) and QRS morphology (QRS
  duration, amplitudes, samples of the QRS complex and T wave, both leads);
* Mondéjar-Guerra et al. (2019): normalised RR intervals, Daubechies wavelet approximation
  coefficients of the beat and R-peak-relative amplitudes ("own features"), per lead.

Every feature is computed from one beat window (plus the online RR features already in the
:class:`~heartline.data.beat_set.BeatSet`), so it is available on a device one beat after the
R-peak. Windows are assumed normalised as :func:`heartline.data.beat_dataset.build_beat_set`
leaves them (median baseline 0, amplitudes in units of the patient's running QRS amplitude).

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).

Mondéjar-Guerra V, Novo J, Rouco J, Penedo MG, Ortega M. Heartbeat classification fusing
temporal and morphological information of ECGs via ensemble of classifiers. Biomed Signal
Process Control 47:41-48 (2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heartline.data.beat_set import BeatSet

__all__ = ["Features", "beat_features", "morphology_features"]


@dataclass(frozen=True)
class Features:
    """A feature matrix with named columns.

    Attributes
    ----------
    values : numpy.ndarray
        float32, ``(n_beats, len(names))``.
    names : tuple of str
        Column names.
    """

    values: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"values must be (n, {len(self.names)}), got {self.values.shape}")


def _span(fw: float, r0: int, start_s: float, stop_s: float, n: int) -> slice:
    lo = max(0, r0 + round(start_s * fw))
    hi = min(n, r0 + round(stop_s * fw) + 1)
    return slice(lo, max(hi, lo + 1))


def _downsample(x: np.ndarray, n_points: int) -> np.ndarray:
    n = x.shape[-1]
    if n % n_points == 0:
        return x.reshape(*x.shape[:-1], n_points, n // n_points).mean(axis=-1)
    edges = np.linspace(0, n, n_points + 1)
    centres = (edges[:-1] + edges[1:]) / 2 - 0.5
    return np.stack([np.interp(centres, np.arange(n), row) for row in x.reshape(-1, n)]).reshape(
        *x.shape[:-1], n_points
    )


def morphology_features(
    windows: np.ndarray,
    *,
    pre_s: float,
    post_s: float,
    lead_names: tuple[str, ...] | None = None,
    wavelet: str = "db4",
    wavelet_level: int = 3,
    n_downsample: int = 16,
) -> Features:
    """Morphology features of beat windows, per lead.

    Per lead (window times relative to the R-peak):

    * ``r_amp``: value at the R-peak; ``qrs_max`` / ``qrs_min``: extremes in [-100, +100] ms;
      ``q_amp``: minimum in [-80, 0] ms; ``s_amp``: minimum in [0, +100] ms;
    * ``qrs_energy``: mean square in [-75, +75] ms;
    * ``qrs_width_s``: time between 10 % and 90 % of the cumulative slope energy (squared first
      difference) in [-150, +150] ms, a robust QRS duration (de Chazal et al. 2004 use
      onset/offset from a wave delineator);
    * ``p_mean``, ``p_absmax``: mean and largest magnitude in [-250, -80] ms (P wave region);
    * ``t_mean``, ``t_max``, ``t_min``: over [+150, +450] ms (T wave, as sampled by de Chazal);
    * ``ds_k``: the window averaged into ``n_downsample`` points;
    * ``wav_k``: level-``wavelet_level`` approximation coefficients of ``wavelet``
      (Mondéjar-Guerra et al. 2019 use Daubechies wavelets).

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_beats, n_leads, window_len)`` or ``(n_beats, window_len)``.
    pre_s, post_s : float
        Window extent around the R-peak (seconds), as used by the segmentation.
    lead_names : tuple of str, optional
        Prefix of each lead's feature names (``lead0``, ``lead1``... by default).

    Returns
    -------
    Features

    >>> import numpy as np
    >>> f = morphology_features(np.zeros((3, 2, 128), np.float32), pre_s=0.25, post_s=0.45)
    >>> f.values.shape[0], f.names[0]
    (3, 'lead0_r_amp')
    """
    import pywt

    w = np.asarray(windows, dtype=np.float64)
    if w.ndim == 2:
        w = w[:, None, :]
    if w.ndim != 3:
        raise ValueError(f"windows must be (n_beats, n_leads, window_len), got shape {w.shape}")
    n_beats, n_leads, n = w.shape
    if pre_s < 0 or post_s <= 0:
        raise ValueError(f"need pre_s >= 0 and post_s > 0 seconds, got {pre_s}, {post_s}")
    if lead_names is None:
        lead_names = tuple(f"lead{i}" for i in range(n_leads))
    if len(lead_names) != n_leads:
        raise ValueError(f"lead_names has {len(lead_names)} names for {n_leads} leads")
    fw = n / (pre_s + post_s)  # window sampling rate, Hz
    r0 = min(n - 1, round(pre_s * fw))
    cols: list[np.ndarray] = []
    names: list[str] = []

    def add(name: str, values: np.ndarray) -> None:
        values = values.reshape(n_beats, -1)
        cols.append(values)
        if values.shape[1] == 1:
            names.append(name)
        else:
            names.extend(f"{name}_{k}" for k in range(values.shape[1]))

    for li, lead in enumerate(lead_names):
        x = w[:, li, :]
        prefix = f"{lead}_"
        qrs = x[:, _span(fw, r0, -0.10, 0.10, n)]
        add(prefix + "r_amp", x[:, r0])
        add(prefix + "qrs_max", qrs.max(axis=1))
        add(prefix + "qrs_min", qrs.min(axis=1))
        add(prefix + "q_amp", x[:, _span(fw, r0, -0.08, 0.0, n)].min(axis=1))
        add(prefix + "s_amp", x[:, _span(fw, r0, 0.0, 0.10, n)].min(axis=1))
        add(prefix + "qrs_energy", np.mean(x[:, _span(fw, r0, -0.075, 0.075, n)] ** 2, axis=1))
        seg = x[:, _span(fw, r0, -0.15, 0.15, n)]
        slope = np.diff(seg, axis=1) ** 2
        cum = np.cumsum(slope, axis=1)
        total = np.maximum(cum[:, -1:], 1e-12)
        on = np.argmax(cum >= 0.1 * total, axis=1)
        off = np.argmax(cum >= 0.9 * total, axis=1)
        add(prefix + "qrs_width_s", (off - on) / fw)
        p = x[:, _span(fw, r0, -0.25, -0.08, n)]
        add(prefix + "p_mean", p.mean(axis=1))
        add(prefix + "p_absmax", np.abs(p).max(axis=1))
        t = x[:, _span(fw, r0, 0.15, 0.45, n)]
        add(prefix + "t_mean", t.mean(axis=1))
        add(prefix + "t_max", t.max(axis=1))
        add(prefix + "t_min", t.min(axis=1))
        add(prefix + "ds", _downsample(x, n_downsample))
        approx = pywt.wavedec(x, wavelet, level=wavelet_level, axis=1)[0]
        add(prefix + "wav", approx)
    values = np.concatenate(cols, axis=1).astype(np.float32)
    return Features(values, tuple(names))


def beat_features(
    beats: BeatSet,
    *,
    wavelet: str = "db4",
    wavelet_level: int = 3,
    n_downsample: int = 16,
) -> Features:
    """RR features (from ``beats.rr``) followed by :func:`morphology_features` of every lead.

    Every column of ``beats.rr`` is taken, under its name in ``beats.rr_names``: the RR
    features and, for beats built with ``build_beat_set(..., template_features=True)``, the
    template columns after them (:mod:`heartline.signal.templates`), so that the classical
    baselines see the same inputs as a deep model trained on the same beats.

    Lead feature names use ``lead0``, ``lead1``... (not the lead names, which differ between
    MIT-BIH records for the second lead).
    """
    morph = morphology_features(
        beats.windows,
        pre_s=beats.pre_s,
        post_s=beats.post_s,
        wavelet=wavelet,
        wavelet_level=wavelet_level,
        n_downsample=n_downsample,
    )
    values = np.concatenate([beats.rr.astype(np.float32), morph.values], axis=1)
    return Features(values, tuple(beats.rr_names) + morph.names)
