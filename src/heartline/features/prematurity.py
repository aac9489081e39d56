"""Prematurity features: each beat's timing against the patient's own rhythm, plus QRS samples.

A supraventricular ectopic beat is, by definition, *premature against the patient's underlying
rhythm* (and usually followed by a pause). These features write that definition down for a
linear or tree model, following de Chazal et al. (2004):

* ``pre_rr_s`` / ``post_rr_s``: the beat's previous and next RR intervals;
* ``local_rr_s``: mean of the last :data:`LOCAL_BEATS` previous RRs (the beat's own included);
* ``avg5_rr_s``: mean previous RR over the last :data:`LONG_TERM_S` seconds (5 minutes) of the
  record, causal (at the start of a record: over what is there);
* dimensionless log ratios that normalise each patient to their own rhythm:
  ``log(pre / avg5)``, ``log(post / avg5)``, ``log(local / avg5)``, ``log(post / pre)`` and
  ``log(pre / local)``. A premature beat has ``log(pre / avg5) < 0`` and ``log(post / pre) > 0``
  whatever the patient's heart rate.

The absolute intervals (``*_s``) are the de Chazal columns; the log ratios are the per-patient
normalised ones (no absolute time scale, so a bradycardic patient's on-time beat is not mistaken
for a tachycardic patient's premature one, nor the reverse).

What is *not* here on purpose: the 16-beat rhythm-irregularity columns of
:func:`heartline.signal.segmentation.rhythm_features`. They make a run of ectopic beats (or
atrial fibrillation) the local norm, so the run's beats look on time; :func:`prematurity_features`
can append them (``rhythm=True``) only to measure that effect.

Morphology: :data:`N_MORPH` samples of each chosen lead's (causally normalised) beat window at
fixed times around the R-peak: 5 over the P-wave region, 8 over the QRS complex and 8 over the
T wave (de Chazal et al. sample the QRS and T wave the same way; the P-wave samples are added
because an ectopic atrial focus changes the P wave).

All of it is computable one beat after the R-peak (the next RR), as the live pipeline needs.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
"""

from __future__ import annotations

import itertools

import numpy as np

from heartline.data.beat_set import BeatSet
from heartline.features.morphology import Features

__all__ = [
    "ABSOLUTE_RR_NAMES",
    "FEATURE_SETS",
    "FIDUCIAL_SEARCH_S",
    "GATE_BEATS",
    "GATE_NAMES",
    "LOCAL_BEATS",
    "LONG_TERM_S",
    "MORPH_TIMES_S",
    "N_MORPH",
    "RATIO_RR_NAMES",
    "prematurity_features",
    "qrs_fiducial_s",
    "record_rr_features",
]

#: Previous RRs averaged into the local RR (de Chazal et al. 2004 use 10).
LOCAL_BEATS = 10
#: Span of the long-term (patient's own) average RR, seconds (de Chazal et al.: 5 minutes).
LONG_TERM_S = 300.0
#: Times (s, relative to the R-peak) of the morphology samples: P wave, QRS complex, T wave.
MORPH_TIMES_S: tuple[float, ...] = (
    *np.round(np.linspace(-0.22, -0.08, 5), 4).tolist(),
    *np.round(np.linspace(-0.06, 0.10, 8), 4).tolist(),
    *np.round(np.linspace(0.15, 0.43, 8), 4).tolist(),
)
N_MORPH = len(MORPH_TIMES_S)

ABSOLUTE_RR_NAMES: tuple[str, ...] = ("pre_rr_s", "post_rr_s", "local_rr_s", "avg5_rr_s")
RATIO_RR_NAMES: tuple[str, ...] = (
    "log_pre_avg5",
    "log_post_avg5",
    "log_local_avg5",
    "log_post_pre",
    "log_pre_local",
)

#: Previous RRs over which the background irregularity of the ``gate`` columns is measured.
GATE_BEATS = 64
GATE_NAMES: tuple[str, ...] = ("irr64", "log_pre_avg5_x_irr64", "log_post_pre_x_irr64")

#: Half-width (s) of the search for the QRS fiducial around the given R-peak (``align``).
FIDUCIAL_SEARCH_S = 0.06

