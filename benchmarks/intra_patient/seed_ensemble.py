"""Seed ensemble of the hybrid on the leaky intra-patient split.

The plan was committed before any run (commit ``206cb59``, 2026-12-05); the result is in
``docs/results/beat-classifier.md``. Two steps:

``member --seed S``
    Builds the intra-patient split exactly as ``heartline evaluate --protocol intra-patient``
    does (split seed 0, annotated R-peaks, template features), trains one hybrid with
    ``configs/experiments/hybrid_intra_tpl_unweighted_plateau_e48.toml`` and training seed ``S`` (weight
    initialisation, batch order, dropout), writes its own evaluation (``metrics.json``,
    ``report.md``, plots, ``history.json``) into ``OUT/member-S`` and saves its validation and
    test probabilities in ``OUT/member-S/proba.npz``.

``combine --members 0,1,2``
    Averages the members' log-probabilities (as :class:`heartline.models.ensemble.HybridEnsemble`
    does), takes the argmax, and writes the ensemble's evaluation into ``OUT/ensemble`` with the
    same report writer, plus ``OUT/summary.md``: validation and test accuracy of every member and
    of the ensemble.

The split seed never changes: only the training seed differs between members, so all members
and the ensemble are scored on the same 10,074 test beats as the earlier intra-patient runs.

Usage (2 threads, nothing else running)::

    .venv/bin/python benchmarks/intra_patient/seed_ensemble.py member --seed 0 --out runs/intra-seeds
    .venv/bin/python benchmarks/intra_patient/seed_ensemble.py member --seed 1 --out runs/intra-seeds
    .venv/bin/python benchmarks/intra_patient/seed_ensemble.py member --seed 2 --out runs/intra-seeds
    .venv/bin/python benchmarks/intra_patient/seed_ensemble.py combine --members 0,1,2 --out runs/intra-seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from heartline.data.beat_set import BeatSet
from heartline.training.config import load_config
from heartline.training.evaluate import factory_for, write_evaluation
from heartline.training.protocols import ProtocolData, Split, build_split, evaluate_on_split

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = ROOT / "configs" / "experiments" / "hybrid_intra_tpl_unweighted_plateau_e48.toml"
SPLIT_SEED = 0


def _split(quick: bool = False) -> Split:
    base = ProtocolData.quick() if quick else ProtocolData()
    data = dataclasses.replace(base, template_features=True)
    return build_split("intra-patient", data, rpeaks="annotated", seed=SPLIT_SEED)


def member(seed: int, out: Path, threads: int, smoke: bool = False) -> None:
    torch.set_num_threads(threads)
    cfg = load_config(CONFIG)
    train = dataclasses.replace(cfg.train, num_threads=threads)
    if smoke:  # a check that the script runs end to end, never a result
        train = dataclasses.replace(train, max_epochs=1)
    split = _split(smoke)
    mdir = out / f"member-{seed}"
    mdir.mkdir(parents=True, exist_ok=True)
    model = factory_for(cfg.model.name, params=dict(cfg.model.params), train=train)()
    t0 = time.perf_counter()
    model.fit(split.train, split.val, run_dir=mdir, seed=seed)
    train_s = time.perf_counter() - t0
    result = evaluate_on_split(
        model, split, model_name=f"hybrid (training seed {seed})", train_seconds=train_s
    )
    write_evaluation(
        result, mdir, split=split, extra={"training_seed": seed, "config": CONFIG.name}
    )
    save_proba(
        mdir / "proba.npz", split, model.predict_proba(split.val), model.predict_proba(split.test)
    )
    m = result.metrics
    print(
        f"member {seed}: {train_s:.0f} s, validation {100 * result.val_metrics.accuracy:.2f} %, "
        f"test {100 * m.accuracy:.2f} %"
    )


def _scored_rows(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the validation and test beats that are scored (the others are context only)."""
    val = np.flatnonzero(split.val.labels >= 0)
    test = (
        np.arange(len(split.test)) if split.test_mask is None else np.flatnonzero(split.test_mask)
    )
    return val, test


def save_proba(path: Path, split: Split, val: np.ndarray, test: np.ndarray) -> None:
    """Store the probabilities of the scored rows only (context beats are never scored)."""
    vr, tr = _scored_rows(split)
    np.savez_compressed(
        path,
        n_val=len(split.val),
        n_test=len(split.test),
        val_rows=vr,
        val=val[vr],
        test_rows=tr,
        test=test[tr],
    )


