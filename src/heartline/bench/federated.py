"""``heartline bench federated``: central vs federated training, privacy, dropout, attacks.

One command, side by side, on the beats task (MIT-BIH DS1 patients over hospitals, DS2 test):

* ``central``: the same network, optimiser and local-epoch budget trained on the union of the
  hospitals' records (``rounds x local_epochs`` epochs), no federation;
* ``fedavg``, ``fedprox``, ``fedadam``: Flower deployments (SuperLink + one SuperNode per
  hospital, ``flwr run``);
* ``dp_eps1``, ``dp_eps3``, ``dp_eps8``: FedAvg with client-level DP (clipping + Gaussian noise,
  epsilon at delta 1e-5; ``fedavg`` is the no-DP point of the curve);
* ``dropout``: FedAvg with one hospital unreachable in rounds 2 and 3, back in round 4;
* ``attack_fedavg`` / ``attack_robust``: one hospital sends NaN weights and another sends its
  update scaled by 100, aggregated by plain FedAvg and by the robust FedTrimmedAvg.

Writes ``federated.json`` (``{"engine": "flower-deployment", "tasks": {"beats": {...},
"rhythm": {...}}}``; every entry has ``macro_f1``, ``rounds``, ``bytes_total``, ``seconds``, the DP
entries ``epsilon``), ``federated.md``, ``curves_beats.png`` (validation macro-F1 per round) and
``privacy_<task>.png`` (accuracy-privacy curve). The rhythm task (CinC 2017 sites) runs the same
comparison plus ``dpsgd_eps1/3/8``: record-level DP-SGD inside each site with Opacus
(:func:`heartline.training.local.train_local_rhythm`; Abadi et al. 2016), epsilon as reported by
Opacus' RDP accountant, and ``dphead_eps1/3/8``: the same record-level DP-SGD of a small model
with far fewer parameters to privatise, a linear head over the 54 hand features
(:class:`heartline.models.rhythm.FeatureRhythmNet`; input scaler fitted on public data, class
weights from the published CinC 2017 counts, no statistics query, so nothing but the DP-SGD
updates leaves a site); ``central_head`` and ``fedavg_head`` are the same head without DP
(central on the pooled records, FedAvg), its own non-private references. The tasks run one
after the other (one federation at a time).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchConfig", "BenchInterrupted", "run_federated_bench"]

logger = logging.getLogger(__name__)

#: on SIGTERM / Ctrl-C, how long the worker threads get to return before the report is written
#: (central training is not interruptible within an epoch; its thread starts no process)
_STOP_WAIT_S = 20.0


@dataclass(frozen=True)
class BenchConfig:
    """Budget of the benchmark (``quick``: a smoke test)."""

    hospitals: int = 5
    rounds: int = 4
    local_epochs: int = 1
    keep_normal: float = 0.1
    #: partition (Dirichlet draw), N subsample, local validation split and initialisation
    seed: int = 0
    #: the training randomness alone (DP-SGD noise, Poisson batches, shuffles) at the same
    #: partition and initialisation (:attr:`FederatedRunConfig.noise_seed`; 0: the draws of the
    #: benchmark before this option)
    noise_seed: int = 0
    dp_epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    dp_clip: float = 0.5
    dropout_hospital: int = 1
    dropout_rounds: tuple[int, ...] = (2, 3)
    nan_hospital: int = 3
    scaled_hospital: int = 4
    robust: str = "trimmedavg"
    trimmed_beta: float = 0.4
    #: in order of importance, so that a run cut short still answers the main questions
    scenarios: tuple[str, ...] = (
        "central",
        "fedavg",
        "fedavg_la",
        "fedavgm_la",
        "attack_fedavg",
        "attack_robust",
        "dropout",
        "fedprox",
        "fedadam",
        "dp",
    )
    #: the rhythm task (CinC 2017 sites with Dirichlet label skew), run beside the beats task
    rhythm_hospitals: int = 5
    rhythm_alpha: float = 1.0
    rhythm_keep_normal: float = 0.3
    rhythm_scenarios: tuple[str, ...] = (
        "central",
        "fedavg",
        "fedavg_la",
        "fedavgm_la",
        "fedprox",
        "fedadam",
        "dphead",
        "central_head",
        "fedavg_head",
        "dpsgd",
        "dpsgd_la",
        "dp",
    )
    #: record-level DP-SGD inside each site (Opacus), rhythm task: epsilon of the whole run
    dpsgd_epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    dpsgd_clip: float = 1.0
    #: ``dphead``: record-level DP-SGD (same epsilons) of a linear head over the 54 hand
    #: features (public input scaler and class weights, no statistics query), with its own
    #: local budget, chosen on pooled validation macro-F1 over seeds 0-2 with
    #: ``scripts/federated_gap.py`` (docs/results/federated.md, 2026-12-07)
    dphead_model: str = "hand-head"
    dphead_epochs: int = 3
    dphead_lr: float = 0.03
    dphead_batch: int = 32
    dphead_clip: float = 1.0
    #: FedAdam's server learning rate
    fedadam_eta: float = 0.01
    #: FedAvgM's server learning rate (``fedavgm_la``): makes up for the 1 / N share of a
    #: pooled epoch that each hospital's averaged update carries
    server_lr: float = 2.0
    #: pool label counts (and RR sums) before training: class weights and RR standardisation
    #: of the union, as central training computes them
    global_statistics: bool = True
    #: 0: the whole central test set; > 0: only its first ``test_records`` records (smoke tests
    #: only: a subset is not the benchmark's test set)
    test_records: int = 0
    tasks: tuple[str, ...] = ("beats", "rhythm")
    #: run the tasks one after the other (one federation at a time on a shared machine)
    sequential: bool = True
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_config(cls) -> BenchConfig:
        """3 hospitals (beats) and 5 sites (rhythm, the fewest it takes), 2 rounds, few
        examples, the first 4 DS2 records and 100 held-out records as test sets: central,
        FedAvg and one DP run (beats), central and FedAvg (rhythm); a smoke test."""
        return cls(
            hospitals=3,
            rounds=2,
            keep_normal=0.02,
            dp_epsilons=(3.0,),
            dropout_rounds=(2,),
            nan_hospital=1,
            scaled_hospital=2,
            scenarios=("central", "fedavg", "dp"),
            rhythm_keep_normal=0.05,
            rhythm_scenarios=("central", "fedavg"),
            test_records=4,
            quick=True,
        )


def _fed_entry(res: dict[str, Any], test: dict[str, Any], **extra: Any) -> dict[str, Any]:
    rounds = res["rounds"]
    return {
        "macro_f1": test["macro_f1"],
        "accuracy": test["accuracy"],
        "rounds": max((r["round"] for r in rounds), default=0),
        "bytes_total": int(
            sum((r.get("bytes_sent") or 0) + (r.get("bytes_received") or 0) for r in rounds)
        ),
        "seconds": res["seconds"],
        "curve": [
            {"round": r["round"], "val_macro_f1": r.get("val_macro_f1")}
            for r in sorted(rounds, key=lambda r: r["round"])
        ],
        "round_records": rounds,
        "confusion": test["confusion"],
        **({"cinc_f1": test["cinc_f1"]} if "cinc_f1" in test else {}),
        **extra,
    }


def _concat_rhythm(parts: list[Any]) -> Any:
    """Concatenate :class:`heartline.training.rhythm.RhythmArrays` (signals re-padded)."""
    import numpy as np

    from heartline.training.rhythm import RhythmArrays

    width = max(p.signals.shape[1] for p in parts)
    signals = np.zeros((sum(len(p) for p in parts), width), dtype=np.float32)
    row = 0
    for p in parts:
        signals[row : row + len(p), : p.signals.shape[1]] = p.signals
        row += len(p)
    return RhythmArrays(
        np.concatenate([p.records for p in parts]),
        np.concatenate([p.y for p in parts]),
        signals,
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.rr for p in parts]),
        parts[0].fs_hz,
    )


class BenchInterrupted(Exception):
    """The benchmark was asked to stop (SIGTERM or Ctrl-C) while this run was going on."""


def _central(
    task: str,
    cfg: BenchConfig,
    manifest: Any,
    test: Any,
    data_dir: Path | None,
    stop: Any = None,
    *,
    head: bool = False,
) -> dict[str, Any]:
    """Central training on the union of the hospitals' records, same local budget.

    Each hospital's data is loaded exactly as its SuperNode loads it (same local validation
    split and the same subsample of N examples), then pooled. ``head`` (rhythm,
    ``central_head``): the hand-feature head of ``dphead`` without DP, ``rounds`` fits of
    ``dphead_epochs`` epochs (the federated head's local budget), public class weights; ``test``
    must then hold the head's features.
    """
    import torch

    from heartline.federated.export import evaluate_arrays
    from heartline.federated.tasks import (
        NOISE_SEED_STRIDE,
        SiteData,
        SiteTask,
        load_site_data,
        model_features,
    )
    from heartline.training.local import public_rhythm_class_weights, state_arrays

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    keep = cfg.keep_normal if task == "beats" else cfg.rhythm_keep_normal
    trains, vals = [], []
    feats = model_features(cfg.dphead_model) if head else "rr"
    for h in manifest.hospitals:
        d = load_site_data(
            task,
            h.records,
            data_dir=data_dir,
            keep_normal=keep,
            seed=cfg.seed + h.partition_id,
            features=feats,
        )
        trains.append(d.train)
        vals.append(d.val)
    if task == "beats":
        from heartline.data.beat_set import concat_beat_sets

        data = SiteData(concat_beat_sets(trains), concat_beat_sets(vals), manifest.all_records())
    else:
        data = SiteData(_concat_rhythm(trains), _concat_rhythm(vals), manifest.all_records())
    if head:
        site = SiteTask(
            task,
            data,
            epochs=cfg.dphead_epochs,
            lr=cfg.dphead_lr,
            batch_size=cfg.dphead_batch,
            model=cfg.dphead_model,
            seed=cfg.seed,
        )
        site.set_class_weights(public_rhythm_class_weights(keep).tolist())
        fits = cfg.rounds
    else:
        site = SiteTask(task, data, epochs=1, seed=cfg.seed)
        fits = cfg.rounds * cfg.local_epochs
    arrays = state_arrays(site.net)
    curve = [{"round": 0, "val_macro_f1": site.evaluate(arrays).macro_f1}]
    for epoch in range(1, fits + 1):
        if stop is not None and stop.is_set():
            raise BenchInterrupted(f"{task} central training stopped before epoch {epoch}")
        arrays, _ = site.fit(arrays, round_seed=epoch + NOISE_SEED_STRIDE * cfg.noise_seed)
        curve.append({"round": epoch, "val_macro_f1": site.evaluate(arrays).macro_f1})
    seconds = time.perf_counter() - t0
    t = evaluate_arrays(task, arrays, test)
    return {
        **{k: v for k, v in t.items() if k not in ("loss", "n_beats")},
        "rounds": 0,
        "epochs": fits * site.cfg.epochs,
        **({"model": cfg.dphead_model} if head else {}),
        "bytes_total": 0,
        "seconds": seconds,
        "curve": curve,
    }


def _scenarios(cfg: BenchConfig, task: str = "beats") -> list[tuple[str, dict[str, Any]]]:
    """(name, FederatedRunConfig overrides) of every federated run of ``task``."""
    out: list[tuple[str, dict[str, Any]]] = []
    for s in cfg.scenarios if task == "beats" else cfg.rhythm_scenarios:
        if s in ("fedavg", "fedprox", "fedadam"):
            out.append((s, {"strategy": s}))
        elif s == "fedavg_la":  # FedAvg + per-hospital logit adjustment against label skew
            out.append((s, {"strategy": "fedavg", "label_skew": True}))
        elif s == "fedavgm_la":  # + server learning rate cfg.server_lr (FedAvgM)
            out.append((s, {"strategy": "fedavgm", "label_skew": True}))
        elif s == "dpsgd_la" and task == "rhythm":
            for eps in cfg.dpsgd_epsilons:
                out.append(
                    (
                        f"dpsgd_la_eps{eps:g}",
                        {"strategy": "fedavg", "record_dp_epsilon": eps, "label_skew": True},
                    )
                )
        elif s == "fedavg_head" and task == "rhythm":  # the head without DP (same budget)
            out.append(
                (
                    s,
                    {
                        "strategy": "fedavg",
                        "model": cfg.dphead_model,
                        "global_statistics": False,
                        "local_epochs": cfg.dphead_epochs,
                        "lr": cfg.dphead_lr,
                        "batch_size": cfg.dphead_batch,
                    },
                )
            )
        elif s == "dphead" and task == "rhythm":
            for eps in cfg.dpsgd_epsilons:
                out.append(
                    (
                        f"dphead_eps{eps:g}",
                        {
                            "strategy": "fedavg",
                            "record_dp_epsilon": eps,
                            "model": cfg.dphead_model,
                            "global_statistics": False,
                            "local_epochs": cfg.dphead_epochs,
                            "lr": cfg.dphead_lr,
                            "batch_size": cfg.dphead_batch,
                            "dp_clip_norm": cfg.dphead_clip,
                        },
                    )
                )
        elif s == "dpsgd" and task == "rhythm":
            for eps in cfg.dpsgd_epsilons:
                out.append((f"dpsgd_eps{eps:g}", {"strategy": "fedavg", "record_dp_epsilon": eps}))
        elif s == "dp":
            for eps in cfg.dp_epsilons:
                out.append((f"dp_eps{eps:g}", {"strategy": "fedavg", "dp_epsilon": eps}))
        elif s == "dropout":
            out.append(
                (
                    "dropout",
                    {
                        "strategy": "fedavg",
                        "node_extra": {
                            cfg.dropout_hospital: {
                                "offline-rounds": ",".join(map(str, cfg.dropout_rounds))
                            }
                        },
                    },
                )
            )
        elif s in ("attack_fedavg", "attack_robust"):
            out.append(
                (
                    s,
                    {
                        "strategy": "fedavg" if s == "attack_fedavg" else cfg.robust,
                        "node_extra": {
                            cfg.nan_hospital: {"behaviour": "nan"},
                            cfg.scaled_hospital: {"behaviour": "scale100"},
                        },
                    },
                )
            )
    return out


def _f1(entries: dict[str, Any], name: str) -> float | None:
    e = entries.get(name)
    return None if e is None or "error" in e else float(e["macro_f1"])


def _targets(tasks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue, with the measured value, ``met`` None when not measured."""
    rows: list[dict[str, Any]] = []
    for task in ("beats", "rhythm"):
        ent = tasks.get(task, {})
        central = _f1(ent, "central")
        fed = [
            (n, _f1(ent, n))
            for n in ("fedavg", "fedavg_la", "fedavgm_la", "fedprox", "fedadam")
            if _f1(ent, n) is not None
        ]
        if central and fed:
            name, best = max(fed, key=lambda t: t[1])  # type: ignore[arg-type,return-value]
            rows.append(
                {
                    "target": f"{task}: best federated >= 98 % of central macro-F1",
                    "value": f"{name} {best:.3f} = {100 * best / central:.1f} % of {central:.3f}",
                    "met": best >= 0.98 * central,
                }
            )
        else:
            rows.append(
                {
                    "target": f"{task}: best federated >= 98 % of central",
                    "value": "not run",
                    "met": None,
                }
            )
        for name, e in ent.items():
            if name.startswith(("dp_", "dpsgd_", "dphead_")) and "error" not in e and central:
                strict = task == "rhythm" and e["epsilon"] <= 3
                kind = (
                    "record-level DP-SGD"
                    if name.startswith("dpsgd_")
                    else "record-level DP-SGD, hand-feature head"
                    if name.startswith("dphead_")
                    else "client-level DP"
                )
                rows.append(
                    {
                        "target": f"{task}: {kind} epsilon {e['epsilon']:.3g}"
                        + (" >= 90 % of central" if strict else " (accuracy-privacy curve)"),
                        "value": f"{e['macro_f1']:.3f} = {100 * e['macro_f1'] / central:.1f} %",
                        "met": (e["macro_f1"] >= 0.9 * central) if strict else None,
                    }
                )
    beats = tasks.get("beats", {})
    clean = _f1(beats, "fedavg")
    drop = _f1(beats, "dropout")
    if drop is not None and clean is not None:
        rows.append(
            {
                "target": "beats: one hospital offline in rounds 2-3 within 2 points of FedAvg",
                "value": f"{drop:.3f} vs {clean:.3f} ({100 * (drop - clean):+.1f} points)",
                "met": abs(drop - clean) <= 0.02,
            }
        )
    att = _f1(beats, "attack_fedavg")
    if clean is not None and att is not None:
        rows.append(
            {
                "target": "beats: a NaN and a x100 hospital break plain FedAvg",
                "value": f"{att:.3f} vs clean {clean:.3f}",
                "met": att < clean - 0.10,
            }
        )
    rob = _f1(beats, "attack_robust")
    if clean is not None and rob is not None:
        rows.append(
            {
                "target": "beats: robust aggregator within 3 points of clean FedAvg",
                "value": f"{rob:.3f} vs {clean:.3f} ({100 * (rob - clean):+.1f} points)",
                "met": rob >= clean - 0.03,
            }
        )
    return rows


def _plot(tasks: dict[str, dict[str, Any]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for task, ent in tasks.items():
        if not any("curve" in e for e in ent.values()):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, e in ent.items():
            pts = [
                (c["round"], c["val_macro_f1"])
                for c in e.get("curve", [])
                if c["val_macro_f1"] is not None
            ]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, marker="o", label=name, linestyle="--" if name == "central" else "-")
        ax.set_xlabel("round (central: epoch)")
        ax.set_ylabel("validation macro-F1 (pooled over hospitals)")
        ax.set_title(f"Federated {task}: validation macro-F1 per round")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"curves_{task}.png", dpi=120)
        plt.close(fig)
        files.append(f"curves_{task}.png")
        curves = {
            label: sorted(
                (e["epsilon"], e["macro_f1"])
                for n, e in ent.items()
                if n.startswith(prefix) and not n.startswith(prefix + "la_") and "error" not in e
            )
            for prefix, label in (
                ("dp_", "FedAvg + client-level DP"),
                ("dpsgd_", "FedAvg + record-level DP-SGD (Opacus)"),
                ("dpsgd_la_", "FedAvg + DP-SGD + logit adjustment"),
                ("dphead_", "FedAvg + DP-SGD, linear head over hand features"),
            )
        }
        if any(curves.values()):
            fig, ax = plt.subplots(figsize=(5.5, 4))
            for label, dp in curves.items():
                if dp:
                    x, y = zip(*dp, strict=True)
                    ax.plot(x, y, marker="o", label=label)
            for name, style, color in (
                ("fedavg", ":", "grey"),
                ("central", "--", "grey"),
                ("fedavg_head", ":", "tab:olive"),
                ("central_head", "--", "tab:olive"),
            ):
                if _f1(ent, name) is not None:
                    ax.axhline(ent[name]["macro_f1"], linestyle=style, color=color, label=name)
            ax.set_xscale("log")
            ax.set_xlabel("epsilon (delta = 1e-5)")
            ax.set_ylabel("test macro-F1")
            ax.set_title(f"Accuracy-privacy curve ({task})")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / f"privacy_{task}.png", dpi=120)
            plt.close(fig)
            files.append(f"privacy_{task}.png")
    return files


