"""Out-of-fold macro-F1 (N,S,V,F) on the five DS1 validation records, without and with the offsets.

Run: ``.venv/bin/python docs/benchmarks/models/hybrid_ensemble_sv/oof_validation.py [RUN_DIR]``
(default: this folder, which holds the run's ``oof.npz`` and ``crossfit.json``).
"""

import json
import sys
from pathlib import Path

import numpy as np

from heartline.data.splits import DEFAULT_VALIDATION
from heartline.training.calibration import macro_f1_of

run = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
z = np.load(run / "oof.npz")
bias = np.array(json.loads((run / "crossfit.json").read_text())["calibration"]["bias"])
keep = np.isin(z["record"], DEFAULT_VALIDATION) & (z["labels"] >= 0)
y, lp = z["labels"][keep], z["log_proba"][keep]
for tag, b in (("without offsets", 0 * bias), ("with offsets", bias)):
    print(f"{tag}: {100 * macro_f1_of(y, (lp + b).argmax(1), (0, 1, 2, 3)):.1f} %")
