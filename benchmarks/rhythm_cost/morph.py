"""CPU time of the morphology hand features alone, per 30 s window, on real records (1 thread).

Times :func:`heartline.features.rhythm.morphology_features_from_peaks` (the beat-morphology,
P-wave, T-Q and spectral features of :data:`MORPH_FEATURE_NAMES`) on the first 30 s of MIT-BIH
record 201 (MLII, 360 Hz, the live-path benchmark's record of ``run.py``) and of CinC 2017
records A00004, A00005, A00006 (300 Hz), with the R peaks and the 0.5-40 Hz lead made as
:func:`rhythm_hand_features` makes them. Prints a JSON object with the load average.

Usage::

    python benchmarks/rhythm_cost/morph.py [--data-dir DIR] [--n 300]

To time another version of the code (e.g. the one before a change), put its ``src`` first on
``PYTHONPATH``: ``git archive COMMIT src | tar -x -C /tmp/base && PYTHONPATH=/tmp/base/src
python benchmarks/rhythm_cost/morph.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

RECORDS = (("mitdb", "201"), ("cinc2017", "A00004"), ("cinc2017", "A00005"), ("cinc2017", "A00006"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("HEARTLINE_DATA_DIR", "../shared/data"))
    ap.add_argument("--n", type=int, default=300, help="calls per record")
    args = ap.parse_args()

    import heartline.features.rhythm as hr
    from heartline.io.readers import read_ecg
    from heartline.signal.filters import bandpass
    from heartline.signal.rpeaks import detect_r_peaks

    load0 = os.getloadavg()
    rows = {}
    for db, name in RECORDS:
        rec = read_ecg(os.path.join(args.data_dir, db, name))
        fs = float(rec.fs)
        x = np.asarray(rec.signal[: round(30 * fs), 0], dtype=np.float64)
        peaks = detect_r_peaks(x, fs=fs).sample_idx
        xf = bandpass(x, fs=fs, low_hz=0.5, high_hz=min(40.0, 0.45 * fs), order=2)
        hr.morphology_features_from_peaks(peaks, xf, fs=fs)
        t = time.process_time()
        for _ in range(args.n):
            hr.morphology_features_from_peaks(peaks, xf, fs=fs)
        rows[f"{db}/{name}"] = {
            "fs": fs,
            "n_peaks": int(peaks.size),
            "cpu_ms_per_call": round(1000 * (time.process_time() - t) / args.n, 3),
        }
    out = {
        "module": hr.__file__,
        "load_average_start": [round(v, 2) for v in load0],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "records": rows,
        "mean_cpu_ms_per_call": round(
            float(np.mean([r["cpu_ms_per_call"] for r in rows.values()])), 3
        ),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
