"""Pool seeds of `heartline select` runs of the same candidates (round 3 of the selection).

Usage: ``.venv/bin/python combine.py RUN_DIR [RUN_DIR ...]``, each RUN_DIR a candidate-seed
folder (``<name>-s<seed>``) written by ``heartline select``. Prints the per-run OOF macro-F1, the
mean per candidate, and the paired record-bootstrap interval of the winner minus each other
candidate (runs paired by seed). DS2 is never read.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from heartline.training.selection import paired_record_bootstrap, summarise_oof


def main(argv: list[str]) -> None:
    runs: dict[str, dict[int, Path]] = defaultdict(dict)
    for arg in argv:
        path = Path(arg)
        name, _, seed = path.name.rpartition("-s")
        runs[name][int(seed)] = path
    seeds = sorted(set.intersection(*(set(v) for v in runs.values())))
    out: dict[str, object] = {"seeds": seeds, "runs": {}, "mean_macro_f1": {}}
    for name, by_seed in runs.items():
        scores = {s: summarise_oof(by_seed[s], name=name, seed=s) for s in seeds}
        out["runs"][name] = {  # type: ignore[index]
            s: {
                "macro_f1": r.macro_f1,
                "sveb_se": r.sveb_se,
                "sveb_ppv": r.sveb_ppv,
                "veb_se": r.veb_se,
                "veb_ppv": r.veb_ppv,
                "member_best_epochs": r.member_best_epochs,
            }
            for s, r in scores.items()
        }
        out["mean_macro_f1"][name] = float(np.mean([r.macro_f1 for r in scores.values()]))  # type: ignore[index]
    means: dict[str, float] = out["mean_macro_f1"]  # type: ignore[assignment]
    winner = max(means, key=lambda n: means[n])
    out["winner"] = winner
    out["differences_vs_winner"] = {
        n: paired_record_bootstrap([runs[winner][s] for s in seeds], [runs[n][s] for s in seeds])
        for n in runs
        if n != winner
    }
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
