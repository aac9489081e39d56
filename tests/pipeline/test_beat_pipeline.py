"""BeatPipeline: chunk invariance, offline == live, training preprocessing reproduced online."""

from __future__ import annotations

from dataclasses import replace
from itertools import islice

import numpy as np
import pytest
from scipy.signal import resample_poly

from heartline.data.paths import record_path
from heartline.errors import SignalError
from heartline.io import read_record
from heartline.pipeline import BeatPipeline, classify_batches, classify_record
from heartline.pipeline.beat_pipeline import _make_cleaner, select_leads
from heartline.signal.rpeaks import detect_r_peaks
from heartline.signal.segmentation import (
    normalise_beats,
    preprocess_ecg,
    rr_features,
    segment_beats,
)

FS = 360.0


@pytest.fixture(scope="module")
def excerpt(data_dir):
    rec = read_record(record_path("mitdb", "208", data_dir=data_dir))
    return replace(rec, signal=rec.signal[: int(60 * FS)])


def test_cached_cleaner_equals_training_preprocess() -> None:
    x = np.random.default_rng(0).standard_normal((1500, 2)).cumsum(axis=0)
    for fs in (128.0, 360.0, 500.0):
        np.testing.assert_array_equal(_make_cleaner(fs, "bandpass")(x), preprocess_ecg(x, fs=fs))


def test_chunk_size_invariance(excerpt, tiny_model) -> None:
    ref = classify_record(excerpt, model=tiny_model, chunk_s=1.0)
    assert len(ref) > 80  # 208 has ~100 beats per minute
    for chunk_s in (0.37, 2.5):
        other = classify_record(excerpt, model=tiny_model, chunk_s=chunk_s)
        np.testing.assert_array_equal(other.sample_idx, ref.sample_idx)
        np.testing.assert_allclose(other.probabilities, ref.probabilities, atol=1e-6)
    # irregular chunks
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.integers(0, excerpt.signal.shape[0], 80))
    beats = []
    for part in np.split(excerpt.signal, cuts):
        beats.extend(pipe.process(part))
    beats.extend(pipe.flush())
    assert [b.sample_idx for b in beats] == ref.sample_idx.tolist()
    assert [b.label for b in beats] == ref.labels.tolist()


def test_offline_equals_live_frames(excerpt, tiny_model, data_dir) -> None:
    """Frames of a virtual wearable (ADC counts -> mV) give exactly the offline result."""
    from heartline.devices.simulator import VirtualWearable, WearableConfig

    w = VirtualWearable(
        WearableConfig(device_id="d1", record="208", start_offset_s=0.0),
        start_time_s=1.7e9,
        data_dir=data_dir,
    )
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    live = []
    for sf in islice(w.frames(), 60):
        live.extend(pipe.process(sf.frame.signal_mv()))
    live.extend(pipe.flush())
    offline = classify_record(excerpt, model=tiny_model)
    assert [b.sample_idx for b in live] == offline.sample_idx.tolist()
    np.testing.assert_allclose(
        np.array([[b.probabilities[c] for c in offline.classes] for b in live]),
        offline.probabilities,
        atol=1e-6,
    )


def test_reproduces_training_preprocessing(excerpt, tiny_model) -> None:
    """Same R peaks as the offline detector; windows within 1 % of whole-record cleaning."""
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    batches = [
        pipe.prepare(excerpt.signal[i : i + 360]) for i in range(0, excerpt.signal.shape[0], 360)
    ]
    batches.append(pipe.flush_prepare())
    idx = np.concatenate([b.sample_idx for b in batches])
    win = np.concatenate([b.windows[:, -1] for b in batches])
    rr = np.concatenate([b.rr[:, -1] for b in batches])
    peaks = detect_r_peaks(excerpt.signal[:, 0], fs=FS).sample_idx
    np.testing.assert_array_equal(idx, peaks)
    offline = normalise_beats(segment_beats(preprocess_ecg(excerpt.signal, fs=FS), peaks, fs=FS))
    np.testing.assert_allclose(rr, rr_features(peaks, fs=FS).values, rtol=1e-5)
    inner = slice(3, -3)  # the whole-record filter's own edge effects at the excerpt ends
    rel = np.abs(win[inner] - offline[inner]).max() / np.abs(offline[inner]).max()
    assert rel < 0.05, rel
    assert np.sqrt(np.mean((win[inner] - offline[inner]) ** 2)) < 0.02
    # context: the previous beats, first beat repeated before the stream start
    ctx = np.concatenate([b.windows for b in batches])
    np.testing.assert_array_equal(ctx[0, 0], ctx[0, -1])
    np.testing.assert_array_equal(ctx[5, -2], win[4])


