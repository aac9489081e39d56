"""DS1-only probe: SVEB/VEB from RR features alone for unseen patients (4 record-grouped folds).

Run: ``.venv/bin/python docs/benchmarks/models/validation-rr/rr_probe.py`` (uses the beat cache;
DS2 is never loaded).
"""

import numpy as np
from sklearn.linear_model import LogisticRegression

from heartline.data.beat_dataset import build_beat_set
from heartline.data.splits import DS1

b = build_beat_set(list(DS1), leads=(0, 1), window_len=128, progress=False)
y, r = b.labels, b.rr
folds = np.array_split(np.random.default_rng(0).permutation(np.array(b.records)), 4)
features = {
    "raw": r,
    "log-ratios": np.log(
        np.stack(
            [r[:, 0] / r[:, 2], r[:, 1] / r[:, 2], r[:, 0] / r[:, 1], r[:, 4], r[:, 5], r[:, 6]], 1
        )
    ),
}
for name, x in features.items():
    pred = np.full(len(y), -1)
    for f in folds:
        test = np.isin(b.record, f)
        train = ~test & (y >= 0) & (y <= 2)
        model = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    for c, label in ((1, "SVEB"), (2, "VEB")):
        tp = np.count_nonzero((y == c) & (pred == c))
        print(
            f"{name:10s} {label}: Se {tp / np.count_nonzero(y == c):.3f} +P {tp / max(np.count_nonzero(pred == c), 1):.3f}"
        )
