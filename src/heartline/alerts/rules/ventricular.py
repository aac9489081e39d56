"""Ventricular ectopy: couplets, runs and VT, bigeminy/trigeminy, frequent PVC/SVEB.

Run definitions follow ANSI/AAMI EC57 and Al-Khatib et al. 2017 (NSVT: >= 3 consecutive
ventricular beats at > 100 bpm lasting < 30 s; sustained VT >= 30 s).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from heartline.alerts.rules.events import (
    BeatSeries,
    Episode,
    Reported,
    Severity,
    _check_positive,
    _covered,
    _episode,
    _runs,
    _span_of,
    read_only,
)


# --------------------------------------------------------------------------------------------
# Ventricular ectopy
# --------------------------------------------------------------------------------------------
def _is_label(
    series: BeatSeries, label: str, min_confidence: float, prematurity: float | None = None
) -> np.ndarray:
    key = ("is_label", label, float(min_confidence), prematurity)
    hit = series._memo.get(key)
    if hit is None:
        hit = (series.label == label) & (series.confidence >= min_confidence) & series.beat_ok()
        if prematurity is not None and hit.any():
            hit &= premature_beats(series, prematurity)
        hit = series._memo[key] = read_only(hit)
    return hit


def premature_beats(series: BeatSeries, prematurity: float) -> np.ndarray:
    """Beats that come early: RR interval before the beat < ``prematurity`` x the reference RR.

    A premature ventricular complex is, by definition, premature: it comes before the next
    sinus beat is due (and a couplet's or a tachycardia's second and later beats come at least
    as fast). The reference RR is the median of the window's valid intervals between two
    ``N`` beats (all valid intervals when there are fewer than 4 of those). A V label on a beat
    that arrives on or after the sinus timing is not counted as ventricular ectopy by the
    rules (on single-lead wearable signal, such beats are mostly normal beats after a noise
    spike or a T wave detected as a beat; see ``docs/results/alarms.md``). The first beat of
    the window, with no interval before it, is never premature.

    Parameters
    ----------
    series : BeatSeries
    prematurity : float
        Fraction in (0, 1]: 0.85 counts beats at least 15 % early.
    """
    if not 0.0 < float(prematurity) <= 1.0:
        raise ValueError(f"prematurity must lie in (0, 1], got {prematurity!r}")
    n = len(series)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    rr = series.rr_s
    valid = series.rr_valid()
    nn = valid & (series.label[:-1] == "N") & (series.label[1:] == "N")
    ref_pool = rr[nn] if np.count_nonzero(nn) >= 4 else rr[valid]
    if ref_pool.size == 0:
        return out
    ref = float(np.median(ref_pool))
    tol = 1.0 - float(prematurity)
    out[1:] = valid & (rr < float(prematurity) * ref)
    # a beat on the sinus schedule (after an interpolated or spuriously detected beat): the
    # intervals from the last non-V beat before it and to the next beat both lie within
    # +-tol of the reference
    t = series.time_s
    idx = np.arange(n)
    non_v = np.where(series.label != "V", idx, -1)
    last_non_v = np.maximum.accumulate(np.concatenate(([-1], non_v[:-1])))
    has_prev = last_non_v >= 0
    has_next = idx < n - 1
    from_prev = np.where(has_prev, t - t[np.maximum(last_non_v, 0)], np.nan)
    to_next = np.full(n, np.nan)
    to_next[:-1] = rr
    with np.errstate(invalid="ignore"):
        on_time = (
            has_prev
            & has_next
            & (np.abs(from_prev - ref) <= tol * ref)
            & (np.abs(to_next - ref) <= tol * ref)
        )
    out &= ~on_time
    return out


def detect_ventricular_runs(
    series: BeatSeries,
    *,
    vt_rate_bpm: float = 100.0,
    sustained_s: float = 30.0,
    min_confidence: float = 0.0,
    prematurity: float | None = None,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Ventricular couplets, slow ventricular runs and ventricular tachycardia.

    Consecutive valid V beats (confidence >= ``min_confidence``, valid RR intervals between them)
    form a run. Following the 2017 AHA/ACC/HRS ventricular-arrhythmia guideline (Al-Khatib et al.)
    and ANSI/AAMI EC57:

    * 2 V beats: ``"v_couplet"`` (``warning``);
    * >= 3 V beats at a rate (``60 / mean RR`` inside the run) above ``vt_rate_bpm``: ``"vt"``,
      ``high`` severity (non-sustained VT), ``critical`` once it lasts >= ``sustained_s`` (30 s,
      sustained VT);
    * >= 3 V beats at or below ``vt_rate_bpm``: ``"v_run"`` (idioventricular rhythm, ``warning``).

    ``reported``: as for :func:`detect_bradycardia`.
    ``prematurity``: when given, only V beats that are premature count (see
    :func:`premature_beats`; ``None``, the default, counts every V beat).

    Returns
    -------
    tuple of Episode
        ``values``: ``n_beats``, ``rate_bpm``, ``duration_s``, ``sustained``.

    >>> s = BeatSeries.from_samples([0, 288, 432, 576, 720], ["N", "V", "V", "V", "N"], fs=360.0)
    >>> [(e.kind, e.severity.value, e.values["rate_bpm"]) for e in detect_ventricular_runs(s)]
    [('vt', 'high', 150.0)]
    """
    _check_positive(vt_rate_bpm, "vt_rate_bpm")
    _check_positive(sustained_s, "sustained_s")
    n = len(series)
    if n == 0:
        return ()
    isv = _is_label(series, "V", min_confidence, prematurity)
    if n < 2:
        return ()
    link = isv[:-1] & isv[1:]
    if not link.any():
        return ()
    link &= series.rr_valid()
    out = []
    for a, b in _runs(link):  # links a..b-1 join beats a..b
        first, last = a, b
        n_beats = last - first + 1
        duration = float(series.time_s[last] - series.time_s[first])
        rate = round(60.0 * (n_beats - 1) / duration, 6) if duration > 0 else float("inf")
        ongoing = last == n - 1
        if reported is not None:
            if n_beats == 2:
                kind, sev = "v_couplet", Severity.WARNING
            elif rate > vt_rate_bpm:
                kind = "vt"
                sev = Severity.CRITICAL if duration >= sustained_s else Severity.HIGH
            else:
                kind, sev = "v_run", Severity.WARNING
            span = (float(series.time_s[first]), float(series.time_s[last]))
            if _covered(reported, kind, sev, *span):
                continue
        idx = np.arange(first, last + 1)
        values = {"rate_bpm": rate, "duration_s": duration, "sustained": False}
        if n_beats == 2:
            out.append(
                _episode(
                    "v_couplet",
                    Severity.WARNING,
                    series,
                    idx,
                    values,
                    f"Ventricular couplet ({rate:.0f} bpm)",
                    ongoing=ongoing,
                )
            )
        elif rate > vt_rate_bpm:
            sustained = duration >= sustained_s
            values["sustained"] = sustained
            sev = Severity.CRITICAL if sustained else Severity.HIGH
            label = "Sustained VT" if sustained else "VT"
            out.append(
                _episode(
                    "vt",
                    sev,
                    series,
                    idx,
                    values,
                    f"{label}: {n_beats} ventricular beats at {rate:.0f} bpm over {duration:.1f} s",
                    ongoing=ongoing,
                )
            )
        else:
            out.append(
                _episode(
                    "v_run",
                    Severity.WARNING,
                    series,
                    idx,
                    values,
                    f"Ventricular run: {n_beats} beats at {rate:.0f} bpm",
                    ongoing=ongoing,
                )
            )
    return tuple(out)