def test_other_sampling_rate(excerpt, tiny_model) -> None:
    sig = resample_poly(excerpt.signal, 25, 36, axis=0)  # 360 -> 250 Hz
    rec250 = replace(excerpt, signal=sig, fs=250.0)
    a = classify_record(excerpt, model=tiny_model)
    b = classify_record(rec250, model=tiny_model)
    assert abs(len(a) - len(b)) <= 2
    t_a, t_b = a.time_s, b.time_s
    close = np.abs(t_b[:, None] - t_a[None, :]).min(axis=1) < 0.03
    assert close.mean() > 0.95


def test_batched_across_devices_equals_separate(excerpt, tiny_model) -> None:
    pipes = [BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model) for _ in range(2)]
    sep = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    x1, x2 = excerpt.signal[:3600], excerpt.signal[3600:7200]
    b1, b2 = pipes[0].prepare(x1), pipes[1].prepare(x2)
    p1, p2 = classify_batches(tiny_model, [b1, b2])
    assert len(b1) and len(b2)
    np.testing.assert_allclose(p1, tiny_model.predict_proba_arrays(b1.windows, b1.rr), atol=1e-6)
    np.testing.assert_allclose(p2, tiny_model.predict_proba_arrays(b2.windows, b2.rr), atol=1e-6)
    assert [b.sample_idx for b in sep.process(x1)] == b1.sample_idx.tolist()


def test_summary_helpers(excerpt, tiny_model) -> None:
    res = classify_record(excerpt, model=tiny_model)
    assert sum(res.counts().values()) == len(res)
    assert 0.0 <= res.ectopic_burden_pct <= 100.0
    for a, b in res.runs("V", min_length=3):
        assert b - a >= 3 and set(res.labels[a:b]) == {"V"}


def test_bad_input(tiny_model) -> None:
    pipe = BeatPipeline(fs=FS, lead_names=("MLII", "V1"), model=tiny_model)
    with pytest.raises(SignalError, match="shape"):
        pipe.process(np.zeros((10, 3)))
    with pytest.raises(SignalError, match="NaN"):
        pipe.process(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="lead"):
        BeatPipeline(fs=FS, lead_names=("MLII",), model=tiny_model)
    with pytest.raises(SignalError):
        BeatPipeline(fs=20.0, lead_names=("MLII", "V1"), model=tiny_model)
    # flat and empty input give no beats and no error
    assert pipe.process(np.zeros((0, 2))) == []
    assert pipe.process(np.zeros((3600, 2))) == [] and pipe.flush() == []


def test_lead_selection_puts_mlii_first() -> None:
    assert select_leads(("V5", "MLII"), 2) == [1, 0]
    assert select_leads(("I", "II", "III"), 2) == [0, 1]


def test_drain_vf_reports_the_flutter_of_record_207(data_dir, tiny_model):
    """The detector's VF state reaches the pipeline's caller (for the engine's VF alarm)."""
    rec = read_record(record_path("mitdb", "207", data_dir=data_dir))
    sig = rec.signal[: int(70 * FS)]  # annotated flutter at 40.7-51.0 s and 54.8-60.4 s
    pipe = BeatPipeline(fs=FS, lead_names=rec.lead_names, model=tiny_model)
    spans: list[tuple[int, int | None]] = []
    for start in range(0, sig.shape[0], int(FS)):
        pipe.process(sig[start : start + int(FS)])
        spans.extend(s for s in pipe.drain_vf() if s[1] is not None)
    assert spans, "no VF episode reported in 207's flutter"
    for a, b in spans:
        assert 38 * FS <= a < b <= 64 * FS
    # nothing in a normal record
    normal = read_record(record_path("mitdb", "100", data_dir=data_dir)).signal[: int(60 * FS)]
    pipe = BeatPipeline(fs=FS, lead_names=rec.lead_names, model=tiny_model)
    pipe.process(normal)
    assert pipe.drain_vf() == []


