"""Fine-tune a per-patient head in torch and export it to ONNX (the training side of adaptation).

The head sits on the frozen shipped model: ``logits = log p_base + W z + b`` with ``z`` the
patient-standardised encoder features of the beat, ``W`` and ``b`` initialised at zero (so the
untrained head *is* the base model) and trained with a class-balanced cross-entropy and weight
decay on the patient's confirmed beats. Classes with fewer than ``min_per_class`` confirmed
beats are frozen (their row of ``W`` and ``b`` stays zero). The ONNX file (inputs ``features``,
``base_proba``; output ``probabilities``) carries the base model's SHA-256, the patient and the
version, and runs in :class:`heartline.edge.adapt.OnnxAdaptedHead` without torch.

References
----------
Kiranyaz S, Ince T, Gabbouj M. Real-time patient-specific ECG classification by 1-D
convolutional neural networks. IEEE Trans Biomed Eng 63(3):664-675 (2016) -- patient-specific
training on the first 5 minutes of each record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.edge.adapt import check_label_counts, patient_scaling

__all__ = ["AdaptedHead", "export_head", "fine_tune_head"]


@dataclass(frozen=True)
class AdaptedHead:
    """Trained head parameters (numpy) and what they were made from."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (C, d)
    bias: np.ndarray  # (C,)
    patient_id: str
    version: int
    base_sha256: str
    counts: dict[str, int]


def fine_tune_head(
    features: np.ndarray,
    labels: np.ndarray,
    base_proba: np.ndarray,
    *,
    patient_id: str,
    base_sha256: str,
    version: int = 1,
    min_per_class: int = 3,
    steps: int = 200,
    lr: float = 0.05,
    weight_decay: float = 1e-2,
    seed: int = 0,
    classes: tuple[str, ...] = AAMI_CLASSES,
) -> AdaptedHead:
    """Train the residual head on confirmed beats (full-batch Adam, ``steps`` steps, one thread)."""
    import torch

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    base_proba = np.asarray(base_proba, dtype=np.float32)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"features (n, d) and labels (n,) must match, got {features.shape}, {labels.shape}"
        )
    adapted, _ = check_label_counts(labels, min_per_class=min_per_class, classes=classes)
    mask = np.array([c in adapted for c in classes], np.float32)
    mean, scale = patient_scaling(features)
    torch.manual_seed(seed)
    z = torch.from_numpy((features - mean) / scale)
    lp = torch.log(torch.from_numpy(base_proba) + 1e-6)
    y = torch.from_numpy(labels)
    n_c = len(classes)
    w = torch.zeros(n_c, z.shape[1], requires_grad=True)
    b = torch.zeros(n_c, requires_grad=True)
    m = torch.from_numpy(mask)
    counts = np.bincount(labels, minlength=n_c).astype(np.float32)
    cw = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(cw.astype(np.float32)))
    opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        logits = lp + (z @ w.T + b) * m
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
    return AdaptedHead(
        mean=mean,
        scale=scale,
        weight=(w.detach().numpy() * mask[:, None]).astype(np.float32),
        bias=(b.detach().numpy() * mask).astype(np.float32),
        patient_id=str(patient_id),
        version=int(version),
        base_sha256=base_sha256,
        counts={c: int(counts[i]) for i, c in enumerate(classes)},
    )


def export_head(head: AdaptedHead, path: str | Path) -> Path:
    """Write the head as a small ONNX graph (built with the ``onnx`` helper; no tracing)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = head.mean.size
    n_c = head.bias.size
    inits = [
        numpy_helper.from_array(head.mean.astype(np.float32), "mean"),
        numpy_helper.from_array(head.scale.astype(np.float32), "scale"),
        numpy_helper.from_array(head.weight.T.astype(np.float32).copy(), "w_t"),
        numpy_helper.from_array(head.bias.astype(np.float32), "bias"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["z"]),
        helper.make_node("MatMul", ["z", "w_t"], ["zw"]),
        helper.make_node("Add", ["zw", "bias"], ["delta"]),
        helper.make_node("Add", ["base_proba", "eps"], ["p_eps"]),
        helper.make_node("Log", ["p_eps"], ["log_p"]),
        helper.make_node("Add", ["log_p", "delta"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "heartline_adapted_head",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d]),
            helper.make_tensor_value_info("base_proba", TensorProto.FLOAT, ["n", n_c]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", n_c])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in {
        "heartline.adapt_format": "head/1",
        "heartline.base_sha256": head.base_sha256,
        "heartline.patient_id": head.patient_id,
        "heartline.version": str(head.version),
    }.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
