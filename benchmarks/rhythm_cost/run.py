"""CPU cost of the rhythm model per 30 s window, on one core, for one or more ONNX files.

Two measurements per model, CPU time (``time.process_time``, ONNX Runtime on 1 thread):

* ``model``: :meth:`OnnxRhythmClassifier.predict_windows` on one prepared 30 s window (batch 1),
  the stream processor's ONNX call per device;
* ``stream``: one device's live path per window, :meth:`RhythmStream.window` (checks, model
  signal, RR / hand features from the streamed R peaks) + ``predict_windows``, on MIT-BIH
  record 201 (lead MLII, 360 Hz, with AF) pushed in 1 s frames, a window every 5 s;
* ``record``: :meth:`OnnxRhythmClassifier.classify` on a whole 30 s record (filter, resample,
  R-peak detector, features, model): ``heartline rhythm`` / ``classify_rhythm`` per record.

Usage::

    python benchmarks/rhythm_cost/run.py [MODEL.onnx ...] [--data-dir DIR] [--out F.json]

Without a model: the shipped one. Prints a JSON object with the load average at the start and
the end (wall times on a shared machine are inflated; CPU time much less so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _cpu_ms(fn, n: int) -> float:
    fn()
    t = time.process_time()
    for _ in range(n):
        fn()
    return 1000 * (time.process_time() - t) / n


def measure(path: str | None, data_dir: str) -> dict:
    from heartline.edge.rhythm import OnnxRhythmClassifier, RhythmStream
    from heartline.io.readers import read_ecg

    clf = OnnxRhythmClassifier(path, num_threads=1)
    rec = read_ecg(os.path.join(data_dir, "mitdb", "201"))
    fs = float(rec.fs)
    x = np.asarray(rec.signal[: round(300 * fs), 0], dtype=np.float64)
    prep = clf.prepare(x[: round(30 * fs)], fs=fs)
    assert not isinstance(prep, str), prep
    xs, ms, rr, _ = prep
    model_ms = _cpu_ms(lambda: clf.predict_windows(xs[:1], ms[:1], rr[:1]), 200)
    stream = RhythmStream(clf, fs=fs)
    step, every = round(fs), round(5 * fs)
    win_cpu, n_win = 0.0, 0
    for k in range(0, x.size, step):
        stream.push(x[k : k + step])
        if stream.n_samples % every == 0 and stream.n_samples >= 30 * fs:
            t = time.process_time()
            w = stream.window()
            if not isinstance(w, str):
                clf.predict_windows(*w[:3])
            win_cpu += time.process_time() - t
            n_win += 1
    rec_ms = _cpu_ms(lambda: clf.classify(x[: round(30 * fs)], fs=fs), 10)
    return {
        "model": str(clf.path),
        "stacked": clf.stacked,
        "n_features": clf.n_rr,
        "model_cpu_ms_per_30s_window": model_ms,
        "stream_cpu_ms_per_window": 1000 * win_cpu / max(n_win, 1),
        "stream_windows": n_win,
        "record_cpu_ms_per_30s_record": rec_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--data-dir", default=os.environ.get("HEARTLINE_DATA_DIR", "../shared/data"))
    ap.add_argument("--out")
    a = ap.parse_args()
    load0 = list(os.getloadavg())
    rows = [measure(p, a.data_dir) for p in (a.models or [None])]
    out = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "load_average_start": load0,
        "load_average_end": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "results": rows,
    }
    text = json.dumps(out, indent=2)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
