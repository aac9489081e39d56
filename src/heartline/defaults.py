"""Defaults shared by the settings, the stream processor, the CLI and the benchmarks.

Kept free of imports so that the core install (``heartline classify``) and every layer can read
them without loading pydantic or the stream processor.
"""

from __future__ import annotations

__all__ = ["DEFAULT_RHYTHM_INTERVAL_S", "MAX_RHYTHM_INTERVAL_S", "MIN_RHYTHM_INTERVAL_S"]

#: The stream processors' rhythm-model cadence, in seconds of a device's data
#: (``Settings.rhythm_interval_s``, ``heartline serve --rhythm-interval-s``), and its allowed
#: range. What a longer cadence saves and costs: ``docs/results/stream.md``.
DEFAULT_RHYTHM_INTERVAL_S: float = 5.0
MIN_RHYTHM_INTERVAL_S: float = 1.0
MAX_RHYTHM_INTERVAL_S: float = 30.0
