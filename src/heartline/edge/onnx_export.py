"""Export beat networks to ONNX (torch side), with optional dynamic int8 quantisation.

The exported graph has fixed names (:data:`INPUT_NAMES`, :data:`OUTPUT_NAMES`) and a dynamic batch
dimension; it outputs class *probabilities* (softmax applied). Inputs:

* ``windows``: float32 ``(batch, context_k + 1, n_leads, window_len)``, oldest beat first, the
  current beat last;
* ``rr``: float32 ``(batch, context_k + 1, n_rr)``.

Outputs: ``probabilities`` ``(batch, n_classes)`` and, for a hybrid with the early-alarm head,
``next_probabilities`` (class of the next beat). The model's metadata records the classes,
``context_k`` and the registry name, which :class:`heartline.edge.runtime.OnnxBeatClassifier` reads.

Quantisation follows the ONNX Runtime recipe: ``quant_pre_process`` (shape inference and
optimisation), then ``quantize_dynamic`` of the LSTM, MatMul and Gemm nodes to int8 weights.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from heartline.data.aami import AAMI_CLASSES
from heartline.models.deep import BeatNet

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "export_onnx", "quantize_onnx"]

logger = logging.getLogger(__name__)

INPUT_NAMES: tuple[str, str] = ("windows", "rr")
OUTPUT_NAMES: tuple[str, str] = ("probabilities", "next_probabilities")
OPSET = 18


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
    import onnx

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
        torch.onnx.export(
            _ProbabilityModel(net),
            (windows, rr),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=outputs,
            dynamic_shapes={"windows": {0: batch}, "rr": {0: batch}},
            opset_version=OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    finally:
        net.train(was_training)
    model = onnx.load(str(path))
    meta = {
        "heartline.model": name or type(net).__name__,
        "heartline.classes": ",".join(AAMI_CLASSES[: net.n_classes]),
        "heartline.context_k": str(net.context_k),
        "heartline.n_leads": str(net.n_leads),
        "heartline.window_len": str(net.window_len),
        "heartline.n_rr": str(net.n_rr),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    if quantize:
        quantize_onnx(path, path)
    logger.info("exported %s (%d bytes)", path, path.stat().st_size)
    return path


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
