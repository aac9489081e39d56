"""AF-like irregular rhythm: windowed RR irregularity (Dash et al. 2009, RMSSD/TPR).

An episode lasts >= 30 s (Hindricks et al. 2020 ESC guidelines); rapid ventricular response
above 110 bpm raises its severity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartline.alerts.rules.events import (
    BeatSeries,
    Episode,
    Reported,
    Severity,
    _covered,
    _episode,
    _runs,
)


# --------------------------------------------------------------------------------------------
# AF-like irregular rhythm
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _AfFeatures:
    nrmssd: float
    tpr: float
    shannon_entropy: float


def _n_trim(n: int) -> int:
    """RR values removed from each tail: 8 of 128 in Dash et al. (2009), i.e. n / 16."""
    return (n + 8) // 16


def _af_features(rr: np.ndarray) -> _AfFeatures:
    """Dash et al. (2009) features of one RR segment (after trimming 1/16 outliers per tail)."""
    n = rr.size
    trim = _n_trim(n)
    if trim > 0:
        order = np.argsort(rr, kind="stable")
        keep = np.sort(order[trim : n - trim])
        rr = rr[keep]
    m = rr.size
    mean = float(np.mean(rr))
    nrmssd = float(np.sqrt(np.mean(np.diff(rr) ** 2)) / mean) if m > 1 and mean > 0 else 0.0
    if m >= 3:
        mid = rr[1:-1]
        tp = ((mid > rr[:-2]) & (mid > rr[2:])) | ((mid < rr[:-2]) & (mid < rr[2:]))
        tpr = float(np.count_nonzero(tp)) / m
    else:
        tpr = 0.0
    lo, hi = float(np.min(rr)), float(np.max(rr))
    if hi > lo:
        hist = _histogram16(rr, lo, hi)
        p = hist[hist > 0] / m
        she = float(-np.sum(p * np.log(p)) / np.log(16))
    else:
        she = 0.0
    return _AfFeatures(nrmssd, tpr, she)


def _histogram16(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.histogram(x, bins=16, range=(lo, hi))[0]`` for ``lo = min(x) < hi = max(x)``.

    NumPy's own equal-bin algorithm (bin index from the scaled offset, then corrected against
    the ``linspace`` edges), without its generic argument handling; a test checks equality.
    """
    edges = np.linspace(lo, hi, 17)
    idx = ((np.subtract(x, lo) / np.subtract(hi, lo)) * 16).astype(np.intp)
    idx[idx == 16] -= 1
    idx[x < edges[idx]] -= 1
    idx[(x >= edges[idx + 1]) & (idx != 15)] += 1
    return np.bincount(idx, minlength=16)


def _tpr_bounds(n: int, z: float = 3.0) -> tuple[float, float]:
    """Turning-point-ratio range of a random series of length ``n``: ``mu +- z sigma``.

    For i.i.d. data the number of turning points has mean ``2(n-2)/3`` and variance
    ``(16n-29)/90`` (Kendall & Stuart); Dash et al. use this band (0.54-0.77 at 128 beats).
    """
    mu = 2.0 * (n - 2) / 3.0
    sigma = math.sqrt((16.0 * n - 29.0) / 90.0)
    return (mu - z * sigma) / n, (mu + z * sigma) / n


def _af_dash2009(
    rr: np.ndarray, *, nrmssd_min: float, entropy_min: float
) -> tuple[bool, _AfFeatures]:
    f = _af_features(rr)
    m = rr.size - 2 * _n_trim(rr.size)
    lo, hi = _tpr_bounds(m)
    return (f.nrmssd > nrmssd_min and lo < f.tpr < hi and f.shannon_entropy > entropy_min), f


def _af_rmssd_tpr(
    rr: np.ndarray, *, nrmssd_min: float, entropy_min: float
) -> tuple[bool, _AfFeatures]:
    f = _af_features(rr)
    m = rr.size - 2 * _n_trim(rr.size)
    lo, hi = _tpr_bounds(m)
    return (f.nrmssd > nrmssd_min and lo < f.tpr < hi), f


