"""Per-patient alert engine: sliding-window rules, debouncing, escalation and acknowledgement.

:class:`AlertEngine` is fed incrementally (beats as frames are classified, signal-quality flags,
vitals) and turns the :mod:`heartline.alerts.rules` episodes into :class:`AlertEvent` objects
that storage persists (upsert by ``id``) and the service pushes to clinicians.

Semantics
---------
* **One alert per episode.** An episode of a kind extends the open alert of that kind when it
  starts no later than ``hold_off_s`` after that alert's last evidence; the alert keeps its id,
  its ``end_s`` stays ``None`` while it is open, and its evidence and severity are updated.
* **Closing and re-arming.** An open alert closes (``end_s`` = time of its last evidence) once the
  data time has moved ``hold_off_s`` past its last evidence with no new episode of its kind; only
  then can a new alert of that kind be raised (re-arm after the end plus the hold-off). NEWS2
  alerts close when a new vitals reading scores below the alerting band.
* **Escalation.** Severity only rises within an alert (``info < warning < high < critical``);
  e.g. VT that becomes sustained escalates from high to critical.
* **Acknowledgement.** :meth:`AlertEngine.acknowledge` records who acknowledged and when (data
  time). An acknowledged open alert keeps being extended silently and does not re-fire until it
  has ended; an escalation to a higher severity clears the acknowledgement (a new, worse
  condition needs a new acknowledgement; IEC 60601-1-8 escalation of alarm priority) unless
  ``EngineConfig.escalation_clears_ack`` is False.
* **Reporting of extensions.** Opening, escalation and closing are reported by the call that
  causes them. An open alert that is merely *extended* (new evidence, same severity) is updated
  in the engine at once (:meth:`AlertEngine.active_alerts` is always current) but reported as an
  ``"extended"`` :class:`AlertUpdate` at most once every ``EngineConfig.report_interval_s``
  seconds of data time per alert (10 s by default; 0 reports every change). Each report carries
  the alert's full current snapshot, a pending extension is reported once its interval has
  passed even without new evidence, and the closing update carries the final state, so a stored
  row (upserted from the updates) is exact once closed and at most ``report_interval_s`` (plus
  one engine call) behind the engine's running ``evidence`` while open.
* **Determinism.** No wall clock: every time comes from the data (beat times, ``now_s``). Alert
  ids are UUID-5 strings derived from the patient, kind, sequence number and start time.

References
----------
IEC 60601-1-8:2006+A1:2012 Medical electrical equipment - General requirements, tests and
guidance for alarm systems in medical electrical equipment (alarm conditions, priorities,
acknowledgement and escalation).

Why this file is long (about 1,250 lines): it is one stateful class (sliding window,
debouncing, escalation, acknowledgement, and the incremental rule skipping that
``tests/alerts/test_incremental.py`` and ``test_rule_skipping.py`` hold equal to a full
evaluation); the rules themselves live in :mod:`heartline.alerts.rules`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from heartline.alerts.news2 import RISK_BANDS, News2Result, Vitals, news2
from heartline.alerts.rules import (
    TECHNICAL_KINDS,
    Beat,
    BeatSeries,
    Episode,
    Reported,
    RuleConfig,
    Severity,
    evaluate_rules,
    heart_rate,
)
from heartline.alerts.rules.af import rr_irregular
from heartline.alerts.rules.events import json_value, read_only
from heartline.alerts.rules.rate import smoothed_rate

__all__ = ["NEWS2_SEVERITY", "AlertEngine", "AlertEvent", "AlertUpdate", "EngineConfig"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d2a8e-5d0c-4f7e-9a52-3c1b8e0d7a41")

#: NEWS2 clinical risk band -> alert severity (RCP 2017 response: low-medium urgent ward
#: review, medium urgent response, high emergency response). "low" raises no alert.
NEWS2_SEVERITY: Mapping[str, Severity] = {
    "low-medium": Severity.WARNING,
    "medium": Severity.HIGH,
    "high": Severity.CRITICAL,
}

#: What may raise the ``af_like`` alarm (see :attr:`EngineConfig.af_source`).
AF_SOURCES: tuple[str, ...] = ("auto", "rule", "model", "both")

Change = Literal["opened", "escalated", "closed", "extended", "acknowledged"]
_CHANGE_RANK = {"extended": 0, "acknowledged": 1, "closed": 2, "escalated": 3, "opened": 4}


@dataclass(frozen=True)
class AlertEvent:
    """One alert, as stored and shown (a snapshot; the engine replaces it as it evolves).

    Attributes
    ----------
    id : str
        Stable identifier (UUID string) to upsert on.
    patient_id : str
    kind : str
        A rule kind (:data:`heartline.alerts.rules.KINDS`) or ``"news2"``.
    category : str
        ``"physiological"`` or ``"technical"``.
    severity : Severity
    start_s : float
        Data time of the first evidence (s).
    end_s : float or None
        Data time of the last evidence once closed; ``None`` while ongoing.
    evidence : mapping
        JSON-ready: ``trigger`` (the episode that opened it), ``peak`` (the latest episode at the
        current severity), ``latest``, each with ``beat_ids``, ``times_s``, ``sample_idx`` and
        ``values``; plus ``n_episodes`` and ``last_evidence_s``.
    message : str
        Human-readable summary (from ``peak``).
    acknowledged_by : str or None
    acknowledged_at_s : float or None
        Data time of the acknowledgement.
    updated_s : float
        Data time of the last change.
    revision : int
        Incremented on every change (0 when opened).
    """

    id: str
    patient_id: str
    kind: str
    category: str
    severity: Severity
    start_s: float
    end_s: float | None
    evidence: Mapping[str, Any] = field(hash=False)
    message: str
    acknowledged_by: str | None = None
    acknowledged_at_s: float | None = None
    updated_s: float = 0.0
    revision: int = 0

    @property
    def ongoing(self) -> bool:
        """True while the alert is open."""
        return self.end_s is None

    @property
    def acknowledged(self) -> bool:
        """True once someone acknowledged it (and no escalation cleared that)."""
        return self.acknowledged_by is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain str/int/float/bool/None/list/dict), keys as the attributes."""
        return {
            "id": self.id,
            "patient_id": self.patient_id,
            "kind": self.kind,
            "category": self.category,
            "severity": self.severity.value,
            "start_s": float(self.start_s),
            "end_s": None if self.end_s is None else float(self.end_s),
            "evidence": json_value(dict(self.evidence)),
            "message": self.message,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at_s": None
            if self.acknowledged_at_s is None
            else float(self.acknowledged_at_s),
            "updated_s": float(self.updated_s),
            "revision": int(self.revision),
        }


