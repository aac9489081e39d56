"""Real V beats for the explanation tests, built in about a second: 60 s of MIT-BIH 119
(ventricular bigeminy) through the live pipeline (:class:`heartline.pipeline.BeatPipeline`),
the beats matched to the cardiologists' V annotations (within 50 ms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).parents[2] / "src" / "heartline" / "assets" / "models" / "hybrid.onnx"


@pytest.fixture(scope="session")
def v_beats(data_dir: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(windows, rr, pre_s, window_s)`` of 6 annotated V beats, as the shipped model is fed."""
    import wfdb

    from heartline.data.aami import aami_class
    from heartline.data.paths import record_path
    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.io import read_annotations
    from heartline.pipeline import BeatPipeline

    path = record_path("mitdb", "119", data_dir=data_dir)
    hdr = wfdb.rdheader(str(path))
    fs = float(hdr.fs)
    ann = read_annotations(path).beats()
    v_ann = ann.sample_idx[np.asarray([aami_class(s) for s in ann.symbol]) == "V"]
    # the 60 s (on a 30 s grid) with the most V beats
    starts = np.arange(0, hdr.sig_len - 60 * fs, 30 * fs).astype(int)
    a = int(starts[np.argmax([np.sum((v_ann >= s) & (v_ann < s + 60 * fs)) for s in starts])])
    b = a + int(60 * fs)
    rec = wfdb.rdrecord(str(path), sampfrom=a, sampto=b)
    clf = OnnxBeatClassifier(MODEL, split=False)
    pipe = BeatPipeline(fs=fs, lead_names=rec.sig_name, model=clf)
    batches = [pipe.prepare(rec.p_signal), pipe.flush_prepare()]
    windows = np.concatenate([x.windows for x in batches])
    rr = np.concatenate([x.rr for x in batches])
    peaks = np.concatenate([x.sample_idx for x in batches]) + a
    rows = [i for i, p in enumerate(peaks) if np.abs(v_ann - p).min() <= 0.05 * fs]
    rows = rows[3::3][:6]  # not the first beats (the running normaliser warms up)
    assert len(rows) == 6
    return windows[rows], rr[rows], pipe.pre_s, pipe.pre_s + pipe.post_s
