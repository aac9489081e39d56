"""Subnormal floats flushed to zero for torch work (heartline.models.cpu_math)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import torch
    x = torch.tensor([1e-37], dtype=torch.float32)
    before = float((x * 0.01)[0])  # 1e-39: subnormal, kept by default
    from heartline.models.cpu_math import flush_denormals
    ok = flush_denormals()
    after = float((x * 0.01)[0])
    print(before, ok, after)
    """
)


def test_flush_denormals_makes_subnormal_results_zero() -> None:
    # a child process, so that this one's floating-point mode is left as it is
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, ok, after = out.stdout.split()
    assert float(before) == pytest.approx(1e-39, rel=1e-3)  # the CPU default keeps subnormals
    if ok != "True":
        pytest.skip("this CPU cannot flush subnormals")
    assert float(after) == 0.0


def test_onnx_sessions_treat_subnormals_as_zero(tmp_path) -> None:
    import torch

    from heartline.edge.runtime import _session

    net = torch.nn.Linear(3, 2)
    path = tmp_path / "lin.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3),), str(path), dynamo=False)
    sess = _session(path, 1)
    opts = sess.get_session_options()
    assert opts.get_session_config_entry("session.set_denormal_as_zero") == "1"