def test_streaming_fast_paths_equal_the_training_functions() -> None:
    """Block cleaning, beat windows and block quality: the same numbers as the library functions."""
    from scipy.signal import sosfiltfilt

    from heartline.signal.quality import QualityConfig, WindowAssessor, assess_window
    from heartline.signal.segmentation import bandpass_sos

    rng = np.random.default_rng(5)
    for fs in (128.0, 250.0, 360.0):
        clean = _make_cleaner(fs, "bandpass")
        for n in (2, 3, 40, 1440, 4 * int(fs) + 1):
            x = rng.standard_normal((n, 2)).cumsum(axis=0)
            ref = sosfiltfilt(bandpass_sos(fs), x, axis=0, padlen=min(n - 1, 3 * int(fs)))
            np.testing.assert_array_equal(clean(x), ref)
        pipe = BeatPipeline(
            fs=fs,
            lead_names=("MLII", "V5"),
            model=None,
            context_k=1,
            n_leads=2,
            window_len=64,
            n_rr=4,
        )
        pipe._clean = rng.standard_normal((3000, 2))
        for rel in (0, 1, 57, 1500, 2998, 2999):
            ref = segment_beats(pipe._clean, np.array([rel]), fs=fs, window_len=64)[0]
            np.testing.assert_array_equal(pipe._segment(rel), ref)
        cfg = QualityConfig(window_s=2.0, min_window_s=1.0)
        assessor = WindowAssessor(fs=fs, config=cfg)
        base = rng.standard_normal(int(2 * fs)).cumsum() * 0.05
        windows = [
            base,
            base[: int(0.5 * fs)],
            np.zeros(100),
            np.clip(base, -0.1, 0.1),
            base.copy(),
        ]
        windows[-1][3] = np.nan
        for w in windows:
            a, b = assessor.assess(w, start_idx=7), assess_window(w, fs=fs, config=cfg, start_idx=7)
            assert repr(a) == repr(b)  # every field, NaN included


def test_assess_many_equals_assess() -> None:
    """Quality of many windows at once (2-D FFTs): the same verdicts, field by field."""
    from heartline.signal.quality import QualityConfig, WindowAssessor

    rng = np.random.default_rng(11)
    for fs in (250.0, 360.0):
        cfg = QualityConfig(window_s=2.0, min_window_s=1.0)
        assessor = WindowAssessor(fs=fs, config=cfg)
        n = int(2 * fs)
        windows = [rng.standard_normal(n).cumsum() * 0.05 for _ in range(6)]
        windows += [rng.standard_normal(n), np.sin(np.arange(n) * 0.3)]  # noise, sinusoid
        windows += [np.zeros(n), np.clip(windows[0], -0.05, 0.05), windows[1][: int(0.5 * fs)]]
        windows += [windows[2][: n - 17], windows[3][: n - 17]]  # a second length
        nan = windows[4].copy()
        nan[9] = np.nan
        windows.append(nan)
        starts = list(range(0, 100 * len(windows), 100))
        many = assessor.assess_many(windows, start_idx=starts)
        one = [assessor.assess(w, start_idx=s) for w, s in zip(windows, starts, strict=True)]
        assert [repr(a) for a in many] == [repr(b) for b in one]
        assert {a.flags for a in many} != {0}
    with pytest.raises(ValueError, match="align"):
        assessor.assess_many(windows, start_idx=[])