def _af_may_pass(rr: np.ndarray, starts: list[int], width: int, nrmssd_min: float) -> np.ndarray:
    """False for the windows ``rr[s : s + width]`` whose normalised RMSSD is at most ``nrmssd_min``.

    After trimming (:func:`_n_trim`) every kept value lies between the window's order
    statistics ``lo = v[trim]`` and ``hi = v[width - 1 - trim]``, so each successive difference
    is at most ``hi - lo`` and the mean at least ``lo``: the RMSSD over the mean is at most
    ``(hi - lo) / lo``. Floating-point rounding is monotone, so the computed normalised RMSSD
    of :func:`_af_windows` exceeds that bound by a few ulps at most; the ``1e-9`` relative
    margin covers it. A window with such a bound ``<= nrmssd_min`` fails the first test of both
    built-in methods. One partition per window instead of the full features.
    """
    win = rr[np.asarray(starts, dtype=np.intp)[:, None] + np.arange(width)]
    trim = _n_trim(width)
    part = np.partition(win, (trim, width - 1 - trim), axis=1)
    lo = part[:, trim]
    hi = part[:, width - 1 - trim]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (hi - lo) / lo
    return ~((lo > 0) & (bound * (1.0 + 1e-9) <= nrmssd_min))


def _af_windows(
    rr: np.ndarray,
    starts: list[int],
    width: int,
    method: str,
    nrmssd_min: float,
    entropy_min: float,
) -> list[tuple[bool, _AfFeatures | None]] | None:
    """The built-in AF classifiers on every window ``rr[s : s + width]`` at once.

    Row-wise NumPy reductions over the stacked windows: the same numbers as calling
    :func:`_af_dash2009` / :func:`_af_rmssd_tpr` window by window (a test checks equality). The
    Shannon entropy, a per-window histogram, is computed only for the windows whose other tests
    pass (the only ones whose features are kept). ``None`` for a method added to
    :data:`AF_METHODS` by a user (classified window by window).
    """
    if AF_METHODS.get(method) not in (_af_dash2009, _af_rmssd_tpr):
        return None
    # (n_windows, width) C-contiguous copy, as sliding_window_view(rr, width)[starts] gives
    win = rr[np.asarray(starts, dtype=np.intp)[:, None] + np.arange(width)]
    trim = _n_trim(width)
    if trim > 0:
        order = np.argsort(win, axis=1, kind="stable")
        keep = np.sort(order[:, trim : width - trim], axis=1)
        win = win[np.arange(win.shape[0])[:, None], keep]  # take_along_axis(win, keep, axis=1)
    m = win.shape[1]
    mean = win.mean(axis=1)
    if m > 1:
        nrmssd = np.sqrt(np.mean(np.diff(win, axis=1) ** 2, axis=1)) / mean
        nrmssd = np.where(mean > 0, nrmssd, 0.0)
    else:
        nrmssd = np.zeros(len(starts))
    if m >= 3:
        mid = win[:, 1:-1]
        tp = ((mid > win[:, :-2]) & (mid > win[:, 2:])) | ((mid < win[:, :-2]) & (mid < win[:, 2:]))
        tpr = np.count_nonzero(tp, axis=1) / m
    else:
        tpr = np.zeros(len(starts))
    lo_b, hi_b = _tpr_bounds(width - 2 * trim)
    # rows that pass the first two tests (as float comparisons: the same as on Python floats)
    passing = np.flatnonzero((nrmssd > nrmssd_min) & (lo_b < tpr) & (tpr < hi_b))
    hists = _histogram16_rows(win[passing]) if passing.size else {}
    hist_of = {int(passing[r]): h for r, h in hists.items()}  # by window number
    out: list[tuple[bool, _AfFeatures | None]] = []
    for j in range(len(starts)):
        f_rmssd, f_tpr = float(nrmssd[j]), float(tpr[j])
        if not (f_rmssd > nrmssd_min and lo_b < f_tpr < hi_b):
            out.append((False, None))  # rejected before the entropy test: features not kept
            continue
        hist = hist_of.get(j)
        if hist is not None:
            p = hist[hist > 0] / m
            she = float(-np.sum(p * np.log(p)) / np.log(16))
        else:  # every RR of the window equal (max == min)
            she = 0.0
        is_af = method == "rmssd_tpr" or she > entropy_min
        out.append((is_af, _AfFeatures(f_rmssd, f_tpr, she)))
    return out


