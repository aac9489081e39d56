"""Signal quality: the ``signal_quality`` technical alarm (IEC 60601-2-27)."""

from __future__ import annotations

import math
from collections.abc import Mapping

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
# Signal quality (technical alarm)
# --------------------------------------------------------------------------------------------
def detect_signal_quality(
    series: BeatSeries,
    *,
    min_duration_s: float = 2.0,
    merge_gap_s: float = 1.0,
    reported: Mapping[str, Reported] | None = None,
    sustain_window_s: float = 0.0,
    sustain_fraction: float = 1.0,
) -> tuple[Episode, ...]:
    """Noisy-signal technical alarm: runs of beats with ``quality_ok`` False and noisy spans.

    A technical alarm condition in the sense of IEC 60601-1-8 (IEC 60601-2-27 requires monitors
    to signal noise / leads-off instead of analysing arrhythmias on such signal); ``warning``
    severity. Stretches closer than ``merge_gap_s`` are merged; those lasting at least
    ``min_duration_s`` are reported. ``reported``: as for :func:`detect_bradycardia`.

    ``sustain_window_s`` > 0 makes the condition a sustained one, as technical alarms of
    bedside monitors (leads off, artefact) need persistence: a time ``t`` is in the condition
    when unusable signal covers at least ``sustain_fraction`` of ``[t - sustain_window_s, t]``
    (evaluated on a 0.1 s grid); each stretch of such times is reported from the start of
    the unusable signal in its first window to its last time, when it lasts at least
    ``min_duration_s`` (``merge_gap_s`` is then unused). Brief failing windows scattered
    through a usable recording (baseline wander or a movement in one 2 s window) then raise no
    notice, while their beats are still left out of the arrhythmia rules.

    Returns
    -------
    tuple of Episode
        Kind ``"signal_quality"``, category ``"technical"``; ``values``: ``duration_s``,
        ``n_noisy_beats``.
    """
    n = len(series)
    if not series.noisy_spans_s and series.quality_ok.all():
        return ()
    intervals: list[tuple[float, float]] = []
    bad = ~series.quality_ok
    for a, b in _runs(bad):
        start = float(series.time_s[a])
        # a run of noisy beats spans to the next clean beat's predecessor
        stop = float(series.time_s[b - 1])
        intervals.append((start, stop))
    intervals.extend(series.noisy_spans_s)
    if not intervals:
        return ()
    intervals.sort()
    if sustain_window_s > 0:
        merged = _sustained(intervals, sustain_window_s, sustain_fraction)
    else:
        merged = [list(intervals[0])]
        for start, stop in intervals[1:]:
            if start <= merged[-1][1] + merge_gap_s:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
    out = []
    last_t = float(series.time_s[-1]) if n else -math.inf
    for start, stop in merged:
        if stop - start < min_duration_s:
            continue
        if _covered(reported, "signal_quality", Severity.WARNING, start, stop):
            continue
        idx = np.flatnonzero(bad & (series.time_s >= start) & (series.time_s <= stop))
        out.append(
            _episode(
                "signal_quality",
                Severity.WARNING,
                series,
                idx,
                {"duration_s": stop - start, "n_noisy_beats": int(idx.size)},
                f"ECG signal quality too poor for arrhythmia analysis for {stop - start:.0f} s",
                start_s=start,
                end_s=stop,
                ongoing=stop >= last_t,
            )
        )
    return tuple(out)


_GRID_S = 0.1


def _sustained(
    intervals: list[tuple[float, float]], window_s: float, fraction: float
) -> list[list[float]]:
    """Stretches where unusable signal covers ``fraction`` of the trailing ``window_s``.

    ``intervals`` sorted by start. Returns ``[[start, stop]]``: ``stop`` the last grid time in
    the condition, ``start`` the first unusable time inside the window that first met it.
    """
    lo = intervals[0][0]
    hi = max(b for _a, b in intervals)
    n = math.ceil((hi - lo) / _GRID_S) + 1
    # unusable cells of the grid (cell k: [lo + k dt, lo + (k + 1) dt))
    bad = np.zeros(n, dtype=np.int64)
    for a, b in intervals:
        i = math.floor((a - lo) / _GRID_S + 1e-9)
        j = math.ceil((b - lo) / _GRID_S - 1e-9)
        bad[i : max(j, i)] = 1
    k = max(round(window_s / _GRID_S), 1)
    csum = np.concatenate([[0], np.cumsum(bad)])
    # covered cells of the window of k cells ending at cell e (exclusive): csum[e] - csum[e - k]
    ends = np.arange(1, n + 1)
    cover = csum[ends] - csum[np.maximum(ends - k, 0)]
    hit = cover >= fraction * k - 1e-9
    out: list[list[float]] = []
    for a, b in _runs(hit):
        first_end = int(ends[a])
        w0 = max(first_end - k, 0)
        first_bad = w0 + int(np.flatnonzero(bad[w0:first_end])[0])
        start = lo + first_bad * _GRID_S
        stop = min(lo + int(ends[b - 1]) * _GRID_S, hi)
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return out
