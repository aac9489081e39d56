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

Every timing is given as wall time and as the process's CPU time, beside the machine's load
average, the CPUs the process may run on and its nice value (:func:`timing_environment`), at the
start and the end of the run: on a shared machine the wall time measures the load, the CPU
time the code. ``timing_only=True`` (``heartline bench explain --timing-only``) skips the
attribution sanity checks, for a quick re-measurement on a quiet machine.

References
----------
Adebayo J et al. Sanity checks for saliency maps. NeurIPS (2018).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_RECORDS",
    "qrs_share",
    "run_explain_bench",
    "store_record_alert",
    "time_alert_explanation",
    "timing_environment",
]

#: MIT-BIH records with many V beats.
DEFAULT_RECORDS = ("119", "208", "233")
QRS_HALF_S = 0.08


def timing_environment() -> dict[str, Any]:
    """What a timing depends on: load average (1, 5, 15 min), CPUs allowed, nice, threads."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        allowed = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": load,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": allowed,
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


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


def store_record_alert(
    factory: Any,
    *,
    record: str = "119",
    data_dir: str | Path | None = None,
    lead_s: float = 35.0,
    n_frames: int = 40,
    n_v: int = 2,
    patient_id: str = "bench",
    device_id: str = "bench-dev",
    start_time: Any = None,
) -> tuple[int, list[int]]:
    """Store ``n_frames`` 1 s frames of a MIT-BIH record (``lead_s`` before its first V beat
    after ``lead_s``), its annotated beats with AAMI labels, and a ``frequent_pvc`` alert on the
    first ``n_v`` V beats, as the live system would; returns ``(alert_id, v_beat_ids)``."""
    from datetime import UTC, datetime, timedelta

    import wfdb

    from heartline.data.aami import aami_class
    from heartline.data.paths import record_path
    from heartline.ingestion.payloads import Frame
    from heartline.io import read_annotations
    from heartline.storage import repository as repo
    from heartline.storage.engine import session_scope
    from heartline.storage.tables import Patient

    t0 = start_time or datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
    path = str(record_path("mitdb", record, data_dir=data_dir))
    ann = read_annotations(path).beats()
    labels = np.asarray([aami_class(s) for s in ann.symbol])
    hdr = wfdb.rdheader(path)
    fs = int(hdr.fs)
    v_idx = ann.sample_idx[labels == "V"]
    later = v_idx[v_idx > lead_s * fs]
    if not later.size:
        raise ValueError(f"record {record} has no V beat after {lead_s} s")
    start = int(later[0]) - int(lead_s * fs)
    rec = wfdb.rdrecord(path, sampfrom=start, sampto=start + n_frames * fs, physical=False)
    with session_scope(factory) as s:
        if s.get(Patient, patient_id) is None:
            repo.register_patient(s, patient_id=patient_id, display_name=f"MIT-BIH {record}")
        repo.register_device(s, device_id=device_id, patient_id=patient_id, credential_hash="-")
        for seq in range(n_frames):
            repo.store_frame(s, frame=Frame.from_counts(
                rec.d_signal[seq * fs : (seq + 1) * fs].astype(np.int64), device_id=device_id,
                seq=seq, start_time_s=t0.timestamp() + seq, fs_hz=float(fs),
                lead_names=tuple(rec.sig_name), adc_bits=11,
                adc_gain=tuple(float(g) for g in rec.adc_gain),
                adc_baseline=tuple(int(b) for b in rec.baseline),
            ))  # fmt: skip
        rows = []
        for idx, lab in zip(ann.sample_idx, labels, strict=True):
            rel = int(idx) - start
            if 0 <= rel < n_frames * fs:
                rows.append(repo.BeatIn(
                    device_id=device_id, seq=rel // fs, sample_idx=rel % fs,
                    time=t0 + timedelta(seconds=rel / fs), label=str(lab),
                    probabilities={str(lab): 1.0}, confidence=1.0,
                ))  # fmt: skip
        repo.add_beats(s, patient_id=patient_id, beats=rows)
        stored = repo.beats_between(s, patient_id=patient_id, start=t0 + timedelta(seconds=lead_s - 0.1),
                                    stop=t0 + timedelta(seconds=n_frames - 2))  # fmt: skip
        v = [b for b in stored if b.label == "V"][:n_v]
        alert = repo.add_alert(
            s, patient_id=patient_id, device_id=device_id, type="frequent_pvc", severity="warning",
            start=v[0].time, evidence={"beats": [b.id for b in v],
                                       "trigger": {"times_s": [b.time.timestamp() for b in v]}},
        )  # fmt: skip
        return int(alert.id), [int(b.id) for b in v]


def time_alert_explanation(
    out_dir: str | Path,
    *,
    record: str = "119",
    data_dir: str | Path | None = None,
    n_repeats: int = 20,
) -> dict[str, Any]:
    """Time ``GET /api/v1/alerts/{id}/explanation``'s work for a stored V-beat alert, one thread.

    A SQLite database in ``out_dir`` holds 40 s of the record as 1 s frames, its beats and a
    ``frequent_pvc`` alert on two V beats (:func:`store_record_alert`); the time of
    :func:`heartline.service.routes.explain.build_explanation` (strip, beats, and the occlusion
    provider: ECG fetch, pipeline replay, occlusion on ONNX) is measured with the provider's ONNX
    session reused (the first, cold call reported apart), wall and process CPU time.
    """
    from heartline.service.attributions import OcclusionAttributionProvider
    from heartline.service.routes import explain as ex
    from heartline.storage.engine import make_engine, make_session_factory, session_scope
    from heartline.storage.migrations import upgrade_database
    from heartline.storage.tables import Alert

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "alert_explain.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    alert_id, v_ids = store_record_alert(factory, record=record, data_dir=data_dir)
    provider = OcclusionAttributionProvider()
    ex.register_attribution_provider(provider, key="occlusion")
    walls, cpus, provider_ms = [], [], []
    cold = None
    with session_scope(factory) as s:
        alert = s.get(Alert, alert_id)
        for i in range(n_repeats + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            e = ex.build_explanation(s, alert)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if e.attributions is None:
                raise RuntimeError(f"alert {alert_id}: the provider gave no attributions")
            if i == 0:
                cold = (wall, cpu)
                continue
            walls.append(wall)
            cpus.append(cpu)
            beats = [b for b in e.beats if b.id in set(e.highlighted_beat_ids)]
            t1 = time.perf_counter()
            provider(s, alert, e.ecg, [s.get(ex.Beat, b.id) for b in beats])
            provider_ms.append(1000 * (time.perf_counter() - t1))
    engine.dispose()
    db.unlink(missing_ok=True)
    assert cold is not None
    return {
        "record": record,
        "alert_beats": len(v_ids),
        "repeats": n_repeats,
        "explanation_ms_median": 1000 * float(np.median(walls)),
        "explanation_ms_p95": 1000 * float(np.percentile(walls, 95)),
        "explanation_cpu_ms_median": 1000 * float(np.median(cpus)),
        "explanation_cpu_ms_p95": 1000 * float(np.percentile(cpus, 95)),
        # CPU time / wall time over the repeats: 1 on an idle core; far below 1 when the
        # process waited for a CPU (the wall time then measures the machine's load)
        "cpu_share": float(np.sum(cpus) / max(np.sum(walls), 1e-12)),
        "provider_ms_median": float(np.median(provider_ms)),
        "explanation_cold_ms": 1000 * cold[0],
        "explanation_cold_cpu_ms": 1000 * cold[1],
        "target_ms": 300.0,
    }


def run_explain_bench(
    out_dir: str | Path,
    *,
    records: tuple[str, ...] = DEFAULT_RECORDS,
    n_beats: int = 30,
    n_repeats: int = 50,
    data_dir: str | None = None,
    model_dir: str | Path | None = None,
    ig_steps: int = 32,
    timing_only: bool = False,
) -> dict[str, Any]:
    """Run the checks, write ``explain.json``, ``explain.md`` and ``explain.png`` into ``out_dir``.

    ``timing_only``: only the timings (no Integrated Gradients / QRS / randomisation checks, no
    plot).
    """
    import torch
    from scipy.stats import spearmanr

    from heartline.data.beat_dataset import build_beat_set
    from heartline.edge.occlusion import explain_beats, onnx_session
    from heartline.explain.attribution import (
        explain_beat_model,
        load_shipped_beat_model,
        randomized_copy,
    )

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
    res: dict[str, Any] = {
        "records": list(records),
        "model": str(onnx_path.name),
        "beats": {},
        "environment_start": timing_environment(),
    }
    # timing: one alert = its triggering beat (and a 3-beat run), one thread
    sess = onnx_session(onnx_path)
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
        timing[f"{n}_beat_cpu_share"] = float(np.sum(cpu) / max(np.sum(ts), 1e-12))
    ts = []
    for i in range(5):
        t0 = time.perf_counter()
        j = i % len(v)
        explain_beats(onnx_path, wv[j : j + 1], rv[j : j + 1])
        ts.append(time.perf_counter() - t0)
    timing["1_beat_cold_ms_median"] = 1000 * float(np.median(ts))
    res["timing"] = timing
    res["alert"] = time_alert_explanation(
        out, record=records[0], data_dir=data_dir, n_repeats=max(3, n_repeats // 2)
    )
    res["environment_end"] = timing_environment()
    if timing_only:
        (out / "explain.json").write_text(json.dumps(res, indent=2))
        (out / "explain.md").write_text(_markdown(res))
        return res
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


def _fmt_env(e: dict[str, Any] | None) -> str:
    if not e:
        return "unknown"
    load = e.get("load_average")
    return (
        f"load average {' '.join(f'{v:.2f}' for v in load) if load else 'unknown'} "
        f"({e.get('cpu_count')} CPUs, {e.get('cpus_allowed')} allowed, nice {e.get('nice')}, "
        f"OMP_NUM_THREADS={e.get('omp_num_threads')}, {e.get('utc')})"
    )


def _markdown(r: dict[str, Any]) -> str:
    t = r["timing"]
    lines = [
        f"# Explanation checks ({r['model']}, MIT-BIH records {', '.join(r['records'])})",
        "",
        f"Live explanation (occlusion on ONNX Runtime, 1 thread, the model loaded once and reused): one beat "
        f"{t['1_beat_ms_median']:.1f} ms median (p95 {t['1_beat_ms_p95']:.1f}), a 3-beat run "
        f"{t['3_beat_ms_median']:.1f} ms; with the model loaded anew {t['1_beat_cold_ms_median']:.1f} ms. "
        f"CPU time of the process (less sensitive to other load): one beat {t['1_beat_cpu_ms_median']:.1f} ms, "
        f"3 beats {t['3_beat_cpu_ms_median']:.1f} ms. Target <= 300 ms. Wall times on a shared machine are "
        "inflated by other load.",
        "",
        f"One alert's explanation (`GET /api/v1/alerts/{{id}}/explanation`: strip, beats, and the "
        f"occlusion provider's ECG fetch, pipeline replay and occlusion of its {r['alert']['alert_beats']} "
        f"V beats, MIT-BIH {r['alert']['record']} in SQLite, 1 thread): "
        f"{r['alert']['explanation_ms_median']:.0f} ms wall median (p95 "
        f"{r['alert']['explanation_ms_p95']:.0f}), {r['alert']['explanation_cpu_ms_median']:.0f} ms CPU; "
        f"the provider alone {r['alert']['provider_ms_median']:.0f} ms; first (cold) call "
        f"{r['alert']['explanation_cold_ms']:.0f} ms. Target <= 300 ms.",
        "",
        f"CPU share (CPU time / wall time; 1 on an idle core): one beat {t.get('1_beat_cpu_share', float('nan')):.2f}, "
        f"alert {r['alert'].get('cpu_share', float('nan')):.2f}. Start: {_fmt_env(r.get('environment_start'))}; "
        f"end: {_fmt_env(r.get('environment_end'))}.",
        "",
    ]
    if "qrs_region_share_of_window" not in r:
        lines += ["Timing only (`--timing-only`): no attribution checks.", ""]
        return "\n".join(lines)
    lines += [
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
