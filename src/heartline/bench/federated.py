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
``privacy_beats.png`` (accuracy-privacy curve). The rhythm task is reported as not run until
``heartline.training.rhythm`` exists.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchConfig", "run_federated_bench"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """Budget of the benchmark (``quick``: a smoke test)."""

    hospitals: int = 5
    rounds: int = 4
    local_epochs: int = 1
    keep_normal: float = 0.1
    seed: int = 0
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
        "attack_fedavg",
        "attack_robust",
        "dropout",
        "fedprox",
        "fedadam",
        "dp",
    )
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_config(cls) -> BenchConfig:
        return cls(
            hospitals=5,
            rounds=2,
            keep_normal=0.02,
            dp_epsilons=(3.0,),
            dropout_rounds=(2,),
            scenarios=("central", "fedavg", "dp", "attack_fedavg", "attack_robust"),
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
        **extra,
    }


def _central(cfg: BenchConfig, manifest: Any, test: Any, data_dir: Path | None) -> dict[str, Any]:
    """Central training on the union of the hospitals' records, same local budget."""
    import numpy as np
    import torch

    from heartline.federated.tasks import SiteTask, load_site_data
    from heartline.training.local import state_arrays

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    from heartline.data.beats import concat_beat_sets

    trains, vals = [], []
    for h in manifest.hospitals:  # each hospital's N subsample drawn as in its SuperNode
        d = load_site_data(
            "beats",
            h.records,
            data_dir=data_dir,
            keep_normal=cfg.keep_normal,
            seed=cfg.seed + h.partition_id,
        )
        trains.append(d.train)
        vals.append(d.val)
    from heartline.federated.tasks import SiteData

    data = SiteData(concat_beat_sets(trains), concat_beat_sets(vals), manifest.all_records())
    site = SiteTask("beats", data, epochs=1, seed=cfg.seed)
    arrays = state_arrays(site.net)
    curve = [{"round": 0, "val_macro_f1": site.evaluate(arrays).macro_f1}]
    for epoch in range(1, cfg.rounds * cfg.local_epochs + 1):
        arrays, _ = site.fit(arrays, round_seed=epoch)
        curve.append({"round": epoch, "val_macro_f1": site.evaluate(arrays).macro_f1})
    seconds = time.perf_counter() - t0
    from heartline.federated.export import evaluate_arrays

    t = evaluate_arrays("beats", arrays, test)
    del np
    return {
        "macro_f1": t["macro_f1"],
        "accuracy": t["accuracy"],
        "rounds": 0,
        "epochs": cfg.rounds * cfg.local_epochs,
        "bytes_total": 0,
        "seconds": seconds,
        "curve": curve,
        "confusion": t["confusion"],
    }


def _scenarios(cfg: BenchConfig) -> list[tuple[str, dict[str, Any]]]:
    """(name, FederatedRunConfig overrides) of every federated run."""
    out: list[tuple[str, dict[str, Any]]] = []
    for s in cfg.scenarios:
        if s in ("fedavg", "fedprox", "fedadam"):
            out.append((s, {"strategy": s}))
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


def _targets(beats: dict[str, Any]) -> list[dict[str, Any]]:
    central = beats.get("central", {}).get("macro_f1")
    rows: list[dict[str, Any]] = []

    def f1(name: str) -> float | None:
        e = beats.get(name)
        return None if e is None or "error" in e else e["macro_f1"]

    fed = [(n, f1(n)) for n in ("fedavg", "fedprox", "fedadam") if f1(n) is not None]
    if central and fed:
        name, best = max(fed, key=lambda t: t[1])
        rows.append(
            {
                "target": "beats: best federated >= 98 % of central macro-F1",
                "value": f"{name} {best:.3f} = {100 * best / central:.1f} % of {central:.3f}",
                "met": best >= 0.98 * central,
            }
        )
    if f1("dropout") is not None and f1("fedavg") is not None:
        d = f1("dropout") - f1("fedavg")  # type: ignore[operator]
        rows.append(
            {
                "target": "beats: one hospital dropped (rounds 2-3) within 2 points of FedAvg",
                "value": f"{100 * d:+.1f} points",
                "met": abs(d) <= 0.02,
            }
        )
    clean = f1("fedavg")
    if clean is not None and f1("attack_fedavg") is not None:
        a = f1("attack_fedavg")
        rows.append(
            {
                "target": "beats: NaN + x100 hospitals break plain FedAvg",
                "value": f"{a:.3f} vs clean {clean:.3f}",
                "met": a < clean - 0.10,  # type: ignore[operator]
            }
        )
    if clean is not None and f1("attack_robust") is not None:
        r = f1("attack_robust")
        rows.append(
            {
                "target": "beats: robust aggregator within 3 points of clean FedAvg",
                "value": f"{r:.3f} vs {clean:.3f} ({100 * (r - clean):+.1f} points)",  # type: ignore[operator]
                "met": r >= clean - 0.03,  # type: ignore[operator]
            }
        )
    for name, e in beats.items():
        if name.startswith("dp_") and "error" not in e and central:
            rows.append(
                {
                    "target": f"beats (informative): DP epsilon {e['epsilon']:g} vs central",
                    "value": f"{e['macro_f1']:.3f} = {100 * e['macro_f1'] / central:.1f} %",
                    "met": None,
                }
            )
    rows.append(
        {
            "target": "rhythm: federated >= 98 % of central; DP eps <= 3 >= 90 % of central",
            "value": "not run (heartline.training.rhythm not on this branch)",
            "met": None,
        }
    )
    return rows


