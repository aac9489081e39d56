"""True ventricular alarms on MIT-BIH, with and without the beat artefact model.

Replays whole MIT-BIH records (both leads, as ``heartline bench alarms`` replays its AF
records) through the live alarm path (``heartline.bench.alarms``' ``after`` configuration),
once with ``artefact_model=None`` and once with each ``--model`` (a path, or ``shipped``), and
counts the ventricular alarms (``v_couplet``, ``v_run``, ``vt``, ventricular bigeminy and
trigeminy, ``frequent_pvc``, ``vf``). An alarm is **true** when an annotated ventricular beat
(``V``/``E`` in the ``.atr`` file) lies within 5 s of its span. Default records: those with
ventricular runs of DS1 (106, 119, 203, 205, 207, 208, 215, 223) and of DS2 (200, 213, 214,
221, 228, 233; the artefact model never saw DS2).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/alarms_artefact/ventricular.py \
        --data-dir /work/shared/data --model shipped --jobs 2 --out DIR
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from heartline.alerts.rules.events import VENTRICULAR_KINDS

V_KINDS = VENTRICULAR_KINDS | {"vf"}
DS1_V = ("106", "119", "203", "205", "207", "208", "215", "223")
DS2_V = ("200", "213", "214", "221", "228", "233")


def _one(job: tuple[str, str, str]) -> tuple[str, str, list[dict]]:
    import wfdb

    import heartline.bench.alarms as bench_alarms
    from heartline.edge.rhythm import OnnxRhythmClassifier
    from heartline.ingestion.replay import shipped_beat_model
    from heartline.io.readers import read_ecg

    root, rec, model = job
    path = Path(root) / "mitdb" / rec
    r = read_ecg(path)
    ann = wfdb.rdann(str(path), "atr")
    v_s = ann.sample[np.isin(ann.symbol, ["V", "E"])] / r.fs
    config = {**bench_alarms.CONFIGS["after"], "artefact_model": None if model == "off" else model}
    rows, _cpu, _st = bench_alarms._replay(
        shipped_beat_model(),
        config,
        OnnxRhythmClassifier(),
        r.signal,
        r.fs,
        tuple(r.lead_names),
        rec,
    )
    out = []
    for x in rows:
        if x.type in V_KINDS:
            true = bool(np.any((v_s >= x.start_s - 5) & (v_s <= x.end_s + 5)))
            out.append(
                {
                    "type": x.type,
                    "start_s": round(x.start_s, 2),
                    "end_s": round(x.end_s, 2),
                    "true": true,
                }
            )
    return rec, model, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", action="append", required=True, help="path or 'shipped'")
    ap.add_argument("--records", nargs="*", default=[*DS1_V, *DS2_V])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    models = ["off", *args.model]
    jobs = [(str(args.data_dir), rec, m) for rec in args.records for m in models]
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            res = pool.map(_one, jobs)
    else:
        res = [_one(j) for j in jobs]
    per: dict[str, dict[str, list[dict]]] = {}
    for rec, m, out in res:
        per.setdefault(rec, {})[m] = out
    lines = [
        "| record | split | " + " | ".join(f"{m}: true / all" for m in models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    tot = {m: [0, 0] for m in models}
    for rec in args.records:
        cells = []
        for m in models:
            a = per[rec][m]
            t = sum(x["true"] for x in a)
            tot[m][0] += t
            tot[m][1] += len(a)
            cells.append(f"{t} / {len(a)}")
        split = "DS1" if rec in DS1_V else "DS2" if rec in DS2_V else "?"
        lines.append(f"| {rec} | {split} | " + " | ".join(cells) + " |")
    lines.append("| all | | " + " | ".join(f"{a} / {b}" for a, b in tot.values()) + " |")
    (args.out / "ventricular.json").write_text(
        json.dumps(
            {"models": models, "records": per, "wall_s": round(time.time() - t0, 1)}, indent=1
        )
        + "\n"
    )
    (args.out / "ventricular.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
