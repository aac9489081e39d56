"""Train (and measure) the beat artefact model of :mod:`heartline.signal.artefact`.

Training data, MIT-BIH DS1 only (de Chazal's inter-patient split, ``heartline.data.splits.DS1``;
DS2 and the CinC records are never read):

* every DS1 record's MLII lead (the first ``--minutes``), with bursts of real noise of the
  MIT-BIH Noise Stress Test Database [Moody et al. 1984] added: electrode motion (``em``) or
  muscle artefact (``ma``), a random stretch of either channel, one burst on average every
  ``--every-s`` seconds, each lasting 0.3-4 s (uniform; the motion bursts of the handheld CinC
  recordings, docs/results/alarms.md) at an SNR drawn uniformly from ``--snr-db`` (nstdb's
  definition: signal power = (median QRS peak-to-peak)^2 / 8, noise power = the burst's mean
  square), tapered (Tukey) at both ends. Seeded (``--seed``).
* The shipped single-lead beat pipeline (R-peak detector, cleaning, ``hybrid_mlii``) runs on
  the noisy record in 1 s chunks, as the stream processor feeds it. **Positives**: detector
  firings inside a burst with no annotated beat within 150 ms. **Negatives**: firings within
  150 ms of an annotated beat (every beat, ventricular ones included, inside bursts or not).
  Other firings (detector errors on clean signal) are left out.

Measured by leave-records-out cross-validation (5 folds grouped by record): the fraction of
artefact firings the beat model labels ``V`` that are flagged, and of true ventricular beats
(annotated ``V``/``E``) labelled ``V`` that are kept. Candidates: ``logistic`` (the six features
of :mod:`heartline.signal.artefact`), and ``rule`` (a single threshold on the beat's amplitude
relative to the running median, ``log_amp``). The threshold of each is the lowest out-of-fold
probability (or ``log_amp``) that keeps ``--keep-v`` of the true V beats labelled V. With
``--ship PATH`` the logistic model is refitted on all DS1 data and written there.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/alarms_artefact/train.py \
        --data-dir /work/shared/data --out /tmp/artefact-train \
        --ship src/heartline/assets/models/beat_artefact.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import wfdb

from heartline.data.splits import DS1
from heartline.edge.model_select import beat_model_specs
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches
from heartline.signal.artefact import (
    ARTEFACT_FEATURE_NAMES,
    ARTEFACT_MODEL_PATH,
    BeatArtefactModel,
)

BEAT_SYMBOLS = set("NLRejAaJSVEFQ/f")
V_SYMBOLS = {"V", "E"}
#: Single-feature rules measured beside the logistic model.
RULE_FEATURES = ("log_amp", "log_slope", "sharpness")
_PROBE = BeatArtefactModel(
    mean=(0.0,) * len(ARTEFACT_FEATURE_NAMES),
    scale=(1.0,) * len(ARTEFACT_FEATURE_NAMES),
    coef=(0.0,) * len(ARTEFACT_FEATURE_NAMES),
    intercept=0.0,
    threshold=0.5,
)


def _noise(root: Path) -> dict[str, np.ndarray]:
    return {n: wfdb.rdrecord(str(root / "nstdb" / n)).p_signal for n in ("em", "ma")}


def add_bursts(x, ann_idx, noise, *, fs, rng, every_s, snr_db):
    """``x`` with noise bursts added; returns the noisy signal and the burst spans."""
    y = x.copy()
    # signal power from the QRS peak-to-peak amplitudes (nstdb's definition)
    h = round(0.1 * fs)
    pp = [np.ptp(x[max(0, i - h) : i + h]) for i in ann_idx[:: max(1, len(ann_idx) // 300)]]
    s_pow = float(np.median(pp)) ** 2 / 8
    spans = []
    t = rng.uniform(2, every_s)
    n = x.shape[0]
    while True:
        a = round(t * fs)
        dur = rng.uniform(0.3, 4.0)
        b = min(n, a + round(dur * fs))
        if a >= n - round(0.3 * fs):
            break
        kind = rng.choice(sorted(noise))
        src = noise[kind][:, rng.integers(0, 2)]
        o = rng.integers(0, src.size - (b - a))
        seg = src[o : o + (b - a)].copy()
        seg -= seg.mean()
        m = b - a
        taper = np.ones(m)
        k = max(1, round(0.1 * m))
        ramp = 0.5 * (1 - np.cos(np.linspace(0, np.pi, k)))
        taper[:k], taper[-k:] = ramp, ramp[::-1]
        snr = rng.uniform(*snr_db)
        n_pow = float(np.mean(seg**2)) or 1e-12
        seg *= np.sqrt(s_pow / (10 ** (snr / 10)) / n_pow)
        y[a:b] += seg * taper
        spans.append((a, b, kind, snr))
        t += dur + rng.exponential(every_s)
    return y, spans


def run_record(rec: str, root: Path, model, noise, *, minutes, rng, every_s, snr_db):
    r = wfdb.rdrecord(str(root / "mitdb" / rec))
    fs = float(r.fs)
    lead = r.sig_name.index("MLII")
    n = min(r.p_signal.shape[0], round(minutes * 60 * fs))
    x = r.p_signal[:n, lead]
    ann = wfdb.rdann(str(root / "mitdb" / rec), "atr")
    keep = np.isin(ann.symbol, list(BEAT_SYMBOLS)) & (ann.sample < n)
    a_idx = ann.sample[keep]
    a_sym = np.asarray(ann.symbol)[keep]
    y, spans = add_bursts(x, a_idx, noise, fs=fs, rng=rng, every_s=every_s, snr_db=snr_db)
    pipe = BeatPipeline(fs=fs, lead_names=("MLII",), model=model, artefact_model=_PROBE)
    rows = []
    step = round(fs)

    def take(bb) -> None:
        if not len(bb):
            return
        pr = classify_batches(model, [bb])[0]
        for beat, f in zip(pipe.complete(bb, pr), bb.artefact_features, strict=True):
            rows.append((beat.sample_idx, beat.label, f))

    for i in range(0, n, step):
        take(pipe.prepare(y[i : i + step, None]))
    take(pipe.flush_prepare())
    tol = round(0.15 * fs)
    starts = np.array([s[0] for s in spans]) if spans else np.zeros(0, int)
    ends = np.array([s[1] for s in spans]) if spans else np.zeros(0, int)
    out = []
    for idx, label, f in rows:
        j = np.searchsorted(a_idx, idx)
        near = [k for k in (j - 1, j) if 0 <= k < a_idx.size and abs(a_idx[k] - idx) <= tol]
        in_burst = bool(
            np.any((starts - round(0.05 * fs) <= idx) & (idx < ends + round(0.05 * fs)))
        )
        if near:
            k = min(near, key=lambda k: abs(a_idx[k] - idx))
            out.append((rec, 0, label, str(a_sym[k]), in_burst, f))
        elif in_burst:
            out.append((rec, 1, label, "", True, f))
    return out, len(spans)


def _fit_logistic(x, y, w):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=1.0, max_iter=5000).fit(sc.transform(x), y, sample_weight=w)
    return sc, lr


def _rule(feature: str, t: float, info: dict) -> BeatArtefactModel:
    """``feature >= t`` as a :class:`BeatArtefactModel` (p = sigmoid(feature - t), 0.5)."""
    i = ARTEFACT_FEATURE_NAMES.index(feature)
    k = len(ARTEFACT_FEATURE_NAMES)
    return BeatArtefactModel(
        mean=tuple(t if j == i else 0.0 for j in range(k)),
        scale=(1.0,) * k,
        coef=tuple(1.0 if j == i else 0.0 for j in range(k)),
        intercept=0.0,
        threshold=0.5,
        info=info,
    )


def threshold_keeping(score, is_true_v, keep):
    """Lowest threshold t with P(score < t | true V labelled V) >= keep (ties: above)."""
    s = np.sort(score[is_true_v])
    if s.size == 0:
        return float(np.inf)
    k = int(np.ceil(keep * s.size)) - 1
    return float(np.nextafter(s[k], np.inf))


def _cv_info(report: dict, name: str) -> dict:
    c = report["candidates"][name]
    return {k: v for k, v in c.items() if k != "true_v_by_record_n_flagged"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every-s", type=float, default=20.0)
    ap.add_argument("--snr-db", type=float, nargs=2, default=(-12.0, 6.0))
    ap.add_argument("--keep-v", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--v-weight", type=float, default=20.0)
    ap.add_argument("--ship", choices=["logistic", *(f"rule_{f}" for f in RULE_FEATURES)])
    ap.add_argument("--ship-to", type=Path, default=ARTEFACT_MODEL_PATH)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    spec = min((s for s in beat_model_specs() if s.installed), key=lambda s: s.n_leads)
    model = OnnxBeatClassifier(spec.onnx_path)
    noise = _noise(args.data_dir)
    rng = np.random.default_rng(args.seed)
    rows = []
    n_bursts = 0
    for rec in DS1:
        out, nb = run_record(
            rec,
            args.data_dir,
            model,
            noise,
            minutes=args.minutes,
            rng=rng,
            every_s=args.every_s,
            snr_db=tuple(args.snr_db),
        )
        rows += out
        n_bursts += nb
        print(rec, len(out), sum(r[1] for r in out), flush=True)
    recs = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    lab = np.array([r[2] for r in rows])
    sym = np.array([r[3] for r in rows])
    inb = np.array([r[4] for r in rows])
    x = np.stack([r[5] for r in rows])
    np.savez_compressed(
        args.out / "features.npz", rec=recs, y=y, label=lab, symbol=sym, in_burst=inb, x=x
    )
    # only beats the beat model labels V matter (the artefact verdict relabels V beats only)
    v = lab == "V"
    true_v = v & (y == 0) & np.isin(sym, list(V_SYMBOLS))
    # 5 folds grouped by record (fixed assignment: DS1 order, every 5th record)
    fold_of = {r: i % 5 for i, r in enumerate(DS1)}
    fold = np.array([fold_of[r] for r in recs])
    w = np.where(true_v, args.v_weight, 1.0)
    oof = np.full(len(y), np.nan)
    for k in range(5):
        tr, te = v & (fold != k), v & (fold == k)
        sc, lr = _fit_logistic(x[tr], y[tr], w[tr])
        oof[te] = lr.predict_proba(sc.transform(x[te]))[:, 1]
    cands = {"logistic": oof}
    for f in RULE_FEATURES:
        cands[f"rule_{f}"] = x[:, ARTEFACT_FEATURE_NAMES.index(f)]
    report = {
        "command": "benchmarks/alarms_artefact/train.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
            for k, v in vars(args).items()
            if v is not None
        ),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "records": list(DS1),
        "minutes": args.minutes,
        "bursts": n_bursts,
        "firings": len(y),
        "positives": int(y.sum()),
        "labelled_v": int(v.sum()),
        "positives_labelled_v": int((v & (y == 1)).sum()),
        "true_v_labelled_v": int(true_v.sum()),
        "other_real_labelled_v": int((v & (y == 0) & ~true_v).sum()),
        "candidates": {},
    }
    pos_v = v & (y == 1)
    other = v & (y == 0) & ~true_v
    for name, score in cands.items():
        # one threshold on the pooled out-of-fold scores (the rules need no fitting)
        t = threshold_keeping(score, true_v, args.keep_v)
        flag = v & (score >= t)
        per_rec_v = {}
        for r in DS1:
            m = true_v & (recs == r)
            if m.sum():
                per_rec_v[r] = [int(m.sum()), int((flag & m).sum())]
        report["candidates"][name] = {
            "threshold": t,
            "artefact_labelled_v_flagged": float(flag[pos_v].mean()),
            "true_v_labelled_v_kept": float(1 - flag[true_v].mean()),
            "other_real_labelled_v_flagged": float(flag[other].mean()),
            "true_v_by_record_n_flagged": per_rec_v,
        }
    info = {
        k: report[k]
        for k in (
            "command",
            "git",
            "minutes",
            "bursts",
            "positives_labelled_v",
            "true_v_labelled_v",
        )
    }
    sc, lr = _fit_logistic(x[v], y[v], w[v])
    t = report["candidates"]["logistic"]["threshold"]
    models = {
        "logistic": BeatArtefactModel(
            mean=tuple(float(a) for a in sc.mean_),
            scale=tuple(float(a) for a in sc.scale_),
            coef=tuple(float(a) for a in lr.coef_[0]),
            intercept=float(lr.intercept_[0]),
            threshold=float(min(max(t, 1e-6), 1 - 1e-6)),
            info=info | {"cv": _cv_info(report, "logistic")},
        )
    }
    for f in RULE_FEATURES:
        name = f"rule_{f}"
        models[name] = _rule(
            f, report["candidates"][name]["threshold"], info | {"cv": _cv_info(report, name)}
        )
    for name, m in models.items():
        (args.out / f"{name}.json").write_text(json.dumps(m.to_dict(), indent=1) + "\n")
    if args.ship is not None:
        (args.ship_to).write_text(json.dumps(models[args.ship].to_dict(), indent=1) + "\n")
    report["wall_s"] = round(time.time() - t0, 1)
    (args.out / "train.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "records"}, indent=1))


if __name__ == "__main__":
    main()
