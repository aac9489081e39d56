"""Adapt the shipped beat model to one patient (torch-free: numpy + ONNX Runtime).

Holter and telemetry software let a technician confirm or relabel a patient's beat templates
and then re-analyse with that patient's templates. This module does the same on top of the
shipped hybrid: the encoder of its split form (:meth:`OnnxBeatClassifier.encode
<heartline.edge.runtime.OnnxBeatClassifier.encode>`) turns every beat into a feature vector, the
patient's confirmed beats become class **prototypes** in that space, and a beat's probabilities
are the base model's probabilities combined with a nearest-prototype likelihood (a mixture of
a global and a local expert, Hu et al. 1997):

``log p_c = (1 - w) log p_base,c + w log q_c`` over the adapted classes ``c`` (renormalised
to the base model's probability mass of those classes; classes without enough confirmed beats
keep the base model's probability), with ``q = softmax(-d_c / tau)`` and ``d_c`` the mean
squared standardised distance to the nearest prototype of class ``c``. The mixing weight ``w``
and temperature ``tau`` are chosen per patient on the patient's own confirmed beats (earlier
half fits, later half scores, class-balanced log-loss), never on test beats.

The unsupervised variant (:func:`fit_unsupervised`) needs no labels: it clusters the patient's
beats (k-means), labels each cluster with the base model's mean probability (pseudo-labels) and
builds prototypes from them (one round of self-training).

A fine-tuned head (trained in torch by :mod:`heartline.training.adapt`, exported to ONNX with
inputs ``features`` and ``base_proba``) is run by :class:`OnnxAdaptedHead`.

Artefacts are versioned and tied to their base model by its SHA-256: :func:`load_patient_model`
falls back to the base model, with a :class:`AdaptationNotice` warning, when the file is missing,
corrupt or made for another base model.

References
----------
Hu YH, Palreddy S, Tompkins WJ. A patient-adaptable ECG beat classifier using a mixture of
experts approach. IEEE Trans Biomed Eng 44(9):891-900 (1997).

Snell J, Swersky K, Zemel R. Prototypical networks for few-shot learning. NeurIPS (2017).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.errors import HeartlineWarning
from heartline.signal.segmentation import model_rr_columns

__all__ = [
    "ADAPT_FORMAT",
    "ADAPT_METHODS",
    "AdaptationNotice",
    "AdaptedBeatClassifier",
    "LoadedPatientModel",
    "NotEnoughBeatsError",
    "OnnxAdaptedHead",
    "PatientModelRegistry",
    "PatientPrototypes",
    "apply_batches",
    "artefact_from_bytes",
    "beat_features",
    "check_label_counts",
    "combine_proba",
    "fit_prototypes",
    "fit_unsupervised",
    "kmeans",
    "load_patient_artefact",
    "load_patient_model",
    "patient_scaling",
]

log = logging.getLogger(__name__)

#: Format tag written into every prototype artefact.
ADAPT_FORMAT = "heartline.patient-prototypes/1"
#: Adaptation methods (artefact kinds).
ADAPT_METHODS: tuple[str, ...] = ("prototypes", "unsupervised", "finetune")
_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
_TAUS = (0.05, 0.1, 0.25, 0.5, 1.0)
_EPS = 1e-6
_INF = float("inf")
#: Beats of one call up to which the live prototype step runs per beat in Python floats.
_LIVE_ROWS_MAX = 8
_exp, _pow = math.exp, math.pow


def patient_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of each feature over a patient's beats, for ``z = (f - mean) / scale``.

    The one standardisation of every adapted model (prototypes here, the fine-tuned head of
    :mod:`heartline.training.adapt`): ``scale`` is the standard deviation plus 1e-3, so that a
    constant feature stays finite. Both keep the dtype of ``features``.

    >>> mean, scale = patient_scaling(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> mean.tolist(), scale.tolist()
    ([1.0, 1.0], [1.001, 0.001])
    """
    return features.mean(0), features.std(0) + 1e-3


class AdaptationNotice(HeartlineWarning):
    """An adapted model could not be used; the base model runs instead."""


class NotEnoughBeatsError(ValueError):
    """Too few confirmed beats to adapt; ``missing`` maps class -> beats still needed."""

    def __init__(self, message: str, missing: dict[str, int]) -> None:
        super().__init__(message)
        self.missing = dict(missing)