def _markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"# Federated benchmark ({report['date']}, commit {report['git_revision'][:12]})",
        "",
        f"Command: `{report['command']}`  ",
        f"Engine: {report['engine']} (SuperLink + one SuperNode per hospital, `flwr run`). "
        f"Beats: {c['hospitals']} hospitals (MIT-BIH DS1 patients), DS2 test, "
        f"{100 * c['keep_normal']:g} % of N beats carry a loss. Rhythm: {c['rhythm_hospitals']} "
        f"CinC 2017 sites (Dirichlet alpha {c['rhythm_alpha']:g}), held-out fold test, "
        f"{100 * c['rhythm_keep_normal']:g} % of N records train. {c['rounds']} rounds x "
        f"{c['local_epochs']} local epoch (central: {c['rounds'] * c['local_epochs']} epochs). "
        "Seconds are wall-clock on a shared 2-core machine (load average "
        f"{report.get('load_average', {}).get('start', '?')} at the start, "
        f"{report.get('load_average', {}).get('end', '?')} at the last write): re-measure "
        "before quoting them.",
    ]
    for task, ent in report["tasks"].items():
        lines += [
            "",
            f"## {task}",
            "",
            "| run | test macro-F1 | accuracy | rounds | bytes | seconds | epsilon |",
            "|---|---|---|---|---|---|---|",
        ]
        if not ent:
            lines.append("| (not run) | | | | | | |")
        for name, e in ent.items():
            if "error" in e:
                lines.append(f"| {name} | failed: {str(e['error'])[:80]} | | | | | |")
                continue
            eps = e.get("epsilon")
            lines.append(
                f"| {name} | {e['macro_f1']:.3f} | {e['accuracy']:.3f} | {e['rounds']} | "
                f"{e['bytes_total']:,} | {e['seconds']:.0f} | "
                f"{'-' if eps is None else f'{eps:.3g}'} |"
            )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['value']} | {met} |")
    lines.append("")
    for f in report.get("plots", []):
        lines.append(f"![{f}]({f})")
    return "\n".join(lines) + "\n"


