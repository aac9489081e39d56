"""DS1-only probe: do the rhythm-irregularity RR columns help tell SVEB from N in unseen patients?

RR features alone (no morphology), 4 record-grouped folds over DS1, two classifiers (logistic
regression and gradient-boosted trees), with the log-ratio RR features of the shipped hybrid
versus the same plus the five rhythm columns of :func:`heartline.signal.beats.rhythm_features`
(columns 8-12 of the beat set's ``rr``). DS2 is never loaded.

Run: ``.venv/bin/python docs/benchmarks/models/rhythm-rr/rhythm_probe.py`` (uses the beat cache).
"""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from heartline.data.beat_dataset import build_beat_set
from heartline.data.splits import DS1

b = build_beat_set(list(DS1), leads=(0, 1), window_len=128, progress=False)
y, r = b.labels, b.rr
assert b.rr_names[8] == "rr_irregularity", b.rr_names
log_ratios = np.log(
    np.stack(
        [r[:, 0] / r[:, 2], r[:, 1] / r[:, 2], r[:, 0] / r[:, 1], r[:, 4], r[:, 5], r[:, 6]], 1
    )
)
features = {"log-ratios": log_ratios, "+ rhythm columns": np.hstack([log_ratios, r[:, 8:13]])}
records = np.array(sorted(set(b.record.tolist())))
folds = np.array_split(np.random.default_rng(0).permutation(records), 4)
print(
    "| classifier | RR features | SVEB Se | SVEB +P | VEB Se | VEB +P | most false SVEB (record: FP) |"
)
print("|---|---|---:|---:|---:|---:|---|")
for clf_name in ("logistic regression", "gradient boosting"):
    for name, x in features.items():
        pred = np.full(len(y), -1)
        for f in folds:
            test = np.isin(b.record, f)
            train = ~test & (y >= 0) & (y <= 2)
            if clf_name == "logistic regression":
                model = LogisticRegression(max_iter=3000, class_weight="balanced")
            else:
                model = HistGradientBoostingClassifier(
                    max_iter=200, class_weight="balanced", random_state=0
                )
            model.fit(x[train], y[train])
            pred[test] = model.predict(x[test])
        cells = []
        for c in (1, 2):
            tp = np.count_nonzero((y == c) & (pred == c))
            cells += [
                100 * tp / np.count_nonzero(y == c),
                100 * tp / max(np.count_nonzero(pred == c), 1),
            ]
        fp = {k: int(np.count_nonzero((b.record == k) & (pred == 1) & (y != 1))) for k in records}
        top = ", ".join(f"{k}: {v}" for k, v in sorted(fp.items(), key=lambda kv: -kv[1])[:4])
        print(f"| {clf_name} | {name} | " + " | ".join(f"{v:.1f}" for v in cells) + f" | {top} |")
