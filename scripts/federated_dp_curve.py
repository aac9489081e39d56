"""Accuracy-privacy curve (validation) from ``scripts/federated_gap.py`` lines.

Reads a jsonl of the replay, keeps the variants whose text contains ``--match``, groups them by
(central or fedavg, epsilon), and plots the final pooled validation macro-F1 against epsilon
(mean over seeds, each seed a dot), with the same variants without DP as horizontal lines and
``--ref`` values (e.g. the benchmark network's central figure) as dashed ones. Usage::

    python scripts/federated_dp_curve.py docs/results/federated/dp_head_2026-12-07.jsonl \
        --match model=hand-head --ref "CNN-LSTM central (seed 0)=0.627" --out curve.png

``--bench`` instead reads ``federated.json`` reports of ``heartline bench federated`` (one per
seed) and plots the *test* macro-F1 of the rhythm task's ``<prefix>_eps*`` runs (``--match``
is the prefix, e.g. ``dphead``) against epsilon, mean over the reports with each report a dot,
and the means of ``central`` (with 90 % of it), ``central_head`` and ``fedavg_head`` as lines::

    python scripts/federated_dp_curve.py --bench seed0.json --bench seed1.json \
        --bench seed2.json --match dphead --out privacy_rhythm_head_seeds.png
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
    p.add_argument("jsonl", nargs="?")
    p.add_argument("--bench", action="append", default=[])
    p.add_argument("--match", required=True)
    p.add_argument("--ref", action="append", default=[])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if bool(a.jsonl) == bool(a.bench):
        p.error("give either a replay jsonl or --bench reports")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if a.bench:
        return _bench(a, plt)

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
    _finish(
        fig,
        ax,
        "pooled validation macro-F1 (final round)",
        f"Accuracy-privacy, rhythm, {a.match}",
        a.out,
    )
    return 0


def _finish(fig, ax, ylabel: str, title: str, out: str) -> None:
    """Labels, legend and grid of an accuracy-privacy plot; save it to ``out``."""
    ax.set_xlabel("epsilon per record (delta = 1e-5)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def _bench(a: argparse.Namespace, plt) -> int:
    """The test-fold curve over several benchmark reports (``--bench``)."""
    pts: dict[float, list[float]] = defaultdict(list)
    lines: dict[str, list[float]] = defaultdict(list)
    seeds = []
    for path in a.bench:
        rep = json.loads(open(path, encoding="utf-8").read())
        seeds.append(rep.get("seed", rep.get("config", {}).get("seed")))
        ent = rep["tasks"]["rhythm"]
        for name, e in ent.items():
            if "error" in e:
                continue
            m = re.fullmatch(re.escape(a.match) + r"_eps([0-9.]+)", name)
            if m:
                pts[float(m.group(1))].append(float(e["macro_f1"]))
            elif name in ("central", "central_head", "fedavg_head"):
                lines[name].append(float(e["macro_f1"]))
    if not pts:
        raise SystemExit(f"no {a.match}_eps* run in {a.bench}")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    eps = sorted(pts)
    mean = [float(np.mean(pts[e])) for e in eps]
    n = "/".join(str(k) for k in sorted({len(pts[e]) for e in eps}))
    line = ax.plot(eps, mean, marker="o", label=f"{a.match} (FedAvg + DP-SGD), mean of {n} seeds")
    for e in eps:
        ax.scatter([e] * len(pts[e]), pts[e], color=line[0].get_color(), alpha=0.35, s=12)
    styles = {"central": "--", "central_head": ":", "fedavg_head": "-."}
    for name, vals in sorted(lines.items()):
        m_ = float(np.mean(vals))
        ax.axhline(
            m_,
            color={"central": "grey", "central_head": "tab:green"}.get(name, "tab:orange"),
            linestyle=styles[name],
            label=f"{name} (no DP), mean of {len(vals)}: {m_:.3f}",
        )
        if name == "central":
            ax.axhline(
                0.9 * m_,
                color="red",
                linestyle="-",
                alpha=0.5,
                label=f"90 % of central: {0.9 * m_:.3f}",
            )
    ax.set_xscale("log")
    ax.set_xticks(eps, [f"{e:g}" for e in eps])
    ax.minorticks_off()
    _finish(
        fig,
        ax,
        "test macro-F1 (CinC 2017 held-out fold)",
        f"Accuracy-privacy, rhythm, benchmark, seeds {seeds}",
        a.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
