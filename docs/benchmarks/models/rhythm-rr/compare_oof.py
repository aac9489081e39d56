"""Compare cross-fitted runs by their out-of-fold (OOF) predictions on DS1 (DS2 is never read).

Usage: ``.venv/bin/python compare_oof.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--out FILE.json]``,
each RUN_DIR a ``heartline train`` run directory of a ``hybrid_ensemble`` model (it holds
``oof.npz``: every DS1 beat predicted by the member that never saw its record). Prints, per run,
the OOF macro-F1 (N, S, V, F), EC57-style SVEB / VEB Se and +P (gross over beats), accuracy and
the records with most false SVEB; ``--out`` also writes them as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from heartline.training.trainer import macro_f1, per_class_rates


def summarise(run_dir: Path) -> dict:
    d = np.load(run_dir / "oof.npz", allow_pickle=False)
    y, rec = d["labels"], d["record"].astype(str)
    pred = d["log_proba"].argmax(axis=1)
    keep = y >= 0
    rates = per_class_rates(y, pred, ("N", "S", "V", "F", "Q"))
    out = {
        "run_dir": str(run_dir),
        "n_beats": int(keep.sum()),
        "accuracy": float(np.mean(y[keep] == pred[keep])),
        "macro_f1": macro_f1(y, pred),
        "sveb_se": rates["S"]["se"],
        "sveb_ppv": rates["S"]["ppv"],
        "veb_se": rates["V"]["se"],
        "veb_ppv": rates["V"]["ppv"],
    }
    per_rec = {}
    for r in sorted(set(rec.tolist())):
        m = (rec == r) & keep
        per_rec[r] = {
            "macro_f1": macro_f1(y[m], pred[m]),
            "s_fp": int(np.count_nonzero((pred[m] == 1) & (y[m] != 1))),
            "s_fn": int(np.count_nonzero((pred[m] != 1) & (y[m] == 1))),
            "v_fp": int(np.count_nonzero((pred[m] == 2) & (y[m] != 2))),
            "v_fn": int(np.count_nonzero((pred[m] != 2) & (y[m] == 2))),
        }
    out["per_record"] = per_rec
    out["record_mean_macro_f1"] = float(np.mean([v["macro_f1"] for v in per_rec.values()]))
    return out


def main(argv: list[str]) -> None:
    out_file = None
    if "--out" in argv:
        i = argv.index("--out")
        out_file = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    results = {}
    for arg in argv:
        name, _, path = arg.partition("=")
        results[name] = summarise(Path(path))
    keys = (
        "accuracy",
        "macro_f1",
        "record_mean_macro_f1",
        "sveb_se",
        "sveb_ppv",
        "veb_se",
        "veb_ppv",
    )
    print("| run | " + " | ".join(keys) + " | most false SVEB (record: FP) |")
    print("|---|" + "---:|" * len(keys) + "---|")
    for name, r in results.items():
        top = sorted(r["per_record"].items(), key=lambda kv: -kv[1]["s_fp"])[:5]
        cells = " | ".join(f"{100 * r[k]:.1f}" if r[k] is not None else "-" for k in keys)
        print(f"| {name} | {cells} | " + ", ".join(f"{k}: {v['s_fp']}" for k, v in top) + " |")
    if out_file is not None:
        out_file.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
