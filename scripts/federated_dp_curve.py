"""Accuracy-privacy curve (validation) from ``scripts/federated_gap.py`` lines.

Reads a jsonl of the replay, keeps the variants whose text contains ``--match``, groups them by
(central or fedavg, epsilon), and plots the final pooled validation macro-F1 against epsilon
(mean over seeds, each seed a dot), with the same variants without DP as horizontal lines and
``--ref`` values (e.g. the benchmark network's central figure) as dashed ones. Usage::

    python scripts/federated_dp_curve.py docs/results/federated/dp_head_2026-12-07.jsonl \
        --match model=hand-head --ref "CNN-LSTM central (seed 0)=0.627" --out curve.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("jsonl")
    p.add_argument("--match", required=True)
    p.add_argument("--ref", action="append", default=[])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dp: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    nodp: dict[str, list[float]] = defaultdict(list)
    for line in open(a.jsonl, encoding="utf-8"):
        r = json.loads(line)
        v = r["variant"]
        if a.match not in v:
            continue
        kind = v.split(":")[0]
        m = re.search(r"dp_eps=([0-9.]+)", v)
        if m:
            dp[kind][float(m.group(1))].append(r["val_macro_f1"][-1])
        else:
            nodp[kind].append(r["val_macro_f1"][-1])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for kind, pts in sorted(dp.items()):
        eps = sorted(pts)
        mean = [float(np.mean(pts[e])) for e in eps]
        line = ax.plot(eps, mean, marker="o", label=f"{kind} + DP-SGD (mean of seeds)")[0]
        for e in eps:
            ax.scatter([e] * len(pts[e]), pts[e], color=line.get_color(), alpha=0.35, s=12)
        if kind in nodp:
            ax.axhline(
                float(np.mean(nodp[kind])),
                color=line.get_color(),
                linestyle=":",
                label=f"{kind}, no DP (mean {np.mean(nodp[kind]):.3f})",
            )
    for ref in a.ref:
        name, _, val = ref.rpartition("=")
        ax.axhline(float(val), color="grey", linestyle="--", label=f"{name} {float(val):.3f}")
        ax.axhline(0.9 * float(val), color="grey", linestyle="-.", label=f"90 % of {name}")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon per record (delta = 1e-5)")
    ax.set_ylabel("pooled validation macro-F1 (final round)")
    ax.set_title(f"Accuracy-privacy, rhythm, {a.match}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
