"""The atrial-fibrillation gate (:mod:`heartline.edge.af_gate`) on MIT-BIH beat sets.

:class:`RecordRhythm` computes (and caches) the causal rhythm verdicts of each MIT-BIH record's
MLII lead with the shipped rhythm model (CinC 2017, Clifford et al. 2017; never trained on
MIT-BIH, so using it on DS1 / DS2 leaks nothing) and gives the per-beat AF mask of a
:class:`~heartline.data.beat_set.BeatSet`. :class:`AFGatedClassifier` wraps a trained beat
classifier so that its ``S`` calls in windows the rhythm model calls ``A`` become ``N`` (the
AAMI EC57 convention), for the project's evaluation path
(:func:`heartline.training.evaluate.evaluate_saved`). :func:`reference_rhythm_per_beat` reads
the ``.atr`` rhythm annotations (``(AFIB``, ``(AFL``, ...) to check the verdicts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.beat_set import BeatSet
from heartline.edge.af_gate import (
    DEFAULT_INTERVAL_S,
    DEFAULT_MIN_S,
    DEFAULT_WARMUP_S,
    RhythmWindows,
    apply_af_gate,
    beat_rhythm_verdicts,
    rhythm_windows,
)

__all__ = [
    "AF_RHYTHMS",
    "AFGatedClassifier",
    "RecordRhythm",
    "reference_rhythm_per_beat",
]

#: MIT-BIH rhythm annotations under which beats are AF or flutter (AAMI EC57: N, not S).
AF_RHYTHMS: tuple[str, ...] = ("(AFIB", "(AFL")


def _base_record(name: str) -> str:
    """``"201@detected"`` -> ``"201"`` (see :func:`heartline.training.lopo.peak_source_beats`)."""
    return str(name).split("@", 1)[0]


class RecordRhythm:
    """Causal rhythm verdicts of MIT-BIH records (MLII lead), computed once per record.

    Parameters
    ----------
    data_dir : path-like, optional
        Root of the databases (``<data_dir>/mitdb``; see
        :func:`heartline.data.paths.resolve_data_dir`).
    cache_dir : path-like, optional
        Folder for one ``.npz`` per record, keyed by the rhythm model's SHA-256 and the window
        settings; nothing is cached on disk when omitted.
    model_path : path-like, optional
        Rhythm model (the shipped one by default).
    interval_s, min_s, warmup_s : float
        See :func:`heartline.edge.af_gate.rhythm_windows` (the stream processor's defaults).
    """

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        model_path: str | os.PathLike[str] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        min_s: float = DEFAULT_MIN_S,
        warmup_s: float = DEFAULT_WARMUP_S,
    ) -> None:
        from heartline.data.paths import database_dir
        from heartline.edge.rhythm import OnnxRhythmClassifier
        from heartline.edge.runtime import file_sha256

        self.mitdb = database_dir("mitdb", data_dir=data_dir)
        self.clf = OnnxRhythmClassifier(model_path)
        self.settings = {
            "interval_s": float(interval_s),
            "min_s": float(min_s),
            "warmup_s": float(warmup_s),
        }
        self.model_sha256 = file_sha256(self.clf.path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._mem: dict[str, RhythmWindows] = {}

    @property
    def key(self) -> str:
        """Short hash of the model and settings (names the cache files)."""
        blob = json.dumps({"model": self.model_sha256, **self.settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def windows(self, record: str) -> RhythmWindows:
        """The record's :class:`~heartline.edge.af_gate.RhythmWindows` (MLII lead)."""
        record = _base_record(record)
        if record in self._mem:
            return self._mem[record]
        cache = self.cache_dir / f"{record}_{self.key}.npz" if self.cache_dir else None
        if cache is not None and cache.is_file():
            with np.load(cache) as z:
                w = RhythmWindows(
                    end_idx=z["end_idx"],
                    start_idx=z["start_idx"],
                    proba=z["proba"],
                    labels=z["labels"].astype("<U1"),
                    fs=float(z["fs"]),
                )
        else:
            from heartline.io.records import read_record

            rec = read_record(self.mitdb / record)
            lead = "MLII" if "MLII" in rec.lead_names else 0
            w = rhythm_windows(rec.lead(lead), fs=rec.fs, classifier=self.clf, **self.settings)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(
                    cache,
                    end_idx=w.end_idx,
                    start_idx=w.start_idx,
                    proba=w.proba,
                    labels=w.labels,
                    fs=w.fs,
                )
        self._mem[record] = w
        return w

    def af_mask(self, beats: BeatSet) -> np.ndarray:
        """bool ``(len(beats),)``: each beat's causal window was called ``A``."""
        out = np.zeros(len(beats), dtype=bool)
        for rec in np.unique(beats.record):
            m = beats.record == rec
            w = self.windows(str(rec))
            out[m] = beat_rhythm_verdicts(
                fs=beats.fs, beat_idx=beats.sample_idx[m], windows=w
            ).af_mask
        return out

    def gate_counts(self, beats: BeatSet, proba: np.ndarray) -> dict[str, dict[str, int]]:
        """Per record: beats, beats in ``A`` windows, ``S`` calls and ``S`` calls the gate turns
        into ``N`` (labelled beats only)."""
        from heartline.data.aami import AAMI_CLASSES

        mask = self.af_mask(beats)
        s_call = np.argmax(np.nan_to_num(np.asarray(proba), nan=-1.0), axis=1) == (
            AAMI_CLASSES.index("S")
        )
        out: dict[str, dict[str, int]] = {}
        for rec in np.unique(beats.record):
            m = (beats.record == rec) & (beats.labels >= 0)
            out[str(rec)] = {
                "n_beats": int(m.sum()),
                "n_af_window": int((m & mask).sum()),
                "n_s_calls": int((m & s_call).sum()),
                "n_s_gated": int((m & s_call & mask).sum()),
            }
        return out

    def describe(self) -> dict[str, Any]:
        """What ``metrics.json`` records about the gate."""
        return {
            "rhythm_model": str(self.clf.path.name),
            "rhythm_model_sha256": self.model_sha256,
            "lead": "MLII",
            "window_s": self.clf.window_s,
            **self.settings,
            "rule": "S -> N where the beat's most recent window ending at or before it is A (argmax)",
        }


class AFGatedClassifier:
    """A trained beat classifier whose ``S`` calls in AF windows become ``N``.

    ``predict_proba`` is the wrapped model's, gated by :func:`heartline.edge.af_gate.apply_af_gate`
    with :meth:`RecordRhythm.af_mask`; every other attribute is the wrapped model's.

    Parameters
    ----------
    model : object
        Has ``predict_proba(beats) -> (n, 5)``.
    rhythm : RecordRhythm
        The records' rhythm verdicts.
    """

    def __init__(self, model: Any, rhythm: RecordRhythm) -> None:
        self.model = model
        self.rhythm = rhythm

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        return apply_af_gate(
            self.model.predict_proba(beats), self.rhythm.af_mask(beats), classes=beats.classes
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def reference_rhythm_per_beat(
    record: str | os.PathLike[str], sample_idx: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The reference rhythm (``.atr`` aux note, e.g. ``"(AFIB"``, ``"(N"``) in force at each sample.

    Parameters
    ----------
    record : path-like
        Record path without extension (``.../mitdb/201``).
    sample_idx : array_like of int
        Sample positions.

    Returns
    -------
    numpy.ndarray
        str ``(n,)``; ``""`` before the first rhythm annotation.
    """
    from heartline.io.records import read_annotations

    ann = read_annotations(record)
    starts, notes = [], []
    for s, aux in zip(ann.sample_idx, ann.aux_note, strict=False):
        note = (aux or "").strip("\x00").strip()
        if note.startswith("("):
            starts.append(int(s))
            notes.append(note)
    idx = np.asarray(sample_idx, dtype=np.int64).reshape(-1)
    out = np.full(idx.size, "", dtype=object)
    if starts:
        k = np.searchsorted(np.asarray(starts), idx, side="right") - 1
        has = k >= 0
        out[has] = np.asarray(notes, dtype=object)[k[has]]
    return out.astype(str)
