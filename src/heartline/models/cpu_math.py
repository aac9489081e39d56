"""CPU floating-point mode for torch work: subnormal numbers are flushed to zero.

Units that stop contributing during training (dead ReLU channels, unused LSTM inputs) are pulled
towards zero by the L2 penalty until their weights, Adam moments and gradients become *subnormal*
floats (below 1.2e-38 in float32). x86 CPUs compute with subnormal operands tens of times more
slowly, and oneDNN convolutions with them slow the whole network: in a session-9 measurement one
training step of the intra-patient hybrid at its 29th epoch took 108-118 ms with 2 threads
against 34-36 ms for freshly initialised weights, and 39 ms once subnormals were flushed.
Training epochs grew from 27 s to 85 s for that reason.

The flush-to-zero (FTZ) and denormals-are-zero (DAZ) flags are per thread, and threads inherit
them from the thread that starts them, so :func:`flush_denormals` is called on the thread that
trains or predicts before its first parallel torch operation starts the OpenMP worker threads.
The numeric effect is nil at the scale of the network's activations (a subnormal product added to
a normal sum does not change its float32 rounding) but training is no longer bit-identical to runs
made without it where subnormals did occur. ONNX Runtime sessions get the equivalent option
(``session.set_denormal_as_zero``) in :mod:`heartline.edge.runtime`.

References
----------
Intel, "Intel 64 and IA-32 Architectures Optimization Reference Manual", section on floating-point
denormals (FTZ/DAZ). PyTorch documentation, ``torch.set_flush_denormal``.
"""

from __future__ import annotations

__all__ = ["flush_denormals"]


def flush_denormals() -> bool:
    """Flush subnormal floats to zero on this thread (and threads it starts from now on).

    Returns
    -------
    bool
        Whether the CPU supports the mode (x86 with SSE3; always ``False`` elsewhere, where the
        call is a no-op).
    """
    import torch

    return bool(torch.set_flush_denormal(True))
