"""WFDB, EDF and CSV record readers and device-frame readers (numpy, scipy and wfdb only)."""

from heartline.io.readers import (
    RecordQualityWarning,
    detect_format,
    expand_record_paths,
    read_ecg,
)
from heartline.io.records import Annotations, EcgRecord, read_annotations, read_record

__all__ = [
    "Annotations",
    "EcgRecord",
    "RecordQualityWarning",
    "detect_format",
    "expand_record_paths",
    "read_annotations",
    "read_ecg",
    "read_record",
]
