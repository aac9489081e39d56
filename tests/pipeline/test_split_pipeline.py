"""BeatPipeline with the split form of a hybrid: each beat encoded once, the same results."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from heartline.data.paths import record_path
from heartline.edge.onnx_export import export_onnx, export_onnx_split
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.io import read_record
from heartline.models.hybrid import HybridNet
from heartline.pipeline import BeatBatch, BeatPipeline, classify_batches, classify_record
from heartline.pipeline.beat_pipeline import FeatureCache, prepare_many
from heartline.signal.segmentation import RR_FEATURE_NAMES

FS = 360.0
TOL = 1e-4
K = 3

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


class _Counting:
    """An OnnxBeatClassifier that counts the beats it encodes (split) or sees (full graph)."""

    def __init__(self, clf: OnnxBeatClassifier) -> None:
        self.clf = clf
        self.encoded = 0
        self.full_rows = 0
        for name in ("context_k", "n_leads", "window_len", "n_rr", "classes", "has_split"):
            setattr(self, name, getattr(clf, name))

    def encode(self, windows, rr):
        self.encoded += len(windows)
        return self.clf.encode(windows, rr)

    def predict_proba_features(self, features, **kw):
        return self.clf.predict_proba_features(features, **kw)

    def predict_proba_arrays(self, windows, rr, **kw):
        self.full_rows += len(windows)
        return self.clf.predict_proba_arrays(windows, rr, **kw)


def _export(root, seed: int):
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = HybridNet(
        n_leads=2,
        window_len=128,
        n_rr=len(RR_FEATURE_NAMES),
        context_k=K,
        channels=4,
        feature_dim=16,
        lstm_hidden=16,
        contrast=True,
        rr_mode="log_ratios",
    ).eval()
    path = export_onnx(net, root / f"h{seed}.onnx", name="hybrid")
    export_onnx_split(net, path, name="hybrid")
    return path


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("split_pipe")
    return _export(root, 0), _export(root, 3)


@pytest.fixture(scope="module")
def split(paths):
    clf = OnnxBeatClassifier(paths[0])
    assert clf.has_split
    return clf


@pytest.fixture(scope="module")
def full(paths):
    clf = OnnxBeatClassifier(paths[0], split=False)
    assert not clf.has_split
    return clf


@pytest.fixture(scope="module")
def excerpt(data_dir):
    rec = read_record(record_path("mitdb", "208", data_dir=data_dir))
    return replace(rec, signal=rec.signal[: int(60 * FS)])


def _same(a, b, *, atol: float = TOL) -> None:
    np.testing.assert_array_equal(a.sample_idx, b.sample_idx)
    assert a.labels.tolist() == b.labels.tolist()
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=atol, rtol=0)


def test_classify_record_with_split_equals_full_graph(excerpt, split, full) -> None:
    counting = _Counting(split)
    got = classify_record(excerpt, model=counting, chunk_s=1.0)
    ref = classify_record(excerpt, model=full, chunk_s=1.0)
    assert len(ref) > 80 and len(set(ref.labels.tolist())) > 1
    _same(got, ref)
    # each beat encoded once (not context_k + 1 times), never through the full graph
    assert counting.encoded == len(got) and counting.full_rows == 0


def test_streaming_chunks_equal_whole_record(excerpt, split) -> None:
    whole = classify_record(excerpt, model=split, chunk_s=excerpt.signal.shape[0] / FS)
    for chunk_s in (0.1, 0.37, 2.5):
        _same(classify_record(excerpt, model=split, chunk_s=chunk_s), whole, atol=1e-6)
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split)
    cuts = np.sort(np.random.default_rng(1).integers(0, excerpt.signal.shape[0], 120))
    beats = []
    for part in np.split(excerpt.signal, cuts):  # empty and 1-sample chunks included
        beats.extend(pipe.process(part))
    beats.extend(pipe.flush())
    assert [b.sample_idx for b in beats] == whole.sample_idx.tolist()
    assert [b.label for b in beats] == whole.labels.tolist()
    np.testing.assert_allclose(
        [[b.probabilities[c] for c in whole.classes] for b in beats], whole.probabilities, atol=1e-6
    )


def _batches(pipe: BeatPipeline, signal: np.ndarray, step: int) -> list[BeatBatch]:
    out = [pipe.prepare(signal[s : s + step]) for s in range(0, signal.shape[0], step)]
    return [b for b in out if len(b)]


def test_context_padding_at_segment_start(excerpt, split, full) -> None:
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split)
    batch = pipe.prepare(excerpt.signal[: int(20 * FS)])
    assert len(batch) > K + 1 and batch.context is not None
    # beat i sees beats i-3..i-1, the first beat repeated before the stream start
    np.testing.assert_array_equal(
        batch.context.keys[:4], [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3]]
    )
    np.testing.assert_array_equal(batch.windows[0, 0], batch.windows[0, -1])
    (probs,) = classify_batches(split, [batch])
    np.testing.assert_allclose(probs, full.predict_proba_arrays(batch.windows, batch.rr), atol=TOL)
    # a new segment (reset) starts the padding and the cache afresh: nothing of the old stream
    pipe.reset()
    other = excerpt.signal[int(30 * FS) : int(50 * FS)]
    again = pipe.prepare(other)
    assert again.context is not None and again.context.cache is not batch.context.cache
    np.testing.assert_array_equal(again.context.keys[0], [0, 0, 0, 0])
    fresh = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split).prepare(other)
    np.testing.assert_allclose(
        classify_batches(split, [again])[0], classify_batches(split, [fresh])[0], atol=1e-6
    )


def test_batches_that_are_each_others_context_in_one_call(excerpt, split, full) -> None:
    """Several batches of one stream classified together, in order, out of order, or lost."""
    signal = excerpt.signal[: int(40 * FS)]

    def pipe() -> BeatPipeline:
        return BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split)

    batches = _batches(pipe(), signal, 720)
    assert len(batches) > 5
    ref = [full.predict_proba_arrays(b.windows, b.rr) for b in batches]
    counting = _Counting(split)
    got = classify_batches(counting, batches)  # all at once: later ones need earlier ones
    assert counting.encoded == sum(len(b) for b in batches)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, atol=TOL)
    # out of order, and with one batch never classified (a failed call): the missing context
    # beats are encoded from the batch's own windows
    batches = _batches(pipe(), signal, 720)
    order = [3, 0, 1, 5, 4]  # batch 2 is lost
    counting = _Counting(split)
    for i in order:
        np.testing.assert_allclose(classify_batches(counting, [batches[i]])[0], ref[i], atol=TOL)
    assert counting.encoded > sum(len(batches[i]) for i in order)


def test_many_devices_in_one_call_equal_full_graph(data_dir, split, full) -> None:
    recs = [read_record(record_path("mitdb", r, data_dir=data_dir)) for r in ("208", "119", "207")]
    signals = [r.signal[: int(30 * FS)] for r in recs]

    def pipes(model) -> list[BeatPipeline]:
        return [BeatPipeline(fs=FS, lead_names=r.lead_names, model=model) for r in recs]

    a, b = pipes(split), pipes(full)
    n = 0
    for start in range(0, signals[0].shape[0], 72):  # 0.2 s frames, as the devices send
        chunks = [s[start : start + 72] for s in signals]
        ba, bb = prepare_many(a, chunks), prepare_many(b, chunks)
        pa, pb = classify_batches(split, ba), classify_batches(full, bb)  # type: ignore[arg-type]
        for x, y in zip(pa, pb, strict=True):
            np.testing.assert_allclose(x, y, atol=TOL)
            n += len(x)
    assert n > 90


def test_fallbacks_keep_working(excerpt, split, full, paths) -> None:
    batches = _batches(
        BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split),
        excerpt.signal[: int(20 * FS)],
        1800,
    )
    ref = [full.predict_proba_arrays(b.windows, b.rr) for b in batches]
    # a model without the split: the full graph on the batch's windows
    counting = _Counting(full)
    for g, r in zip(classify_batches(counting, batches), ref, strict=True):
        np.testing.assert_array_equal(g, r)
    assert counting.full_rows == sum(len(b) for b in batches) and counting.encoded == 0
    # batches without context (made by hand): the full graph even for a split model
    bare = [BeatBatch(b.windows, b.rr, b.sample_idx, b.quality_ok) for b in batches]
    counting = _Counting(split)
    classify_batches(counting, bare)
    assert counting.full_rows == sum(len(b) for b in bare) and counting.encoded == 0
    # the same stream classified by another model: its cache is not mixed up between models
    other = OnnxBeatClassifier(paths[1])
    other_full = OnnxBeatClassifier(paths[1], split=False)
    fresh = _batches(
        BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=split),
        excerpt.signal[: int(20 * FS)],
        1800,
    )
    classify_batches(split, fresh[:1])
    for bt in fresh[1:]:
        np.testing.assert_allclose(
            classify_batches(other, [bt])[0],
            other_full.predict_proba_arrays(bt.windows, bt.rr),
            atol=TOL,
        )


def test_feature_cache_ring() -> None:
    cache = FeatureCache(4)
    model = object()
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    cache.put(model=model, keys=np.arange(4), features=feats[:4])
    got, found = cache.get(model=model, keys=np.array([[0, 3], [4, 2]]))
    np.testing.assert_array_equal(found, [[True, True], [False, True]])
    np.testing.assert_array_equal(got[0], feats[[0, 3]])
    cache.reserve(10)  # grows, keeping what it holds
    cache.put(model=model, keys=np.arange(4, 6), features=feats[4:])
    got, found = cache.get(model=model, keys=np.arange(6))
    assert found.all()
    np.testing.assert_array_equal(got, feats)
    assert not cache.get(model=object(), keys=np.arange(6))[1].any()
