"""FHIR R4 resources for a multimodal diagnosis (PTB-XL superdiagnostic classes).

A :class:`MultimodalDiagnosis` (class probabilities of one 12-lead ECG + patient-data prediction,
the decision thresholds, the model's name and version, optionally the modality attention weights
and a link to the explanation) becomes

* one **Observation** per class (:func:`diagnosis_observations`): code = the class in the Heartline
  code system :data:`DIAGNOSIS_CLASS_SYSTEM` (PTB-XL's superclasses NORM, MI, STTC, CD, HYP have
  no single standard code; a SNOMED CT mapping is left to the deploying site), ``valueQuantity`` =
  the probability (UCUM ``1``), ``interpretation`` POS/NEG at the class threshold
  (HL7 v3 ObservationInterpretation), ``method`` = the model, and ``device`` = a *contained*
  Device carrying the model name and ``version`` (FHIR R4 has no other element for the version of
  an algorithm); the modality attention weights are components;
* a **DiagnosticReport** (:func:`diagnosis_report`, LOINC 11524-6 "EKG study", v2-0074 category
  EC) whose ``result`` references them, with a ``conclusion``, a ``conclusionCode`` per positive
  class and, when given, the explanation as ``presentedForm`` attachments (a URL to the
  JSON explanation, e.g. :meth:`heartline.edge.multimodal_explain.MultimodalExplanation.to_dict`,
  and one to its PNG picture).

Built with ``fhir.resources.R4B`` models as :mod:`heartline.fhir.builders` is (R4-compatible JSON),
validated on construction.

References
----------
HL7 International, FHIR R4 (v4.0.1), https://hl7.org/fhir/R4/ ; Wagner P et al. PTB-XL. Sci Data
7:154 (2020) (the superdiagnostic classes).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from heartline.edge.diagnosis import MultimodalDiagnosis
from heartline.fhir.builders import HEARTLINE_SYSTEM, LOINC, UCUM, fhir_id, patient_bundle

__all__ = [
    "CLASS_DISPLAY",
    "DIAGNOSIS_CLASS_SYSTEM",
    "MultimodalDiagnosis",
    "diagnosis_bundle",
    "diagnosis_observations",
    "diagnosis_report",
]

DIAGNOSIS_CLASS_SYSTEM = "urn:heartline:fhir:ptbxl-superclass"
#: Display names of PTB-XL's superdiagnostic classes (Wagner et al. 2020).
CLASS_DISPLAY: dict[str, str] = {
    "NORM": "Normal ECG",
    "MI": "Myocardial infarction",
    "STTC": "ST/T change",
    "CD": "Conduction disturbance",
    "HYP": "Hypertrophy",
}
_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"


def _short(value: str, max_len: int) -> str:
    """``value`` when it is a valid FHIR id of at most ``max_len`` characters, else a hash."""
    if len(value) <= max_len and fhir_id(value) == value:
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[: max_len - 2]


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _tag(dx: MultimodalDiagnosis) -> str:
    return _short(f"{dx.patient_id}-{dx.record_id}-{int(dx.time.timestamp())}", 40)


def _model_device(dx: MultimodalDiagnosis) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": "model",
        "deviceName": [{"name": dx.model_name, "type": "model-name"}],
        "version": [{"value": dx.model_version}],
        "type": {
            "coding": [_coding(HEARTLINE_SYSTEM, "ml-model", "Heartline machine-learning model")]
        },
    }


def diagnosis_observations(dx: MultimodalDiagnosis) -> list[Observation]:
    """One Observation per class (see the module docstring)."""
    tag = _tag(dx)
    out = []
    for cls, p in dx.probabilities.items():
        data: dict[str, Any] = {
            "id": fhir_id(f"dx-{tag}-{cls}")[:64],
            "status": "final",
            "category": [
                {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/observation-category",
                            "procedure",
                            "Procedure",
                        )
                    ]
                }
            ],
            "code": {
                "coding": [_coding(DIAGNOSIS_CLASS_SYSTEM, cls, CLASS_DISPLAY.get(cls, cls))],
                "text": f"probability of {CLASS_DISPLAY.get(cls, cls)} (12-lead ECG + patient data)",
            },
            "subject": {"reference": f"Patient/{fhir_id(dx.patient_id)}"},
            "effectiveDateTime": dx.time.isoformat(),
            "valueQuantity": {
                "value": round(float(p), 4),
                "unit": "probability",
                "system": UCUM,
                "code": "1",
            },
            "method": {"text": f"{dx.model_name} {dx.model_version}"},
            "contained": [_model_device(dx)],
            "device": {"reference": "#model", "display": f"{dx.model_name} {dx.model_version}"},
        }
        if dx.thresholds is not None:
            pos = p >= dx.thresholds[cls]
            data["interpretation"] = [
                {
                    "coding": [
                        _coding(_INTERP, "POS" if pos else "NEG", "Positive" if pos else "Negative")
                    ]
                }
            ]
            data["referenceRange"] = [
                {"text": f"positive at probability >= {dx.thresholds[cls]:.4f}"}
            ]
        if dx.modality_weights:
            data["component"] = [
                {
                    "code": {
                        "coding": [
                            _coding(
                                HEARTLINE_SYSTEM,
                                f"modality-weight-{m}",
                                f"attention weight of the {m} modality",
                            )
                        ]
                    },
                    "valueQuantity": {
                        "value": round(float(w), 4),
                        "unit": "1",
                        "system": UCUM,
                        "code": "1",
                    },
                }
                for m, w in dx.modality_weights.items()
            ]
        out.append(Observation.model_validate(data))
    return out


def diagnosis_report(dx: MultimodalDiagnosis) -> tuple[DiagnosticReport, list[Observation]]:
    """A DiagnosticReport and its per-class Observations."""
    results = diagnosis_observations(dx)
    positive = dx.positive()
    probs = ", ".join(f"{c} {p:.2f}" for c, p in dx.probabilities.items())
    if dx.thresholds is None:
        verdict = "no decision thresholds given"
    elif positive:
        verdict = "positive: " + ", ".join(positive)
    else:
        verdict = "no class above its threshold"
    data: dict[str, Any] = {
        "id": f"dx-{_tag(dx)}",
        "status": "final",
        "category": [
            {"coding": [_coding(_V2_0074, "EC", "Electrocardiac (e.g., EKG, EEC, Holter)")]}
        ],
        "code": {
            "coding": [_coding(LOINC, "11524-6", "EKG study")],
            "text": "Heartline multimodal ECG diagnosis",
        },
        "subject": {"reference": f"Patient/{fhir_id(dx.patient_id)}"},
        "effectiveDateTime": dx.time.isoformat(),
        "result": [{"reference": f"Observation/{o.id}"} for o in results],
        "conclusion": f"{verdict} ({probs}; model {dx.model_name} {dx.model_version}; "
        "decision support, to be confirmed by a clinician)",
    }
    if positive:
        data["conclusionCode"] = [
            {"coding": [_coding(DIAGNOSIS_CLASS_SYSTEM, c, CLASS_DISPLAY.get(c, c))]}
            for c in positive
        ]
    forms = []
    if dx.explanation_url:
        forms.append(
            {
                "contentType": "application/json",
                "url": dx.explanation_url,
                "title": "explanation (attributions)",
            }
        )
    if dx.explanation_image_url:
        forms.append(
            {
                "contentType": "image/png",
                "url": dx.explanation_image_url,
                "title": "explanation (leads with the attribution overlaid)",
            }
        )
    if forms:
        data["presentedForm"] = forms
    return DiagnosticReport.model_validate(data), results


def diagnosis_bundle(
    dx: MultimodalDiagnosis, *, base_url: str, timestamp: datetime | None = None
) -> Any:
    """A ``collection`` Bundle of the DiagnosticReport and its Observations (one file to hand
    over, e.g. ``heartline diagnose --fhir OUT.json``).

    ``base_url`` is the FHIR server base the resources belong to (``fullUrl`` =
    ``{base_url}/{type}/{id}``, so the report's relative ``Observation/{id}`` references resolve
    inside the Bundle); ``timestamp`` defaults to ``dx.time``.
    """
    report, observations = diagnosis_report(dx)
    return patient_bundle(
        [report, *observations], base_url=base_url, timestamp=timestamp or dx.time
    )