def _histogram16_rows(rows: np.ndarray) -> dict[int, np.ndarray]:
    """:func:`_histogram16` of every row of ``rows`` with ``max > min``, by row number.

    The same operations, row-wise: the row's min and max (exact), the ``linspace`` edges as
    NumPy builds them for scalar limits (``arange(17) * step + lo`` with ``step = (hi - lo) /
    16``, the last edge set to ``hi``; a row whose step underflows to 0 is left to
    :func:`_histogram16` itself, as ``linspace`` treats it apart), the scaled bin index and its
    two corrections against the edges, and per-row counts. Element-wise IEEE operations on the
    same operands give the same bits in any array shape; a test checks equality.
    """
    lo = rows.min(axis=1)
    hi = rows.max(axis=1)
    ranged = np.flatnonzero(hi > lo)
    out: dict[int, np.ndarray] = {}
    if ranged.size == 0:
        return out
    x, lo, hi = rows[ranged], lo[ranged], hi[ranged]
    delta = hi - lo
    step = delta / 16
    tiny = step == 0
    if tiny.any():
        for r in np.flatnonzero(tiny).tolist():
            out[int(ranged[r])] = _histogram16(x[r], float(lo[r]), float(hi[r]))
        keep = np.flatnonzero(~tiny)
        ranged, x, lo, hi, delta, step = (
            ranged[keep],
            x[keep],
            lo[keep],
            hi[keep],
            delta[keep],
            step[keep],
        )
        if ranged.size == 0:
            return out
    n_rows = ranged.size
    edges = np.arange(17, dtype=np.float64)[None, :] * step[:, None]
    edges += lo[:, None]
    edges[:, -1] = hi
    idx = (((x - lo[:, None]) / delta[:, None]) * 16).astype(np.intp)
    idx[idx == 16] -= 1
    rows_at = np.arange(n_rows)[:, None]  # edges[rows_at, idx]: take_along_axis(edges, idx, 1)
    idx[x < edges[rows_at, idx]] -= 1
    idx[(x >= edges[rows_at, idx + 1]) & (idx != 15)] += 1
    idx += 16 * np.arange(n_rows)[:, None]
    counts = np.bincount(idx.ravel(), minlength=16 * n_rows).reshape(n_rows, 16)
    for r, row in enumerate(ranged.tolist()):
        out[row] = counts[r]
    return out


def _af_windows_cached(
    cache: dict[Any, Any],
    rr: np.ndarray,
    starts: list[int],
    width: int,
    method: str,
    nrmssd_min: float,
    entropy_min: float,
) -> list[tuple[bool, _AfFeatures | None]]:
    """:func:`_af_windows` of the windows not in ``cache``; the others from it.

    Exact: every quantity :func:`_af_windows` computes for a window comes from that window's
    row alone (element-wise operations and reductions along the row; the entropy window by
    window), so a window's result does not depend on which other windows share its batch, and
    a window with the same bytes and parameters gets the same result. On a sliding beat window
    that advances by the rule's step the same windows come back call after call (the alert
    engine's windows nearly all hit). ``cache`` ends up holding this call's windows only.
    """
    params = (method, width, float(nrmssd_min), float(entropy_min))
    old = cache if cache.get("params") == params else {}
    keys = [rr[s : s + width].tobytes() for s in starts]
    out: list[tuple[bool, _AfFeatures | None] | None] = [old.get(k) for k in keys]
    missing = [j for j, r in enumerate(out) if r is None]
    if missing:
        fresh = _af_windows(
            rr, [starts[j] for j in missing], width, method, nrmssd_min, entropy_min
        )
        assert fresh is not None  # built-in methods only
        for j, r in zip(missing, fresh, strict=True):
            out[j] = r
    cache.clear()
    cache["params"] = params
    cache.update(zip(keys, out, strict=True))
    return out  # type: ignore[return-value]


