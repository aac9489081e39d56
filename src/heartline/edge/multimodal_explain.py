"""Occlusion explanation of a multimodal diagnosis, through the whole shipped pipeline (no torch).

For one 12-lead record, :func:`explain_diagnosis` answers "which leads, which part of the 10 s and
which patient data drove each class" for the stacked multimodal model
(:class:`heartline.edge.multimodal.MultimodalModel`): every occluded copy of the input goes
through the *full* pipeline the diagnosis runs - the 270 ECG features
(:func:`heartline.features.ecg12.record_features`, R peaks on lead II), the two CNN-LSTM ONNX
networks (mean over the 2.5 s crops) and the boosted heads - and the attribution is the drop of a
class's log-odds:

* **ECG** (Zeiler & Fergus 2014): a patch of ``patch_s`` seconds (default 0.5 s) of one lead,
  every ``stride_s`` (default 0.25 s), is replaced by the **lead's median** over the 10 s (a flat
  line at the lead's baseline: no P, QRS or T wave there). The drop of the class's log-odds is
  spread evenly over the patch's samples and overlapping patches are averaged
  (:func:`heartline.edge.occlusion.spread_patch_drops`, the helper of the beat explanation):
  ``attributions[class, lead, sample]`` at the model's rate (100 Hz); positive samples support the
  class, negative ones speak against it. ``patch_drops`` keeps the drop of each patch (the "top
  segments"), ``lead_totals`` sums each lead's attributions and ``lead_drops`` is the drop when
  the whole lead is replaced by its median.
* **Patient data**: the drop when one field (age, sex, height, weight) is masked as missing with
  the model's own missing-value handling (:func:`heartline.edge.multimodal.patient_metadata`
  without that field: presence mask 0 in the networks, NaN in the heads; BMI goes with height or
  weight). A field that was not given has no attribution (``None``).
* **Modality attention**: the networks' fusion weights (ECG vs patient data) of the diagnosis.

Cost: the unchanged crops and features of every copy are reused (an occluded patch changes one
or two of the four crops; a lead other than II changes only that lead's 22 features, computed by
the same :func:`record_features` on [that lead, lead II], bit-identical to the full call), and all
copies go through each ONNX network and the heads in one batched run. About 2 s of one core per
record (docs/results/multimodal.md).

This module imports numpy, scipy and onnxruntime only (matplotlib for :func:`plot_explanation`).

References
----------
Zeiler MD, Fergus R. Visualizing and understanding convolutional networks. ECCV (2014).
Adebayo J et al. Sanity checks for saliency maps. NeurIPS (2018) (the tests' randomisation and
deletion checks).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartline.edge.multimodal import (
    METADATA_KEYS,
    MultimodalModel,
    _crop_starts,
    head_inputs,
    patient_metadata,
    shipped_model,
)
from heartline.edge.occlusion import SCORES, class_score, patch_starts, spread_patch_drops
from heartline.errors import HeartlineWarning
from heartline.features.ecg12 import record_feature_names, record_features

__all__ = [
    "METADATA_FIELDS",
    "MultimodalExplanation",
    "explain_diagnosis",
    "plot_explanation",
]

#: Patient data fields whose masking is attributed (BMI follows height and weight).
METADATA_FIELDS = ("age", "sex", "height", "weight")
#: Lead the features' R peaks are detected on (``record_features``' default: lead II).
_RPEAK_LEAD = 1
_BASELINE = "lead median"


@dataclass(frozen=True)
class MultimodalExplanation:
    """Occlusion explanation of one multimodal diagnosis (see the module docstring).

    Attributes
    ----------
    classes : tuple of str
        Explained classes; row ``k`` of every per-class array belongs to ``classes[k]``.
    attributions : numpy.ndarray
        ``(n_classes, n_leads, n_samples)`` float32 at ``fs_hz``: drop of the class's log-odds
        per sample (positive: supports the class).
    patch_drops : numpy.ndarray
        ``(n_classes, n_leads, n_patches)`` float32: drop of the log-odds when the patch of
        ``patch_len`` samples from ``patch_starts_idx[j]`` of a lead is occluded.
    patch_starts_idx : tuple of int
    lead_totals : numpy.ndarray
        ``(n_classes, n_leads)``: sum of each lead's attributions.
    lead_drops : numpy.ndarray
        ``(n_classes, n_leads)``: drop when the whole lead is replaced by its median.
    metadata_attributions : dict
        ``{class: {"age": drop or None, "sex": ..., "height": ..., "weight": ...}}`` (``None``:
        not given, nothing to mask).
    probabilities, thresholds : dict
        Of every class of the model, on the unoccluded input.
    modality_weights : dict
        ``{"ecg": w, "metadata": 1 - w}``: the networks' fusion attention.
    leads : tuple of str
    fs_hz : float
    signals : numpy.ndarray
        ``(n_leads, n_samples)`` float32 mV: the model's input (resampled, reordered), for plots.
    lead_baseline_mv : numpy.ndarray
        ``(n_leads,)``: the occlusion baseline, each lead's median.
    patch_len, stride : int
        Occlusion patch and step in samples at ``fs_hz``.
    model_name, model_version : str
    notes : tuple of str
        What was done to the input.
    rpeaks : {"re-detected", "held"}
        Whether the features' R peaks were re-detected on each occluded copy (the pipeline as it
        runs) or held at the unoccluded record's (``hold_rpeaks=True``).
    """

    classes: tuple[str, ...]
    attributions: np.ndarray
    patch_drops: np.ndarray
    patch_starts_idx: tuple[int, ...]
    lead_totals: np.ndarray
    lead_drops: np.ndarray
    metadata_attributions: dict[str, dict[str, float | None]]
    probabilities: dict[str, float]
    thresholds: dict[str, float]
    modality_weights: dict[str, float]
    leads: tuple[str, ...]
    fs_hz: float
    signals: np.ndarray
    lead_baseline_mv: np.ndarray
    patch_len: int
    stride: int
    model_name: str
    model_version: str
    notes: tuple[str, ...] = ()
    method: str = "occlusion"
    baseline: str = _BASELINE
    score: str = "log_odds"
    rpeaks: str = "re-detected"

    def positive(self) -> list[str]:
        """Classes of the model at or above their threshold."""
        return [c for c, p in self.probabilities.items() if p >= self.thresholds[c]]

    def default_classes(self) -> list[str]:
        """The classes to show: the explained positive ones, else the most probable explained one."""
        pos = [c for c in self.positive() if c in self.classes]
        if pos:
            return pos
        return [max(self.classes, key=lambda c: self.probabilities[c])]

    def _row(self, cls: str) -> int:
        if cls not in self.classes:
            raise ValueError(f"class {cls!r} was not explained; explained: {list(self.classes)}")
        return self.classes.index(cls)

    def top_segments(self, cls: str, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` occluded patches with the largest drop of ``cls``'s log-odds:
        ``[{"lead", "start_s", "stop_s", "drop"}]``, largest first."""
        drops = self.patch_drops[self._row(cls)]
        order = np.argsort(-drops, axis=None, kind="stable")[:k]
        out = []
        for flat in order:
            lead, j = np.unravel_index(int(flat), drops.shape)
            start = self.patch_starts_idx[int(j)]
            out.append(
                {
                    "lead": self.leads[int(lead)],
                    "start_s": round(start / self.fs_hz, 3),
                    "stop_s": round((start + self.patch_len) / self.fs_hz, 3),
                    "drop": round(float(drops[lead, j]), 5),
                }
            )
        return out

    def top_leads(self, cls: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` leads with the largest whole-lead drop of ``cls``'s log-odds."""
        d = self.lead_drops[self._row(cls)]
        order = np.argsort(-d, kind="stable")[:k]
        return [(self.leads[int(i)], float(d[i])) for i in order]

    def to_dict(self, *, samples: bool = True) -> dict[str, Any]:
        """JSON-serialisable form (floats rounded to 5 decimals); ``samples=False`` leaves out
        the per-sample attributions (``(n_leads, n_samples)`` per class)."""
        per_class = {}
        for k, c in enumerate(self.classes):
            entry: dict[str, Any] = {
                "probability": round(self.probabilities[c], 5),
                "threshold": round(self.thresholds[c], 5),
                "positive": self.probabilities[c] >= self.thresholds[c],
                "lead_drops": dict(
                    zip(self.leads, np.round(self.lead_drops[k], 5).tolist(), strict=True)
                ),
                "lead_totals": dict(
                    zip(self.leads, np.round(self.lead_totals[k], 5).tolist(), strict=True)
                ),
                "top_segments": self.top_segments(c),
                "metadata": self.metadata_attributions[c],
                "patch_drops": np.round(self.patch_drops[k], 5).tolist(),
            }
            if samples:
                entry["attributions"] = np.round(self.attributions[k], 5).tolist()
            per_class[c] = entry
        return {
            "method": self.method,
            "score": self.score,
            "baseline": self.baseline,
            "rpeaks": self.rpeaks,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "fs_hz": self.fs_hz,
            "leads": list(self.leads),
            "patch_len": self.patch_len,
            "stride": self.stride,
            "patch_starts_idx": list(self.patch_starts_idx),
            "lead_baseline_mv": np.round(self.lead_baseline_mv, 5).tolist(),
            "modality_weights": dict(self.modality_weights),
            "notes": list(self.notes),
            "classes": per_class,
        }


def _class_rows(model: MultimodalModel, classes: Sequence[str] | str | None) -> list[int]:
    if classes is None:
        return list(range(len(model.classes)))
    if isinstance(classes, str):
        classes = [classes]
    rows = []
    for c in classes:
        if c not in model.classes:
            raise ValueError(f"unknown class {c!r}; the model's classes: {list(model.classes)}")
        rows.append(model.classes.index(c))
    if not rows:
        raise ValueError("classes is empty; give None (all classes) or class names")
    return rows


def _samples(value: float, name: str, fs_hz: float) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a duration in seconds, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite duration > 0 s, got {value!r}")
    n = round(v * fs_hz)
    if n < 1:
        raise ValueError(f"{name}={v:g} s is shorter than one sample at {fs_hz:g} Hz")
    return n


def _features(
    model: MultimodalModel,
    x: np.ndarray,
    occl: list[tuple[int, int, int]],
    *,
    hold_rpeaks: bool = False,
) -> np.ndarray:
    """``record_features`` of the unoccluded record (row 0) and of each occluded copy
    ``(lead, start_idx, stop_idx)`` (lead replaced by its median there), computing only what
    changes: a copy of a lead other than II gets that lead's block from ``record_features`` on
    [occluded lead, lead II] (the same R peaks, the band-pass filters each lead alone).
    ``hold_rpeaks``: lead II's copies too (its features with the unoccluded lead II's R peaks;
    the RR features and the other leads unchanged)."""
    names, pair_names = record_feature_names(x.shape[0]), record_feature_names(2)
    base_lead = np.median(x, axis=1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeartlineWarning)
        base, _ = record_features(x[None], fs=model.fs_hz)
        out = np.repeat(base, len(occl) + 1, axis=0)
        by_lead: dict[int, list[int]] = {}
        for row, (lead, _lo, _hi) in enumerate(occl, start=1):
            by_lead.setdefault(lead, []).append(row)
        for lead, rows in by_lead.items():
            full = lead == _RPEAK_LEAD and not hold_rpeaks  # else [lead, II]: II is index 1
            batch = np.repeat((x if full else x[[lead, _RPEAK_LEAD]])[None], len(rows), axis=0)
            for b, row in enumerate(rows):
                _, lo, hi = occl[row - 1]
                batch[b, lead if full else 0, lo:hi] = base_lead[lead]
            feats, _ = record_features(batch, fs=model.fs_hz, rpeak_lead=1)
            if full:
                out[rows] = feats
            else:
                cols = [k for k, n in enumerate(names) if n.startswith(f"L{lead}_")]
                pair = [k for k, n in enumerate(pair_names) if n.startswith("L0_")]
                out[np.asarray(rows)[:, None], np.asarray(cols)[None, :]] = feats[:, pair]
    return out


def _network_proba(
    model: MultimodalModel,
    x: np.ndarray,
    occl: list[tuple[int, int, int]],
    meta_in: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The networks' mean probabilities ``(R, C)`` and modality weights ``(R, 2)`` for the rows
    ``[unoccluded, *occl (base metadata), *metadata-masked copies (meta_in[1:])]``, as
    :meth:`MultimodalModel.predict_networks` computes them, running only the crops an occlusion
    touches (all crops of the metadata copies), every network once on one batch."""
    n_samples = x.shape[1]
    starts = _crop_starts(n_samples, model.crop, model.stride)
    n_meta = meta_in.shape[0] - 1
    n_rows = 1 + len(occl) + n_meta
    base_lead = np.median(x, axis=1).astype(np.float32)
    # (row, crop) pairs to run, with the crop's signal (mV) and metadata row
    pairs: list[tuple[int, int]] = [(0, k) for k in range(len(starts))]
    crops: list[np.ndarray] = [x[:, s : s + model.crop] for s in starts]
    metas: list[int] = [0] * len(starts)
    for row, (lead, lo, hi) in enumerate(occl, start=1):
        for k, s in enumerate(starts):
            if lo < s + model.crop and hi > s:
                c = x[:, s : s + model.crop].copy()
                c[lead, max(lo - s, 0) : min(hi - s, model.crop)] = base_lead[lead]
                pairs.append((row, k))
                crops.append(c)
                metas.append(0)
    for m in range(n_meta):
        row = 1 + len(occl) + m
        for k, s in enumerate(starts):
            pairs.append((row, k))
            crops.append(x[:, s : s + model.crop])
            metas.append(1 + m)
    batch = np.stack(crops).astype(np.float32)
    z = ((batch - model._ecg_mean[None, :, None]) / model._ecg_std[None, :, None]).astype(
        np.float32
    )
    meta_batch = np.ascontiguousarray(meta_in[np.asarray(metas)], dtype=np.float32)
    rows = np.asarray([r for r, _ in pairs])
    ks = np.asarray([k for _, k in pairs])
    n_cls = len(model.classes)
    p = np.zeros((n_rows, n_cls))
    w = np.zeros((n_rows, 2))
    for sess in model._nets:
        pc, wc = sess.run(["proba", "modality_weights"], {"ecg": z, "meta": meta_batch})
        # every row starts from the unoccluded crops' outputs; run pairs overwrite theirs
        p_crop = np.repeat(pc[None, : len(starts)], n_rows, axis=0)
        w_crop = np.repeat(wc[None, : len(starts)], n_rows, axis=0)
        p_crop[rows, ks] = pc
        w_crop[rows, ks] = wc
        p_sum = np.zeros((n_rows, n_cls), dtype=np.float32)
        w_sum = np.zeros((n_rows, 2), dtype=np.float32)
        for k in range(len(starts)):  # the summation order of predict_networks
            p_sum = p_sum + p_crop[:, k]
            w_sum = w_sum + w_crop[:, k]
        p += (p_sum / len(starts)) / len(model._nets)
        w += (w_sum / len(starts)) / len(model._nets)
    return p, w


def _metadata_without(metadata: Mapping[str, Any] | None, field: str) -> dict[str, Any]:
    return {
        k: v
        for k, v in dict(metadata or {}).items()
        if METADATA_KEYS.get(k, k).split("_")[0] != field
    }


def explain_diagnosis(
    signals: Any,
    *,
    fs: float,
    lead_names: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    model: MultimodalModel | None = None,
    classes: Sequence[str] | str | None = None,
    patch_s: float = 0.5,
    stride_s: float = 0.25,
    score: str = "log_odds",
    hold_rpeaks: bool = False,
) -> MultimodalExplanation:
    """Occlusion explanation of :func:`heartline.diagnose` for one 12-lead record.

    Parameters
    ----------
    signals, fs, lead_names, metadata
        As for :meth:`heartline.edge.multimodal.MultimodalModel.diagnose` (the same input
        checks, resampling and lead order).
    model : MultimodalModel, optional
        Default: the shipped model (loaded once per process).
    classes : str or sequence of str, optional
        Classes to explain (default: all; one pass gives every class, so this only trims the
        result).
    patch_s, stride_s : float
        Occlusion patch length and step in seconds (default 0.5 s, about a QRS-T complex, every
        0.25 s: 39 patches per lead at 100 Hz).
    score : {"log_odds", "log_prob", "prob"}
        What the drop is measured on (default the log-odds, which does not saturate).
    hold_rpeaks : bool
        The ECG features' R peaks come from lead II, so occluding lead II also moves the beat
        detection that every lead's beat features and the RR features rest on (the default
        measures exactly that: the pipeline as it runs). ``True`` holds the R peaks at the
        unoccluded record's, so that lead II's attribution is its own waveform only.

    Returns
    -------
    MultimodalExplanation

    Raises
    ------
    ValueError
        Everything :meth:`~MultimodalModel.diagnose` refuses, an unknown class (the valid ones
        listed), a patch or stride that is not a positive duration or a patch longer than the
        record.

    >>> import numpy as np
    >>> explain_diagnosis(np.zeros((1000, 12)), fs=100, lead_names=shipped_model().leads,
    ...                   classes=["AF"])
    Traceback (most recent call last):
    ...
    ValueError: unknown class 'AF'; the model's classes: ['NORM', 'MI', 'STTC', 'CD', 'HYP']
    """
    model = model if model is not None else shipped_model()
    rows_cls = _class_rows(model, classes)
    if score not in SCORES:
        raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
    patch_len = _samples(patch_s, "patch_s", model.fs_hz)
    stride = _samples(stride_s, "stride_s", model.fs_hz)
    if patch_len > model.input_samples:
        raise ValueError(
            f"patch_s={patch_s:g} s is longer than the record the model reads ({model.input_s:g} s)"
        )
    x, notes = model.prepare_signals(signals, fs=fs, lead_names=lead_names)
    meta = patient_metadata(metadata)
    n_leads, n_samples = x.shape
    starts = patch_starts(n_samples, patch_len, stride)
    occl = [(lead, s, s + patch_len) for lead in range(n_leads) for s in starts]
    occl += [(lead, 0, n_samples) for lead in range(n_leads)]  # whole leads
    fields = [f for f in METADATA_FIELDS if meta.used[f]]
    masked = [patient_metadata(_metadata_without(metadata, f)) for f in fields]
    metas = [meta, *masked]
    values = np.stack([m.values for m in metas])
    meta_in = model.meta_inputs(
        values, np.stack([m.present for m in metas]), np.asarray([m.age_over_89 for m in metas])
    )
    p_net, w = _network_proba(model, x, occl, meta_in)
    feats = _features(model, x, occl, hold_rpeaks=hold_rpeaks)
    feats = np.concatenate([feats, np.repeat(feats[:1], len(fields), axis=0)])
    meta_values = np.concatenate([np.repeat(values[:1], 1 + len(occl), axis=0), values[1:]]).astype(
        np.float32
    )
    xh = head_inputs(p_net, feats, meta_values, clip=model._clip)
    proba = np.asarray(
        model._head.run(["proba"], {"x": np.ascontiguousarray(xh, dtype=np.float64)})[0],
        dtype=np.float64,
    )
    sc = class_score(proba, score)  # (rows, C)
    drop = sc[0][None, :] - sc[1:]  # (rows - 1, C)
    n_patch = n_leads * len(starts)
    patch = drop[:n_patch].reshape(n_leads, len(starts), -1).transpose(2, 0, 1)  # (C, L, P)
    whole = drop[n_patch : n_patch + n_leads].T  # (C, L)
    meta_drop = drop[n_patch + n_leads :]  # (n_fields, C)
    attr = spread_patch_drops(patch, starts, patch_len, n_samples)  # (C, L, T)
    explained = tuple(model.classes[r] for r in rows_cls)
    meta_attr = {
        c: {
            f: (round(float(meta_drop[fields.index(f), r]), 5) if f in fields else None)
            for f in METADATA_FIELDS
        }
        for c, r in zip(explained, rows_cls, strict=True)
    }
    return MultimodalExplanation(
        classes=explained,
        attributions=attr[rows_cls],
        patch_drops=patch[rows_cls].astype(np.float32),
        patch_starts_idx=tuple(starts),
        lead_totals=attr[rows_cls].sum(axis=2, dtype=np.float64),
        lead_drops=whole[rows_cls],
        metadata_attributions=meta_attr,
        probabilities={c: float(proba[0, k]) for k, c in enumerate(model.classes)},
        thresholds=dict(model.thresholds),
        modality_weights={"ecg": float(w[0, 0]), "metadata": float(w[0, 1])},
        leads=model.leads,
        fs_hz=model.fs_hz,
        signals=x,
        lead_baseline_mv=np.median(x, axis=1).astype(np.float32),
        patch_len=patch_len,
        stride=stride,
        model_name=model.name,
        model_version=model.version,
        notes=tuple(notes) + meta.notes,
        score=score,
        rpeaks="held" if hold_rpeaks else "re-detected",
    )


def plot_explanation(
    explanation: MultimodalExplanation,
    path: str | os.PathLike[str],
    *,
    cls: str | None = None,
    record_id: str = "",
) -> str:
    """Draw the leads (one row each) with ``cls``'s attribution overlaid (red: supports the
    class, blue: speaks against it; one colour scale for all leads) and write a PNG.

    ``cls`` defaults to the first of :meth:`MultimodalExplanation.default_classes`. The title
    names the class, its probability and threshold, the model and its version and "decision
    support, not a medical device". Returns the class drawn.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    ex = explanation
    cls = cls if cls is not None else ex.default_classes()[0]
    row = ex._row(cls)
    attr = ex.attributions[row]
    n_leads, n_samples = attr.shape
    t = np.arange(n_samples) / ex.fs_hz
    vmax = float(np.abs(attr).max()) or 1.0
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    fig, axes = plt.subplots(
        n_leads, 1, figsize=(12, 1.0 * n_leads + 1.2), sharex=True, squeeze=False
    )
    img = None
    for i, ax in enumerate(axes[:, 0]):
        sig = ex.signals[i]
        lo, hi = float(sig.min()), float(sig.max())
        pad = 0.1 * max(hi - lo, 0.2)
        img = ax.imshow(
            attr[i][None, :],
            aspect="auto",
            cmap="RdBu_r",
            norm=norm,
            extent=(0.0, n_samples / ex.fs_hz, lo - pad, hi + pad),
            alpha=0.75,
            interpolation="nearest",
        )
        ax.plot(t, sig, color="black", linewidth=0.7)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(ex.leads[i], rotation=0, ha="right", va="center")
        ax.set_yticks([])
        ax.set_xlim(0.0, n_samples / ex.fs_hz)
    axes[-1, 0].set_xlabel("time (s)")
    p, thr = ex.probabilities[cls], ex.thresholds[cls]
    call = "positive" if p >= thr else "negative"
    title = (
        f"{record_id + ': ' if record_id else ''}{cls} p={p:.3f} (threshold {thr:.3f}, {call}) - "
        f"occlusion attribution (drop of log-odds, baseline {ex.baseline}, R peaks {ex.rpeaks})\n"
        f"model {ex.model_name} {ex.model_version} - decision support, not a medical device"
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    cax = fig.add_axes((0.94, 0.15, 0.015, 0.7))
    fig.colorbar(img, cax=cax, label=f"drop of {cls} log-odds per sample", format="%.2g")
    fig.savefig(os.fspath(path), dpi=90)
    plt.close(fig)
    return cls
