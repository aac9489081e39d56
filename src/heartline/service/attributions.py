"""Occlusion attributions for an alert's triggering beats (the dashboard's heat band, no torch).

:class:`OcclusionAttributionProvider` is the attribution provider that :func:`create_app
<heartline.service.app.create_app>` registers with
:func:`heartline.service.routes.explain.register_attribution_provider`. For an alert whose
explanation highlights beats (beat alarms, VT) it

1. fetches the stored ECG of the beats' device from ``warmup_s`` before the first highlighted
   beat to ``tail_s`` after the last one (the contiguous frames around them);
2. chooses the beat model as ``heartline classify`` does
   (:func:`heartline.edge.model_select.select_beat_model` on the stored lead names, or the ONNX
   file the service was given) and rebuilds the model's inputs with the live pipeline itself
   (:meth:`heartline.pipeline.BeatPipeline.prepare`: R peaks, block cleaning, windows, running
   amplitude normalisation, RR and template features, context beats). The warm-up replays the
   stream's recent past, so the running normaliser and RR averages hold the last ``warmup_s``
   of beats rather than the whole stream since the device connected; the cleaning block grid
   starts at the fetched window (the overlap-save filter differs from the live one by about
   1 % of the QRS amplitude, see :mod:`heartline.pipeline.beat_pipeline`);
3. matches each highlighted beat to the re-detected R peak within ``match_tol_s`` and runs
   :func:`heartline.edge.occlusion.explain_beats` on them with one cached ONNX Runtime session
   per model (one thread), explaining the stored label (what the alarm acted on);
4. maps every beat's window attributions (summed over the model's leads) back onto the strip's
   samples by linear interpolation over the window's sample positions, and scales the overlay to
   ``[-1, 1]`` (positive: supports the label).

The run-time side: numpy, ONNX Runtime and the pipeline only (import-linter contract
``runtime-no-torch``).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from heartline.service.schemas import AttributionOverlay, EcgWindowPublic
from heartline.storage import repository as repo
from heartline.storage.tables import Alert, Beat

__all__ = ["BeatInputs", "OcclusionAttributionProvider", "beat_inputs_from_stored_ecg"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatInputs:
    """Model inputs the live pipeline builds for stored beats.

    Attributes
    ----------
    windows, rr : numpy.ndarray
        ``(n, K+1, leads, L)`` and ``(n, K+1, n_rr)`` float32, one row per matched beat.
    beat_ids : tuple of int
        Stored beat of each row.
    device_id : str
        Device whose frames were replayed.
    peak_pos : numpy.ndarray
        Re-detected R peak of each row, in samples of the stored frames' grid
        (``frame_start[seq] + sample_idx``).
    frame_start : dict of int to int
        Position of every fetched frame's sample 0 on that grid.
    fs : float
    model_path : pathlib.Path
    columns : tuple of int
        Stored lead columns fed to the model, in the model's order.
    window_offsets : numpy.ndarray
        Position of each window sample relative to the R peak, in samples at ``fs``.
    """

    windows: np.ndarray
    rr: np.ndarray
    beat_ids: tuple[int, ...]
    device_id: str
    peak_pos: np.ndarray
    frame_start: dict[int, int]
    fs: float
    model_path: Path
    columns: tuple[int, ...]
    window_offsets: np.ndarray


@functools.lru_cache(maxsize=4)
def _classifier(path: str) -> Any:
    from heartline.edge.runtime import OnnxBeatClassifier

    return OnnxBeatClassifier(path, split=False)


def _contiguous(segments: list[repo.EcgSegment], around_seq: int) -> list[repo.EcgSegment]:
    """The run of gapless frames (same rate and leads) that holds frame ``around_seq``."""
    runs: list[list[repo.EcgSegment]] = []
    for s in segments:
        prev = runs[-1][-1] if runs else None
        if (
            prev is not None
            and s.fs == prev.fs
            and s.lead_names == prev.lead_names
            and abs(
                (
                    s.start_time
                    - (prev.start_time + timedelta(seconds=prev.signal_mv.shape[0] / prev.fs))
                ).total_seconds()
            )
            < 1.5 / s.fs
        ):
            runs[-1].append(s)
        else:
            runs.append([s])
    for run in runs:
        if any(s.seq == around_seq for s in run):
            return run
    return []


def beat_inputs_from_stored_ecg(
    session: Session,
    beats: list[Beat],
    *,
    model: str | os.PathLike[str] | None = None,
    warmup_s: float = 30.0,
    tail_s: float = 2.5,
    match_tol_s: float = 0.05,
) -> BeatInputs | None:
    """Rebuild the beat model's inputs for stored ``beats`` (one device) from the stored ECG.

    See the module docstring. Returns ``None`` when the ECG around the beats is not stored or
    no beat is re-detected within ``match_tol_s``.
    """
    from heartline.edge.model_select import select_beat_model, spec_for_onnx
    from heartline.pipeline import BeatPipeline
    from heartline.signal.segmentation import window_offsets

    if not beats:
        return None
    device = beats[0].device_id
    beats = [b for b in beats if b.device_id == device]
    t0 = min(b.time for b in beats) - timedelta(seconds=warmup_s)
    t1 = max(b.time for b in beats) + timedelta(seconds=tail_s)
    segs = repo.ecg_between(
        session, patient_id=beats[0].patient_id, start=t0, stop=t1, device_id=device
    )
    run = _contiguous(segs, beats[0].seq)
    if not run:
        return None
    fs, names = run[0].fs, list(run[0].lead_names)
    signal = np.concatenate([s.signal_mv for s in run])
    frame_start: dict[int, int] = {}
    pos = 0
    for s in run:
        frame_start[s.seq] = pos - s.first_sample_idx
        pos += s.signal_mv.shape[0]
    if model is not None:
        clf = _classifier(str(Path(model)))
        specs = [spec_for_onnx(Path(model), clf.n_leads)]
    else:
        specs = None
    choice = select_beat_model(names, specs=specs, source=f"device {device}")
    clf = _classifier(str(choice.spec.onnx_path))
    pipe = BeatPipeline(
        fs=fs,
        lead_names=choice.leads_used,
        model=None,
        context_k=clf.context_k,
        n_leads=clf.n_leads,
        window_len=clf.window_len,
        n_rr=clf.n_rr,
    )
    x = signal[:, list(choice.columns)]
    if not np.all(np.isfinite(x)):
        return None
    batches = [pipe.prepare(x), pipe.flush_prepare()]
    batches = [b for b in batches if len(b)]
    if not batches:
        return None
    windows = np.concatenate([b.windows for b in batches])
    rr = np.concatenate([b.rr for b in batches])
    peaks = np.concatenate([b.sample_idx for b in batches])
    tol = match_tol_s * fs
    rows, ids, found = [], [], []
    for b in beats:
        if b.seq not in frame_start:
            continue
        p = frame_start[b.seq] + b.sample_idx
        j = int(np.argmin(np.abs(peaks - p)))
        if abs(int(peaks[j]) - p) <= tol:
            rows.append(j)
            ids.append(b.id)
            found.append(int(peaks[j]))
    if not rows:
        return None
    return BeatInputs(
        windows=windows[rows],
        rr=rr[rows],
        beat_ids=tuple(ids),
        device_id=device,
        peak_pos=np.asarray(found, dtype=np.int64),
        frame_start=frame_start,
        fs=float(fs),
        model_path=choice.spec.onnx_path,
        columns=tuple(choice.columns),
        window_offsets=window_offsets(fs, pipe.pre_s, pipe.post_s, clf.window_len),
    )


class OcclusionAttributionProvider:
    """Attribution provider: occlusion maps of an alert's highlighted beats over its strip.

    Parameters
    ----------
    model : path-like, optional
        The ONNX beat model the live processor runs (default: the shipped model chosen from the
        stored leads, as ``heartline classify`` and the processor's default do).
    warmup_s, tail_s, match_tol_s : float
        See :func:`beat_inputs_from_stored_ecg`.
    patch_len, stride : int
        Occlusion patch and step (window samples), see
        :func:`heartline.edge.occlusion.explain_beats`.
    max_beats : int
        At most this many highlighted beats are explained (the first ones), to bound the time.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        warmup_s: float = 30.0,
        tail_s: float = 2.5,
        match_tol_s: float = 0.05,
        patch_len: int = 8,
        stride: int = 4,
        max_beats: int = 8,
    ) -> None:
        if warmup_s < 0 or tail_s <= 0 or match_tol_s <= 0 or max_beats < 1:
            raise ValueError(
                "need warmup_s >= 0, tail_s > 0, match_tol_s > 0, max_beats >= 1; got "
                f"{warmup_s}, {tail_s}, {match_tol_s}, {max_beats}"
            )
        self.model = Path(model) if model is not None else None
        self.warmup_s, self.tail_s, self.match_tol_s = warmup_s, tail_s, match_tol_s
        self.patch_len, self.stride, self.max_beats = patch_len, stride, max_beats
        self._sessions: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def _session(self, path: Path) -> Any:
        from heartline.edge.occlusion import onnx_session

        with self._lock:
            if path not in self._sessions:
                self._sessions[path] = onnx_session(path)
            return self._sessions[path]

    def __call__(
        self, session: Session, alert: Alert, ecg: EcgWindowPublic, highlighted: list[Beat]
    ) -> AttributionOverlay | None:
        from heartline.edge.occlusion import DEFAULT_CLASSES, explain_beats

        beats = list(highlighted)[: self.max_beats]
        if not beats or not ecg.segments:
            return None
        try:
            inputs = beat_inputs_from_stored_ecg(
                session,
                beats,
                model=self.model,
                warmup_s=self.warmup_s,
                tail_s=self.tail_s,
                match_tol_s=self.match_tol_s,
            )
        except (ValueError, FileNotFoundError) as exc:  # leads fit no model, model missing
            log.warning("alert %s: no attributions (%s)", alert.id, exc)
            return None
        if inputs is None:
            return None
        clf = _classifier(str(inputs.model_path))
        classes = tuple(clf.classes) or DEFAULT_CLASSES
        labels = {b.id: b.label for b in beats}
        target = np.asarray(
            [classes.index(labels[i]) if labels.get(i) in classes else -1 for i in inputs.beat_ids]
        )
        ex = explain_beats(
            inputs.model_path,
            inputs.windows,
            inputs.rr,
            target=None if (target < 0).any() else target,
            patch_len=self.patch_len,
            stride=self.stride,
            classes=classes,
            session=self._session(inputs.model_path),
        )
        return overlay_on_strip(ex.attributions, inputs, ecg, method=f"occlusion ({ex.model})")