def test_prepare_many_equals_prepare(data_dir, tiny_model) -> None:
    """Many devices' pipelines fed together: the same model inputs, quality verdicts and states."""
    from heartline.pipeline import prepare_many

    recs = [read_record(record_path("mitdb", r, data_dir=data_dir)) for r in ("208", "119", "207")]
    signals = [r.signal[: int(40 * FS)] for r in recs]

    def pipes() -> list[BeatPipeline]:
        return [BeatPipeline(fs=FS, lead_names=r.lead_names, model=tiny_model) for r in recs]

    one, many = pipes(), pipes()
    n_beats = 0
    for k, start in enumerate(range(0, signals[0].shape[0], 360)):
        chunks = [s[start : start + 360] for s in signals]
        if k == 5:  # a refused chunk comes back in its place; the others go on
            bad = chunks[1].copy()
            bad[3, 0] = np.nan
            got = prepare_many(many, [chunks[0], bad, chunks[2]])
            assert isinstance(got[1], SignalError)
            with pytest.raises(SignalError):
                one[1].prepare(bad)
            got[1] = many[1].prepare(chunks[1])
        else:
            got = prepare_many(many, chunks)
        for p, x, b in zip(one, chunks, got, strict=True):
            a = p.prepare(x)
            assert not isinstance(b, Exception)
            for field in ("windows", "rr", "sample_idx", "quality_ok"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            n_beats += len(a)
        for p, q in zip(one, many, strict=True):
            assert repr(p.drain_quality()) == repr(q.drain_quality())
            assert p.drain_vf() == q.drain_vf()
    assert n_beats > 100
    for p, q in zip(one, many, strict=True):
        np.testing.assert_array_equal(p._clean, q._clean)
        a, b = p.flush_prepare(), q.flush_prepare()
        np.testing.assert_array_equal(a.windows, b.windows)
    with pytest.raises(ValueError, match="distinct"):
        prepare_many([one[0], one[0]], [signals[0][:10], signals[0][:10]])


def test_pipelines_share_cached_filter_designs(tiny_model) -> None:
    """Filter designs are cached per rate (a processor builds a pipeline per device): the shared
    designs are SciPy's own, and a stream detected by a pipeline built after many others is the
    same as by the first one."""
    from scipy.signal import butter, sosfilt_zi

    from heartline.signal.rpeaks._heartline import _bandpass_design

    a = BeatPipeline(fs=FS, lead_names=["MLII", "V5"], model=tiny_model)
    b = BeatPipeline(fs=FS, lead_names=["MLII", "V5"], model=tiny_model)
    assert a._cleaner is b._cleaner
    assert a._detector._sos_qrs is b._detector._sos_qrs
    for lo, hi in (a._detector.config.qrs_band_hz, a._detector.config.vf_band_hz):
        sos, zi = _bandpass_design(FS, lo, hi)
        want = butter(2, [lo, min(hi, 0.45 * FS)], btype="bandpass", fs=FS, output="sos")
        np.testing.assert_array_equal(sos, want)
        np.testing.assert_array_equal(zi, sosfilt_zi(want))
        assert not zi.flags.writeable
    # other rates get their own designs
    c = BeatPipeline(fs=250.0, lead_names=["MLII", "V5"], model=tiny_model)
    assert c._cleaner is not a._cleaner
    assert not np.array_equal(c._detector._sos_qrs, a._detector._sos_qrs)


def test_unknown_preprocess_method_is_rejected(tiny_model) -> None:
    with pytest.raises(ValueError, match="unknown preprocessing method 'wavelet'"):
        BeatPipeline(fs=FS, lead_names=["MLII", "V5"], model=tiny_model, preprocess="wavelet")
    with pytest.raises(ValueError, match="unknown preprocessing method"):
        preprocess_ecg(np.zeros((10, 1)), fs=FS, method="wavelet")


def test_every_context_row_is_the_earlier_beat_itself(excerpt, tiny_model) -> None:
    """Row c of beat i's context is beat max(i - k + c, 0) exactly (windows and RR columns), for
    batches of one beat and of many, across batch boundaries."""
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    k = pipe.context_k
    assert k >= 2
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.integers(0, excerpt.signal.shape[0], 40))
    cuts = np.concatenate([cuts, [int(8 * FS), int(20 * FS)]])  # long chunks: many beats at once
    batches = [pipe.prepare(part) for part in np.split(excerpt.signal, np.sort(cuts))]
    batches.append(pipe.flush_prepare())
    assert max(len(b) for b in batches) >= 5 and min(len(b) for b in batches) <= 1
    win = np.concatenate([b.windows for b in batches])
    rr = np.concatenate([b.rr for b in batches])
    n = win.shape[0]
    assert win.shape == (n, k + 1, pipe.n_leads, pipe.window_len) and win.dtype == np.float32
    assert rr.shape == (n, k + 1, pipe.n_rr) and rr.dtype == np.float32
    for c in range(k + 1):
        src = np.maximum(np.arange(n) - k + c, 0)
        np.testing.assert_array_equal(win[:, c], win[src, -1])
        np.testing.assert_array_equal(rr[:, c], rr[src, -1])
