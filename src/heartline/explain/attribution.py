"""Integrated Gradients (Captum) for Heartline's torch models, for reports and checks.

* :func:`integrated_gradients`: any torch model (the rhythm model included): a forward function
  of one or more input tensors returning class scores, a target class per row.
* :func:`explain_beat_model`: the beat model (:class:`heartline.models.hybrid.HybridNet` and the
  other :class:`heartline.models.deep.BeatNet` networks), attributions of the current beat's
  window (the RR/template columns are attributed too, and returned).
* :func:`explain_multimodal`: the multimodal model (:class:`heartline.models.multimodal.MultimodalNet`),
  attributions of every ECG sample and metadata input, with the modality attention weights.
* :func:`load_shipped_beat_model` and :func:`randomized_copy` (the model-randomisation sanity
  check of Adebayo et al. 2018: attributions that do not change when the weights are
  re-initialised explain the input, not the model).

Integrated Gradients integrate the gradient of the target *probability* along the straight path
from a baseline (zeros: a flat, baseline-corrected signal) to the input (Sundararajan et al.
2017), with the Gauss-Legendre rule of Captum; the attributions sum to the difference of the
target probability between input and baseline (completeness), which
:attr:`Attribution.convergence_delta` reports.

References
----------
Sundararajan M, Taly A, Yan Q. Axiomatic attribution for deep networks. ICML (2017).
Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity checks for saliency maps.
NeurIPS (2018).
Kokhlikyan N et al. Captum: a unified and generic model interpretability library for PyTorch.
arXiv:2009.07896 (2020).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "Attribution",
    "MultimodalAttribution",
    "explain_beat_model",
    "explain_multimodal",
    "integrated_gradients",
    "load_shipped_beat_model",
    "randomized_copy",
]


@dataclass(frozen=True)
class Attribution:
    """Integrated-Gradients attributions, one array per model input (same shapes as the inputs).

    ``target`` is the explained class per row, ``scores`` the model's target probability on the
    input, ``convergence_delta`` the completeness error per row (small when ``n_steps`` suffices).
    """

    inputs: tuple[np.ndarray, ...]
    target: np.ndarray
    scores: np.ndarray
    convergence_delta: np.ndarray
    method: str = "integrated_gradients"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target.tolist(),
            "scores": np.round(self.scores, 5).tolist(),
            "convergence_delta": np.round(self.convergence_delta, 6).tolist(),
            "inputs": [np.round(a, 6).tolist() for a in self.inputs],
        }


@dataclass(frozen=True)
class MultimodalAttribution:
    """Attributions of a multimodal prediction.

    Attributes
    ----------
    ecg : numpy.ndarray
        ``(B, leads, T)`` per-sample attribution.
    metadata : numpy.ndarray
        ``(B, n_meta_inputs)`` attribution of each metadata input (values, masks, over-89 flag).
    modality_weights : numpy.ndarray
        ``(B, 2)`` attention weights (ECG, metadata) of the fusion layer.
    target, scores, convergence_delta : numpy.ndarray
        As in :class:`Attribution`.
    """

    ecg: np.ndarray
    metadata: np.ndarray
    modality_weights: np.ndarray
    target: np.ndarray
    scores: np.ndarray
    convergence_delta: np.ndarray


def integrated_gradients(
    forward: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    *,
    target: Sequence[int] | np.ndarray | None = None,
    baselines: Sequence[Tensor] | None = None,
    n_steps: int = 32,
    probabilities: str = "softmax",
    internal_batch_size: int | None = None,
) -> Attribution:
    """Integrated Gradients of ``forward(*inputs)`` with respect to every input.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (B, C)`` logits (put the model in ``eval()`` first).
    inputs : sequence of torch.Tensor
        Batched inputs (first axis B).
    target : sequence of int, optional
        Class per row; default: the arg-max class.
    baselines : sequence of torch.Tensor, optional
        Same shapes as ``inputs``; default zeros.
    probabilities : {"softmax", "sigmoid", "none"}
        Turn the logits into probabilities first (softmax for single-label models such as the
        beat and rhythm models, sigmoid for multi-label ones).
    """
    from captum.attr import IntegratedGradients

    if probabilities not in ("softmax", "sigmoid", "none"):
        raise ValueError(
            f"probabilities must be 'softmax', 'sigmoid' or 'none', got {probabilities!r}"
        )
    inputs = tuple(x.detach().float() for x in inputs)
    if baselines is None:
        baselines = tuple(torch.zeros_like(x) for x in inputs)
    else:
        baselines = tuple(b.detach().float() for b in baselines)
        for x, b in zip(inputs, baselines, strict=True):
            if x.shape != b.shape:
                raise ValueError(f"baseline shape {tuple(b.shape)} != input shape {tuple(x.shape)}")

    def prob_fn(*xs: Tensor) -> Tensor:
        logits = forward(*xs)
        if probabilities == "softmax":
            return torch.softmax(logits, dim=1)
        if probabilities == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    with torch.no_grad():
        p = prob_fn(*inputs)
    tgt = (
        p.argmax(dim=1) if target is None else torch.as_tensor(np.asarray(target), dtype=torch.long)
    )
    if tgt.shape[0] != p.shape[0]:
        raise ValueError(f"target has {tgt.shape[0]} rows, inputs {p.shape[0]}")
    ig = IntegratedGradients(prob_fn)
    attrs, delta = ig.attribute(
        inputs,
        baselines=baselines,
        target=tgt,
        n_steps=n_steps,
        return_convergence_delta=True,
        internal_batch_size=internal_batch_size,
    )
    return Attribution(
        inputs=tuple(a.detach().numpy() for a in attrs),
        target=tgt.numpy(),
        scores=p.gather(1, tgt[:, None]).squeeze(1).numpy(),
        convergence_delta=delta.detach().numpy(),
    )


def load_shipped_beat_model(
    model_dir: str | os.PathLike[str] | None = None, name: str = "hybrid"
) -> nn.Module:
    """The shipped beat network (``<name>.pt`` + ``<name>.json``) in eval mode.

    ``model_dir`` defaults to the package's ``assets/models``.
    """
    from heartline.training.deep import TorchBeatClassifier

    src = (
        Path(model_dir)
        if model_dir is not None
        else Path(__file__).parents[1] / "assets" / "models"
    )
    weights, meta = src / f"{name}.pt", src / f"{name}.json"
    for p in (weights, meta):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found (the beat model needs {name}.pt and {name}.json)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(weights, Path(tmp) / "model.pt")
        shutil.copyfile(meta, Path(tmp) / "model.json")
        clf = TorchBeatClassifier.load(Path(tmp))
    assert clf.net is not None
    return clf.net.eval()


def randomized_copy(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A deep copy with every parameter re-drawn (cascading randomisation of all layers at once,
    Adebayo et al. 2018); batch-norm running statistics are kept so that activations stay in range."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return out.eval()


def explain_beat_model(
    net: nn.Module,
    windows: np.ndarray,
    rr: np.ndarray,
    *,
    target: Sequence[int] | np.ndarray | None = None,
    n_steps: int = 32,
    attribute_rr: bool = False,
) -> Attribution:
    """IG of a beat network on ``windows (B, K+1, leads, L)`` and ``rr (B, K+1, n_rr)``.

    ``inputs[0]`` of the result holds the window attributions ``(B, K+1, leads, L)`` (the last
    context position is the explained beat), ``inputs[1]`` the RR-column attributions. By
    default (``attribute_rr=False``) the RR/template columns keep their values along the path
    (baseline = input), so the whole probability difference is attributed to the waveforms: an
    all-zero RR baseline is no "absence" for the log-ratio RR encoding (intervals are clamped to
    10 ms), and its clamps break the completeness of the path integral.
    """
    w = torch.as_tensor(np.asarray(windows, dtype=np.float32))
    r = torch.as_tensor(np.asarray(rr, dtype=np.float32))
    if w.dim() != 4 or r.dim() != 3:
        raise ValueError(
            f"windows must be (B, K+1, leads, L) and rr (B, K+1, n_rr); got {tuple(w.shape)}, {tuple(r.shape)}"
        )
    net.eval()

    def fwd(x: Tensor, y: Tensor) -> Tensor:
        out = net(x, y)
        return out[0] if isinstance(out, tuple) else out

    # the LSTM's backward pass needs training mode in cuDNN only; on CPU eval mode is fine
    baselines = (torch.zeros_like(w), torch.zeros_like(r) if attribute_rr else r.clone())
    return integrated_gradients(
        fwd, (w, r), target=target, n_steps=n_steps, baselines=baselines, probabilities="softmax"
    )


def explain_multimodal(
    net: nn.Module,
    ecg: np.ndarray,
    meta: np.ndarray,
    *,
    target: Sequence[int] | np.ndarray | None = None,
    n_steps: int = 32,
) -> MultimodalAttribution:
    """IG of a :class:`~heartline.models.multimodal.MultimodalNet` (sigmoid output of ``target``)
    on scaled ``ecg (B, leads, T)`` and metadata inputs ``meta (B, 11)``, plus its modality weights."""
    e = torch.as_tensor(np.asarray(ecg, dtype=np.float32))
    m = torch.as_tensor(np.asarray(meta, dtype=np.float32))
    net.eval()
    res = integrated_gradients(
        lambda x, y: net(x, y).logits,
        (e, m),
        target=target,
        n_steps=n_steps,
        probabilities="sigmoid",
    )
    with torch.no_grad():
        weights = net(e, m).modality_weights.numpy()
    return MultimodalAttribution(
        ecg=res.inputs[0],
        metadata=res.inputs[1],
        modality_weights=weights,
        target=res.target,
        scores=res.scores,
        convergence_delta=res.convergence_delta,
    )
