"""DS1-only probe: do patient-adaptive (running-template) morphology features help unseen patients?

Same protocol as ``docs/benchmarks/models/rhythm-rr/rhythm_probe.py``: 4 record-grouped folds over
DS1 (seeded permutation of the 22 records), every beat predicted by a model that never saw its
patient. Two classifiers (logistic regression on standardised features, gradient-boosted trees),
both with ``class_weight="balanced"``, trained on N/S/V/F (the 8 Q beats are left out), and four
feature sets:

(a) RR log-ratios + the five rhythm columns (the baseline of the rhythm probe);
(b) (a) + :func:`heartline.signal.templates.template_features` (19 columns: each beat against the
    median of its record's previous 32 beats);
(c) (a) + a fixed morphology summary with no template normalisation (per lead: QRS width, QRS
    energy, QRS peak-to-peak, R-point value, window max and min, 8 bin means of the window), to
    tell gains from *patient normalisation* from gains from morphology at all;
(d) (a) + (c) + the template columns.

Reports SVEB and VEB sensitivity / positive predictivity, macro-F1 over N/S/V/F with a 95 %
record-bootstrap interval (records resampled with replacement, 2,000 draws), and the records with
the most false SVEB and false VEB, false VEB summed over the DS1 bundle-branch-block records
(109, 118, 124, 207: the DS1 kin of DS2 record 214), and paired record-bootstrap differences in
macro-F1 between feature sets. DS2 is never loaded.

Run (1 thread, the beat cache is reused)::

    OMP_NUM_THREADS=1 .venv/bin/python docs/benchmarks/models/template-features/probe.py \\
        > docs/benchmarks/models/template-features/probe.md
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from heartline.data.beat_dataset import build_beat_set
from heartline.data.splits import DS1
from heartline.signal.templates import QRS_REGION_S, qrs_width_ms, template_features

N_TEMPLATE = 32
CLASSES = ("N", "S", "V", "F")
t_start = time.perf_counter()

b = build_beat_set(list(DS1), leads=(0, 1), window_len=128, progress=False)
assert not set(b.record.tolist()) - set(DS1), "a non-DS1 record slipped in"
y, r, w = b.labels, b.rr, b.windows
assert b.rr_names[8] == "rr_irregularity", b.rr_names

# (a) RR log-ratios (as fed to the hybrid) + rhythm columns
log_ratios = np.log(
    np.stack(
        [r[:, 0] / r[:, 2], r[:, 1] / r[:, 2], r[:, 0] / r[:, 1], r[:, 4], r[:, 5], r[:, 6]], 1
    )
)
rr_set = np.hstack([log_ratios, r[:, 8:13]])

# template-relative features (causal, per record)
t0 = time.perf_counter()
tpl = template_features(
    w, record_ids=b.record, n_template=N_TEMPLATE, pre_s=b.pre_s, post_s=b.post_s
)
t_tpl = time.perf_counter() - t0

# (c) absolute morphology summary of the same windows (no template)
length = w.shape[-1]
dt = (b.pre_s + b.post_s) / length
q0, q1 = (int(np.ceil((s + b.pre_s) / dt)) for s in QRS_REGION_S)
r_idx = round(length * b.pre_s / (b.pre_s + b.post_s))
qrs = w[..., q0:q1].astype(np.float64)
morph = np.concatenate(
    [
        qrs_width_ms(w, pre_s=b.pre_s, post_s=b.post_s),
        np.log((qrs**2).sum(-1) + 1e-3),
        np.ptp(qrs, axis=-1),
        w[..., r_idx],
        w.max(-1),
        w.min(-1),
        w.reshape(len(w), w.shape[1], 8, -1).mean(-1).reshape(len(w), -1),
    ],
    axis=1,
)

features = {
    "(a) RR + rhythm": rr_set,
    "(b) (a) + template": np.hstack([rr_set, tpl.values]),
    "(c) (a) + morphology": np.hstack([rr_set, morph]),
    "(d) (a) + morphology + template": np.hstack([rr_set, morph, tpl.values]),
}
assert all(np.all(np.isfinite(x)) for x in features.values())

records = np.array(sorted(set(b.record.tolist())))
folds = np.array_split(np.random.default_rng(0).permutation(records), 4)
scored = (y >= 0) & (y <= 3)
rec_index = np.searchsorted(records, b.record)


def confusion_by_record(pred: np.ndarray) -> np.ndarray:
    """(n_records, 4, 4) confusion counts (true, predicted) over N/S/V/F beats."""
    cm = np.zeros((records.size, 4, 4), dtype=np.int64)
    np.add.at(cm, (rec_index[scored], y[scored], pred[scored]), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    den = cm.sum(0) + cm.sum(1)
    return float(np.mean(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)))


def se_pp(cm: np.ndarray, c: int) -> tuple[float, float]:
    return 100 * cm[c, c] / max(cm[c].sum(), 1), 100 * cm[c, c] / max(cm[:, c].sum(), 1)


def top_false(cm_rec: np.ndarray, c: int, k: int = 4) -> str:
    fp = cm_rec[:, :, c].sum(1) - cm_rec[:, c, c]
    order = np.argsort(-fp, kind="stable")[:k]
    return ", ".join(f"{records[i]}: {fp[i]}" for i in order)


BBB = ("109", "118", "124", "207")  # DS1 bundle branch block records (214's kin in DS2)
bbb = np.isin(records, BBB)
boot = np.random.default_rng(1).integers(0, records.size, size=(2000, records.size))
rows = []
results: dict[tuple[str, str], np.ndarray] = {}
for clf_name in ("logistic regression", "gradient boosting"):
    for name, x in features.items():
        pred = np.full(len(y), -1)
        for f in folds:
            test = np.isin(b.record, f)
            train = ~test & scored
            if clf_name == "logistic regression":
                model = make_pipeline(
                    StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced")
                )
            else:
                model = HistGradientBoostingClassifier(
                    max_iter=200, class_weight="balanced", random_state=0
                )
            model.fit(x[train], y[train])
            pred[test] = model.predict(x[test])
        cm_rec = confusion_by_record(pred)
        results[clf_name, name] = cm_rec
        cm = cm_rec.sum(0)
        fveb_bbb = cm_rec[bbb][:, :, 2].sum() - cm_rec[bbb][:, 2, 2].sum()
        f1_boot = np.array([macro_f1(cm_rec[i].sum(0)) for i in boot])
        lo, hi = np.percentile(f1_boot, [2.5, 97.5])
        cells = [*se_pp(cm, 1), *se_pp(cm, 2)]
        rows.append(
            f"| {clf_name} | {name} | "
            + " | ".join(f"{v:.1f}" for v in cells)
            + f" | {100 * macro_f1(cm):.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | {fveb_bbb}"
            + f" | {top_false(cm_rec, 1)} | {top_false(cm_rec, 2)} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)

print(
    f"DS1 only, {int(scored.sum())} N/S/V/F beats of {records.size} records, 4 record-grouped "
    f"folds (seed 0), template of the previous {N_TEMPLATE} beats.\n"
)
print(
    "| classifier | features | SVEB Se | SVEB +P | VEB Se | VEB +P | macro-F1 N/S/V/F [95 % CI] "
    "| false VEB in BBB records | most false SVEB (record: FP) | most false VEB (record: FP) |"
)
print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
print("\n".join(rows))
names = list(features)
pairs = [(names[1], names[0]), (names[2], names[0]), (names[3], names[2]), (names[3], names[1])]
print(
    "\nPaired record-bootstrap difference in macro-F1 (same 2,000 record resamples for both sets; "
    "percentage points, 95 % interval):\n"
)
print("| classifier | comparison | delta macro-F1 [95 % CI] |")
print("|---|---|---:|")
for clf_name in ("logistic regression", "gradient boosting"):
    for new, old in pairs:
        a, c = results[clf_name, new], results[clf_name, old]
        d = np.array([macro_f1(a[i].sum(0)) - macro_f1(c[i].sum(0)) for i in boot])
        lo, hi = np.percentile(100 * d, [2.5, 97.5])
        delta = 100 * (macro_f1(a.sum(0)) - macro_f1(c.sum(0)))
        print(f"| {clf_name} | {new[:3]} - {old[:3]} | {delta:+.1f} [{lo:+.1f}, {hi:+.1f}] |")
print(
    f"\ntemplate_features on {len(y)} beats: {t_tpl:.1f} s; whole probe "
    f"{time.perf_counter() - t_start:.0f} s (1 thread)."
)