#: Named feature sets: which column groups :func:`prematurity_features` returns.
#: ``absolute``: de Chazal's RR intervals in seconds; ``ratios``: the per-patient log ratios;
#: ``morph``: QRS samples of the leads in ``leads``; ``template``: the beat set's
#: patient-adaptive template columns (``tpl_*``, when the beat set has them); ``rhythm``: the
#: 16-beat rhythm columns (a control, see the module docstring); ``gate``: the background
#: irregularity ``irr64`` (median absolute successive difference of log RR over the last
#: :data:`GATE_BEATS` beats, causal: near 0 in sinus rhythm with isolated ectopic beats, large in
#: atrial fibrillation) and its products with the two prematurity ratios, so that even a linear
#: model can learn that prematurity means less on an irregular background. Unlike the rhythm
#: columns, the gate never moves the reference a beat is premature against. ``align``: the
#: morphology samples are taken relative to the beat's own QRS fiducial (:func:`qrs_fiducial_s`)
#: instead of the given R-peak, so that annotated and detected R-peaks (the detector fires a
#: median 3 samples, in some records 14 samples, after the annotation) give the same samples.
FEATURE_SETS: dict[str, dict[str, object]] = {
    "dechazal": {"absolute": True, "ratios": True, "morph": True},
    "ratios": {"absolute": False, "ratios": True, "morph": True},
    "ratios_tpl": {"absolute": False, "ratios": True, "morph": True, "template": True},
    "ratios_gate": {"absolute": False, "ratios": True, "morph": True, "gate": True},
    "ratios_tpl_gate": {
        "absolute": False,
        "ratios": True,
        "morph": True,
        "template": True,
        "gate": True,
    },
    "ratios_tpl_gate_align": {
        "absolute": False,
        "ratios": True,
        "morph": True,
        "template": True,
        "gate": True,
        "align": True,
    },
    "dechazal_tpl": {"absolute": True, "ratios": True, "morph": True, "template": True},
    "ratios_tpl_rhythm": {
        "absolute": False,
        "ratios": True,
        "morph": True,
        "template": True,
        "rhythm": True,
    },
    "dechazal_rhythm": {"absolute": True, "ratios": True, "morph": True, "rhythm": True},
    "ratios_rhythm": {"absolute": False, "ratios": True, "morph": True, "rhythm": True},
}

_RHYTHM_COLUMNS: tuple[str, ...] = (
    "rr_irregularity",
    "rr_regular_fraction",
    "rr_prev_median_logratio",
    "rr_next_median_logratio",
    "rr_prev_z",
)


def record_rr_features(
    sample_idx: np.ndarray,
    *,
    fs: float,
    local_beats: int = LOCAL_BEATS,
    long_term_s: float = LONG_TERM_S,
) -> np.ndarray:
    """``(n_beats, 4)`` pre, post, local and 5-minute average RR (s) of one record's R-peaks.

    ``sample_idx`` must be strictly increasing. The first beat borrows its next RR as its
    previous one and the last beat its previous RR as its next one; a record with fewer than two
    beats gets NaN.

    >>> f = record_rr_features(np.array([0, 100, 200, 250, 400]), fs=100.0, long_term_s=2.0)
    >>> f[3].round(3).tolist()
    [0.5, 1.5, 0.875, 0.833]
    """
    idx = np.asarray(sample_idx, dtype=np.int64)
    n = idx.size
    if fs <= 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    if n and np.any(np.diff(idx) <= 0):
        raise ValueError("sample_idx must be strictly increasing within a record")
    if n < 2:
        return np.full((n, 4), np.nan)
    d = np.diff(idx).astype(np.float64) / fs
    pre = np.concatenate([d[:1], d])
    post = np.concatenate([d, d[-1:]])
    csum = np.concatenate([[0.0], np.cumsum(pre)])
    i = np.arange(n)
    lo = np.maximum(i + 1 - int(local_beats), 0)
    local = (csum[i + 1] - csum[lo]) / (i + 1 - lo)
    t = idx / fs
    # beats whose R-peak lies within the last long_term_s seconds (the beat itself included)
    first = np.searchsorted(t, t - long_term_s, side="left")
    avg5 = (csum[i + 1] - csum[first]) / (i + 1 - first)
    return np.stack([pre, post, local, avg5], axis=1)


def _irregularity(log_pre: np.ndarray, window: int) -> np.ndarray:
    """Median ``|diff(log RR)|`` over each beat's last ``window`` previous RRs (causal)."""
    n = log_pre.size
    d = np.abs(np.diff(log_pre, prepend=log_pre[:1]))
    out = np.empty(n)
    head = min(n, window)
    for i in range(head):  # the start of a record: what is there
        out[i] = np.median(d[: i + 1])
    if n > window:
        out[window:] = np.median(np.lib.stride_tricks.sliding_window_view(d, window)[1:], axis=1)
    return out


def qrs_fiducial_s(
    beats: BeatSet, *, lead: int = 0, search_s: float = FIDUCIAL_SEARCH_S
) -> np.ndarray:
    """Each beat's QRS fiducial, in seconds relative to its given R-peak.

    The time of the largest absolute deviation of ``lead``'s window from the window's median
    within ``search_s`` of the R-peak: the tallest QRS deflection, whatever its sign (a V beat's
    deep S wave as well as an N beat's R wave). It depends on the signal around the peak, not on
    where a detector or an annotator put the peak, so features sampled relative to it agree for
    annotated and detected R-peaks.

    >>> import numpy as np
    >>> w = np.zeros((1, 1, 141), np.float32); w[0, 0, 54] = 1.0   # 0.01 s per sample
    >>> bs = BeatSet(w, np.zeros((1, 0), np.float32), (), np.zeros(1, np.int64),
    ...              np.array(["a"]), np.zeros(1, np.int64), 100.0, ("MLII",), 0.5, 0.9)
    >>> qrs_fiducial_s(bs).round(3).tolist()
    [0.04]
    """
    n_t = beats.window_len
    span = beats.pre_s + beats.post_s
    grid = np.arange(n_t) * span / (n_t - 1) - beats.pre_s
    if not 0 <= lead < beats.n_leads:
        raise ValueError(f"lead {lead} is not in the beat set ({beats.n_leads} leads)")
    near = np.flatnonzero(np.abs(grid) <= search_s)
    if len(beats) == 0 or near.size == 0:
        return np.zeros(len(beats))
    w = beats.windows[:, lead, :].astype(np.float64)
    dev = np.abs(w[:, near] - np.median(w, axis=1, keepdims=True))
    dev[~np.isfinite(dev)] = -1.0
    return grid[near[np.argmax(dev, axis=1)]]


