"""Privacy accounting for client-level differential privacy (no Flower, no torch needed).

Each round releases the sum of the hospitals' clipped updates plus Gaussian noise of standard
deviation ``noise_multiplier * clip_norm``: a Gaussian mechanism on the set of hospitals. Over
``rounds`` rounds, with every hospital taking part in every round (no sampling amplification), the
Renyi-DP of order ``a`` adds up to ``rounds * a / (2 z^2)`` (Mironov 2017), converted to
(epsilon, delta) with the tighter conversion of Balle et al. (2020), as Opacus' RDP accountant
does. Epsilon is reported at the fixed :data:`DP_DELTA`.

References
----------
Mironov I. Renyi differential privacy. CSF (2017).
Balle B et al. Hypothesis testing interpretations and Renyi differential privacy. AISTATS (2020).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DP_DELTA", "epsilon_for_noise", "noise_for_epsilon"]

#: The fixed delta every epsilon is reported at.
DP_DELTA = 1e-5
_ORDERS = np.concatenate([np.linspace(1.01, 10, 200), np.arange(11, 512, dtype=float)])


def epsilon_for_noise(noise_multiplier: float, rounds: int, *, delta: float = DP_DELTA) -> float:
    """Epsilon after ``rounds`` full-participation Gaussian releases of multiplier ``z``.

    >>> round(epsilon_for_noise(1.0, 1), 2) < round(epsilon_for_noise(1.0, 4), 2)
    True
    """
    if noise_multiplier <= 0:
        return math.inf
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    a = _ORDERS
    rdp = rounds * a / (2.0 * noise_multiplier**2)
    eps = rdp + np.log((a - 1) / a) - (np.log(delta) + np.log(a)) / (a - 1)
    return float(np.min(eps))


def noise_for_epsilon(epsilon: float, rounds: int, *, delta: float = DP_DELTA) -> float:
    """Smallest noise multiplier whose :func:`epsilon_for_noise` is at most ``epsilon`` (bisection)."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    lo, hi = 1e-3, 1e4
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if epsilon_for_noise(mid, rounds, delta=delta) > epsilon:
            lo = mid
        else:
            hi = mid
    return hi