def _loadavg() -> str:
    """The 1, 5 and 15 min load averages (``"?"`` where the OS has none)."""
    import os

    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _budget(c: dict[str, Any]) -> dict[str, Any]:
    """Configuration keys that change a measured number (not the order or choice of runs; the
    epsilons choose runs, each named by its epsilon)."""
    return {
        k: v
        for k, v in c.items()
        if k
        not in (
            "scenarios",
            "rhythm_scenarios",
            "tasks",
            "sequential",
            "dp_epsilons",
            "dpsgd_epsilons",
        )
    }


def run_federated_bench(
    out: str | Path,
    *,
    quick: bool = False,
    data_dir: str | Path | None = None,
    nice: int = 0,
    config: BenchConfig | None = None,
    resume: bool = False,
) -> Path:
    """Run every scenario (see the module docstring); return the path of ``federated.json``.

    The two tasks run side by side (one thread each, every federation its own processes). The
    report (JSON, Markdown, plots) is rewritten after every run, so a benchmark cut short keeps
    what it measured; ``resume`` skips the runs an earlier benchmark with the same budget already
    wrote into ``out/federated.json``.
    """
    import sys
    import threading

    from heartline.federated.deployment import FederatedRunConfig, run_federation
    from heartline.federated.export import evaluate_arrays, load_npz
    from heartline.federated.partition import (
        load_manifest,
        partition_beats,
        partition_rhythm,
        save_manifest,
    )
    from heartline.federated.privacy import DP_DELTA, noise_for_epsilon
    from heartline.federated.tasks import load_test_data, model_features
    from heartline.training.rundir import git_revision, write_json

    cfg = config or (BenchConfig.quick_config() if quick else BenchConfig())
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_path = Path(data_dir) if data_dir is not None else None
    tasks: dict[str, dict[str, Any]] = {"beats": {}, "rhythm": {}}
    report: dict[str, Any] = {
        "engine": "flower-deployment",
        "date": dt.date.today().isoformat(),
        "git_revision": git_revision(),
        "command": "heartline " + " ".join(sys.argv[1:]) if sys.argv else "",
        "config": asdict(cfg),
        "seed": cfg.seed,
        "noise_seed": cfg.noise_seed,
        "tasks": tasks,
        "load_average": {"start": _loadavg()},
    }
    previous = out / "federated.json"
    if resume and previous.is_file():
        old = json.loads(previous.read_text(encoding="utf-8"))
        old_b, new_b = _budget(old.get("config", {})), _budget(json.loads(json.dumps(asdict(cfg))))
        common = set(old_b) & set(new_b)
        if any(old_b[k] != new_b[k] for k in common):
            raise ValueError(f"--resume: {previous} was written with another budget")
        for task, ent in old.get("tasks", {}).items():
            if task in tasks:
                tasks[task].update(
                    {k: v for k, v in ent.items() if isinstance(v, dict) and "error" not in v}
                )
        report["resumed_from"] = {
            "git_revision": old.get("git_revision"),
            "runs": {t: list(e) for t, e in tasks.items()},
        }
    lock = threading.Lock()
    #: set on SIGTERM / Ctrl-C: the workers start nothing more and every deployment is closed
    stop = threading.Event()
    deployments: list[Any] = []  # every deployment created, closed by the main thread on stop
    dep_lock = threading.Lock()

    def register(dep: Any) -> None:
        with dep_lock:
            deployments.append(dep)
            stopping = stop.is_set()
        if stopping:  # created after the sweep: refuse its first process
            dep.close()

    def close_all() -> None:
        with dep_lock:
            deps = list(deployments)
        for dep in deps:
            try:
                dep.close()
            except Exception:  # keep stopping the others
                logger.exception("stopping a deployment failed")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    bar_tasks = {
        t: bar.add_task(
            f"bench federated {t}",
            total=len(_scenarios(cfg, t))
            + 1
            + int(t == "rhythm" and "central_head" in cfg.rhythm_scenarios),
            info="",
            completed=len(tasks[t]),
        )
        for t in cfg.tasks
    }

    def finish() -> Path:
        with lock:
            report["load_average"]["end"] = _loadavg()
            report["targets"] = _targets(tasks)
            report["plots"] = _plot(tasks, out)
            path = write_json(out / "federated.json", json.loads(json.dumps(report, default=str)))
            (out / "federated.md").write_text(_markdown(report), encoding="utf-8")
            return path

    def run_task(task: str) -> None:
        try:
            _run_task(task)
        except BenchInterrupted as exc:
            logger.warning("%s", exc)
        except Exception:
            logger.exception("bench federated %s stopped on an error", task)

    def _run_task(task: str) -> None:
        ent = tasks[task]
        if task == "beats":
            m = partition_beats(cfg.hospitals, seed=cfg.seed, data_dir=data_dir)
        else:
            m = partition_rhythm(
                cfg.rhythm_hospitals, alpha=cfg.rhythm_alpha, seed=cfg.seed, data_dir=data_dir
            )
        manifest_path = save_manifest(m, out / f"manifest_{task}.json")
        manifest = load_manifest(manifest_path)
        test = load_test_data(manifest, data_dir=data_dir, limit=cfg.test_records)
        tests: dict[str, Any] = {}
        scen = cfg.scenarios if task == "beats" else cfg.rhythm_scenarios
        if "central" in scen and "central" not in ent and not stop.is_set():
            logger.info("%s: central training", task)
            try:
                ent["central"] = _central(task, cfg, manifest, test, data_path, stop)
            except BenchInterrupted:
                raise
            except Exception as exc:
                logger.exception("%s central failed", task)
                ent["central"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            finish()
            bar.advance(bar_tasks[task])
        if "central_head" in scen and task == "rhythm" and "central_head" not in ent:
            if stop.is_set():
                raise BenchInterrupted(f"{task}: stopped before central_head")
            logger.info("%s: central training of the hand-feature head", task)
            feats = model_features(cfg.dphead_model)
            try:
                if feats not in tests:
                    tests[feats] = load_test_data(
                        manifest, data_dir=data_dir, limit=cfg.test_records, features=feats
                    )
                ent["central_head"] = _central(
                    task, cfg, manifest, tests[feats], data_path, stop, head=True
                )
            except BenchInterrupted:
                raise
            except Exception as exc:
                logger.exception("%s central_head failed", task)
                ent["central_head"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            finish()
            bar.advance(bar_tasks[task])
        for name, over in _scenarios(cfg, task):
            if name in ent:
                continue
            if stop.is_set():
                raise BenchInterrupted(f"{task}: stopped before {name}")
            logger.info("%s: %s", task, name)
            bar.update(bar_tasks[task], info=name)
            eps = over.pop("dp_epsilon", None)
            rec_eps = over.get("record_dp_epsilon")
            noise = noise_for_epsilon(eps, cfg.rounds) if eps is not None else 0.0
            base: dict[str, Any] = dict(
                task=task,
                manifest=manifest_path,
                num_rounds=cfg.rounds,
                local_epochs=cfg.local_epochs,
                keep_normal=cfg.keep_normal if task == "beats" else cfg.rhythm_keep_normal,
                seed=cfg.seed,
                noise_seed=cfg.noise_seed,
                dp_noise_multiplier=noise,
                dp_clip_norm=cfg.dpsgd_clip if rec_eps else cfg.dp_clip,
                dp_delta=DP_DELTA,
                trimmed_beta=cfg.trimmed_beta,
                fedadam_eta=cfg.fedadam_eta,
                server_lr=cfg.server_lr,
                global_statistics=cfg.global_statistics,
                round_timeout_s=900.0,
                data_dir=data_path,
            )
            rcfg = FederatedRunConfig(**{**base, **over})
            extra: dict[str, Any] = {"strategy": rcfg.strategy}
            if eps is not None:
                extra.update(
                    epsilon=eps,
                    delta=DP_DELTA,
                    noise_multiplier=noise,
                    clip=cfg.dp_clip,
                    dp="client-level (hospital), server-side clipping + Gaussian noise",
                )
            if rec_eps:
                extra.update(
                    epsilon=rec_eps,
                    epsilon_target=rec_eps,
                    delta=DP_DELTA,
                    clip=rcfg.dp_clip_norm,
                    dp="record-level DP-SGD in each hospital (Opacus), epsilon per record",
                )
            if rcfg.model != "hybrid":
                extra.update(
                    model=rcfg.model,
                    local_epochs=rcfg.local_epochs,
                    lr=rcfg.lr,
                    batch_size=rcfg.batch_size,
                    statistics="none shared: public input scaler and class weights",
                )
            run_test = test
            if rcfg.model != "hybrid":  # the head reads its own feature set
                feats = model_features(rcfg.model)
                if feats not in tests:
                    tests[feats] = load_test_data(
                        manifest, data_dir=data_dir, limit=cfg.test_records, features=feats
                    )
                run_test = tests[feats]
            run_dir = out / "runs" / (name if task == "beats" else f"{task}_{name}")
            try:
                res = run_federation(rcfg, out_dir=run_dir, nice=nice, on_create=register)
                if res["final_weights"] is None:
                    raise RuntimeError("no global model was written")
                t = evaluate_arrays(task, load_npz(res["final_weights"]), run_test)
                if t["loss"] is None:
                    extra["non_finite_model"] = True
                spent = [
                    r["record_dp_epsilon"] for r in res["rounds"] if r.get("record_dp_epsilon")
                ]
                if rec_eps and spent:  # what Opacus' accountant reported, largest hospital
                    extra["epsilon"] = float(max(spent))
                ent[name] = _fed_entry(res, t, **extra)
            except Exception as exc:  # one failed run must not lose the others
                if stop.is_set():  # not a result: --resume runs it again
                    raise BenchInterrupted(f"{task}: {name} stopped") from exc
                logger.exception("%s %s failed", task, name)
                ent[name] = {"error": f"{type(exc).__name__}: {exc}"[:500], **extra}
            finish()
            bar.advance(bar_tasks[task])

    threads = [
        threading.Thread(target=run_task, args=(t,), name=f"bench-{t}", daemon=True)
        for t in cfg.tasks
    ]
    import contextlib
    import signal

    from heartline.federated.deployment import raise_keyboard_interrupt

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):  # both unwind as KeyboardInterrupt (main thread)
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            previous[sig] = signal.signal(sig, raise_keyboard_interrupt)
    try:
        with bar:
            if not cfg.sequential:
                for th in threads:
                    th.start()
            try:
                for th in threads:
                    if cfg.sequential and not stop.is_set():
                        th.start()
                    while th.is_alive():  # joins with a timeout so signals reach this thread
                        th.join(timeout=1.0)
            except KeyboardInterrupt:
                # the worker threads cannot catch signals: refuse new runs, stop every process
                stop.set()
                logger.warning("bench federated: stopping every federation")
                close_all()
                deadline = time.monotonic() + _STOP_WAIT_S
                for th in threads:  # a federation's thread returns once its processes die
                    if th.is_alive():
                        th.join(timeout=max(0.0, deadline - time.monotonic()))
                close_all()  # any deployment created meanwhile
                finish()
                raise
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    return finish()
