"""Beat segmentation, normalisation and RR features (online == vectorised)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartline.errors import SignalError
from heartline.io import read_annotations, read_record
from heartline.signal.segmentation import (
    RR_FEATURE_NAMES,
    OnlineBeatNormaliser,
    OnlineRRFeatures,
    beat_edge_flags,
    normalise_beats,
    preprocess_ecg,
    rr_features,
    segment_beats,
)


def test_segment_shapes_and_r_peak_position():
    fs = 360.0
    x = np.zeros((3600, 2))
    peaks = np.array([500, 1500, 2500])
    x[peaks, 0] = 1.0
    x[peaks, 1] = -2.0
    w = segment_beats(x, peaks, fs=fs, pre_s=0.25, post_s=0.45, window_len=128)
    assert w.shape == (3, 2, 128) and w.dtype == np.float32
    r0 = round(128 * 0.25 / 0.7)
    # the peak is a single sample; the window grid point nearest to it carries the most of it
    assert np.all(np.abs(np.argmax(w[:, 0], axis=1) - r0) <= 1)
    assert np.all(np.abs(np.argmin(w[:, 1], axis=1) - r0) <= 1)
    assert segment_beats(x[:, 0], peaks, fs=fs).shape == (3, 128)


def test_window_length_independent_of_fs():
    for fs in (128.0, 250.0, 360.0, 1000.0):
        x = np.random.default_rng(0).normal(size=int(10 * fs))
        w = segment_beats(x, np.array([int(2 * fs), int(5 * fs)]), fs=fs, window_len=96)
        assert w.shape == (2, 96)


def test_edge_beats_are_padded_and_flagged():
    x = np.arange(1000.0)
    peaks = np.array([5, 500, 995])
    w = segment_beats(x, peaks, fs=100.0, pre_s=0.25, post_s=0.45, window_len=70)
    assert w[0, 0] == 0.0  # padded with the first sample
    assert w[2, -1] == 999.0  # padded with the last sample
    assert beat_edge_flags(peaks, n_samples=1000, fs=100.0).tolist() == [True, False, True]


def test_segment_validation():
    with pytest.raises(SignalError, match="strictly increasing"):
        segment_beats(np.zeros(100), np.array([50, 40]), fs=100.0)
    with pytest.raises(SignalError, match="r_peaks_idx"):
        segment_beats(np.zeros(100), np.array([150]), fs=100.0)
    with pytest.raises(SignalError, match="fs"):
        segment_beats(np.zeros(100), np.array([50]), fs=0)


def test_preprocess_removes_wander_keeps_qrs_band():
    fs = 360.0
    t = np.arange(int(20 * fs)) / fs
    wander = 2.0 * np.sin(2 * np.pi * 0.15 * t)
    qrs_band = 0.5 * np.sin(2 * np.pi * 10 * t)
    for method in ("bandpass", "median"):
        y = preprocess_ecg(np.c_[wander + qrs_band, wander], fs=fs, method=method)
        mid = slice(int(2 * fs), int(-2 * fs))
        assert np.abs(y[mid, 1]).max() < 0.15, method
    y = preprocess_ecg(wander + qrs_band, fs=fs)
    spec = np.abs(np.fft.rfft(y[mid]))
    freqs = np.fft.rfftfreq(y[mid].size, 1 / fs)
    assert spec[np.argmin(np.abs(freqs - 10))] > 10 * spec[np.argmin(np.abs(freqs - 0.15))]
    with pytest.raises(ValueError, match="bandpass"):
        preprocess_ecg(wander, fs=fs, method="nope")


def test_bandpass_sos_is_the_shared_cached_design():
    from scipy.signal import butter

    from heartline.signal.segmentation import bandpass_sos

    for fs in (50.0, 128.0, 360.0):
        sos = bandpass_sos(fs)
        ref = butter(2, [0.5, min(40.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
        np.testing.assert_array_equal(sos, ref)
        sos[0, 0] = 123.0  # a caller's copy: the cached design is untouched
        np.testing.assert_array_equal(bandpass_sos(fs), ref)
    assert bandpass_sos(360.0).shape == (2, 6)
    with pytest.raises(SignalError, match="low_hz"):
        bandpass_sos(360.0, -1.0)


def test_normalise_is_causal_and_matches_online():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(60, 2, 32)) * np.linspace(1, 3, 60)[:, None, None]
    batch = normalise_beats(w, history=8)
    online = OnlineBeatNormaliser(history=8)
    np.testing.assert_allclose(np.stack([online.update(b) for b in w]), batch, rtol=1e-5, atol=1e-6)
    # changing a future beat never changes the past
    w2 = w.copy()
    w2[40:] *= 100
    np.testing.assert_allclose(normalise_beats(w2, history=8)[:40], batch[:40])
    # gain invariance: a patient recorded at 3x the gain gives the same windows
    np.testing.assert_allclose(normalise_beats(3 * w, history=8), batch, rtol=1e-5, atol=1e-6)


def test_rr_features_values():
    f = rr_features(np.array([0, 100, 300, 400, 500]), fs=100.0)
    assert f.names == RR_FEATURE_NAMES
    v = dict(zip(f.names, f.values[2], strict=True))
    assert v["rr_prev_s"] == 2.0 and v["rr_next_s"] == 1.0
    assert v["rr_avg_s"] == pytest.approx(4 / 3)
    assert v["rr_prev_next_ratio"] == 2.0
    assert v["rr_prev_ratio"] == pytest.approx(2.0 / (4 / 3))
    assert rr_features(np.array([5]), fs=100.0).values.shape == (1, len(RR_FEATURE_NAMES))
    assert rr_features(np.array([], dtype=int), fs=100.0).values.shape == (0, len(RR_FEATURE_NAMES))


def test_online_rr_equals_vectorised_on_real_record(mitdb_dir):
    ann = read_annotations(mitdb_dir / "208").beats()  # many PVCs and couplets
    peaks = ann.sample_idx
    expected = rr_features(peaks, fs=360.0).values
    online = OnlineRRFeatures(fs=360.0)
    rows = [online.update(p) for p in peaks]
    assert rows[0] is None
    got = np.stack([*rows[1:], online.flush()])
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_online_rr_rejects_non_increasing():
    online = OnlineRRFeatures(fs=360.0)
    online.update(100)
    with pytest.raises(SignalError):
        online.update(100)


def test_real_record_windows_are_normalised(mitdb_dir):
    rec = read_record(mitdb_dir / "100")
    peaks = read_annotations(mitdb_dir / "100").beats().sample_idx
    w = normalise_beats(segment_beats(preprocess_ecg(rec.signal, fs=rec.fs), peaks, fs=rec.fs))
    assert w.shape == (peaks.size, 2, 128)
    assert np.median(np.ptp(w[:, 0], axis=1)) == pytest.approx(1.0, abs=0.1)


def test_model_rr_columns_takes_leading_columns_and_refuses_too_few() -> None:
    from heartline.signal.segmentation import model_rr_columns

    rr = np.arange(2 * 3 * 13, dtype=np.float32).reshape(2, 3, 13)
    np.testing.assert_array_equal(model_rr_columns(rr, 8), rr[..., :8])
    assert model_rr_columns(rr, 13).shape == rr.shape
    with pytest.raises(ValueError, match="expects 14 RR features, got 13"):
        model_rr_columns(rr, 14)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=3),
    st.booleans(),
)
def test_fast_medians_equal_numpy_bit_for_bit(values, rows, with_nan) -> None:
    from heartline.signal.segmentation import _median, _median_last_axis

    assert _median(values) == np.median(np.asarray(values))
    w = np.tile(np.asarray(values), (rows, 1)) * np.arange(1, rows + 1)[:, None]
    if with_nan:
        w[0, len(values) // 2] = np.nan
    np.testing.assert_array_equal(
        _median_last_axis(w), np.median(w, axis=-1, keepdims=True), strict=True
    )


def test_normaliser_update_many_equals_update_bit_for_bit():
    """Many streams' next beats normalised together: the outputs and states of one-beat updates."""
    rng = np.random.default_rng(4)
    hist = [3, 3, 8, 1]
    many = [OnlineBeatNormaliser(history=h) for h in hist]
    ref = [OnlineBeatNormaliser(history=h) for h in hist]
    streams = [rng.normal(size=(80, 2, 32)) * rng.uniform(0.1, 3) for _ in hist]
    streams[2][:, 1] = 0.0  # a flat lead: the amplitude floor
    streams[3][7, 0, 5] = np.nan  # a NaN window: NumPy's NaN propagation, as update()
    pos = [0] * len(hist)
    for _ in range(40):
        ws = [s[p : p + int(rng.integers(0, 4))] for s, p in zip(streams, pos, strict=True)]
        got = OnlineBeatNormaliser.update_many(many, ws)
        for n, w, g in zip(ref, ws, got, strict=True):
            assert g.dtype == np.float32 and g.shape == w.shape
            if len(w):
                np.testing.assert_array_equal(g, np.stack([n.update(b) for b in w]))
        pos = [p + len(w) for p, w in zip(pos, ws, strict=True)]
    assert min(pos) > 10
    for a, b in zip(many, ref, strict=True):
        assert repr(list(a._amps)) == repr(list(b._amps))
    # one-lead windows (n, window_len)
    a, b = OnlineBeatNormaliser(history=4), OnlineBeatNormaliser(history=4)
    one = rng.normal(size=(9, 32))
    np.testing.assert_array_equal(
        OnlineBeatNormaliser.update_many([a], [one])[0], np.stack([b.update(w) for w in one])
    )
    with pytest.raises(ValueError, match="distinct"):
        OnlineBeatNormaliser.update_many([a, a], [one, one])
    with pytest.raises(ValueError, match="align"):
        OnlineBeatNormaliser.update_many([a], [one, one])
    with pytest.raises(ValueError, match="one shape"):
        OnlineBeatNormaliser.update_many([a, b], [one, one[:, :16]])
