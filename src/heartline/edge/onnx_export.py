"""Export beat networks to ONNX (torch side), with optional dynamic int8 quantisation.

The exported graph has fixed names (:data:`INPUT_NAMES`, :data:`OUTPUT_NAMES`) and a dynamic batch
dimension; it outputs class *probabilities* (softmax applied). Inputs:

* ``windows``: float32 ``(batch, context_k + 1, n_leads, window_len)``, oldest beat first, the
  current beat last;
* ``rr``: float32 ``(batch, context_k + 1, n_rr)``.

Outputs: ``probabilities`` ``(batch, n_classes)`` and, for a hybrid with the early-alarm head,
``next_probabilities`` (class of the next beat). The model's metadata records the classes,
``context_k`` and the registry name, which :class:`heartline.edge.runtime.OnnxBeatClassifier` reads.

**Split form** (:func:`export_onnx_split`, hybrids with ``context_k > 0``): the same network as two
graphs, so that a stream encodes every beat once instead of ``context_k + 1`` times
(:class:`heartline.edge.runtime.OnnxBeatClassifier` loads them when they lie next to the full
model, :func:`split_paths`):

* the **encoder** ``<stem>.encoder.onnx``: ``windows`` ``(beats, n_leads, window_len)`` and ``rr``
  ``(beats, n_rr)`` -> ``features`` ``(beats, feature_dim)`` (:meth:`HybridNet.encode
  <heartline.models.hybrid.HybridNet.encode>`);
* the **sequence** graph ``<stem>.sequence.onnx``: ``features`` ``(batch, context_k + 1,
  feature_dim)``, oldest beat first -> ``probabilities`` (and ``next_probabilities``), the LSTM
  and heads followed by the softmax.

Encoding each beat of the context and running the sequence graph computes what the full graph
computes (the full graph encodes the ``batch * (context_k + 1)`` beats the same way); both split
files record the SHA-256 of the full model they were made beside (``heartline.full_sha256``), so a
runtime never pairs them with another model.

Quantisation follows the ONNX Runtime recipe: ``quant_pre_process`` (shape inference and
optimisation), then ``quantize_dynamic`` of the LSTM, MatMul and Gemm nodes to int8 weights.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from heartline.data.aami import AAMI_CLASSES
from heartline.edge.runtime import FEATURE_NAME, file_sha256, split_paths
from heartline.models.deep import BeatNet
from heartline.models.hybrid import HybridNet

__all__ = [
    "ENCODER_INPUT_NAMES",
    "FEATURE_NAME",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "export_onnx",
    "export_onnx_split",
    "file_sha256",
    "quantize_onnx",
    "split_paths",
]

logger = logging.getLogger(__name__)

INPUT_NAMES: tuple[str, str] = ("windows", "rr")
OUTPUT_NAMES: tuple[str, str] = ("probabilities", "next_probabilities")
OPSET = 18
#: Inputs of the split encoder graph (one beat per row) and the name of its output.
ENCODER_INPUT_NAMES: tuple[str, str] = ("windows", "rr")


class _ProbabilityModel(nn.Module):
    """The network followed by a softmax on each output."""

    def __init__(self, net: BeatNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, windows: Tensor, rr: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.net(windows, rr)
        if isinstance(out, tuple):
            return torch.softmax(out[0], dim=1), torch.softmax(out[1], dim=1)
        return torch.softmax(out, dim=1)


class _EncoderModel(nn.Module):
    """``HybridNet.encode``: per-beat features from one beat per row."""

    def __init__(self, net: HybridNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, windows: Tensor, rr: Tensor) -> Tensor:
        return self.net.encode(windows, rr)


class _SequenceModel(nn.Module):
    """``HybridNet._sequence`` followed by a softmax on each output."""

    def __init__(self, net: HybridNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.net._sequence(features)
        probs = torch.softmax(out.logits, dim=1)
        if out.next_logits is not None:
            return probs, torch.softmax(out.next_logits, dim=1)
        return probs


def _metadata(net: BeatNet, name: str | None) -> dict[str, str]:
    return {
        "heartline.model": name or type(net).__name__,
        "heartline.classes": ",".join(AAMI_CLASSES[: net.n_classes]),
        "heartline.context_k": str(net.context_k),
        "heartline.n_leads": str(net.n_leads),
        "heartline.window_len": str(net.window_len),
        "heartline.n_rr": str(net.n_rr),
    }


def _finish(path: Path, meta: dict[str, str]) -> None:
    """Add ``meta`` to the model's metadata, check it and save it in place."""
    import onnx

    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _torch_export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    *,
    inputs: list[str],
    outputs: list[str],
    dynamic_shapes: dict[str, dict[int, Any]],
) -> None:
    """``torch.onnx.export`` with the settings every Heartline graph uses (opset, one file, dynamo)."""
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_shapes=dynamic_shapes,
        opset_version=OPSET,
        external_data=False,
        dynamo=True,
        verbose=False,
    )