def overlay_on_strip(
    attributions: np.ndarray, inputs: BeatInputs, ecg: EcgWindowPublic, *, method: str
) -> AttributionOverlay | None:
    """Window attributions ``(n, leads, L)`` (summed over leads) on the strip's samples, scaled
    to ``[-1, 1]``; the band sits under the strip lead the model reads first."""
    per_beat = attributions.sum(axis=1)  # (n, L)
    out: list[list[float]] = []
    lead_index = inputs.columns[0]
    for seg in ecg.segments:
        n = len(seg.samples_mv[0]) if seg.samples_mv else 0
        vals = np.zeros(n)
        start = inputs.frame_start.get(seg.seq)
        if start is not None and seg.device_id == inputs.device_id and n:
            pos = start + seg.first_sample_idx + np.arange(n)
            for peak, a in zip(inputs.peak_pos, per_beat, strict=True):
                rel = pos - peak
                inside = (rel >= inputs.window_offsets[0]) & (rel <= inputs.window_offsets[-1])
                if inside.any():
                    vals[inside] += np.interp(rel[inside], inputs.window_offsets, a)
        out.append(vals.tolist())
    peak_abs = max((float(np.max(np.abs(v))) for v in out if len(v)), default=0.0)
    if peak_abs <= 0:
        return None
    return AttributionOverlay(
        method=method,
        lead_index=lead_index,
        segments=[[round(v / peak_abs, 4) for v in seg] for seg in out],
    )
