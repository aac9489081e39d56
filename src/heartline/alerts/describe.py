"""Human-readable alarm names, values and priorities (one place, used by the API, FHIR and UI).

Pure functions over an alert's kind, stored severity and evidence dict, as the alert engine
(:mod:`heartline.alerts.engine`) stores them: ``{"trigger"|"peak"|"latest": {"beat_ids",
"times_s", "sample_idx", "values"}, "n_episodes", "last_evidence_s", "message", ...}``. The
engine is not consulted or changed: a stored alert row is enough.

Priorities follow IEC 60601-1-8 (alarm systems in medical electrical equipment): ``high``
(immediate response, shown red), ``medium`` (prompt response, yellow) and ``low`` (awareness,
cyan). IEC 60601-2-27 (ECG monitors) lists asystole, ventricular fibrillation and ventricular
tachycardia as high-priority alarms: those kinds are ``high`` whatever their stored severity.
Otherwise the stored severity maps ``critical -> high``, ``high -> medium``, ``warning`` and
``info -> low``. Technical alarm conditions (signal quality, no data, lead off) keep their
priority but carry ``category="technical"`` so that they are shown apart from physiological
alarms.

>>> d = describe_alert("frequent_pvc", "warning", {"peak": {"values": {"max_per_min": 14}}})
>>> d.title, d.priority, d.category
('Frequent PVCs: 14/min', 'low', 'physiological')
>>> describe_alert("vt", "high", {"peak": {"values": {"n_beats": 7, "rate_bpm": 182.4}}}).title
'VT: 7 beats at 182 bpm'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "KIND_NAMES",
    "PRIORITIES",
    "PRIORITY_COLOURS",
    "TECHNICAL_KINDS",
    "AlarmDescription",
    "AlarmValue",
    "alarm_priority",
    "alarm_sort_key",
    "describe_alert",
    "format_duration",
]

Priority = Literal["high", "medium", "low"]
Category = Literal["physiological", "technical"]

#: IEC 60601-1-8 priorities, most urgent first.
PRIORITIES: tuple[str, ...] = ("high", "medium", "low")
#: IEC 60601-1-8 colours of the alarm indicator (technical notices use a neutral blue-grey).
PRIORITY_COLOURS: Mapping[str, str] = {
    "high": "#e5322d",
    "medium": "#f2c500",
    "low": "#22c3e6",
    "technical": "#8fa3b8",
}
#: Kinds that are technical alarm conditions (equipment, signal), not physiological ones.
TECHNICAL_KINDS: frozenset[str] = frozenset(
    {"signal_quality", "no_data", "lead_off", "device_offline", "battery_low"}
)
#: Kinds that IEC 60601-2-27 makes high priority whatever the stored severity.
_ALWAYS_HIGH: frozenset[str] = frozenset({"vf", "vt"})
_SEVERITY_PRIORITY: Mapping[str, Priority] = {
    "critical": "high",
    "high": "medium",
    "warning": "low",
    "info": "low",
}

#: Display name of each alarm kind (unknown kinds are shown with their code, capitalised).
KIND_NAMES: Mapping[str, str] = {
    "bradycardia": "Bradycardia",
    "tachycardia": "Tachycardia",
    "pause": "Pause",
    "v_couplet": "Ventricular couplet",
    "v_run": "Ventricular run",
    "vt": "VT",
    "ventricular_bigeminy": "Ventricular bigeminy",
    "ventricular_trigeminy": "Ventricular trigeminy",
    "frequent_pvc": "Frequent PVCs",
    "frequent_sveb": "Frequent SVEBs",
    "af_like": "AF",
    "vf": "VF",
    "signal_quality": "Poor ECG signal",
    "news2": "NEWS2",
    "no_data": "No data",
    "lead_off": "Lead off",
}


@dataclass(frozen=True)
class AlarmValue:
    """One measured value of an alarm, with its unit (``""`` for counts)."""

    name: str
    value: float | int | str | bool
    unit: str = ""


@dataclass(frozen=True)
class AlarmDescription:
    """What a nurse reads: ``title`` ("VT: 7 beats at 182 bpm"), ``priority``, ``category``."""

    kind: str
    name: str
    title: str
    priority: Priority
    category: Category
    values: tuple[AlarmValue, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "name": self.name,
            "title": self.title,
            "priority": self.priority,
            "category": self.category,
            "values": [{"name": v.name, "value": v.value, "unit": v.unit} for v in self.values],
        }


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"2 min 10 s"``, ``"1 h 05 min"``.

    >>> format_duration(130.4), format_duration(7.04), format_duration(3900)
    ('2 min 10 s', '7 s', '1 h 05 min')
    """
    s = max(0, round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min" if r == 0 else f"{m} min {r} s"
    h, r = divmod(s, 3600)
    return f"{h} h {r // 60:02d} min"


def alarm_priority(kind: str, severity: str, evidence: Mapping[str, Any] | None = None) -> Priority:
    """IEC 60601-1-8 priority of an alarm (see the module docstring).

    Raises
    ------
    ValueError
        ``severity`` is not one of info, warning, high, critical.
    """
    if severity not in _SEVERITY_PRIORITY:
        raise ValueError(f"unknown severity {severity!r}; valid: {sorted(_SEVERITY_PRIORITY)}")
    if kind in _ALWAYS_HIGH:
        return "high"
    if kind == "pause" and bool(_values(evidence or {}).get("asystole")):
        return "high"
    return _SEVERITY_PRIORITY[severity]


def alarm_sort_key(
    *, priority: str, category: str, is_open: bool, acknowledged: bool, start: datetime
) -> tuple[int, int, int, int, float]:
    """Sort key: priority, physiological before technical, open unacknowledged first, newest first."""
    return (
        PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES),
        0 if category == "physiological" else 1,
        0 if is_open else 1,
        1 if acknowledged else 0,
        -start.timestamp(),
    )


