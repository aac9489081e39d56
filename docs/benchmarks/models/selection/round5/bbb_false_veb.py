"""Round 5's pre-declared secondary measure: out-of-fold false VEB in DS1's bundle-branch-block
records (109, 118, 124, 207), per candidate and seed, from the runs' ``oof.npz`` (prediction =
argmax, as ``heartline select`` scores them). DS2 is not read.

Run: ``.venv/bin/python docs/benchmarks/models/selection/round5/bbb_false_veb.py runs/select-r5-s0 runs/select-r5-s1 runs/select-r5-s2``
"""

import sys
from pathlib import Path

import numpy as np

BBB = ("109", "118", "124", "207")
V = 2  # AAMI class index of VEB (N, S, V, F, Q)

print("| candidate | seed | " + " | ".join(BBB) + " | BBB total | false VEB, all DS1 |")
print("|---|---:|" + "---:|" * (len(BBB) + 2))
for folder in map(Path, sys.argv[1:]):
    for run in sorted(p for p in folder.iterdir() if (p / "oof.npz").is_file()):
        z = np.load(run / "oof.npz")
        fp = (z["log_proba"].argmax(axis=1) == V) & (z["labels"] != V)
        per = [int(np.count_nonzero(fp & (z["record"] == r))) for r in BBB]
        cand, seed = run.name.rsplit("-s", 1)
        print(f"| {cand} | {seed} | " + " | ".join(map(str, per)) + f" | {sum(per)} | {int(fp.sum())} |")
