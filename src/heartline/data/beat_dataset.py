"""Build :class:`~heartline.data.beat_set.BeatSet` objects from PhysioNet records, with a disk cache.

Per record: read the leads, clean them (:func:`heartline.signal.segmentation.preprocess_ecg`), take
the R-peaks (reference beat annotations, or a detector's output matched back to the
annotations), cut and resample beat windows (:func:`~heartline.signal.segmentation.segment_beats`),
normalise them causally (:func:`~heartline.signal.segmentation.normalise_beats`) and compute online
RR features (:func:`~heartline.signal.segmentation.rr_features`) and, on the same normalised windows,
the patient-adaptive template features (:func:`~heartline.signal.templates.template_features`).
Each record's result is cached as ``.npz`` keyed by a hash of every parameter and of the source
code that produced it. The template columns join the beat set only when asked for
(``template_features=True``), after the RR columns, so that models and baselines built on the
RR columns alone see exactly what they saw before.

Paced records (:data:`heartline.data.splits.PACED`) are left out unless ``include_paced=True``,
following the AAMI recommended practice and de Chazal et al. (2004).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heartline._version import __version__
from heartline.data.aami import AAMI_CLASSES, aami_labels
from heartline.data.beat_set import BeatSet
from heartline.errors import HeartlineWarning
from heartline.signal.segmentation import (
    RR_FEATURE_NAMES,
    beat_edge_flags,
    normalise_beats,
    preprocess_ecg,
    rr_features,
    segment_beats,
)
from heartline.signal.templates import template_feature_names, template_features

__all__ = [
    "DetectionReport",
    "RecordMatch",
    "build_beat_set",
    "default_cache_dir",
    "detection_report",
    "match_detections",
]

logger = logging.getLogger(__name__)

RPEAK_SOURCES = ("annotated", "detected")
#: Lead that is moved to position 0 when a record stores it elsewhere (MIT-BIH 114 stores V5
#: first and MLII second), so lead 0 means the same thing in every record.
PRIMARY_LEAD = "MLII"
_SHOW_PROGRESS_ABOVE = 3
#: Arrays every cached record holds.
_CACHE_KEYS = frozenset(
    {"windows", "rr", "tpl", "labels", "sample_idx", "edge", "fs", "lead_names", "counts"}
)


def default_cache_dir() -> Path:
    """``platformdirs.user_cache_dir("heartline")/beats``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("heartline")) / "beats"


# --------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class RecordMatch:
    """Detected R-peaks matched one-to-one to reference beats of one record.

    Attributes
    ----------
    ref_index : numpy.ndarray
        int64, one per detection: index of the matched reference beat, ``-1`` if none (a false
        detection).
    n_reference, n_detected, n_matched : int
        Reference beats, detections, and matched pairs.
    """

    ref_index: np.ndarray
    n_reference: int
    n_detected: int
    n_matched: int

    @property
    def n_false(self) -> int:
        """Detections with no reference beat within the tolerance."""
        return self.n_detected - self.n_matched

    @property
    def n_missed(self) -> int:
        """Reference beats with no detection within the tolerance."""
        return self.n_reference - self.n_matched


def match_detections(
    detected_idx: np.ndarray, reference_idx: np.ndarray, *, tolerance: int
) -> RecordMatch:
    """Match detections to reference beats one-to-one, closest pairs first, within ``tolerance``.

    ``tolerance`` is in samples (EC57 uses 150 ms). Pairs are taken in order of increasing
    distance, each detection and each reference beat at most once.

    >>> m = match_detections(np.array([10, 52, 300]), np.array([0, 50, 100]), tolerance=15)
    >>> m.ref_index.tolist(), m.n_missed, m.n_false
    ([0, 1, -1], 1, 1)
    """
    det = np.asarray(detected_idx, dtype=np.int64)
    ref = np.asarray(reference_idx, dtype=np.int64)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 samples, got {tolerance}")
    out = np.full(det.size, -1, dtype=np.int64)
    if det.size and ref.size:
        # candidate pairs: each detection with its nearest reference on each side
        pos = np.searchsorted(ref, det)
        cand_d, cand_r = [], []
        for shift in (-1, 0):
            j = pos + shift
            ok = (j >= 0) & (j < ref.size)
            cand_d.append(np.flatnonzero(ok))
            cand_r.append(j[ok])
        d_idx = np.concatenate(cand_d)
        r_idx = np.concatenate(cand_r)
        dist = np.abs(det[d_idx] - ref[r_idx])
        keep = dist <= tolerance
        d_idx, r_idx, dist = d_idx[keep], r_idx[keep], dist[keep]
        used_ref = np.zeros(ref.size, dtype=bool)
        for k in np.argsort(dist, kind="stable"):
            d, r = d_idx[k], r_idx[k]
            if out[d] < 0 and not used_ref[r]:
                out[d] = r
                used_ref[r] = True
    n_matched = int(np.count_nonzero(out >= 0))
    return RecordMatch(out, int(ref.size), int(det.size), n_matched)


