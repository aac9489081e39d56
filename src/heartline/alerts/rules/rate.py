"""Heart rate, bradycardia, tachycardia and pauses (Kusumoto et al. 2018 thresholds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
# Heart rate
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HeartRate:
    """Heart rate at every beat.

    Attributes
    ----------
    time_s : numpy.ndarray
        Beat times (s).
    instantaneous_bpm : numpy.ndarray
        ``60 / RR`` of the interval ending at each beat; NaN for the first beat and for invalid
        (noisy) intervals.
    smoothed_bpm : numpy.ndarray
        ``60 / mean(RR)`` over the valid intervals ending in the averaging window at each beat;
        NaN while fewer than ``min_intervals`` valid intervals are available.
    """

    time_s: np.ndarray
    instantaneous_bpm: np.ndarray
    smoothed_bpm: np.ndarray


def heart_rate(
    series: BeatSeries,
    *,
    window_beats: int | None = 10,
    window_s: float | None = None,
    min_intervals: int = 4,
) -> HeartRate:
    """Instantaneous and smoothed heart rate.

    The smoothed rate averages RR intervals (not rates) over the last ``window_beats`` intervals
    or, when ``window_s`` is given, over the intervals ending in the last ``window_s`` seconds,
    which is the averaging that IEC 60601-2-27 (201.7.9.2.9.101 b, heart-rate averaging) asks
    monitors to disclose. Invalid intervals (noise) are skipped.

    Parameters
    ----------
    series : BeatSeries
    window_beats : int or None
        Number of RR intervals averaged (ignored when ``window_s`` is given).
    window_s : float or None
        Averaging window in seconds.
    min_intervals : int
        Fewest valid intervals needed for a smoothed value.

    Returns
    -------
    HeartRate

    >>> s = BeatSeries.from_samples([0, 360, 720, 1080, 1440, 1800], ["N"] * 6, fs=360.0)
    >>> hr = heart_rate(s, window_beats=4)
    >>> hr.instantaneous_bpm.tolist()[1:], hr.smoothed_bpm.tolist()[-1]
    ([60.0, 60.0, 60.0, 60.0, 60.0], 60.0)
    """
    if window_s is None and (window_beats is None or int(window_beats) < 1):
        raise ValueError(f"window_beats must be >= 1 (or give window_s), got {window_beats!r}")
    if window_s is not None:
        _check_positive(window_s, "window_s")
    if int(min_intervals) < 1:
        raise ValueError(f"min_intervals must be >= 1, got {min_intervals!r}")
    n = len(series)
    rr_end = np.full(n, np.nan)  # RR interval ending at each beat
    valid_end = np.zeros(n, dtype=bool)
    if n > 1:
        rr_end[1:] = series.rr_s
        valid_end[1:] = series.rr_valid() & (series.rr_s > 0)
    inst = np.where(valid_end, 60.0 / np.where(valid_end, rr_end, 1.0), np.nan)
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid_end, rr_end, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(valid_end)])
    stop = np.arange(1, n + 1)
    if window_s is not None:
        start = np.searchsorted(series.time_s, series.time_s - float(window_s), side="right")
        # the interval ending at beat k lies in the window when k >= start (k >= 1 implicitly)
    else:
        start = np.maximum(stop - int(window_beats), 0)  # type: ignore[arg-type]
    total = csum[stop] - csum[start]
    count = ccnt[stop] - ccnt[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = np.where(count >= int(min_intervals), 60.0 * count / total, np.nan)
    # round to 1e-6 bpm so that a rate exactly at a limit is not pushed across it by float error
    return HeartRate(series.time_s.copy(), np.round(inst, 6), np.round(smoothed, 6))


def smoothed_rate(series: BeatSeries, window_beats: int) -> np.ndarray:
    """``heart_rate(...).smoothed_bpm`` of the rate rules, computed once per series (read-only).

    The same operations as :func:`heart_rate` (running sums of the valid RR intervals, the
    differences of those sums over the window, rounded to 1e-6 bpm), minus the instantaneous
    rate and the floating-point error state handling; a test checks equality.
    """
    key = ("smoothed_rate", int(window_beats))
    hit = series._memo.get(key)
    if hit is None:
        hit = series._memo[key] = read_only(
            _smoothed_bpm(series, int(window_beats), min(4, int(window_beats)))
        )
    return hit


def _smoothed_bpm(series: BeatSeries, window_beats: int, min_intervals: int) -> np.ndarray:
    n = len(series)
    if n == 0:
        return np.zeros(0)
    csum = np.zeros(n + 1)
    ccnt = np.zeros(n + 1, dtype=np.int64)
    if n > 1:
        rr = series.rr_s
        valid = series.rr_valid() & (rr > 0)
        np.cumsum(np.where(valid, rr, 0.0), out=csum[2:])
        np.cumsum(valid, out=ccnt[2:])
    start = np.arange(1 - window_beats, n + 1 - window_beats)
    np.maximum(start, 0, out=start)
    total = csum[1:] - csum[start]
    count = ccnt[1:] - ccnt[start]
    ok = count >= min_intervals
    smoothed = np.full(n, np.nan)
    np.divide(60.0 * count, total, out=smoothed, where=ok)
    return np.round(smoothed, 6)


def _rate_episodes(
    kind: str,
    series: BeatSeries,
    condition: np.ndarray,
    smoothed: np.ndarray,
    *,
    min_duration_s: float,
    severity_of: Callable[[np.ndarray], Severity],
    describe: Callable[[np.ndarray], str],
    extreme: Callable[[np.ndarray], float],
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    out = []
    n = len(series)
    for a, b in _runs(condition):
        dur = float(series.time_s[b - 1] - series.time_s[a])
        if dur < min_duration_s:
            continue
        rates = smoothed[a:b]
        severity = severity_of(rates)
        if _covered(reported, kind, severity, *_span_of(series, range(a, b))):
            continue
        values = {
            "extreme_bpm": extreme(rates),
            "mean_bpm": float(np.mean(rates)),
            "duration_s": dur,
        }
        out.append(
            _episode(
                kind, severity, series, np.arange(a, b), values, describe(rates), ongoing=b == n
            )
        )
    return tuple(out)


def _rate_cannot_last(
    series: BeatSeries,
    threshold_bpm: float,
    *,
    below: bool,
    window_beats: int,
    min_duration_s: float,
) -> bool:
    """True when no smoothed-rate run below (``below``) or above the limit can last long enough.

    The smoothed rate at beat ``k`` (rounded to 1e-6 bpm) is ``60 / mean`` of the valid positive
    RR intervals among the ``window_beats`` intervals ending at beats ``k - window_beats + 1 ..
    k``, so it falls below ``threshold_bpm`` only if one of them is longer than ``60 /
    threshold_bpm`` (less float error) and rises above it only if one is shorter: call those
    intervals *offending* (with a 1 % margin that dwarfs the rounding and summation errors). An
    offending interval ``j`` (beats ``j``, ``j + 1``) enters the averages of beats ``j + 1 ..
    j + window_beats`` only, so every beat past the limit lies in one of those ranges, and a run
    of such beats in one chunk of overlapping or adjacent ranges. When every chunk spans less
    than ``min_duration_s`` (no offending interval at all: no chunk), no run lasts
    ``min_duration_s`` and the rule returns no episode, as the full computation would: an exact
    shortcut. Float subtraction is monotone, so a run's computed duration is at most its
    chunk's computed span.
    """
    rr = series.rr_s
    if rr.size == 0:
        return True  # fewer than two beats: no smoothed rate at all
    if below:
        offending = rr >= 0.99 * 60.0 / threshold_bpm  # > 0: positive
    else:
        if threshold_bpm < 1.0:
            return False
        offending = (rr < 1.01 * 60.0 / threshold_bpm) & (rr > 0)
    offending &= series.rr_valid()  # the intervals the smoothed rate averages
    j = offending.nonzero()[0]
    if j.size == 0:
        return True  # the smoothed rate never crosses the limit
    w = int(window_beats)
    if j.size > 32 or w < 1:
        return False  # many offending intervals: a long run is likely, compute it
    t = series.time_s
    last = t.size - 1
    idx = j.tolist()
    first = prev = idx[0]
    for x in idx[1:]:
        if x - prev > w:  # beat ranges [first + 1, prev + w] and [x + 1, ...] do not touch
            if float(t[min(prev + w, last)] - t[first + 1]) >= min_duration_s:
                return False
            first = x
        prev = x
    return float(t[min(prev + w, last)] - t[first + 1]) < min_duration_s


def detect_bradycardia(
    series: BeatSeries,
    *,
    threshold_bpm: float = 50.0,
    high_bpm: float = 40.0,
    min_duration_s: float = 10.0,
    window_beats: int = 10,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Sustained bradycardia: smoothed heart rate below ``threshold_bpm`` for ``min_duration_s``.

    Severity is ``warning``, ``high`` once the smoothed rate falls below ``high_bpm``. The 50 bpm
    default follows the 2018 ACC/AHA/HRS bradycardia guideline (Kusumoto et al. 2019), which
    defines sinus bradycardia as a rate < 50 bpm.

    Parameters
    ----------
    series : BeatSeries
    threshold_bpm : float
        Alarm limit (bpm).
    high_bpm : float
        Below this rate the episode is ``high`` severity.
    min_duration_s : float
        The rate must stay below the limit this long (s) (the alarm condition delay).
    window_beats : int
        RR intervals averaged for the smoothed rate (:func:`heart_rate`).
    reported : mapping of str to Reported, optional
        Episodes it covers are not built (see :class:`Reported`; the alert engine's state).

    Returns
    -------
    tuple of Episode
        Kind ``"bradycardia"``; ``values``: ``extreme_bpm`` (lowest), ``mean_bpm``, ``duration_s``.
    """
    _check_positive(threshold_bpm, "threshold_bpm")
    if _rate_cannot_last(
        series,
        threshold_bpm,
        below=True,
        window_beats=window_beats,
        min_duration_s=min_duration_s,
    ):
        return ()
    smoothed = smoothed_rate(series, window_beats)
    cond = smoothed < threshold_bpm  # NaN (too few intervals) compares False
    return _rate_episodes(
        "bradycardia",
        series,
        cond,
        smoothed,
        min_duration_s=min_duration_s,
        severity_of=lambda r: Severity.HIGH if np.min(r) < high_bpm else Severity.WARNING,
        describe=lambda r: (
            f"Bradycardia: heart rate down to {np.min(r):.0f} bpm (limit {threshold_bpm:g})"
        ),
        extreme=lambda r: float(np.min(r)),
        reported=reported,
    )


