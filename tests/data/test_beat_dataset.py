"""build_beat_set: shapes, labels, caching, split hygiene, detected R-peaks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from heartline.data.beat_dataset import build_beat_set, match_detections
from heartline.data.splits import DS1, DS2
from heartline.errors import HeartlineWarning
from heartline.io import read_annotations
from heartline.signal.segmentation import RR_FEATURE_NAMES


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("beats_cache")


def test_annotated_shapes_and_labels(data_dir, cache):
    bs = build_beat_set(["100", "106"], data_dir=data_dir, cache_dir=cache, progress=False)
    n100 = len(read_annotations(data_dir / "mitdb" / "100").beats())
    n106 = len(read_annotations(data_dir / "mitdb" / "106").beats())
    assert len(bs) == n100 + n106
    assert bs.windows.shape == (len(bs), 2, 128)
    assert bs.rr.shape == (len(bs), len(RR_FEATURE_NAMES)) and np.isfinite(bs.rr).all()
    assert bs.rr_names == RR_FEATURE_NAMES
    assert bs.records == ("100", "106")
    assert bs.fs == 360.0 and bs.lead_names[0] == "MLII"
    counts = bs.class_counts()
    assert counts["V"] == 520 + 1  # 106 has 520 V, 100 has 1 V (MIT-BIH directory)
    assert counts["S"] == 33  # 100: 33 A beats
    # within a record beats are sorted by time
    for r in bs.records:
        assert np.all(np.diff(bs.sample_idx[bs.record == r]) > 0)


def test_record_114_leads_reordered(data_dir, cache):
    bs = build_beat_set(["114"], data_dir=data_dir, cache_dir=cache, progress=False)
    assert bs.lead_names == ("MLII", "V5")


def test_cache_is_used_and_keyed_by_parameters(data_dir, tmp_path):
    t0 = time.perf_counter()
    a = build_beat_set(["101"], data_dir=data_dir, cache_dir=tmp_path, progress=False)
    first = time.perf_counter() - t0
    assert len(list(tmp_path.glob("*.npz"))) == 1
    t0 = time.perf_counter()
    b = build_beat_set(["101"], data_dir=data_dir, cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - t0 < first
    np.testing.assert_array_equal(a.windows, b.windows)
    c = build_beat_set(
        ["101"], data_dir=data_dir, cache_dir=tmp_path, window_len=64, progress=False
    )
    assert c.window_len == 64 and len(list(tmp_path.glob("*.npz"))) == 2


def test_no_ds2_record_in_ds1_set(data_dir, cache):
    subset = DS1[:3]
    bs = build_beat_set(subset, data_dir=data_dir, cache_dir=cache, progress=False)
    assert not set(bs.records) & set(DS2)
    assert set(bs.records) == set(subset)
    assert set(DS1).isdisjoint(DS2)


def test_paced_records_left_out(data_dir, cache):
    with pytest.warns(HeartlineWarning, match="paced"):
        bs = build_beat_set(["102", "100"], data_dir=data_dir, cache_dir=cache, progress=False)
    assert bs.records == ("100",)
    with pytest.raises(ValueError, match="rpeaks"):
        build_beat_set(["100"], data_dir=data_dir, rpeaks="magic", cache_dir=cache)


def test_match_detections():
    ref = np.array([100, 200, 300, 400])
    det = np.array([98, 205, 260, 402, 500])
    m = match_detections(det, ref, tolerance=10)
    assert m.ref_index.tolist() == [0, 1, -1, 3, -1]
    assert (m.n_matched, m.n_missed, m.n_false) == (3, 1, 2)
    # one-to-one: two detections near one reference beat, only the closer is matched
    m = match_detections(np.array([195, 199]), np.array([200]), tolerance=10)
    assert m.ref_index.tolist() == [-1, 0]


def test_detected_rpeaks_labels_and_report(data_dir, tmp_path, monkeypatch):
    """The detected path with a stand-in detector of known errors (jitter, misses, extras)."""
    rpeaks = pytest.importorskip("heartline.signal.rpeaks")
    from heartline.data.beat_dataset import detection_report

    ann = read_annotations(data_dir / "mitdb" / "119").beats()
    ref = ann.sample_idx
    kept = np.delete(ref, np.arange(0, ref.size, 50)) + 5  # miss every 50th beat, 14 ms late
    extra = ref[10:20] + 180  # 10 false detections 0.5 s after a beat
    fake = np.sort(np.concatenate([kept, extra]))

    def fake_detect(x, *, fs, method="heartline"):
        assert method == "heartline" and fs == 360.0
        return rpeaks.RPeaks(fake, fs, method)

    monkeypatch.setattr(rpeaks, "detect_r_peaks", fake_detect)
    bs = build_beat_set(
        ["119"], data_dir=data_dir, rpeaks="detected", cache_dir=tmp_path, progress=False
    )
    assert len(bs) == fake.size
    np.testing.assert_array_equal(bs.sample_idx, fake)
    n_missed = ref.size - kept.size
    assert np.count_nonzero(bs.labels == -1) == extra.size
    report = detection_report(["119"], data_dir=data_dir, cache_dir=tmp_path)
    assert report.total_missed == n_missed and report.total_false == extra.size
    # matched beats carry the label of their annotation
    annotated = build_beat_set(["119"], data_dir=data_dir, cache_dir=tmp_path, progress=False)
    lab_of = dict(zip(annotated.sample_idx.tolist(), annotated.labels.tolist(), strict=True))
    matched = bs.labels >= 0
    assert [lab_of[s - 5] for s in bs.sample_idx[matched]] == bs.labels[matched].tolist()


def test_detected_rpeaks_with_heartline_detector(data_dir, tmp_path):
    """End to end with the real detector: nearly every beat of record 100 is found and labelled."""
    rpeaks = pytest.importorskip("heartline.signal.rpeaks")
    if not hasattr(rpeaks, "detect_r_peaks"):
        pytest.skip("heartline.signal.rpeaks.detect_r_peaks not available")
    from heartline.data.beat_dataset import detection_report

    bs = build_beat_set(
        ["100"], data_dir=data_dir, rpeaks="detected", cache_dir=tmp_path, progress=False
    )
    report = detection_report(["100"], data_dir=data_dir, cache_dir=tmp_path)
    assert report.n_detected[0] == len(bs)
    assert np.count_nonzero(bs.labels >= 0) == report.n_matched[0]
    assert report.n_matched[0] > 0.99 * report.n_reference[0]