def _median(values: list[float]) -> float:
    """``float(np.median(values))`` of a list of floats (NaN when empty), without NumPy's set-up.

    The middle value, or the mean of the two middle values computed as NumPy does for two
    elements (their sum over 2); NaN in the list (or an empty list) goes to NumPy itself.
    """
    n = len(values)
    if n == 0 or any(v != v for v in values):
        return float(np.median(values)) if n else float("nan")
    ordered = sorted(values)
    half = n // 2
    if n % 2:
        return float(ordered[half])
    return float((ordered[half - 1] + ordered[half]) / 2)


#: AF-like window classifiers: name -> function(rr_s, nrmssd_min=, entropy_min=) -> (is_af, features).
AF_METHODS: Mapping[str, Callable[..., tuple[bool, _AfFeatures]]] = {
    "dash2009": _af_dash2009,
    "rmssd_tpr": _af_rmssd_tpr,
}


def detect_af_like(
    series: BeatSeries,
    *,
    method: str = "dash2009",
    window_beats: int = 64,
    step_beats: int = 8,
    nrmssd_min: float = 0.1,
    entropy_min: float = 0.7,
    min_duration_s: float = 30.0,
    rvr_bpm: float = 110.0,
    exclude_labels: Sequence[str] = ("V", "F", "Q"),
    reported: Mapping[str, Reported] | None = None,
    window_cache: dict[Any, Any] | None = None,
) -> tuple[Episode, ...]:
    """Irregularly irregular, AF-like rhythm from RR intervals.

    Sliding windows of ``window_beats`` usable RR intervals (valid, neither beat in
    ``exclude_labels``, so that ventricular ectopy does not look like AF), moved by
    ``step_beats``, are classified by ``method``:

    * ``"dash2009"``: Dash et al. (2009): after removing the 1/16 shortest and longest RR, the
      rhythm is AF-like when the normalised RMSSD (RMSSD / mean RR) exceeds ``nrmssd_min`` (0.1),
      the turning-point ratio lies within the range expected of a random series
      (``mu +- 3 sigma``, 0.54-0.77 for 128 beats), and the Shannon entropy of the 16-bin RR
      histogram exceeds ``entropy_min`` (0.7);
    * ``"rmssd_tpr"``: the same without the entropy test (better suited to short windows, where a
      16-bin histogram is sparse).

    Dash et al. used 128-beat windows; the 64-beat default trades some specificity for a faster
    onset. Each RR interval is AF-like when at least half of the windows covering it are; runs
    lasting ``min_duration_s`` (30 s, the ESC 2020 minimum AF episode) become episodes,
    ``warning`` severity, ``high`` when the mean ventricular rate exceeds ``rvr_bpm`` (110 bpm,
    rapid ventricular response beyond the ESC lenient rate-control target). ``reported``: as
    for :func:`detect_bradycardia`.

    ``window_cache``: an empty dict the caller keeps between calls on successive windows of one
    stream (the alert engine does). The verdicts and features of the built-in methods' windows
    are kept there, keyed by the window's RR values (their bytes) and the parameters, and the
    windows seen before are not classified again: a window's verdict is a function of those
    values alone (:func:`_af_windows` works row by row), so the result is the same as without
    the cache. The dict is left holding only the last call's windows.

    Returns
    -------
    tuple of Episode
        Kind ``"af_like"``; ``values``: ``mean_bpm``, ``nrmssd``, ``tpr``, ``shannon_entropy``
        (medians over the AF-like windows), ``duration_s``, ``method``.
    """
    if method not in AF_METHODS:
        raise ValueError(f"unknown AF method {method!r}; valid methods: {sorted(AF_METHODS)}")
    if int(window_beats) < 16:
        raise ValueError(f"window_beats must be >= 16, got {window_beats!r}")
    if int(step_beats) < 1:
        raise ValueError(f"step_beats must be >= 1, got {step_beats!r}")
    classify = AF_METHODS[method]
    n = len(series)
    if n < window_beats + 1:
        return ()
    usable_beat = series.beat_ok().copy()
    for label in set(exclude_labels):  # ~np.isin(series.label, exclude_labels), elementwise
        usable_beat &= series.label != label
    usable = np.flatnonzero(
        series.rr_valid() & usable_beat[:-1] & usable_beat[1:]
    )  # interval k: beats k, k+1
    if usable.size < window_beats:
        return ()
    rr = series.rr_s[usable]
    w = int(window_beats)
    starts = list(range(0, usable.size - w + 1, int(step_beats)))
    if starts[-1] != usable.size - w:
        starts.append(usable.size - w)
    if classify in (_af_dash2009, _af_rmssd_tpr):
        # windows whose normalised RMSSD cannot exceed nrmssd_min are not AF-like: their
        # verdict is (False, None), what _af_windows gives them (its first test fails)
        maybe = _af_may_pass(rr, starts, w, nrmssd_min).nonzero()[0].tolist()
        if not maybe:
            return ()  # no AF-like window
        sub = [starts[j] for j in maybe]
        if window_cache is not None:
            found = _af_windows_cached(window_cache, rr, sub, w, method, nrmssd_min, entropy_min)
        else:
            found = _af_windows(rr, sub, w, method, nrmssd_min, entropy_min)  # type: ignore[assignment]
        verdicts: list[tuple[bool, _AfFeatures | None]] = [(False, None)] * len(starts)
        for j, r in zip(maybe, found, strict=True):
            verdicts[j] = r
    else:
        batched = _af_windows(rr, starts, w, method, nrmssd_min, entropy_min)
        verdicts = (
            batched
            if batched is not None
            else [
                classify(rr[s : s + w], nrmssd_min=nrmssd_min, entropy_min=entropy_min)
                for s in starts
            ]
        )
    feats: list[tuple[int, _AfFeatures]] = [
        (s, f) for s, (is_af, f) in zip(starts, verdicts, strict=True) if is_af
    ]
    if not feats:
        return ()  # no AF-like window: no interval has a vote
    # windows covering / voting for each interval: +1 at a window's first interval, -1 after
    # its last (the starts are distinct), summed; small integers, exact in float64
    cover = np.zeros(usable.size + 1)
    first = np.asarray(starts, dtype=np.intp)
    cover[first] += 1
    cover[first + w] -= 1
    cover = np.cumsum(cover[:-1])
    votes = np.zeros(usable.size + 1)
    first = np.asarray([s for s, _f in feats], dtype=np.intp)
    votes[first] += 1
    votes[first + w] -= 1
    votes = np.cumsum(votes[:-1])
    af = votes >= 0.5 * np.maximum(cover, 1)
    af &= votes > 0
    out = []
    for a, b in _runs(af):
        k = usable[a:b]  # interval indices
        start_s = float(series.time_s[k[0]])
        end_s = float(series.time_s[k[-1] + 1])
        # allow short gaps of unusable intervals inside the run (they are contiguous in `usable`)
        if end_s - start_s < min_duration_s:
            continue
        mean_bpm = 60.0 / float(np.mean(rr[a:b]))
        sev = Severity.HIGH if mean_bpm > rvr_bpm else Severity.WARNING
        if _covered(reported, "af_like", sev, start_s, end_s):
            continue
        member = np.zeros(n, dtype=bool)  # np.unique(np.concatenate([k, k + 1])), k ascending
        member[k] = True
        member[k + 1] = True
        beat_idx = member.nonzero()[0]
        fs_in = [f for s, f in feats if s < b and s + w > a]
        values = {
            "mean_bpm": mean_bpm,
            "nrmssd": _median([f.nrmssd for f in fs_in]),
            "tpr": _median([f.tpr for f in fs_in]),
            "shannon_entropy": _median([f.shannon_entropy for f in fs_in]),
            "duration_s": end_s - start_s,
            "method": method,
        }
        out.append(
            _episode(
                "af_like",
                sev,
                series,
                beat_idx,
                values,
                f"Irregular rhythm (AF-like) for {end_s - start_s:.0f} s, mean {mean_bpm:.0f} bpm",
                start_s=start_s,
                end_s=end_s,
                ongoing=b == usable.size and k[-1] + 1 >= n - 2,
            )
        )
    return tuple(out)


