"""The device frame: the JSON payload a wearable publishes over MQTT about once a second.

ECG travels as **raw ADC counts** (JSON integers), one list per lead, with each lead's gain
(counts per mV) and baseline (counts at 0 mV): ``mV = (count - baseline) / gain``. Counts are what
an AD8232-style front end and its microcontroller ADC actually produce, they are lossless, about
half the size of decimal mV floats in JSON, and they cannot carry NaN; the server stores them as
int16 unchanged. Counts are unsigned, ``0 <= count < 2**adc_bits`` with ``8 <= adc_bits <= 15``
(so they always fit int16); MIT-BIH itself is 11-bit, gain 200 counts/mV, baseline 1024.

Example payload (``v`` is the schema version)::

    {"v": 1, "device_id": "sim-0001", "seq": 41, "start_time_s": 1700000041.0,
     "fs_hz": 360.0, "duration_s": 1.0, "lead_names": ["MLII", "V5"], "adc_bits": 11,
     "adc_gain": [200.0, 200.0], "adc_baseline": [1024, 1024],
     "ecg": [[995, 995, ...360 ints], [1011, 1011, ...]],
     "vitals": [{"time_s": 1700000041.0, "hr_bpm": 72.0, "spo2_pct": 97.0}]}

**Version 2** is the same frame with a compact ECG body: ``"v": 2`` and ``ecg`` holds one
standard base64 string (with padding) per lead, the lead's counts as little-endian int16
(``[0, 2**adc_bits)`` fits int16)::

    {"v": 2, ..., "ecg": ["5wPnA+cD...", "8wPzA/MD..."], "vitals": [...]}

It is about a third smaller than version 1 and the server decodes it without building a
Python integer per sample. Both versions are accepted and validated alike: the same counts give
the same :class:`Frame` contents (:meth:`Frame.ecg_counts`) and the same refusals; a v2 lead
that is not valid base64 or holds an odd number of bytes is a ``schema`` error.

:func:`parse_frame` is the only way bytes from the network become a :class:`Frame`; every refusal
is a :class:`FrameRejected` whose ``reason`` is one of :data:`REJECT_REASONS`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, from_json

from heartline.errors import HeartlineError

__all__ = [
    "DEVICE_ID_PATTERN",
    "FS_RANGE_HZ",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_DURATION_S",
    "PAYLOAD_VERSIONS",
    "REJECT_REASONS",
    "VITAL_RANGES",
    "Frame",
    "FrameRejected",
    "VitalReading",
    "check_frame_time",
    "parse_frame",
]

#: Default size limit of one payload (a 12-lead, 500 Hz, 10 s frame is about 400 kB).
MAX_FRAME_BYTES = 512 * 1024
#: Longest accepted frame.
MAX_FRAME_DURATION_S = 10.0
#: Accepted sampling rates (inclusive), Hz.
FS_RANGE_HZ = (50.0, 2000.0)
#: Device ids: also MQTT topic levels, so no ``/``, ``+`` or ``#``.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: Physiologic bounds (inclusive) of each vital sign; a value outside is refused, not clipped.
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "hr_bpm": (20.0, 300.0),
    "spo2_pct": (50.0, 100.0),
    "temp_c": (25.0, 45.0),
    "sbp_mmhg": (40.0, 300.0),
    "dbp_mmhg": (20.0, 200.0),
}
# Plausible device clock (2000-01-01 .. 2100-01-01): anything else is a broken clock.
_TIME_RANGE_S = (946_684_800.0, 4_102_444_800.0)
_MAX_VITAL_OFFSET_S = 300.0

#: Accepted ``v``: 1 (ECG as JSON integer lists), 2 (ECG as base64 little-endian int16 per lead).
PAYLOAD_VERSIONS: tuple[int, ...] = (1, 2)

#: Every ``FrameRejected.reason``.
REJECT_REASONS: tuple[str, ...] = (
    "oversized",
    "malformed_json",
    "schema",
    "non_finite",
    "lead_mismatch",
    "length_mismatch",
    "out_of_range",
    "bad_fs",
    "clock_skew",
)


class FrameRejected(HeartlineError, ValueError):
    """A payload that is not a valid frame.

    Attributes
    ----------
    reason : str
        Machine-readable cause, one of :data:`REJECT_REASONS` (quarantine and counters use it).
    detail : str
        Human-readable explanation naming the field.
    """

    def __init__(self, *, reason: str, detail: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {REJECT_REASONS}, got {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"frame rejected ({reason}): {detail}")


def _err(reason: str, msg: str) -> PydanticCustomError:
    return PydanticCustomError(reason, msg)


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise _err("non_finite", f"{name} must be finite, got {value}")


class VitalReading(BaseModel):
    """Vital signs measured at one instant ``time_s`` (device clock, Unix epoch seconds).

    Any subset may be present (a pulse oximeter sends HR and SpO2; a cuff sends both pressures).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_s: float
    hr_bpm: float | None = None
    spo2_pct: float | None = None
    temp_c: float | None = None
    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None

    @model_validator(mode="after")
    def _check(self) -> VitalReading:
        _finite("vitals.time_s", self.time_s)
        present = {k: getattr(self, k) for k in VITAL_RANGES if getattr(self, k) is not None}
        if not present:
            raise _err("schema", "a vitals entry needs at least one of " + ", ".join(VITAL_RANGES))
        for name, value in present.items():
            _finite(f"vitals.{name}", value)
            lo, hi = VITAL_RANGES[name]
            if not lo <= value <= hi:
                raise _err(
                    "out_of_range",
                    f"vitals.{name}={value} outside the physiologic range [{lo}, {hi}]",
                )
        if (self.sbp_mmhg is None) != (self.dbp_mmhg is None):
            raise _err("schema", "vitals.sbp_mmhg and vitals.dbp_mmhg come together")
        if (
            self.sbp_mmhg is not None
            and self.dbp_mmhg is not None
            and self.sbp_mmhg <= self.dbp_mmhg
        ):
            raise _err(
                "out_of_range",
                f"vitals.sbp_mmhg={self.sbp_mmhg} must exceed dbp_mmhg={self.dbp_mmhg}",
            )
        return self

    def values(self) -> dict[str, float]:
        """The readings present, by field name."""
        return {k: float(getattr(self, k)) for k in VITAL_RANGES if getattr(self, k) is not None}


