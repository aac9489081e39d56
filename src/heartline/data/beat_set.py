"""Beat sets: beat-synchronous windows, RR features and AAMI labels for many records.

This module holds the container that every classifier consumes (:class:`BeatSet`). Building a
beat set from records (segmentation, RR features, caching) lives in
:func:`heartline.data.beat_dataset.build_beat_set`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heartline.data.aami import AAMI_CLASSES

__all__ = ["BeatSet", "concat_beat_sets"]


@dataclass(frozen=True)
class BeatSet:
    """Beats of one or more records, in record order then time order.

    Beats of one record are contiguous and sorted by ``sample_idx``, so the previous beats of a
    beat are the entries just before it with the same ``record`` (see :meth:`context_index`).

    Attributes
    ----------
    windows : numpy.ndarray
        float32, shape ``(n_beats, n_leads, window_len)``: each beat's window around its R-peak,
        resampled to a fixed length so that models work at any sampling rate.
    rr : numpy.ndarray
        float32, shape ``(n_beats, n_rr)``: RR features (computable online), named by ``rr_names``.
    rr_names : tuple of str
        Names of the ``rr`` columns.
    labels : numpy.ndarray
        int64, shape ``(n_beats,)``: index into :data:`~heartline.data.aami.AAMI_CLASSES`,
        ``-1`` where unknown (e.g. a detected beat matched to no annotation).
    record : numpy.ndarray
        str, shape ``(n_beats,)``: record (patient) of each beat.
    sample_idx : numpy.ndarray
        int64, shape ``(n_beats,)``: R-peak position at the record's own sampling rate.
    fs : float
        Sampling rate (Hz) of the source records.
    lead_names : tuple of str
        Lead of each window channel.
    pre_s, post_s : float
        Window extent around the R-peak in seconds.
    """

    windows: np.ndarray
    rr: np.ndarray
    rr_names: tuple[str, ...]
    labels: np.ndarray
    record: np.ndarray
    sample_idx: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    pre_s: float = 0.25
    post_s: float = 0.45
    classes: tuple[str, ...] = field(default=AAMI_CLASSES)

    def __post_init__(self) -> None:
        n = self.windows.shape[0]
        for name in ("rr", "labels", "record", "sample_idx"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, windows has {n}")
        if self.rr.ndim != 2 or self.rr.shape[1] != len(self.rr_names):
            raise ValueError("rr must be (n_beats, len(rr_names))")

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.windows.shape[1])

    @property
    def window_len(self) -> int:
        return int(self.windows.shape[2])

    @property
    def records(self) -> tuple[str, ...]:
        """Records present, in order of first appearance."""
        _, first = np.unique(self.record, return_index=True)
        return tuple(str(self.record[i]) for i in sorted(first))

    def subset(self, index: np.ndarray) -> BeatSet:
        """Beats selected by an integer index or boolean mask (order kept when sorted)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return BeatSet(
            windows=self.windows[index],
            rr=self.rr[index],
            rr_names=self.rr_names,
            labels=self.labels[index],
            record=self.record[index],
            sample_idx=self.sample_idx[index],
            fs=self.fs,
            lead_names=self.lead_names,
            pre_s=self.pre_s,
            post_s=self.post_s,
            classes=self.classes,
        )

    def select_records(self, records: tuple[str, ...] | list[str]) -> BeatSet:
        """Only the beats of the given records."""
        return self.subset(np.isin(self.record, list(records)))

    def labelled(self) -> BeatSet:
        """Only beats with a known label (``labels >= 0``)."""
        return self.subset(self.labels >= 0)

    def context_index(self, k: int) -> np.ndarray:
        """Indices of each beat's previous ``k`` beats and itself, shape ``(n_beats, k + 1)``.

        Column ``k`` is the beat itself; column ``k - j`` is the beat ``j`` before it in the
        same record. Before a record's first beat the index repeats that first beat (causal: no
        future beat is ever used).

        >>> import numpy as np
        >>> bs = BeatSet(np.zeros((4, 1, 2), np.float32), np.zeros((4, 0), np.float32), (),
        ...              np.zeros(4, np.int64), np.array(["a", "a", "b", "b"]), np.arange(4), 360.0, ("MLII",))
        >>> bs.context_index(1).tolist()
        [[0, 0], [0, 1], [2, 2], [2, 3]]
        """
        n = len(self)
        idx = np.arange(n)
        change = np.ones(n, dtype=bool)
        change[1:] = self.record[1:] != self.record[:-1]
        start = np.maximum.accumulate(np.where(change, idx, 0))
        offsets = np.arange(-k, 1)
        ctx = idx[:, None] + offsets[None, :]
        return np.maximum(ctx, start[:, None])

    def class_counts(self) -> dict[str, int]:
        """Beats per class name (unknown labels not counted)."""
        return {c: int(np.count_nonzero(self.labels == i)) for i, c in enumerate(self.classes)}


def concat_beat_sets(sets: list[BeatSet] | tuple[BeatSet, ...]) -> BeatSet:
    """One :class:`BeatSet` with the beats of ``sets`` in order (records must not repeat).

    Raises
    ------
    ValueError
        If ``sets`` is empty, the sets disagree on shapes, lead count, RR features, window extent or
        classes, or a record appears in more than one set (its beats would stop being
        contiguous, which breaks :meth:`BeatSet.context_index`).
    """
    if not sets:
        raise ValueError("concat_beat_sets needs at least one BeatSet")
    first = sets[0]
    seen: set[str] = set()
    for s in sets:
        same = (
            s.windows.shape[1:] == first.windows.shape[1:]
            and s.rr_names == first.rr_names
            and len(s.lead_names) == len(first.lead_names)
            and s.classes == first.classes
            and (s.pre_s, s.post_s) == (first.pre_s, first.post_s)
        )
        if not same:
            raise ValueError("beat sets differ in window shape, leads, RR features or classes")
        overlap = seen & set(s.records)
        if overlap:
            raise ValueError(f"record(s) {sorted(overlap)} appear in more than one beat set")
        seen |= set(s.records)
    fs = {float(s.fs) for s in sets if len(s)}
    if len(fs) > 1:
        raise ValueError(f"beat sets come from different sampling rates {sorted(fs)}")
    # MIT-BIH's second lead varies by record (V1, V2, V4, V5): names merge as build_beat_set does
    lead_names = tuple(
        "/".join(sorted({n for s in sets for n in s.lead_names[i].split("/")}))
        for i in range(len(first.lead_names))
    )
    return BeatSet(
        windows=np.concatenate([s.windows for s in sets]),
        rr=np.concatenate([s.rr for s in sets]),
        rr_names=first.rr_names,
        labels=np.concatenate([s.labels for s in sets]),
        record=np.concatenate([s.record for s in sets]),
        sample_idx=np.concatenate([s.sample_idx for s in sets]),
        fs=fs.pop() if fs else first.fs,
        lead_names=lead_names,
        pre_s=first.pre_s,
        post_s=first.post_s,
        classes=first.classes,
    )
