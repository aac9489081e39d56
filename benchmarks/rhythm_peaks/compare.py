"""Rhythm input with the beat pipeline's R peaks (handover) vs its own detector throughout.

The stream processor's rhythm input (:class:`heartline.edge.rhythm.RhythmStream`) runs an R-peak
detector of its own on the lead from the end of the segment's warm-up (``StreamProcessor.
rhythm_own_detector = True``, the reference path). By default (``False``) it hands over to the
R peaks the device's beat pipeline has already found (the same detector class, rate and
settings on the same lead, started at the segment's start) once both have given the same peaks
over the span it keeps, so the lead is detected once. This script replays records through
:class:`heartline.ingestion.replay.ReplayProcessor` (the processor's own stages, as ``heartline
alarms`` does) both ways and compares, window by window, the rhythm model's inputs,
probabilities and labels, and the alarms raised.

    PYTHONPATH=src python benchmarks/rhythm_peaks/compare.py --out DIR \\
        --mitdb 201 202 203 210 219 221 222 --cinc 300

``--cinc N`` takes the first N records of ``cinc2017/RECORDS`` (CinC 2017 training set, 300 Hz
single lead). Writes ``DIR/rhythm_peaks.json`` and ``DIR/rhythm_peaks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from heartline.ingestion.replay import ReplayProcessor, replay_signal, shipped_beat_model
from heartline.io.readers import read_ecg


class _Recording(ReplayProcessor):
    """A replay processor that keeps every rhythm verdict given to the engines."""

    def __init__(self, *, own_detector: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rhythm_own_detector = own_detector
        self.verdicts: list[tuple[str, float, float, str, dict[str, float]]] = []
        self.rr_inputs: list[np.ndarray | None] = []  # the model's RR/feature input per window

    def _rhythm(self, b: Any) -> None:
        for _st, p, *_ in b.rhythm_jobs:
            self.rr_inputs.append(None if isinstance(p, str) else np.array(p[2][0]))
        super()._rhythm(b)

    def _engine_call(self, st: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "add_rhythm":
            t0, t1 = args
            self.verdicts.append(
                (st.device_id, float(t0), float(t1), kwargs["label"], dict(kwargs["probabilities"]))
            )
        return super()._engine_call(st, method, *args, **kwargs)


def _records(data: Path, mitdb: list[str], n_cinc: int) -> list[tuple[str, Path]]:
    out = [(f"mitdb/{r}", data / "mitdb" / r) for r in mitdb]
    if n_cinc:
        names = (data / "cinc2017" / "RECORDS").read_text().split()[:n_cinc]
        out += [(f"cinc2017/{r}", data / "cinc2017" / r) for r in names]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--mitdb", nargs="*", default=["201", "202", "203", "210", "219", "221", "222"])
    ap.add_argument("--cinc", type=int, default=300)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("HEARTLINE_DATA_DIR", "data")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = shipped_beat_model()
    procs = {own: _Recording(own_detector=own, model=model) for own in (True, False)}
    cpu = {True: 0.0, False: 0.0}
    rows = []
    for name, path in _records(args.data_dir, args.mitdb, args.cinc):
        rec = read_ecg(path)
        res = {}
        for own, proc in procs.items():
            n0, r0 = len(proc.verdicts), len(proc.rr_inputs)
            t0 = time.thread_time()
            alarms = replay_signal(
                rec.signal,
                fs=rec.fs,
                lead_names=tuple(rec.lead_names),
                record=name,
                processor=proc,
                device_id=f"d-{len(rows)}",
            )
            cpu[own] += time.thread_time() - t0
            res[own] = (proc.verdicts[n0:], [a.to_dict() for a in alarms], proc.rr_inputs[r0:])
        (va, aa, ra), (vb, ab, rb) = res[True], res[False]
        same_rr = sum(
            (a is None and b is None)
            or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(ra, rb, strict=False)
        )
        same_windows = [(v[1], v[2]) for v in va] == [(v[1], v[2]) for v in vb]
        dp = [
            max(abs(a[4].get(c, 0.0) - b[4].get(c, 0.0)) for c in ("N", "A", "O", "~"))
            for a, b in zip(va, vb, strict=False)
        ]
        rows.append(
            {
                "record": name,
                "windows": len(va),
                "same_windows": same_windows,
                "windows_identical_rr_input": int(same_rr),
                "label_disagreements": sum(a[3] != b[3] for a, b in zip(va, vb, strict=False)),
                "max_abs_dp": max(dp, default=0.0),
                "mean_abs_dp": float(np.mean(dp)) if dp else 0.0,
                "alarms_own_detector": len(aa),
                "alarms_handover": len(ab),
                "same_alarms": aa == ab,
                "disagreeing_windows": [
                    {"t0": a[1], "t1": a[2], "own": a[3], "handover": b[3], "dp": d}
                    for a, b, d in zip(va, vb, dp, strict=False)
                    if a[3] != b[3]
                ],
            }
        )
        print(
            f"{name}: {rows[-1]['windows']} windows ({same_rr} identical RR inputs), "
            f"max |dp| {rows[-1]['max_abs_dp']:.4f}, "
            f"labels differ {rows[-1]['label_disagreements']}, same alarms {rows[-1]['same_alarms']}",
            flush=True,
        )
    summary = {
        "records": len(rows),
        "windows": sum(r["windows"] for r in rows),
        "windows_identical_times": all(r["same_windows"] for r in rows),
        "windows_identical_rr_input": sum(r["windows_identical_rr_input"] for r in rows),
        "label_disagreements": sum(r["label_disagreements"] for r in rows),
        "max_abs_dp": max((r["max_abs_dp"] for r in rows), default=0.0),
        "records_with_different_alarms": [r["record"] for r in rows if not r["same_alarms"]],
        "replay_cpu_s_own_detector": cpu[True],
        "replay_cpu_s_handover": cpu[False],
        "streams_handed_over": sum(
            st.rhythm_stream is not None and st.rhythm_stream.handed_over
            for st in procs[False]._devices.values()
        ),
        "load_average": os.getloadavg(),
    }
    (args.out / "rhythm_peaks.json").write_text(json.dumps({"summary": summary, "records": rows}, indent=2))
    lines = [
        "# Rhythm input: own detector, then the beat pipeline's R peaks (handover), vs its own detector throughout",
        "",
        "`PYTHONPATH=src python benchmarks/rhythm_peaks/compare.py "
        f"--out {args.out} --mitdb {' '.join(args.mitdb)} --cinc {args.cinc}`",
        "",
        "| record | windows | identical RR inputs | label differences | max abs dp | mean abs dp "
        "| alarms (own / handover) | same alarms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["record"].startswith("mitdb") or r["label_disagreements"] or not r["same_alarms"]:
            lines.append(
                f"| {r['record']} | {r['windows']} | {r['windows_identical_rr_input']} | "
                f"{r['label_disagreements']} | "
                f"{r['max_abs_dp']:.4f} | {r['mean_abs_dp']:.5f} | "
                f"{r['alarms_own_detector']} / {r['alarms_handover']} | {r['same_alarms']} |"
            )
    lines += [
        "",
        f"All {summary['records']} records ({summary['windows']} windows, "
        f"{summary['windows_identical_rr_input']} with bit-identical RR inputs; CinC records "
        "listed only where they differ): window times identical: "
        f"{summary['windows_identical_times']}; label differences: "
        f"{summary['label_disagreements']}; largest probability difference "
        f"{summary['max_abs_dp']:.4f}; records with different alarms: "
        f"{summary['records_with_different_alarms'] or 'none'}; streams handed over to the "
        f"pipeline's peaks: {summary['streams_handed_over']} of {summary['records']}. Replay CPU: own detector "
        f"{cpu[True]:.1f} s, handover {cpu[False]:.1f} s (load average "
        f"{'/'.join(f'{x:.1f}' for x in summary['load_average'])}).",
        "",
    ]
    (args.out / "rhythm_peaks.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
