"""QRS-detection benchmark: every registered detector on MIT-BIH and the Noise Stress Test DB.

Scoring follows the MIT-BIH convention used by ANSI/AAMI EC57: only beat annotations count
(:meth:`heartline.io.Annotations.beats`), a detection matches at most one reference beat and
vice versa, nearest first, within a tolerance (150 ms headline, 50 ms also reported). The
EC57 variant that ignores ventricular flutter/fibrillation episodes (between ``[`` and ``]``
annotations, only record 207 has them) is reported beside it as ``mitdb_vf_excluded``, because
flutter waves (``!``) are not beat annotations and every detector "finds" them.

Single-lead detectors get channel 0 (MLII on MIT-BIH); the multi-lead ones
(:data:`heartline.signal.rpeaks.MULTI_LEAD`, e.g. ``heartline_2lead``) get both channels. The
Heartline detectors' parameters were set on MIT-BIH, so their MIT-BIH figures are development-set
figures; NSTDB (118/119 with added electrode-motion noise) was not used to set them. Detection
time is the best of ``repeats`` runs (the machine may be shared; the minimum is the least
disturbed measurement).

References
----------
ANSI/AAMI EC57:2012, Testing and reporting performance results of cardiac rhythm and ST segment
measurement algorithms.
Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng Med Biol 20(3):45-50
(2001).
Moody GB, Muldrow WE, Mark RG. A noise stress test for arrhythmia detectors. Computers in
Cardiology 11:381-384 (1984).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartline.revision import git_head
from heartline.signal.rpeaks import DETECTORS, MULTI_LEAD, detect_r_peaks

__all__ = [
    "MITDB_RECORDS",
    "NSTDB_RECORDS",
    "NSTDB_SNRS",
    "QUICK_MITDB",
    "QUICK_NSTDB",
    "MatchCounts",
    "match_beats",
    "resample_signal_and_beats",
    "run_qrs_benchmark",
    "write_qrs_report",
]

logger = logging.getLogger(__name__)

MITDB_RECORDS: tuple[str, ...] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112", "113",
    "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200", "201", "202",
    "203", "205", "207", "208", "209", "210", "212", "213", "214", "215", "217", "219", "220",
    "221", "222", "223", "228", "230", "231", "232", "233", "234",
)  # fmt: skip
#: NSTDB SNR suffixes (dB): 24, 18, 12, 6, 0, -6.
NSTDB_SNRS: tuple[str, ...] = ("e24", "e18", "e12", "e06", "e00", "e_6")
NSTDB_RECORDS: tuple[str, ...] = tuple(f"{b}{s}" for s in NSTDB_SNRS for b in ("118", "119"))
QUICK_MITDB: tuple[str, ...] = ("100", "105", "108", "203", "208", "233")
QUICK_NSTDB: tuple[str, ...] = ("118e06", "119e06", "118e00", "119e00")
TOLERANCES_MS: tuple[int, int] = (150, 50)


@dataclass(frozen=True)
class MatchCounts:
    """True positives, false positives and false negatives of one comparison."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: MatchCounts) -> MatchCounts:
        return MatchCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def se(self) -> float:
        """Sensitivity TP / (TP + FN)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        """Positive predictivity +P = TP / (TP + FP)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def f1(self) -> float:
        """F1 = 2 TP / (2 TP + FP + FN)."""
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return {
            "se": self.se,
            "ppv": self.ppv,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def match_beats(ref_idx: np.ndarray, det_idx: np.ndarray, *, tolerance: int) -> MatchCounts:
    """One-to-one matching of detections to reference beats within ``tolerance`` samples.

    Both sequences are walked in time order; each reference beat takes the nearest unmatched
    detection within the tolerance (the rule of wfdb's ``compare_annotations`` and EC57 ``bxb``).

    >>> match_beats(np.array([100, 200, 300]), np.array([105, 190, 250, 420]), tolerance=20)
    MatchCounts(tp=2, fp=2, fn=1)
    """
    ref = np.sort(np.asarray(ref_idx, dtype=np.int64)).tolist()
    det = np.sort(np.asarray(det_idx, dtype=np.int64)).tolist()
    tp = 0
    j = 0
    n_det = len(det)
    for r in ref:
        while j < n_det and det[j] < r - tolerance:
            j += 1  # detections too early for this and every later reference beat
        if j < n_det and abs(det[j] - r) <= tolerance:
            # det[j] is the earliest candidate; the next one may be closer to r.
            if j + 1 < n_det and abs(det[j + 1] - r) < abs(det[j] - r):
                j += 1
            tp += 1
            j += 1
    return MatchCounts(tp, len(det) - tp, len(ref) - tp)


def _vf_mask(positions: np.ndarray, ann: Any) -> np.ndarray:
    """True where a position lies inside a ventricular flutter/fibrillation episode."""
    starts = ann.sample_idx[ann.symbol == "["]
    stops = ann.sample_idx[ann.symbol == "]"]
    mask = np.zeros(positions.shape, dtype=bool)
    for a in starts:
        after = stops[stops > a]
        b = after[0] if after.size else np.iinfo(np.int64).max
        mask |= (positions >= a) & (positions <= b)
    return mask


def resample_signal_and_beats(record: Any, ann: Any, *, fs_hz: float) -> tuple[Any, Any]:
    """``record`` resampled to ``fs_hz`` (polyphase, :func:`scipy.signal.resample_poly`) and
    ``ann`` with its sample positions moved to the new rate (rounded to the nearest sample).

    >>> import numpy as np
    >>> from heartline.io import Annotations, EcgRecord
    >>> rec = EcgRecord("x", np.zeros((3600, 1)), 360.0, ("MLII",), ("mV",))
    >>> ann = Annotations("x", np.array([0, 360, 3599]), np.array(["N", "V", "N"]), 360.0)
    >>> r2, a2 = resample_signal_and_beats(rec, ann, fs_hz=300.0)
    >>> r2.fs, r2.n_samples, a2.sample_idx.tolist(), a2.fs
    (300.0, 3000, [0, 300, 2999], 300.0)
    """
    import dataclasses
    from fractions import Fraction

    from scipy.signal import resample_poly

    if fs_hz == record.fs:
        return record, ann
    ratio = Fraction(fs_hz / record.fs).limit_denominator(1000)
    if abs(float(ratio) * record.fs - fs_hz) > 1e-6 * fs_hz:
        raise ValueError(
            f"cannot resample {record.fs} Hz to {fs_hz} Hz by a ratio of small integers"
        )
    signal = resample_poly(record.signal, ratio.numerator, ratio.denominator, axis=0)
    new_rec = dataclasses.replace(record, signal=signal, fs=float(fs_hz))
    idx = np.round(ann.sample_idx * float(ratio)).astype(np.int64)
    idx = np.clip(idx, 0, signal.shape[0] - 1)
    new_ann = dataclasses.replace(ann, sample_idx=idx, fs=float(fs_hz))
    return new_rec, new_ann


def run_qrs_benchmark(
    *,
    detectors: Sequence[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    mitdb_records: Sequence[str] = MITDB_RECORDS,
    nstdb_records: Sequence[str] = NSTDB_RECORDS,
    quick: bool = False,
    repeats: int = 3,
    on_step: Callable[[str], None] | None = None,
    resample_hz: float | None = None,
) -> dict[str, Any]:
    """Run detectors on MIT-BIH (lead 0, MLII) and NSTDB records and score them.

    Parameters
    ----------
    detectors : sequence of str, optional
        Names in :data:`heartline.signal.rpeaks.DETECTORS` (all by default).
    data_dir : path-like, optional
        Data root (``None``: :func:`heartline.data.paths.resolve_data_dir`).
    mitdb_records, nstdb_records : sequence of str
        Records to use (all 48 and all 12 by default).
    quick : bool
        Only recorded in the report (the caller chooses the records).
    repeats : int
        Each detector runs this many times per record; its time is the fastest run (>= 1).
    on_step : callable, optional
        Called with a short description after each record and detector (progress bars).
    resample_hz : float, optional
        Resample every record to this rate first (polyphase, :func:`resample_signal_and_beats`)
        and move its annotations with it, to score detection at a wearable's rate (CinC 2017:
        300 Hz; many patches: 250 Hz). ``None``: each record's own rate (360 Hz).

    Returns
    -------
    dict
        The report written by :func:`write_qrs_report` (fractions, not percent).

    Raises
    ------
    ValueError
        Unknown detector or record name, or ``repeats`` < 1.
    DataNotFoundError
        A database is missing (the message names the fetch command).
    """
    from heartline.data.paths import database_dir
    from heartline.io import read_annotations, read_record

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if resample_hz is not None and not (float(resample_hz) >= 50.0):
        raise ValueError(f"resample_hz must be >= 50 Hz (or None), got {resample_hz!r}")
    # The revision of the code that runs, taken before the (long) run: later commits by others
    # must not be credited with these numbers.
    revision = git_head(short=True) or None
    names = list(detectors) if detectors else list(DETECTORS)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; valid: {', '.join(sorted(DETECTORS))}")
    bad = [r for r in mitdb_records if r not in MITDB_RECORDS] + [
        r for r in nstdb_records if r not in NSTDB_RECORDS
    ]
    if bad:
        raise ValueError(
            f"unknown record(s) {bad}; mitdb: {', '.join(MITDB_RECORDS)}; nstdb: {', '.join(NSTDB_RECORDS)}"
        )
    dirs = {}
    if mitdb_records:
        dirs["mitdb"] = database_dir("mitdb", data_dir=data_dir)
    if nstdb_records:
        dirs["nstdb"] = database_dir("nstdb", data_dir=data_dir)

    counts: dict[str, dict[str, dict[int, MatchCounts]]] = {n: {} for n in names}
    vf_counts: dict[str, dict[str, MatchCounts]] = {n: {} for n in names}
    seconds: dict[str, dict[str, float]] = {n: {} for n in names}
    durations: dict[str, float] = {}
    jobs = [("mitdb", r) for r in mitdb_records] + [("nstdb", r) for r in nstdb_records]
    warmed = False
    for db, rec in jobs:
        path = dirs[db] / rec
        record = read_record(path)
        ann = read_annotations(path)
        if resample_hz is not None:
            record, ann = resample_signal_and_beats(record, ann, fs_hz=float(resample_hz))
        beats = ann.beats()
        fs = record.fs

        def signal_for(name: str, record: Any = record) -> np.ndarray:
            n_leads = MULTI_LEAD.get(name)
            return record.signal[:, :n_leads] if n_leads else record.lead(0)

        durations[f"{db}/{rec}"] = record.signal.shape[0] / fs
        if not warmed:  # imports and first-call set-up are not detection time
            for name in names:
                detect_r_peaks(signal_for(name)[: int(10 * fs)], fs=fs, method=name)
            warmed = True
        for name in names:
            x = signal_for(name)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                peaks = detect_r_peaks(x, fs=fs, method=name).sample_idx
                best = min(best, time.perf_counter() - t0)
            seconds[name][f"{db}/{rec}"] = best
            counts[name][f"{db}/{rec}"] = {
                tol: match_beats(beats.sample_idx, peaks, tolerance=round(tol * fs / 1000))
                for tol in TOLERANCES_MS
            }
            if db == "mitdb":
                keep_ref = ~_vf_mask(beats.sample_idx, ann)
                keep_det = ~_vf_mask(peaks, ann)
                vf_counts[name][rec] = match_beats(
                    beats.sample_idx[keep_ref],
                    peaks[keep_det],
                    tolerance=round(TOLERANCES_MS[0] * fs / 1000),
                )
            logger.debug("%s %s/%s: %s", name, db, rec, counts[name][f"{db}/{rec}"][150])
            if on_step is not None:
                on_step(f"{db}/{rec} {name}")

    def gross(items: list[MatchCounts]) -> MatchCounts:
        total = MatchCounts(0, 0, 0)
        for c in items:
            total = total + c
        return total

    report: dict[str, Any] = {
        "tolerance_ms": TOLERANCES_MS[0],
        "quick": quick,
        "lead": "channel 0 (MLII on MIT-BIH); both channels for "
        + (", ".join(sorted(MULTI_LEAD)) or "no detector"),
        "repeats": repeats,
        "resample_hz": None if resample_hz is None else float(resample_hz),
        "mitdb_records": list(mitdb_records),
        "nstdb_records": list(nstdb_records),
        "git_revision": revision,
        "detectors": {},
        "tolerance_50ms": {},
    }
    mit_dur = sum(v for k, v in durations.items() if k.startswith("mitdb/"))
    for name in names:
        entry: dict[str, Any] = {}
        alt: dict[str, Any] = {}
        if mitdb_records:
            for tol, target in ((TOLERANCES_MS[0], entry), (TOLERANCES_MS[1], alt)):
                per = {r: counts[name][f"mitdb/{r}"][tol] for r in mitdb_records}
                g = gross(list(per.values())).as_dict()
                if tol == TOLERANCES_MS[0]:
                    sec = sum(seconds[name][f"mitdb/{r}"] for r in mitdb_records)
                    g["seconds"] = sec
                    g["realtime_factor"] = mit_dur / sec if sec > 0 else float("inf")
                    g["per_record"] = {
                        r: {**c.as_dict(), "seconds": seconds[name][f"mitdb/{r}"]}
                        for r, c in per.items()
                    }
                target["mitdb"] = g
            entry["mitdb_vf_excluded"] = gross(list(vf_counts[name].values())).as_dict()
        if nstdb_records:
            for tol, target in ((TOLERANCES_MS[0], entry), (TOLERANCES_MS[1], alt)):
                nst: dict[str, Any] = {}
                for snr in NSTDB_SNRS:
                    recs = [r for r in nstdb_records if r.endswith(snr)]
                    if recs:
                        nst[snr] = gross([counts[name][f"nstdb/{r}"][tol] for r in recs]).as_dict()
                target["nstdb"] = nst
            entry["nstdb_per_record"] = {
                r: {
                    **counts[name][f"nstdb/{r}"][TOLERANCES_MS[0]].as_dict(),
                    "seconds": seconds[name][f"nstdb/{r}"],
                }
                for r in nstdb_records
            }
        report["detectors"][name] = entry
        report["tolerance_50ms"][name] = alt
    return report


def _pct(v: float) -> str:
    return "-" if v != v else f"{100 * v:.2f}"


def gross_table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the gross table (percent), shared by the Markdown file and the CLI."""
    header = ["detector", "Se %", "+P %", "F1 %", "TP", "FP", "FN", "Se@50ms %", "+P@50ms %",
              "F1 VF-excl %", "NSTDB e00 F1 %", "NSTDB e06 F1 %", "seconds", "x real time"]  # fmt: skip
    rows = []
    for name, e in report["detectors"].items():
        m = e.get("mitdb", {})
        m50 = report["tolerance_50ms"].get(name, {}).get("mitdb", {})
        vf = e.get("mitdb_vf_excluded", {})
        nst = e.get("nstdb", {})
        nan = float("nan")
        rows.append([
            name, _pct(m.get("se", nan)), _pct(m.get("ppv", nan)), _pct(m.get("f1", nan)),
            str(m.get("tp", "-")), str(m.get("fp", "-")), str(m.get("fn", "-")),
            _pct(m50.get("se", nan)), _pct(m50.get("ppv", nan)), _pct(vf.get("f1", nan)),
            _pct(nst.get("e00", {}).get("f1", nan)), _pct(nst.get("e06", {}).get("f1", nan)),
            f"{m['seconds']:.2f}" if "seconds" in m else "-",
            f"{m['realtime_factor']:.0f}" if "realtime_factor" in m else "-",
        ])  # fmt: skip
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_qrs_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``qrs.json``, ``qrs.md`` and ``qrs_nstdb_f1.png`` into ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "qrs.json", "md": out / "qrs.md", "png": out / "qrs_nstdb_f1.png"}
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")

    names = list(report["detectors"])
    title = "QRS detection benchmark" + (
        " (QUICK: subset of records, not the full benchmark)" if report["quick"] else ""
    )
    if report.get("resample_hz"):
        title += f", records resampled to {report['resample_hz']:g} Hz"
    parts = [
        f"# {title}\n",
        f"Tolerance {report['tolerance_ms']} ms (50 ms columns too), lead {report['lead']}, "
        f"beat annotations only. MIT-BIH records: {len(report['mitdb_records'])}; NSTDB records: "
        f"{len(report['nstdb_records'])}. Git revision: {report['git_revision']}. Seconds: detection "
        f"only (no I/O), best of {report.get('repeats', 1)} runs per record, summed over the MIT-BIH "
        "records. MIT-BIH was also used to set the Heartline detectors' parameters (development "
        "data); NSTDB was not. `F1 VF-excl`: EC57 rule, ventricular "
        "flutter episodes of 207 not scored.\n",
        "## Gross results (MIT-BIH)\n",
        _md_table(*gross_table_rows(report)),
    ]
    if report["nstdb_records"]:
        snrs = [
            s
            for s in NSTDB_SNRS
            if any(s in e.get("nstdb", {}) for e in report["detectors"].values())
        ]
        rows = [
            [s]
            + [
                _pct(report["detectors"][n]["nstdb"].get(s, {}).get("f1", float("nan")))
                for n in names
            ]
            for s in snrs
        ]
        parts += ["\n## NSTDB F1 % by SNR (118 and 119 pooled)\n", _md_table(["SNR", *names], rows)]
        rows = [
            [r] + [_pct(report["detectors"][n]["nstdb_per_record"][r]["f1"]) for n in names]
            for r in report["nstdb_records"]
        ]
        parts += ["\n## NSTDB per record, F1 %\n", _md_table(["record", *names], rows)]
    if report["mitdb_records"]:
        rows = []
        for r in report["mitdb_records"]:
            cells = []
            for n in names:
                c = report["detectors"][n]["mitdb"]["per_record"][r]
                cells.append(f"{c['fp']}/{c['fn']}")
            rows.append([r, *cells])
        parts += ["\n## MIT-BIH per record: FP/FN at 150 ms\n", _md_table(["record", *names], rows)]
    paths["md"].write_text("\n".join(parts) + "\n")
    _plot_nstdb(report, paths["png"])
    return paths


def _plot_nstdb(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snr_db = {"e24": 24, "e18": 18, "e12": 12, "e06": 6, "e00": 0, "e_6": -6}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in report["detectors"].items():
        nst = e.get("nstdb", {})
        keys = [k for k in NSTDB_SNRS if k in nst]
        if keys:
            ax.plot([snr_db[k] for k in keys], [100 * nst[k]["f1"] for k in keys], marker="o", label=name,
                    linewidth=2.5 if name == "heartline" else 1.2)  # fmt: skip
    ax.set_xlabel("SNR (dB), electrode-motion noise")
    ax.set_ylabel("F1 (%)")
    ax.invert_xaxis()
    ax.set_title("NSTDB 118+119: F1 vs SNR" + (" (quick)" if report["quick"] else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