def _plot(beats: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in beats.items():
        if "curve" not in e:
            continue
        pts = [(c["round"], c["val_macro_f1"]) for c in e["curve"] if c["val_macro_f1"] is not None]
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", label=name, linestyle="--" if name == "central" else "-")
    ax.set_xlabel("round (central: epoch)")
    ax.set_ylabel("validation macro-F1 (pooled over hospitals)")
    ax.set_title("Federated beat classification: validation macro-F1 per round")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "curves_beats.png", dpi=120)
    plt.close(fig)
    files.append("curves_beats.png")
    dp = sorted(
        (e["epsilon"], e["macro_f1"])
        for n, e in beats.items()
        if n.startswith("dp_") and "error" not in e
    )
    if dp:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        x, y = zip(*dp, strict=True)
        ax.plot(x, y, marker="o", label="FedAvg + client-level DP")
        for name, style in (("fedavg", ":"), ("central", "--")):
            if name in beats and "error" not in beats[name]:
                ax.axhline(beats[name]["macro_f1"], linestyle=style, color="grey", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("epsilon (delta = 1e-5)")
        ax.set_ylabel("DS2 macro-F1")
        ax.set_title("Accuracy-privacy curve (beats)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "privacy_beats.png", dpi=120)
        plt.close(fig)
        files.append("privacy_beats.png")
    return files


def _markdown(report: dict[str, Any]) -> str:
    beats = report["tasks"]["beats"]
    lines = [
        f"# Federated benchmark ({report['date']}, commit {report['git_revision'][:12]})",
        "",
        f"Command: `{report['command']}`  ",
        f"Engine: {report['engine']} (SuperLink + one SuperNode per hospital, `flwr run`). "
        f"Beats: {report['config']['hospitals']} hospitals (MIT-BIH DS1 patients), "
        f"{report['config']['rounds']} rounds x {report['config']['local_epochs']} local epoch, "
        f"{100 * report['config']['keep_normal']:g} % of N beats carry a loss, DS2 test. "
        "Seconds are wall-clock on a shared, loaded 2-core machine (re-measure before quoting).",
        "",
        "| run | DS2 macro-F1 | accuracy | rounds | bytes | seconds | epsilon |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in beats.items():
        if "error" in e:
            lines.append(f"| {name} | failed: {e['error'][:80]} | | | | | |")
            continue
        eps = e.get("epsilon")
        lines.append(
            f"| {name} | {e['macro_f1']:.3f} | {e['accuracy']:.3f} | {e['rounds']} | "
            f"{e['bytes_total']:,} | {e['seconds']:.0f} | {'-' if eps is None else f'{eps:g}'} |"
        )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['value']} | {met} |")
    lines += ["", "Rhythm task: " + report["tasks"]["rhythm"].get("status", ""), ""]
    for f in report.get("plots", []):
        lines.append(f"![{f}]({f})")
    return "\n".join(lines) + "\n"


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

    The report (JSON, Markdown, plots) is rewritten after every scenario, so a run cut short
    keeps what it measured; ``resume`` skips the scenarios an earlier run of the same
    configuration already wrote into ``out/federated.json``.
    """
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from heartline.federated.deployment import FederatedRunConfig, run_federation
    from heartline.federated.export import evaluate_arrays, load_npz
    from heartline.federated.partition import partition_beats, save_manifest
    from heartline.federated.privacy import DP_DELTA, noise_for_epsilon
    from heartline.federated.tasks import load_test_data
    from heartline.training.rundir import git_revision, write_json

    cfg = config or (BenchConfig.quick_config() if quick else BenchConfig())
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_path = Path(data_dir) if data_dir is not None else None
    manifest_path = save_manifest(
        partition_beats(cfg.hospitals, seed=cfg.seed, data_dir=data_dir),
        out / "manifest_beats.json",
    )
    from heartline.federated.partition import load_manifest

    manifest = load_manifest(manifest_path)
    test = load_test_data(manifest, data_dir=data_dir)
    beats: dict[str, Any] = {}
    report: dict[str, Any] = {
        "engine": "flower-deployment",
        "date": dt.date.today().isoformat(),
        "git_revision": git_revision(),
        "command": "heartline " + " ".join(sys.argv[1:]) if sys.argv else "",
        "config": asdict(cfg),
        "tasks": {
            "beats": beats,
            "rhythm": {
                "status": "not run: heartline.training.rhythm (branch `rhythm`) is not merged; "
                "`heartline federated partition --task rhythm` writes its site manifests"
            },
        },
    }
    previous = out / "federated.json"
    if resume and previous.is_file():
        old = json.loads(previous.read_text(encoding="utf-8"))
        def budget(c: dict[str, Any]) -> dict[str, Any]:  # the order of scenarios may change
            return {k: v for k, v in c.items() if k != "scenarios"}

        if budget(old.get("config", {})) != budget(json.loads(json.dumps(asdict(cfg)))):
            raise ValueError(f"--resume: {previous} was written with another configuration")
        beats.update({k: v for k, v in old["tasks"]["beats"].items() if "error" not in v})
        report["resumed_from"] = {"git_revision": old.get("git_revision"), "runs": list(beats)}
    runs = [(n, o) for n, o in _scenarios(cfg) if n not in beats]

    def finish() -> Path:
        report["targets"] = _targets(beats)
        report["plots"] = _plot(beats, out)
        path = write_json(out / "federated.json", json.loads(json.dumps(report, default=str)))
        (out / "federated.md").write_text(_markdown(report), encoding="utf-8")
        return path

    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    ) as bar:
        task = bar.add_task("bench federated", total=len(runs) + 1, info="central")
        if "central" in cfg.scenarios and "central" not in beats:
            beats["central"] = _central(cfg, manifest, test, data_path)
            finish()
        bar.advance(task)
        for name, over in runs:
            bar.update(task, info=name)
            eps = over.pop("dp_epsilon", None)
            noise = noise_for_epsilon(eps, cfg.rounds) if eps is not None else 0.0
            rcfg = FederatedRunConfig(
                task="beats",
                manifest=manifest_path,
                num_rounds=cfg.rounds,
                local_epochs=cfg.local_epochs,
                keep_normal=cfg.keep_normal,
                seed=cfg.seed,
                dp_noise_multiplier=noise,
                dp_clip_norm=cfg.dp_clip,
                trimmed_beta=cfg.trimmed_beta,
                round_timeout_s=900.0,
                data_dir=data_path,
                **over,
            )
            extra: dict[str, Any] = {"strategy": rcfg.strategy}
            if eps is not None:
                extra.update(epsilon=eps, delta=DP_DELTA, noise_multiplier=noise, clip=cfg.dp_clip)
            try:
                res = run_federation(rcfg, out_dir=out / "runs" / name, nice=nice)
                if res["final_weights"] is None:
                    raise RuntimeError("no global model was written")
                t = evaluate_arrays("beats", load_npz(res["final_weights"]), test)
                if not math.isfinite(t["loss"] if t["loss"] is not None else math.nan):
                    extra["non_finite_model"] = True
                beats[name] = _fed_entry(res, t, **extra)
            except Exception as exc:  # one failed scenario must not lose the others
                logger.exception("scenario %s failed", name)
                beats[name] = {"error": f"{type(exc).__name__}: {exc}"[:500], **extra}
            finish()
            bar.advance(task)
    return finish()
