"""MIT-BIH beat symbols and the AAMI EC57 heartbeat classes.

The mapping follows ANSI/AAMI EC57:1998/(R)2008 as used by de Chazal et al. (2004):

* **N** (normal and bundle-branch-block beats): ``N L R e j``
* **S** (supraventricular ectopic, SVEB): ``A a J S``
* **V** (ventricular ectopic, VEB): ``V E``
* **F** (fusion of ventricular and normal): ``F``
* **Q** (paced, fusion of paced and normal, unclassifiable): ``/ f Q``

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
"""

from __future__ import annotations

import numpy as np

__all__ = ["AAMI_CLASSES", "AAMI_MAP", "BEAT_SYMBOLS", "aami_class", "aami_labels"]

#: The five AAMI classes, in the order used for integer labels everywhere in Heartline.
AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: MIT-BIH beat symbol -> AAMI class.
AAMI_MAP: dict[str, str] = {
    "N": "N",
    "L": "N",
    "R": "N",
    "e": "N",
    "j": "N",
    "A": "S",
    "a": "S",
    "J": "S",
    "S": "S",
    "V": "V",
    "E": "V",
    "F": "F",
    "/": "Q",
    "f": "Q",
    "Q": "Q",
}

#: Every MIT-BIH symbol that marks a beat (``B``, ``r``, ``n`` and ``?`` are beats too, used
#: in other databases; ``?`` maps to Q when present).
BEAT_SYMBOLS: frozenset[str] = frozenset(AAMI_MAP) | {"B", "r", "n", "?"}
_EXTRA = {"B": "N", "r": "V", "n": "S", "?": "Q"}


def aami_class(symbol: str) -> str:
    """AAMI class of one MIT-BIH beat symbol.

    >>> aami_class("A"), aami_class("L"), aami_class("E")
    ('S', 'N', 'V')
    """
    try:
        return AAMI_MAP.get(symbol) or _EXTRA[symbol]
    except KeyError:
        raise ValueError(
            f"{symbol!r} is not a beat symbol; beat symbols: {sorted(BEAT_SYMBOLS)}"
        ) from None


def aami_labels(symbols: np.ndarray) -> np.ndarray:
    """Integer AAMI labels (index into :data:`AAMI_CLASSES`) for an array of beat symbols.

    >>> aami_labels(np.array(["N", "V", "A", "F", "/"])).tolist()
    [0, 2, 1, 3, 4]
    """
    index = {c: i for i, c in enumerate(AAMI_CLASSES)}
    return np.array([index[aami_class(s)] for s in symbols], dtype=np.int64)
