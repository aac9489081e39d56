"""Clinical alert rules: pure functions from a labelled beat series to detected episodes.

Every rule takes a :class:`BeatSeries` (beat times in seconds, AAMI labels ``N S V F Q``,
classifier confidences and per-beat signal-quality flags) and returns a tuple of
:class:`Episode` objects, each with a kind, a :class:`Severity`, its time span and the evidence
(beat ids, times and the measured values) that triggered it. Rules hold no state; the
:class:`~heartline.alerts.engine.AlertEngine` runs them on a sliding window and debounces them.

Signal-quality gating
---------------------
Arrhythmia rules only use *valid* beats and RR intervals: a beat whose ``quality_ok`` flag is
False, or an RR interval that touches such a beat or overlaps one of the series'
``noisy_spans_s``, is ignored (runs and patterns are broken there, rate windows skip it). Noisy
stretches raise a ``"signal_quality"`` *technical* alarm instead (:func:`detect_signal_quality`),
following the split between physiological and technical alarm conditions of IEC 60601-1-8 and
the ECG-monitor particular standard IEC 60601-2-27 (which asks that noise and lead-off be
signalled as technical alarms rather than as arrhythmias).

Severities and alarm priorities
-------------------------------
``info < warning < high < critical``. They map onto the IEC 60601-1-8 alarm priorities as
``critical`` -> high priority (immediate response: asystole, sustained VT, as the "lethal
arrhythmia" alarms of IEC 60601-2-27 201.7.9.2.9), ``high`` -> medium priority (prompt response),
``warning`` -> low priority (awareness), ``info`` -> information signal.

References
----------
IEC 60601-2-27:2011 Medical electrical equipment - Part 2-27: Particular requirements for the
basic safety and essential performance of electrocardiographic monitoring equipment.
IEC 60601-1-8:2006+A1:2012 General requirements, tests and guidance for alarm systems.
ANSI/AAMI EC57:2012 Testing and reporting performance results of cardiac rhythm and ST segment
measurement algorithms (beat classes, VT run definitions).
Al-Khatib SM et al. 2017 AHA/ACC/HRS Guideline for management of patients with ventricular
arrhythmias and the prevention of sudden cardiac death. Circulation 138:e272-e391 (2018)
(NSVT: >= 3 consecutive ventricular beats at > 100 bpm lasting < 30 s; sustained VT >= 30 s).
Kusumoto FM et al. 2018 ACC/AHA/HRS Guideline on the evaluation and management of patients with
bradycardia and cardiac conduction delay. Circulation 140:e382-e482 (2019) (bradycardia < 50
bpm; pauses > 3 s).
Dash S, Chon KH, Lu S, Raeder EA. Automatic real time detection of atrial fibrillation.
Ann Biomed Eng 37(9):1701-1709 (2009).
Hindricks G et al. 2020 ESC Guidelines for the diagnosis and management of atrial fibrillation.
Eur Heart J 42:373-498 (2021) (an AF episode lasts >= 30 s; lenient rate control < 110 bpm).

Layout
------
:mod:`~heartline.alerts.rules.events` (beats in, episodes out), :mod:`~heartline.alerts.rules.rate`
(heart rate, brady/tachycardia, pauses), :mod:`~heartline.alerts.rules.ventricular` (runs, VT,
patterns, frequent ectopy), :mod:`~heartline.alerts.rules.af` (AF-like rhythm),
:mod:`~heartline.alerts.rules.quality` (technical alarm) and
:mod:`~heartline.alerts.rules.evaluate` (:class:`RuleConfig`, :func:`evaluate_rules`). Every
public name is re-exported here: ``from heartline.alerts.rules import X`` is the import to use.
"""

from __future__ import annotations

from heartline.alerts.rules.af import AF_METHODS, detect_af_like
from heartline.alerts.rules.evaluate import SKIPPABLE_KINDS, RuleConfig, evaluate_rules
from heartline.alerts.rules.events import (
    KINDS,
    TECHNICAL_KINDS,
    Beat,
    BeatSeries,
    Episode,
    Reported,
    Severity,
)
from heartline.alerts.rules.quality import detect_signal_quality
from heartline.alerts.rules.rate import (
    HeartRate,
    detect_bradycardia,
    detect_pauses,
    detect_tachycardia,
    heart_rate,
)
from heartline.alerts.rules.ventricular import (
    detect_frequent_ectopy,
    detect_ventricular_patterns,
    detect_ventricular_runs,
)

__all__ = [
    "AF_METHODS",
    "KINDS",
    "SKIPPABLE_KINDS",
    "TECHNICAL_KINDS",
    "Beat",
    "BeatSeries",
    "Episode",
    "HeartRate",
    "Reported",
    "RuleConfig",
    "Severity",
    "detect_af_like",
    "detect_bradycardia",
    "detect_frequent_ectopy",
    "detect_pauses",
    "detect_signal_quality",
    "detect_tachycardia",
    "detect_ventricular_patterns",
    "detect_ventricular_runs",
    "evaluate_rules",
    "heart_rate",
]
