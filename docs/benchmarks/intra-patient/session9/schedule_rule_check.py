"""Would the corrected plateau rule have changed the session-9 runs' learning rates?

The session-9 runs stepped ``ReduceLROnPlateau(mode="max")`` on minus the validation loss.
torch's relative threshold (1e-4) then counts a loss up to 0.01 % *above* the best as an
improvement. The code now steps ``mode="min"`` on the loss itself. This replays both rules on
each run's recorded validation losses and counts the epochs where they disagree on "improved"
(0 means the learning-rate path, and so the run, is the same under the corrected code).

Run::

    python docs/benchmarks/intra-patient/session9/schedule_rule_check.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).parent

for run in ("plateau", "plateau-ftz", "plateau-wide"):
    history = json.loads((HERE / run / "history.json").read_text())["history"]
    best_max, best_min, differ = -math.inf, math.inf, 0
    for e in history:
        loss = e["val_loss"]
        old = -loss > best_max * (1 + 1e-4) if math.isfinite(best_max) else True
        new = loss < best_min * (1 - 1e-4)
        differ += old != new
        if old:
            best_max = -loss
        if new:
            best_min = loss
    print(f"{run}: {len(history)} epochs, {differ} where the two rules disagree")
