"""Small synthetic beat sets for tests, examples and smoke runs (never for reported results)."""

from __future__ import annotations

import numpy as np

from heartline.data.beat_set import BeatSet

__all__ = ["synthetic_beats"]


def synthetic_beats(
    n_per_record: int = 40,
    records: tuple[str, ...] = ("a", "b"),
    *,
    n_leads: int = 2,
    window_len: int = 32,
    n_rr: int = 3,
    seed: int = 0,
) -> BeatSet:
    """Beats whose class (0..3) shows in both the window shape and the RR features.

    Class ``c`` adds a Gaussian bump at a class-specific position to every lead and shifts every
    RR feature by ``c / 3``; a small network separates them in a few steps.

    >>> b = synthetic_beats(10, ("x", "y", "z"))
    >>> len(b), b.records, b.windows.shape[1:]
    (30, ('x', 'y', 'z'), (2, 32))
    """
    rng = np.random.default_rng(seed)
    n = n_per_record * len(records)
    labels = rng.integers(0, 4, size=n).astype(np.int64)
    t = np.linspace(-1, 1, window_len, dtype=np.float32)
    windows = 0.1 * rng.standard_normal((n, n_leads, window_len)).astype(np.float32)
    for c in range(4):
        bump = np.exp(-((t - (c - 1.5) / 2) ** 2) / 0.02).astype(np.float32)
        windows[labels == c] += bump
    rr = (0.1 * rng.standard_normal((n, n_rr)) + labels[:, None] / 3.0).astype(np.float32)
    record = np.repeat(np.array(records), n_per_record)
    sample_idx = np.tile(np.arange(n_per_record) * 300, len(records)).astype(np.int64)
    return BeatSet(
        windows,
        rr,
        tuple(f"rr{i}" for i in range(n_rr)),
        labels,
        record,
        sample_idx,
        360.0,
        tuple(f"L{i}" for i in range(n_leads)),
    )
