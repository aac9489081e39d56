"""Time and check the torch-free explanation of the multimodal diagnosis on PTB-XL records.

:func:`run_diagnosis_explain_bench` runs :func:`heartline.edge.multimodal_explain.
explain_diagnosis` with the shipped model (one ONNX Runtime thread) on PTB-XL records (default:
the first records of fold 10, the shipped model's test fold, which it never saw), with their
patient data from ``ptbxl_database.csv``, and reports per record

* the **time** of one explanation: wall and CPU time (after one warm-up call), with the load
  average, allowed CPUs and nice value at start and end (:func:`heartline.explain.report.
  timing_environment`);
* a **deletion check** (the sanity check of Adebayo et al. 2018's companion literature: Samek et
  al. 2017): the probability of the explained class (the first positive class, else the top one)
  after occluding the 5 top-attributed, non-overlapping segments, against the median over 20 draws
  of 5 random segments of the same size (same baseline, the lead median).

Writes ``explain_diagnosis.json``, ``explain_diagnosis.md`` and one PNG per record
(``explain_<ecg_id>.png``, :func:`heartline.edge.multimodal_explain.plot_explanation`).

References
----------
Samek W, Binder A, Montavon G, Lapuschkin S, Müller K-R. Evaluating the visualization of what a
deep neural network has learned. IEEE TNNLS 28(11):2660-2673 (2017).
Adebayo J et al. Sanity checks for saliency maps. NeurIPS (2018).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["deletion_check", "run_diagnosis_explain_bench"]


def deletion_check(
    model: Any,
    explanation: Any,
    metadata: Any,
    *,
    cls: str,
    k: int = 5,
    n_random: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Probability of ``cls`` after occluding the ``k`` top-attributed non-overlapping segments
    and after ``n_random`` draws of ``k`` random segments (full pipeline,
    :meth:`~heartline.edge.multimodal.MultimodalModel.predict_batch`)."""
    from heartline.edge.multimodal import patient_metadata

    ex = explanation
    drops = ex.patch_drops[ex.classes.index(cls)]
    starts = np.asarray(ex.patch_starts_idx)
    top: list[tuple[int, int]] = []
    for flat in np.argsort(-drops, axis=None, kind="stable"):
        lead, j = np.unravel_index(int(flat), drops.shape)
        s = int(starts[j])
        if all(lead != q or abs(s - t) >= ex.patch_len for q, t in top):
            top.append((int(lead), s))
        if len(top) == k:
            break
    rng = np.random.default_rng(seed)
    draws = [
        [(int(f // drops.shape[1]), int(starts[f % drops.shape[1]])) for f in picks]
        for picks in (rng.choice(drops.size, size=k, replace=False) for _ in range(n_random))
    ]
    batch = []
    for segs in [top, *draws]:
        c = ex.signals.copy()
        for lead, s in segs:
            c[lead, s : s + ex.patch_len] = ex.lead_baseline_mv[lead]
        batch.append(c)
    m = patient_metadata(metadata)
    n = len(batch)
    p, _ = model.predict_batch(
        np.stack(batch),
        np.repeat(m.values[None], n, axis=0),
        np.repeat(m.present[None], n, axis=0),
        np.full(n, m.age_over_89),
    )
    col = p[:, list(model.classes).index(cls)]
    return {
        "p": float(ex.probabilities[cls]),
        "p_top_deleted": float(col[0]),
        "p_random_deleted_median": float(np.median(col[1:])),
        "top_below_random": bool(col[0] < np.median(col[1:])),
    }


def run_diagnosis_explain_bench(
    out: str | os.PathLike[str],
    *,
    ecg_ids: Sequence[int] | None = None,
    n_records: int = 10,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the timing and deletion check (see the module docstring); returns the report dict.

    ``data_dir`` holds ``ptbxl/`` (:func:`heartline.data.paths.resolve_data_dir`); ``ecg_ids``
    picks records, else the first ``n_records`` of fold 10."""
    import pandas as pd

    import heartline
    from heartline.data.paths import resolve_data_dir
    from heartline.data.ptbxl import ptbxl_record_metadata
    from heartline.edge.multimodal import MultimodalModel
    from heartline.edge.multimodal_explain import explain_diagnosis, plot_explanation
    from heartline.explain.report import timing_environment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = resolve_data_dir(data_dir) / "ptbxl"
    table_path = root / "ptbxl_database.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path} not found (PTB-XL: heartline data fetch ptb-xl)")
    table = pd.read_csv(table_path)
    if ecg_ids:
        rows = table[table["ecg_id"].isin(list(ecg_ids))]
        missing = sorted(set(ecg_ids) - set(rows["ecg_id"]))
        if missing:
            raise ValueError(f"ecg_id(s) {missing} are not in {table_path}")
    else:
        rows = table[table["strat_fold"] == 10].head(n_records)
    env_start = timing_environment()
    model = MultimodalModel(num_threads=1)
    results = []
    for _, r in rows.iterrows():
        path = root / str(r["filename_lr"])
        rec = heartline.read_record(path)
        found = ptbxl_record_metadata(path) or {}
        meta = {
            k: found.get(k) for k in ("age", "sex", "height", "weight") if found.get(k) is not None
        }
        kw: dict[str, Any] = {
            "fs": rec.fs,
            "lead_names": rec.lead_names,
            "metadata": meta,
            "model": model,
        }
        explain_diagnosis(rec.signal, **kw)  # warm-up (caches, allocations)
        w0, c0 = time.perf_counter(), time.process_time()
        ex = explain_diagnosis(rec.signal, **kw)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        cls = ex.default_classes()[0]
        check = deletion_check(model, ex, meta, cls=cls, seed=seed)
        png = out / f"explain_{int(r['ecg_id'])}.png"
        plot_explanation(ex, png, cls=cls, record_id=rec.name)
        results.append(
            {
                "ecg_id": int(r["ecg_id"]),
                "scp_codes": str(r["scp_codes"]),
                "positive": ex.positive(),
                "explained": cls,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "top_leads": [(lead, round(d, 3)) for lead, d in ex.top_leads(cls, 3)],
                "top_segments": ex.top_segments(cls, 3),
                "metadata": ex.metadata_attributions[cls],
                "modality_weights": ex.modality_weights,
                **check,
                "png": png.name,
            }
        )
    walls = [x["wall_s"] for x in results]
    cpus = [x["cpu_s"] for x in results]
    report = {
        "model_version": model.version,
        "n_records": len(results),
        "patch_s": 0.5,
        "stride_s": 0.25,
        "wall_s_median": float(np.median(walls)),
        "wall_s_max": float(np.max(walls)),
        "cpu_s_median": float(np.median(cpus)),
        "cpu_s_max": float(np.max(cpus)),
        "top_below_random": int(sum(x["top_below_random"] for x in results)),
        "env_start": env_start,
        "env_end": timing_environment(),
        "records": results,
    }
    (out / "explain_diagnosis.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "explain_diagnosis.md").write_text(_markdown(report))
    return report


def _markdown(r: dict[str, Any]) -> str:
    def env(e: dict[str, Any]) -> str:
        return (
            f"load average {e.get('load_average')}, {e.get('cpus_allowed')} CPUs allowed, "
            f"nice {e.get('nice')}, OMP_NUM_THREADS={e.get('omp_num_threads')}"
        )

    lines = [
        f"# Explanation of the multimodal diagnosis (model {r['model_version']})",
        "",
        f"{r['n_records']} PTB-XL records, occlusion patch {r['patch_s']} s every "
        f"{r['stride_s']} s, one ONNX Runtime thread. Time per explanation: wall median "
        f"{r['wall_s_median']:.2f} s (max {r['wall_s_max']:.2f}), CPU median "
        f"{r['cpu_s_median']:.2f} s (max {r['cpu_s_max']:.2f}).",
        f"Start: {env(r['env_start'])}; end: {env(r['env_end'])}.",
        "",
        f"Deletion check: occluding the 5 top segments lowered the explained class below the "
        f"median of 20 random 5-segment occlusions in {r['top_below_random']} of "
        f"{r['n_records']} records.",
        "",
        "| ecg_id | SCP codes | positive | explained | p | p, top 5 deleted | p, 5 random deleted "
        "(median) | top leads (whole-lead drop) | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["records"]:
        leads = ", ".join(f"{lead} {d:+.2f}" for lead, d in x["top_leads"])
        lines.append(
            f"| {x['ecg_id']} | {x['scp_codes']} | {', '.join(x['positive']) or '-'} | "
            f"{x['explained']} | {x['p']:.3f} | {x['p_top_deleted']:.3f} | "
            f"{x['p_random_deleted_median']:.3f} | {leads} | {x['wall_s']:.2f} | "
            f"{x['cpu_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"
