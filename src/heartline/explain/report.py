"""``heartline bench explain``: speed of the live (ONNX occlusion) explanation and sanity checks.

On real MIT-BIH V and N beats (:func:`heartline.data.beat_dataset.build_beat_set`, the shipped
beat model's data settings) it measures

* the time to explain one alert with :func:`heartline.edge.occlusion.explain_beats` on the
  shipped ONNX model, one thread (the live side reuses one session; the cold time with the
  session creation is reported too);
* the share of the absolute attribution inside the QRS region (R-peak +-80 ms) for V beats, by
  occlusion and by Integrated Gradients, against the share of the window that region covers;
* the model-randomisation check of Adebayo et al. (2018): the Spearman correlation between the
  trained and the weight-randomised model's IG maps (1 would mean the map explains the input,
  not the model).

References
----------
Adebayo J et al. Sanity checks for saliency maps. NeurIPS (2018).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_RECORDS", "qrs_share", "run_explain_bench"]

#: MIT-BIH records with many V beats.
DEFAULT_RECORDS = ("119", "208", "233")
QRS_HALF_S = 0.08


def qrs_share(
    attr: np.ndarray, *, pre_s: float, window_s: float, half_s: float = QRS_HALF_S
) -> np.ndarray:
    """Share of ``|attr|`` (``(B, leads, L)``) within R +- ``half_s`` per beat, and that region's
    share of the window as the second value of a tuple."""
    length = attr.shape[-1]
    r = round(pre_s / window_s * length)
    h = round(half_s / window_s * length)
    a = np.abs(attr).sum(axis=1)
    return a[:, max(0, r - h) : r + h].sum(axis=1) / np.maximum(a.sum(axis=1), 1e-12)


def run_explain_bench(
    out_dir: str | Path,
    *,
    records: tuple[str, ...] = DEFAULT_RECORDS,
    n_beats: int = 30,
    n_repeats: int = 50,
    data_dir: str | None = None,
    model_dir: str | Path | None = None,
    ig_steps: int = 32,
) -> dict[str, Any]:
    """Run the checks, write ``explain.json``, ``explain.md`` and ``explain.png`` into ``out_dir``."""
    import torch
    from scipy.stats import spearmanr

    from heartline.data.beat_dataset import build_beat_set
    from heartline.explain.attribution import (
        explain_beat_model,
        load_shipped_beat_model,
        randomized_copy,
    )
    from heartline.edge.occlusion import _session, explain_beats

    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mdir = Path(model_dir) if model_dir else Path(__file__).parents[1] / "assets" / "models"
    onnx_path = mdir / "hybrid.onnx"
    meta = json.loads((mdir / "hybrid.json").read_text())
    net = load_shipped_beat_model(mdir)
    k = int(meta["params"].get("context_k", 0))
    bs = build_beat_set(
        list(records), data_dir=data_dir, leads=(0, 1), window_len=int(meta["window_len"]),
        rpeaks="annotated", template_features=bool(meta["params"].get("template_features")), progress=False,
    )  # fmt: skip
    ctx = bs.context_index(k)
    rng = np.random.default_rng(0)
    sel = {}
    for cls in ("N", "V"):
        idx = np.flatnonzero(bs.labels == bs.classes.index(cls))
        sel[cls] = np.sort(rng.choice(idx, size=min(n_beats, len(idx)), replace=False))
    window_s = bs.pre_s + bs.post_s
    res: dict[str, Any] = {"records": list(records), "model": str(onnx_path.name), "beats": {}}
    # timing: one alert = its triggering beat (and a 3-beat run), one thread
    sess = _session(onnx_path)
    v = sel["V"]
    wv, rv = bs.windows[ctx[v]], bs.rr[ctx[v]]
    timing = {}
    for n in (1, 3):
        ts, cpu = [], []
        for i in range(n_repeats):
            j = i % max(1, len(v) - n)
            t0, c0 = time.perf_counter(), time.process_time()
            explain_beats(onnx_path, wv[j : j + n], rv[j : j + n], session=sess)
            ts.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        timing[f"{n}_beat_ms_median"] = 1000 * float(np.median(ts))
        timing[f"{n}_beat_ms_p95"] = 1000 * float(np.percentile(ts, 95))
        timing[f"{n}_beat_cpu_ms_median"] = 1000 * float(np.median(cpu))
    ts = []
    for i in range(5):
        t0 = time.perf_counter()
        j = i % len(v)
        explain_beats(onnx_path, wv[j : j + 1], rv[j : j + 1])
        ts.append(time.perf_counter() - t0)
    timing["1_beat_cold_ms_median"] = 1000 * float(np.median(ts))
    res["timing"] = timing
    region = 2 * round(QRS_HALF_S / window_s * bs.windows.shape[-1]) / bs.windows.shape[-1]
    res["qrs_region_share_of_window"] = region
    examples = {}
    for cls, idx in sel.items():
        w, r = bs.windows[ctx[idx]], bs.rr[ctx[idx]]
        occ = explain_beats(onnx_path, w, r, session=sess)
        ig = explain_beat_model(net, w, r, n_steps=ig_steps)
        ig_cur = ig.inputs[0][:, -1]
        rnd = explain_beat_model(
            randomized_copy(net, seed=1), w, r, target=ig.target, n_steps=ig_steps
        )
        rnd_cur = rnd.inputs[0][:, -1]
        rho = [
            float(spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0])
            for a, b in zip(ig_cur, rnd_cur, strict=True)
        ]
        res["beats"][cls] = {
            "n": len(idx),
            "predicted_as": {c: int((occ.target == i).sum()) for i, c in enumerate(bs.classes)},
            "occlusion_qrs_share_mean": float(
                qrs_share(occ.attributions, pre_s=bs.pre_s, window_s=window_s).mean()
            ),
            "ig_qrs_share_mean": float(qrs_share(ig_cur, pre_s=bs.pre_s, window_s=window_s).mean()),
            "ig_random_qrs_share_mean": float(
                qrs_share(rnd_cur, pre_s=bs.pre_s, window_s=window_s).mean()
            ),
            "ig_trained_vs_random_spearman_mean": float(np.mean(rho)),
            "ig_completeness_error_max": float(np.abs(ig.convergence_delta).max()),
        }
        examples[cls] = (w[0, -1], occ.attributions[0], ig_cur[0])
    (out / "explain.json").write_text(json.dumps(res, indent=2))
    _plot(
        out / "explain.png", examples, pre_s=bs.pre_s, window_s=window_s, lead_names=bs.lead_names
    )
    (out / "explain.md").write_text(_markdown(res))
    return res


def _plot(path: Path, examples: dict[str, tuple[np.ndarray, ...]], *, pre_s: float, window_s: float,
          lead_names: tuple[str, ...]) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(examples), 2, figsize=(10, 3 * len(examples)), squeeze=False)
    for row, (cls, (w, occ, ig)) in enumerate(examples.items()):
        t_ms = (np.arange(w.shape[-1]) / w.shape[-1] * window_s - pre_s) * 1000
        for col, (name, a) in enumerate((("occlusion (ONNX)", occ), ("integrated gradients", ig))):
            ax = axes[row, col]
            for lead in range(w.shape[0]):
                ax.plot(
                    t_ms,
                    w[lead],
                    lw=1,
                    label=lead_names[lead] if lead < len(lead_names) else str(lead),
                )
                ax.fill_between(t_ms, w[lead].min(), w[lead].max(), where=np.abs(a[lead]) > 0.5 * np.abs(a).max(),
                                alpha=0.15, color=f"C{lead}")  # fmt: skip
            ax2 = ax.twinx()
            ax2.plot(t_ms, np.abs(a).sum(axis=0), "k", lw=0.8)
            ax.axvspan(-QRS_HALF_S * 1000, QRS_HALF_S * 1000, color="grey", alpha=0.1)
            ax.set_title(f"{cls} beat: {name}")
            ax.set_xlabel("ms from R peak")
        axes[row, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(r: dict[str, Any]) -> str:
    t = r["timing"]
    lines = [
        f"# Explanation checks ({r['model']}, MIT-BIH records {', '.join(r['records'])})",
        "",
        f"Live explanation (occlusion on ONNX Runtime, 1 thread, session reused): one beat "
        f"{t['1_beat_ms_median']:.1f} ms median (p95 {t['1_beat_ms_p95']:.1f}), a 3-beat run "
        f"{t['3_beat_ms_median']:.1f} ms; with a new session {t['1_beat_cold_ms_median']:.1f} ms. "
        f"CPU time of the process (less sensitive to other load): one beat {t['1_beat_cpu_ms_median']:.1f} ms, "
        f"3 beats {t['3_beat_cpu_ms_median']:.1f} ms. Target <= 300 ms. Wall times on a shared machine are "
        "inflated by other load.",
        "",
        f"QRS region (R +- {QRS_HALF_S * 1000:.0f} ms) = {r['qrs_region_share_of_window']:.2f} of the window.",
        "",
        "| beats | n | predicted | occlusion QRS share | IG QRS share | IG QRS share (random weights) | "
        "Spearman IG trained vs random | IG completeness error (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cls, b in r["beats"].items():
        pred = ", ".join(f"{c}={n}" for c, n in b["predicted_as"].items() if n)
        lines.append(
            f"| {cls} | {b['n']} | {pred} | {b['occlusion_qrs_share_mean']:.2f} | {b['ig_qrs_share_mean']:.2f} | "
            f"{b['ig_random_qrs_share_mean']:.2f} | {b['ig_trained_vs_random_spearman_mean']:.2f} | "
            f"{b['ig_completeness_error_max']:.4f} |"
        )
    lines += ["", "Plot: `explain.png`.", ""]
    return "\n".join(lines)
