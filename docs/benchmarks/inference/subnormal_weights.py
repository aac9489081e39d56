"""Do the shipped model's subnormal weights slow ONNX Runtime inference down?

``docs/benchmarks/training/count_subnormals.txt`` found 255 subnormal floats (magnitude below
1.2e-38, not zero) among the shipped hybrid's stored weights. A CPU multiplies subnormal operands
on a slow path (microcode assists), and the live pipeline runs the model through ONNX Runtime
without flushing them (see ``heartline.models.cpu_math``). This script times the split form that
the live pipeline runs, one beat per call (encoder on the new beat, sequence graph on its context
of ``context_k + 1`` beats), with the shipped graphs as they are (A) and with every subnormal
initializer set to zero (B), in the order A B A B A B on the same beats, 1 thread each.

It also reports how much the zeroing changes the probabilities and whether any predicted class
changes on those beats.

Run (nothing else running)::

    .venv/bin/python docs/benchmarks/inference/subnormal_weights.py \\
        > docs/benchmarks/inference/subnormal_weights.txt
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from heartline.data.beat_dataset import build_beat_set
from heartline.edge.runtime import OnnxBeatClassifier, _session, split_paths
from heartline.edge.shipped import shipped_model_path
from heartline.training.protocols import ProtocolData

RECORDS = ["100", "106", "119", "201", "208"]  # DS1 records with N, S, V and F beats
N_BEATS = 2000
REPEATS = 3
TINY = np.finfo(np.float32).tiny


def zero_subnormals(src: Path, dst: Path) -> int:
    """Copy the ONNX file ``src`` to ``dst`` with subnormal float initializers set to 0."""
    model = onnx.load(src)
    n = 0
    for i, t in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype.kind != "f":
            continue
        sub = (np.abs(a) < TINY) & (a != 0)
        if sub.any():
            n += int(sub.sum())
            b = a.copy()
            b[sub] = 0
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(b, t.name))
    onnx.save(model, dst)
    return n


def per_beat(enc: Any, seq: Any, w, r, ctx) -> tuple[float, np.ndarray]:
    """Seconds per beat of encoder + sequence, one beat per call; and the probabilities."""
    feats = np.zeros((len(w), enc.get_outputs()[0].shape[1]), np.float32)
    out = []
    t0 = time.perf_counter()
    for i in range(len(w)):
        feats[i] = enc.run(None, {"windows": w[i : i + 1], "rr": r[i : i + 1]})[0][0]
        out.append(seq.run(None, {seq.get_inputs()[0].name: feats[ctx[i]][None]})[0][0])
    return (time.perf_counter() - t0) / len(w), np.asarray(out)


def main() -> None:
    full = shipped_model_path()
    clf = OnnxBeatClassifier(full, split=True)
    data = ProtocolData().for_model(clf)
    beats = build_beat_set(RECORDS, progress=False, template_features=data.template_features)
    w = np.ascontiguousarray(beats.windows[:N_BEATS], np.float32)
    r = np.ascontiguousarray(beats.rr[:N_BEATS], np.float32)
    ctx = beats.subset(np.arange(len(w))).context_index(clf.context_k)
    enc_path, seq_path = split_paths(full)
    with tempfile.TemporaryDirectory() as tmp:
        counts = {}
        zeroed = {}
        for p in (enc_path, seq_path):
            q = Path(tmp) / p.name
            counts[p.name] = zero_subnormals(p, q)
            zeroed[p.name] = q
        variants = {
            "A shipped": (_session(enc_path, 1), _session(seq_path, 1)),
            "B zeroed": (_session(zeroed[enc_path.name], 1), _session(zeroed[seq_path.name], 1)),
        }
        for enc, seq in variants.values():  # warm-up
            per_beat(enc, seq, w[:50], r[:50], ctx[:50])
        times: dict[str, list[float]] = {k: [] for k in variants}
        proba: dict[str, np.ndarray] = {}
        for _ in range(REPEATS):
            for k, (enc, seq) in variants.items():
                s, proba[k] = per_beat(enc, seq, w, r, ctx)
                times[k].append(s)
    print(
        f"shipped model: {full.name} (split form); beats: the first {len(w)} of DS1 records "
        f"{', '.join(RECORDS)}; 1 thread; one beat per call; order A B x {REPEATS}"
    )
    for name, n in counts.items():
        print(f"subnormal initializers set to 0 in {name}: {n}")
    for k, ts in times.items():
        print(f"{k}: " + " / ".join(f"{1e6 * t:.1f}" for t in ts) + " us per beat")
    a, b = proba["A shipped"], proba["B zeroed"]
    print(f"max |probability difference|: {np.abs(a - b).max():.2e}")
    print(
        f"beats whose predicted class changes: {int((a.argmax(1) != b.argmax(1)).sum())} of {len(a)}"
    )


if __name__ == "__main__":
    main()
