"""All rules at once: :class:`RuleConfig` (every threshold) and :func:`evaluate_rules`."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from heartline.alerts.rules.af import (
    AF_METHODS,
    detect_af_like,
)
from heartline.alerts.rules.events import (
    BeatSeries,
    Episode,
    Reported,
    _check_positive,
)
from heartline.alerts.rules.quality import (
    detect_signal_quality,
)
from heartline.alerts.rules.rate import (
    detect_bradycardia,
    detect_pauses,
    detect_tachycardia,
)
from heartline.alerts.rules.ventricular import (
    detect_frequent_ectopy,
    detect_ventricular_patterns,
    detect_ventricular_runs,
)

# --------------------------------------------------------------------------------------------
# All rules
# --------------------------------------------------------------------------------------------
#: Kinds :func:`evaluate_rules` can be told to skip. The kinds of one rule call go together
#: (``v_couplet``, ``v_run`` and ``vt``; bigeminy and trigeminy); the two frequent-ectopy kinds
#: and the others are independent.
SKIPPABLE_KINDS: frozenset[str] = frozenset(
    {
        "v_couplet",
        "v_run",
        "vt",
        "ventricular_bigeminy",
        "ventricular_trigeminy",
        "frequent_pvc",
        "frequent_sveb",
        "af_like",
        "signal_quality",
        "bradycardia",
        "tachycardia",
    }
)
_JOINT_KINDS: tuple[frozenset[str], ...] = (
    frozenset({"v_couplet", "v_run", "vt"}),
    frozenset({"ventricular_bigeminy", "ventricular_trigeminy"}),
)


@dataclass(frozen=True)
class RuleConfig:
    """Every rule threshold in one validated, immutable place (defaults as documented per rule)."""

    hr_window_beats: int = 10
    brady_bpm: float = 50.0
    brady_high_bpm: float = 40.0
    tachy_bpm: float = 120.0
    tachy_high_bpm: float = 150.0
    rate_min_duration_s: float = 10.0
    pause_s: float = 2.0
    asystole_s: float = 3.0
    vt_rate_bpm: float = 100.0
    sustained_vt_s: float = 30.0
    pattern_min_cycles: int = 4
    pvc_per_min: float = 6.0
    sveb_per_min: float = 6.0
    ectopy_window_s: float = 60.0
    min_confidence: float = 0.0
    v_prematurity: float | None = None
    af_method: str = "dash2009"
    af_window_beats: int = 64
    af_step_beats: int = 8
    af_nrmssd_min: float = 0.1
    af_entropy_min: float = 0.7
    af_min_duration_s: float = 30.0
    af_rvr_bpm: float = 110.0
    quality_min_duration_s: float = 2.0
    quality_sustain_window_s: float = 0.0
    quality_sustain_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "brady_bpm",
            "brady_high_bpm",
            "tachy_bpm",
            "tachy_high_bpm",
            "pause_s",
            "asystole_s",
            "vt_rate_bpm",
            "sustained_vt_s",
            "pvc_per_min",
            "sveb_per_min",
            "ectopy_window_s",
            "af_nrmssd_min",
            "af_entropy_min",
            "af_rvr_bpm",
        ):
            _check_positive(getattr(self, name), name)
        for name in ("rate_min_duration_s", "af_min_duration_s", "quality_min_duration_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0 s, got {v!r}")
        if not (
            math.isfinite(self.quality_sustain_window_s) and self.quality_sustain_window_s >= 0
        ):
            raise ValueError(
                f"quality_sustain_window_s must be >= 0 s, got {self.quality_sustain_window_s!r}"
            )
        if not 0.0 < self.quality_sustain_fraction <= 1.0:
            raise ValueError(
                f"quality_sustain_fraction must lie in (0, 1], got {self.quality_sustain_fraction!r}"
            )
        if self.brady_high_bpm > self.brady_bpm:
            raise ValueError(
                f"brady_high_bpm ({self.brady_high_bpm}) must be <= brady_bpm ({self.brady_bpm})"
            )
        if self.tachy_high_bpm < self.tachy_bpm:
            raise ValueError(
                f"tachy_high_bpm ({self.tachy_high_bpm}) must be >= tachy_bpm ({self.tachy_bpm})"
            )
        if self.brady_bpm >= self.tachy_bpm:
            raise ValueError(
                f"brady_bpm ({self.brady_bpm}) must be below tachy_bpm ({self.tachy_bpm})"
            )
        if self.asystole_s < self.pause_s:
            raise ValueError(f"asystole_s ({self.asystole_s}) must be >= pause_s ({self.pause_s})")
        if self.v_prematurity is not None and not 0.0 < self.v_prematurity <= 1.0:
            raise ValueError(f"v_prematurity must lie in (0, 1], got {self.v_prematurity!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if self.af_method not in AF_METHODS:
            raise ValueError(
                f"unknown af_method {self.af_method!r}; valid methods: {sorted(AF_METHODS)}"
            )
        if (
            self.hr_window_beats < 1
            or self.pattern_min_cycles < 2
            or self.af_window_beats < 16
            or self.af_step_beats < 1
        ):
            raise ValueError(
                "hr_window_beats >= 1, pattern_min_cycles >= 2, af_window_beats >= 16 and af_step_beats >= 1 are required"
            )


def evaluate_rules(
    series: BeatSeries,
    *,
    config: RuleConfig | None = None,
    now_s: float | None = None,
    skip: Collection[str] = (),
    reported: Mapping[str, Reported] | None = None,
    af_cache: dict[Any, Any] | None = None,
) -> tuple[Episode, ...]:
    """Run every rule on ``series`` and return all episodes sorted by start time.

    Parameters
    ----------
    series : BeatSeries
    config : RuleConfig, optional
        Thresholds (defaults when omitted).
    now_s : float, optional
        Current data time; enables detection of an ongoing pause after the last beat.
    skip : collection of str
        Rules not to run this time, by the kinds they report (:data:`SKIPPABLE_KINDS`; the
        alert engine runs its costliest rule, ``"af_like"``, only every few beats, and skips
        the rules whose input has not changed in a way that could change their episodes).
    reported : mapping of str to Reported, optional
        Per kind, what the caller has already acted on: the episodes it covers are not built
        (:class:`Reported`). The others are the same as without it.
    af_cache : dict, optional
        ``window_cache`` of :func:`detect_af_like` (same result, fewer windows classified).

    Returns
    -------
    tuple of Episode

    >>> s = BeatSeries.from_samples(range(0, 360 * 60, 288), ["N"] * 75, fs=360.0)
    >>> evaluate_rules(s)
    ()
    """
    c = config or RuleConfig()
    skip = frozenset(skip)
    unknown = skip - SKIPPABLE_KINDS
    if unknown:
        raise ValueError(
            f"skip: unknown or unskippable kinds {sorted(unknown)}; valid: {sorted(SKIPPABLE_KINDS)}"
        )
    for joint in _JOINT_KINDS:
        if skip & joint and not joint <= skip:
            raise ValueError(
                f"skip: the kinds {sorted(joint)} come from one rule: skip all or none"
            )
    eps: list[Episode] = []
    if "bradycardia" not in skip:
        eps += detect_bradycardia(
            series,
            threshold_bpm=c.brady_bpm,
            high_bpm=c.brady_high_bpm,
            min_duration_s=c.rate_min_duration_s,
            window_beats=c.hr_window_beats,
            reported=reported,
        )
    if "tachycardia" not in skip:
        eps += detect_tachycardia(
            series,
            threshold_bpm=c.tachy_bpm,
            high_bpm=c.tachy_high_bpm,
            min_duration_s=c.rate_min_duration_s,
            window_beats=c.hr_window_beats,
            reported=reported,
        )
    eps += detect_pauses(
        series, pause_s=c.pause_s, asystole_s=c.asystole_s, now_s=now_s, reported=reported
    )
    if "vt" not in skip:
        eps += detect_ventricular_runs(
            series,
            vt_rate_bpm=c.vt_rate_bpm,
            sustained_s=c.sustained_vt_s,
            min_confidence=c.min_confidence,
            prematurity=c.v_prematurity,
            reported=reported,
        )
    if "ventricular_bigeminy" not in skip:
        eps += detect_ventricular_patterns(
            series,
            min_cycles=c.pattern_min_cycles,
            max_rr_s=c.pause_s,
            min_confidence=c.min_confidence,
            prematurity=c.v_prematurity,
            reported=reported,
        )
    if not {"frequent_pvc", "frequent_sveb"} <= skip:
        eps += detect_frequent_ectopy(
            series,
            pvc_per_min=c.pvc_per_min,
            sveb_per_min=c.sveb_per_min,
            window_s=c.ectopy_window_s,
            min_confidence=c.min_confidence,
            prematurity=c.v_prematurity,
            reported=reported,
            skip=skip,
        )
    if "af_like" not in skip:
        eps += detect_af_like(
            series,
            method=c.af_method,
            window_beats=c.af_window_beats,
            step_beats=c.af_step_beats,
            nrmssd_min=c.af_nrmssd_min,
            entropy_min=c.af_entropy_min,
            min_duration_s=c.af_min_duration_s,
            rvr_bpm=c.af_rvr_bpm,
            reported=reported,
            window_cache=af_cache,
        )
    if "signal_quality" not in skip:
        eps += detect_signal_quality(
            series,
            min_duration_s=c.quality_min_duration_s,
            reported=reported,
            sustain_window_s=c.quality_sustain_window_s,
            sustain_fraction=c.quality_sustain_fraction,
        )
    return tuple(sorted(eps, key=lambda e: (e.start_s, e.kind)))