class _Derived:
    """Arrays derived from a frame's fields (a cache: equal for every frame, never compared)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Derived)

    __hash__ = None  # type: ignore[assignment]


# the exact pydantic check of a version-1 ECG body, run only to name the offending sample
_STRICT_ECG_V1 = TypeAdapter(list[list[StrictInt]])


def _schema_error_v1(ecg: list[Any]) -> PydanticCustomError:
    try:
        _STRICT_ECG_V1.validate_python(ecg)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = "".join(f"[{p}]" for p in e["loc"])
        return _err("schema", f"ecg{where}: {e['msg']}")
    return _err("schema", "ecg must be a list of lists of integers")  # pragma: no cover


class _Overflow:
    """Marks a lead holding an integer that does not fit int64 (outside every ADC range)."""


def _leads_v1(ecg: list[Any]) -> list[np.ndarray | _Overflow]:
    """Version-1 leads (lists of JSON integers) as int64 arrays.

    Exactly pydantic's ``StrictInt`` (bool, float, str... refused) without a Python check per
    sample: ``sum`` stays an ``int`` only over integers (it raises on str/None/lists and turns
    float on any float), and a bool, the one non-int it lets through, can only be a 0 or 1
    count, so the exact check runs when a lead holds one of those.
    """
    out: list[np.ndarray | _Overflow] = []
    for lead in ecg:
        if type(lead) is not list:
            raise _schema_error_v1(ecg)
        try:
            total = sum(lead)
        except TypeError:
            raise _schema_error_v1(ecg) from None
        if type(total) is not int:
            raise _schema_error_v1(ecg)
        try:
            arr = np.array(lead, dtype=np.int64)
        except OverflowError:
            out.append(_Overflow())
            continue
        if arr.size and int(arr.min()) <= 1 and any(type(x) is not int for x in lead):
            raise _schema_error_v1(ecg)
        out.append(arr)
    return out


def _leads_v2(ecg: list[Any]) -> list[np.ndarray]:
    """Version-2 leads (base64 little-endian int16) as int64 arrays."""
    out: list[np.ndarray] = []
    for i, lead in enumerate(ecg):
        if type(lead) is not str:
            raise _err("schema", f"ecg[{i}] must be a base64 string in a version-2 frame")
        try:
            raw = base64.b64decode(lead, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _err("schema", f"ecg[{i}] is not valid base64 ({exc})") from None
        if len(raw) % 2:
            raise _err("schema", f"ecg[{i}] holds {len(raw)} bytes, not whole int16 counts")
        out.append(np.frombuffer(raw, dtype="<i2").astype(np.int64))
    return out


def _encode_v2(counts: np.ndarray) -> list[str]:
    """Counts ``(n_leads, n_samples)`` as version-2 leads."""
    le = np.ascontiguousarray(counts, dtype="<i2")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in le]


class Frame(BaseModel):
    """One ~1 s frame from one device (see the module docstring for the wire format).

    Attributes
    ----------
    v : int
        Schema version: 1 (``ecg`` as integer lists) or 2 (``ecg`` as base64 int16 per lead).
    device_id : str
        Device identifier, matching :data:`DEVICE_ID_PATTERN`.
    seq : int
        Per-device sequence number, strictly increasing by 1 per frame (never reused, also across
        device reboots); the idempotence key with ``device_id``.
    start_time_s : float
        Device-clock time of the first sample, Unix epoch seconds (may be skewed).
    fs_hz : float
        Sampling rate in Hz, within :data:`FS_RANGE_HZ`.
    duration_s : float
        Nominal frame length; each lead holds ``round(duration_s * fs_hz)`` samples.
    lead_names : list of str
        One name per lead (``"MLII"``, ``"V5"``...), unique.
    adc_bits : int
        ADC resolution; counts lie in ``[0, 2**adc_bits)``.
    adc_gain : list of float
        Counts per mV, per lead (> 0).
    adc_baseline : list of int
        Count at 0 mV, per lead.
    ecg : list
        ADC counts as on the wire: ``ecg[lead][sample]`` integers (v1) or one base64 string
        per lead (v2); :meth:`ecg_counts` gives them as an array for both.
    vitals : list of VitalReading
        Vital signs measured during (or shortly before) this frame, each with its own time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1, 2] = 1
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    seq: Annotated[StrictInt, Field(ge=0, lt=2**63)]
    start_time_s: float
    fs_hz: float
    duration_s: float
    lead_names: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=16)]], Field(min_length=1, max_length=16)
    ]
    adc_bits: StrictInt
    adc_gain: list[float]
    adc_baseline: list[StrictInt]
    # lists of StrictInt (v1) or base64 strings (v2), checked in one pass by ``_check``
    ecg: list[Any]
    vitals: Annotated[list[VitalReading], Field(max_length=256)] = []
    # the counts as an int64 array (n_leads, n_samples), made once by the validator
    _cache: _Derived = PrivateAttr(default_factory=lambda: _Derived())

    @model_validator(mode="after")
    def _check(self) -> Frame:
        leads = _leads_v2(self.ecg) if self.v == 2 else _leads_v1(self.ecg)
        _finite("start_time_s", self.start_time_s)
        _finite("duration_s", self.duration_s)
        _finite("fs_hz", self.fs_hz)
        lo_fs, hi_fs = FS_RANGE_HZ
        if not lo_fs <= self.fs_hz <= hi_fs:
            raise _err("bad_fs", f"fs_hz={self.fs_hz} outside [{lo_fs}, {hi_fs}] Hz")
        lo_t, hi_t = _TIME_RANGE_S
        if not lo_t <= self.start_time_s <= hi_t:
            raise _err(
                "out_of_range", f"start_time_s={self.start_time_s} is not a plausible device clock"
            )
        if not 0 < self.duration_s <= MAX_FRAME_DURATION_S:
            raise _err(
                "out_of_range", f"duration_s={self.duration_s} outside (0, {MAX_FRAME_DURATION_S}]"
            )
        n_leads = len(self.lead_names)
        if len(set(self.lead_names)) != n_leads:
            raise _err("lead_mismatch", f"lead_names must be unique, got {self.lead_names}")
        for name, seq in (
            ("ecg", self.ecg),
            ("adc_gain", self.adc_gain),
            ("adc_baseline", self.adc_baseline),
        ):
            if len(seq) != n_leads:
                raise _err(
                    "lead_mismatch", f"{name} has {len(seq)} entries for {n_leads} lead_names"
                )
        if any(isinstance(a, _Overflow) for a in leads):
            lengths = {len(lead) for lead in self.ecg}
        else:
            lengths = {a.size for a in leads}  # type: ignore[union-attr]
        if len(lengths) != 1:
            raise _err("lead_mismatch", f"ecg leads have different lengths {sorted(lengths)}")
        n = lengths.pop()
        expected = self.duration_s * self.fs_hz
        if n == 0 or abs(n - expected) > 0.5 + 1e-9:
            raise _err(
                "length_mismatch",
                f"ecg has {n} samples per lead; fs_hz={self.fs_hz} x duration_s={self.duration_s} needs {round(expected)}",
            )
        if not 8 <= self.adc_bits <= 15:
            raise _err("out_of_range", f"adc_bits={self.adc_bits} outside [8, 15]")
        top = 2**self.adc_bits - 1
        for i, g in enumerate(self.adc_gain):
            _finite(f"adc_gain[{i}]", g)
            if not 0 < g <= 1e6:
                raise _err("out_of_range", f"adc_gain[{i}]={g} must be in (0, 1e6] counts/mV")
        for i, b in enumerate(self.adc_baseline):
            if not 0 <= b <= top:
                raise _err(
                    "out_of_range",
                    f"adc_baseline[{i}]={b} outside the {self.adc_bits}-bit ADC range [0, {top}]",
                )
        if any(isinstance(a, _Overflow) for a in leads):
            raise _err(
                "out_of_range",
                f"ecg holds a count beyond 64 bits, outside the {self.adc_bits}-bit ADC range "
                f"[0, {top}]",
            )
        # one row per lead (converting each list on its own is about twice as fast as the
        # nested list at once; the same values)
        counts = np.stack(leads)  # type: ignore[arg-type]
        counts.flags.writeable = False
        self._cache.counts = counts
        lo, hi = int(counts.min()), int(counts.max())
        if lo < 0 or hi > top:
            raise _err(
                "out_of_range",
                f"ecg counts span [{lo}, {hi}], outside the {self.adc_bits}-bit ADC range [0, {top}]",
            )
        for i, vital in enumerate(self.vitals):
            if abs(vital.time_s - self.start_time_s) > _MAX_VITAL_OFFSET_S:
                raise _err(
                    "out_of_range",
                    f"vitals[{i}].time_s is {vital.time_s - self.start_time_s:+.1f} s from the frame start "
                    f"(limit {_MAX_VITAL_OFFSET_S:.0f} s)",
                )
        return self

    @classmethod
    def from_counts(
        cls,
        counts: np.ndarray,
        *,
        device_id: str,
        seq: int,
        start_time_s: float,
        fs_hz: float,
        lead_names: tuple[str, ...] | list[str],
        adc_bits: int,
        adc_gain: tuple[float, ...] | list[float],
        adc_baseline: tuple[int, ...] | list[int],
        vitals: tuple[VitalReading, ...] | list[VitalReading] = (),
        version: int = 1,
    ) -> Frame:
        """Build (and validate) a frame from counts of shape ``(n_samples, n_leads)``.

        ``duration_s`` is ``n_samples / fs_hz``; ``version`` picks the wire encoding of the ECG
        (:data:`PAYLOAD_VERSIONS`). Raises :class:`FrameRejected` like :func:`parse_frame`.
        """
        if version not in PAYLOAD_VERSIONS:
            raise ValueError(f"version must be one of {PAYLOAD_VERSIONS}, got {version!r}")
        counts = np.asarray(counts)
        if counts.ndim != 2:
            raise ValueError(f"counts must be 2-D (n_samples, n_leads), got shape {counts.shape}")
        if not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"counts must be integers (ADC counts), got dtype {counts.dtype}")
        if version == 2:
            if counts.size and (int(counts.min()) < -(2**15) or int(counts.max()) >= 2**15):
                raise FrameRejected(
                    reason="out_of_range", detail="ecg counts do not fit the 16-bit v2 encoding"
                )
            ecg: list[Any] = _encode_v2(counts.T)
        else:
            ecg = counts.T.astype(np.int64).tolist()
        data = {
            "v": version,
            "device_id": device_id,
            "seq": int(seq),
            "start_time_s": float(start_time_s),
            "fs_hz": float(fs_hz),
            "duration_s": counts.shape[0] / float(fs_hz) if fs_hz else 0.0,
            "lead_names": list(lead_names),
            "adc_bits": int(adc_bits),
            "adc_gain": [float(g) for g in adc_gain],
            "adc_baseline": [int(b) for b in adc_baseline],
            "ecg": ecg,
            "vitals": list(vitals),
        }
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _rejection(exc) from None

    # ---- derived views -------------------------------------------------------------------
    @property
    def n_leads(self) -> int:
        """Number of leads."""
        return len(self.lead_names)

    @property
    def n_samples(self) -> int:
        """Samples per lead."""
        return int(self.ecg_counts().shape[1])

    @property
    def start_time(self) -> datetime:
        """:attr:`start_time_s` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.start_time_s, tz=UTC)

    def counts(self) -> np.ndarray:
        """ADC counts, shape ``(n_samples, n_leads)``, int16."""
        return self.ecg_counts().astype(np.int16).T.copy()

    def ecg_counts(self) -> np.ndarray:
        """ADC counts as on the wire, shape ``(n_leads, n_samples)``, int64, read-only (the
        array the validator made; the counts fit int16, see the module docstring)."""
        cached = self._cache.counts
        if cached is None:  # a frame built without validation (model_construct)
            leads = _leads_v2(self.ecg) if self.v == 2 else _leads_v1(self.ecg)
            cached = np.stack(leads)  # type: ignore[arg-type]
            cached.flags.writeable = False
            self._cache.counts = cached
        return cached

    def signal_mv(self) -> np.ndarray:
        """ECG in mV, shape ``(n_samples, n_leads)``, float64."""
        counts = self.ecg_counts().T
        return (counts - np.asarray(self.adc_baseline, dtype=np.float64)) / np.asarray(
            self.adc_gain, dtype=np.float64
        )

    def to_json(self) -> bytes:
        """The wire payload (compact UTF-8 JSON)."""
        return self.model_dump_json().encode()


def _reject_constant(name: str) -> Any:
    raise FrameRejected(reason="non_finite", detail=f"JSON constant {name} is not allowed")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FrameRejected(reason="non_finite", detail=f"number {text} overflows to {value}")
    return value


def parse_frame(raw: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Validate one MQTT payload and return the :class:`Frame`.

    Parameters
    ----------
    raw : bytes
        The payload (UTF-8 JSON).
    max_bytes : int
        Size limit; larger payloads are refused before parsing.

    Returns
    -------
    Frame

    Raises
    ------
    FrameRejected
        With ``reason`` in :data:`REJECT_REASONS`: ``oversized``, ``malformed_json`` (not UTF-8
        JSON, or not an object), ``schema`` (missing/unknown fields, wrong types),
        ``non_finite`` (NaN/Infinity), ``lead_mismatch`` (lead counts or lengths disagree),
        ``length_mismatch`` (samples vs ``fs_hz * duration_s``), ``out_of_range`` (vitals outside
        physiologic bounds, counts outside the ADC range, implausible clock) or ``bad_fs``.

    Examples
    --------
    >>> f = parse_frame(b'{"device_id": "d1", "seq": 0, "start_time_s": 1.7e9, "fs_hz": 100,'
    ...                 b' "duration_s": 0.05, "lead_names": ["I"], "adc_bits": 11,'
    ...                 b' "adc_gain": [200], "adc_baseline": [1024], "ecg": [[1024, 1224, 1024, 824, 1024]]}')
    >>> f.signal_mv()[:, 0].tolist()
    [0.0, 1.0, 0.0, -1.0, 0.0]
    >>> parse_frame(b'{"seq": 1}')
    Traceback (most recent call last):
    ...
    heartline.ingestion.payloads.FrameRejected: frame rejected (schema): device_id: Field required; ...
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"raw must be bytes, got {type(raw).__name__}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    if len(raw) > max_bytes:
        raise FrameRejected(
            reason="oversized",
            detail=f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit",
        )
    # Fast path: pydantic-core's JSON parser (about twice as fast as ``json``). It differs from
    # the reference path below only on payloads that are refused or that it cannot read (it
    # reads 1e999 as inf, which every float field's check refuses; it refuses NaN and lone
    # surrogates), so any failure here is decided again by the reference path, which names
    # the reason; valid frames never take it.
    try:
        data = from_json(
            raw if not isinstance(raw, memoryview) else bytes(raw), allow_inf_nan=False
        )
        if isinstance(data, dict):
            return Frame.model_validate(data)
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        pass
    return _parse_frame_reference(raw)


def _parse_frame_reference(raw: bytes | bytearray | memoryview) -> Frame:
    """:func:`parse_frame` with the standard library's JSON parser: decides every refusal."""
    try:
        data = json.loads(
            bytes(raw).decode("utf-8"), parse_constant=_reject_constant, parse_float=_parse_float
        )
    except FrameRejected:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FrameRejected(reason="malformed_json", detail=str(exc)) from None
    if not isinstance(data, dict):
        raise FrameRejected(
            reason="malformed_json",
            detail=f"payload must be a JSON object, got {type(data).__name__}",
        )
    try:
        return Frame.model_validate(data)
    except ValidationError as exc:
        raise _rejection(exc) from None