def _morph(
    beats: BeatSet, leads: tuple[int, ...], *, align: bool = False
) -> tuple[np.ndarray, tuple[str, ...]]:
    n_t = beats.window_len
    span = beats.pre_s + beats.post_s
    shift = qrs_fiducial_s(beats) if align else np.zeros(len(beats))
    cols, names = [], []
    for lead in leads:
        if not 0 <= lead < beats.n_leads:
            raise ValueError(f"lead {lead} is not in the beat set ({beats.n_leads} leads)")
        w = beats.windows[:, lead, :].astype(np.float64)
        rows = np.arange(len(beats))
        for t in MORPH_TIMES_S:
            j = np.clip((t + shift + beats.pre_s) * (n_t - 1) / span, 0.0, n_t - 1.0)
            j0 = np.minimum(np.floor(j).astype(np.int64), n_t - 2)
            a = j - j0
            cols.append((1 - a) * w[rows, j0] + a * w[rows, j0 + 1])
            names.append(f"morph_l{lead}_{round(t * 1000):+d}ms")
    return np.stack(cols, axis=1), tuple(names)


def prematurity_features(
    beats: BeatSet,
    *,
    feature_set: str = "ratios",
    leads: tuple[int, ...] = (0,),
) -> Features:
    """The columns of ``feature_set`` (:data:`FEATURE_SETS`) for every beat of ``beats``.

    RR features are computed record by record from ``beats.sample_idx`` (beats of one record are
    contiguous and in time order in a :class:`~heartline.data.beat_set.BeatSet`).

    Raises
    ------
    ValueError
        Unknown ``feature_set``, a lead outside the beat set, template or rhythm columns asked
        for but missing from ``beats.rr_names``, or a record whose beats are not in time order.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature_set {feature_set!r}; valid: {', '.join(FEATURE_SETS)}")
    spec = FEATURE_SETS[feature_set]
    n = len(beats)
    rr = np.full((n, 4), np.nan)
    if n:
        change = np.flatnonzero(beats.record[1:] != beats.record[:-1]) + 1
        bounds = np.concatenate([[0], change, [n]])
        for a, b in itertools.pairwise(bounds):
            rr[a:b] = record_rr_features(beats.sample_idx[a:b], fs=beats.fs)
    cols: list[np.ndarray] = []
    names: list[str] = []
    if spec.get("absolute"):
        cols.append(rr)
        names += ABSOLUTE_RR_NAMES
    if spec.get("ratios"):
        pre, post, local, avg5 = (np.maximum(rr[:, k], 1e-3) for k in range(4))
        cols.append(
            np.stack(
                [
                    np.log(pre / avg5),
                    np.log(post / avg5),
                    np.log(local / avg5),
                    np.log(post / pre),
                    np.log(pre / local),
                ],
                axis=1,
            )
        )
        names += RATIO_RR_NAMES
    if spec.get("gate"):
        pre, post, avg5 = (np.maximum(rr[:, k], 1e-3) for k in (0, 1, 3))
        irr = np.zeros(n)
        if n:
            for a, b in itertools.pairwise(bounds):
                irr[a:b] = _irregularity(np.log(pre[a:b]), GATE_BEATS)
        cols.append(np.stack([irr, np.log(pre / avg5) * irr, np.log(post / pre) * irr], axis=1))
        names += GATE_NAMES
    if spec.get("morph"):
        m, mn = _morph(beats, leads, align=bool(spec.get("align")))
        cols.append(m)
        names += mn
    for key, wanted in (("template", None), ("rhythm", _RHYTHM_COLUMNS)):
        if not spec.get(key):
            continue
        pick = (
            tuple(c for c in beats.rr_names if c.startswith("tpl_")) if wanted is None else wanted
        )
        missing = [c for c in pick if c not in beats.rr_names] or ([] if pick else [f"{key}"])
        if missing:
            raise ValueError(f"feature set {feature_set!r} needs beat-set columns {missing}")
        cols.append(beats.rr[:, [beats.rr_names.index(c) for c in pick]].astype(np.float64))
        names += pick
    values = np.concatenate(cols, axis=1) if cols else np.zeros((n, 0))
    return Features(values.astype(np.float32), tuple(names))
