"""Signal-quality flags: flat line, clipping, lead-off, noise; online monitor."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.errors import SignalError
from heartline.signal.quality import (
    QualityConfig,
    QualityFlag,
    QualityMonitor,
    assess_window,
    signal_quality,
)


def _ecg_like(fs: float, duration_s: float) -> np.ndarray:
    t = np.arange(0, duration_s, 1 / fs)
    phase = t % 0.8
    return np.exp(-((phase - 0.3) ** 2) / (2 * 0.012**2)) + 0.25 * np.exp(
        -((phase - 0.6) ** 2) / (2 * 0.05**2)
    )


@pytest.mark.parametrize("fs", [128.0, 360.0, 500.0, 1000.0])
def test_clean_synthetic_ecg_is_usable_at_any_rate(fs):
    q = signal_quality(_ecg_like(fs, 10.0), fs=fs)
    assert len(q) == 5
    assert q.usable.all()
    assert q.overall_score > 0.8


def test_real_clean_record_mostly_usable(mitdb_dir):
    from heartline.io import read_record

    rec = read_record(mitdb_dir / "100", sampto=360 * 60)
    q = signal_quality(rec.lead(0), fs=rec.fs)
    assert q.usable.mean() > 0.9


def test_flat_clipped_lead_off_and_noisy_windows():
    fs = 360.0
    n = int(2 * fs)
    clean = _ecg_like(fs, 2.0)
    flat = np.full(n, 0.3)
    clipped = np.clip(3 * clean, None, 1.2)
    lead_off = clean.copy()
    lead_off[: int(0.7 * n)] = np.nan
    noisy = clean + 0.8 * np.random.default_rng(0).standard_normal(n)
    assert assess_window(clean, fs=fs).flags == QualityFlag.OK
    assert assess_window(flat, fs=fs).flags == QualityFlag.FLAT
    assert QualityFlag.CLIPPED in assess_window(clipped, fs=fs).flags
    w = assess_window(lead_off, fs=fs)
    assert QualityFlag.LEAD_OFF in w.flags and w.score == 0.0
    w = assess_window(noisy, fs=fs)
    assert QualityFlag.NOISY in w.flags and w.score < 0.5
    # mains interference (sinusoid) is not ECG-like: low kurtosis
    t = np.arange(n) / fs
    assert QualityFlag.NOISY in assess_window(np.sin(2 * np.pi * 50 * t), fs=fs).flags
    # baseline wander dominating the window
    assert QualityFlag.NOISY in assess_window(clean + 3 * np.sin(2 * np.pi * 0.3 * t), fs=fs).flags


def test_rails_mark_saturation_and_lead_off():
    fs = 250.0
    cfg = QualityConfig(rails_mv=(-5.0, 5.0))
    x = _ecg_like(fs, 2.0)
    x[:10] = 5.0
    assert QualityFlag.CLIPPED in assess_window(x, fs=fs, config=cfg).flags
    pinned = np.full(500, -5.0)
    pinned[:100] = 0.0
    assert QualityFlag.LEAD_OFF in assess_window(pinned, fs=fs, config=cfg).flags


def test_signal_quality_windows_short_tail_and_nan():
    fs = 360.0
    x = np.r_[_ecg_like(fs, 4.0), np.full(int(2 * fs), np.nan), _ecg_like(fs, 0.5)]
    q = signal_quality(x, fs=fs)
    assert q.start_idx.tolist() == [0, 720, 1440, 2160]
    assert q.stop_idx[-1] == x.size
    assert q.usable.tolist() == [True, True, False, False]
    assert q.has(QualityFlag.LEAD_OFF).tolist() == [False, False, True, False]
    assert q.has(QualityFlag.SHORT).tolist() == [False, False, False, True]
    assert np.all((q.score >= 0) & (q.score <= 1))
    assert q.window(2).flags == QualityFlag.LEAD_OFF and q.window(2).nan_fraction == 1.0


def test_very_short_constant_and_invalid_inputs():
    fs = 360.0
    assert QualityFlag.SHORT in assess_window(_ecg_like(fs, 0.5), fs=fs).flags
    assert assess_window(np.array([1.0]), fs=fs).flags == QualityFlag.FLAT
    with pytest.raises(SignalError, match="empty"):
        signal_quality(np.array([]), fs=fs)
    with pytest.raises(SignalError, match="1-D"):
        signal_quality(np.zeros((10, 2)), fs=fs)
    with pytest.raises(SignalError, match="inf"):
        assess_window(np.r_[0.0, np.inf], fs=fs)
    with pytest.raises(SignalError, match="fs"):
        signal_quality(np.zeros(10), fs=0)
    with pytest.raises(SignalError, match="min_window_s"):
        QualityConfig(window_s=1.0, min_window_s=2.0)


def test_monitor_online_frames_match_offline_windows():
    fs = 250.0
    x = np.r_[_ecg_like(fs, 6.0), np.zeros(int(4 * fs)), _ecg_like(fs, 4.0)]
    monitor = QualityMonitor(fs=fs, config=QualityConfig(window_s=2.0))
    results = [monitor.update(frame) for frame in np.split(x, 14)]  # 1-s frames
    usable = [r.usable for r in results]
    assert usable[:6] == [True] * 6
    assert not any(usable[7:10])  # flat line once the 2-s look-back is inside it
    assert usable[-1]
    assert results[3].start_idx == 2 * 250 and results[3].stop_idx == 4 * 250
    assert monitor.samples_seen == x.size
    monitor.reset()
    assert monitor.samples_seen == 0
    with pytest.raises(SignalError, match="frame"):
        monitor.update(np.array([]))