def detect_tachycardia(
    series: BeatSeries,
    *,
    threshold_bpm: float = 120.0,
    high_bpm: float = 150.0,
    min_duration_s: float = 10.0,
    window_beats: int = 10,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Sustained tachycardia: smoothed heart rate above ``threshold_bpm`` for ``min_duration_s``.

    Severity ``warning``; ``high`` above ``high_bpm``. The 120 bpm default is a common adult
    monitor alarm limit (configurable, IEC 60601-2-27 201.12.1.101 lets the operator set it).

    ``reported``: as for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kind ``"tachycardia"``; ``values``: ``extreme_bpm`` (highest), ``mean_bpm``, ``duration_s``.
    """
    _check_positive(threshold_bpm, "threshold_bpm")
    if _rate_cannot_last(
        series,
        threshold_bpm,
        below=False,
        window_beats=window_beats,
        min_duration_s=min_duration_s,
    ):
        return ()
    smoothed = smoothed_rate(series, window_beats)
    cond = smoothed > threshold_bpm  # NaN (too few intervals) compares False
    return _rate_episodes(
        "tachycardia",
        series,
        cond,
        smoothed,
        min_duration_s=min_duration_s,
        severity_of=lambda r: Severity.HIGH if np.max(r) > high_bpm else Severity.WARNING,
        describe=lambda r: (
            f"Tachycardia: heart rate up to {np.max(r):.0f} bpm (limit {threshold_bpm:g})"
        ),
        extreme=lambda r: float(np.max(r)),
        reported=reported,
    )


# --------------------------------------------------------------------------------------------
# Pauses
# --------------------------------------------------------------------------------------------
def detect_pauses(
    series: BeatSeries,
    *,
    pause_s: float = 2.0,
    asystole_s: float = 3.0,
    now_s: float | None = None,
    reported: Mapping[str, Reported] | None = None,
) -> tuple[Episode, ...]:
    """Pauses and asystole: a valid RR interval longer than ``pause_s``.

    A pause longer than ``pause_s`` (2.0 s) is ``high`` severity; longer than ``asystole_s``
    (3.0 s, the pause length the 2018 ACC/AHA/HRS bradycardia guideline treats as significant)
    it is ``critical`` (IEC 60601-2-27 asystole alarm, high priority). When ``now_s`` is given,
    the open interval after the last beat is checked too, so asystole is reported while it is
    happening (the episode is then ``ongoing`` and ends at ``now_s``). Intervals that touch a
    noisy beat or overlap a noisy span are skipped (lead-off is not asystole). ``reported``: as
    for :func:`detect_bradycardia`.

    Returns
    -------
    tuple of Episode
        Kind ``"pause"``; ``values``: ``rr_s`` (longest gap), ``asystole`` (bool).
    """
    _check_positive(pause_s, "pause_s")
    _check_positive(asystole_s, "asystole_s")
    if asystole_s < pause_s:
        raise ValueError(f"asystole_s ({asystole_s}) must be >= pause_s ({pause_s})")
    out: list[Episode] = []
    n = len(series)

    def make(rr: float, idx: np.ndarray, start: float, end: float, ongoing: bool) -> Episode | None:
        asys = round(rr, 6) > asystole_s
        sev = Severity.CRITICAL if asys else Severity.HIGH
        if _covered(reported, "pause", sev, start, end):
            return None
        msg = f"{'Asystole' if asys else 'Pause'}: no beat for {rr:.1f} s"
        return _episode(
            "pause",
            sev,
            series,
            idx,
            {"rr_s": rr, "asystole": asys},
            msg,
            start_s=start,
            end_s=end,
            ongoing=ongoing,
        )

    if n > 1:
        rr = series.rr_s
        long = np.round(rr, 6) > pause_s
        hits = (series.rr_valid() & long).nonzero()[0] if long.any() else ()
        for k in hits:
            ep = make(
                float(rr[k]),
                np.array([k, k + 1]),
                float(series.time_s[k]),
                float(series.time_s[k + 1]),
                False,
            )
            if ep is not None:
                out.append(ep)
    if now_s is not None and n > 0:
        last = float(series.time_s[-1])
        gap = float(now_s) - last
        if round(gap, 6) > pause_s and series.beat_ok()[-1]:
            clean = not any(
                start < float(now_s) and stop > last for start, stop in series.noisy_spans_s
            )
            ep = make(gap, np.array([n - 1]), last, float(now_s), True) if clean else None
            if ep is not None:
                out.append(ep)
    return tuple(out)
