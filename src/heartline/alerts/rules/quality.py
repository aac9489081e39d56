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
) -> tuple[Episode, ...]:
    """Noisy-signal technical alarm: runs of beats with ``quality_ok`` False and noisy spans.

    A technical alarm condition in the sense of IEC 60601-1-8 (IEC 60601-2-27 requires monitors
    to signal noise / leads-off instead of analysing arrhythmias on such signal); ``warning``
    severity. Stretches closer than ``merge_gap_s`` are merged; those lasting at least
    ``min_duration_s`` are reported. ``reported``: as for :func:`detect_bradycardia`.

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