@dataclass(frozen=True)
class AlertUpdate:
    """What changed in one alert during one engine call.

    ``change`` is the most significant change of the call (``opened > escalated > closed >
    acknowledged > extended``) and ``event`` the alert's snapshot after the call (so an alert
    opened and closed within one call comes back once, as ``"opened"`` with ``end_s`` set).
    """

    event: AlertEvent
    change: Change

    @property
    def notify(self) -> bool:
        """Whether clinicians should be notified: a new alert, or an escalation not acknowledged."""
        return self.change in ("opened", "escalated") and not self.event.acknowledged


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings.

    Attributes
    ----------
    rules : RuleConfig
        Rule thresholds.
    window_s : float
        Seconds of beats kept and analysed (must cover the longest rule window: the AF detector
        needs ``rules.af_window_beats`` usable beats, the ectopy counter ``ectopy_window_s``).
    hold_off_s : float
        Debounce: episodes closer than this merge into one alert; an alert closes this long
        after its last evidence.
    hold_off_by_kind : mapping of str to float
        Per-kind overrides of ``hold_off_s`` (default: 60 s for ``frequent_pvc`` and
        ``frequent_sveb``, whose condition is a count over a 60 s window, so that an alert does
        not close while the windowed rate is still above the limit).
    escalation_clears_ack : bool
        An escalation re-notifies an acknowledged alert.
    vitals_max_age_s : float
        Vitals older than this (data time) are treated as not measured by NEWS2.
    skin_to_core_offset_c : float or None
        Passed to :func:`heartline.alerts.news2.news2` (``None``: skin temperature not scored).
    news2_min_band : str
        Lowest NEWS2 band that raises an alert (``"low-medium"`` by default).
    news2_use_beat_hr : bool
        Use the beat-derived smoothed heart rate for NEWS2 when no recent pulse vital exists.
    max_closed_alerts : int
        Closed alerts kept in memory for :meth:`AlertEngine.alerts` (storage keeps them all).
    af_every_beats : int or None
        The AF-like rule (most of the rules' cost: sliding 64-beat windows over the whole
        window) runs when at least this many beats arrived since it last ran, and whenever
        nothing else is pending (:meth:`AlertEngine.advance`); the other rules run on every
        evaluation. ``None`` (default) means ``rules.af_step_beats``, the stride of its own
        windows, so an AF-like onset is reported at most that many beats later; 1 runs it
        every time. An AF-like episode needs ``rules.af_min_duration_s`` (30 s) anyway.
    report_interval_s : float
        Least data time (s) between two ``"extended"`` reports of one open alert (see the module
        docstring). Openings, escalations and closings are always reported at once. The default,
        10 s, bounds how far a stored open alert's running evidence lags behind (a dashboard
        shows the alarm, its severity and start immediately; its latest-evidence strip up to
        10 s old) while cutting the rewrites of long episodes (an alert extended on every 1 s
        frame was rewritten, evidence and all, on every frame); 0 reports every extension.
    af_source : {"auto", "rule", "model", "both"}
        What raises the ``af_like`` alarm: the RR-irregularity rule (``"rule"``), the rhythm
        model's verdicts given to :meth:`AlertEngine.add_rhythm` (``"model"``), either
        (``"both"``), or ``"auto"`` (default): the rule until the first rhythm verdict arrives,
        the model alone from then on (``docs/results/alarms.md`` has the measurements behind
        this choice).
    af_model_min_window_s : float
        Shortest rhythm-model window (s) whose ``A`` verdict raises the ``af_like`` alarm
        (default 30 s: an AF episode is documented AF lasting at least 30 s, Hindricks et al.
        2020 ESC guidelines). Shorter windows, a device's first ones, still count as verdicts
        (``~`` marks them noisy) but never raise AF on their own.
    af_model_rr_check : bool
        A rhythm-model ``A`` window raises the ``af_like`` alarm only when the RR intervals of
        the window agree (:func:`heartline.alerts.rules.af.rr_irregular`: at least
        ``af_model_min_rr`` usable intervals, ventricular beats left out, irregular by the
        normalised RMSSD and turning-point tests of ``rules.af_method``'s Dash et al. 2009
        thresholds). Default False (the model alone); the stream processor turns it on
        (:data:`heartline.ingestion.processor.AF_MODEL_RR_CHECK`): on the MIT-BIH AF records
        the model's false AF windows were ventricular trigeminy, regular once the V beats are
        left out (``docs/results/alarms.md``).
    af_model_min_rr : int
        Least usable RR intervals in the window for that check (default 16).
    af_model_confident_p : float
        A window whose ``A`` probability reaches this needs no second opinion (default 1.0:
        every window is checked). On single-lead wearable AF the beat model calls many
        aberrant or noisy beats ``V``, which leaves too few usable intervals for the check.
    noisy_mask_p : float
        A rhythm window whose ``~`` (too noisy) probability reaches this masks its beats from
        the arrhythmia rules even when another class wins, without a signal-quality notice
        (default 1.0: only a ``~`` verdict masks). A window the model is unsure is clean is
        not evidence for a physiological alarm.
    """

    rules: RuleConfig = field(default_factory=RuleConfig)
    window_s: float = 120.0
    hold_off_s: float = 30.0
    hold_off_by_kind: Mapping[str, float] = field(
        default_factory=lambda: {"frequent_pvc": 60.0, "frequent_sveb": 60.0}, hash=False
    )
    escalation_clears_ack: bool = True
    vitals_max_age_s: float = 900.0
    skin_to_core_offset_c: float | None = None
    news2_min_band: str = "low-medium"
    news2_use_beat_hr: bool = True
    max_closed_alerts: int = 1000
    af_every_beats: int | None = None
    report_interval_s: float = 10.0
    af_source: str = "auto"
    af_model_min_window_s: float = 30.0
    af_model_rr_check: bool = False
    af_model_min_rr: int = 16
    af_model_confident_p: float = 1.0
    noisy_mask_p: float = 1.0
    noisy_notice_min_window_s: float = 0.0
    rhythm_confirm_s: float = 0.0
    rhythm_confirm_kinds: tuple[str, ...] = (
        "v_couplet",
        "v_run",
        "ventricular_bigeminy",
        "ventricular_trigeminy",
        "frequent_pvc",
        "frequent_sveb",
        "bradycardia",
        "tachycardia",
    )

    def __post_init__(self) -> None:
        if not (0.0 < self.noisy_mask_p <= 1.0):
            raise ValueError(f"noisy_mask_p must be in (0, 1], got {self.noisy_mask_p!r}")
        if not (
            math.isfinite(self.noisy_notice_min_window_s) and self.noisy_notice_min_window_s >= 0
        ):
            raise ValueError(
                f"noisy_notice_min_window_s must be >= 0 s, got {self.noisy_notice_min_window_s!r}"
            )
        if not (math.isfinite(self.rhythm_confirm_s) and self.rhythm_confirm_s >= 0):
            raise ValueError(f"rhythm_confirm_s must be >= 0 s, got {self.rhythm_confirm_s!r}")
        if not 0.0 <= self.af_model_confident_p <= 1.0:
            raise ValueError(
                f"af_model_confident_p must lie in [0, 1], got {self.af_model_confident_p!r}"
            )
        if self.af_model_min_rr < 3:
            raise ValueError(f"af_model_min_rr must be >= 3, got {self.af_model_min_rr!r}")
        if not (math.isfinite(self.af_model_min_window_s) and self.af_model_min_window_s >= 0):
            raise ValueError(
                f"af_model_min_window_s must be >= 0 s, got {self.af_model_min_window_s!r}"
            )
        if self.af_source not in AF_SOURCES:
            raise ValueError(f"af_source must be one of {AF_SOURCES}, got {self.af_source!r}")
        for name in ("window_s", "vitals_max_age_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(self.hold_off_s) and self.hold_off_s >= 0):
            raise ValueError(f"hold_off_s must be >= 0 s, got {self.hold_off_s!r}")
        for kind, v in self.hold_off_by_kind.items():
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"hold_off_by_kind[{kind!r}] must be >= 0 s, got {v!r}")
        if self.window_s < self.rules.ectopy_window_s:
            raise ValueError(
                f"window_s ({self.window_s}) must be >= rules.ectopy_window_s ({self.rules.ectopy_window_s})"
            )
        if self.news2_min_band not in NEWS2_SEVERITY:
            raise ValueError(
                f"news2_min_band must be one of {list(NEWS2_SEVERITY)}, got {self.news2_min_band!r}"
            )
        if self.max_closed_alerts < 0:
            raise ValueError(f"max_closed_alerts must be >= 0, got {self.max_closed_alerts}")
        if not (math.isfinite(self.report_interval_s) and self.report_interval_s >= 0):
            raise ValueError(f"report_interval_s must be >= 0 s, got {self.report_interval_s!r}")
        if self.af_every_beats is not None and self.af_every_beats < 1:
            raise ValueError(f"af_every_beats must be >= 1, got {self.af_every_beats}")

    @property
    def af_cadence_beats(self) -> int:
        """New beats between two runs of the AF-like rule."""
        return int(self.af_every_beats or self.rules.af_step_beats)

    def hold_off_for(self, kind: str) -> float:
        """Hold-off of one kind."""
        return float(self.hold_off_by_kind.get(kind, self.hold_off_s))


class _Open:
    """Mutable book-keeping of one open alert (never exposed).

    ``event`` is the alert's current snapshot. An extension that is not reported at once (see
    ``EngineConfig.report_interval_s``) may be kept *pending* instead (:meth:`extend`): its
    scalar fields are stored and the evidence, the JSON form of its episodes (most of an
    extension's cost), is built only when ``event`` is next read, from the same episodes, so
    the snapshot is the one :func:`dataclasses.replace` would have built at once.
    """

    __slots__ = (
        "_event",
        "_pending",
        "dirty",
        "id",
        "last_evidence_s",
        "n_episodes",
        "reported_s",
        "severity",
    )

    def __init__(self, event: AlertEvent, last_evidence_s: float, n_episodes: int) -> None:
        self._event = event
        self._pending: dict[str, Any] | None = None
        self.id = event.id
        self.severity = event.severity
        self.last_evidence_s = last_evidence_s
        self.n_episodes = n_episodes
        self.reported_s = -math.inf  # data time of the last update reported for this alert
        self.dirty = False  # extended since that report, not reported yet

    @property
    def event(self) -> AlertEvent:
        p = self._pending
        if p is not None:
            base = self._event
            latest_ep: Episode = p.pop("latest_ep")
            peak_ep: Episode | None = p.pop("peak_ep")
            latest = latest_ep.evidence()
            if peak_ep is None:
                peak = base.evidence["peak"]
            elif peak_ep is latest_ep:
                peak = latest
            else:
                peak = peak_ep.evidence()
            evidence = {
                "trigger": base.evidence["trigger"],
                "peak": peak,
                "latest": latest,
                "n_episodes": self.n_episodes,
                "last_evidence_s": self.last_evidence_s,
            }
            self._event = replace(base, evidence=evidence, **p)
            self._pending = None
        return self._event

    @event.setter
    def event(self, event: AlertEvent) -> None:
        self._event = event
        self._pending = None
        self.severity = event.severity

    def extend(
        self,
        ep: Episode,
        *,
        severity: Severity,
        message: str,
        peak_from_ep: bool,
        acknowledged_by: str | None,
        acknowledged_at_s: float | None,
        updated_s: float,
    ) -> None:
        """Record an extension by ``ep`` without building its evidence (``event`` does that).

        ``n_episodes`` and ``last_evidence_s`` must already hold their new values (the
        evidence is built from them: no later change touches them without passing here or
        through ``event``).
        """
        p = self._pending
        if p is None:
            ev = self._event
            p = self._pending = {"peak_ep": None, "revision": ev.revision}
        p["latest_ep"] = ep
        if peak_from_ep:
            p["peak_ep"] = ep
        p["severity"] = severity
        p["message"] = message
        p["acknowledged_by"] = acknowledged_by
        p["acknowledged_at_s"] = acknowledged_at_s
        p["updated_s"] = updated_s
        p["revision"] += 1
        self.severity = severity

    @property
    def current(self) -> tuple[Severity, str, str | None, float | None, int]:
        """``(severity, message, acknowledged_by, acknowledged_at_s, revision)`` of ``event``."""
        p = self._pending
        if p is not None:
            return (
                p["severity"],
                p["message"],
                p["acknowledged_by"],
                p["acknowledged_at_s"],
                p["revision"],
            )
        ev = self._event
        return ev.severity, ev.message, ev.acknowledged_by, ev.acknowledged_at_s, ev.revision


#: Rules the engine skips while their input has not changed in a way that could change their
#: episodes (``AlertEngine._stale``), with the kinds each reports (``evaluate_rules(skip=)``).
_SKIP_GROUPS: Mapping[str, tuple[str, ...]] = {
    "ventricular_runs": ("v_couplet", "v_run", "vt"),
    "ventricular_patterns": ("ventricular_bigeminy", "ventricular_trigeminy"),
    "frequent_pvc": ("frequent_pvc",),
    "frequent_sveb": ("frequent_sveb",),
    "signal_quality": ("signal_quality",),
}
_V_GROUPS = frozenset({"ventricular_runs", "ventricular_patterns", "frequent_pvc"})

_VITAL_FIELDS = (
    "heart_rate_bpm",
    "spo2_pct",
    "temperature_c",
    "systolic_bp_mmhg",
    "respiration_rate_per_min",
    "consciousness",
    "supplemental_oxygen",
)


#: Columns of the engine's beat window (buffers, see ``AlertEngine.__init__``).
_COLUMNS: Mapping[str, Any] = {
    "time": np.float64,
    "label": "<U1",
    "beat_id": np.int64,
    "sample": np.int64,
    "conf": np.float64,
    "ok": bool,
    "beat_ok": bool,
    "rr": np.float64,  # intervals: entry j joins beats j and j + 1
    "rr_valid": bool,
}


class AlertEngine:
    """Alert engine of one patient.

    Parameters
    ----------
    patient_id : str
    config : EngineConfig, optional

    Examples
    --------
    >>> eng = AlertEngine("p1")
    >>> beats = [Beat(i * 0.8, i * 288, "N") for i in range(20)]
    >>> beats += [Beat(16.0 + 0.4 * k, 5760 + 144 * k, "V") for k in range(4)]
    >>> beats += [Beat(18.0 + 0.8 * k, 6480 + 288 * k, "N") for k in range(10)]
    >>> [(u.change, u.event.kind, u.event.severity.value) for u in eng.add_beats(beats)]
    [('opened', 'vt', 'high')]
    >>> [(u.change, u.event.kind, u.event.severity.value) for u in eng.advance(60.0)]  # no beats
    [('closed', 'vt', 'high'), ('opened', 'pause', 'critical')]
    """

    def __init__(self, patient_id: str, *, config: EngineConfig | None = None) -> None:
        if not isinstance(patient_id, str) or not patient_id:
            raise ValueError(f"patient_id must be a non-empty string, got {patient_id!r}")
        self.patient_id = patient_id
        self.config = config or EngineConfig()
        # The beat window: one buffer per column with room to append, the window its entries
        # [_lo, _hi) (intervals: [_lo, _hi - 1), interval j joining beats j and j + 1). The
        # attributes below (_time, _label, ..., _rr_valid) are views of that range, rebuilt by
        # _set_views. Appending writes past _hi and trimming moves _lo, so the views that
        # earlier series hold never see a write: no entry of an old window is ever changed in
        # place (a full buffer is copied into a new one; a new noisy span gives new mask
        # buffers, _mark_noisy).
        self._buf: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=dtype) for name, dtype in _COLUMNS.items()
        }
        self._lo = self._hi = 0
        # ids of the first beats of the last intervals that could start a brady- (slow) or a
        # tachycardia (fast) run (see _append); -1: none yet
        self._slow_id = self._fast_id = -1
        self._noisy: list[tuple[float, float]] = []
        # spans masked for the arrhythmia rules only, no notice (short ``~`` rhythm windows,
        # EngineConfig.noisy_notice_min_window_s)
        self._masked: list[tuple[float, float]] = []
        # model AF windows waiting for their beats (EngineConfig.af_model_rr_check), and the
        # end of the last one accepted
        self._af_pending: list[tuple[Episode, float | None]] = []
        self._af_model_last_end = -math.inf
        # the window's BeatSeries.beat_ok(), rr_valid() and rr_s, kept up to date element by
        # element (new beats against every span, every beat against a new span; _mark_noisy)
        self._set_views()
        # ventricular flutter/fibrillation spans from the R-peak detector: (start_s, end_s or None)
        self._vf: list[tuple[float, float | None]] = []
        self._next_beat_id = 0
        self._af_next_beat_id = 0  # the AF-like rule runs again once beat ids reach this
        self._rhythm_seen = False  # a rhythm-model verdict arrived (af_source "auto")
        self.last_rhythm: tuple[float, float, str] | None = None  # (start_s, end_s, label)
        # low-priority episodes held for a rhythm verdict (EngineConfig.rhythm_confirm_s)
        self._holding = False
        self._releasing = False
        self._now = -math.inf
        self._open: dict[str, _Open] = {}
        self._closed: OrderedDict[str, AlertEvent] = OrderedDict()
        self._last_closed_end: dict[str, float] = {}
        self._seq = 0
        self._vitals: dict[str, tuple[float, Any]] = {}
        self._temperature_site: Literal["core", "skin"] = "core"
        self.dropped_beats = 0
        self.last_news2: News2Result | None = None
        # the series the rules last ran on, while the beats and noisy spans are unchanged (its
        # cached smoothed rate serves NEWS2); _version counts changes to either
        self._version = 0
        self._series: tuple[int, BeatSeries] | None = None
        # pass the rules what _apply would ignore (they skip building it); False: build it all
        self._prune = True
        # skip the rules whose episodes cannot have changed since they last ran, and keep the
        # AF-like rule's window verdicts (see _step); False: the reference path, every rule on
        # every evaluation, each AF window classified afresh
        self._incremental = True
        self._stale: set[str] = set(_SKIP_GROUPS)  # rules that must run at the next evaluation
        self._af_cache: dict[Any, Any] = {}
        # NEWS2 results of recent vitals (see _score_news2)
        self._news2_memo: dict[tuple[Any, ...], News2Result] = {}
        self._news2_texts: dict[int, tuple[News2Result, dict[str, Any], str]] = {}

    # -- inputs -------------------------------------------------------------------------------
    def add_beats(
        self, beats: Iterable[Beat] | BeatSeries, *, now_s: float | None = None
    ) -> list[AlertUpdate]:
        """Add newly classified beats (time order) and run the rules.

        Beats at or before the last accepted beat time are dropped (re-sent overlapping frames)
        and counted in ``dropped_beats``. Engine beat ids continue across calls.

        Parameters
        ----------
        beats : iterable of Beat, or BeatSeries
        now_s : float, optional
            Current data time (>= the last beat); defaults to the last beat's time.

        Returns
        -------
        list of AlertUpdate
        """
        series = beats if isinstance(beats, BeatSeries) else BeatSeries.from_beats(beats)
        if len(series):
            last = self._time[-1] if self._time.size else -math.inf
            t = series.time_s
            if t[0] > last and (t.size == 1 or bool((t[1:] > t[:-1]).all())):
                keep = None  # every beat after the last one, in strict time order
                n_new = int(t.size)
            else:
                keep = t > last
                if keep.size > 1:  # also drop duplicates inside the batch
                    keep[1:] &= np.diff(t) > 0
                n_new = int(np.count_nonzero(keep))
                self.dropped_beats += int(t.size) - n_new
                logger.debug(
                    "patient %s: dropped %d out-of-order/duplicate beats",
                    self.patient_id,
                    int(t.size) - n_new,
                )
            for span in series.noisy_spans_s:
                self._mark_noisy(*span)  # the beats already in the window
            self._noisy.extend(series.noisy_spans_s)
            if n_new:
                if self._time.size and self._label[-1] == "V":
                    # a ventricular run ending at the last beat stops being "ongoing"
                    self._stale.add("ventricular_runs")

                def take(a: np.ndarray) -> np.ndarray:
                    return a if keep is None else a[keep]

                label, ok = take(series.label), take(series.quality_ok)
                self._touch(label, ok)
                self._append(
                    take(t),
                    label,
                    take(series.sample_idx),
                    take(series.confidence),
                    ok,
                )
                self._now = max(self._now, float(self._time[-1]))
            self._version += 1
        return self._step(now_s)

    def add_quality(
        self, start_s: float, end_s: float, *, ok: bool, evaluate: bool = True
    ) -> list[AlertUpdate]:
        """Record a signal-quality verdict for the span ``[start_s, end_s)`` (data time).

        ``ok=False`` marks the span noisy: beats in it are excluded from arrhythmia rules and a
        ``signal_quality`` technical alarm is raised when it lasts long enough. ``ok=True`` spans
        need not be reported; they only advance the data time.

        ``evaluate=False`` records the span and advances the data time without running the rules
        (returns ``[]``): a caller that adds beats (:meth:`add_beats`) or calls :meth:`advance`
        right after evaluates everything once (the stream processor, per batch).
        """
        start, end = float(start_s), float(end_s)
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"need finite start_s <= end_s, got {start_s!r}, {end_s!r}")
        if not ok:
            self._mark_noisy(start, end)
            self._noisy.append((start, end))
            self._version += 1
        if not evaluate:
            self._now = max(self._now, end)
            return []
        return self._step(end)

    def add_vf(
        self,
        start_s: float,
        end_s: float | None,
        *,
        now_s: float | None = None,
        evaluate: bool = True,
    ) -> list[AlertUpdate]:
        """Record a ventricular flutter/fibrillation episode reported by the R-peak detector.

        VF is not a sequence of beats (EC57 excludes it from beat scoring), so the beat rules
        cannot see it: during VF the detector emits no beats, which would otherwise look like a
        pause. The engine raises a critical ``"vf"`` alarm for the span and suppresses ``pause``
        alarms that overlap it. ``end_s=None`` means the episode is still going on; report it
        again with its end when it stops (same ``start_s``).

        Parameters
        ----------
        start_s, end_s : float
            Data time of the episode (seconds, same clock as the beats).
        now_s : float, optional
            Current data time (defaults to ``end_s`` or ``start_s``).
        evaluate : bool
            False: record the episode and the data time only (see :meth:`add_quality`).
        """
        start = float(start_s)
        end = None if end_s is None else float(end_s)
        if not math.isfinite(start) or (
            end is not None and (not math.isfinite(end) or end < start)
        ):
            raise ValueError(f"need finite start_s <= end_s, got {start_s!r}, {end_s!r}")
        self._vf = [(a, b) for a, b in self._vf if abs(a - start) > 1e-6]
        self._vf.append((start, end))
        now = now_s if now_s is not None else (end if end is not None else start)
        if not evaluate:
            if not math.isfinite(float(now)):
                raise ValueError(f"now_s must be finite, got {now!r}")
            self._now = max(self._now, float(now))
            return []
        return self._step(now)

    def add_vitals(
        self,
        *,
        time_s: float,
        heart_rate_bpm: float | None = None,
        spo2_pct: float | None = None,
        temperature_c: float | None = None,
        temperature_site: Literal["core", "skin"] = "skin",
        systolic_bp_mmhg: float | None = None,
        respiration_rate_per_min: float | None = None,
        consciousness: str | None = None,
        supplemental_oxygen: bool | None = None,
    ) -> list[AlertUpdate]:
        """Record vitals measured at ``time_s`` (``None`` = not in this reading) and re-score NEWS2.

        The latest value of each parameter is kept; values older than
        ``config.vitals_max_age_s`` count as not measured. ``temperature_site`` defaults to
        ``"skin"`` (what a wearable measures; see :mod:`heartline.alerts.news2`).

        Returns
        -------
        list of AlertUpdate
            Includes the ``"news2"`` alert when the band reaches ``config.news2_min_band``.
        """
        t = float(time_s)
        if not math.isfinite(t):
            raise ValueError(f"time_s must be finite, got {time_s!r}")
        given = {
            "heart_rate_bpm": heart_rate_bpm,
            "spo2_pct": spo2_pct,
            "temperature_c": temperature_c,
            "systolic_bp_mmhg": systolic_bp_mmhg,
            "respiration_rate_per_min": respiration_rate_per_min,
            "consciousness": consciousness,
            "supplemental_oxygen": supplemental_oxygen,
        }
        for name, value in given.items():
            if value is not None:
                self._vitals[name] = (t, value)
        if temperature_c is not None:
            self._temperature_site = temperature_site
        updates: dict[str, tuple[Change, AlertEvent]] = {}
        self._now = max(self._now, t)
        result = self._score_news2(t)
        self.last_news2 = result
        band_rank = RISK_BANDS.index(result.band)
        min_rank = RISK_BANDS.index(self.config.news2_min_band)
        if band_rank >= min_rank:
            values, message = self._news2_text(result)
            ep = Episode(
                kind="news2",
                severity=NEWS2_SEVERITY[result.band],
                start_s=t,
                end_s=t,
                values=values,
                message=message,
            )
            self._apply(ep, updates, t)
        elif "news2" in self._open:
            self._close("news2", updates, end_s=t)
        return self._finish(updates)

    def add_rhythm(
        self,
        start_s: float,
        end_s: float,
        *,
        label: str,
        probabilities: Mapping[str, float] | None = None,
        evaluate: bool = True,
    ) -> list[AlertUpdate]:
        """Record the rhythm model's verdict on the window ``[start_s, end_s)`` (data time).

        ``label`` is ``"N"``, ``"A"`` (atrial fibrillation), ``"O"`` (other rhythm) or ``"~"``
        (too noisy). An ``"A"`` window is an ``af_like`` episode (severity ``warning``, evidence
        ``source="rhythm_model"``) when :attr:`EngineConfig.af_source` lets the model raise the
        alarm and the window lasts at least :attr:`EngineConfig.af_model_min_window_s` (30 s);
        consecutive windows merge into one alert by the hold-off. A ``"~"`` window marks
        the span noisy, as :meth:`add_quality` with ``ok=False`` does: beats in it are left out
        of the arrhythmia rules (so no rhythm alarm is raised on noise) and the technical
        ``signal_quality`` notice is raised instead.

        The rhythm windows come from the model of :mod:`heartline.edge.rhythm` (a CNN-LSTM
        trained on the PhysioNet/CinC Challenge 2017 records; Clifford et al., CinC 2017).
        """
        start, end = float(start_s), float(end_s)
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"need finite start_s <= end_s, got {start_s!r}, {end_s!r}")
        if label not in ("N", "A", "O", "~"):
            raise ValueError(f"label must be one of N, A, O, ~; got {label!r}")
        self._rhythm_seen = True
        self.last_rhythm = (start, end, label)
        updates: dict[str, tuple[Change, AlertEvent]] = {}
        if label == "~":
            self._mark_noisy(start, end)
            if end - start >= self.config.noisy_notice_min_window_s - 1e-3:
                self._noisy.append((start, end))  # a noisy span: masks later beats, notice
            else:
                self._masked.append((start, end))  # masks later beats too, no notice
            self._version += 1
        elif float((probabilities or {}).get("~", 0.0)) >= self.config.noisy_mask_p:
            # another class won, but the model is not sure the window is clean: its beats
            # are no evidence for the arrhythmia rules (no notice: it was not called noisy)
            self._mark_noisy(start, end)
            self._masked.append((start, end))
            self._version += 1
        if (
            label == "A"
            and self._af_from_model()
            and end - start >= self.config.af_model_min_window_s - 1e-3
        ):
            values: dict[str, Any] = {"source": "rhythm_model", "window_s": round(end - start, 3)}
            for k, v in (probabilities or {}).items():
                values[f"p_{'noisy' if k == '~' else k}"] = round(float(v), 4)
            ep = Episode(
                kind="af_like",
                severity=Severity.WARNING,
                start_s=start,
                end_s=end,
                values=values,
                message=f"atrial fibrillation (rhythm model, {end - start:.0f} s window)",
                ongoing=True,
            )
            if self.config.af_model_rr_check:
                # decided once the window's beats are all in (_decide_af): the verdict must
                # not depend on how frames were batched (live and replay agree)
                self._af_pending.append((ep, (probabilities or {}).get("A")))
            elif ep.end_s > self._last_closed_end.get(ep.kind, -math.inf):
                self._apply(ep, updates, self._now if math.isfinite(self._now) else end)
        # the data time is not moved to the window's end: beats reach the engine a few
        # seconds after their samples (the detector's look-ahead), and a clock ahead of them
        # would read that delay as a pause
        out = self._finish(updates)
        if not evaluate:
            return out
        return out + self._step(None)

    def _decide_af(self, updates: dict[str, tuple[Change, AlertEvent]], *, final: bool) -> None:
        """Decide the pending model ``A`` windows (in order) whose beats are all in.

        A window's beats are all in once a beat at or after its end arrived (beats come in
        time order), or at ``final`` (:meth:`flush_reports`: no more are coming).
        """
        while self._af_pending:
            ep, p_af = self._af_pending[0]
            if not final and not (self._time.size and self._time[-1] >= ep.end_s):
                return
            self._af_pending.pop(0)
            if not self._rr_confirms(ep.start_s, ep.end_s, p_af):
                continue
            self._af_model_last_end = max(self._af_model_last_end, ep.end_s)
            if ep.end_s > self._last_closed_end.get(ep.kind, -math.inf):
                self._apply(ep, updates, self._now if math.isfinite(self._now) else ep.end_s)

    def _rr_confirms(self, start: float, end: float, p_af: float | None) -> bool:
        """The RR-irregularity second opinion on a model ``A`` window (``af_model_rr_check``)."""
        if not self.config.af_model_rr_check:
            return True
        if p_af is not None and float(p_af) >= self.config.af_model_confident_p:
            return True  # a confident verdict needs no second opinion
        if start <= self._af_model_last_end + self.config.hold_off_for("af_like"):
            return True  # continues the last accepted AF window: the check is for an onset
        ok, _feats = rr_irregular(
            self.window(),
            start,
            end,
            min_intervals=self.config.af_model_min_rr,
            nrmssd_min=self.config.rules.af_nrmssd_min,
            beat_flags_only=True,  # an earlier ``~`` window over the same beats is superseded
        )
        return ok

    def _af_from_model(self) -> bool:
        src = self.config.af_source
        return src in ("model", "both") or (src == "auto" and self._rhythm_seen)

    def _af_from_rule(self) -> bool:
        src = self.config.af_source
        return src in ("rule", "both") or (src == "auto" and not self._rhythm_seen)

    def advance(self, now_s: float) -> list[AlertUpdate]:
        """Move data time forward without new beats (detects ongoing asystole, closes alerts).

        Runs every rule, the AF-like one included (see ``EngineConfig.af_every_beats``).
        """
        return self._step(float(now_s), force_af=True)

    def acknowledge(self, alert_id: str, *, user: str, at_s: float) -> AlertEvent:
        """Acknowledge an alert (open or closed) by ``user`` at data time ``at_s``.

        Raises
        ------
        KeyError
            Unknown (or forgotten) alert id.
        ValueError
            Empty user or non-finite time.
        """
        if not isinstance(user, str) or not user:
            raise ValueError(f"user must be a non-empty string, got {user!r}")
        if not math.isfinite(float(at_s)):
            raise ValueError(f"at_s must be finite, got {at_s!r}")
        for kind, op in self._open.items():
            if op.id == alert_id:
                op.event = replace(
                    op.event,
                    acknowledged_by=user,
                    acknowledged_at_s=float(at_s),
                    updated_s=float(at_s),
                    revision=op.event.revision + 1,
                )
                logger.info(
                    "patient %s: alert %s (%s) acknowledged by %s",
                    self.patient_id,
                    alert_id,
                    kind,
                    user,
                )
                return op.event
        if alert_id in self._closed:
            ev = self._closed[alert_id]
            ev = replace(
                ev,
                acknowledged_by=user,
                acknowledged_at_s=float(at_s),
                updated_s=float(at_s),
                revision=ev.revision + 1,
            )
            self._closed[alert_id] = ev
            return ev
        raise KeyError(f"no alert {alert_id!r} for patient {self.patient_id!r}")

    # -- state --------------------------------------------------------------------------------
    def flush_reports(self) -> list[AlertUpdate]:
        """Report now every open alert whose latest extension ``report_interval_s`` still holds back.

        For a clean stop (the stream processor calls it before disconnecting): afterwards the
        stored rows of open alerts hold the engine's current state, not one up to
        ``report_interval_s`` old. Returns ``"extended"`` updates (none when nothing is pending).
        """
        released: list[AlertUpdate] = []
        if self._af_pending:
            pending: dict[str, tuple[Change, AlertEvent]] = {}
            self._decide_af(pending, final=True)
            released += self._finish(pending)
        if self._holding and math.isfinite(self._now):
            # episodes held for a rhythm verdict that will not come now: opened as they are
            self._releasing = True
            try:
                released = self._step(None)
            finally:
                self._releasing = False
        updates: dict[str, tuple[Change, AlertEvent]] = {}
        for op in self._open.values():
            if op.dirty:
                self._record(updates, op.event, "extended")
                op.reported_s, op.dirty = self._now, False
        return released + [AlertUpdate(event, change) for change, event in updates.values()]

    def active_alerts(self) -> tuple[AlertEvent, ...]:
        """Open alerts, oldest first."""
        return tuple(sorted((op.event for op in self._open.values()), key=lambda e: e.start_s))

    def alerts(self) -> tuple[AlertEvent, ...]:
        """Every alert still in memory (closed ones first, then open), by start time."""
        return tuple(
            sorted(
                [*self._closed.values(), *(op.event for op in self._open.values())],
                key=lambda e: (e.start_s, e.kind),
            )
        )

    def get(self, alert_id: str) -> AlertEvent:
        """One alert by id (``KeyError`` when unknown)."""
        for op in self._open.values():
            if op.id == alert_id:
                return op.event
        return self._closed[alert_id]

    @property
    def now_s(self) -> float:
        """Latest data time seen (``-inf`` before any input)."""
        return self._now

    def window(self) -> BeatSeries:
        """The beats (and noisy spans) currently analysed."""
        # every array was validated when its beats were added (BeatSeries.from_beats)
        series = BeatSeries._trusted(
            self._time,
            self._label,
            self._beat_id,
            self._sample,
            self._conf,
            self._ok,
            tuple(self._noisy),
        )
        # the validity masks and intervals the series would compute, kept by the engine (views
        # never written in place: the series shares them read-only); rr_s[j] = time[j + 1] -
        # time[j], the same subtraction as np.diff
        memo = series._memo
        memo["beat_ok"] = read_only(self._beat_ok[:])
        memo["rr_valid"] = read_only(self._rr_valid[:])
        memo["rr_s"] = read_only(self._rr[:])
        return series

    # -- validity masks -------------------------------------------------------------------------
    def _set_views(self) -> None:
        b, lo, hi = self._buf, self._lo, self._hi
        self._time = b["time"][lo:hi]
        self._label = b["label"][lo:hi]
        self._beat_id = b["beat_id"][lo:hi]
        self._sample = b["sample"][lo:hi]
        self._conf = b["conf"][lo:hi]
        self._ok = b["ok"][lo:hi]
        self._beat_ok = b["beat_ok"][lo:hi]
        stop = max(hi - 1, lo)
        self._rr = b["rr"][lo:stop]
        self._rr_valid = b["rr_valid"][lo:stop]

    def _mark_noisy(self, start: float, stop: float) -> None:
        """Apply a new noisy span ``[start, stop)`` to the masks of the beats in the window.

        ``BeatSeries.beat_ok`` and ``rr_valid`` AND one term per span into each entry, so a
        new span ANDs in its own term (into new buffers: the last series holds the old ones).
        """
        self._stale.update(_SKIP_GROUPS)  # any mask may change, and the signal-quality spans
        t = self._time
        if t.size == 0:
            return
        lo, hi = self._lo, self._hi
        inside = (t >= start) & (t < stop)
        beat_ok = self._buf["beat_ok"].copy()
        beat_ok[lo:hi] &= ~inside
        self._buf["beat_ok"] = beat_ok
        if t.size > 1:
            ok = beat_ok[lo:hi]
            overlap = (t[:-1] < stop) & (t[1:] > start)
            rr_valid = self._buf["rr_valid"].copy()
            rr_valid[lo : hi - 1] &= ok[:-1] & ok[1:] & ~overlap
            self._buf["rr_valid"] = rr_valid
        self._set_views()

    def _append(
        self,
        time_s: np.ndarray,
        label: np.ndarray,
        sample_idx: np.ndarray,
        confidence: np.ndarray,
        quality_ok: np.ndarray,
    ) -> None:
        """Append beats (after the last one), their masks and the intervals that end at them."""
        m = int(time_s.size)
        b, lo, hi = self._buf, self._lo, self._hi
        n_old = hi - lo
        if hi + m > b["time"].size:  # full: copy the window to the start of new buffers
            cap = max(2 * (n_old + m), 256)
            for name, arr in b.items():
                new = np.zeros(cap, dtype=arr.dtype)
                new[:n_old] = arr[lo:hi]
                b[name] = new
            lo, hi = 0, n_old
            self._lo = lo
        stop = hi + m
        b["time"][hi:stop] = time_s
        b["label"][hi:stop] = label
        b["beat_id"][hi:stop] = np.arange(self._next_beat_id, self._next_beat_id + m)
        b["sample"][hi:stop] = sample_idx
        b["conf"][hi:stop] = confidence
        b["ok"][hi:stop] = quality_ok
        self._next_beat_id += m
        # masks of the new beats and of the intervals that end at them (the first one from the
        # last old beat, if any)
        ok_new = quality_ok.copy()
        masks = self._noisy + self._masked if self._masked else self._noisy
        if masks:
            sp = np.asarray(masks, dtype=np.float64).reshape(-1, 2)
            start, end = sp[:, 0], sp[:, 1]
            ok_new &= ~((time_s[:, None] >= start) & (time_s[:, None] < end)).any(axis=1)
        b["beat_ok"][hi:stop] = ok_new
        a = hi - 1 if n_old else hi  # first new interval
        if stop - 1 > a:
            t = b["time"]
            ok = b["beat_ok"]
            b["rr"][a : stop - 1] = t[a + 1 : stop] - t[a : stop - 1]
            valid = ok[a : stop - 1] & ok[a + 1 : stop]
            if masks:
                valid &= ~((t[a : stop - 1, None] < end) & (t[a + 1 : stop, None] > start)).any(
                    axis=1
                )
            b["rr_valid"][a : stop - 1] = valid
            # the last interval that could take the smoothed rate past the brady- or
            # tachycardia limit (_rate_cannot_last's "offending" test, same comparisons on the
            # same values), by the id of its first beat; masks only ever lose entries, so an
            # interval not offending now never becomes so
            rr = b["rr"][a : stop - 1]
            c = self.config.rules
            slow = (valid & (rr >= 0.99 * 60.0 / c.brady_bpm)).nonzero()[0]
            if slow.size:
                self._slow_id = int(b["beat_id"][a + int(slow[-1])])
            fast = (valid & (rr < 1.01 * 60.0 / c.tachy_bpm) & (rr > 0)).nonzero()[0]
            if fast.size:
                self._fast_id = int(b["beat_id"][a + int(fast[-1])])
        self._hi = stop
        self._set_views()

    # -- rule skipping --------------------------------------------------------------------------
    def _touch(self, label: np.ndarray, quality_ok: np.ndarray) -> None:
        """Beats entering or leaving the window: mark stale the rules that depend on them.

        Why the others may be skipped (their episodes are then the same as, or dominated by,
        those of their last run; see :meth:`_step`), for beats appended after the last beat or
        trimmed from the head of the window, with no noisy span added since that run (a span
        marks every rule stale, :meth:`_mark_noisy`):

        * ventricular runs (``v_couplet``, ``v_run``, ``vt``) are runs of links between two
          consecutive valid V beats; a beat not labelled V is in no link, so appending or
          trimming it leaves every run, its beats, times, rate and kind as they were. Only its
          ``ongoing`` flag (the run ends at the last beat) could change, and the engine ignores
          an ongoing couplet: hence also stale when beats are appended after a V beat
          (:meth:`add_beats`);
        * bigeminy/trigeminy chains link consecutive V beats through the beats and intervals
          between them; a non-V beat appended after or trimmed before every V beat changes no
          pair nor chain (the episode may start one beat later when the conducted beat before
          its first V beat is trimmed: same end, same severity, so dominated);
        * frequent PVCs (SVEBs) count the times of the V (S) beats alone;
        * signal quality reads the runs of beats with ``quality_ok`` False and the noisy spans
          (trimmed spans mark it stale in :meth:`_trim`).

        Labels and the quality flag are a superset test (confidence and masks can only make a
        V beat not count), so stale-marking is conservative.
        """
        if label.size == 0:
            return
        labels = label.tolist()
        if "V" in labels:
            self._stale |= _V_GROUPS
        if "S" in labels:
            self._stale.add("frequent_sveb")
        if not quality_ok.all():
            self._stale.add("signal_quality")

    # -- internals ----------------------------------------------------------------------------
    def _trim(self) -> None:
        horizon = self._now - self.config.window_s
        if self._time.size and self._time[0] < horizon:
            k = int(np.searchsorted(self._time, horizon, side="left"))
            self._touch(self._label[:k], self._ok[:k])
            # interval j joins beats j and j + 1: the first k intervals go with the first k beats
            self._lo += k
            self._set_views()
            self._version += 1
        if any(b < horizon for _a, b in self._noisy):
            # a span ending before the horizon touches no beat of the window (all at or after
            # it) nor any interval between them: the masks stay as they are
            self._noisy = [(a, b) for a, b in self._noisy if b >= horizon]
            self._version += 1
            self._stale.add("signal_quality")
        self._vf = [(a, b) for a, b in self._vf if b is None or b >= horizon]
        if self._masked:
            self._masked = [(a, b) for a, b in self._masked if b >= horizon]

    def _step(self, now_s: float | None, *, force_af: bool = False) -> list[AlertUpdate]:
        if now_s is not None:
            if not math.isfinite(float(now_s)):
                raise ValueError(f"now_s must be finite, got {now_s!r}")
            self._now = max(self._now, float(now_s))
        self._trim()
        updates: dict[str, tuple[Change, AlertEvent]] = {}
        if self._af_pending:
            self._decide_af(updates, final=False)
        if self._holding:  # held episodes are looked at again on every evaluation
            self._stale.update(_SKIP_GROUPS)
            self._holding = False
        if self._time.size or self._noisy:
            series = self.window()
            self._series = (self._version, series)
            now = self._now if math.isfinite(self._now) else None
            skip: list[str] = []
            if force_af or self._next_beat_id >= self._af_next_beat_id:
                self._af_next_beat_id = self._next_beat_id + self.config.af_cadence_beats
            else:
                skip.append("af_like")  # not enough new beats since it last ran
            if not self._af_from_rule():
                skip.append("af_like")  # the rhythm model raises the AF alarm
            if self._incremental:
                # Rules not marked stale since they last ran (_touch, _mark_noisy, _trim) would
                # return episodes that are each the same as one of their last run, or dominated
                # by one: same kind, end no later, severity no higher (start <= end always).
                # Every episode of that run was handled by this loop: left out by the rules as
                # covered (Reported), dropped as ending before a closed alert of its kind, or
                # applied (merged into or opening an alert); or dropped as an ongoing couplet,
                # and those come back identical. Once handled, a dominated episode is a no-op
                # for good: _apply returns at once for it (open alert of its kind: starts within
                # the hold-off, ends no later than its last evidence, no escalation) or the
                # closed-end test drops it (that alert has closed since), and both limits only
                # move forward. Dropping no-ops changes neither the state nor the updates.
                for group, kinds in _SKIP_GROUPS.items():
                    if group not in self._stale:
                        skip.extend(kinds)
                # No interval of the window could take the smoothed rate past a limit: the rate
                # rule's own shortcut (_rate_cannot_last) would return no episode.
                first_id = int(self._beat_id[0]) if self._beat_id.size else math.inf
                if self._slow_id < first_id:
                    skip.append("bradycardia")
                if self._fast_id < first_id and self.config.rules.tachy_bpm >= 1.0:
                    skip.append("tachycardia")
            reported = self._reported() if self._prune else None
            episodes = evaluate_rules(
                series,
                config=self.config.rules,
                now_s=now,
                skip=skip,
                reported=reported,
                af_cache=self._af_cache if self._incremental else None,
            )
            for ep in episodes:
                if ep.end_s <= self._last_closed_end.get(ep.kind, -math.inf):
                    continue  # already reported by an alert that has closed
                if ep.kind == "v_couplet" and ep.ongoing:
                    continue  # two V beats at the end of the data may be the start of a run
                if ep.kind == "pause" and self._overlaps_vf(ep.start_s, ep.end_s):
                    continue  # no beats because the rhythm is VF: the vf alarm covers it
                if self._held(ep):
                    continue  # waits for the rhythm model's verdict on its beats
                self._apply(ep, updates, self._now)
            if self._incremental:
                self._stale.clear()  # every stale rule ran and its episodes were handled
        for start, end in self._vf:
            stop = end if end is not None else max(self._now, start)
            vf = Episode(
                kind="vf",
                severity=Severity.CRITICAL,
                start_s=start,
                end_s=stop,
                values={"duration_s": round(stop - start, 3)},
                message=f"ventricular flutter/fibrillation for {stop - start:.1f} s (no organised beats)",
                ongoing=end is None,
            )
            if vf.end_s > self._last_closed_end.get("vf", -math.inf):
                self._apply(vf, updates, self._now)
        # close alerts whose hold-off has passed
        for kind in list(self._open):
            if kind == "news2":
                continue
            op = self._open[kind]
            if self._now - op.last_evidence_s > self.config.hold_off_for(kind):
                self._close(kind, updates, end_s=op.last_evidence_s)
        return self._finish(updates)

    def _reported(self) -> dict[str, Reported]:
        """Per kind, the episodes :meth:`_apply` would ignore (the rules need not build them).

        ``_apply`` ignores an episode that ends no later than the last evidence of the kind's
        last closed alert, or that merges into the open alert (starts within its hold-off)
        without ending later or being more severe. Both limits only move forward, during a call
        and across calls, so an episode ignored under the state before the call would be ignored
        wherever it came in the call: leaving it out changes nothing.
        """
        out: dict[str, Reported] = {}
        for kind, end in self._last_closed_end.items():
            out[kind] = Reported(closed_end_s=end)
        for kind, op in self._open.items():
            out[kind] = Reported(
                closed_end_s=self._last_closed_end.get(kind, -math.inf),
                open_last_s=op.last_evidence_s,
                open_until_s=op.last_evidence_s + self.config.hold_off_for(kind),
                open_severity=op.severity,
            )
        return out

    def _held(self, ep: Episode) -> bool:
        """Whether ``ep`` waits for a rhythm verdict (``EngineConfig.rhythm_confirm_s``)."""
        wait = self.config.rhythm_confirm_s
        if (
            wait <= 0
            or self._releasing
            or ep.severity > Severity.WARNING
            or ep.kind not in self.config.rhythm_confirm_kinds
            or ep.kind in self._open  # an alert already open goes on as before
        ):
            return False
        covered = self.last_rhythm[1] if self.last_rhythm is not None else -math.inf
        if ep.end_s <= covered + 1e-6 or self._now - ep.end_s >= wait:
            return False  # a verdict other than ``~`` covers it, or it waited long enough
        self._holding = True
        return True

    def _overlaps_vf(self, start_s: float, end_s: float) -> bool:
        for a, b in self._vf:
            stop = b if b is not None else math.inf
            if start_s < stop + 1.0 and end_s > a - 1.0:
                return True
        return False

    def _new_id(self, kind: str, start_s: float) -> str:
        self._seq += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.patient_id}|{kind}|{self._seq}|{start_s:.3f}"))

    def _apply(
        self, ep: Episode, updates: dict[str, tuple[Change, AlertEvent]], now: float
    ) -> None:
        op = self._open.get(ep.kind)
        # NEWS2 alerts stay open until a reading scores below the alerting band
        if op is not None and (
            ep.kind == "news2"
            or ep.start_s <= op.last_evidence_s + self.config.hold_off_for(ep.kind)
        ):
            escalate = ep.severity > op.severity
            if not escalate and ep.end_s <= op.last_evidence_s:
                return  # a re-detection of evidence already merged: nothing new
            change: Change = "escalated" if escalate else "extended"
            severity, message, ack_by, ack_at, _rev = op.current
            if escalate:
                severity = ep.severity
                if self.config.escalation_clears_ack:
                    ack_by, ack_at = None, None
            peak_from_ep = ep.severity >= severity
            if peak_from_ep:
                message = ep.message
            if ep.start_s > op.last_evidence_s:
                op.n_episodes += 1  # a new episode, not the continuation of the last one
            op.last_evidence_s = max(op.last_evidence_s, ep.end_s)
            # the snapshot replace() gives with the evidence of ep: "latest", and "peak" when
            # ep is at the alert's severity; built when op.event is read (_Open.extend)
            op.extend(
                ep,
                severity=severity,
                message=message,
                peak_from_ep=peak_from_ep,
                acknowledged_by=ack_by,
                acknowledged_at_s=ack_at,
                updated_s=now,
            )
            report = escalate or op.id in updates or self.config.report_interval_s == 0
            if report or not self._incremental:
                event = op.event  # the reference path builds every snapshot at once
            if report:
                self._record(updates, event, change)
            else:
                op.dirty = True  # reported by _finish once report_interval_s has passed
            return
        if op is not None:  # an unrelated later episode: close the old alert first
            self._close(ep.kind, updates, end_s=op.last_evidence_s)
        evidence = ep.evidence()
        # an episode that began under an alert that has since closed is reported from the end of
        # that alert on (its earlier part was already alerted)
        start_s = max(ep.start_s, self._last_closed_end.get(ep.kind, -math.inf))
        event = AlertEvent(
            id=self._new_id(ep.kind, start_s),
            patient_id=self.patient_id,
            kind=ep.kind,
            category="technical" if ep.kind in TECHNICAL_KINDS else ep.category,
            severity=ep.severity,
            start_s=start_s,
            end_s=None,
            evidence={
                "trigger": evidence,
                "peak": evidence,
                "latest": evidence,
                "n_episodes": 1,
                "last_evidence_s": ep.end_s,
            },
            message=ep.message,
            updated_s=now,
        )
        self._open[ep.kind] = _Open(event, ep.end_s, 1)
        logger.info(
            "patient %s: %s alert opened (%s): %s",
            self.patient_id,
            ep.kind,
            ep.severity.value,
            ep.message,
        )
        self._record(updates, event, "opened")

    def _close(
        self, kind: str, updates: dict[str, tuple[Change, AlertEvent]], *, end_s: float
    ) -> None:
        op = self._open.pop(kind)
        ev = replace(
            op.event,
            end_s=float(max(end_s, op.event.start_s)),
            updated_s=self._now,
            revision=op.event.revision + 1,
        )
        self._last_closed_end[kind] = max(
            self._last_closed_end.get(kind, -math.inf), op.last_evidence_s
        )
        self._closed[ev.id] = ev
        while len(self._closed) > self.config.max_closed_alerts:
            self._closed.popitem(last=False)
        self._record(updates, ev, "closed")

    @staticmethod
    def _record(
        updates: dict[str, tuple[Change, AlertEvent]], event: AlertEvent, change: Change
    ) -> None:
        prev = updates.get(event.id)
        if prev is not None and _CHANGE_RANK[prev[0]] >= _CHANGE_RANK[change]:
            change = prev[0]
        updates[event.id] = (change, event)

    def _finish(self, updates: dict[str, tuple[Change, AlertEvent]]) -> list[AlertUpdate]:
        interval = self.config.report_interval_s
        for op in self._open.values():
            if op.id in updates:
                # reported by this call: with its latest snapshot (an extension after the opening
                # or escalation within the same call was recorded over it)
                op.reported_s, op.dirty = self._now, False
            elif op.dirty and self._now - op.reported_s >= interval:
                self._record(updates, op.event, "extended")
                op.reported_s, op.dirty = self._now, False
        out = [AlertUpdate(event, change) for change, event in updates.values()]
        return sorted(out, key=lambda u: (u.event.start_s, u.event.kind))

    def _news2_text(self, result: News2Result) -> tuple[dict[str, Any], str]:
        """The values and message of a NEWS2 episode of ``result``.

        Kept per result on the fast path: the episode's values are only read through
        ``Episode.evidence()``, which converts them into a new dict, so episodes may share one.
        """
        hit = self._news2_texts.get(id(result)) if self._incremental else None
        if hit is not None and hit[0] is result:
            return hit[1], hit[2]
        values = {**result.to_dict()}
        message = f"NEWS2 {result.total} ({result.band} clinical risk)" + (
            "" if result.complete else f"; partial score, not measured: {', '.join(result.missing)}"
        )
        if self._incremental:
            if len(self._news2_texts) >= 64:
                self._news2_texts.clear()
            # the entry holds the result, so its id is not reused while it is there
            self._news2_texts[id(result)] = (result, values, message)
        return values, message

    def _score_news2(self, now: float) -> News2Result:
        fresh = {
            name: value
            for name, (t, value) in self._vitals.items()
            if now - t <= self.config.vitals_max_age_s
        }
        if "heart_rate_bpm" not in fresh and self.config.news2_use_beat_hr and self._time.size > 4:
            w = self.config.rules.hr_window_beats
            cached = self._series
            if cached is not None and cached[0] == self._version and w >= 4:
                # the rules' smoothed rate of this very window (min(4, w) = 4 intervals, as here)
                recent = smoothed_rate(cached[1], w)[-1]
            else:
                hr = heart_rate(self.window(), window_beats=w)
                recent = hr.smoothed_bpm[-1]
            if np.isfinite(recent) and now - self._time[-1] <= self.config.vitals_max_age_s:
                fresh["heart_rate_bpm"] = float(recent)
        site = self._temperature_site
        # news2() is a pure function of the vitals (and the configured skin offset): the scores
        # of recent readings are kept, keyed by every value with its type (1 == 1.0 == True
        # would share a key otherwise, and a bool is refused where a number is scored)
        # (the reference path, _incremental False, scores every reading afresh)
        key: tuple[Any, ...] | None = None
        if self._incremental:
            key = (site, *((k, type(v), v) for k, v in sorted(fresh.items()) if k in _VITAL_FIELDS))
            try:
                hit = self._news2_memo.get(key)
            except TypeError:  # an unhashable value: news2() says what is wrong with it
                key, hit = None, None
            if hit is not None:
                return hit
        vitals = Vitals(
            temperature_site=site, **{k: v for k, v in fresh.items() if k in _VITAL_FIELDS}
        )
        result = news2(vitals, skin_to_core_offset_c=self.config.skin_to_core_offset_c)
        if key is not None:
            if len(self._news2_memo) >= 64:
                self._news2_memo.clear()
            self._news2_memo[key] = result
        return result
