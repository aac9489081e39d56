"""One line per ``heartline bench alarms`` run of the beat artefact investigation.

Reads every ``alarms.json`` under the given folders and writes ``summary.jsonl`` and
``summary.md`` into ``--out``: the run's command, which CinC half it scored, the artefact model,
and the issue-19 figures (CinC ``N`` and ``~`` records with a physiological alarm, ``N`` records
with a signal-quality notice, MIT-BIH AF episode Se / +P); for a run of both halves also the
development and held-out figures (``split_summary``).

    .venv/bin/python benchmarks/alarms_artefact/summary.py \
        docs/results/alarms/artefact-2026-12-07 --data-dir /work/shared/data \
        --out docs/results/alarms/artefact-2026-12-07
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from heartline.bench.alarms import split_summary


def _labels(root: Path) -> dict[str, str]:
    text = (root / "cinc2017" / "REFERENCE-v3.csv").read_text()
    return dict(line.strip().split(",")[:2] for line in text.splitlines() if "," in line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    labels = _labels(args.data_dir)
    rows = []
    for folder in args.folders:
        for path in sorted(folder.rglob("alarms.json")):
            rep = json.loads(path.read_text())
            after = rep["configs"]["after"]
            cinc = after["cinc"]
            row = {
                "run": str(path.parent.relative_to(folder)),
                "command": rep.get("command"),
                "half": rep.get("half") or "both",
                "artefact_model": rep.get("artefact_model"),
                "n_N": cinc["N"]["n"],
                "n_noisy": cinc["~"]["n"],
                "N_physiological": len(cinc["N"]["records_with_physiological_alarm"]),
                "noisy_physiological": len(cinc["~"]["records_with_physiological_alarm"]),
                "N_signal_quality": len(cinc["N"]["records_with_signal_quality"]),
                "af_episode_se": after["af_pooled"]["episode_se"],
                "af_episode_ppv": after["af_pooled"]["episode_ppv"],
            }
            if row["half"] == "both":
                row["halves"] = split_summary(rep, labels)
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "summary.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")

    def pct(k: int, n: int) -> str:
        return f"{100 * k / n:.2f} % ({k}/{n})"

    lines = [
        "| run | half | N with a physiological alarm | ~ with a physiological alarm "
        "| N with a quality notice | AF episode Se / +P |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['half']} | {pct(r['N_physiological'], r['n_N'])} "
            f"| {pct(r['noisy_physiological'], r['n_noisy'])} "
            f"| {pct(r['N_signal_quality'], r['n_N'])} "
            f"| {100 * r['af_episode_se']:.1f} / {100 * r['af_episode_ppv']:.1f} % |"
        )
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
