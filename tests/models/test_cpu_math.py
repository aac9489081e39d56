"""Subnormal floats flushed to zero for torch work (heartline.models.cpu_math)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import numpy as np
    import torch
    from heartline.models.cpu_math import flush_denormals, flushing_denormals
    x = torch.tensor([1e-37], dtype=torch.float32)
    print(float((x * 0.01)[0]), flushing_denormals())  # default: 1e-39 kept
    with flush_denormals() as ok:
        print(float((x * 0.01)[0]), flushing_denormals(), ok)  # flushed inside
    print(float((x * 0.01)[0]), flushing_denormals())  # restored after
    # training restores the caller's mode too
    from heartline.data.synthetic import synthetic_beats
    from heartline.models.hybrid import HybridNet
    from heartline.training.config import TrainConfig
    from heartline.training.trainer import predict_logits, train_net
    tr = synthetic_beats(30, ("a", "b"), seed=1)
    va = synthetic_beats(20, ("c",), seed=2)
    net = HybridNet(n_leads=2, window_len=32, n_rr=3, context_k=1, channels=4, feature_dim=8,
                    lstm_hidden=8)
    train_net(net, tr, va, TrainConfig(max_epochs=1, batch_size=16))
    predict_logits(net, va)
    print(flushing_denormals(), float(np.float32(1e-37) * np.float32(0.01)))
    """
)


def test_flush_denormals_is_scoped_to_its_block() -> None:
    # a child process, so that this one's floating-point mode is not touched
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    lines = [ln.split() for ln in out.stdout.strip().splitlines()]
    assert float(lines[0][0]) > 0 and lines[0][1] == "False"  # IEEE default
    if lines[1][2] == "True":  # the CPU supports the mode
        assert float(lines[1][0]) == 0.0 and lines[1][1] == "True"
    assert float(lines[2][0]) > 0 and lines[2][1] == "False"
    assert lines[3][0] == "False" and float(lines[3][1]) > 0
