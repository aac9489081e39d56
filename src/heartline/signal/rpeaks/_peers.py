"""Peer R-peak detectors (wfdb XQRS and NeuroKit2 methods) behind Heartline's interface.

Each peer gets the cleaning its authors pair with it, so that the comparison is fair.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["NEUROKIT_METHODS", "make_neurokit_detector", "xqrs"]

logger = logging.getLogger(__name__)

#: NeuroKit2 peak-finding method -> the ``nk.ecg_clean`` method NeuroKit pairs with it
#: (``None``: the method works on the raw signal, as in NeuroKit's own ``ecg_peaks`` examples).
NEUROKIT_METHODS: dict[str, str | None] = {
    "neurokit": "neurokit",
    "pantompkins1985": "pantompkins1985",
    "hamilton2002": "hamilton2002",
    "elgendi2010": "elgendi2010",
    "kalidas2017": "kalidas2017",
    "nabian2018": None,
    "rodrigues2021": None,
}


def xqrs(ecg: np.ndarray, *, fs: float) -> np.ndarray:
    """wfdb's XQRS detector (:func:`wfdb.processing.xqrs_detect`, default configuration).

    References
    ----------
    Xie C, McCullagh P, Zheng H, ... wfdb-python ``processing.qrs.XQRS``, after the
    GQRS/XQRS detectors of the PhysioNet WFDB software package.
    """
    from wfdb.processing import xqrs_detect

    return np.asarray(xqrs_detect(ecg, fs=fs, verbose=False), dtype=np.int64)


def make_neurokit_detector(method: str) -> Callable[..., np.ndarray]:
    """A detector running ``nk.ecg_clean`` (paired method) then ``nk.ecg_findpeaks(method)``.

    ``ecg_findpeaks`` is the function ``nk.ecg_peaks`` calls (without artifact correction,
    its default), so the peaks equal those of ``nk.ecg_peaks``.

    References
    ----------
    Makowski D, Pham T, Lau ZJ, et al. NeuroKit2: A Python toolbox for neurophysiological signal
    processing. Behavior Research Methods 53:1689-1696 (2021); the method's own paper is cited
    in NeuroKit's ``ecg_findpeaks`` documentation.
    """
    if method not in NEUROKIT_METHODS:
        raise ValueError(f"unknown NeuroKit method {method!r}; valid: {sorted(NEUROKIT_METHODS)}")
    clean_method = NEUROKIT_METHODS[method]

    def detect(ecg: np.ndarray, *, fs: float) -> np.ndarray:
        import neurokit2 as nk

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = (
                ecg
                if clean_method is None
                else nk.ecg_clean(ecg, sampling_rate=fs, method=clean_method)
            )
            info = nk.ecg_findpeaks(np.asarray(x), sampling_rate=fs, method=method)
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)

    detect.__name__ = f"neurokit_{method}"
    detect.__doc__ = f"NeuroKit2 ``{method}`` peaks after ``ecg_clean(method={clean_method!r})``."
    return detect
