"""Defaults shared by the settings, the stream processor, the CLI and the benchmarks.

Kept free of imports so that the core install (``heartline classify``) and every layer can read
them without loading pydantic or the stream processor.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_QUALITY_WARMUP_S",
    "DEFAULT_RHYTHM_INTERVAL_S",
    "DEFAULT_RHYTHM_MIN_S",
    "MAX_RHYTHM_INTERVAL_S",
    "MIN_RHYTHM_INTERVAL_S",
]

#: The stream processors' rhythm-model cadence, in seconds of a device's data
#: (``Settings.rhythm_interval_s``, ``heartline serve --rhythm-interval-s``), and its allowed
#: range. What a longer cadence saves and costs: ``docs/results/stream.md``.
DEFAULT_RHYTHM_INTERVAL_S: float = 5.0
MIN_RHYTHM_INTERVAL_S: float = 1.0
MAX_RHYTHM_INTERVAL_S: float = 30.0
#: The processor's first rhythm window of a segment waits for this much data (s), and its first
#: seconds of a segment are band-pass start-up (no quality verdicts, no rhythm input): the
#: offline AF gate (:mod:`heartline.edge.af_gate`) makes its windows with the same values.
DEFAULT_RHYTHM_MIN_S: float = 10.0
DEFAULT_QUALITY_WARMUP_S: float = 2.0
