"""Count the subnormal floats stored in torch model files.

Run::

    .venv/bin/python docs/benchmarks/training/count_subnormals.py \\
        src/heartline/assets/models/hybrid.pt \\
        docs/benchmarks/intra-patient/session9/plateau/model/model.pt \\
        > docs/benchmarks/training/count_subnormals.txt
"""

from __future__ import annotations

import sys
from pathlib import Path


def count_subnormals(path: str | Path) -> tuple[int, int]:
    """``(subnormal, total)`` floating-point values stored in a torch state file."""
    import torch

    tiny = torch.finfo(torch.float32).tiny
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    sub = total = 0
    for value in state.values():
        if torch.is_tensor(value) and value.is_floating_point():
            sub += int(((value.abs() < tiny) & (value != 0)).sum())
            total += value.numel()
    return sub, total


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        sub, total = count_subnormals(arg)
        print(f"{arg}: {sub} of {total} stored floats are subnormal")
