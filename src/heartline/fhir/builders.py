"""FHIR R4 resource builders (``fhir.resources.R4B`` models, validated on construction).

Codes
-----
* Heart rate: LOINC 8867-4; oxygen saturation: LOINC 59408-5 ("by pulse oximetry", with
  2708-6 as a second coding, as the FHIR vital-signs profile requires); temperature: LOINC
  39106-0 "Temperature of Skin" (a wearable patch measures skin, not body/core temperature,
  which is LOINC 8310-5 and reads about 2-4 degC higher); blood pressure panel: LOINC 85354-9 with systolic 8480-6 and diastolic 8462-4
  components. All follow the FHIR R4 vital-signs profile (https://hl7.org/fhir/R4/observation-vitalsigns.html),
  with UCUM units.
* ECG waveform: the ISO/IEEE 11073-10101 (MDC) code 131328 ``MDC_ECG_ELEC_POTL`` with one
  component per lead (``MDC_ECG_ELEC_POTL_<lead>`` = 131328 + the MDC lead code: I 131329,
  II 131330, V1..V6 131331..131336, III 131389, aVR 131390, aVL 131391, aVF 131392) holding a
  ``SampledData``, exactly as the FHIR R4 example "observation-example-sample-data"
  (https://hl7.org/fhir/R4/observation-example-sample-data.html) encodes an ECG. We chose MDC
  over LOINC 11524-6 "EKG study" because 11524-6 names a whole study (a report), not a waveform;
  it is used for the DiagnosticReport instead. MIT-BIH's modified lead II (``MLII``) maps to
  lead II. Samples are integer microvolts with ``factor`` 0.001 (so the value times the factor is
  mV) and ``period`` in ms.
* Beat counts per AAMI class (ANSI/AAMI EC57) and alerts have no standard code: they use
  Heartline code systems (:data:`BEAT_CLASS_SYSTEM`, :data:`HEARTLINE_SYSTEM`).

References
----------
HL7 International, FHIR R4 (v4.0.1), https://hl7.org/fhir/R4/ ; IEEE 11073-10101:2019 nomenclature.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device as FhirDevice
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient

__all__ = [
    "BEAT_CLASS_SYSTEM",
    "HEARTLINE_SYSTEM",
    "LOINC",
    "MDC",
    "UCUM",
    "MonitoringPeriod",
    "alert_observation",
    "beat_count_observation",
    "device_resource",
    "ecg_observation",
    "fhir_id",
    "monitoring_report",
    "patient_bundle",
    "patient_resource",
    "searchset_bundle",
    "vital_observations",
]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
#: ISO/IEEE 11073-10101 nomenclature (its OID, as in the FHIR R4 ECG example).
MDC = "urn:oid:2.16.840.1.113883.6.24"
HEARTLINE_SYSTEM = "urn:heartline:fhir:code"
#: Extension of an alert Observation pointing at its explanation (``valueUrl``).
EXPLANATION_EXTENSION = "urn:heartline:fhir:extension:explanation"
#: The service route of an alert's explanation (strip, highlighted beats, occlusion attributions).
ALERT_EXPLANATION_PATH = "/api/v1/alerts/{alert_id}/explanation"


def alert_explanation_url(alert_id: int, *, base_url: str = "") -> str:
    """URL of an alert's explanation (relative to the service root unless ``base_url`` is given).

    >>> alert_explanation_url(7)
    '/api/v1/alerts/7/explanation'
    """
    return base_url.rstrip("/") + ALERT_EXPLANATION_PATH.format(alert_id=int(alert_id))


BEAT_CLASS_SYSTEM = "urn:heartline:fhir:aami-beat-class"
PATIENT_ID_SYSTEM = "urn:heartline:patient-id"
DEVICE_ID_SYSTEM = "urn:heartline:device-id"
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"

#: MDC codes of ECG leads (MDC_ECG_ELEC_POTL_<lead>); unknown leads use the generic 131328.
MDC_LEADS: dict[str, tuple[int, str]] = {
    "I": (131329, "MDC_ECG_ELEC_POTL_I"),
    "II": (131330, "MDC_ECG_ELEC_POTL_II"),
    "MLII": (131330, "MDC_ECG_ELEC_POTL_II"),
    "V1": (131331, "MDC_ECG_ELEC_POTL_V1"),
    "V2": (131332, "MDC_ECG_ELEC_POTL_V2"),
    "V3": (131333, "MDC_ECG_ELEC_POTL_V3"),
    "V4": (131334, "MDC_ECG_ELEC_POTL_V4"),
    "V5": (131335, "MDC_ECG_ELEC_POTL_V5"),
    "V6": (131336, "MDC_ECG_ELEC_POTL_V6"),
    "III": (131389, "MDC_ECG_ELEC_POTL_III"),
    "AVR": (131390, "MDC_ECG_ELEC_POTL_AVR"),
    "AVL": (131391, "MDC_ECG_ELEC_POTL_AVL"),
    "AVF": (131392, "MDC_ECG_ELEC_POTL_AVF"),
}

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_AAMI_NAMES = {
    "N": "Normal or bundle branch block beat",
    "S": "Supraventricular ectopic beat",
    "V": "Ventricular ectopic beat",
    "F": "Fusion beat",
    "Q": "Unknown or paced beat",
    "unclassified": "Detected, not classified",
}


def fhir_id(value: str) -> str:
    """A FHIR logical id for ``value``: itself when valid (``[A-Za-z0-9-.]{1,64}``), else a hash.

    >>> fhir_id("p-100"), fhir_id("p_100")
    ('p-100', 'h-2c42d0ddfd35cb574783')
    """
    if _FHIR_ID.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[:20]


def _short(value: str, max_len: int) -> str:
    """``value`` when it is a valid FHIR id of at most ``max_len`` characters, else a hash."""
    if len(value) <= max_len and _FHIR_ID.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[: max_len - 2]


def _instant(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"time must be timezone-aware, got naive {t!r}")
    return t.isoformat()


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _qty(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": round(float(value), 3), "unit": unit, "system": UCUM, "code": code}


def _vital_category() -> list[dict[str, Any]]:
    return [{"coding": [_coding(_OBS_CATEGORY, "vital-signs", "Vital Signs")]}]


def patient_resource(*, patient_id: str, display_name: str | None = None) -> FhirPatient:
    """A FHIR Patient with the Heartline id as identifier (and as ``text`` name, if any)."""
    data: dict[str, Any] = {
        "id": fhir_id(patient_id),
        "identifier": [{"system": PATIENT_ID_SYSTEM, "value": patient_id}],
        "active": True,
    }
    if display_name:
        data["name"] = [{"text": display_name}]
    return FhirPatient.model_validate(data)


def device_resource(
    *, device_id: str, patient_id: str | None, kind: str = "ecg-patch"
) -> FhirDevice:
    """A FHIR Device (a wearable) linked to its patient."""
    data: dict[str, Any] = {
        "id": fhir_id(device_id),
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": device_id}],
        "status": "active",
        "type": {"text": kind},
    }
    if patient_id is not None:
        data["patient"] = {"reference": f"Patient/{fhir_id(patient_id)}"}
    return FhirDevice.model_validate(data)


def _obs(
    *,
    obs_id: str,
    patient_id: str,
    code: dict[str, Any],
    time: datetime,
    device_id: str | None,
    category: list[dict[str, Any]] | None = None,
    **value: Any,
) -> Observation:
    data: dict[str, Any] = {
        "id": fhir_id(obs_id),
        "status": "final",
        "code": code,
        "subject": {"reference": f"Patient/{fhir_id(patient_id)}"},
        "effectiveDateTime": _instant(time),
        **value,
    }
    if category:
        data["category"] = category
    if device_id is not None:
        data["device"] = {"reference": f"Device/{fhir_id(device_id)}"}
    return Observation.model_validate(data)


def vital_observations(
    *,
    vital_id: int,
    patient_id: str,
    device_id: str | None,
    time: datetime,
    hr_bpm: float | None = None,
    spo2_pct: float | None = None,
    temp_c: float | None = None,
    sbp_mmhg: float | None = None,
    dbp_mmhg: float | None = None,
) -> list[Observation]:
    """Vital-sign Observations of one stored reading set (one per measured quantity).

    ``temp_c`` is the wearable's skin temperature: coded LOINC 39106-0 "Temperature of Skin",
    never as body temperature (8310-5).
    """
    common = {
        "patient_id": patient_id,
        "time": time,
        "device_id": device_id,
        "category": _vital_category(),
    }
    out = []
    if hr_bpm is not None:
        out.append(
            _obs(
                obs_id=f"vital-{vital_id}-hr",
                code={"coding": [_coding(LOINC, "8867-4", "Heart rate")], "text": "Heart rate"},
                valueQuantity=_qty(hr_bpm, "beats/minute", "/min"),
                **common,
            )
        )
    if spo2_pct is not None:
        out.append(
            _obs(
                obs_id=f"vital-{vital_id}-spo2",
                code={
                    "coding": [
                        _coding(
                            LOINC,
                            "59408-5",
                            "Oxygen saturation in Arterial blood by Pulse oximetry",
                        ),
                        _coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
                    ],
                    "text": "SpO2",
                },
                valueQuantity=_qty(spo2_pct, "%", "%"),
                **common,
            )
        )
    if temp_c is not None:
        out.append(
            _obs(
                obs_id=f"vital-{vital_id}-temp",
                code={
                    "coding": [_coding(LOINC, "39106-0", "Temperature of Skin")],
                    "text": "Skin temperature",
                },
                bodySite={"text": "skin under the wearable sensor"},
                valueQuantity=_qty(temp_c, "Cel", "Cel"),
                **common,
            )
        )
    if sbp_mmhg is not None and dbp_mmhg is not None:
        out.append(
            _obs(
                obs_id=f"vital-{vital_id}-bp",
                code={
                    "coding": [
                        _coding(LOINC, "85354-9", "Blood pressure panel with all children optional")
                    ],
                    "text": "Blood pressure",
                },
                component=[
                    {
                        "code": {"coding": [_coding(LOINC, "8480-6", "Systolic blood pressure")]},
                        "valueQuantity": _qty(sbp_mmhg, "mmHg", "mm[Hg]"),
                    },
                    {
                        "code": {"coding": [_coding(LOINC, "8462-4", "Diastolic blood pressure")]},
                        "valueQuantity": _qty(dbp_mmhg, "mmHg", "mm[Hg]"),
                    },
                ],
                **common,
            )
        )
    return out


def ecg_observation(
    *,
    obs_id: str,
    patient_id: str,
    device_id: str | None,
    start_time: datetime,
    fs: float,
    lead_names: Sequence[str],
    signal_mv: np.ndarray,
) -> Observation:
    """An ECG strip as one Observation (MDC 131328) with a SampledData component per lead.

    ``signal_mv`` has shape ``(n_samples, n_leads)`` in mV; ``fs`` is in Hz.
    """
    signal_mv = np.asarray(signal_mv, dtype=np.float64)
    if signal_mv.ndim != 2 or signal_mv.shape[1] != len(lead_names):
        raise ValueError(
            f"signal_mv must have shape (n_samples, {len(lead_names)}), got {signal_mv.shape}"
        )
    if not fs > 0:
        raise ValueError(f"fs must be > 0 Hz, got {fs}")
    components = []
    for i, lead in enumerate(lead_names):
        code, display = MDC_LEADS.get(lead.upper(), (131328, "MDC_ECG_ELEC_POTL"))
        uv = np.rint(signal_mv[:, i] * 1000.0).astype(np.int64)
        components.append(
            {
                "code": {"coding": [_coding(MDC, str(code), display)], "text": lead},
                "valueSampledData": {
                    "origin": {"value": 0, "unit": "mV", "system": UCUM, "code": "mV"},
                    "period": round(1000.0 / fs, 6),
                    "factor": 0.001,
                    "dimensions": 1,
                    "data": " ".join(str(int(v)) for v in uv),
                },
            }
        )
    return _obs(
        obs_id=obs_id,
        patient_id=patient_id,
        time=start_time,
        device_id=device_id,
        code={"coding": [_coding(MDC, "131328", "MDC_ECG_ELEC_POTL")], "text": "ECG waveform"},
        category=[{"coding": [_coding(_OBS_CATEGORY, "procedure", "Procedure")]}],
        component=components,
    )


def beat_count_observation(
    *, obs_id: str, patient_id: str, start: datetime, end: datetime, label: str, count: int
) -> Observation:
    """Number of beats of one AAMI class (EC57) during a monitoring period."""
    data = {
        "id": fhir_id(obs_id),
        "status": "final",
        "code": {
            "coding": [_coding(BEAT_CLASS_SYSTEM, label, _AAMI_NAMES.get(label, label))],
            "text": f"Beat count, class {label}",
        },
        "subject": {"reference": f"Patient/{fhir_id(patient_id)}"},
        "effectivePeriod": {"start": _instant(start), "end": _instant(end)},
        "valueInteger": int(count),
    }
    return Observation.model_validate(data)


def alert_observation(
    *,
    alert_id: int,
    patient_id: str,
    kind: str,
    severity: str,
    start: datetime,
    end: datetime | None,
    acknowledged_by: str | None = None,
    explanation_url: str | None = None,
) -> Observation:
    """An alert as an Observation (Heartline code ``alert``; the kind as value).

    ``explanation_url`` (default :func:`alert_explanation_url`) goes into the extension
    :data:`EXPLANATION_EXTENSION`: where the alert's explanation (JSON, with the per-sample
    occlusion attributions of its beats) is served.
    """
    period: dict[str, str] = {"start": _instant(start)}
    if end is not None:
        period["end"] = _instant(end)
    data: dict[str, Any] = {
        "id": fhir_id(f"alert-{alert_id}"),
        "status": "final",
        "code": {"coding": [_coding(HEARTLINE_SYSTEM, "alert", "Heartline monitoring alert")]},
        "subject": {"reference": f"Patient/{fhir_id(patient_id)}"},
        "effectivePeriod": period,
        "valueCodeableConcept": {
            "coding": [_coding(HEARTLINE_SYSTEM, f"alert-{kind}", kind)],
            "text": kind,
        },
        "component": [
            {
                "code": {"coding": [_coding(HEARTLINE_SYSTEM, "alert-severity", "Alert severity")]},
                "valueString": severity,
            }
        ],
    }
    data["extension"] = [
        {
            "url": EXPLANATION_EXTENSION,
            "valueUrl": explanation_url or alert_explanation_url(alert_id),
        }
    ]
    if acknowledged_by:
        data["note"] = [{"text": f"acknowledged by {acknowledged_by}"}]
    return Observation.model_validate(data)


@dataclass(frozen=True)
class MonitoringPeriod:
    """What a monitoring DiagnosticReport summarises."""

    patient_id: str
    start: datetime
    end: datetime
    beat_counts: Mapping[str, int]
    alerts: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def monitoring_report(period: MonitoringPeriod) -> tuple[DiagnosticReport, list[Observation]]:
    """A DiagnosticReport (LOINC 11524-6 "EKG study", v2-0074 category EC) and its result Observations.

    ``period.alerts`` holds dicts with ``id``, ``kind``, ``severity``, ``start``, ``end`` and
    optionally ``acknowledged_by`` and ``explanation_url`` (default
    :func:`alert_explanation_url`). Each alert's explanation is linked twice: from its
    Observation (extension :data:`EXPLANATION_EXTENSION`) and from the report's
    ``presentedForm`` (one JSON attachment per alert).
    """
    pid = period.patient_id
    tag = _short(f"{pid}-{int(period.start.timestamp())}-{int(period.end.timestamp())}", 40)
    results = [
        beat_count_observation(
            obs_id=f"beats-{tag}-{label}",
            patient_id=pid,
            start=period.start,
            end=period.end,
            label=label,
            count=n,
        )
        for label, n in period.beat_counts.items()
    ]
    results += [
        alert_observation(
            alert_id=int(a["id"]),
            patient_id=pid,
            kind=str(a["kind"]),
            severity=str(a["severity"]),
            start=a["start"],
            end=a.get("end"),
            acknowledged_by=a.get("acknowledged_by"),
            explanation_url=a.get("explanation_url"),
        )
        for a in period.alerts
    ]
    total = sum(period.beat_counts.values())
    counts = ", ".join(f"{k}={v}" for k, v in period.beat_counts.items())
    kinds = sorted({str(a["kind"]) for a in period.alerts})
    conclusion = f"{total} beats ({counts}); {len(period.alerts)} alerts" + (
        f" ({', '.join(kinds)})" if kinds else ""
    )
    report = DiagnosticReport.model_validate(
        {
            "id": f"monitoring-{tag}",
            "status": "final",
            "category": [
                {"coding": [_coding(_V2_0074, "EC", "Electrocardiac (e.g., EKG, EEC, Holter)")]}
            ],
            "code": {
                "coding": [_coding(LOINC, "11524-6", "EKG study")],
                "text": "Heartline monitoring period",
            },
            "subject": {"reference": f"Patient/{fhir_id(pid)}"},
            "effectivePeriod": {"start": _instant(period.start), "end": _instant(period.end)},
            "result": [{"reference": f"Observation/{o.id}"} for o in results],
            "conclusion": conclusion,
        }
        | (
            {
                "presentedForm": [
                    {
                        "contentType": "application/json",
                        "url": a.get("explanation_url") or alert_explanation_url(int(a["id"])),
                        "title": f"explanation of alert {int(a['id'])} ({a['kind']})",
                    }
                    for a in period.alerts
                ]
            }
            if period.alerts
            else {}
        )
    )
    return report, results


def _entries(
    resources: Iterable[Any], base_url: str, mode: str | None = None
) -> list[dict[str, Any]]:
    out = []
    for r in resources:
        entry: dict[str, Any] = {
            "fullUrl": f"{base_url.rstrip('/')}/{r.get_resource_type()}/{r.id}",
            "resource": r,
        }
        if mode is not None:
            entry["search"] = {"mode": mode}
        out.append(entry)
    return out


def patient_bundle(resources: Sequence[Any], *, base_url: str, timestamp: datetime) -> Bundle:
    """A ``collection`` Bundle (the export of one patient and period)."""
    return Bundle.model_validate(
        {
            "type": "collection",
            "timestamp": _instant(timestamp),
            "entry": _entries(resources, base_url),
        }
    )


def searchset_bundle(
    matches: Sequence[Any], *, base_url: str, timestamp: datetime, included: Sequence[Any] = ()
) -> Bundle:
    """A ``searchset`` Bundle with ``total`` = number of matches (included ones marked ``include``)."""
    return Bundle.model_validate(
        {
            "type": "searchset",
            "timestamp": _instant(timestamp),
            "total": len(matches),
            "entry": _entries(matches, base_url, "match") + _entries(included, base_url, "include"),
        }
    )