def _values(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The measured values of the alarm's worst episode (``peak``), else the latest or first."""
    out: dict[str, Any] = {}
    for part in ("trigger", "latest", "peak"):  # later parts win
        sub = evidence.get(part)
        if isinstance(sub, Mapping) and isinstance(sub.get("values"), Mapping):
            out.update(sub["values"])
    if isinstance(evidence.get("values"), Mapping):
        out = {**evidence["values"], **out}
    return out


def _num(values: Mapping[str, Any], key: str) -> float | None:
    v = values.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _span_s(
    evidence: Mapping[str, Any], start: datetime | None, end: datetime | None
) -> float | None:
    """The alarm's duration so far: end (or last evidence) minus start."""
    if start is None:
        return None
    if end is not None:
        return (end - start).total_seconds()
    last = evidence.get("last_evidence_s")
    if isinstance(last, (int, float)) and not isinstance(last, bool):
        return max(0.0, float(last) - start.timestamp())
    return None


def _rate(kind: str, v: Mapping[str, Any], dur: float | None) -> tuple[str, list[AlarmValue]]:
    ext, mean = _num(v, "extreme_bpm"), _num(v, "mean_bpm")
    word = "lowest" if kind == "bradycardia" else "highest"
    parts, vals = [], []
    if ext is not None:
        parts.append(f"{ext:.0f} bpm")
        vals.append(AlarmValue(f"{word} rate", round(ext), "bpm"))
    if mean is not None:
        vals.append(AlarmValue("mean rate", round(mean), "bpm"))
    if dur is not None:
        parts.append(f"for {format_duration(dur)}")
        vals.append(AlarmValue("duration", round(dur, 1), "s"))
    return " ".join(parts), vals


def _describe_values(
    kind: str, v: Mapping[str, Any], ev: Mapping[str, Any], dur: float | None
) -> tuple[str, list[AlarmValue]]:
    """``(text after the name, values)`` for each kind."""
    n_beats = _num(v, "n_beats")
    rate = _num(v, "rate_bpm")
    if kind in ("bradycardia", "tachycardia"):
        return _rate(kind, v, dur)
    if kind == "pause":
        rr = _num(v, "rr_s")
        vals = [AlarmValue("longest RR interval", round(rr, 2), "s")] if rr is not None else []
        return (f"no beat for {rr:.1f} s" if rr is not None else ""), vals
    if kind in ("vt", "v_run", "v_couplet"):
        vals, parts = [], []
        if n_beats is not None and kind != "v_couplet":
            parts.append(f"{n_beats:.0f} beats")
            vals.append(AlarmValue("ventricular beats", int(n_beats)))
        if rate is not None and rate != float("inf"):
            parts.append(f"at {rate:.0f} bpm")
            vals.append(AlarmValue("rate", round(rate), "bpm"))
        if kind == "vt" and v.get("sustained"):
            vals.append(AlarmValue("sustained", True))
        return " ".join(parts), vals
    if kind in ("ventricular_bigeminy", "ventricular_trigeminy"):
        c = _num(v, "cycles")
        return (f"{c:.0f} cycles" if c is not None else ""), (
            [AlarmValue("cycles", int(c))] if c is not None else []
        )
    if kind in ("frequent_pvc", "frequent_sveb"):
        pm = _num(v, "max_per_min")
        return (f"{pm:.0f}/min" if pm is not None else ""), (
            [AlarmValue("beats per minute", round(pm, 1), "/min")] if pm is not None else []
        )
    if kind == "af_like":
        d = dur if dur is not None else _num(v, "duration_s")
        mean = _num(v, "mean_bpm")
        vals = []
        text = f"for {format_duration(d)}" if d is not None else ""
        if d is not None:
            vals.append(AlarmValue("duration", round(d, 1), "s"))
        if mean is not None:
            text += f" (mean {mean:.0f} bpm)"
            vals.append(AlarmValue("mean rate", round(mean), "bpm"))
        for key, name in (("nrmssd", "normalised RMSSD"), ("shannon_entropy", "Shannon entropy")):
            x = _num(v, key)
            if x is not None:
                vals.append(AlarmValue(name, round(x, 3)))
        return text.strip(), vals
    if kind in ("vf", "signal_quality", "no_data", "lead_off"):
        d = dur if dur is not None else _num(v, "duration_s")
        return (f"for {format_duration(d)}" if d is not None else ""), (
            [AlarmValue("duration", round(d, 1), "s")] if d is not None else []
        )
    if kind == "news2":
        total, band = _num(v, "total"), v.get("band")
        if total is None:
            return "", []
        text = f"{total:.0f}" + (f" ({band} clinical risk)" if isinstance(band, str) else "")
        if v.get("complete") is False:
            text += ", partial"
        vals = [AlarmValue("aggregate score", int(total))]
        subs = v.get("subscores")
        if isinstance(subs, Mapping):
            for name, sub in subs.items():
                if isinstance(sub, Mapping) and isinstance(sub.get("score"), int):
                    vals.append(AlarmValue(f"{name} score", int(sub["score"])))
        return text, vals
    generic = [AlarmValue(k, x) for k, x in v.items() if isinstance(x, (int, float, str, bool))]
    return "", generic


_SEPARATOR: Mapping[str, Callable[[str, str], str]] = {
    "news2": lambda name, text: f"{name} {text}",
}


def describe_alert(
    kind: str,
    severity: str,
    evidence: Mapping[str, Any] | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> AlarmDescription:
    """Name, one-line title with values, priority and category of a stored alert.

    Parameters
    ----------
    kind : str
        The alert type (``"vt"``, ``"af_like"``...).
    severity : str
        Stored severity (info, warning, high, critical).
    evidence : mapping or None
        The stored evidence (engine layout; unknown keys are ignored).
    start, end : datetime, optional
        The alert's span; durations of AF, VF and rate alarms come from it (``end`` None: the
        alert is open and ``evidence["last_evidence_s"]`` ends it).

    Returns
    -------
    AlarmDescription
    """
    ev: Mapping[str, Any] = evidence if isinstance(evidence, Mapping) else {}
    values = _values(ev)
    name = KIND_NAMES.get(kind, kind.replace("_", " ").capitalize())
    if kind == "pause" and values.get("asystole"):
        name = "Asystole"
    if kind == "vt" and values.get("sustained"):
        name = "Sustained VT"
    text, vals = _describe_values(kind, values, ev, _span_s(ev, start, end))
    joiner = _SEPARATOR.get(kind, lambda n, t: f"{n} {t}" if t.startswith("for ") else f"{n}: {t}")
    title = joiner(name, text) if text else name
    category: Category = (
        "technical"
        if kind in TECHNICAL_KINDS or ev.get("category") == "technical"
        else "physiological"
    )
    return AlarmDescription(
        kind=kind,
        name=name,
        title=title,
        priority=alarm_priority(kind, severity, ev),
        category=category,
        values=tuple(vals),
    )