@dataclass(frozen=True)
class DetectionReport:
    """How well detected R-peaks cover the reference beats, per record and in total."""

    records: tuple[str, ...]
    n_reference: tuple[int, ...]
    n_detected: tuple[int, ...]
    n_matched: tuple[int, ...]

    @property
    def total_missed(self) -> int:
        return int(sum(self.n_reference) - sum(self.n_matched))

    @property
    def total_false(self) -> int:
        return int(sum(self.n_detected) - sum(self.n_matched))

    def to_dict(self) -> dict[str, object]:
        return {
            "records": list(self.records),
            "n_reference": list(self.n_reference),
            "n_detected": list(self.n_detected),
            "n_matched": list(self.n_matched),
            "total_missed": self.total_missed,
            "total_false": self.total_false,
        }


# --------------------------------------------------------------------------- per record
def _source_hash(rpeaks: str) -> str:
    """Hash of the code that produces a record's beats (cache invalidation on code change)."""
    import heartline.data.aami as aami
    import heartline.signal.segmentation as sig_beats
    import heartline.signal.templates as sig_templates

    files = [
        Path(__file__),
        Path(sig_beats.__file__ or ""),
        Path(aami.__file__ or ""),
        Path(sig_templates.__file__ or ""),
    ]
    if rpeaks == "detected":
        rp_dir = Path(sig_beats.__file__ or "").parent / "rpeaks"
        files += sorted(rp_dir.glob("*.py")) if rp_dir.is_dir() else []
    h = hashlib.sha256(__version__.encode())
    for f in files:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _select_leads(
    signal: np.ndarray, lead_names: tuple[str, ...], leads: Sequence[int | str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    names = list(lead_names)
    order = list(range(len(names)))
    if PRIMARY_LEAD in names and names.index(PRIMARY_LEAD) != 0:
        i = names.index(PRIMARY_LEAD)
        order = [i] + [j for j in order if j != i]
    cols = []
    for lead in leads:
        if isinstance(lead, str):
            if lead not in names:
                raise ValueError(f"lead {lead!r} not in this record's leads {names}")
            cols.append(names.index(lead))
        else:
            if not 0 <= int(lead) < len(order):
                raise ValueError(f"lead index {lead} out of range for {len(names)} leads")
            cols.append(order[int(lead)])
    return signal[:, cols], tuple(names[c] for c in cols)


def _build_record(
    record: str,
    *,
    database: str,
    data_dir: str | os.PathLike[str] | None,
    leads: Sequence[int | str],
    rpeaks: str,
    detector: str,
    window_len: int,
    pre_s: float,
    post_s: float,
    match_tolerance_s: float,
    preprocess: str,
    amplitude_history: int,
) -> dict[str, np.ndarray]:
    from heartline.data.paths import record_path
    from heartline.io import read_annotations, read_record

    path = record_path(database, record, data_dir=data_dir)
    rec = read_record(path)
    ann = read_annotations(path).beats()
    fs = rec.fs
    signal, names = _select_leads(rec.signal, rec.lead_names, leads)
    ref_idx = ann.sample_idx
    ref_labels = aami_labels(ann.symbol)
    # annotations sit on sample positions of the record; drop any outside the signal
    inside = (ref_idx >= 0) & (ref_idx < rec.n_samples)
    ref_idx, ref_labels = ref_idx[inside], ref_labels[inside]
    if rpeaks == "annotated":
        peaks, labels = ref_idx, ref_labels
        counts = np.array([ref_idx.size, ref_idx.size, ref_idx.size], dtype=np.int64)
    else:
        from heartline.signal.rpeaks import detect_r_peaks

        det = np.asarray(
            detect_r_peaks(
                rec.signal[:, rec.lead_names.index(names[0])], fs=fs, method=detector
            ).sample_idx
        )
        det = np.unique(det.astype(np.int64))
        det = det[(det >= 0) & (det < rec.n_samples)]
        match = match_detections(det, ref_idx, tolerance=round(match_tolerance_s * fs))
        peaks = det
        labels = np.where(match.ref_index >= 0, ref_labels[np.maximum(match.ref_index, 0)], -1)
        counts = np.array([match.n_reference, match.n_detected, match.n_matched], dtype=np.int64)
        logger.info(
            "%s: %d detections, %d matched, %d missed, %d false",
            record,
            match.n_detected,
            match.n_matched,
            match.n_missed,
            match.n_false,
        )
    clean = preprocess_ecg(signal, fs=fs, method=preprocess)
    windows = segment_beats(clean, peaks, fs=fs, pre_s=pre_s, post_s=post_s, window_len=window_len)
    windows = normalise_beats(windows, history=amplitude_history)
    edge = beat_edge_flags(peaks, n_samples=rec.n_samples, fs=fs, pre_s=pre_s, post_s=post_s)
    rr = rr_features(peaks, fs=fs).values.astype(np.float32)
    windows = windows.astype(np.float32)
    # on the float32 windows the model sees (the live pipeline's TemplateTracker gets the same)
    tpl = template_features(windows, pre_s=pre_s, post_s=post_s).values.astype(np.float32)
    return {
        "windows": windows,
        "rr": rr,
        "tpl": tpl,
        "labels": labels.astype(np.int64),
        "sample_idx": peaks.astype(np.int64),
        "edge": edge,
        "fs": np.float64(fs),
        "lead_names": np.array(names),
        "counts": counts,
    }


def _atomic_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _record_arrays(
    record: str,
    params: dict[str, object],
    cache_dir: Path | None,
    data_dir: str | os.PathLike[str] | None,
) -> dict[str, np.ndarray]:
    if cache_dir is not None:
        key = hashlib.sha256(
            json.dumps(
                {**params, "record": record, "code": _source_hash(str(params["rpeaks"]))},
                sort_keys=True,
            ).encode()
        ).hexdigest()[:20]
        path = cache_dir / f"{params['database']}_{record}_{key}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    cached = {k: z[k] for k in z.files}
                if _CACHE_KEYS <= set(cached):
                    return cached
                logger.warning("ignoring cache file %s without %s", path, sorted(_CACHE_KEYS))
            except (OSError, ValueError, EOFError) as exc:  # corrupt cache entry: rebuild it
                logger.warning("ignoring unreadable cache file %s (%s)", path, exc)
    arrays = _build_record(record, data_dir=data_dir, **params)  # type: ignore[arg-type]
    if cache_dir is not None:
        _atomic_save(path, arrays)
    return arrays


def _resolve_records(records: Iterable[str], include_paced: bool) -> list[str]:
    from heartline.data.splits import PACED

    records = [str(r) for r in records]
    if not records:
        raise ValueError("records is empty")
    if len(set(records)) != len(records):
        raise ValueError(f"records holds duplicates: {records}")
    paced = [r for r in records if r in PACED]
    if paced and not include_paced:
        warnings.warn(
            f"paced records {paced} left out (pass include_paced=True to keep them)",
            HeartlineWarning,
            stacklevel=3,
        )
        records = [r for r in records if r not in PACED]
    return records


def _params(
    database: str,
    leads: Sequence[int | str],
    rpeaks: str,
    detector: str,
    window_len: int,
    pre_s: float,
    post_s: float,
    match_tolerance_s: float,
    preprocess: str,
    amplitude_history: int,
) -> dict[str, object]:
    if rpeaks not in RPEAK_SOURCES:
        raise ValueError(f"unknown rpeaks {rpeaks!r}; valid: {list(RPEAK_SOURCES)}")
    if not leads:
        raise ValueError("leads must name at least one lead")
    if match_tolerance_s <= 0:
        raise ValueError(f"match_tolerance_s must be > 0 seconds, got {match_tolerance_s}")
    return {
        "database": database,
        "leads": [lead if isinstance(lead, str) else int(lead) for lead in leads],
        "rpeaks": rpeaks,
        "detector": detector if rpeaks == "detected" else "",
        "window_len": int(window_len),
        "pre_s": float(pre_s),
        "post_s": float(post_s),
        "match_tolerance_s": float(match_tolerance_s) if rpeaks == "detected" else 0.0,
        "preprocess": preprocess,
        "amplitude_history": int(amplitude_history),
    }


def _iterate(records: list[str], progress: bool | Callable[[str], None]) -> Iterable[str]:
    if callable(progress):
        for r in records:
            progress(r)
            yield r
    elif progress and len(records) > _SHOW_PROGRESS_ABOVE:
        from heartline.progress import track

        yield from track(records, description="building beats")
    else:
        yield from records


def build_beat_set(
    records: Iterable[str],
    *,
    database: str = "mitdb",
    data_dir: str | os.PathLike[str] | None = None,
    leads: Sequence[int | str] = (0, 1),
    rpeaks: str = "annotated",
    detector: str = "heartline",
    window_len: int = 128,
    pre_s: float = 0.25,
    post_s: float = 0.45,
    match_tolerance_s: float = 0.15,
    cache_dir: str | os.PathLike[str] | bool | None = None,
    include_paced: bool = False,
    preprocess: str = "bandpass",
    amplitude_history: int = 32,
    template_features: bool = False,
    progress: bool | Callable[[str], None] = True,
) -> BeatSet:
    """Beats of several records, ready for any :class:`~heartline.models.base.BeatClassifier`.

    Parameters
    ----------
    records : iterable of str
        Record names, e.g. :data:`heartline.data.splits.DS1`. Paced records are dropped (with a
        :class:`~heartline.errors.HeartlineWarning`) unless ``include_paced``.
    database : str
        Database folder, see :func:`heartline.data.paths.database_dir`.
    data_dir : path-like, optional
        Root of the databases (see :func:`heartline.data.paths.resolve_data_dir`).
    leads : sequence of int or str
        Leads per window, by position or name. Position 0 is the record's MLII lead wherever
        it is stored (MIT-BIH 114 stores it second); other positions follow the file order.
    rpeaks : {"annotated", "detected"}
        ``"annotated"``: one beat per reference beat annotation, labelled with its AAMI class.
        ``"detected"``: one beat per R-peak of
        ``heartline.signal.rpeaks.detect_r_peaks(lead 0, fs=fs, method=detector)``, labelled with
        the AAMI class of the reference beat matched within ``match_tolerance_s``, ``-1`` when
        none matches (false detection). Missed reference beats are counted, see
        :func:`detection_report` (and logged at INFO level).
    detector : str
        Detector method for ``rpeaks="detected"``.
    window_len, pre_s, post_s : int, float, float
        Window of ``[-pre_s, post_s)`` seconds around each R-peak, resampled to ``window_len``.
    match_tolerance_s : float
        Matching window for detections (EC57: 150 ms).
    cache_dir : path-like, optional
        Where per-record ``.npz`` files are cached (default :func:`default_cache_dir`);
        ``False`` disables the cache.
    include_paced : bool
        Keep paced records.
    preprocess : {"bandpass", "median"}
        Record cleaning, see :func:`heartline.signal.segmentation.preprocess_ecg`.
    amplitude_history : int
        Beats in the running amplitude normaliser, see :func:`heartline.signal.segmentation.normalise_beats`.
    template_features : bool
        Append the ``9 * n_leads + 1`` template columns of
        :func:`heartline.signal.templates.template_features` (computed per record on the
        normalised windows, history of 32 beats) after the :data:`~heartline.signal.segmentation.RR_FEATURE_NAMES`
        columns of ``rr`` (``rr_names`` extended with their names). ``False``: the RR columns
        only, as before the option existed. Models take the leading columns they were built for
        (:func:`heartline.signal.segmentation.model_rr_columns`), so a set with the template columns
        also serves RR-only models.
    progress : bool or callable
        Show a progress bar when building more than a few records, or call ``progress(record)``
        before each record.

    Returns
    -------
    BeatSet
        Beats in the order of ``records``, then time.
    """
    params = _params(
        database,
        leads,
        rpeaks,
        detector,
        window_len,
        pre_s,
        post_s,
        match_tolerance_s,
        preprocess,
        amplitude_history,
    )
    names = _resolve_records(records, include_paced)
    cache = (
        None
        if cache_dir is False
        else (default_cache_dir() if cache_dir in (None, True) else Path(cache_dir))
    )  # type: ignore[arg-type]
    parts: list[dict[str, np.ndarray]] = []
    for r in _iterate(names, progress):
        parts.append(_record_arrays(r, params, cache, data_dir))
    fs_values = {float(p["fs"]) for p in parts}
    if len(fs_values) != 1:
        raise ValueError(
            f"records have different sampling rates {sorted(fs_values)}; build one set per rate"
        )
    lead_sets = [tuple(str(x) for x in p["lead_names"]) for p in parts]
    lead_names = tuple(
        "/".join(sorted({ls[i] for ls in lead_sets})) for i in range(len(lead_sets[0]))
    )
    n_edge = int(sum(int(p["edge"].sum()) for p in parts))
    if n_edge:
        logger.info("%d beats have windows past the record edges (edge-padded)", n_edge)
    if rpeaks == "detected":
        c = np.sum([p["counts"] for p in parts], axis=0)
        logger.info(
            "detected beats: %d reference, %d detected, %d matched, %d missed, %d false",
            c[0],
            c[1],
            c[2],
            c[0] - c[2],
            c[1] - c[2],
        )
    rr = np.concatenate([p["rr"] for p in parts])
    rr_names = RR_FEATURE_NAMES
    if template_features:
        rr = np.concatenate([rr, np.concatenate([p["tpl"] for p in parts])], axis=1)
        rr_names = RR_FEATURE_NAMES + template_feature_names(len(lead_names))
    return BeatSet(
        windows=np.concatenate([p["windows"] for p in parts]),
        rr=rr,
        rr_names=rr_names,
        labels=np.concatenate([p["labels"] for p in parts]),
        record=np.concatenate(
            [np.full(p["labels"].shape[0], r) for r, p in zip(names, parts, strict=True)]
        ),
        sample_idx=np.concatenate([p["sample_idx"] for p in parts]),
        fs=fs_values.pop(),
        lead_names=lead_names,
        pre_s=float(pre_s),
        post_s=float(post_s),
        classes=AAMI_CLASSES,
    )


def detection_report(records: Iterable[str], **kwargs: object) -> DetectionReport:
    """Per-record detection counts for ``rpeaks="detected"`` beat sets (same keywords as
    :func:`build_beat_set`; reads the cache, so it is cheap right after a build)."""
    kwargs = {**kwargs, "rpeaks": "detected"}
    include_paced = bool(kwargs.pop("include_paced", False))
    cache_dir = kwargs.pop("cache_dir", None)
    data_dir = kwargs.pop("data_dir", None)
    kwargs.pop("progress", None)
    defaults: dict[str, object] = {
        "database": "mitdb",
        "leads": (0, 1),
        "detector": "heartline",
        "window_len": 128,
        "pre_s": 0.25,
        "post_s": 0.45,
        "match_tolerance_s": 0.15,
        "preprocess": "bandpass",
        "amplitude_history": 32,
    }
    unknown = set(kwargs) - set(defaults) - {"rpeaks"}
    if unknown:
        raise ValueError(f"unknown keywords {sorted(unknown)}; valid: {sorted(defaults)}")
    merged = {**defaults, **kwargs}
    params = _params(
        merged["database"],
        merged["leads"],
        "detected",
        merged["detector"],
        merged["window_len"],  # type: ignore[arg-type]
        merged["pre_s"],
        merged["post_s"],
        merged["match_tolerance_s"],
        merged["preprocess"],  # type: ignore[arg-type]
        merged["amplitude_history"],
    )  # type: ignore[arg-type]
    names = _resolve_records(records, include_paced)
    cache = (
        None
        if cache_dir is False
        else (default_cache_dir() if cache_dir in (None, True) else Path(cache_dir))
    )  # type: ignore[arg-type]
    counts = [_record_arrays(r, params, cache, data_dir)["counts"] for r in names]  # type: ignore[arg-type]
    return DetectionReport(
        tuple(names),
        tuple(int(c[0]) for c in counts),
        tuple(int(c[1]) for c in counts),
        tuple(int(c[2]) for c in counts),
    )
