"""Occlusion attribution of a beat classifier's ONNX model, computed with ONNX Runtime (no torch).

For each beat, a patch of ``patch_len`` samples of one lead of the *current* beat's window (the
last context position) is replaced by the baseline (0: beat windows are baseline-corrected to a
median of 0, see :func:`heartline.data.beat_dataset.build_beat_set`), the model is run on every
occluded copy in one batch, and the drop of the target class's log-odds (or log-probability,
or probability) is spread evenly over the occluded samples; overlapping patches (stride ``stride``) are averaged (Zeiler & Fergus
2014). Positive values mark samples that support the predicted class. The result is a
:class:`BeatExplanation` that serialises to JSON (:meth:`BeatExplanation.to_dict`) for the
dashboard overlay, ``heartline classify --explain`` and the FHIR report.

This module imports numpy and onnxruntime only (the run-time side may import it).

References
----------
Zeiler MD, Fergus R. Visualizing and understanding convolutional networks. ECCV (2014).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCORES",
    "BeatExplanation",
    "class_score",
    "explain_beats",
    "occlusion_attributions",
    "patch_starts",
    "spread_patch_drops",
]

DEFAULT_CLASSES = ("N", "S", "V", "F", "Q")
#: What the occlusion drop is measured on (see :func:`occlusion_attributions`).
SCORES = ("log_odds", "log_prob", "prob")


@dataclass(frozen=True)
class BeatExplanation:
    """Occlusion attributions of a batch of beats.

    Attributes
    ----------
    attributions : numpy.ndarray
        ``(n_beats, n_leads, window_len)`` float32: drop of the target's score (log-odds by
        default) per sample, spread over the patch (positive: the sample supports the target
        class).
    target : numpy.ndarray
        ``(n_beats,)`` int: explained class index (the predicted one unless given).
    probabilities : numpy.ndarray
        ``(n_beats, n_classes)`` model output on the unoccluded input.
    classes : tuple of str
    patch_len, stride : int
        Occlusion patch and step (samples of the window).
    model : str
        File name of the ONNX model.
    """

    attributions: np.ndarray
    target: np.ndarray
    probabilities: np.ndarray
    classes: tuple[str, ...]
    patch_len: int
    stride: int
    model: str
    method: str = "occlusion"
    score: str = "log_odds"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists of floats rounded to 5 decimals)."""
        return {
            "method": self.method,
            "score": self.score,
            "model": self.model,
            "classes": list(self.classes),
            "patch_len": self.patch_len,
            "stride": self.stride,
            "beats": [
                {
                    "target": self.classes[int(t)] if int(t) < len(self.classes) else int(t),
                    "probabilities": np.round(p, 5).tolist(),
                    "attributions": np.round(a, 5).tolist(),
                }
                for t, p, a in zip(self.target, self.probabilities, self.attributions, strict=True)
            ],
        }


def onnx_session(model_path: str | os.PathLike[str]) -> Any:
    """One-thread ONNX Runtime CPU session for ``model_path`` (the live side's budget).

    Raises
    ------
    FileNotFoundError
        When ``model_path`` is not a file.
    """
    import onnxruntime as ort

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model_path {path} does not exist")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def patch_starts(length: int, patch_len: int, stride: int) -> list[int]:
    """Start indices of occlusion patches of ``patch_len`` samples every ``stride`` samples over
    ``length`` samples; the last patch ends at ``length`` (so every sample is covered).

    >>> patch_starts(10, 4, 3)
    [0, 3, 6]
    >>> patch_starts(10, 4, 4)
    [0, 4, 6]
    """
    if patch_len < 1 or stride < 1:
        raise ValueError(f"patch_len and stride must be >= 1, got {patch_len}, {stride}")
    if patch_len > length:
        raise ValueError(f"patch_len={patch_len} is longer than the window ({length} samples)")
    starts = list(range(0, length - patch_len + 1, stride))
    if starts[-1] != length - patch_len:
        starts.append(length - patch_len)
    return starts


