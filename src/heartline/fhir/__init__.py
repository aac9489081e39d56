"""HL7 FHIR R4 resources built from Heartline's storage rows.

Built with ``fhir.resources.R4B`` models: FHIR R4B (4.3.0) is the R4-compatible release that
``fhir.resources`` 8 ships (its default package is R5). Patient, Device, Observation,
DiagnosticReport and Bundle are unchanged between R4 (4.0.1) and R4B for every element used
here, so the JSON is valid R4. Each builder returns a model, validated on construction.
"""

from heartline.fhir.builders import (
    BEAT_CLASS_SYSTEM,
    HEARTLINE_SYSTEM,
    LOINC,
    MDC,
    UCUM,
    MonitoringPeriod,
    alert_observation,
    beat_count_observation,
    device_resource,
    ecg_observation,
    fhir_id,
    monitoring_report,
    patient_bundle,
    patient_resource,
    searchset_bundle,
    vital_observations,
)

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
