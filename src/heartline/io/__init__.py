"""WFDB and device-frame readers (numpy, scipy and wfdb only)."""

from heartline.io.records import Annotations, EcgRecord, read_annotations, read_record

__all__ = ["Annotations", "EcgRecord", "read_annotations", "read_record"]
