"""The live rhythm input (RhythmStream) against the whole-window preparation."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.edge.rhythm import OnnxRhythmClassifier, RhythmStream, shipped_rhythm_model_path
from heartline.io.readers import read_ecg

pytestmark = pytest.mark.skipif(
    not shipped_rhythm_model_path().is_file(), reason="shipped rhythm model not installed"
)


@pytest.fixture(scope="module")
def clf() -> OnnxRhythmClassifier:
    return OnnxRhythmClassifier()


def _lead(data_dir, rec: str, seconds: float) -> tuple[np.ndarray, float]:
    r = read_ecg(data_dir / "mitdb" / rec)
    return r.signal[: round(seconds * r.fs), 0], float(r.fs)


def _windows(stream: RhythmStream, x: np.ndarray, chunk: int, every: int) -> list:
    out = []
    for k in range(0, x.size, chunk):
        stream.push(x[k : k + chunk])
        if stream.n_samples % every == 0 and stream.n_samples >= 10 * stream.fs:
            out.append((stream.n_samples, stream.window()))
    return out


def test_stream_matches_whole_window_preparation(data_dir, clf):
    x, fs = _lead(data_dir, "201", 120.0)
    got = _windows(RhythmStream(clf, fs=fs), x, round(fs), round(5 * fs))
    assert len(got) >= 20
    for n, prep in got:
        ref = clf.prepare(x[max(0, n - round(30 * fs)) : n], fs=fs)
        assert not isinstance(prep, str) and not isinstance(ref, str)
        assert prep[0].shape == ref[0].shape
        pa = clf.predict_windows(*prep[:3]).mean(axis=0)
        pb = clf.predict_windows(*ref[:3]).mean(axis=0)
        assert np.abs(pa - pb).max() < 0.05, n
        if n >= round(40 * fs):  # past the stream's start: same signal after the first 3 s
            m = int(ref[1][0].sum())
            assert np.abs(prep[0][0][300:m] - ref[0][0][300:m]).max() < 0.2


def test_stream_does_not_depend_on_chunking(data_dir, clf):
    x, fs = _lead(data_dir, "202", 60.0)
    every = round(5 * fs)
    a = _windows(RhythmStream(clf, fs=fs), x, round(fs), every)
    b = _windows(RhythmStream(clf, fs=fs), x, round(fs / 4), every)
    assert [n for n, _ in a] == [n for n, _ in b] and a
    for (_n, pa), (_m, pb) in zip(a, b, strict=True):
        for u, v in zip(pa[:3], pb[:3], strict=True):
            np.testing.assert_array_equal(u, v)


def test_stream_bad_input_is_a_message(clf):
    s = RhythmStream(clf, fs=300.0)
    s.push(np.zeros(300 * 5))
    assert "needs at least" in s.window()
    s.push(np.zeros(300 * 10))
    assert "flat" in s.window()
    with pytest.raises(ValueError, match="fs"):
        RhythmStream(clf, fs=50.0)


def test_peaks_from_the_caller_give_the_own_detectors_windows(data_dir, clf):
    """``detect=False`` with the peaks of a detector fed the same samples: identical inputs."""
    from heartline.signal.rpeaks import StreamingRPeakDetector

    x, fs = _lead(data_dir, "203", 60.0)
    own = RhythmStream(clf, fs=fs)
    given = RhythmStream(clf, fs=fs, detect=False)
    det = StreamingRPeakDetector(fs=fs)
    chunk, every = round(fs), round(5 * fs)
    n_windows = 0
    for k in range(0, x.size, chunk):
        own.push(x[k : k + chunk])
        given.push(x[k : k + chunk])
        given.add_peaks(det.process(x[k : k + chunk]))
        if own.n_samples % every == 0 and own.n_samples >= 10 * fs:
            a, b = own.window(), given.window()
            assert not isinstance(a, str)
            for u, v in zip(a[:3], b[:3], strict=True):
                np.testing.assert_array_equal(u, v)
            n_windows += 1
    assert n_windows >= 8
    with pytest.raises(RuntimeError, match="own"):
        own.add_peaks(np.array([1, 2]))


def test_handover_keeps_the_own_detectors_windows(data_dir, clf):
    """``handover=True`` fed the peaks of a detector started 2 s earlier on the same lead (the
    beat pipeline's, in the stream processor): the own detector's windows, bit for bit, and
    the own detector stops once both agree over the span kept."""
    from heartline.signal.rpeaks import StreamingRPeakDetector

    x0, fs = _lead(data_dir, "203", 120.0)
    skip = round(2 * fs)
    x = x0[skip:]
    own = RhythmStream(clf, fs=fs)
    hand = RhythmStream(clf, fs=fs, handover=True)
    det = StreamingRPeakDetector(fs=fs)
    det.process(x0[:skip])  # the caller's detector saw the warm-up too
    chunk, every = round(fs), round(5 * fs)
    n_windows = 0
    for k in range(0, x.size, chunk):
        own.push(x[k : k + chunk])
        hand.push(x[k : k + chunk])
        hand.add_peaks(det.process(x[k : k + chunk]) - skip)
        if own.n_samples % every == 0 and own.n_samples >= 10 * fs:
            a, b = own.window(), hand.window()
            for u, v in zip(a[:3], b[:3], strict=True):
                np.testing.assert_array_equal(u, v)
            n_windows += 1
    assert n_windows >= 20
    assert hand.handed_over and hand._det is None
