"""Training-step time of the hybrid with and without subnormal floats flushed to zero.

Session 9 found the intra-patient training epochs growing from 27 s to 85 s over a run. This
script times one Adam step (batch of 64 beats of records 100, 119 and 208, 2 threads) for four
cases, each in its own process so that the per-thread flush mode starts clean:

* ``fresh``: freshly initialised weights of the given model's architecture;
* ``trained``: the given model's trained weights;

each with ``flush`` off (the CPU's default) and on (the block of :func:`heartline.models.cpu_math.flush_denormals`
entered before the first parallel torch operation, as ``train_net`` does). Cases run A B A B. It also counts the trained
weights that are subnormal.

Run::

    .venv/bin/python docs/benchmarks/training/denormals.py \\
        docs/benchmarks/intra-patient/session9/plateau/model > docs/benchmarks/training/denormals.txt
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEPS = 60


def _child(model_dir: str, weights: str, flush: bool) -> float:
    import torch
    import torch.nn.functional as F

    from heartline.models.cpu_math import flush_denormals

    scope = contextlib.ExitStack()
    if flush:  # as train_net does: around everything, before the first parallel op
        scope.enter_context(flush_denormals())
    torch.set_num_threads(2)
    from heartline.data.beat_dataset import build_beat_set
    from heartline.training.deep import TorchBeatClassifier
    from heartline.training.trainer import _BatchMaker

    beats = build_beat_set(["100", "119", "208"], template_features=True, progress=False)
    net = TorchBeatClassifier.load(Path(model_dir)).net
    if weights == "fresh":
        torch.manual_seed(0)
        for m in net.modules():
            if m is not net and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1.25e-4, weight_decay=1e-4)
    maker = _BatchMaker(beats, net.context_k)
    rng = np.random.default_rng(0)

    def step() -> None:
        idx = np.sort(rng.choice(len(beats), 64, replace=False))
        b = maker.make(idx)
        out = net.forward_context(b.windows, b.rr, b.ctx)
        loss = F.cross_entropy(out.logits, b.y, ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up
        step()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        step()
    ms = (time.perf_counter() - t0) / STEPS * 1000
    scope.close()
    return ms


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4] == "1")))
        return
    model_dir = sys.argv[1]
    import torch
    from count_subnormals import count_subnormals  # beside this script

    n_sub, n_all = count_subnormals(Path(model_dir) / "model.pt")
    print(f"model {model_dir}: {n_sub} of {n_all} stored floats are subnormal")
    print(f"ms per training step (batch 64, 2 threads, mean of {STEPS} steps), A B A B:")
    results: dict[str, list[float]] = {}
    for _ in range(2):
        for weights in ("fresh", "trained"):
            for flush in ("0", "1"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", model_dir, weights, flush],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                ms = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(
                    f"{weights:7s} flush {'on ' if flush == '1' else 'off'}", []
                ).append(ms)
    for k, v in results.items():
        print(f"  {k}: " + " / ".join(f"{x:.1f}" for x in v))
    print(f"platform: {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main()
