"""Explanations by alarm type (``GET /api/v1/alerts/{id}/explanation`` builds them here).

* **Rhythm alarms** (AF-like, brady-/tachycardia, pause): the RR tachogram of the episode (and
  the dashboard's Poincare plot for AF) with the statistic that fired and its threshold; no
  beat boxes on the strip (an AF episode has every beat "involved").
* **Beat alarms** (couplet, run, bigeminy, trigeminy, frequent PVC/SVEB): a short strip at
  readable scale around the involved beats; only those beats are highlighted, each with its
  label and probabilities (the strip is at most :data:`BEAT_STRIP_S` long).
* **NEWS2**: the aggregate broken down by vital sign (value, unit, sub-score).
* **VF/VT**: onset and offset on the strip (VT also highlights its beats).

Thresholds are those of the default rule configuration (:class:`heartline.alerts.rules.RuleConfig`):
a stored alert does not record the configuration that raised it.

Per-sample attributions (an explanation model's output, e.g. occlusion maps over the ONNX beat
classifier) slot into :attr:`AlertExplanation.attributions`: :func:`attributions_for` is the hook,
returning ``None`` until such a provider is registered with :func:`register_attribution_provider`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from heartline.alerts.rules import RuleConfig
from heartline.service.routes.patients import ecg_window
from heartline.service.schemas import (
    AlertExplanation,
    AlertPublic,
    AttributionOverlay,
    BeatPublic,
    EcgWindowPublic,
    ExplanationStatistic,
    News2BreakdownPublic,
    News2RowPublic,
    RrSeriesPublic,
)
from heartline.storage import repository as repo
from heartline.storage.tables import Alert, Beat

log = logging.getLogger(__name__)

__all__ = [
    "BEAT_STRIP_S",
    "RHYTHM_MAX_S",
    "VIEWS",
    "build_explanation",
    "register_attribution_provider",
]

#: Alarm kind -> explanation view.
VIEWS: Mapping[str, str] = {
    "af_like": "rhythm",
    "bradycardia": "rhythm",
    "tachycardia": "rhythm",
    "pause": "rhythm",
    "v_couplet": "beats",
    "v_run": "beats",
    "ventricular_bigeminy": "beats",
    "ventricular_trigeminy": "beats",
    "frequent_pvc": "beats",
    "frequent_sveb": "beats",
    "news2": "news2",
    "vf": "episode",
    "vt": "episode",
}
#: Longest strip of a beat alarm (s): long enough for the involved beats, short enough to read.
BEAT_STRIP_S = 10.0
#: Longest RR tachogram (s) of a rhythm alarm.
RHYTHM_MAX_S = 600.0
#: Longest strip of the other views (s).
STRIP_MAX_S = 30.0
#: Seconds of ECG around the evidence.
MARGIN_S = 3.0

_NEWS2_UNITS: Mapping[str, str] = {
    "respiration_rate": "/min",
    "spo2": "%",
    "supplemental_oxygen": "",
    "systolic_bp": "mmHg",
    "pulse": "bpm",
    "consciousness": "ACVPU",
    "temperature": "°C",
}

#: ``provider(session, alert, ecg, highlighted_beats)``: the explanation's strip and the stored
#: beats it highlights (time order).
AttributionProvider = Callable[
    [Session, Alert, EcgWindowPublic, list[Beat]], AttributionOverlay | None
]
_PROVIDERS: dict[str, AttributionProvider] = {}


def register_attribution_provider(provider: AttributionProvider, *, key: str | None = None) -> None:
    """Register a function giving per-sample attributions for an alert's strip (or ``None``).

    The first provider that answers fills :attr:`AlertExplanation.attributions`, which the
    dashboard draws as a heat band under the trace (``drawAttributions`` in ``paper.js``).
    A provider registered under an existing ``key`` replaces it (each
    :func:`~heartline.service.app.create_app` registers the occlusion provider under
    ``"occlusion"``, see :mod:`heartline.service.attributions`).
    """
    _PROVIDERS[key if key is not None else f"provider-{id(provider)}"] = provider


def attributions_for(
    session: Session, alert: Alert, ecg: EcgWindowPublic, highlighted: list[Beat]
) -> AttributionOverlay | None:
    """The hook: per-sample attributions of the first registered provider that has some.

    A provider that fails is logged and skipped: the rest of the explanation still answers.
    """
    for key, provider in list(_PROVIDERS.items()):
        try:
            out = provider(session, alert, ecg, highlighted)
        except Exception:
            log.exception("attribution provider %s failed on alert %s", key, alert.id)
            continue
        if out is not None:
            return out
    return None


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _parts(ev: Mapping[str, Any], key: str) -> list[Any]:
    out: list[Any] = []
    for part in ("trigger", "peak", "latest"):
        sub = ev.get(part)
        if isinstance(sub, Mapping) and isinstance(sub.get(key), list):
            out.extend(sub[key])
    if isinstance(ev.get(key), list):
        out.extend(ev[key])
    return out


def _evidence_times(ev: Mapping[str, Any]) -> list[float]:
    return sorted(
        {
            float(t)
            for t in _parts(ev, "times_s")
            if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
        }
    )


def _values(ev: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("trigger", "latest", "peak"):
        sub = ev.get(part)
        if isinstance(sub, Mapping) and isinstance(sub.get("values"), Mapping):
            out.update(sub["values"])
    return out


def _highlighted(ev: Mapping[str, Any], beats: list[Beat]) -> list[int]:
    """Stored beats matching the evidence: database ids, ``(seq, sample_idx)`` or time (5 ms)."""
    ids = (
        {x for x in ev.get("beats", []) if isinstance(x, int)}
        if isinstance(ev.get("beats"), list)
        else set()
    )
    pairs: set[tuple[int, int]] = set()
    for item in ev.get("beats", []) if isinstance(ev.get("beats"), list) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.add((int(item[0]), int(item[1])))
    times = _evidence_times(ev)
    out = []
    for b in beats:
        ts = b.time.timestamp()
        if b.id in ids or (b.seq, b.sample_idx) in pairs:
            out.append(b.id)
            continue
        # times sorted: binary search for the nearest evidence time
        lo, hi = 0, len(times)
        while lo < hi:
            mid = (lo + hi) // 2
            if times[mid] < ts:
                lo = mid + 1
            else:
                hi = mid
        near = [times[i] for i in (lo - 1, lo) if 0 <= i < len(times)]
        if any(abs(ts - t) < 0.005 for t in near):
            out.append(b.id)
    return out


def _alert_span(alert: Alert) -> tuple[datetime, datetime]:
    ev = alert.evidence or {}
    end = alert.end_time
    if end is None:
        last = ev.get("last_evidence_s")
        end = (
            _utc(float(last))
            if isinstance(last, (int, float)) and not isinstance(last, bool)
            else alert.start_time
        )
    return alert.start_time, max(end, alert.start_time)


def _rr(beats: list[Beat]) -> RrSeriesPublic:
    times, rr = [], []
    for a, b in itertools.pairwise(beats):
        d = (b.time - a.time).total_seconds()
        if 0.2 <= d <= 3.5:  # physiological intervals only (gaps in the data are not RR)
            times.append(b.time)
            rr.append(round(d * 1000.0, 1))
    return RrSeriesPublic(time=times, rr_ms=rr)


def _tpr_bounds(n: int, z: float = 3.0) -> tuple[float, float]:
    """Turning-point ratio of a random series of length ``n``: ``mu +- 3 sigma`` (Dash et al. 2009)."""
    mu = 2.0 * (n - 2) / 3.0
    sigma = math.sqrt((16.0 * n - 29.0) / 90.0)
    return (mu - z * sigma) / n, (mu + z * sigma) / n


def _rhythm_statistics(
    kind: str, v: Mapping[str, Any], cfg: RuleConfig
) -> list[ExplanationStatistic]:
    def num(key: str) -> float | None:
        x = v.get(key)
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    ref = "Dash et al. 2009, Ann Biomed Eng 37:1701"
    if kind == "af_like":
        n = cfg.af_window_beats
        m = n - 2 * ((n + 8) // 16)
        lo, hi = _tpr_bounds(m)
        nrmssd, tpr, she = num("nrmssd"), num("tpr"), num("shannon_entropy")
        out = [
            ExplanationStatistic(
                name="normalised RMSSD",
                value=nrmssd,
                threshold=cfg.af_nrmssd_min,
                comparison=">",
                fired=None if nrmssd is None else nrmssd > cfg.af_nrmssd_min,
                reference=ref,
            ),
            ExplanationStatistic(
                name="turning point ratio",
                value=tpr,
                threshold=round(lo, 3),
                comparison="within",
                fired=None if tpr is None else lo < tpr < hi,
                reference=f"{ref}; random-series band {lo:.3f}-{hi:.3f}",
            ),
        ]
        if v.get("method", "dash2009") == "dash2009":
            out.append(
                ExplanationStatistic(
                    name="Shannon entropy",
                    value=she,
                    threshold=cfg.af_entropy_min,
                    comparison=">",
                    fired=None if she is None else she > cfg.af_entropy_min,
                    reference=ref,
                )
            )
        mean = num("mean_bpm")
        if mean is not None:
            out.append(
                ExplanationStatistic(
                    name="mean rate (rapid ventricular response above)",
                    value=round(mean, 1),
                    threshold=cfg.af_rvr_bpm,
                    comparison=">",
                    unit="bpm",
                    fired=mean > cfg.af_rvr_bpm,
                )
            )
        return out
    if kind in ("bradycardia", "tachycardia"):
        brady = kind == "bradycardia"
        ext = num("extreme_bpm")
        thr = cfg.brady_bpm if brady else cfg.tachy_bpm
        return [
            ExplanationStatistic(
                name=("lowest" if brady else "highest") + f" rate over {cfg.hr_window_beats} beats",
                value=None if ext is None else round(ext, 1),
                threshold=thr,
                comparison="<" if brady else ">",
                unit="bpm",
                fired=None if ext is None else (ext < thr if brady else ext > thr),
            )
        ]
    if kind == "pause":
        rr = num("rr_s")
        return [
            ExplanationStatistic(
                name="longest RR interval",
                value=rr,
                threshold=cfg.asystole_s if v.get("asystole") else cfg.pause_s,
                comparison=">",
                unit="s",
                fired=None if rr is None else rr > cfg.pause_s,
            )
        ]
    return []


def _beat_statistics(
    kind: str, v: Mapping[str, Any], cfg: RuleConfig
) -> list[ExplanationStatistic]:
    def num(key: str) -> float | None:
        x = v.get(key)
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    if kind in ("frequent_pvc", "frequent_sveb"):
        pm = num("max_per_min")
        thr = cfg.pvc_per_min if kind == "frequent_pvc" else cfg.sveb_per_min
        return [
            ExplanationStatistic(
                name=f"ectopic beats in {cfg.ectopy_window_s:g} s",
                value=pm,
                threshold=thr,
                comparison=">",
                unit="/min",
                fired=None if pm is None else pm > thr,
            )
        ]
    if kind in ("vt", "v_run", "v_couplet"):
        rate = num("rate_bpm")
        out = [
            ExplanationStatistic(
                name="ventricular rate",
                value=None if rate is None or not math.isfinite(rate) else round(rate, 1),
                threshold=cfg.vt_rate_bpm,
                comparison=">",
                unit="bpm",
                fired=None if rate is None else rate > cfg.vt_rate_bpm,
            )
        ]
        if kind == "vt":
            out.append(
                ExplanationStatistic(
                    name="duration (sustained above)",
                    value=num("duration_s"),
                    threshold=cfg.sustained_vt_s,
                    comparison=">",
                    unit="s",
                    fired=bool(v.get("sustained")),
                )
            )
        return out
    if kind in ("ventricular_bigeminy", "ventricular_trigeminy"):
        c = num("cycles")
        return [
            ExplanationStatistic(
                name="consecutive cycles",
                value=c,
                threshold=cfg.pattern_min_cycles,
                comparison=">",
                fired=None if c is None else c >= cfg.pattern_min_cycles,
            )
        ]
    return []


def _news2(v: Mapping[str, Any]) -> News2BreakdownPublic:
    subs = v.get("subscores") if isinstance(v.get("subscores"), Mapping) else {}
    rows = []
    for name, unit in _NEWS2_UNITS.items():
        sub = subs.get(name) if isinstance(subs, Mapping) else None
        sub = sub if isinstance(sub, Mapping) else {}
        score = sub.get("score")
        rows.append(
            News2RowPublic(
                parameter=name,
                value=sub.get("value"),
                unit=unit,
                score=int(score) if isinstance(score, int) else None,
                note=sub.get("note") if isinstance(sub.get("note"), str) else None,
            )
        )
    total = v.get("total")
    return News2BreakdownPublic(
        total=int(total) if isinstance(total, int) else None,
        band=v.get("band") if isinstance(v.get("band"), str) else None,
        complete=v.get("complete") if isinstance(v.get("complete"), bool) else None,
        missing=[str(x) for x in v.get("missing", [])]
        if isinstance(v.get("missing"), list)
        else [],
        rows=rows,
    )


def build_explanation(
    session: Session, alert: Alert, *, silenced_until: datetime | None = None
) -> AlertExplanation:
    """The explanation of ``alert`` for its view (see the module docstring)."""
    ev: Mapping[str, Any] = alert.evidence or {}
    kind = alert.type
    view = VIEWS.get(kind, "generic")
    cfg = RuleConfig()
    values = _values(ev)
    a0, a1 = _alert_span(alert)
    times = _evidence_times(ev)
    margin = timedelta(seconds=MARGIN_S)
    rr = None
    statistics: list[ExplanationStatistic] = []
    news2 = None
    onset = offset = None
    if view == "rhythm":
        first = _utc(times[0]) if times else a0
        last = _utc(times[-1]) if times else a1
        r0, r1 = min(first, a0) - margin, max(last, a1) + margin
        r1 = min(r1, r0 + timedelta(seconds=RHYTHM_MAX_S))
        rhythm_beats = repo.beats_between(session, patient_id=alert.patient_id, start=r0, stop=r1)
        rr = _rr(rhythm_beats)
        statistics = _rhythm_statistics(kind, values, cfg)
        if kind == "pause":  # the strip shows the pause itself
            start = first - margin
        else:
            start = a0 - margin
        end = min(max(last, a1) + margin, start + timedelta(seconds=min(STRIP_MAX_S, 12.0)))
    elif view == "beats":
        first = _utc(times[0]) if times else a0
        last = _utc(times[-1]) if times else a1
        start = first - timedelta(seconds=2.0)
        end = min(last + timedelta(seconds=2.0), start + timedelta(seconds=BEAT_STRIP_S))
        statistics = _beat_statistics(kind, values, cfg)
    elif view == "episode":
        onset, offset = a0, alert.end_time
        if kind == "vt":
            statistics = _beat_statistics(kind, values, cfg)
        stop = offset if offset is not None else a1
        start = onset - timedelta(seconds=4.0)
        end = min(stop + timedelta(seconds=4.0), start + timedelta(seconds=STRIP_MAX_S))
    elif view == "news2":
        news2 = _news2(values)
        start, end = a0 - timedelta(seconds=5.0), a0 + timedelta(seconds=5.0)
    else:
        first = _utc(times[0]) if times else a0
        last = _utc(times[-1]) if times else a1
        start = first - margin
        end = min(last + margin, start + timedelta(seconds=STRIP_MAX_S))
    if end <= start:
        end = start + timedelta(seconds=10.0)
    beats = repo.beats_between(session, patient_id=alert.patient_id, start=start, stop=end)
    highlighted = [] if view in ("rhythm", "news2") and kind != "pause" else _highlighted(ev, beats)
    ecg = ecg_window(session, patient_id=alert.patient_id, start=start, end=end)
    return AlertExplanation(
        alert=AlertPublic.from_row(alert, silenced_until=silenced_until),
        ecg=ecg,
        beats=[BeatPublic.model_validate(b) for b in beats],
        highlighted_beat_ids=highlighted,
        view=view,  # type: ignore[arg-type]
        onset=onset,
        offset=offset,
        rr=rr,
        statistics=statistics,
        news2=news2,
        attributions=attributions_for(
            session, alert, ecg, [b for b in beats if b.id in set(highlighted)]
        ),
    )