def _rejection(exc: ValidationError) -> FrameRejected:
    errors = exc.errors(include_url=False)
    custom = [e for e in errors if e["type"] in REJECT_REASONS]
    first = custom[0] if custom else errors[0]
    reason = str(first["type"]) if custom else "schema"
    ordered = [first, *[e for e in errors if e is not first]][:3]
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'frame'}: {e['msg']}" for e in ordered
    )
    return FrameRejected(reason=reason, detail=detail)


def check_frame_time(
    frame: Frame,
    *,
    now_s: float,
    max_ahead_s: float | None = 300.0,
    max_age_s: float | None = None,
) -> None:
    """Refuse a frame dated too far from ``now_s`` (Unix seconds) as ``clock_skew``.

    A frame may start at most ``max_ahead_s`` after ``now_s`` and end at most ``max_age_s``
    before it (``None``: no limit on that side), so that one frame dated 2099 never becomes a
    patient's "latest" data.

    Raises
    ------
    FrameRejected
        With reason ``"clock_skew"``.

    >>> f = Frame.from_counts([[1024, 1024]], device_id="d1", seq=0, start_time_s=4.07e9,
    ...     fs_hz=360.0, lead_names=("MLII", "V5"), adc_bits=11, adc_gain=(200.0, 200.0),
    ...     adc_baseline=(1024, 1024))
    >>> check_frame_time(f, now_s=1.8e9)
    Traceback (most recent call last):
    ...
    heartline.ingestion.payloads.FrameRejected: frame rejected (clock_skew): start_time_s=...
    """
    if max_ahead_s is not None and frame.start_time_s > now_s + max_ahead_s:
        raise FrameRejected(
            reason="clock_skew",
            detail=(
                f"start_time_s={frame.start_time_s:.3f} is {frame.start_time_s - now_s:.0f} s"
                f" ahead of the server clock (at most {max_ahead_s:g} s)"
            ),
        )
    if max_age_s is not None and frame.start_time_s + frame.duration_s < now_s - max_age_s:
        raise FrameRejected(
            reason="clock_skew",
            detail=(
                f"the frame ended {now_s - frame.start_time_s - frame.duration_s:.0f} s before"
                f" the server clock (at most {max_age_s:g} s)"
            ),
        )
