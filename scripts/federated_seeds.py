"""Several seeds of ``heartline bench federated`` side by side: per seed, mean and sd, ratios.

Reads the ``federated.json`` reports of one benchmark run per seed (``--seed``, or
``--noise-seed``) and writes, for the rhythm task, a Markdown table of every run's test macro-F1
per report with the mean and the sample standard deviation, the F1 of the noise class ``~``
(from the test confusion matrix), and the ratios the issue's targets need:

* DP at epsilon <= 3 against central: ``dphead_eps3 / central`` (the CNN-LSTM, as in every
  entry of docs/results/federated.md) and against ``central_head`` (the same model);
* the best non-private federated strategy against central training of the same model and local
  budget: ``fedavg_head / central_head``.

Each ratio is given per report and as the ratio of the means. Usage::

    python scripts/federated_seeds.py seed0/federated.json seed1/federated.json \\
        seed2/federated.json --out seeds.json

``--out`` also writes the numbers as JSON (``runs``: name -> per-report values, mean, sd;
``ratios``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: (label, numerator run, denominator run)
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("DP eps 3 / central CNN-LSTM", "dphead_eps3", "central"),
    ("DP eps 1 / central CNN-LSTM", "dphead_eps1", "central"),
    ("DP eps 8 / central CNN-LSTM", "dphead_eps8", "central"),
    ("DP eps 3 / central head (same model)", "dphead_eps3", "central_head"),
    ("FedAvg head / central head (same model)", "fedavg_head", "central_head"),
    ("FedAvg head / central CNN-LSTM", "fedavg_head", "central"),
)


def class_f1(confusion: list[list[float]], k: int) -> float:
    """F1 of class ``k`` from a confusion matrix (either orientation); 0 if never present."""
    c = np.asarray(confusion, dtype=float)
    den = c[k].sum() + c[:, k].sum()
    return float(2 * c[k, k] / den) if den else 0.0


def summarise(reports: list[dict]) -> dict:
    """Per run: the values of each report (None where absent), mean and sd; the ratios."""
    names: list[str] = []
    for r in reports:
        for n in r["tasks"].get("rhythm", {}):
            if n not in names:
                names.append(n)
    runs: dict[str, dict] = {}
    for n in names:
        vals, noise_f1 = [], []
        for r in reports:
            e = r["tasks"].get("rhythm", {}).get(n)
            ok = e is not None and "error" not in e
            vals.append(float(e["macro_f1"]) if ok else None)
            noise_f1.append(class_f1(e["confusion"], 3) if ok and "confusion" in e else None)
        got = [v for v in vals if v is not None]
        runs[n] = {
            "macro_f1": vals,
            "mean": float(np.mean(got)) if got else None,
            "sd": float(np.std(got, ddof=1)) if len(got) > 1 else None,
            "n": len(got),
            "noise_f1": noise_f1,
            "epsilon": [r["tasks"].get("rhythm", {}).get(n, {}).get("epsilon") for r in reports],
        }
    ratios = []
    for label, num, den in RATIOS:
        if num not in runs or den not in runs:
            continue
        per = [
            a / b if a is not None and b else None
            for a, b in zip(runs[num]["macro_f1"], runs[den]["macro_f1"], strict=True)
        ]
        a, b = runs[num]["mean"], runs[den]["mean"]
        ratios.append(
            {
                "ratio": label,
                "per_report": per,
                "of_means": a / b if a is not None and b else None,
            }
        )
    return {"runs": runs, "ratios": ratios}


def markdown(s: dict, labels: list[str]) -> str:
    f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    head = " | ".join(labels)
    out = [
        f"| run | {head} | mean | sd | `~` F1 per report |",
        "|---|" + "---|" * (len(labels) + 3),
    ]
    for n, r in s["runs"].items():
        cells = " | ".join(f(v) for v in r["macro_f1"])
        nf = " / ".join(f(v, 2) for v in r["noise_f1"])
        out.append(f"| {n} | {cells} | {f(r['mean'])} | {f(r['sd'])} | {nf} |")
    out += ["", f"| ratio | {head} | of the means |", "|---|" + "---|" * (len(labels) + 1)]
    for r in s["ratios"]:
        pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        cells = " | ".join(pct(v) for v in r["per_report"])
        out.append(f"| {r['ratio']} | {cells} | {pct(r['of_means'])} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("reports", nargs="+", help="federated.json of each seed")
    p.add_argument("--out", help="also write the numbers as JSON here")
    a = p.parse_args(argv)
    reports = [json.loads(Path(x).read_text(encoding="utf-8")) for x in a.reports]
    labels = [
        f"seed {r.get('seed', r['config'].get('seed'))}"
        + (f" noise {r['noise_seed']}" if r.get("noise_seed") else "")
        for r in reports
    ]
    s = summarise(reports)
    s["reports"] = [
        {
            "path": x,
            "label": lab,
            "git_revision": r.get("git_revision"),
            "load_average": r.get("load_average"),
        }
        for x, lab, r in zip(a.reports, labels, reports, strict=True)
    ]
    print(markdown(s, labels))
    if a.out:
        Path(a.out).write_text(json.dumps(s, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
