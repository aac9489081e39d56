"""Round 7: does a rhythm gate on SVEB predictions raise out-of-fold macro-F1 on DS1?

Gate ``g_theta``: a beat whose ``rr_regular_fraction`` (share of regular intervals among its
previous 16 RR intervals, an online RR column every model already reads) is below ``theta`` cannot
be called S: its S probability is moved to N and the label is the argmax again. ``theta = 0``
is no gate. Nested estimate, per seed: for each of the 3 record folds, ``theta`` is chosen on the
other two folds' out-of-fold beats (pooled macro-F1 over N, S, V, F; ties -> the smaller
``theta``) and applied to the held-out fold. The gated predictions are written as a run folder
beside the ungated one (``oof.npz`` + ``crossfit.json``), so that ``heartline select --pool``
scores both with the selection's own paired record bootstrap. DS2 is not read.

Run (after ``heartline select`` wrote runs/select-r7-s{0,1,2}/tpl_e10-s*)::

    .venv/bin/python docs/benchmarks/models/selection/round7/rhythm_gate.py \
        runs/select-r7-s0 runs/select-r7-s1 runs/select-r7-s2
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from heartline.data.beat_dataset import build_beat_set
from heartline.data.splits import DS1
from heartline.signal.beats import RR_FEATURE_NAMES
from heartline.training.selection import compare_candidates, summarise_oof
from heartline.training.trainer import macro_f1

THETAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
N, S = 0, 1


def gate(log_proba: np.ndarray, regular: np.ndarray, theta: float) -> np.ndarray:
    """Log-probabilities with the S mass of gated beats moved to N."""
    p = np.exp(log_proba.astype(np.float64))
    g = regular < theta
    p[g, N] += p[g, S]
    p[g, S] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(p).astype(np.float32)


def score(y: np.ndarray, log_proba: np.ndarray) -> float:
    return macro_f1(y, log_proba.argmax(axis=1))


def main(folders: list[Path]) -> None:
    beats = build_beat_set(DS1, data_dir="../shared/data", progress=False)
    col = list(beats.rr_names).index("rr_regular_fraction")
    assert beats.rr_names[: len(RR_FEATURE_NAMES)] == RR_FEATURE_NAMES
    key = {
        (r, int(s)): i for i, (r, s) in enumerate(zip(beats.record, beats.sample_idx, strict=True))
    }
    chosen: dict[str, dict[str, list[float]]] = {}
    full_curve: dict[str, dict[str, float]] = {}
    for folder in folders:
        (run,) = [p for p in folder.iterdir() if (p / "oof.npz").is_file()]
        z = dict(np.load(run / "oof.npz"))
        info = json.loads((run / "crossfit.json").read_text())
        y, rec = z["labels"], z["record"]
        regular = beats.rr[
            [key[(r, int(s))] for r, s in zip(rec, z["sample_idx"], strict=True)], col
        ]
        out = z["log_proba"].copy()
        picks = []
        for held in info["folds"]:
            hm = np.isin(rec, held)
            tr = ~hm
            f1 = [score(y[tr], gate(z["log_proba"][tr], regular[tr], t)) for t in THETAS]
            t_best = THETAS[int(np.argmax(f1))]  # first maximum: the smaller theta
            picks.append(t_best)
            out[hm] = gate(z["log_proba"][hm], regular[hm], t_best)
        chosen[run.name] = {"thetas_per_fold": picks}
        full_curve[run.name] = {
            f"{t:.1f}": score(y, gate(z["log_proba"], regular, t)) for t in THETAS
        }
        for t in THETAS:  # in sample (all DS1 out-of-fold beats): what each threshold does to SVEB
            pred = gate(z["log_proba"], regular, t).argmax(axis=1)
            tp = int(np.count_nonzero((pred == S) & (y == S)))
            fp = int(np.count_nonzero((pred == S) & (y != S) & (y >= 0)))
            fn = int(np.count_nonzero((pred != S) & (y == S)))
            print(
                f"{run.name} theta {t:.1f} (in sample): SVEB Se {100 * tp / (tp + fn):.1f} "
                f"+P {100 * tp / max(tp + fp, 1):.1f} (TP {tp}, FP {fp}, FN {fn})"
            )
        dst = folder.parent / f"{folder.name}-gated" / run.name.replace("tpl_e10", "gated")
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        np.savez(dst / "oof.npz", **{**z, "log_proba": out})
        shutil.copy(run / "crossfit.json", dst / "crossfit.json")
        shutil.copy(run / "run.json", dst / "run.json")
        print(
            f"{run.name}: thetas per held-out fold {picks}; nested gated macro-F1 "
            f"{score(y, out):.4f} vs ungated {score(y, z['log_proba']):.4f}"
        )
    print(json.dumps({"nested_choices": chosen, "pooled_macro_f1_by_theta": full_curve}, indent=2))
    means = {
        t: float(np.mean([c[t] for c in full_curve.values()]))
        for t in next(iter(full_curve.values()))
    }
    best = max(means, key=lambda t: (means[t], -float(t)))
    print(
        f"theta* (3-seed mean of pooled OOF macro-F1, all DS1 beats): {best} ({means[best]:.4f}; "
        f"no gate {means['0.0']:.4f})"
    )
    # the decision: nested gated vs ungated, 3 seeds paired, record bootstrap -- the function that
    # `heartline select --pool` uses (the pool command needs selection.json files in every folder)
    runs = []
    for folder in folders:
        (run,) = [p for p in folder.iterdir() if (p / "oof.npz").is_file()]
        seed = int(run.name.rsplit("-s", 1)[1])
        gated = folder.parent / f"{folder.name}-gated" / run.name.replace("tpl_e10", "gated")
        runs.append(summarise_oof(gated, name="gated", seed=seed))
        runs.append(summarise_oof(run, name="tpl_e10", seed=seed))
    means_c, winner, diffs = compare_candidates(runs, n_boot=1000, seed=0)
    print("| run | seed | macro-F1 | SVEB Se | SVEB +P | VEB Se | VEB +P |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.name} | {r.seed} | {100 * r.macro_f1:.1f} | {100 * r.sveb_se:.1f} | "
            f"{100 * r.sveb_ppv:.1f} | {100 * r.veb_se:.1f} | {100 * r.veb_ppv:.1f} |"
        )
    print(f"mean OOF macro-F1: {means_c}; winner {winner}; winner minus other [95 % CI]: {diffs}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