def rr_irregular(
    series: BeatSeries,
    start_s: float,
    end_s: float,
    *,
    min_intervals: int = 16,
    nrmssd_min: float = 0.1,
    exclude_labels: Sequence[str] = ("V", "F", "Q"),
    beat_flags_only: bool = False,
) -> tuple[bool, dict[str, float]]:
    """Whether the usable RR intervals of ``[start_s, end_s]`` are irregular enough for AF.

    The second opinion the alert engine asks before a rhythm-model ``A`` window raises the
    AF alarm (``EngineConfig.af_model_rr_check``). Usable intervals are those of
    :func:`detect_af_like` (valid, neither beat in ``exclude_labels``: ventricular ectopy
    in a regular sinus rhythm, bigeminy or trigeminy, is not AF) lying inside the window. The
    window is irregular when it holds at least ``min_intervals`` of them and, after the
    trimming of Dash et al. (2009) (1/16 of the values at each tail), their normalised RMSSD
    exceeds ``nrmssd_min`` (Dash's 0.1) and their turning-point ratio lies in the band of a
    random series (:func:`_tpr_bounds`). Too few usable intervals (heavy ectopy, noise): not
    irregular, the model's verdict is not confirmed.

    ``beat_flags_only``: a beat's validity is its own ``quality_ok`` flag (the 2 s quality
    estimator's verdict) and the series' ``noisy_spans_s`` are ignored. The alert engine
    asks so: its noisy spans include the rhythm model's earlier ``~`` windows, 30 s long,
    which a later ``A`` verdict on an overlapping window supersedes.

    Returns
    -------
    (bool, dict)
        The verdict and ``{"n_rr", "n_readable", "nrmssd", "tpr"}``: the usable intervals,
        the intervals of valid beats whatever their labels (what the signal lets one read),
        and the features (NaN when too few usable intervals).

    >>> s = BeatSeries.from_samples(range(0, 360 * 40, 288), ["N"] * 50, fs=360.0)
    >>> rr_irregular(s, 0.0, 40.0)[0]  # regular sinus rhythm
    False
    """
    if int(min_intervals) < 3:
        raise ValueError(f"min_intervals must be >= 3, got {min_intervals!r}")
    n = len(series)
    if n < 2:
        return False, {"n_rr": 0, "n_readable": 0, "nrmssd": math.nan, "tpr": math.nan}
    t = series.time_s
    ok_beat = series.quality_ok if beat_flags_only else series.beat_ok()
    inside = (t[:-1] >= float(start_s)) & (t[1:] <= float(end_s))
    readable = inside & ok_beat[:-1] & ok_beat[1:]
    if not beat_flags_only:
        readable &= series.rr_valid()
    usable_beat = ok_beat.copy()
    for label in set(exclude_labels):
        usable_beat &= series.label != label
    keep = readable & usable_beat[:-1] & usable_beat[1:]
    rr = series.rr_s[keep]
    info: dict[str, float] = {"n_rr": int(rr.size), "n_readable": int(np.count_nonzero(readable))}
    if rr.size < int(min_intervals):
        return False, {**info, "nrmssd": math.nan, "tpr": math.nan}
    f = _af_features(rr)
    lo, hi = _tpr_bounds(rr.size - 2 * _n_trim(rr.size))
    ok = f.nrmssd > nrmssd_min and lo < f.tpr < hi
    return ok, {**info, "nrmssd": f.nrmssd, "tpr": f.tpr}
