"""Edge deployment: ONNX export (torch side) and the ONNX Runtime classifier (no torch).

``heartline.edge.runtime`` imports only numpy and onnxruntime, so the live service and devices
can run the exported model without PyTorch; ``heartline.edge.onnx_export`` needs torch.
"""

from heartline.edge.shipped import shipped_model_card, shipped_model_path

__all__ = ["shipped_model_card", "shipped_model_path"]
