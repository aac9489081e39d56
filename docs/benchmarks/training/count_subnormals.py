"""Count the subnormal floats stored in torch model files.

Run::

    .venv/bin/python docs/benchmarks/training/count_subnormals.py \\
        src/heartline/assets/models/hybrid.pt \\
        docs/benchmarks/intra-patient/session9/plateau/model/model.pt \\
        > docs/benchmarks/training/count_subnormals.txt
"""

from __future__ import annotations

import sys

import torch

tiny = torch.finfo(torch.float32).tiny
for path in sys.argv[1:]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    sub = total = 0
    for value in state.values():
        if torch.is_tensor(value) and value.is_floating_point():
            sub += int(((value.abs() < tiny) & (value != 0)).sum())
            total += value.numel()
    print(f"{path}: {sub} of {total} stored floats are subnormal")
