"""Batched work of :meth:`StreamingRPeakDetector.process_many` equals the per-detector work."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from heartline.signal.rpeaks import StreamingRPeakDetector


def _ecg_like(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Spike trains, flutter-like sinusoids, flat stretches and noise, spliced at random."""
    t = np.arange(n) / fs
    out = np.empty(n)
    i = 0
    while i < n:
        m = int(rng.integers(int(0.5 * fs), int(6 * fs)))
        kind = int(rng.integers(0, 4))
        tt = t[i : i + m]
        if kind == 0:
            rr = rng.uniform(0.4, 1.5)
            seg = rng.uniform(0.3, 2.0) * np.exp(-(((tt % rr) - rr / 2) ** 2) / (2 * 0.012**2))
        elif kind == 1:
            seg = rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * rng.uniform(2.0, 8.0) * tt)
        elif kind == 2:
            seg = np.full(tt.size, rng.uniform(-1, 1))
        else:
            seg = rng.normal(0, rng.uniform(0.01, 0.5), tt.size)
        out[i : i + m] = seg + rng.normal(0, 0.01, tt.size)
        i += m
    return out


def _leakage_reference(v: np.ndarray) -> float:
    """Kuo's leakage of one window, written for a single 1-D window."""
    n = v.size
    s1 = np.abs(v).sum()
    s2 = np.abs(np.diff(v)).sum()
    if s2 <= 0:
        return 1.0
    half = np.floor(np.pi * s1 / s2 + 0.5)
    if not 1 <= half < n // 2:
        return 1.0
    h = int(half)
    keep = np.arange(n) >= h
    vl = v[np.maximum(np.arange(n) - h, 0)]
    num = np.where(keep, np.abs(v + vl), 0.0).sum()
    tot = np.where(keep, np.abs(v) + np.abs(vl), 0.0).sum()
    return float(num / tot) if tot > 0 else 1.0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_dets=st.integers(1, 6),
    fs=st.sampled_from([128.0, 250.0, 360.0]),
    seconds=st.floats(4.0, 25.0),
    chunk_s=st.floats(0.05, 3.0),
    per_det=st.integers(0, 90),
)
def test_batched_leakages_equal_per_detector(
    seed: int, n_dets: int, fs: float, seconds: float, chunk_s: float, per_det: int
) -> None:
    rng = np.random.default_rng(seed)
    dets = [StreamingRPeakDetector(fs=fs) for _ in range(n_dets)]
    # Streams of different lengths, fed together while they last (buffers trimmed differently).
    xs = [_ecg_like(rng, int(rng.uniform(0.5, 1.0) * seconds * fs), fs) for _ in range(n_dets)]
    step = max(1, int(chunk_s * fs))
    for a in range(0, max(x.size for x in xs), step):
        live = [(d, x[a : a + step]) for d, x in zip(dets, xs, strict=True) if a < x.size]
        StreamingRPeakDetector.process_many([d for d, _ in live], [c for _, c in live])
    d0 = dets[0]
    n, k = d0._n_vf, d0._vf_step
    span = (n - 1) * k
    stops = []
    for d in dets:
        # Windows still held in the buffer (or not filled yet), some past the stream's end.
        lo = d._buf_start + span + k if d._buf_start else 1
        stops.append(rng.integers(lo, d._n_in + 100, size=per_det) if lo < d._n_in else
                     np.zeros(0, dtype=np.int64))  # fmt: skip
    batched = StreamingRPeakDetector._leakages_many(dets, stops)
    assert len(batched) == n_dets
    for d, x, st_, got in zip(dets, xs, stops, batched, strict=True):
        alone = d._leakages(st_)
        assert got == alone  # bit for bit
        assert len(got) == st_.size
        # An independent computation from the whole stream filtered at once.
        zi = sps.sosfilt_zi(d._sos_vf) * x[0]
        vfx = sps.sosfilt(d._sos_vf, x, zi=zi)[0]
        ends = (np.minimum(st_, d._n_in) - 1) // k * k
        for e, value in zip(ends.tolist(), got, strict=True):
            if e - span < 0:
                assert value == 1.0
            else:
                ref = _leakage_reference(vfx[e - span : e + 1 : k])
                assert value == ref, (value, ref)


def _state(d: StreamingRPeakDetector) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in vars(d).items():
        if name in ("config", "fs") or name.startswith("_sos"):
            continue
        out[name] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_dets=st.integers(1, 5),
    fs=st.sampled_from([250.0, 360.0]),
    sizes=st.lists(st.integers(1, 900), min_size=1, max_size=6),
)
def test_process_many_equals_process_on_random_streams(
    seed: int, n_dets: int, fs: float, sizes: list[int]
) -> None:
    """Streams that join late (filters started inside ``process_many``), stop early and get chunks
    of varying size: the same peaks and the same detector states (every attribute, decisions
    included) as one ``process`` each."""
    rng = np.random.default_rng(seed)
    # Most streams share ``fs`` (one group); some run at 128 Hz (another group, maybe of one).
    rates = [fs if rng.random() < 0.7 else 128.0 for _ in range(n_dets)]
    xs = [_ecg_like(rng, int(rng.uniform(5, 20) * r), r) for r in rates]
    joins = [int(rng.integers(0, 4)) for _ in range(n_dets)]
    one = [StreamingRPeakDetector(fs=r) for r in rates]
    many = [StreamingRPeakDetector(fs=r) for r in rates]
    pos = [0] * n_dets
    for call in range(10_000):
        size = sizes[call % len(sizes)]
        live = [i for i in range(n_dets) if call >= joins[i] and pos[i] < xs[i].size]
        if not live:
            break
        chunks = {i: xs[i][pos[i] : pos[i] + size] for i in live}
        res = StreamingRPeakDetector.process_many([many[i] for i in live], list(chunks.values()))
        for i, r in zip(live, res, strict=True):
            assert isinstance(r, np.ndarray)
            np.testing.assert_array_equal(r, one[i].process(chunks[i]))
            pos[i] += size
    for a, b in zip(one, many, strict=True):
        assert _state(a) == _state(b)
        np.testing.assert_array_equal(a.flush(), b.flush())
        assert _state(a) == _state(b)