def class_score(p: np.ndarray, score: str = "log_odds") -> np.ndarray:
    """The score the occlusion drop is measured on for probabilities ``p`` (any shape):
    log-odds (``p`` clipped to [1e-12, 1 - 1e-12]), log-probability or the probability."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
    pt = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    if score == "log_odds":
        return np.log(pt) - np.log1p(-pt)
    if score == "log_prob":
        return np.log(pt)
    return np.asarray(p, dtype=np.float64)


def spread_patch_drops(
    drops: np.ndarray, starts: list[int], patch_len: int, length: int
) -> np.ndarray:
    """Per-sample attributions from per-patch score drops (Zeiler & Fergus 2014).

    ``drops`` ``(..., n_leads, n_starts)``: the drop of the score when ``patch_len`` samples from
    each start of one lead are occluded. Each drop is spread evenly over its patch
    (``drop / patch_len`` per sample) and overlapping patches are averaged. Returns
    ``(..., n_leads, length)`` float32.
    """
    drops = np.asarray(drops, dtype=np.float64)
    attr = np.zeros((*drops.shape[:-1], length))
    count = np.zeros(length)
    for k, s in enumerate(starts):
        attr[..., s : s + patch_len] += drops[..., k, None] / patch_len
        count[s : s + patch_len] += 1
    return (attr / np.maximum(count, 1)).astype(np.float32)


def occlusion_attributions(
    run: Any,
    windows: np.ndarray,
    others: tuple[np.ndarray, ...] = (),
    *,
    target: np.ndarray | None = None,
    patch_len: int = 8,
    stride: int = 4,
    baseline: float = 0.0,
    score: str = "log_odds",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generic occlusion over the last axis of the last context position of ``windows``.

    Parameters
    ----------
    run : callable
        ``run(windows, *others) -> probabilities (B, C)`` (e.g. an ONNX Runtime session call).
    windows : numpy.ndarray
        ``(B, ..., leads, L)``; the occluded part is ``windows[b, ..., -1, lead, :]`` when the
        array is 4-D (context, leads, L), or ``windows[b, lead, :]`` when 3-D.
    others : tuple of numpy.ndarray
        Further inputs, repeated unchanged for every occluded copy.
    score : {"log_odds", "log_prob", "prob"}
        What the drop is measured on: the log-odds ``log(p / (1 - p))`` of the target (default:
        it does not saturate when the model is sure, p close to 1, where the probability and the
        log-probability barely move), its log-probability, or its probability.

    Returns
    -------
    attributions : ``(B, leads, L)``; probabilities : ``(B, C)``; target : ``(B,)``.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
    if patch_len < 1 or stride < 1:
        raise ValueError(f"patch_len and stride must be >= 1, got {patch_len}, {stride}")
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim not in (3, 4):
        raise ValueError(f"windows must be (B, leads, L) or (B, K+1, leads, L), got {w.shape}")
    if w.shape[0] == 0:
        raise ValueError("windows holds no beat (batch size 0)")
    if not np.isfinite(w).all():
        raise ValueError("windows holds NaN/inf samples")
    n_leads, length = w.shape[-2], w.shape[-1]
    if patch_len > length:
        raise ValueError(f"patch_len={patch_len} is longer than the window ({length} samples)")
    starts = patch_starts(length, patch_len, stride)
    n_occ = n_leads * len(starts)
    attr = np.zeros((w.shape[0], n_leads, length), dtype=np.float32)
    probs_all, targets = [], []
    for b in range(w.shape[0]):
        batch = np.repeat(w[b : b + 1], n_occ + 1, axis=0)
        cur = batch[:, -1] if w.ndim == 4 else batch  # view on the current beat (B', leads, L)
        row = 1
        for lead in range(n_leads):
            for s in starts:
                cur[row, lead, s : s + patch_len] = baseline
                row += 1
        extra = tuple(
            np.repeat(np.asarray(o[b : b + 1], dtype=np.float32), n_occ + 1, axis=0) for o in others
        )
        probs = np.asarray(run(batch, *extra), dtype=np.float64)
        t = int(np.argmax(probs[0])) if target is None else int(target[b])
        sc = class_score(probs[:, t], score)
        drop = sc[0] - sc[1:]
        attr[b] = spread_patch_drops(drop.reshape(n_leads, len(starts)), starts, patch_len, length)
        probs_all.append(probs[0])
        targets.append(t)
    return attr, np.stack(probs_all), np.asarray(targets, dtype=np.int64)


def explain_beats(
    model_path: str | os.PathLike[str],
    windows: np.ndarray,
    rr: np.ndarray | None = None,
    *,
    target: np.ndarray | None = None,
    patch_len: int = 8,
    stride: int = 4,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    score: str = "log_odds",
    session: Any = None,
) -> BeatExplanation:
    """Occlusion explanation of beats by a beat model's ONNX file (e.g. ``hybrid.onnx``).

    Parameters
    ----------
    model_path : path-like
        ONNX model with inputs ``windows (batch, K+1, leads, L)`` and ``rr (batch, K+1, n_rr)``
        (the shipped hybrid: K+1 = 3, 2 leads, L = 128, n_rr = 32) and one probability output.
    windows, rr : numpy.ndarray
        Exactly what the model is fed (:meth:`heartline.data.beat_set.BeatSet.context_index` picks
        the context); the current beat (last context position) is explained.
    target : numpy.ndarray, optional
        Class index per beat to explain (default: the predicted class).
    patch_len, stride : int
        Occlusion patch and step in window samples (default 8 and 4: 44 and 22 ms for the shipped
        0.7 s, 128-sample windows).
    score : {"log_odds", "log_prob", "prob"}
        Drop of the target's log-odds (default, no saturation), log-probability or probability.
    session : onnxruntime.InferenceSession, optional
        A session to reuse (the live side keeps one per model); default: a new one-thread session.

    Raises
    ------
    ValueError
        Inputs whose shapes do not match the model's inputs (named), or a missing ``rr`` when the
        model needs it.
    """
    sess = session or onnx_session(model_path)
    inputs = sess.get_inputs()
    names = [i.name for i in inputs]
    w = np.asarray(windows, dtype=np.float32)
    feeds: list[np.ndarray] = [w]
    if len(inputs) > 1:
        if rr is None:
            raise ValueError(
                f"the model {Path(model_path).name} needs inputs {names}; rr is missing"
            )
        feeds.append(np.asarray(rr, dtype=np.float32))
    for arr, spec in zip(feeds, inputs, strict=False):
        want = spec.shape
        if arr.ndim != len(want) or any(
            isinstance(d, int) and d != a for d, a in zip(want[1:], arr.shape[1:], strict=True)
        ):
            raise ValueError(
                f"input {spec.name!r} of {Path(model_path).name} has shape {want}; got {arr.shape}"
            )
    out_name = sess.get_outputs()[0].name

    def run(*arrays: np.ndarray) -> np.ndarray:
        return sess.run([out_name], dict(zip(names, arrays, strict=True)))[0]

    attr, probs, tgt = occlusion_attributions(
        run,
        feeds[0],
        tuple(feeds[1:]),
        target=target,
        patch_len=patch_len,
        stride=stride,
        score=score,
    )
    return BeatExplanation(
        attributions=attr,
        target=tgt,
        probabilities=probs.astype(np.float32),
        classes=tuple(classes),
        patch_len=patch_len,
        stride=stride,
        model=Path(model_path).name,
        score=score,
    )
