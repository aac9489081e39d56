"""Heartline's R-peak detector, the peer registry and their behaviour on real and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from heartline.bench.qrs import match_beats
from heartline.errors import SignalError
from heartline.io import read_annotations, read_record
from heartline.signal.rpeaks import (
    DETECTORS,
    RPeaks,
    StreamingRPeakDetector,
    detect_r_peaks,
)

FS = 360.0


def _load(mitdb_dir: Path, record: str, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(seconds * FS)
    ecg = read_record(mitdb_dir / record, channels=[0], sampto=n).lead(0)
    beats = read_annotations(mitdb_dir / record, sampto=n).beats().sample_idx
    return ecg, beats


def _stream(x: np.ndarray, sizes: list[int], fs: float = FS) -> np.ndarray:
    det = StreamingRPeakDetector(fs=fs)
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out.append(det.process(x[i : i + n]))
        i += n
        k += 1
    out.append(det.flush())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def rec100(mitdb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return _load(mitdb_dir, "100", 300)


@pytest.mark.parametrize("record", ["100", "119", "208"])
def test_detector_hits_annotated_beats(mitdb_dir: Path, record: str) -> None:
    ecg, beats = _load(mitdb_dir, record, 300)
    peaks = detect_r_peaks(ecg, fs=FS)
    assert isinstance(peaks, RPeaks) and peaks.method == "heartline" and peaks.fs == FS
    assert peaks.sample_idx.dtype == np.int64
    assert np.all(np.diff(peaks.sample_idx) > 0)
    c = match_beats(beats, peaks.sample_idx, tolerance=round(0.15 * FS))
    assert c.se > 0.99 and c.ppv > 0.99, c
    # The refined positions sit on the R wave: most are within 50 ms of the annotation.
    c50 = match_beats(beats, peaks.sample_idx, tolerance=round(0.05 * FS))
    assert c50.se > 0.97, c50


@pytest.mark.parametrize("size", [1, 7, 360, 1000])
def test_streaming_fixed_chunks_equal_whole_record(
    rec100: tuple[np.ndarray, np.ndarray], size: int
) -> None:
    x = rec100[0][: int(20 * FS)]
    whole = detect_r_peaks(x, fs=FS).sample_idx
    assert whole.size > 15
    np.testing.assert_array_equal(_stream(x, [size]), whole)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=12))
def test_streaming_random_chunks_equal_whole_record(
    rec100: tuple[np.ndarray, np.ndarray], sizes: list[int]
) -> None:
    x = rec100[0][int(30 * FS) : int(60 * FS)]
    np.testing.assert_array_equal(_stream(x, sizes), detect_r_peaks(x, fs=FS).sample_idx)


def test_process_returns_absolute_sorted_indices(rec100: tuple[np.ndarray, np.ndarray]) -> None:
    x = rec100[0][: int(30 * FS)]
    det = StreamingRPeakDetector(fs=FS)
    first = det.process(x[:5000])
    second = det.process(x[5000:])
    rest = det.flush()
    allp = np.concatenate((first, second, rest))
    assert allp.dtype == np.int64 and np.all(np.diff(allp) > 0)
    assert second.size and second.min() > 4000  # absolute, not chunk-relative
    # Latency: peaks confirmed by the first chunk are not later than the chunk itself.
    assert first.size and first.max() < 5000


@pytest.mark.parametrize("fs", [128.0, 250.0, 500.0, 1000.0])
def test_works_at_other_sampling_rates(
    rec100: tuple[np.ndarray, np.ndarray], mitdb_dir: Path, fs: float
) -> None:
    for record in ("100", "119"):
        ecg, beats = _load(mitdb_dir, record, 120)
        y = resample_poly(ecg, int(fs), int(FS))
        ref = np.round(beats * fs / FS).astype(np.int64)
        peaks = detect_r_peaks(y, fs=fs).sample_idx
        c = match_beats(ref, peaks, tolerance=round(0.15 * fs))
        assert c.se > 0.99 and c.ppv > 0.99, (record, fs, c)


def test_bad_inputs() -> None:
    assert detect_r_peaks(np.zeros(0), fs=FS).sample_idx.size == 0
    assert detect_r_peaks(np.full(int(30 * FS), 1.3), fs=FS).sample_idx.size == 0  # flat line
    assert detect_r_peaks(np.zeros(10), fs=FS).sample_idx.size == 0  # very short
    rng = np.random.default_rng(0)
    assert detect_r_peaks(rng.normal(0, 1e-6, 5000), fs=FS).sample_idx.size == 0  # below 0.02 mV
    x = np.ones(1000)
    x[500] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        detect_r_peaks(x, fs=FS)
    with pytest.raises(SignalError, match="1-D"):
        detect_r_peaks(np.zeros((100, 2)), fs=FS)
    for bad_fs in (0, -1, float("nan")):
        with pytest.raises(SignalError, match="fs"):
            detect_r_peaks(np.zeros(100), fs=bad_fs)
    with pytest.raises(SignalError, match="50 Hz"):
        detect_r_peaks(np.zeros(100), fs=20.0)
    det = StreamingRPeakDetector(fs=FS)
    with pytest.raises(SignalError, match="NaN"):
        det.process(np.array([0.0, np.inf]))
    assert det.process(np.zeros(0)).size == 0
    det.flush()
    with pytest.raises(SignalError, match="flushed"):
        det.process(np.zeros(3))
    det.reset()
    assert det.process(np.zeros(3)).size == 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="valid options"):
        StreamingRPeakDetector(fs=FS, no_such_option=1.0)
    with pytest.raises(ValueError, match="refractory_s"):
        StreamingRPeakDetector(fs=FS, refractory_s=-1.0)


def test_registry_names_and_unknown_method() -> None:
    expected = {
        "heartline",
        "xqrs",
        "neurokit",
        "neurokit_pantompkins1985",
        "neurokit_hamilton2002",
        "neurokit_elgendi2010",
        "neurokit_kalidas2017",
    }
    assert expected <= set(DETECTORS)
    with pytest.raises(ValueError, match=r"valid methods: .*heartline.*xqrs"):
        detect_r_peaks(np.zeros(100), fs=FS, method="nope")


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_every_detector_runs_on_30_s(rec100: tuple[np.ndarray, np.ndarray], method: str) -> None:
    x = rec100[0][: int(30 * FS)]
    beats = rec100[1][rec100[1] < x.size]
    peaks = detect_r_peaks(x, fs=FS, method=method)
    assert peaks.method == method and peaks.sample_idx.dtype == np.int64
    c = match_beats(beats, peaks.sample_idx, tolerance=round(0.15 * FS))
    assert c.se > 0.9 and c.ppv > 0.9, (method, c)
    # Peers behave on the inputs they cannot handle themselves.
    assert detect_r_peaks(np.zeros(0), fs=FS, method=method).sample_idx.size == 0
    assert detect_r_peaks(np.full(int(5 * FS), 0.5), fs=FS, method=method).sample_idx.size == 0
