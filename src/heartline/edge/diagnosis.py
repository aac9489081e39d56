"""The result of a multimodal diagnosis (no FHIR, no torch): :class:`MultimodalDiagnosis`.

Returned by :func:`heartline.diagnose` / :class:`heartline.edge.multimodal.MultimodalModel` and
turned into FHIR R4 resources by :mod:`heartline.fhir.diagnosis` (which re-exports it). Kept apart
from the FHIR builders so that the core install (no ``fhir.resources``) can diagnose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["MultimodalDiagnosis"]


@dataclass(frozen=True)
class MultimodalDiagnosis:
    """One multimodal prediction to report.

    Attributes
    ----------
    patient_id, record_id : str
        Heartline patient and ECG record (the record makes the resource ids unique).
    time : datetime
        When the ECG was recorded (timezone-aware).
    probabilities : Mapping[str, float]
        Class -> probability in [0, 1].
    model_name, model_version : str
    thresholds : Mapping[str, float], optional
        Class -> decision threshold (chosen on validation data); without them no interpretation.
    modality_weights : Mapping[str, float], optional
        e.g. ``{"ecg": 0.8, "metadata": 0.2}`` (the fusion attention).
    explanation_url : str, optional
        Where the explanation (attributions, JSON) can be fetched, e.g. the file URI of
        ``heartline diagnose --explain --fhir``'s JSON.
    explanation_image_url : str, optional
        Where a picture of the explanation (PNG: the leads with the attribution overlaid) can be
        fetched.
    metadata_used : Mapping[str, bool]
        Which patient data entered the model (e.g. ``{"age": True, "height": False}``).
    notes : tuple of str
        What was done to the input (resampled, cut, masked), for the report.
    """

    patient_id: str
    record_id: str
    time: datetime
    probabilities: Mapping[str, float]
    model_name: str
    model_version: str
    thresholds: Mapping[str, float] | None = None
    modality_weights: Mapping[str, float] | None = None
    explanation_url: str | None = None
    explanation_image_url: str | None = None
    metadata_used: Mapping[str, bool] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"time must be timezone-aware, got naive {self.time!r}")
        if not self.probabilities:
            raise ValueError("probabilities is empty")
        for name, p in self.probabilities.items():
            if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"probabilities[{name!r}] = {p!r} is not a probability in [0, 1]")
        if self.thresholds is not None:
            missing = sorted(set(self.probabilities) - set(self.thresholds))
            if missing:
                raise ValueError(f"thresholds lack the class(es) {missing}")
        if not self.model_version.strip():
            raise ValueError("model_version is empty")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (``heartline diagnose --json``)."""
        return {
            "patient_id": self.patient_id,
            "record_id": self.record_id,
            "time": self.time.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "probabilities": dict(self.probabilities),
            "thresholds": None if self.thresholds is None else dict(self.thresholds),
            "positive": self.positive(),
            "modality_weights": None
            if self.modality_weights is None
            else dict(self.modality_weights),
            "metadata_used": dict(self.metadata_used),
            "notes": list(self.notes),
        }

    def positive(self) -> list[str]:
        """Classes at or above their threshold (empty without thresholds)."""
        if self.thresholds is None:
            return []
        return [c for c, p in self.probabilities.items() if p >= self.thresholds[c]]