def check_label_counts(
    labels: np.ndarray,
    *,
    min_per_class: int = 3,
    required: tuple[str, ...] = ("N",),
    classes: tuple[str, ...] = AAMI_CLASSES,
) -> tuple[tuple[str, ...], dict[str, int]]:
    """Classes that have enough confirmed beats, and what the others lack.

    Returns ``(adapted, short)`` where ``short`` maps each class with 1 to ``min_per_class - 1``
    beats to the number of beats still needed. Raises :class:`NotEnoughBeatsError` when a class
    in ``required`` is short or no class has enough beats.

    >>> check_label_counts(np.array([0, 0, 0, 1]))
    (('N',), {'S': 2})
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels: values must be class indices 0..{len(classes) - 1}")
    counts = np.bincount(labels.astype(np.int64), minlength=len(classes))
    adapted = tuple(c for i, c in enumerate(classes) if counts[i] >= min_per_class)
    short = {
        c: int(min_per_class - counts[i])
        for i, c in enumerate(classes)
        if 0 < counts[i] < min_per_class or (c in required and counts[i] < min_per_class)
    }
    missing = {c: n for c, n in short.items() if c in required}
    if missing or not adapted:
        need = missing or {c: min_per_class for c in required}
        what = ", ".join(f"{n} more {c} beat(s)" for c, n in need.items())
        raise NotEnoughBeatsError(
            f"labels: too few confirmed beats to adapt (need {min_per_class} per class): {what}",
            need,
        )
    return adapted, short


def kmeans(
    x: np.ndarray, k: int, *, n_iter: int = 25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (k-means++ seeding, Lloyd iterations): ``(centres (k, d), assignment (n,))``.

    >>> c, a = kmeans(np.array([[0.0], [0.1], [5.0], [5.1]]), 2)
    >>> sorted(np.round(c[:, 0], 2).tolist()), bool(a[0] == a[1] != a[2])
    ([0.05, 5.05], True)
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    k = max(1, min(int(k), n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        tot = d2.sum()
        i = int(rng.choice(n, p=d2 / tot)) if tot > 0 else int(rng.integers(n))
        centres.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = np.stack(centres)
    assign = np.zeros(n, np.int64)
    for _ in range(n_iter):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
        new = dist.argmin(1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            m = assign == j
            if m.any():
                c[j] = x[m].mean(0)
    return c, assign


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None], 0.0)


@dataclass(frozen=True)
class PatientPrototypes:
    """A patient's adaptation of a base model: standardised class prototypes + mixing settings.

    Attributes
    ----------
    patient_id : str
    version : int
        Increases with every adaptation of this patient (1 = first).
    base_sha256 : str
        SHA-256 of the base ``.onnx`` whose encoder made the features.
    method : {"prototypes", "unsupervised"}
    mean, scale : numpy.ndarray
        ``(d,)`` standardisation of the encoder features (from the adaptation beats).
    prototypes : numpy.ndarray
        ``(m, d)`` standardised prototype features.
    prototype_labels : numpy.ndarray
        ``(m,)`` class index of each prototype.
    weight, tau : float
        Mixing weight of the prototype likelihood and its temperature.
    k : int
        Nearest prototypes averaged per class.
    counts : dict
        Confirmed (or pseudo-labelled) beats per class used.
    classes : tuple of str
    created_utc : str
    """

    patient_id: str
    version: int
    base_sha256: str
    method: str
    mean: np.ndarray
    scale: np.ndarray
    prototypes: np.ndarray
    prototype_labels: np.ndarray
    weight: float
    tau: float
    k: int = 1
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    classes: tuple[str, ...] = AAMI_CLASSES
    created_utc: str = ""

    @property
    def adapted_classes(self) -> tuple[str, ...]:
        """Classes that have prototypes (the others keep the base model's probability)."""
        have = set(np.unique(self.prototype_labels).tolist())
        return tuple(c for i, c in enumerate(self.classes) if i in have)

    def proba(self, features: np.ndarray, base_proba: np.ndarray) -> np.ndarray:
        """Adapted probabilities of beats with encoder ``features (n, d)`` and ``base_proba (n, C)``."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.mean.size:
            raise ValueError(
                f"features must have shape (n, {self.mean.size}), got {features.shape}"
            )
        if self.k == 1:  # live: one small batch per device and second
            return self._live_proba(features, np.asarray(base_proba))
        z = (features.astype(np.float64) - self.mean) / self.scale
        dist = _prototype_distance(
            z, self.prototypes, self.prototype_labels, len(self.classes), self.k
        )
        return combine_proba(base_proba, dist, weight=self.weight, tau=self.tau)

    def _live_proba(self, features: np.ndarray, base: np.ndarray) -> np.ndarray:
        """:meth:`proba` for ``k = 1``: per beat in Python floats for the few beats of a live
        call (:meth:`_live_rows`), as arrays for more (:meth:`_live_arrays`); the same numbers
        within rounding (``float64`` throughout)."""
        if self.weight > 0 and 0 < base.shape[0] <= _LIVE_ROWS_MAX:
            out = self._live_rows(features, base)
            if out is not None:
                return out
        return self._live_arrays(features, base)

    def _live_arrays(self, features: np.ndarray, base: np.ndarray) -> np.ndarray:
        """:meth:`proba` for ``k = 1`` from per-patient constants (:attr:`_live_plan`).

        The same probabilities as :func:`combine_proba` of the nearest-prototype distances, in
        about a dozen array operations: the standardisation is folded into the prototype
        matrix, and the squared norm of each beat's own features is left out, because it
        shifts every class's distance of that beat equally and the softmax over classes
        cancels it. A zero mixing weight returns the base probabilities without any distance.
        """
        base = np.asarray(base, dtype=np.float64)
        if self.weight <= 0 or not base.shape[0]:
            return base.copy()
        features = np.asarray(features, dtype=np.float64)
        a, c, present, m, inv_dtau = self._live_plan
        n = features.shape[0]
        # squared distance to every prototype minus |z|^2 (constant per beat), nearest per class
        s = (features @ a + c).reshape(n, present.size, m).min(axis=2)
        logit = s * -inv_dtau
        logit -= logit.max(1, keepdims=True)
        q = np.exp(logit)
        q /= q.sum(1, keepdims=True)
        b = base[:, present]
        mass = b.sum(1, keepdims=True)
        g = (1 - self.weight) * np.log(b / np.maximum(mass, _EPS) + _EPS)
        g += self.weight * np.log(q + _EPS)
        g = np.exp(g - g.max(1, keepdims=True))
        g *= np.maximum(mass, 0.0) / g.sum(1, keepdims=True)
        out = base.copy()
        out[:, present] = g
        out /= out.sum(1, keepdims=True)
        return out

    def _live_rows(self, features: np.ndarray, base: np.ndarray) -> np.ndarray | None:
        """:meth:`_live_arrays` for a few beats: the per-class minima as arrays (three
        operations), the mixture per beat in Python floats (``None`` when a beat's distances or
        base probabilities are not finite, negative or all zero: the array path then gives its
        answer, NaN included).

        A stream worker classifies one or two beats of a patient per call, where each NumPy
        operation costs several microseconds of dispatch (more right after the base model's
        ONNX Runtime call has taken the processor's caches) and the arithmetic almost nothing.
        The geometric mixture ``exp((1 - w) log x + w log y)``, renormalised, is taken as
        ``x ** (1 - w) * y ** w``, which needs no shift by the maximum since ``x`` and ``y``
        lie in ``[1e-6, 1 + 1e-6]``.
        """
        a, c, present, m, inv_dtau = self._live_plan
        idx, w, w1 = self._rows_plan
        s = np.dot(features, a)
        s += c
        out = []
        for d, bi in zip(
            s.reshape(-1, present.size, m).min(2).tolist(), base.tolist(), strict=True
        ):
            lo = min(d)
            total = sum(bi)
            if not (-_INF < sum(d) < _INF and 0.0 < total < _INF and min(bi) >= 0.0):
                return None
            e = [_exp((lo - x) * inv_dtau) for x in d]
            r = 1.0 / sum(e)
            mass = 0.0
            for j in idx:
                mass += bi[j]
            den = 1.0 / (mass if mass > _EPS else _EPS)
            gsum = 0.0
            for j, y in zip(idx, e, strict=True):
                g = _pow(bi[j] * den + _EPS, w1) * _pow(y * r + _EPS, w)
                bi[j] = g
                gsum += g
            k = mass / gsum
            for j in idx:
                bi[j] *= k
            total = 1.0 / sum(bi)
            out.append([x * total for x in bi])
        return np.array(out)

    @functools.cached_property
    def _rows_plan(self) -> tuple[list[int], float, float]:
        """Constants of :meth:`_live_rows` besides :attr:`_live_plan`: ``(adapted classes,
        w, 1 - w)`` as Python numbers."""
        return self._live_plan[2].tolist(), float(self.weight), 1.0 - float(self.weight)

    @functools.cached_property
    def _live_plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
        """Per-patient constants of :meth:`_live_arrays` and :meth:`_live_rows`, computed once
        per artefact.

        With ``z = (f - mean) / scale`` and a prototype ``p``: ``|z - p|^2 = |z|^2 + f . a + c``
        with ``a = -2 p / scale`` and ``c = |p|^2 + 2 (mean / scale) . p``. Prototypes are grouped
        by class and each group is padded to the largest one by repeating its first prototype
        (a repeat does not change a minimum), so one reshape gives the per-class minima.
        Returns ``(a (d, C_a * m), c (C_a * m,), adapted classes (C_a,), m, 1 / (d tau))``.
        """
        labels = np.asarray(self.prototype_labels)
        present = np.unique(labels).astype(np.int64)
        groups = [np.flatnonzero(labels == k) for k in present]
        m = max(g.size for g in groups)
        order = np.concatenate([np.r_[g, np.repeat(g[:1], m - g.size)] for g in groups])
        protos = np.asarray(self.prototypes, dtype=np.float64)[order]
        a = np.ascontiguousarray((-2.0 * protos / self.scale).T)
        c = (protos**2).sum(1) + 2.0 * protos @ (self.mean / self.scale)
        inv_dtau = 1.0 / (self.mean.size * max(self.tau, _EPS))
        return a, c, present, m, inv_dtau

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The artefact as ``.npz`` bytes (arrays + a JSON header with a checksum)."""
        arrays = {
            "mean": self.mean.astype(np.float32),
            "scale": self.scale.astype(np.float32),
            "prototypes": self.prototypes.astype(np.float32),
            "prototype_labels": self.prototype_labels.astype(np.int64),
        }
        header = {
            "format": ADAPT_FORMAT,
            "patient_id": self.patient_id,
            "version": int(self.version),
            "base_sha256": self.base_sha256,
            "method": self.method,
            "weight": float(self.weight),
            "tau": float(self.tau),
            "k": int(self.k),
            "counts": {k: int(v) for k, v in self.counts.items()},
            "classes": list(self.classes),
            "created_utc": self.created_utc,
            "arrays_sha256": _arrays_digest(arrays),
        }
        buf = io.BytesIO()
        np.savez(buf, header=np.array(json.dumps(header, sort_keys=True)), **arrays)
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_bytes` to ``path`` (``.npz``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> PatientPrototypes:
        """Read :meth:`to_bytes`; ``ValueError`` naming the problem when it is not a valid artefact."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                arrays = {
                    k: np.array(z[k]) for k in ("mean", "scale", "prototypes", "prototype_labels")
                }
        except Exception as exc:
            raise ValueError(
                f"not a patient prototype artefact ({type(exc).__name__}: {exc})"
            ) from None
        if header.get("format") != ADAPT_FORMAT:
            raise ValueError(f"format {header.get('format')!r}, expected {ADAPT_FORMAT!r}")
        if header.get("arrays_sha256") != _arrays_digest(arrays):
            raise ValueError("checksum of the arrays does not match (corrupt file)")
        d = arrays["mean"].size
        if arrays["scale"].shape != (d,) or arrays["prototypes"].shape[1:] != (d,):
            raise ValueError("array shapes are inconsistent")
        return cls(
            patient_id=str(header["patient_id"]),
            version=int(header["version"]),
            base_sha256=str(header["base_sha256"]),
            method=str(header["method"]),
            mean=arrays["mean"].astype(np.float64),
            scale=arrays["scale"].astype(np.float64),
            prototypes=arrays["prototypes"].astype(np.float64),
            prototype_labels=arrays["prototype_labels"],
            weight=float(header["weight"]),
            tau=float(header["tau"]),
            k=int(header["k"]),
            counts=dict(header.get("counts", {})),
            classes=tuple(header.get("classes", AAMI_CLASSES)),
            created_utc=str(header.get("created_utc", "")),
        )

    @classmethod
    def load(cls, path: str | Path) -> PatientPrototypes:
        return cls.from_bytes(Path(path).read_bytes())


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def _prototype_distance(
    z: np.ndarray, protos: np.ndarray, labels: np.ndarray, n_classes: int, k: int
) -> np.ndarray:
    """``(n, C)`` mean squared distance (per dimension) to the ``k`` nearest prototypes of each
    class; ``inf`` for classes without prototypes."""
    out = np.full((z.shape[0], n_classes), np.inf)
    if not z.shape[0]:
        return out
    d = z.shape[1]
    for c in np.unique(labels):
        dd = _sqdist(z, protos[labels == c]) / d
        kk = min(k, dd.shape[1])
        out[:, int(c)] = np.partition(dd, kk - 1, axis=1)[:, :kk].mean(1)
    return out


def combine_proba(
    base_proba: np.ndarray, distance: np.ndarray, *, weight: float, tau: float
) -> np.ndarray:
    """Geometric mixture of the base probabilities and the prototype likelihood.

    Classes with infinite distance (no prototypes) keep their base probability; the adapted
    classes share the base model's mass of those classes.

    >>> p = np.array([[0.6, 0.4, 0, 0, 0]]); d = np.array([[4.0, 0.0] + [np.inf] * 3])
    >>> np.round(combine_proba(p, d, weight=1.0, tau=1.0), 3).tolist()
    [[0.018, 0.982, 0.0, 0.0, 0.0]]
    """
    base = np.asarray(base_proba, dtype=np.float64)
    if base.shape != distance.shape:
        raise ValueError(f"base_proba {base.shape} and distance {distance.shape} differ")
    out = base.copy()
    adapted = np.isfinite(distance[0]) if distance.shape[0] else np.zeros(base.shape[1], bool)
    if weight <= 0 or adapted.sum() == 0 or not base.shape[0]:
        return out
    logit = -distance[:, adapted] / max(tau, _EPS)
    logit -= logit.max(1, keepdims=True)
    q = np.exp(logit)
    q /= q.sum(1, keepdims=True)
    b = base[:, adapted]
    mass = b.sum(1, keepdims=True)
    bn = b / np.maximum(mass, _EPS)
    g = (1 - weight) * np.log(bn + _EPS) + weight * np.log(q + _EPS)
    g = np.exp(g - g.max(1, keepdims=True))
    g /= g.sum(1, keepdims=True)
    # a beat whose base mass is all on non-adapted classes keeps the base probabilities
    out[:, adapted] = g * np.maximum(mass, 0.0)
    return out / out.sum(1, keepdims=True)


def _reduce(
    z: np.ndarray, labels: np.ndarray, max_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_per_class`` prototypes per class (k-means centres where there are more)."""
    ps, ls = [], []
    for c in np.unique(labels):
        zc = z[labels == c]
        if zc.shape[0] > max_per_class:
            zc, _ = kmeans(zc, max_per_class, seed=seed)
        ps.append(zc)
        ls.append(np.full(zc.shape[0], c, np.int64))
    return np.concatenate(ps), np.concatenate(ls)


def _balanced_nll(p: np.ndarray, y: np.ndarray) -> float:
    vals = [float(-np.log(p[y == c, c] + _EPS).mean()) for c in np.unique(y)]
    return float(np.mean(vals))


def _select(
    z: np.ndarray,
    y: np.ndarray,
    base: np.ndarray,
    n_classes: int,
    k: int,
    max_per_class: int,
    seed: int,
) -> tuple[float, float]:
    """Choose ``(weight, tau)`` on the patient's own confirmed beats: the earlier half builds the
    prototypes, the later half scores them (class-balanced log-loss; ties keep the smaller weight)."""
    n = z.shape[0]
    half = n // 2
    fit_y, val_y = y[:half], y[half:]
    shared = set(np.unique(fit_y).tolist()) & set(np.unique(val_y).tolist())
    if half < 4 or len(shared) < 2:
        return 0.5, 0.5  # nothing to choose from: an even mixture
    protos, plab = _reduce(z[:half], fit_y, max_per_class, seed)
    dist = _prototype_distance(z[half:], protos, plab, n_classes, k)
    best = (np.inf, 0.0, 0.5)
    for w in _WEIGHTS:
        for t in _TAUS:
            loss = _balanced_nll(combine_proba(base[half:], dist, weight=w, tau=t), val_y)
            if loss < best[0] - 1e-9:
                best = (loss, w, t)
    return best[1], best[2]


def fit_prototypes(
    features: np.ndarray,
    labels: np.ndarray,
    base_proba: np.ndarray,
    *,
    patient_id: str,
    base_sha256: str,
    version: int = 1,
    method: str = "prototypes",
    min_per_class: int = 3,
    required: tuple[str, ...] = ("N",),
    max_per_class: int = 32,
    k: int = 1,
    weight: float | None = None,
    tau: float | None = None,
    seed: int = 0,
    classes: tuple[str, ...] = AAMI_CLASSES,
) -> PatientPrototypes:
    """Prototypes of one patient from confirmed beats (time order) and their base probabilities.

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` encoder features of the confirmed beats, oldest first.
    labels : numpy.ndarray
        ``(n,)`` confirmed class index of each beat.
    base_proba : numpy.ndarray
        ``(n, C)`` the base model's probabilities of those beats (to choose the mixture).
    min_per_class : int
        Beats a class needs to get prototypes; fewer keep the base model for that class.
    required : tuple of str
        Classes that must have ``min_per_class`` beats (:class:`NotEnoughBeatsError` otherwise).
    weight, tau : float, optional
        Fix the mixture instead of choosing it on the confirmed beats.

    Raises
    ------
    NotEnoughBeatsError
        A required class (or every class) has too few beats; ``.missing`` says how many more.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    base_proba = np.asarray(base_proba, dtype=np.float64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"features (n, d) and labels (n,) must match, got {features.shape} and {labels.shape}"
        )
    if base_proba.shape != (features.shape[0], len(classes)):
        raise ValueError(
            f"base_proba must have shape ({features.shape[0]}, {len(classes)}), got {base_proba.shape}"
        )
    if method not in ADAPT_METHODS[:2]:
        raise ValueError(f"method must be one of {ADAPT_METHODS[:2]}, got {method!r}")
    adapted, _short = check_label_counts(
        labels, min_per_class=min_per_class, required=required, classes=classes
    )
    keep = np.isin(labels, [classes.index(c) for c in adapted])
    mean, scale = patient_scaling(features)
    z = (features - mean) / scale
    if weight is None or tau is None:
        w_sel, t_sel = _select(
            z[keep], labels[keep], base_proba[keep], len(classes), k, max_per_class, seed
        )
        weight = w_sel if weight is None else weight
        tau = t_sel if tau is None else tau
    protos, plab = _reduce(z[keep], labels[keep], max_per_class, seed)
    counts = {c: int(np.count_nonzero(labels == i)) for i, c in enumerate(classes)}
    return PatientPrototypes(
        patient_id=str(patient_id),
        version=int(version),
        base_sha256=base_sha256,
        method=method,
        mean=mean,
        scale=scale,
        prototypes=protos,
        prototype_labels=plab,
        weight=float(weight),
        tau=float(tau),
        k=int(k),
        counts=counts,
        classes=tuple(classes),
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def fit_unsupervised(
    features: np.ndarray,
    base_proba: np.ndarray,
    *,
    patient_id: str,
    base_sha256: str,
    version: int = 1,
    n_clusters: int = 24,
    weight: float = 0.5,
    tau: float = 0.5,
    seed: int = 0,
    classes: tuple[str, ...] = AAMI_CLASSES,
) -> PatientPrototypes:
    """Prototypes without labels: cluster the patient's beats, pseudo-label each cluster with the
    base model's mean probability, build prototypes (one round of self-training).

    The mixture is fixed (``weight``, ``tau``): without labels nothing can choose it.
    """
    features = np.asarray(features, dtype=np.float64)
    base_proba = np.asarray(base_proba, dtype=np.float64)
    if features.ndim != 2 or base_proba.shape != (features.shape[0], len(classes)):
        raise ValueError(
            f"features (n, d) and base_proba (n, {len(classes)}) must match, got "
            f"{features.shape} and {base_proba.shape}"
        )
    if features.shape[0] < 2:
        raise NotEnoughBeatsError("features: need at least 2 beats to cluster", {"N": 2})
    mean, scale = patient_scaling(features)
    z = (features - mean) / scale
    _, assign = kmeans(z, min(n_clusters, features.shape[0]), seed=seed)
    pseudo = np.zeros(features.shape[0], np.int64)
    for j in np.unique(assign):
        m = assign == j
        pseudo[m] = int(base_proba[m].mean(0).argmax())
    protos, plab = _reduce(z, pseudo, 32, seed)
    return PatientPrototypes(
        patient_id=str(patient_id),
        version=int(version),
        base_sha256=base_sha256,
        method="unsupervised",
        mean=mean,
        scale=scale,
        prototypes=protos,
        prototype_labels=plab,
        weight=float(weight),
        tau=float(tau),
        k=1,
        counts={c: int(np.count_nonzero(pseudo == i)) for i, c in enumerate(classes)},
        classes=tuple(classes),
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def beat_features(
    model: OnnxBeatClassifier, beats: BeatSet, *, batch_size: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, d), base_proba (n, C))`` of every beat (split form, each beat encoded once)."""
    if not model.has_split:
        raise ValueError(f"model: {model.path.name} has no split form (encoder) to adapt with")
    rr = model_rr_columns(beats.rr, model.n_rr)
    feats = [
        model.encode(beats.windows[s : s + batch_size], rr[s : s + batch_size])
        for s in range(0, len(beats), batch_size)
    ]
    f = np.concatenate(feats) if feats else np.zeros((0, model.feature_dim or 0), np.float32)
    ctx = beats.context_index(model.context_k)
    parts = [
        model.predict_proba_features(f[ctx[s : s + batch_size]])
        for s in range(0, len(beats), batch_size)
    ]
    p = np.concatenate(parts) if parts else np.zeros((0, len(model.classes)), np.float32)
    return f, p


class OnnxAdaptedHead:
    """A fine-tuned per-patient head (ONNX: ``features (n, d)``, ``base_proba (n, C)`` ->
    ``probabilities``), written by :func:`heartline.training.adapt.export_head`."""

    def __init__(self, path: str | Path | None = None, *, data: bytes | None = None) -> None:
        import onnxruntime as ort

        if (path is None) == (data is None):
            raise ValueError("give exactly one of path and data")
        self.path = Path(path) if path is not None else Path("adapted-head.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            src = data if data is not None else str(self.path)
            self.session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"{self.path.name}: not a readable ONNX head ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        names = sorted(i.name for i in self.session.get_inputs())
        if names != ["base_proba", "features"] or meta.get("heartline.adapt_format") != "head/1":
            raise ValueError(f"{self.path.name}: not a heartline adapted head")
        self.base_sha256 = meta.get("heartline.base_sha256", "")
        self.patient_id = meta.get("heartline.patient_id", "")
        self.version = int(meta.get("heartline.version", "0"))
        self.method = "finetune"

    def proba(self, features: np.ndarray, base_proba: np.ndarray) -> np.ndarray:
        out = self.session.run(
            None,
            {
                "features": np.ascontiguousarray(features, dtype=np.float32),
                "base_proba": np.ascontiguousarray(base_proba, dtype=np.float32),
            },
        )[0]
        return np.asarray(out, dtype=np.float64)


class AdaptedBeatClassifier:
    """The base ONNX model with one patient's adaptation applied (``predict_proba(beats)``)."""

    def __init__(
        self, base: OnnxBeatClassifier, adaptation: PatientPrototypes | OnnxAdaptedHead
    ) -> None:
        if not base.has_split:
            raise ValueError(f"base: {base.path.name} has no split form (encoder) to adapt with")
        self.base = base
        self.adaptation = adaptation
        self.version = int(adaptation.version)
        self.name = f"{base.name}+{adaptation.method}@{adaptation.patient_id}/v{self.version}"
        #: Whether the adaptation returns the base probabilities unchanged (a prototype
        #: artefact whose mixture weight was chosen as 0): the live hook then skips it.
        self.passthrough = isinstance(adaptation, PatientPrototypes) and adaptation.weight <= 0

    def proba_from(self, features: np.ndarray, base_proba: np.ndarray) -> np.ndarray:
        """Adapted probabilities from already computed features and base probabilities."""
        return self.adaptation.proba(features, base_proba)

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        f, p = beat_features(self.base, beats)
        return self.proba_from(f, p)


@dataclass(frozen=True)
class LoadedPatientModel:
    """What :func:`load_patient_model` returns: the model to run and its version label.

    ``adapted`` is ``None`` when the base model runs; ``notice`` says why when a file was given
    but could not be used.
    """

    base: OnnxBeatClassifier
    adapted: AdaptedBeatClassifier | None
    model_version: str
    notice: str | None = None

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        return (self.adapted or self.base).predict_proba(beats)


def base_version(base: OnnxBeatClassifier, sha256: str | None = None) -> str:
    """Version label of the base model: ``<name>@<sha256[:12]>``."""
    return f"{base.name}@{(sha256 or file_sha256(base.path))[:12]}"


def load_patient_model(
    base: OnnxBeatClassifier, path: str | Path | None, *, base_sha256: str | None = None
) -> LoadedPatientModel:
    """The adapted model stored at ``path`` (``.npz`` prototypes or ``.onnx`` head), or the base
    model with a notice (:class:`AdaptationNotice`, logged) when the file is missing, corrupt or
    was made for another base model (SHA-256 differs)."""
    sha = base_sha256 or file_sha256(base.path)
    if path is None:
        return LoadedPatientModel(base, None, base_version(base, sha))
    path = Path(path)
    try:
        if not path.is_file():
            raise ValueError("file not found")
        art: PatientPrototypes | OnnxAdaptedHead
        if path.suffix == ".onnx":
            art = OnnxAdaptedHead(path)
        else:
            art = PatientPrototypes.load(path)
        if art.base_sha256 != sha:
            raise ValueError(
                f"made for base model {art.base_sha256[:12] or '?'}, this base is {sha[:12]}"
            )
        adapted = AdaptedBeatClassifier(base, art)
    except (ValueError, OSError) as exc:
        notice = f"adapted model {path.name} not used ({exc}); running the base model"
        log.warning(notice)
        warnings.warn(notice, AdaptationNotice, stacklevel=2)
        return LoadedPatientModel(base, None, base_version(base, sha), notice)
    version = f"{base_version(base, sha)}+{art.method}:{art.patient_id}/v{art.version}"
    return LoadedPatientModel(base, adapted, version)


def artefact_from_bytes(data: bytes, *, method: str) -> PatientPrototypes | OnnxAdaptedHead:
    """An adaptation artefact from stored bytes (``method`` ``"finetune"``: ONNX head, else
    prototypes); ``ValueError`` when the bytes are not a valid artefact."""
    if method == "finetune":
        return OnnxAdaptedHead(data=data)
    return PatientPrototypes.from_bytes(data)


def load_patient_artefact(
    base: OnnxBeatClassifier, data: bytes | None, *, method: str, base_sha256: str | None = None
) -> LoadedPatientModel:
    """Like :func:`load_patient_model` for stored bytes (``None``: the base model)."""
    sha = base_sha256 or file_sha256(base.path)
    if data is None:
        return LoadedPatientModel(base, None, base_version(base, sha))
    try:
        art = artefact_from_bytes(data, method=method)
        if art.base_sha256 != sha:
            raise ValueError(
                f"made for base model {art.base_sha256[:12] or '?'}, this base is {sha[:12]}"
            )
        adapted = AdaptedBeatClassifier(base, art)
    except ValueError as exc:
        notice = f"stored adapted model not used ({exc}); running the base model"
        log.warning(notice)
        warnings.warn(notice, AdaptationNotice, stacklevel=2)
        return LoadedPatientModel(base, None, base_version(base, sha), notice)
    version = f"{base_version(base, sha)}+{art.method}:{art.patient_id}/v{art.version}"
    return LoadedPatientModel(base, adapted, version)


#: What a registry loader returns for a patient: ``(version, method, artefact bytes)`` of the
#: active adapted model, or ``None`` (base model).
StoredArtefact = tuple[int, str, bytes]


class PatientModelRegistry:
    """Per-patient models for a stream processor: the active adapted model of each patient, or
    the base model (rollback, none stored, or a stored file that is corrupt / for another base,
    with a notice), and the version string to store on every beat.

    Parameters
    ----------
    base : OnnxBeatClassifier
        The shipped model (with its split form).
    loader : callable
        ``loader(patient_id) -> (version, method, bytes) | None`` (e.g. from the database:
        :func:`heartline.storage.adaptation_repository.active_model`).
    refresh_s : float
        How long a patient's entry is trusted before ``loader`` is asked again (an adaptation or
        rollback takes effect within this time).
    clock : callable
        Monotonic seconds (tests pass a fake).

    The processor calls :meth:`apply` once per batch of a patient's beats, after the base model:
    ``probs, version = registry.apply(patient_id, windows, rr, base_probs)`` with ``windows``
    ``(n, n_leads, window_len)`` and ``rr`` ``(n, n_rr)`` the current beats' model inputs.
    """

    def __init__(
        self,
        base: OnnxBeatClassifier,
        loader: Any,
        *,
        refresh_s: float = 30.0,
        clock: Any = None,
    ) -> None:
        import time as _time

        self.base = base
        self.base_sha256 = file_sha256(base.path)
        self.loader = loader
        self.refresh_s = float(refresh_s)
        self._clock = clock or _time.monotonic
        self._entries: dict[str, tuple[float, int | None, LoadedPatientModel]] = {}
        #: The latest notices (an adapted model not used, and why), newest last.
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        self._other_versions: dict[str, str | None] = {}

    def get(self, patient_id: str) -> LoadedPatientModel:
        """The patient's model (cached for ``refresh_s``; reloaded when the version changes)."""
        now = self._clock()
        hit = self._entries.get(patient_id)
        if hit is not None and now - hit[0] < self.refresh_s:
            return hit[2]
        try:
            stored = self.loader(patient_id)
        except Exception as exc:
            notice = (
                f"patient {patient_id}: adapted model not loaded ({exc}); running the base model"
            )
            log.warning(notice)
            self.notices.append(notice)
            stored = None
        version = None if stored is None else int(stored[0])
        if hit is not None and hit[1] == version:
            loaded = hit[2]
        elif stored is None:
            loaded = load_patient_artefact(self.base, None, method="", base_sha256=self.base_sha256)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AdaptationNotice)
                loaded = load_patient_artefact(
                    self.base, stored[2], method=stored[1], base_sha256=self.base_sha256
                )
            if loaded.notice:
                self.notices.append(f"patient {patient_id}: {loaded.notice}")
        self._entries[patient_id] = (now, version, loaded)
        return loaded

    @property
    def base_version(self) -> str:
        """Version label of the base model (stored on beats the base model labels)."""
        return base_version(self.base, self.base_sha256)

    def is_base(self, model: Any) -> bool:
        """Whether ``model`` is this registry's base model (the same object or the same file)."""
        if model is self.base:
            return True
        path = getattr(model, "path", None)
        try:
            return path is not None and Path(path).resolve() == Path(self.base.path).resolve()
        except OSError:
            return False

    def version_of_model(self, model: Any) -> str | None:
        """Version label of another beat model (``None`` when it has no file)."""
        path = getattr(model, "path", None)
        if path is None:
            return None
        key = str(path)
        if key not in self._other_versions:
            try:
                name = getattr(model, "name", None) or Path(path).stem
                self._other_versions[key] = f"{name}@{file_sha256(path)[:12]}"
            except OSError:
                self._other_versions[key] = None
        return self._other_versions[key]

    def invalidate(self, patient_id: str | None = None) -> None:
        """Forget one patient's (or every) cached entry."""
        if patient_id is None:
            self._entries.clear()
        else:
            self._entries.pop(patient_id, None)

    def apply(
        self,
        patient_id: str,
        windows: np.ndarray,
        rr: np.ndarray,
        base_proba: np.ndarray,
        *,
        features: np.ndarray | None = None,
    ) -> tuple[np.ndarray, str]:
        """``(probabilities, model_version)`` of a patient's beats given the base probabilities.

        ``features``: the beats' encoder features when the caller has them (the stream's
        feature cache, filled by the base model's split-form call); otherwise the beats are
        encoded again from ``windows`` and ``rr``.
        """
        loaded = self.get(patient_id)
        if loaded.adapted is None or not len(base_proba):
            return np.asarray(base_proba), loaded.model_version
        if features is None:
            features = self.base.encode(windows, model_rr_columns(np.asarray(rr), self.base.n_rr))
        return loaded.adapted.proba_from(features, base_proba), loaded.model_version


def apply_batches(
    registry: PatientModelRegistry | None,
    patients_batches: Any,
    probs: Any,
    *,
    models: Any = None,
) -> tuple[list[np.ndarray], list[str | None]]:
    """The stream processor's hook: adapted probabilities and model version of each batch.

    ``patients_batches`` is a sequence of ``(patient_id, batch)`` with ``batch`` a
    :class:`~heartline.pipeline.beat_pipeline.BeatBatch` (``windows (n, k + 1, leads, len)``,
    ``rr (n, k + 1, n_rr)``) and ``probs`` the base probabilities of each batch. ``models``
    (optional) names the beat model that classified each batch: batches of another model than
    the registry's base (e.g. the single-lead model of a one-lead wearable) keep their
    probabilities and get that model's version. A batch whose adaptation fails keeps the base
    probabilities and version (logged, and a notice in ``registry.notices``); the others are
    not affected. The current beats' encoder features come from the stream's feature cache
    when the base model's call left them there (no second encoder call), else they are encoded
    again. An adaptation that changes nothing (a prototype artefact whose mixture weight was
    chosen as 0) is skipped: the beats keep the base probabilities and get the adapted
    version. Without a registry the probabilities come back unchanged with version ``None``.
    """
    if registry is None:
        return list(probs), [None] * len(probs)
    if models is None:
        models = [None] * len(probs)
    out_p: list[np.ndarray] = []
    out_v: list[str | None] = []
    base = registry.base
    for (patient_id, batch), p, m in zip(patients_batches, probs, models, strict=True):
        if m is not None and m is not base and not registry.is_base(m):
            out_p.append(p)
            out_v.append(registry.version_of_model(m))
            continue
        try:
            loaded = registry.get(patient_id)
            adapted = loaded.adapted
            if adapted is None or adapted.passthrough or not len(p):  # nothing to compute
                out_p.append(p)
                out_v.append(loaded.model_version)
                continue
            features = _cached_features(base, batch)
            if features is None:
                rr = model_rr_columns(np.asarray(batch.rr[:, -1]), base.n_rr)
                features = base.encode(batch.windows[:, -1], rr)
            # the model ``registry.get`` just gave: no second lookup per batch
            q, version = adapted.proba_from(features, p), loaded.model_version
        except Exception as exc:  # this patient's beats keep the base model's probabilities
            notice = (
                f"patient {patient_id}: adapted model failed ({type(exc).__name__}: {exc}); "
                "running the base model"
            )
            log.warning(notice)
            registry.notices.append(notice)
            q, version = p, registry.base_version
        out_p.append(q)
        out_v.append(version)
    return out_p, out_v


def _cached_features(model: Any, batch: Any) -> np.ndarray | None:
    """The current beats' encoder features from the stream's feature cache (what the base
    model's split-form classification stored there), or ``None`` when any is not held."""
    context = getattr(batch, "context", None)
    if context is None:
        return None
    feats, found = context.cache.get(model=model, keys=context.keys[:, -1])
    return feats if len(found) and found.all() else None


def describe(art: PatientPrototypes) -> dict[str, Any]:
    """JSON-friendly summary of a prototype artefact (for APIs and reports)."""
    return {
        "patient_id": art.patient_id,
        "version": art.version,
        "method": art.method,
        "base_sha256": art.base_sha256,
        "weight": art.weight,
        "tau": art.tau,
        "counts": dict(art.counts),
        "adapted_classes": list(art.adapted_classes),
        "n_prototypes": int(art.prototypes.shape[0]),
        "created_utc": art.created_utc,
    }