def load_proba(path: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Full-length probabilities from :func:`save_proba`; unscored rows are NaN."""
    z = np.load(path)
    if int(z["n_val"]) != len(split.val) or int(z["n_test"]) != len(split.test):
        raise ValueError(f"{path} was scored on another split")
    vr, tr = _scored_rows(split)
    if not (np.array_equal(z["val_rows"], vr) and np.array_equal(z["test_rows"], tr)):
        raise ValueError(f"{path}: scored rows differ from this split's")
    out = []
    for n, rows, p in ((len(split.val), vr, z["val"]), (len(split.test), tr, z["test"])):
        full = np.full((n, p.shape[1]), np.nan, dtype=p.dtype)
        full[rows] = p
        out.append(full)
    return out[0], out[1]


class _Stored:
    """Returns stored probabilities for the split's validation and test beats (no other set).

    In the intra-patient split the validation and test sets hold the same beat sequence (the
    records, whole) with different labels hidden, so a set is recognised by its labels too.
    """

    def __init__(self, split: Split, val: np.ndarray, test: np.ndarray) -> None:
        self._sets = ((split.val, val), (split.test, test))

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        found = [
            proba
            for ref, proba in self._sets
            if len(beats) == len(ref)
            and np.array_equal(beats.sample_idx, ref.sample_idx)
            and np.array_equal(beats.record, ref.record)
            and np.array_equal(beats.labels, ref.labels)
        ]
        if len(found) != 1:
            raise ValueError(f"{len(found)} stored probability sets match these beats, not 1")
        return found[0]


def _mean_log(probas: list[np.ndarray]) -> np.ndarray:
    logp = np.mean([np.log(np.clip(p, 1e-12, 1.0)) for p in probas], axis=0)
    e = np.exp(logp - logp.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def combine(seeds: list[int], out: Path, smoke: bool = False) -> None:
    split = _split(smoke)
    stored = [load_proba(out / f"member-{s}" / "proba.npz", split) for s in seeds]
    ens = _Stored(split, _mean_log([v for v, _ in stored]), _mean_log([t for _, t in stored]))
    edir = out / "ensemble"
    if edir.exists():
        shutil.rmtree(edir)
    name = f"hybrid seed ensemble (seeds {', '.join(map(str, seeds))})"
    result = evaluate_on_split(ens, split, model_name=name)
    write_evaluation(
        result, edir, split=split, extra={"training_seeds": seeds, "config": CONFIG.name}
    )
    lines = [
        "# Seed ensemble, intra-patient (LEAKY: random beat split, same patients in training and test)",
        "",
        f"Written by `seed_ensemble.py combine --members {','.join(map(str, seeds))}`.",
        "",
        "| model | validation accuracy | test accuracy [95 % CI] | test errors | SVEB Se / +P | VEB Se / +P |",
        "|---|---:|---:|---:|---|---|",
    ]
    rows = [(f"member, seed {s}", out / f"member-{s}" / "metrics.json") for s in seeds]
    rows.append((name, edir / "metrics.json"))
    for label, path in rows:
        m = json.loads(path.read_text())
        n = m["n_test_beats"]
        cm = np.asarray(m["confusion_matrix"])
        wrong = int(cm.sum() - np.trace(cm))
        lo, hi = m["ci95"]["accuracy"]
        ec = m["ec57"]
        lines.append(
            f"| {label} | {100 * m['validation']['accuracy']:.2f} % | {100 * m['accuracy']:.2f} % "
            f"[{100 * lo:.1f}, {100 * hi:.1f}] | {wrong} of {n} | "
            f"{100 * ec['sveb']['se']:.1f} / {100 * ec['sveb']['ppv']:.1f} | "
            f"{100 * ec['veb']['se']:.1f} / {100 * ec['veb']['ppv']:.1f} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("member", help="train and score one member")
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("combine", help="score the mean of the members")
    b.add_argument("--members", default="0,1,2")
    for p in (a, b):
        p.add_argument("--out", type=Path, required=True, help="run directory")
        p.add_argument(
            "--smoke", action="store_true", help="quick data, 1 epoch: checks the script only"
        )
    args = ap.parse_args()
    if args.cmd == "member":
        member(args.seed, args.out, args.threads, args.smoke)
    else:
        combine([int(s) for s in args.members.split(",")], args.out, args.smoke)


if __name__ == "__main__":
    main()
