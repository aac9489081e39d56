"""CPU floating-point mode for torch work: subnormal numbers are flushed to zero.

Units that stop contributing during training (dead ReLU channels, unused LSTM inputs) are pulled
towards zero by the L2 penalty until their weights, Adam moments and gradients become *subnormal*
floats (below 1.2e-38 in float32). x86 CPUs compute with subnormal operands tens of times more
slowly, and oneDNN convolutions with them slow the whole network: one training step of the
intra-patient hybrid with its weights after 29 epochs took 120-123 ms with 2 threads, against
46-59 ms with fresh weights and 41-51 ms with subnormals flushed
(``docs/results/history.md``). Training epochs grew from 27 s to 85 s for that reason.

The flush-to-zero (FTZ) and denormals-are-zero (DAZ) flags are per thread, and threads inherit
them from the thread that starts them, so :func:`flush_denormals` wraps training and prediction on
the calling thread, whose first parallel torch operation starts the OpenMP worker threads; the
calling thread's own mode is restored afterwards.
The numeric effect is nil at the scale of the network's activations (a subnormal product added to
a normal sum does not change its float32 rounding) but training is no longer bit-identical to runs
made without it where subnormals did occur. ONNX Runtime's equivalent session option
(``session.set_denormal_as_zero``) is not used: it switches the mode on for the thread that
creates the session and never restores it, which would change the float arithmetic of everything
else that thread runs (the live pipeline's signal processing, among others).

References
----------
Intel, "Intel 64 and IA-32 Architectures Optimization Reference Manual", section on floating-point
denormals (FTZ/DAZ). PyTorch documentation, ``torch.set_flush_denormal``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["flush_denormals", "flushing_denormals"]


def flushing_denormals() -> bool:
    """Whether this thread flushes subnormal float results to zero now."""
    import numpy as np

    return float(np.float32(1e-37) * np.float32(0.01)) == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Flush subnormal floats to zero on this thread inside the block; restore the mode after.

    OpenMP worker threads that torch starts inside the block inherit the mode and keep it (they
    only ever run torch kernels); the calling thread gets its previous mode back, so Python and
    NumPy code after the block computes with IEEE subnormals as before (Hypothesis, for one,
    refuses to run in a process that flushes them).

    Yields
    ------
    bool
        Whether the CPU supports the mode (x86 with SSE3; elsewhere the block runs unchanged).
    """
    import torch

    before = flushing_denormals()
    supported = bool(torch.set_flush_denormal(True))
    try:
        yield supported
    finally:
        if supported and not before:
            torch.set_flush_denormal(False)
