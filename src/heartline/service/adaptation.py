"""Patient adaptation on the service side: beat templates, features from stored ECG, adapting.

* :func:`beat_templates` groups a patient's stored beats into templates of similar beats
  (k-means on the model's stored probabilities and each beat's RR prematurity against the
  patient's median RR in the window), listed with counts, label counts and a representative beat,
  the way Holter software shows templates for review. Morphology features are not stored with
  the beats, so these templates group by what the model said and by timing.
* :class:`EcgFeatureSource` recomputes the encoder features of reviewed beats from the stored
  ECG (the live :class:`~heartline.pipeline.beat_pipeline.BeatPipeline` over each device's frames
  around the beats, matched to the stored beats by time within 150 ms).
* :func:`adapt_patient` builds the prototype artefact (:func:`heartline.edge.adapt.fit_prototypes`)
  from the reviewed beats and their features.

Torch-free: everything runs through ONNX Runtime and numpy.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy.orm import Session

from heartline.data.aami import AAMI_CLASSES
from heartline.edge.adapt import describe, fit_prototypes, kmeans
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.storage import adaptation_repository as arepo
from heartline.storage import repository as repo
from heartline.storage.tables import Beat

__all__ = [
    "BeatFeatureSource",
    "EcgFeatureSource",
    "Template",
    "adapt_patient",
    "beat_templates",
]

log = logging.getLogger(__name__)

#: Seconds of ECG before the first reviewed beat fed to the pipeline (detector and RR warm-up).
LEAD_IN_S = 20.0
#: Largest time difference (s) between a stored beat and a re-detected one to match them.
MATCH_TOLERANCE_S = 0.15
#: Beats per template (evenly spread over it) whose ECG makes the template's median waveform.
MEDIAN_MAX_BEATS = 24
#: Median waveform window around the R peak (s).
MEDIAN_BEFORE_S, MEDIAN_AFTER_S = 0.25, 0.45


@dataclass(frozen=True)
class Template:
    """A group of similar beats: name (``c0``, ``c1``...), count, labels, a representative."""

    cluster: str
    count: int
    label_counts: dict[str, int]
    confirmed_counts: dict[str, int]
    representative_beat_id: int
    mean_rr_ratio: float
    beat_ids: list[int]
    #: Median waveform of (up to :data:`MEDIAN_MAX_BEATS` of) the template's beats, first lead,
    #: mV, from ``median_start_s`` before to after the R peak at ``median_fs_hz``; empty when no
    #: ECG is stored around them.
    median_mv: list[float] = dataclasses.field(default_factory=list)
    median_fs_hz: float | None = None
    median_start_s: float = -0.25
    median_n_beats: int = 0
    median_lead: str | None = None


def _template_features(beats: Sequence[Beat]) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([b.time.timestamp() for b in beats])
    rr = np.diff(t, prepend=np.nan)
    med = float(np.nanmedian(rr)) if np.isfinite(rr).any() else 1.0
    ratio = np.where(np.isfinite(rr), rr / max(med, 1e-3), 1.0)
    probs = np.array(
        [[float((b.probabilities or {}).get(c, 0.0)) for c in AAMI_CLASSES] for b in beats]
    )
    return np.column_stack([probs, 2.0 * np.clip(ratio, 0, 3)]), ratio


def beat_templates(
    session: Session,
    *,
    beats: Sequence[Beat],
    patient_id: str,
    n_clusters: int = 8,
    seed: int = 0,
    with_medians: bool = True,
) -> list[Template]:
    """Templates of ``beats`` (time order), largest first; deterministic for the same beats.

    With ``with_medians`` each template carries the median waveform of up to
    :data:`MEDIAN_MAX_BEATS` of its beats from the stored ECG (what a Holter template shows).
    """
    if not beats:
        return []
    x, ratio = _template_features(beats)
    _, assign = kmeans(x, min(n_clusters, len(beats)), seed=seed)
    confirmed = arepo.confirmed_labels(
        session, patient_id=patient_id, beat_ids=[b.id for b in beats]
    )
    groups = []
    for j in np.unique(assign):
        idx = np.flatnonzero(assign == j)
        centre = x[idx].mean(0)
        rep = int(idx[((x[idx] - centre) ** 2).sum(1).argmin()])
        labels = [beats[i].label or "?" for i in idx]
        conf = [confirmed[beats[i].id] for i in idx if beats[i].id in confirmed]
        groups.append((idx, rep, labels, conf))
    groups.sort(key=lambda g: (-len(g[0]), int(g[0][0])))
    templates = [
        Template(
            cluster=f"c{k}",
            count=len(idx),
            label_counts={lab: labels.count(lab) for lab in sorted(set(labels))},
            confirmed_counts={lab: conf.count(lab) for lab in sorted(set(conf))},
            representative_beat_id=beats[rep].id,
            mean_rr_ratio=float(np.mean(ratio[idx])),
            beat_ids=[beats[i].id for i in idx],
        )
        for k, (idx, rep, labels, conf) in enumerate(groups)
    ]
    if not with_medians:
        return templates
    by_id = {b.id: b for b in beats}
    return [_with_median(session, t, by_id, patient_id=patient_id) for t in templates]


def _beat_waveform(
    session: Session, beat: Beat, *, patient_id: str
) -> tuple[np.ndarray, float, str] | None:
    """First-lead ECG (mV) from ``MEDIAN_BEFORE_S`` before to ``MEDIAN_AFTER_S`` after a beat's R
    peak, or ``None`` when the stored ECG does not cover the whole window without a gap."""
    segs = repo.ecg_between(
        session,
        patient_id=patient_id,
        start=beat.time - timedelta(seconds=MEDIAN_BEFORE_S),
        stop=beat.time + timedelta(seconds=MEDIAN_AFTER_S),
        device_id=beat.device_id,
    )
    if not segs:
        return None
    fs = float(segs[0].fs)
    x = np.concatenate([np.asarray(s.signal_mv)[:, 0] for s in segs])
    n = round((MEDIAN_BEFORE_S + MEDIAN_AFTER_S) * fs)
    if any(s.fs != fs for s in segs) or x.size < n:
        return None
    for a, b in itertools.pairwise(segs):  # a lost frame: the beats would not line up
        end = a.start_time + timedelta(seconds=len(a.signal_mv) / fs)
        if abs((b.start_time - end).total_seconds()) > 1.5 / fs:
            return None
    return x[:n], fs, str(segs[0].lead_names[0])


def _with_median(
    session: Session, template: Template, by_id: dict[int, Beat], *, patient_id: str
) -> Template:
    ids = template.beat_ids
    pick = np.unique(np.linspace(0, len(ids) - 1, min(len(ids), MEDIAN_MAX_BEATS)).astype(int))
    waves = []
    fs = lead = None
    for i in pick:
        w = _beat_waveform(session, by_id[ids[int(i)]], patient_id=patient_id)
        if w is None or (fs is not None and w[1] != fs):
            continue
        waves.append(w[0])
        fs, lead = w[1], w[2]
    if not waves:
        return template
    n = min(len(w) for w in waves)
    med = np.median(np.stack([w[:n] for w in waves]), axis=0)
    return dataclasses.replace(
        template,
        median_mv=[round(float(v), 4) for v in med],
        median_fs_hz=fs,
        median_start_s=-MEDIAN_BEFORE_S,
        median_n_beats=len(waves),
        median_lead=lead,
    )


class BeatFeatureSource(Protocol):
    """Encoder features and base probabilities of stored beats (``None`` rows: not found)."""

    def __call__(
        self, session: Session, *, patient_id: str, beats: Sequence[Beat]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class EcgFeatureSource:
    """Features of stored beats recomputed from the stored ECG with the live pipeline.

    Returns ``(features (n, d), base_proba (n, C), found (n,) bool)``; beats whose R peak the
    pipeline does not find again within :data:`MATCH_TOLERANCE_S` are ``found = False``.
    """

    def __init__(self, model: OnnxBeatClassifier) -> None:
        if not model.has_split:
            raise ValueError(f"model: {model.path.name} has no split form (encoder)")
        self.model = model

    def __call__(
        self, session: Session, *, patient_id: str, beats: Sequence[Beat]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches

        d = int(self.model.feature_dim or 0)
        n_c = len(self.model.classes)
        feats = np.zeros((len(beats), d), np.float32)
        probs = np.zeros((len(beats), n_c), np.float32)
        found = np.zeros(len(beats), bool)
        by_device: dict[str, list[int]] = {}
        for i, b in enumerate(beats):
            by_device.setdefault(b.device_id, []).append(i)
        for device_id, rows in by_device.items():
            t_beats = [beats[i].time for i in rows]
            segs = repo.ecg_between(
                session,
                patient_id=patient_id,
                start=min(t_beats) - timedelta(seconds=LEAD_IN_S),
                stop=max(t_beats) + timedelta(seconds=2),
                device_id=device_id,
            )
            if not segs:
                continue
            fs = segs[0].fs
            signal = np.concatenate([s.signal_mv for s in segs])  # gaps are not bridged
            t0 = segs[0].start_time.timestamp()
            pipe = BeatPipeline(fs=fs, lead_names=segs[0].lead_names, model=self.model)
            batches = [pipe.prepare(signal), pipe.flush_prepare()]
            batches = [b for b in batches if len(b)]
            if not batches:
                continue
            p = np.concatenate(classify_batches(self.model, batches))
            f = self.model.encode(
                np.concatenate([b.windows[:, -1] for b in batches]),
                np.concatenate([b.rr[:, -1] for b in batches]),
            )
            t_det = t0 + np.concatenate([b.sample_idx for b in batches]) / fs
            for i in rows:
                k = int(np.abs(t_det - beats[i].time.timestamp()).argmin())
                if abs(t_det[k] - beats[i].time.timestamp()) <= MATCH_TOLERANCE_S:
                    feats[i], probs[i], found[i] = f[k], p[k], True
        return feats, probs, found


def adapt_patient(
    session: Session,
    *,
    patient_id: str,
    model: OnnxBeatClassifier,
    features_of: BeatFeatureSource,
    actor: str,
    min_per_class: int = 3,
) -> tuple[Any, dict[str, Any]]:
    """Adapt to the patient's reviewed beats and store the artefact as the active model.

    Raises :class:`heartline.edge.adapt.NotEnoughBeatsError` (what is missing) or ``ValueError``
    before anything is stored.
    """
    confirmed = arepo.confirmed_labels(session, patient_id=patient_id)
    if not confirmed:
        from heartline.edge.adapt import NotEnoughBeatsError

        raise NotEnoughBeatsError(
            f"patient {patient_id!r} has no reviewed beats: confirm or relabel beats first",
            {"N": min_per_class},
        )
    rows = sorted(
        session.query(Beat).filter(Beat.id.in_(list(confirmed))).all(), key=lambda b: b.time
    )
    feats, probs, found = features_of(session, patient_id=patient_id, beats=rows)
    labels = np.array([AAMI_CLASSES.index(confirmed[b.id]) for b in rows], np.int64)
    n_lost = int((~found).sum())
    art = fit_prototypes(
        feats[found],
        labels[found],
        probs[found],
        patient_id=patient_id,
        base_sha256=file_sha256(model.path),
        version=arepo.next_version(session, patient_id=patient_id),
        min_per_class=min_per_class,
    )
    summary = describe(art)
    summary["n_reviewed_beats"] = len(rows)
    summary["n_beats_without_ecg"] = n_lost
    row = arepo.add_model(
        session,
        patient_id=patient_id,
        method=art.method,
        base_sha256=art.base_sha256,
        artefact=art.to_bytes(),
        summary=summary,
        actor=actor,
    )
    return row, summary
