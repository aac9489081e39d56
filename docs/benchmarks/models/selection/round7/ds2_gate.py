"""Round 7, after the DS1 decision: the shipped model on DS2 (annotated R-peaks) with and without
the rhythm gate ``g_theta`` (``theta`` from DS1, given on the command line). Reported either way;
it does not change the decision.

Run: ``.venv/bin/python docs/benchmarks/models/selection/round7/ds2_gate.py THETA``
"""

from __future__ import annotations

import json
import sys

import numpy as np

from heartline.data.splits import DS2
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.edge.shipped import shipped_model_path
from heartline.training.metrics import evaluate_predictions
from heartline.training.protocols import ProtocolData

N, S = 0, 1


def main(theta: float) -> None:
    model = OnnxBeatClassifier(shipped_model_path())
    data = ProtocolData(data_dir="../shared/data").for_model(model)
    beats = data.build(DS2, rpeaks="annotated")
    prob = model.predict_proba(beats).astype(np.float64)
    regular = beats.rr[:, list(beats.rr_names).index("rr_regular_fraction")]
    gated = prob.copy()
    g = regular < theta
    gated[g, N] += gated[g, S]
    gated[g, S] = 0.0
    rows = {}
    for name, p in (("shipped", prob), (f"shipped + gate {theta}", gated)):
        m = evaluate_predictions(beats.labels, p, records=beats.record, n_bootstrap=0)
        pred = p.argmax(axis=1)
        fp = (pred == S) & (beats.labels != S) & (beats.labels >= 0)
        fn = (pred != S) & (beats.labels == S)
        top_fp = sorted(
            ((int((fp & (beats.record == r)).sum()), r) for r in set(beats.record)), reverse=True
        )[:4]
        top_fn = sorted(
            ((int((fn & (beats.record == r)).sum()), r) for r in set(beats.record)), reverse=True
        )[:4]
        rows[name] = {
            "n_beats": int((beats.labels >= 0).sum()),
            "accuracy": m.accuracy,
            "macro_f1": m.macro_f1,
            "sveb_se": m.sveb_se,
            "sveb_ppv": m.sveb_ppv,
            "veb_se": m.veb_se,
            "veb_ppv": m.veb_ppv,
            "sveb_beats": int(np.count_nonzero(beats.labels == S)),
            "sveb_found": int(np.count_nonzero((pred == S) & (beats.labels == S))),
            "sveb_missed": int(fn.sum()),
            "gated_beats": int(g.sum()) if "gate" in name else 0,
            "false_sveb_top_records": [f"{r}: {n}" for n, r in top_fp],
            "missed_sveb_top_records": [f"{r}: {n}" for n, r in top_fn],
        }
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(float(sys.argv[1]))
