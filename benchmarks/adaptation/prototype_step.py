"""CPU time of the per-patient prototype step alone, per call, three ways.

``reference``
    Per-class distances (:func:`heartline.edge.adapt._prototype_distance`) and
    :func:`~heartline.edge.adapt.combine_proba`: the direct computation.
``numpy``
    The array path of the live step (``PatientPrototypes._live_arrays``): per-patient
    constants, about a dozen array operations (the live path until 2026-12-07, ``336dc95``).
``rows``
    :meth:`PatientPrototypes.proba <heartline.edge.adapt.PatientPrototypes.proba>` (k = 1) for
    one or two beats, the live path since: the per-class minima as arrays, the mixture per
    beat in Python floats.
``onnx``
    The same step as one ONNX graph per patient (float64 inside), run by ONNX Runtime on one
    thread: what folding the step into a graph would cost per call.

A synthetic patient (three classes, 63 feature dimensions as the shipped encoder, 85
prototypes, mixture weight 0.5, temperature 0.05); one or two beats per call, as a stream
worker sees them. Thread CPU time; report the load average beside it.

Usage::

    python benchmarks/adaptation/prototype_step.py --calls 5000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from heartline.edge.adapt import _EPS, _prototype_distance, combine_proba, fit_prototypes


def _patient(d: int = 63, n: int = 370, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((3, d))
    y = rng.choice([0, 2, 3], size=n, p=[0.85, 0.1, 0.05])
    f = centres[np.searchsorted([0, 2, 3], y)] + rng.standard_normal((n, d))
    p = np.full((n, 5), 0.01)
    p[np.arange(n), y] = 0.96
    art = fit_prototypes(f.astype(np.float32), y, p, patient_id="bench", base_sha256="0")
    return dataclasses.replace(art, weight=0.5, tau=0.05), f.astype(np.float32), p


def onnx_step(art):
    """An ONNX Runtime InferenceSession computing ``art.proba`` (k = 1) from features and base_proba."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    a, c, present, m, inv = art._live_plan
    n_cls = len(art.classes)
    sel = np.zeros((present.size, n_cls))
    sel[np.arange(present.size), present] = 1.0

    def const(name, value, dtype=np.float64):
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    inits = [
        const("a", a),
        const("c", c),
        const("ninv", [-inv]),
        const("eps", [_EPS]),
        const("w", [art.weight]),
        const("w1", [1 - art.weight]),
        const("sel", sel),
        const("keep", 1 - sel.sum(0)),
        const("shape", [-1, present.size, m], np.int64),
        const("present", present, np.int64),
        const("ax1", [1], np.int64),
    ]
    nd = helper.make_node
    nodes = [
        nd("Cast", ["features"], ["f"], to=TensorProto.DOUBLE),
        nd("Cast", ["base_proba"], ["bp"], to=TensorProto.DOUBLE),
        nd("MatMul", ["f", "a"], ["fa"]),
        nd("Add", ["fa", "c"], ["s"]),
        nd("Reshape", ["s", "shape"], ["s3"]),
        nd("ReduceMin", ["s3"], ["smin"], axes=[2], keepdims=0),
        nd("Mul", ["smin", "ninv"], ["logit"]),
        nd("Softmax", ["logit"], ["q"], axis=1),
        nd("Gather", ["bp", "present"], ["b"], axis=1),
        nd("ReduceSum", ["b", "ax1"], ["mass"], keepdims=1),
        nd("Max", ["mass", "eps"], ["massc"]),
        nd("Div", ["b", "massc"], ["bn"]),
        nd("Add", ["bn", "eps"], ["bne"]),
        nd("Log", ["bne"], ["lb"]),
        nd("Mul", ["lb", "w1"], ["g1"]),
        nd("Add", ["q", "eps"], ["qe"]),
        nd("Log", ["qe"], ["lq"]),
        nd("Mul", ["lq", "w"], ["g2"]),
        nd("Add", ["g1", "g2"], ["g"]),
        nd("Softmax", ["g"], ["gs"], axis=1),
        nd("Relu", ["mass"], ["massr"]),
        nd("Mul", ["gs", "massr"], ["gm"]),
        nd("MatMul", ["gm", "sel"], ["ga"]),
        nd("Mul", ["bp", "keep"], ["bk"]),
        nd("Add", ["ga", "bk"], ["o"]),
        nd("ReduceSum", ["o", "ax1"], ["osum"], keepdims=1),
        nd("Div", ["o", "osum"], ["proba"]),
    ]
    d = a.shape[0]
    graph = helper.make_graph(
        nodes,
        "prototype_step",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d]),
            helper.make_tensor_value_info("base_proba", TensorProto.FLOAT, ["n", n_cls]),
        ],
        [helper.make_tensor_value_info("proba", TensorProto.DOUBLE, ["n", n_cls])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _cpu_us(fn, calls: int) -> float:
    fn()
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return 1e6 * (time.thread_time() - t0) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    art, f, p = _patient()
    sess = onnx_step(art)
    out: dict[str, dict[str, float]] = {}
    for n in (1, 2):
        x, b = f[:n], p[:n]
        b32 = b.astype(np.float32)

        def reference(x=x, b=b):
            z = (x - art.mean) / art.scale
            dist = _prototype_distance(z, art.prototypes, art.prototype_labels, 5, 1)
            return combine_proba(b, dist, weight=art.weight, tau=art.tau)

        ways = {
            "reference": reference,
            "numpy": lambda x=x, b=b: art._live_arrays(x, b),
            "rows": lambda x=x, b=b: art.proba(x, b),
            "onnx": lambda x=x, b32=b32: sess.run(None, {"features": x, "base_proba": b32}),
        }
        ref = reference()
        got = sess.run(None, {"features": x, "base_proba": b32})[0]
        assert np.allclose(got, ref, atol=1e-6) and np.allclose(art.proba(x, b), ref, atol=1e-9)
        assert np.allclose(art._live_arrays(x, b), ref, atol=1e-9)
        per = {k: [] for k in ways}
        for _ in range(args.repeats):  # interleaved
            for k, fn in ways.items():
                per[k].append(_cpu_us(fn, args.calls))
        out[f"{n}_beats"] = {k: round(float(np.median(v)), 1) for k, v in per.items()}
    result = {
        "what": "thread CPU time per call of the prototype step (us), median of repeats",
        "us_per_call": out,
        "load_average": list(os.getloadavg()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