def detect_ventricular_patterns(
    series: BeatSeries,
    *,
    min_cycles: int = 4,
    max_rr_s: float = 2.0,
    min_confidence: float = 0.0,
    prematurity: float | None = None,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Ventricular bigeminy (``N V N V ...``) and trigeminy (``N N V N N V ...``).

    A bigeminal (trigeminal) chain is a sequence of valid V beats each followed, one (two) beats
    later, by the next V beat, with only supraventricular (N or S) valid beats between them and
    valid RR intervals no longer than ``max_rr_s`` throughout (a pause breaks the pattern);
    ``min_cycles`` V beats make an episode (``warning``). ``reported``: as for
    :func:`detect_bradycardia`.
    ``prematurity``: when given, only V beats that are premature count (see
    :func:`premature_beats`; ``None``, the default, counts every V beat).

    Returns
    -------
    tuple of Episode
        Kinds ``"ventricular_bigeminy"`` / ``"ventricular_trigeminy"``; ``values``: ``cycles``.
    """
    if int(min_cycles) < 2:
        raise ValueError(f"min_cycles must be >= 2, got {min_cycles!r}")
    n = len(series)
    if n < 3:
        return ()
    isv = _is_label(series, "V", min_confidence, prematurity)
    vpos = isv.nonzero()[0]
    if vpos.size < int(min_cycles):  # a chain of min_cycles V beats is impossible
        return ()
    gap = vpos[1:] - vpos[:-1]  # np.diff(vpos)
    need = int(min_cycles) - 1  # links of one step in a chain of min_cycles V beats
    if np.count_nonzero(gap == 2) < need and np.count_nonzero(gap == 3) < need:
        return ()  # not enough V-to-V gaps of 2 (3) beats for any chain, clean or not
    ok = series.beat_ok()
    conducted = ((series.label == "N") | (series.label == "S")) & ok
    rr_ok = series.rr_valid() & (series.rr_s <= max_rr_s)
    # prefix counts of non-conducted beats and of bad RR intervals: "all of [a, b) are good"
    # is "no bad one in [a, b)", an O(1) test per pair
    bad_beat = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(~conducted, out=bad_beat[1:])
    bad_rr = np.zeros(n, dtype=np.int64)
    np.cumsum(~rr_ok, out=bad_rr[1:])
    p, q = vpos[:-1], vpos[1:]
    # pairs of consecutive V beats with only good beats and intervals between them
    clean = (bad_beat[q] == bad_beat[p + 1]) & (bad_rr[q] == bad_rr[p])
    out = []
    for kind, step in (("ventricular_bigeminy", 2), ("ventricular_trigeminy", 3)):
        # link between consecutive V beats at positions p and p+step
        chain_ok = clean & (gap == step)
        for a, b in _runs(chain_ok):
            chain = vpos[a : b + 1]
            cycles = chain.size
            if cycles < int(min_cycles):
                continue
            idx = np.arange(
                chain[0] - 1 if chain[0] > 0 and conducted[chain[0] - 1] else chain[0],
                chain[-1] + 1,
            )
            if _covered(reported, kind, Severity.WARNING, *_span_of(series, idx)):
                continue
            name = "bigeminy" if step == 2 else "trigeminy"
            out.append(
                _episode(
                    kind,
                    Severity.WARNING,
                    series,
                    idx,
                    {"cycles": int(cycles)},
                    f"Ventricular {name}: {cycles} cycles",
                    ongoing=chain[-1] >= n - step,
                )
            )
    return tuple(sorted(out, key=lambda e: e.start_s))


def detect_frequent_ectopy(
    series: BeatSeries,
    *,
    pvc_per_min: float = 6.0,
    sveb_per_min: float = 6.0,
    window_s: float = 60.0,
    min_confidence: float = 0.0,
    prematurity: float | None = None,
    reported: Mapping[str, Reported] | None = None,
    skip: Collection[str] = (),
) -> tuple[Episode, ...]:
    """Frequent ventricular (PVC) or supraventricular (SVEB) ectopic beats.

    Counts valid V (S) beats in a sliding window of ``window_s`` seconds ending at each ectopic
    beat; the episode spans the ectopic beats whose window count exceeds ``pvc_per_min``
    (``sveb_per_min``) scaled to the window. Six PVCs per minute is the classic "frequent PVC"
    alarm limit (Lown grading; a common bedside-monitor default, configurable per
    IEC 60601-2-27). ``reported``: as for :func:`detect_bradycardia`; ``skip``: kinds not
    to look for (the two counts are independent).
    ``prematurity``: when given, only V beats (not S) that are premature count (see
    :func:`premature_beats`; ``None``, the default, counts every V beat).

    Returns
    -------
    tuple of Episode
        Kinds ``"frequent_pvc"`` / ``"frequent_sveb"`` (``warning``); ``values``:
        ``max_per_min`` (the highest windowed count expressed per minute).
    """
    _check_positive(window_s, "window_s")
    out = []
    n = len(series)
    for kind, label, limit, name in (
        ("frequent_pvc", "V", pvc_per_min, "PVCs"),
        ("frequent_sveb", "S", sveb_per_min, "SVEBs"),
    ):
        _check_positive(limit, "pvc_per_min" if label == "V" else "sveb_per_min")
        if kind in skip:
            continue
        pos = _is_label(
            series, label, min_confidence, prematurity if label == "V" else None
        ).nonzero()[0]
        if pos.size == 0 or not pos.size > limit * window_s / 60.0:
            continue  # no window can hold more beats than the series
        t = series.time_s[pos]
        first_in = np.searchsorted(t, t - window_s, side="right")
        counts = np.arange(pos.size) - first_in + 1
        hot = counts > limit * window_s / 60.0
        if not hot.any():
            continue
        # an ectopic beat belongs to an episode when it lies in some window that exceeds the
        # limit: windows [first_in[j], j] of the hot j, marked by +1/-1 at their ends
        hot_j = hot.nonzero()[0]
        edge = np.zeros(pos.size + 1, dtype=np.int64)
        np.add.at(edge, first_in[hot_j], 1)
        np.add.at(edge, hot_j + 1, -1)
        member = np.cumsum(edge[:-1]) > 0
        for a, b in _runs(member):
            idx = pos[a:b]
            if _covered(reported, kind, Severity.WARNING, *_span_of(series, idx)):
                continue
            per_min = float(np.max(np.where(hot[a:b], counts[a:b], 0))) * 60.0 / window_s
            out.append(
                _episode(
                    kind,
                    Severity.WARNING,
                    series,
                    idx,
                    {"max_per_min": per_min},
                    f"Frequent {name}: {per_min:.0f}/min (limit {limit:g}/min)",
                    ongoing=bool(series.time_s[-1] - series.time_s[idx[-1]] < window_s) and n > 0,
                )
            )
    return tuple(out)
