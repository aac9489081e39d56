"""National Early Warning Score 2 (NEWS2) from the vitals a wearable provides.

Scores follow the NEWS2 chart of the Royal College of Physicians (2017):

=================  =====  =======  =======  =========  =========  =======  =====
Parameter            3       2        1         0          1         2       3
=================  =====  =======  =======  =========  =========  =======  =====
Respiration /min   <= 8            9-11     12-20                 21-24    >= 25
SpO2 scale 1 %     <= 91  92-93    94-95    >= 96
SpO2 scale 2 %     <= 83  84-85    86-87    88-92,     93-94 O2   95-96 O2 >= 97 O2
                                            >= 93 air
Air or oxygen              oxygen           air
Systolic BP mmHg   <= 90  91-100   101-110  111-219                        >= 220
Pulse /min         <= 40           41-50    51-90      91-110     111-130  >= 131
Consciousness                               Alert                          C,V,P,U
Temperature degC   <= 35.0         35.1-36.0 36.1-38.0 38.1-39.0  >= 39.1
=================  =====  =======  =======  =========  =========  =======  =====

Clinical risk: aggregate 0-4 *low*; a single parameter scoring 3 (with an aggregate <= 4)
*low-medium*; 5-6 *medium* (urgent response threshold); >= 7 *high* (emergency response).

Values are rounded as they are charted before scoring (integers for respiration rate, SpO2,
blood pressure and pulse; 0.1 degC for temperature, rounding halves up), so a continuous reading of
90.4 bpm scores as 90 and 90.5 as 91.

Missing parameters
------------------
A wearable usually has no respiration rate, consciousness level or oxygen-delivery status. A
parameter that is ``None`` is scored 0 and listed in :attr:`News2Result.missing`; because every
sub-score is >= 0, the total is then a *lower bound* on the full NEWS2 and
:attr:`News2Result.complete` is False. Unknown supplemental oxygen is taken as room air (the
lower bound for both SpO2 scales). Report partial scores as such: RCP 2017 defines NEWS2 on the
full set of seven parameters.

Skin temperature
----------------
Wearables measure skin temperature, typically 2-4 degC below core temperature and strongly
affected by ambient conditions; scored as core temperature it would flag most patients as
hypothermic (<= 35.0 degC scores 3). A reading with ``temperature_site="skin"`` is therefore
*not scored* unless the caller gives ``skin_to_core_offset_c`` (core estimate = skin + offset,
calibrated for the device and site); without it the temperature is listed as missing. No
offset is assumed by default because no single value is valid across devices and sites.

References
----------
Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the assessment
of acute-illness severity in the NHS. Updated report of a working party. London: RCP, 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

__all__ = [
    "RISK_BANDS",
    "News2Result",
    "News2Subscore",
    "Vitals",
    "news2",
    "risk_band",
    "score_consciousness",
    "score_pulse",
    "score_respiration_rate",
    "score_spo2",
    "score_supplemental_oxygen",
    "score_systolic_bp",
    "score_temperature",
]

#: Clinical risk bands, lowest first.
RISK_BANDS: tuple[str, ...] = ("low", "low-medium", "medium", "high")

_CONSCIOUSNESS = {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}


def _round(value: float, places: int, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    quantum = Decimal(1).scaleb(-places)
    return Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP)


def _nonneg(value: float, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def score_respiration_rate(rate_per_min: float) -> int:
    """NEWS2 respiration-rate sub-score (breaths per minute).

    >>> [score_respiration_rate(x) for x in (8, 9, 11, 12, 20, 21, 24, 25)]
    [3, 1, 1, 0, 0, 2, 2, 3]
    """
    _nonneg(rate_per_min, "respiration_rate_per_min")
    v = _round(rate_per_min, 0, "respiration_rate_per_min")
    if v <= 8:
        return 3
    if v <= 11:
        return 1
    if v <= 20:
        return 0
    if v <= 24:
        return 2
    return 3


def score_spo2(
    spo2_pct: float, *, scale: Literal[1, 2] = 1, supplemental_oxygen: bool = False
) -> int:
    """NEWS2 SpO2 sub-score on scale 1 (default) or scale 2 (hypercapnic respiratory failure).

    Scale 2 must be chosen by a clinician; on it, saturations >= 93 % score only when the patient
    is on supplemental oxygen.

    >>> [score_spo2(x) for x in (91, 92, 93, 94, 95, 96)]
    [3, 2, 2, 1, 1, 0]
    >>> [score_spo2(x, scale=2, supplemental_oxygen=True) for x in (87, 92, 93, 95, 97)]
    [1, 0, 1, 2, 3]
    """
    if not (isinstance(spo2_pct, int | float) and 0 <= spo2_pct <= 100):
        raise ValueError(f"spo2_pct must lie in [0, 100] %, got {spo2_pct!r}")
    v = _round(spo2_pct, 0, "spo2_pct")
    if scale == 1:
        if v <= 91:
            return 3
        if v <= 93:
            return 2
        if v <= 95:
            return 1
        return 0
    if scale != 2:
        raise ValueError(f"scale must be 1 or 2, got {scale!r}")
    if v <= 83:
        return 3
    if v <= 85:
        return 2
    if v <= 87:
        return 1
    if v <= 92 or not supplemental_oxygen:
        return 0
    if v <= 94:
        return 1
    if v <= 96:
        return 2
    return 3


def score_supplemental_oxygen(on_oxygen: bool) -> int:
    """NEWS2 air-or-oxygen sub-score: 2 on supplemental oxygen, 0 on air.

    >>> score_supplemental_oxygen(True), score_supplemental_oxygen(False)
    (2, 0)
    """
    return 2 if bool(on_oxygen) else 0


def score_systolic_bp(systolic_mmhg: float) -> int:
    """NEWS2 systolic blood pressure sub-score (mmHg).

    >>> [score_systolic_bp(x) for x in (90, 91, 100, 101, 110, 111, 219, 220)]
    [3, 2, 2, 1, 1, 0, 0, 3]
    """
    _nonneg(systolic_mmhg, "systolic_bp_mmhg")
    v = _round(systolic_mmhg, 0, "systolic_bp_mmhg")
    if v <= 90:
        return 3
    if v <= 100:
        return 2
    if v <= 110:
        return 1
    if v <= 219:
        return 0
    return 3


def score_pulse(pulse_bpm: float) -> int:
    """NEWS2 pulse sub-score (beats per minute).

    >>> [score_pulse(x) for x in (40, 41, 50, 51, 90, 91, 110, 111, 130, 131)]
    [3, 1, 1, 0, 0, 1, 1, 2, 2, 3]
    """
    _nonneg(pulse_bpm, "heart_rate_bpm")
    v = _round(pulse_bpm, 0, "heart_rate_bpm")
    if v <= 40:
        return 3
    if v <= 50:
        return 1
    if v <= 90:
        return 0
    if v <= 110:
        return 1
    if v <= 130:
        return 2
    return 3


def score_consciousness(level: str) -> int:
    """NEWS2 consciousness sub-score on ACVPU: ``"A"`` (alert) 0; new confusion ``"C"``, voice
    ``"V"``, pain ``"P"`` or unresponsive ``"U"`` 3.

    >>> score_consciousness("A"), score_consciousness("C")
    (0, 3)
    """
    key = str(level).strip().upper()[:1]
    if key not in _CONSCIOUSNESS:
        raise ValueError(
            f"consciousness must be one of {sorted(_CONSCIOUSNESS)} (ACVPU), got {level!r}"
        )
    return _CONSCIOUSNESS[key]


def score_temperature(temperature_c: float) -> int:
    """NEWS2 temperature sub-score (core temperature, degC, charted to 0.1).

    >>> [score_temperature(x) for x in (35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1)]
    [3, 1, 1, 0, 0, 1, 1, 2]
    """
    v = _round(temperature_c, 1, "temperature_c")
    if v <= Decimal("35.0"):
        return 3
    if v <= Decimal("36.0"):
        return 1
    if v <= Decimal("38.0"):
        return 0
    if v <= Decimal("39.0"):
        return 1
    return 2


def risk_band(total: int, *, max_subscore: int) -> str:
    """RCP 2017 clinical risk band from the aggregate score and the largest single sub-score.

    >>> risk_band(3, max_subscore=1), risk_band(3, max_subscore=3), risk_band(5, max_subscore=2), risk_band(7, max_subscore=3)
    ('low', 'low-medium', 'medium', 'high')
    """
    if total < 0 or max_subscore < 0:
        raise ValueError(f"total and max_subscore must be >= 0, got {total}, {max_subscore}")
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if max_subscore >= 3:
        return "low-medium"
    return "low"


@dataclass(frozen=True)
class Vitals:
    """One set of observations (``None`` = not measured).

    Attributes
    ----------
    heart_rate_bpm, spo2_pct, systolic_bp_mmhg, respiration_rate_per_min : float or None
    temperature_c : float or None
    temperature_site : {"core", "skin"}
        Where ``temperature_c`` was measured (see the module notes on skin temperature).
    consciousness : str or None
        ACVPU level.
    supplemental_oxygen : bool or None
        None = unknown (scored as air).
    spo2_scale : {1, 2}
    """

    heart_rate_bpm: float | None = None
    spo2_pct: float | None = None
    temperature_c: float | None = None
    temperature_site: Literal["core", "skin"] = "core"
    systolic_bp_mmhg: float | None = None
    respiration_rate_per_min: float | None = None
    consciousness: str | None = None
    supplemental_oxygen: bool | None = None
    spo2_scale: Literal[1, 2] = 1

    def __post_init__(self) -> None:
        if self.temperature_site not in ("core", "skin"):
            raise ValueError(
                f"temperature_site must be 'core' or 'skin', got {self.temperature_site!r}"
            )
        if self.spo2_scale not in (1, 2):
            raise ValueError(f"spo2_scale must be 1 or 2, got {self.spo2_scale!r}")


@dataclass(frozen=True)
class News2Subscore:
    """One NEWS2 parameter: the value scored (after any skin offset) and its sub-score."""

    parameter: str
    value: float | str | bool | None
    score: int
    note: str = ""


@dataclass(frozen=True)
class News2Result:
    """NEWS2 aggregate.

    Attributes
    ----------
    subscores : tuple of News2Subscore
        The scored parameters.
    total : int
        Aggregate score (a lower bound when ``complete`` is False).
    band : str
        One of :data:`RISK_BANDS`.
    missing : tuple of str
        Parameters not measured (scored 0).
    complete : bool
        All seven parameters were measured.
    """

    subscores: tuple[News2Subscore, ...]
    total: int
    band: str
    missing: tuple[str, ...]
    complete: bool

    @property
    def max_subscore(self) -> int:
        """Largest single sub-score."""
        return max((s.score for s in self.subscores), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "total": self.total,
            "band": self.band,
            "complete": self.complete,
            "missing": list(self.missing),
            "subscores": {
                s.parameter: {
                    "value": s.value,
                    "score": s.score,
                    **({"note": s.note} if s.note else {}),
                }
                for s in self.subscores
            },
        }


_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "supplemental_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)


def news2(vitals: Vitals, *, skin_to_core_offset_c: float | None = None) -> News2Result:
    """NEWS2 sub-scores, aggregate and clinical risk band for one set of vitals.

    Parameters
    ----------
    vitals : Vitals
    skin_to_core_offset_c : float, optional
        Added to a skin temperature to estimate core temperature; without it a skin temperature
        is not scored (listed in ``missing``). Ignored for core temperatures.

    Returns
    -------
    News2Result

    >>> r = news2(Vitals(heart_rate_bpm=115, spo2_pct=93, temperature_c=38.4, systolic_bp_mmhg=105))
    >>> r.total, r.band, r.complete, r.missing
    (6, 'medium', False, ('respiration_rate', 'supplemental_oxygen', 'consciousness'))
    """
    subs: list[News2Subscore] = []
    missing: list[str] = []
    v = vitals
    if v.respiration_rate_per_min is None:
        missing.append("respiration_rate")
    else:
        subs.append(
            News2Subscore(
                "respiration_rate",
                float(v.respiration_rate_per_min),
                score_respiration_rate(v.respiration_rate_per_min),
            )
        )
    on_o2 = bool(v.supplemental_oxygen) if v.supplemental_oxygen is not None else False
    if v.spo2_pct is None:
        missing.append("spo2")
    else:
        subs.append(
            News2Subscore(
                "spo2",
                float(v.spo2_pct),
                score_spo2(v.spo2_pct, scale=v.spo2_scale, supplemental_oxygen=on_o2),
                f"scale {v.spo2_scale}",
            )
        )
    if v.supplemental_oxygen is None:
        # unknown oxygen status is scored as air (the lower bound) and listed as missing
        missing.append("supplemental_oxygen")
    else:
        subs.append(
            News2Subscore(
                "supplemental_oxygen",
                bool(v.supplemental_oxygen),
                score_supplemental_oxygen(v.supplemental_oxygen),
            )
        )
    if v.systolic_bp_mmhg is None:
        missing.append("systolic_bp")
    else:
        subs.append(
            News2Subscore(
                "systolic_bp", float(v.systolic_bp_mmhg), score_systolic_bp(v.systolic_bp_mmhg)
            )
        )
    if v.heart_rate_bpm is None:
        missing.append("pulse")
    else:
        subs.append(News2Subscore("pulse", float(v.heart_rate_bpm), score_pulse(v.heart_rate_bpm)))
    if v.consciousness is None:
        missing.append("consciousness")
    else:
        subs.append(
            News2Subscore(
                "consciousness", str(v.consciousness), score_consciousness(v.consciousness)
            )
        )
    if v.temperature_c is None:
        missing.append("temperature")
    elif v.temperature_site == "skin" and skin_to_core_offset_c is None:
        missing.append("temperature")
    else:
        note = ""
        temp = float(v.temperature_c)
        if v.temperature_site == "skin":
            if not math.isfinite(float(skin_to_core_offset_c)):  # type: ignore[arg-type]
                raise ValueError(
                    f"skin_to_core_offset_c must be finite, got {skin_to_core_offset_c!r}"
                )
            temp += float(skin_to_core_offset_c)  # type: ignore[arg-type]
            note = (
                f"core estimated from skin {v.temperature_c:.1f} degC + {skin_to_core_offset_c:g}"
            )
        subs.append(News2Subscore("temperature", temp, score_temperature(temp), note))
    total = sum(s.score for s in subs)
    band = risk_band(total, max_subscore=max((s.score for s in subs), default=0))
    order = {p: i for i, p in enumerate(_PARAMETERS)}
    missing.sort(key=order.__getitem__)
    return News2Result(tuple(subs), int(total), band, tuple(missing), complete=not missing)
