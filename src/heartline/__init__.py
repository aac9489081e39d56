"""Heartline: IoT cardiac monitoring, from a wearable's ECG to beat and rhythm labels.

The notebook API is loaded lazily, so ``import heartline`` stays light (no torch, no pandas):

* :func:`heartline.read_record` - read a WFDB, EDF or CSV record (:mod:`heartline.io.readers`);
* :func:`heartline.detect_r_peaks` - R peaks with a detector of the registry;
* :func:`heartline.classify` - detect and classify every beat (a :class:`heartline.api.BeatTable`),
  with the shipped ONNX model chosen from the leads;
* :func:`heartline.classify_rhythm` - rhythm (N / A / O / ~) of a single-lead recording
  (:mod:`heartline.edge.rhythm`);
* :func:`heartline.diagnose` - PTB-XL superdiagnostic classes (NORM, MI, STTC, CD, HYP) of a
  12-lead record with optional patient data (:mod:`heartline.edge.multimodal`);
* :func:`heartline.explain_diagnosis` - which leads, segments and patient data drove each class of
  that diagnosis (torch-free occlusion, :mod:`heartline.edge.multimodal_explain`).

See ``docs/python-api.md`` and :mod:`heartline.api`.
"""

from __future__ import annotations

from typing import Any

from heartline._version import __version__

#: Public names served by :mod:`heartline.api` on first access.
_API = (
    "BeatSummary",
    "BeatTable",
    "classify",
    "classify_record",
    "detect_r_peaks",
    "diagnose",
    "read_record",
)

#: Other public names, each served by its module on first access.
_LAZY = {
    "classify_rhythm": "heartline.edge.rhythm",
    "explain_diagnosis": "heartline.edge.multimodal_explain",
}

__all__ = ["__version__", *_API, *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _API:
        from heartline import api

        return getattr(api, name)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'heartline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_LAZY))
