"""Explanations of Heartline's predictions.

* :mod:`heartline.edge.occlusion` (on the run-time side, outside this package): occlusion
  attribution through ONNX Runtime (no torch), for the live side (alerts, ``heartline classify
  --explain``, the dashboard overlay); entry point :func:`heartline.edge.occlusion.explain_beats`.
* :mod:`heartline.explain.attribution`: Integrated Gradients with Captum (torch), for reports:
  the beat model, the multimodal model, and any torch model through
  :func:`heartline.explain.attribution.integrated_gradients`.

This package sits above :mod:`heartline.training` in the import-linter layers; the run-time side
never imports it.
"""