def export_onnx(
    net: BeatNet,
    path: str | Path,
    *,
    name: str | None = None,
    quantize: bool = False,
    example_batch: int = 2,
) -> Path:
    """Export ``net`` (eval mode) to a self-contained ``.onnx`` file (no external data).

    Parameters
    ----------
    net : BeatNet
        Trained network (hybrid or deep baseline).
    path : path
        Output file.
    name : str, optional
        Model name stored in the metadata (default: the class name).
    quantize : bool
        Also apply dynamic int8 quantisation (:func:`quantize_onnx`) in place.
    example_batch : int
        Batch size of the tracing example (the exported batch dimension is dynamic).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net.eval()
    t = net.context_k + 1
    windows = torch.randn(example_batch, t, net.n_leads, net.window_len)
    rr = torch.randn(example_batch, t, net.n_rr)
    outputs = list(OUTPUT_NAMES[:2] if net.has_next_head else OUTPUT_NAMES[:1])
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        _torch_export(
            _ProbabilityModel(net),
            (windows, rr),
            path,
            inputs=list(INPUT_NAMES),
            outputs=outputs,
            dynamic_shapes={"windows": {0: batch}, "rr": {0: batch}},
        )
    finally:
        net.train(was_training)
    _finish(path, _metadata(net, name))
    if quantize:
        quantize_onnx(path, path)
    logger.info("exported %s (%d bytes)", path, path.stat().st_size)
    return path


def export_onnx_split(
    net: BeatNet,
    full_path: str | Path,
    *,
    name: str | None = None,
    example_batch: int = 2,
) -> tuple[Path, Path]:
    """Export the split form (encoder + sequence graph) of a hybrid beside its full model.

    The full model ``full_path`` (written by :func:`export_onnx` from the same ``net``) must exist:
    its SHA-256 goes into the metadata of both split files (``heartline.full_sha256``), and
    :class:`heartline.edge.runtime.OnnxBeatClassifier` uses the split only when it matches.
    Check the composition against the full model (``heartline ship`` does) before shipping.

    Parameters
    ----------
    net : HybridNet
        A :class:`~heartline.models.hybrid.HybridNet` with ``context_k > 0``.
    full_path : path
        The full ``.onnx`` model of ``net``; the split files go next to it (:func:`split_paths`).
    name : str, optional
        Model name stored in the metadata (default: the class name).
    example_batch : int
        Batch size of the tracing examples (the exported batch dimensions are dynamic).

    Returns
    -------
    tuple of pathlib.Path
        The encoder and sequence files.

    Raises
    ------
    ValueError
        ``net`` has no split form (not a hybrid, or ``context_k == 0``: nothing to share
        between beats).
    FileNotFoundError
        ``full_path`` does not exist.
    """
    if not isinstance(net, HybridNet):
        raise ValueError(f"net: {type(net).__name__} has no encoder/sequence split (HybridNet has)")
    if net.context_k < 1:
        raise ValueError("net: context_k == 0, a split would not save any encoding")
    full_path = Path(full_path)
    if not full_path.is_file():
        raise FileNotFoundError(f"full_path: no full ONNX model at {full_path}")
    enc_path, seq_path = split_paths(full_path)
    meta = _metadata(net, name)
    meta["heartline.full_sha256"] = file_sha256(full_path)
    was_training = net.training
    net.eval()
    u = example_batch * (net.context_k + 1)
    windows = torch.randn(u, net.n_leads, net.window_len)
    rr = torch.randn(u, net.n_rr)
    beats = torch.export.Dim("beats", min=1, max=1 << 20)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    outputs = list(OUTPUT_NAMES[:2] if net.has_next_head else OUTPUT_NAMES[:1])
    try:
        with torch.no_grad():
            features = net.encode(windows, rr)
        seq = features.reshape(example_batch, net.context_k + 1, features.shape[1])
        _torch_export(
            _EncoderModel(net),
            (windows, rr),
            enc_path,
            inputs=list(ENCODER_INPUT_NAMES),
            outputs=[FEATURE_NAME],
            dynamic_shapes={"windows": {0: beats}, "rr": {0: beats}},
        )
        _torch_export(
            _SequenceModel(net),
            (seq,),
            seq_path,
            inputs=[FEATURE_NAME],
            outputs=outputs,
            dynamic_shapes={"features": {0: batch}},
        )
    finally:
        net.train(was_training)
    _finish(enc_path, {**meta, "heartline.part": "encoder"})
    _finish(seq_path, {**meta, "heartline.part": "sequence"})
    logger.info("exported split %s + %s", enc_path, seq_path)
    return enc_path, seq_path


def quantize_onnx(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the LSTM, MatMul and Gemm weights of an ONNX model.

    Runs :func:`onnxruntime.quantization.shape_inference.quant_pre_process` first, as ONNX
    Runtime recommends, then :func:`onnxruntime.quantization.quantize_dynamic`. The metadata of
    ``src`` is kept.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    # The torch exporter annotates initializers with value_info, which clashes with the
    # quantiser's own shape inference once it rewrites the weights: let ONNX infer them again.
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"
        onnx.save(model, str(plain))
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(plain), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "quant.onnx"
        quantize_dynamic(
            str(pre),
            str(out),
            op_types_to_quantize=["LSTM", "MatMul", "Gemm"],
            weight_type=QuantType.QInt8,
        )
        model = onnx.load(str(out))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(dst))
    return dst
