"""``heartline bench alarms``: the live alarm path scored, before and after the rhythm model.

Every number comes from :func:`heartline.ingestion.replay.replay_signal`, the stream
processor's own stages (frames, detector, quality, beat model chosen by leads, rhythm model,
alert engine), in two configurations:

* ``before``: the RR-irregularity AF rule only (``rhythm_model=None``: the engine's
  ``af_source="auto"`` then keeps the rule),
  no start-up fixes (``quality_warmup_s=0``, ``startup_beats=0``), the engine's default
  2 s signal-quality notice: the alarm path as it was;
* ``after``: the rhythm model every 5 s on the last 30 s (AF alarm from the model, only from
  a full 30 s window, ``~`` suppressing rhythm alarms), the signal-quality start-up window
  skipped (also left out of the rhythm windows), the first three beats of a segment never
  ``V`` for the rules, V beats counted as ectopy only when premature (``V_PREMATURITY``), the
  signal-quality notice only for 10 s of unusable signal (``QUALITY_SUSTAIN_WINDOW_S``) or a
  full 30 s ``~`` window (``NOISY_NOTICE_MIN_WINDOW_S``), low-priority episodes held for the
  rhythm verdict (``RHYTHM_CONFIRM_S``), a model AF window below p 0.9 confirmed by its RR
  intervals (``AF_MODEL_RR_CHECK``, ``AF_MODEL_CONFIDENT_P``), V beats the beat artefact
  model calls motion artefacts kept out of the rules when ``BEAT_ARTEFACT`` is on (the
  processor's defaults; ``--artefact-model`` overrides the last for ``after``).

``--half dev|held_out`` scores only that half of the CinC sample (:func:`cinc_dev_half`), so
that a candidate is chosen on the development half without the held-out figures being computed.

Scores
------
(a) **AF episodes** on the MIT-BIH records with AF (201, 202, 203, 210, 219, 221, 222; full
    records, both leads) against the ``(AFIB`` rhythm annotations of their ``.atr`` files, in
    the manner of ANSI/AAMI EC57:2012's AF section: episode Se = reference AF episodes
    overlapped by an ``af_like`` alarm / all reference AF episodes; episode +P = ``af_like``
    alarms overlapping a reference AF episode / all ``af_like`` alarms; duration Se = AF time
    covered by alarms / reference AF time; duration +P = alarm time in reference AF / alarm
    time. Pooled over the records (gross statistics).
(b) **False alarms on wearable data**: the shared CinC 2017 records labelled normal (``N``) and
    noisy (``~``) replayed as 300 Hz single-lead devices: the fraction of records with at least
    one physiological alarm, and of ``N`` records with a signal-quality notice.
(c) **Cost**: CPU time of the whole processor path per device-second, rhythm model on and off
    (``time.process_time``, one thread), and the rhythm stage's own CPU time.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heartline.defaults import (
    DEFAULT_RHYTHM_INTERVAL_S,
    MAX_RHYTHM_INTERVAL_S,
    MIN_RHYTHM_INTERVAL_S,
)

__all__ = [
    "AF_RECORDS",
    "CONFIGS",
    "TARGETS",
    "af_episode_scores",
    "choose_cinc",
    "cinc_dev_half",
    "reference_af_episodes",
    "run_alarms_benchmark",
    "split_summary",
    "write_alarms_report",
]

log = logging.getLogger(__name__)

#: MIT-BIH records with atrial fibrillation (issue 19).
AF_RECORDS: tuple[str, ...] = ("201", "202", "203", "210", "219", "221", "222")
#: Processor options of the two configurations compared.
CONFIGS: dict[str, dict[str, Any]] = {
    "before": {
        "rhythm_model": None,
        "quality_warmup_s": 0.0,
        "startup_beats": 0,
        "engine_config": "rules-default",
    },
    "after": {},
}
#: Issue 19's targets.
TARGETS: dict[str, tuple[str, float]] = {
    "af_episode_se": (">=", 0.95),
    "af_episode_ppv": (">=", 0.90),
    "noisy_physiological_frac": ("<=", 0.05),
    "normal_physiological_frac": ("<=", 0.02),
    "normal_signal_quality_frac": ("<=", 0.10),
}


#: Seed of the development half of the CinC N and ~ records (:func:`cinc_dev_half`).
DEV_SEED = 2019


def cinc_dev_half(labels: dict[str, str], *, seed: int = DEV_SEED) -> set[str]:
    """The development half of the CinC ``N`` and ``~`` records: per class, the first half of
    the sorted record names shuffled with ``random.Random(seed)``.

    The alarm path's wearable gating (prematurity, the 30 s AF window, the warm-up of the
    rhythm windows) was chosen looking at these records only; the others are held out.
    """
    rng = random.Random(seed)
    dev: set[str] = set()
    for lab in ("N", "~"):
        recs = sorted(r for r, v in labels.items() if v == lab)
        rng.shuffle(recs)
        dev.update(recs[: len(recs) // 2])
    return dev


def choose_cinc(
    labels: dict[str, str], *, seed: int, cinc_normal: int | None, cinc_noisy: int | None
) -> dict[str, list[str]]:
    """The scored CinC records: per class (``N`` then ``~``) a ``random.Random(seed)`` sample
    of that many sorted record names, or all of them (``None`` or more than there are)."""
    rng = random.Random(seed)
    chosen: dict[str, list[str]] = {}
    for lab, k in (("N", cinc_normal), ("~", cinc_noisy)):
        recs = sorted(r for r, v in labels.items() if v == lab)
        chosen[lab] = sorted(rng.sample(recs, k)) if k is not None and k < len(recs) else recs
    return chosen


def split_summary(
    report: dict[str, Any], labels: dict[str, str], *, seed: int = DEV_SEED
) -> dict[str, dict[str, dict[str, float]]]:
    """CinC fractions of the ``after`` configuration on the development and held-out halves.

    ``report`` is a written ``alarms.json``; ``labels`` the
    ``REFERENCE-v3.csv`` labels. Returns ``{"dev"|"held_out": {"N"|"~": {"n", "physiological_frac",
    "signal_quality_frac"}}}``.
    """
    dev = cinc_dev_half(labels, seed=seed)
    cinc = report["configs"]["after"]["cinc"]
    n = report["cinc_records"]
    scored = choose_cinc(labels, seed=report["seed"], cinc_normal=n["N"], cinc_noisy=n["~"])
    half = report.get("half")
    parts = (("dev", True), ("held_out", False))
    if half is not None:  # a run of one half only: only that half is summarised
        parts = tuple(pk for pk in parts if pk[0] == half)
    out: dict[str, dict[str, dict[str, float]]] = {part: {} for part, _ in parts}
    for lab in ("N", "~"):
        recs = scored[lab]
        phys = set(cinc[lab]["records_with_physiological_alarm"])
        sq = set(cinc[lab]["records_with_signal_quality"])
        for part, keep in parts:
            sel = [r for r in recs if (r in dev) == keep]
            out[part][lab] = {
                "n": len(sel),
                "physiological_frac": _ratio(sum(r in phys for r in sel), len(sel)),
                "signal_quality_frac": _ratio(sum(r in sq for r in sel), len(sel)),
            }
    return out


def reference_af_episodes(path: str | os.PathLike[str]) -> tuple[list[tuple[float, float]], float]:
    """``(AFIB`` episodes ``[(start_s, end_s)]`` of a MIT-BIH record and its duration (s)."""
    import wfdb

    ann = wfdb.rdann(str(path), "atr")
    hdr = wfdb.rdheader(str(path))
    fs, dur = float(hdr.fs), hdr.sig_len / float(hdr.fs)
    eps: list[tuple[float, float]] = []
    start: float | None = None
    for s, aux in zip(ann.sample, ann.aux_note, strict=True):
        note = (aux or "").strip("\x00").strip()
        if not note.startswith("("):
            continue
        t = float(s) / fs
        if start is not None:
            eps.append((start, t))
            start = None
        if note.startswith("(AFIB"):
            start = t
    if start is not None:
        eps.append((start, dur))
    return eps, dur


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def af_episode_scores(
    reference: Sequence[tuple[float, float]], detected: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """Counts for episode and duration Se/+P of one record (see the module docstring)."""
    ref_hit = sum(any(_overlap(r, d) > 0 for d in detected) for r in reference)
    det_hit = sum(any(_overlap(d, r) > 0 for r in reference) for d in detected)
    ref_time = sum(b - a for a, b in reference)
    det_time = sum(b - a for a, b in _union(detected))
    both = sum(_overlap(r, d) for r in reference for d in _union(detected))
    return {
        "n_ref": len(reference),
        "n_ref_detected": ref_hit,
        "n_det": len(detected),
        "n_det_true": det_hit,
        "ref_s": ref_time,
        "det_s": det_time,
        "overlap_s": both,
    }


def _union(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def _processor(beat_model: Any, config: dict[str, Any], rhythm: Any) -> Any:
    from heartline.alerts.engine import EngineConfig
    from heartline.ingestion.replay import ReplayProcessor

    opts = dict(config)
    opts.setdefault("rhythm_model", rhythm)
    if opts.get("engine_config") == "rules-default":
        opts["engine_config"] = EngineConfig()
    return ReplayProcessor(model=beat_model, profile=True, **opts)


def _replay(beat_model: Any, config: dict[str, Any], rhythm: Any, sig, fs, leads, name):
    from heartline.ingestion.replay import replay_signal

    proc = _processor(beat_model, config, rhythm)
    t = time.process_time()
    rows = replay_signal(sig, fs=fs, lead_names=leads, record=name, processor=proc)
    cpu = time.process_time() - t
    stage = dict(proc.stage_times or {})
    return rows, cpu, stage


def _run_part(
    args: tuple[str, str, str, tuple[str, ...], dict[str, list[str]], float | None, dict[str, Any]],
    tick: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """One configuration's AF part (MIT-BIH) or CinC part, in this process."""
    import warnings

    from heartline.edge.rhythm import OnnxRhythmClassifier
    from heartline.ingestion.replay import shipped_beat_model
    from heartline.io.readers import read_ecg

    cname, part, root_s, af_records, chosen, max_s, overrides = args
    root = Path(root_s)
    config = {**CONFIGS[cname], **overrides}
    beat_model = shipped_beat_model()
    rhythm = OnnxRhythmClassifier()
    n_done = 0

    def _tick(desc: str) -> None:
        nonlocal n_done
        n_done += 1
        if tick is not None:
            tick(desc)

    res: dict[str, Any] = {"af": {}, "cinc": {}, "cost": {}}
    if part == "af":
        for rec in af_records:
            path = root / "mitdb" / rec
            r = read_ecg(path)
            sig = r.signal if max_s is None else r.signal[: round(max_s * r.fs)]
            ref, dur = reference_af_episodes(path)
            dur = sig.shape[0] / r.fs
            ref = [(a, min(b, dur)) for a, b in ref if a < dur]
            rows, cpu, stage = _replay(
                beat_model, config, rhythm, sig, r.fs, tuple(r.lead_names), rec
            )
            det = [(x.start_s, x.end_s) for x in rows if x.type == "af_like"]
            sc = af_episode_scores(ref, det)
            sc["alarms"] = [x.to_dict() for x in rows if x.type == "af_like"]
            sc["reference"] = [[round(a, 2), round(b, 2)] for a, b in ref]
            sc["duration_s"] = dur
            sc["cpu_s"] = cpu
            sc["rhythm_cpu_s"] = stage.get("rhythm", 0.0)
            res["af"][rec] = sc
            _tick(f"{cname} MIT-BIH {rec}")

    else:
        for lab, recs in chosen.items():
            per: dict[str, Any] = {}
            for rec in recs:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = read_ecg(root / "cinc2017" / rec)
                    rows, _cpu, _st = _replay(
                        beat_model, config, rhythm, r.signal, r.fs, tuple(r.lead_names), rec
                    )
                    per[rec] = sorted({(x.type, x.technical) for x in rows})
                except Exception as exc:  # a record that fails is counted, never fatal
                    log.warning("CinC %s: %s", rec, exc)
                    per[rec] = [("error", True)]
                _tick(f"{cname} CinC {lab} {rec}")
            res["cinc"][lab] = per

    res.pop("cost")
    return res, n_done


def _summarise(res: dict[str, Any]) -> None:
    """Pooled AF scores, cost and CinC fractions of one configuration (in place)."""
    af = res["af"]
    keys = ("n_ref", "n_ref_detected", "n_det", "n_det_true", "ref_s", "det_s", "overlap_s")
    pooled = {k: sum(v[k] for v in af.values()) for k in keys}
    res["af_pooled"] = {
        **pooled,
        "episode_se": _ratio(pooled["n_ref_detected"], pooled["n_ref"]),
        "episode_ppv": _ratio(pooled["n_det_true"], pooled["n_det"]),
        "duration_se": _ratio(pooled["overlap_s"], pooled["ref_s"]),
        "duration_ppv": _ratio(pooled["overlap_s"], pooled["det_s"]),
    }
    cpu = sum(v["cpu_s"] for v in af.values())
    dev = sum(v["duration_s"] for v in af.values())
    rcpu = sum(v["rhythm_cpu_s"] for v in af.values())
    res["cost"] = {
        "cpu_s": cpu,
        "device_s": dev,
        "cpu_us_per_device_s": 1e6 * cpu / dev if dev else math.nan,
        "rhythm_cpu_us_per_device_s": 1e6 * rcpu / dev if dev else 0.0,
        "records": "MIT-BIH AF records, two leads at 360 Hz",
    }
    for lab, per in list(res["cinc"].items()):
        n = len(per)
        phys = [k for k, v in per.items() if any(not tech for _t, tech in v)]
        sq = [k for k, v in per.items() if any(t == "signal_quality" for t, _ in v)]
        kinds: dict[str, int] = {}
        for v in per.values():
            for t, tech in v:
                if not tech:
                    kinds[t] = kinds.get(t, 0) + 1
        res["cinc"][lab] = {
            "n": n,
            "physiological_frac": _ratio(len(phys), n),
            "signal_quality_frac": _ratio(len(sq), n),
            "records_by_alarm_type": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
            "errors": sum(v == [("error", True)] for v in per.values()),
            "records_with_physiological_alarm": sorted(phys),
            "records_with_signal_quality": sorted(sq),
        }


def run_alarms_benchmark(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    cinc_normal: int | None = None,
    cinc_noisy: int | None = None,
    af_records: Sequence[str] = AF_RECORDS,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
    n_jobs: int = 1,
    configs: Sequence[str] = tuple(CONFIGS),
    rhythm_interval_s: float = DEFAULT_RHYTHM_INTERVAL_S,
    af_gate: bool = False,
    half: str | None = None,
    artefact_model: str | None = None,
) -> dict[str, Any]:
    """Run scores (a)-(c) for both configurations; returns the report dict.

    ``quick``: at most 2 AF records (first 10 min), 12 ``N`` and 8 ``~`` CinC records unless
    given. ``cinc_normal``
    / ``cinc_noisy``: a seeded random subset of that many records of the class (``None``: all).
    ``n_jobs``: processes (the two configurations' MIT-BIH and CinC parts run apart).
    ``configs``: the configurations to run (``after`` is always among them: the targets are
    its figures). ``half``: ``"dev"`` or ``"held_out"`` scores only that half of the CinC
    sample (:func:`cinc_dev_half`; the MIT-BIH AF records are always scored), so that a
    candidate can be chosen without the held-out figures being computed. ``artefact_model``:
    the ``after`` processor's beat artefact model (``StreamProcessor(artefact_model=...)``:
    ``"off"``, ``"shipped"`` or a path; ``None``: the processor's default).
    ``rhythm_interval_s``: the rhythm model's cadence in the ``after`` configuration (the
    processor's default, 5 s; ``heartline serve --rhythm-interval-s``). ``af_gate``: the
    ``after`` processor's AF gate on ``S`` calls (``heartline serve --af-gate``).
    """
    if half not in (None, "dev", "held_out"):
        raise ValueError(f"half must be None, 'dev' or 'held_out', got {half!r}")
    if not MIN_RHYTHM_INTERVAL_S <= rhythm_interval_s <= MAX_RHYTHM_INTERVAL_S:
        raise ValueError(
            f"rhythm_interval_s must be in [{MIN_RHYTHM_INTERVAL_S:g}, {MAX_RHYTHM_INTERVAL_S:g}] s, "
            f"got {rhythm_interval_s}"
        )
    configs = tuple(c for c in CONFIGS if c in set(configs) | {"after"})
    from heartline.data.paths import resolve_data_dir

    root = resolve_data_dir(data_dir)
    t_start = time.time()
    if quick:
        af_records = tuple(af_records[:2])
        cinc_normal = cinc_normal or 12
        cinc_noisy = cinc_noisy or 8
    max_s = 600.0 if quick else None
    # ---- CinC subset (seeded, stratified by label)
    labels: dict[str, str] = {}
    for line in (root / "cinc2017" / "REFERENCE-v3.csv").read_text().splitlines():
        if "," in line:
            rec, lab = line.strip().split(",")[:2]
            labels[rec] = lab
    chosen = choose_cinc(labels, seed=seed, cinc_normal=cinc_normal, cinc_noisy=cinc_noisy)
    sample_sizes = {k: len(v) for k, v in chosen.items()}
    if half is not None:
        dev = cinc_dev_half(labels)
        chosen = {k: [r for r in v if (r in dev) == (half == "dev")] for k, v in chosen.items()}
    overrides: dict[str, Any] = {}
    if artefact_model is not None:
        overrides["artefact_model"] = None if artefact_model == "off" else artefact_model
    if rhythm_interval_s != DEFAULT_RHYTHM_INTERVAL_S:
        overrides["rhythm_interval_s"] = rhythm_interval_s
    if af_gate:
        overrides["af_gate"] = True
    total = len(configs) * (len(af_records) + sum(len(v) for v in chosen.values()))
    done = 0

    def tick(desc: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(desc, done, total)

    report: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "af_records": list(af_records),
        "cinc_records": sample_sizes,
        "half": half,
        "cinc_scored": {k: len(v) for k, v in chosen.items()},
        "artefact_model": artefact_model,
        "cinc_available": {k: sum(v == k for v in labels.values()) for k in ("N", "~")},
        "configs": {},
        "rhythm_interval_s": rhythm_interval_s,
        "af_gate": af_gate,
    }
    # parts: one per AF record and configuration, the CinC records in chunks of 40
    args = []
    for c in configs:
        ov = overrides if c == "after" else {}
        args += [(c, "af", str(root), (rec,), {}, max_s, ov) for rec in af_records]
        for lab, recs in chosen.items():
            for k in range(0, len(recs), 40):
                args.append((c, "cinc", str(root), (), {lab: recs[k : k + 40]}, max_s, ov))
    results: list[dict[str, Any]] = []
    if n_jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(n_jobs, len(args))) as pool:
            for res_part, n_done in pool.imap(_run_part, args):
                results.append(res_part)
                done += n_done
                if on_progress is not None:
                    on_progress("parts", done, total)
    else:
        for a in args:
            results.append(_run_part(a, tick=tick)[0])
    for a, res_part in zip(args, results, strict=True):
        res = report["configs"].setdefault(a[0], {"af": {}, "cinc": {"N": {}, "~": {}}})
        res["af"].update(res_part.get("af", {}))
        for lab, per in res_part.get("cinc", {}).items():
            res["cinc"][lab].update(per)
    for res in report["configs"].values():
        _summarise(res)
    after = report["configs"]["after"]
    got = {
        "af_episode_se": after["af_pooled"]["episode_se"],
        "af_episode_ppv": after["af_pooled"]["episode_ppv"],
        "noisy_physiological_frac": after["cinc"]["~"]["physiological_frac"],
        "normal_physiological_frac": after["cinc"]["N"]["physiological_frac"],
        "normal_signal_quality_frac": after["cinc"]["N"]["signal_quality_frac"],
    }
    report["targets"] = {
        k: {
            "target": f"{op} {v:g}",
            "value": got[k],
            "met": bool(got[k] >= v if op == ">=" else got[k] <= v),
            "gap": float(got[k] - v),
        }
        for k, (op, v) in TARGETS.items()
    }
    report["wall_s"] = time.time() - t_start
    return report


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def render_alarms_markdown(report: dict[str, Any], command: str) -> str:
    """The report as Markdown."""
    c = report["configs"]
    lines = [
        "# Alarms: AF episodes, false alarms on wearable data, cost",
        "",
        f"Command: `{command}`" + (" (quick subset)" if report["quick"] else ""),
        "",
        "## (a) AF episodes on MIT-BIH (" + ", ".join(report["af_records"]) + ")",
        "",
        "| config | episodes ref | episode Se | episode +P | duration Se | duration +P |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in c.items():
        p = r["af_pooled"]
        lines.append(
            f"| {name} | {p['n_ref']} | {_pct(p['episode_se'])} ({p['n_ref_detected']}/{p['n_ref']})"
            f" | {_pct(p['episode_ppv'])} ({p['n_det_true']}/{p['n_det']}) | "
            f"{_pct(p['duration_se'])} | {_pct(p['duration_ppv'])} |"
        )
    lines += [
        "",
        "Per record (after):",
        "",
        "| record | ref episodes | detected | alarms | true alarms | dur Se | dur +P |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec, s in c["after"]["af"].items():
        lines.append(
            f"| {rec} | {s['n_ref']} | {s['n_ref_detected']} | {s['n_det']} | {s['n_det_true']} | "
            f"{_pct(_ratio(s['overlap_s'], s['ref_s']))} | {_pct(_ratio(s['overlap_s'], s['det_s']))} |"
        )
    n = report.get("cinc_scored") or report["cinc_records"]
    avail = report["cinc_available"]
    half = report.get("half")
    where = "" if half is None else f", the {half} half of the seeded sample"
    lines += [
        "",
        f"## (b) False alarms on CinC 2017 ({n['N']} of {avail['N']} N records, {n['~']} of "
        f"{avail['~']} ~ records; seed {report['seed']}{where})",
        "",
        "| config | ~ records with a physiological alarm | N records with a physiological alarm | N records with a signal-quality notice |",
        "|---|---|---|---|",
    ]
    for name, r in c.items():
        lines.append(
            f"| {name} | {_pct(r['cinc']['~']['physiological_frac'])} | "
            f"{_pct(r['cinc']['N']['physiological_frac'])} | {_pct(r['cinc']['N']['signal_quality_frac'])} |"
        )
    lines += ["", "Records by physiological alarm type (after):", ""]
    for lab in ("N", "~"):
        lines.append(f"- {lab}: {c['after']['cinc'][lab]['records_by_alarm_type']}")
    lines += [
        "",
        "## (c) Cost (CPU per device-second, whole processor path, one thread)",
        "",
        "| config | CPU µs per device-second | of it rhythm stage |",
        "|---|---|---|",
    ]
    for name, r in c.items():
        lines.append(
            f"| {name} | {r['cost']['cpu_us_per_device_s']:.0f} | {r['cost']['rhythm_cpu_us_per_device_s']:.0f} |"
        )
    lines += ["", "## Targets (after)", "", "| target | value | met |", "|---|---|---|"]
    for k, t in report["targets"].items():
        lines.append(
            f"| {k} {t['target']} | {t['value']:.3f} | {'yes' if t['met'] else 'no'} ({t['gap']:+.3f}) |"
        )
    lines += [
        "",
        f"Wall time {report['wall_s']:.0f} s (shared 2-core machine: re-measure timings).",
        "",
    ]
    return "\n".join(lines)


def write_alarms_report(
    report: dict[str, Any], out: str | os.PathLike[str], *, command: str = "heartline bench alarms"
) -> dict[str, Path]:
    """Write ``alarms.json``, ``alarms.md``, ``alarms_af.png`` and ``alarms_false.png``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "command": command}
    paths = {"json": out / "alarms.json", "md": out / "alarms.md"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    paths["md"].write_text(render_alarms_markdown(report, command), encoding="utf-8")
    # AF timelines: reference episodes and the alarms of both configs, per record
    recs = report["af_records"]
    fig, axes = plt.subplots(len(recs), 1, figsize=(10, 0.9 * len(recs) + 0.8), squeeze=False)
    for ax, rec in zip(axes[:, 0], recs, strict=True):
        after = report["configs"]["after"]["af"][rec]
        before = report["configs"].get("before", {}).get("af", {}).get(rec, {"alarms": []})
        for y, spans, color in (
            (2, after["reference"], "tab:green"),
            (1, [[a["start_s"], a["end_s"]] for a in before["alarms"]], "tab:gray"),
            (0, [[a["start_s"], a["end_s"]] for a in after["alarms"]], "tab:red"),
        ):
            ax.broken_barh([(a, max(b - a, 1.0)) for a, b in spans], (y - 0.4, 0.8), color=color)
        ax.set_yticks([0, 1, 2], ["after", "before", "ref AF"], fontsize=7)
        ax.set_xlim(0, after["duration_s"])
        ax.set_ylabel(rec, rotation=0, labelpad=18)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    paths["af_png"] = out / "alarms_af.png"
    fig.savefig(paths["af_png"], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(report["configs"])
    groups = ["~ phys.", "N phys.", "N sig. quality"]
    for i, name in enumerate(names):
        cc = report["configs"][name]["cinc"]
        vals = [
            cc["~"]["physiological_frac"],
            cc["N"]["physiological_frac"],
            cc["N"]["signal_quality_frac"],
        ]
        ax.bar(np.arange(3) + 0.38 * i, [100 * v for v in vals], 0.38, label=name)
    ax.plot([-0.2, 0.6], [5, 5], "k--", lw=1)
    ax.plot([0.8, 1.6], [2, 2], "k--", lw=1)
    ax.plot([1.8, 2.6], [10, 10], "k--", lw=1, label="target")
    ax.set_xticks(np.arange(3) + 0.19, groups)
    ax.set_ylabel("% of CinC records")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths["false_png"] = out / "alarms_false.png"
    fig.savefig(paths["false_png"], dpi=110)
    plt.close(fig)
    return paths
