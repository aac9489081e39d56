"""Explanations of Heartline's predictions.

* :mod:`heartline.explain.occlusion`: occlusion attribution through ONNX Runtime (no torch), for
  the live side (alerts, ``heartline classify --explain``, the dashboard overlay); entry point
  :func:`heartline.explain.occlusion.explain_beats`.
* :mod:`heartline.explain.attribution`: Integrated Gradients with Captum (torch), for reports:
  the beat model, the multimodal model, and any torch model through
  :func:`heartline.explain.attribution.integrated_gradients`.

This package's ``__init__`` imports neither, so the run-time side can import the occlusion module
without pulling in torch.
"""
