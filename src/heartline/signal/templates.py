"""Patient-adaptive morphology: compare each beat with the patient's own running template.

Inter-patient beat classifiers fail mostly because morphology differs between patients: the
wide QRS of a bundle branch block looks ventricular to a model trained on other people, and a
normal beat of one patient can look like a supraventricular ectopic beat of another. A standard
remedy is to describe each beat *relative to the patient's own dominant beat* rather than in
absolute terms (de Chazal & Reilly 2006; Llamedo & Martínez 2011; Mar et al. 2011): a ventricular
beat is one that differs from this patient's usual beat, whatever the usual beat looks like.

Here the dominant-beat template of beat ``i`` is the element-wise median of the previous
``n_template`` beat windows of the same record (beat ``i`` itself excluded). It needs no labels
and no future beats, so it can run live: :func:`template_features` computes every beat of a
batch of records at once, :class:`TemplateTracker` gives the same rows beat by beat. The median
keeps the template on the dominant morphology as long as fewer than half of the recent beats are
ectopic (in ventricular bigeminy it becomes a blend; see the caveat in :func:`template_features`).

Features, per lead (names in :attr:`TemplateFeatures.names`, ``lead`` = window channel):

* ``tpl_corr`` / ``tpl_corr_qrs`` / ``tpl_corr_p``: Pearson correlation of beat and template over
  the whole window, the QRS region and the P-wave region (regions in :data:`QRS_REGION_S` and
  :data:`P_REGION_S`, seconds from the R-peak);
* ``tpl_nrmsd`` / ``tpl_nrmsd_qrs`` / ``tpl_nrmsd_p``: root-mean-square of ``beat - template``
  over the same regions, divided by the RMS of the whole template;
* ``tpl_qrs_width_logratio``: log of the beat's QRS width (:func:`qrs_width_ms`) over the
  template's;
* ``tpl_qrs_energy_logratio`` / ``tpl_qrs_amp_logratio``: log of the QRS-region energy and
  peak-to-peak amplitude of the beat over the template's;

then one column for the whole beat: ``tpl_fill``, the number of beats in the template over
``n_template`` (0 for the first beat of a record, 1 once the history is full).

References
----------
de Chazal P, Reilly RB. A patient-adapting heartbeat classifier using ECG morphology and
heartbeat interval features. IEEE Trans Biomed Eng 53(12):2535-2543 (2006).

Llamedo M, Martínez JP. Heartbeat classification using feature selection driven by database
generalization criteria. IEEE Trans Biomed Eng 58(3):616-625 (2011).

Mar T, Zaunseder S, Martínez JP, Llamedo M, Poll R. Optimization of ECG classification by means
of feature selection. IEEE Trans Biomed Eng 58(8):2168-2177 (2011).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "P_REGION_S",
    "QRS_REGION_S",
    "TEMPLATE_LEAD_FEATURES",
    "TemplateFeatures",
    "TemplateTracker",
    "qrs_width_ms",
    "template_feature_names",
    "template_features",
]

#: QRS region, seconds from the R-peak (half-open): wide enough for a 200 ms ventricular QRS
#: whose annotated R-peak is not at its centre.
QRS_REGION_S: tuple[float, float] = (-0.12, 0.18)
#: P-wave region, seconds from the R-peak (half-open; clipped to the window start).
P_REGION_S: tuple[float, float] = (-0.25, -0.08)
#: Per-lead feature names, in column order (each gets a ``_l{lead}`` suffix).
TEMPLATE_LEAD_FEATURES: tuple[str, ...] = (
    "tpl_corr",
    "tpl_corr_qrs",
    "tpl_corr_p",
    "tpl_nrmsd",
    "tpl_nrmsd_qrs",
    "tpl_nrmsd_p",
    "tpl_qrs_width_logratio",
    "tpl_qrs_energy_logratio",
    "tpl_qrs_amp_logratio",
)
#: Fractions of the QRS-region absolute slope between which the QRS width is measured.
_WIDTH_QUANTILES = (0.1, 0.9)
#: Beats per vectorised chunk in :func:`template_features` (bounds the memory of the median:
#: ``_CHUNK_BEATS * n_leads * window_len * n_template`` float64 values, 67 MB by default).
_CHUNK_BEATS = 1024


def template_feature_names(n_leads: int) -> tuple[str, ...]:
    """Column names of :func:`template_features` for ``n_leads`` window channels.

    >>> template_feature_names(1)[:2], template_feature_names(2)[-1], len(template_feature_names(2))
    (('tpl_corr_l0', 'tpl_corr_qrs_l0'), 'tpl_fill', 19)
    """
    if int(n_leads) < 1:
        raise ValueError(f"n_leads must be >= 1, got {n_leads}")
    per_lead = (f"{f}_l{lead}" for lead in range(int(n_leads)) for f in TEMPLATE_LEAD_FEATURES)
    return (*per_lead, "tpl_fill")


@dataclass(frozen=True)
class TemplateFeatures:
    """Template-relative morphology features of a sequence of beats.

    Attributes
    ----------
    values : numpy.ndarray
        float64, ``(n_beats, len(names))``; always finite (non-finite windows are refused).
    names : tuple of str
        Column names, :func:`template_feature_names`: the nine
        :data:`TEMPLATE_LEAD_FEATURES` for lead 0, then for lead 1, ..., then ``tpl_fill``.
    n_template : int
        Beats in a full template.
    """

    values: np.ndarray
    names: tuple[str, ...]
    n_template: int


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Geometry:
    dt_s: float
    qrs: slice
    p: slice


def _geometry(window_len: int, pre_s: float, post_s: float) -> _Geometry:
    if pre_s < 0 or post_s <= 0:
        raise ValueError(f"need pre_s >= 0 and post_s > 0 seconds, got {pre_s}, {post_s}")
    if int(window_len) < 8:
        raise ValueError(f"window_len must be >= 8 points, got {window_len}")
    n = int(window_len)
    dt = (pre_s + post_s) / n  # point k lies at -pre_s + k dt (as in segment_beats)

    def region(lo_s: float, hi_s: float) -> slice:
        a = min(max(int(np.ceil((lo_s + pre_s) / dt - 1e-9)), 0), n)
        b = min(max(int(np.ceil((hi_s + pre_s) / dt - 1e-9)), 0), n)
        if b - a < 3:
            raise ValueError(
                f"the window [-{pre_s}, {post_s}) s holds fewer than 3 points of the region "
                f"[{lo_s}, {hi_s}) s"
            )
        return slice(a, b)

    return _Geometry(dt, region(*QRS_REGION_S), region(*P_REGION_S))


def _check_windows(windows: object) -> np.ndarray:
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim == 2:
        w = w[:, None, :]
    if w.ndim != 3:
        raise ValueError(
            "windows must be (n_beats, window_len) or (n_beats, n_leads, window_len), "
            f"got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("windows hold NaN/inf values; impute or drop those beats first")
    return w


def _median_last(x: np.ndarray) -> np.ndarray:
    """Median along the last axis: the middle value, or the mean of the two middle values.

    The same numbers as :func:`numpy.median` for finite input, about 3x faster here because a
    full sort of a short contiguous axis uses NumPy's SIMD sort; batch and streaming code both
    use it, so their templates agree bit for bit.
    """
    s = np.sort(x, axis=-1)
    k = s.shape[-1]
    h = k // 2
    return s[..., h] if k % 2 else (s[..., h - 1] + s[..., h]) / 2


def _width_s(x: np.ndarray, geom: _Geometry) -> np.ndarray:
    """QRS width (s) of ``x[..., window_len]``: span holding the central 80 % of the absolute
    slope in the QRS region (the whole region if it is flat)."""
    slope = np.abs(np.diff(x[..., geom.qrs], axis=-1))
    cum = np.cumsum(slope, axis=-1)
    total = cum[..., -1:]
    flat = total[..., 0] <= 0
    frac = cum / np.where(total > 0, total, 1.0)
    lo = np.argmax(frac >= _WIDTH_QUANTILES[0], axis=-1)
    hi = np.argmax(frac >= _WIDTH_QUANTILES[1], axis=-1)
    width = (hi - lo + 1).astype(np.float64)
    width[flat] = slope.shape[-1]
    return width * geom.dt_s


def qrs_width_ms(windows: np.ndarray, *, pre_s: float = 0.25, post_s: float = 0.45) -> np.ndarray:
    """QRS width of each beat window, ms: the span holding the central 80 % of the absolute slope.

    Within the QRS region (:data:`QRS_REGION_S`), the cumulative absolute first difference is
    computed and the width is the time from its 10 % to its 90 % point, one grid step included.
    It is a crude, robust proxy of the QRS duration (no onset/offset delineation), quantised to
    the window's grid step (``(pre_s + post_s) / window_len``, 5.5 ms for 128 points over 0.7 s);
    ventricular and bundle-branch-block beats come out wider than narrow supraventricular ones.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_beats, window_len)`` or ``(n_beats, n_leads, window_len)`` windows as cut by
        :func:`heartline.signal.segmentation.segment_beats`.
    pre_s, post_s : float
        Window extent before and after the R-peak, seconds (the values the windows were cut with).

    Returns
    -------
    numpy.ndarray
        float64, ``(n_beats, n_leads)`` (``n_leads`` = 1 for 2-D input).

    >>> import numpy as np
    >>> t = -0.25 + np.arange(128) * 0.7 / 128
    >>> narrow, wide = np.exp(-(t / 0.015) ** 2), np.exp(-(t / 0.05) ** 2)
    >>> w = qrs_width_ms(np.stack([narrow, wide]))
    >>> bool(w[1, 0] > 2.5 * w[0, 0])
    True
    """
    w = _check_windows(windows)
    return 1e3 * _width_s(w, _geometry(w.shape[-1], pre_s, post_s))


# --------------------------------------------------------------------------- comparison
def _corr(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    tc = t - t.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=-1) * (tc * tc).sum(axis=-1))
    num = (xc * tc).sum(axis=-1)
    # a flat beat or template has no shape to compare: 0 (uncorrelated), not NaN
    return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x * x).mean(axis=-1))


def _compare(x: np.ndarray, t: np.ndarray, geom: _Geometry, eps: float) -> np.ndarray:
    """Per-lead features of beats ``x`` against templates ``t``, both ``(n, n_leads, L)``.

    Returns ``(n, n_leads * 9)``, lead-major. Every reduction runs along the last axis of
    row-independent arrays, so a batch of one gives the same numbers as a larger batch.
    """
    q, p = geom.qrs, geom.p
    diff = x - t
    scale = _rms(t) + eps
    xq, tq = x[..., q], t[..., q]
    cols = [
        _corr(x, t),
        _corr(xq, tq),
        _corr(x[..., p], t[..., p]),
        _rms(diff) / scale,
        _rms(diff[..., q]) / scale,
        _rms(diff[..., p]) / scale,
        np.log((_width_s(x, geom) + eps) / (_width_s(t, geom) + eps)),
        np.log(((xq * xq).sum(axis=-1) + eps) / ((tq * tq).sum(axis=-1) + eps)),
        np.log((np.ptp(xq, axis=-1) + eps) / (np.ptp(tq, axis=-1) + eps)),
    ]
    return np.stack(cols, axis=-1).reshape(x.shape[0], -1)


def _segments(n: int, record_ids: Sequence[object] | np.ndarray | None) -> list[tuple[int, int]]:
    if record_ids is None:
        return [(0, n)] if n else []
    ids = np.asarray(record_ids)
    if ids.shape != (n,):
        raise ValueError(f"record_ids must have shape ({n},) (one per beat), got {ids.shape}")
    if n == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    stops = np.concatenate([starts[1:], [n]])
    firsts = ids[starts]
    if len(set(firsts.tolist())) != firsts.size:
        raise ValueError(
            "record_ids must keep each record's beats contiguous (a record appears in more than "
            "one run); sort the beats by record, then time"
        )
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def template_features(
    windows: np.ndarray,
    *,
    record_ids: Sequence[object] | np.ndarray | None = None,
    n_template: int = 32,
    pre_s: float = 0.25,
    post_s: float = 0.45,
    eps: float = 1e-3,
) -> TemplateFeatures:
    """Template-relative morphology features of every beat (causal, label-free, per record).

    The template of beat ``i`` is the element-wise median of the previous ``min(i, n_template)``
    windows of its record (beats ``i - n_template .. i - 1``). The first beat of a record has no
    previous beat: it is compared with itself, so its row is the "matches its template" value
    (correlations 1, differences and log-ratios 0) with ``tpl_fill = 0``, never NaN; a classifier
    can tell these rows apart by ``tpl_fill``. Beats must be in time order within each record.

    Caveat: the median is the dominant morphology only while fewer than half of the last
    ``n_template`` beats are ectopic. In long ventricular bigeminy (every other beat a PVC) the
    template becomes a mixture and the contrast between normal and ventricular beats shrinks;
    during a long run of ectopic beats the template drifts to the ectopic shape.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_beats, window_len)`` or ``(n_beats, n_leads, window_len)`` beat windows (e.g. the
        normalised ``windows`` of a :class:`~heartline.data.beat_set.BeatSet`), several records
        back to back.
    record_ids : array-like, optional
        Record (patient) of each beat, ``(n_beats,)``; each record's beats contiguous. A new
        record starts a new template. ``None``: all beats are one record.
    n_template : int
        Previous beats in the template (32 beats, about 25 s at 75 bpm).
    pre_s, post_s : float
        Window extent before and after the R-peak, seconds (as passed to
        :func:`~heartline.signal.segmentation.segment_beats`); they place the QRS and P regions.
    eps : float
        Small constant (window units) added to both sides of every ratio, so flat windows give
        finite values.

    Returns
    -------
    TemplateFeatures
        ``values`` of shape ``(n_beats, 9 * n_leads + 1)``.

    Raises
    ------
    ValueError
        On a bad shape, NaN/inf windows, ``n_template < 1``, non-contiguous ``record_ids`` or a
        window too short to hold the QRS and P regions.

    Examples
    --------
    >>> import numpy as np
    >>> t = -0.25 + np.arange(128) * 0.7 / 128
    >>> normal, wide = np.exp(-(t / 0.015) ** 2), np.exp(-(t / 0.05) ** 2)
    >>> beats = np.stack([normal] * 10 + [wide] + [normal] * 2)
    >>> f = template_features(beats, n_template=8)
    >>> col = {n: i for i, n in enumerate(f.names)}
    >>> f.values[[0, 5, 10], col["tpl_qrs_width_logratio_l0"]].round(2).tolist()
    [0.0, 0.0, 1.08]
    >>> f.values[[0, 1, 12], col["tpl_fill"]].tolist()
    [0.0, 0.125, 1.0]
    """
    m = int(n_template)
    if m < 1:
        raise ValueError(f"n_template must be >= 1, got {n_template}")
    w = _check_windows(windows)
    n, n_leads, length = w.shape
    geom = _geometry(length, pre_s, post_s)
    out = np.empty((n, len(TEMPLATE_LEAD_FEATURES) * n_leads + 1))
    for start, stop in _segments(n, record_ids):
        seg = w[start:stop]
        k = stop - start
        templates = np.empty_like(seg)
        templates[0] = seg[0]
        # the first beats: a growing history (at most n_template short medians per record)
        for i in range(1, min(k, m + 1)):
            templates[i] = _median_last(np.moveaxis(seg[:i], 0, -1))
        # then a full sliding history, vectorised in chunks: template i = median(seg[i-m:i])
        if k > m:
            view = np.lib.stride_tricks.sliding_window_view(seg, m, axis=0)  # (k-m+1, C, L, m)
            for c0 in range(m, k, _CHUNK_BEATS):
                c1 = min(c0 + _CHUNK_BEATS, k)
                templates[c0:c1] = _median_last(np.ascontiguousarray(view[c0 - m : c1 - m]))
        out[start:stop, :-1] = _compare(seg, templates, geom, eps)
        out[start:stop, -1] = np.minimum(np.arange(k), m) / m
    return TemplateFeatures(out, template_feature_names(n_leads), m)


class TemplateTracker:
    """Beat-by-beat version of :func:`template_features` for one record (same rows).

    :meth:`update` compares the new beat with the median of the previous ``n_template`` beats
    seen, then adds the beat to the history; :meth:`reset` starts a new patient. No latency: the
    row of a beat is ready as soon as its window is.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> beats = rng.normal(size=(40, 2, 64))
    >>> tracker = TemplateTracker(n_template=8)
    >>> rows = np.stack([tracker.update(b) for b in beats])
    >>> bool(np.allclose(rows, template_features(beats, n_template=8).values, rtol=0, atol=1e-12))
    True
    """

    def __init__(
        self, *, n_template: int = 32, pre_s: float = 0.25, post_s: float = 0.45, eps: float = 1e-3
    ) -> None:
        if int(n_template) < 1:
            raise ValueError(f"n_template must be >= 1, got {n_template}")
        self.n_template = int(n_template)
        self.pre_s = float(pre_s)
        self.post_s = float(post_s)
        self.eps = float(eps)
        self.names: tuple[str, ...] = ()
        self.reset()

    def reset(self) -> None:
        """Forget the history (start a new record / patient)."""
        self._history: np.ndarray | None = None  # (C, L, n_template) ring buffer
        self._count = 0
        self._geom: _Geometry | None = None

    def _start(self, shape: tuple[int, ...]) -> None:
        """Set up the history for windows of ``shape`` ``(n_leads, window_len)``."""
        self._geom = _geometry(shape[-1], self.pre_s, self.post_s)
        self._history = np.empty((*shape, self.n_template))
        self.names = template_feature_names(shape[0])

    def update(self, window: np.ndarray) -> np.ndarray:
        """Features of one beat window ``(window_len,)`` or ``(n_leads, window_len)``.

        Returns
        -------
        numpy.ndarray
            float64, ``(9 * n_leads + 1,)``, columns named by :attr:`names`.
        """
        w = np.asarray(window, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2:
            raise ValueError(
                f"window must be (window_len,) or (n_leads, window_len), got shape {w.shape}"
            )
        if not np.all(np.isfinite(w)):
            raise ValueError("window holds NaN/inf values; impute or drop the beat first")
        m = self.n_template
        if self._history is None:
            self._start(w.shape)
        elif w.shape != self._history.shape[:2]:
            raise ValueError(
                f"window shape {w.shape} differs from this record's {self._history.shape[:2]}"
            )
        assert self._geom is not None
        k = min(self._count, m)
        if k == 0:
            template = w
        else:
            template = _median_last(self._history[..., :k])
        row = np.empty(len(TEMPLATE_LEAD_FEATURES) * w.shape[0] + 1)
        row[:-1] = _compare(w[None], template[None], self._geom, self.eps)[0]
        row[-1] = k / m
        self._history[..., self._count % m] = w
        self._count += 1
        return row

    @staticmethod
    def update_many(
        trackers: Sequence[TemplateTracker], windows: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """:meth:`update` of many trackers (streams), each with its next beats, in a few calls.

        Returns what ``[np.stack([t.update(w) for w in ws]) for t, ws in zip(trackers,
        windows)]`` returns, bit for bit, and leaves every tracker in the same state. Beats are
        taken in rounds (the first new beat of every stream, then the second, ...); in each
        round the streams whose history is full and whose settings agree get their medians and
        comparisons in one vectorised call (every reduction runs along the last axis of
        row-independent arrays, so stacking rows changes no number). Streams still filling
        their history (their first ``n_template`` beats) are grouped by how many beats it
        holds.

        Parameters
        ----------
        trackers : sequence of TemplateTracker
            Distinct trackers, one per stream.
        windows : sequence of numpy.ndarray
            The next beats of each tracker, ``(n_i, window_len)`` or ``(n_i, n_leads,
            window_len)`` in time order (``n_i`` may be 0).

        Returns
        -------
        list of numpy.ndarray
            float64 ``(n_i, 9 * n_leads + 1)`` per tracker.

        Raises
        ------
        ValueError
            On mismatched lengths, repeated trackers, or a window :meth:`update` would refuse
            (checked for every window before any tracker changes).

        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> a, b = TemplateTracker(n_template=4), TemplateTracker(n_template=4)
        >>> ref = TemplateTracker(n_template=4)
        >>> beats = rng.normal(size=(9, 2, 64))
        >>> ra = TemplateTracker.update_many([a, b], [beats[:6], beats[:2]])[0]
        >>> rb = TemplateTracker.update_many([a, b], [beats[6:], beats[2:3]])[0]
        >>> bool(np.array_equal(np.vstack([ra, rb]), np.stack([ref.update(w) for w in beats])))
        True
        """
        if len(trackers) != len(windows):
            raise ValueError(f"windows must align with trackers: {len(windows)} != {len(trackers)}")
        if len({id(t) for t in trackers}) != len(trackers):
            raise ValueError("trackers must be distinct (one per stream)")
        ws: list[np.ndarray] = []
        for t, x in zip(trackers, windows, strict=True):
            w = _check_windows(x)  # (n, window_len) is one lead
            if w.shape[0] and t._history is None:
                _geometry(w.shape[-1], t.pre_s, t.post_s)  # refuses a too-short window
            if w.shape[0] and t._history is not None and w.shape[1:] != t._history.shape[:2]:
                raise ValueError(
                    f"window shape {w.shape[1:]} differs from this record's {t._history.shape[:2]}"
                )
            ws.append(w)
        out = [np.empty((0, len(TEMPLATE_LEAD_FEATURES) * w.shape[1] + 1)) for w in ws]
        rows: list[list[np.ndarray]] = [[] for _ in ws]
        for j in range(max((w.shape[0] for w in ws), default=0)):
            groups: dict[tuple[object, ...], list[int]] = {}
            for i, (t, w) in enumerate(zip(trackers, ws, strict=True)):
                if j >= w.shape[0]:
                    continue
                if t._history is None:
                    t._start(w.shape[1:])
                # streams group by settings and history fill (a full history for all but the
                # first n_template beats of a stream)
                k = min(t._count, t.n_template)
                key = (w.shape[1:], t.n_template, t.pre_s, t.post_s, t.eps, k)
                groups.setdefault(key, []).append(i)
            for key, members in groups.items():
                k = int(key[-1])  # type: ignore[call-overload]
                t0 = trackers[members[0]]
                assert t0._geom is not None
                m = t0.n_template
                x = np.stack([ws[i][j] for i in members])
                if k == 0:  # a first beat is compared with itself
                    template = x
                elif k == m:
                    template = _median_last(np.stack([trackers[i]._history for i in members]))  # type: ignore[misc]
                else:
                    template = _median_last(
                        np.stack([trackers[i]._history[..., :k] for i in members])  # type: ignore[index]
                    )
                feats = _compare(x, template, t0._geom, t0.eps)
                for r, i in enumerate(members):
                    t = trackers[i]
                    row = np.empty(feats.shape[1] + 1)
                    row[:-1] = feats[r]
                    row[-1] = k / m
                    rows[i].append(row)
                    t._history[..., t._count % m] = x[r]  # type: ignore[index]
                    t._count += 1
        for i, r in enumerate(rows):
            if r:
                out[i] = np.stack(r)
        return out
