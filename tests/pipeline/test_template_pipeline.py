"""BeatPipeline with a hybrid that takes the template columns (``template_features=True``).

The live path must give what the offline path gives: template rows computed on the same
normalised windows, in the same beat order, reset with the stream; ONNX (full graph and split)
must match PyTorch with the wider ``rr`` input; an RR-only model must not pay for templates.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from heartline.data.paths import record_path
from heartline.edge.onnx_export import export_onnx, export_onnx_split
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.io import read_record
from heartline.models.hybrid import N_RR_COLUMNS, HybridNet, n_template_columns
from heartline.pipeline import BeatPipeline, classify_batches, classify_record
from heartline.signal.templates import template_features

FS = 360.0
K = 3
N_RR_TPL = N_RR_COLUMNS + n_template_columns(2)
TOL = 1e-4

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _tpl_net(seed: int = 0) -> HybridNet:
    torch.manual_seed(seed)
    return HybridNet(
        n_leads=2,
        window_len=128,
        n_rr=N_RR_TPL,
        context_k=K,
        channels=4,
        feature_dim=16,
        lstm_hidden=16,
        contrast=True,
        rr_mode="log_ratios",
        template_features=True,
    ).eval()


@pytest.fixture(scope="module")
def tpl_models(tmp_path_factory):
    """The PyTorch net, its full ONNX graph alone, and full + split graphs."""
    torch.set_num_threads(1)
    net = _tpl_net()
    root = tmp_path_factory.mktemp("tpl")
    full = export_onnx(net, root / "full" / "hybrid.onnx", name="hybrid")
    both = export_onnx(net, root / "split" / "hybrid.onnx", name="hybrid")
    export_onnx_split(net, both, name="hybrid")
    return net, OnnxBeatClassifier(full), OnnxBeatClassifier(both)


@pytest.fixture(scope="module")
def excerpt(data_dir):
    # 214: left bundle branch block with ventricular beats, the case the template columns target
    rec = read_record(record_path("mitdb", "214", data_dir=data_dir))
    return replace(rec, signal=rec.signal[: int(90 * FS)])


def _prepare_all(pipe: BeatPipeline, signal: np.ndarray, cuts: np.ndarray):
    batches = [pipe.prepare(part) for part in np.split(signal, cuts)]
    batches.append(pipe.flush_prepare())
    return [b for b in batches if len(b)]


def test_models_load_with_the_wider_rr(tpl_models) -> None:
    _net, full, split = tpl_models
    assert full.n_rr == split.n_rr == N_RR_TPL == 32
    assert not full.has_split and split.has_split


def test_template_rows_follow_the_pipeline_windows(excerpt, tpl_models) -> None:
    """Each beat's rr row = its RR columns, then template_features of the stream's own
    windows in beat order (row i of the batch function = the beat's tracker row)."""
    _net, full, _split = tpl_models
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=full)
    assert pipe.template_features
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.integers(0, excerpt.signal.shape[0], 60))
    batches = _prepare_all(pipe, excerpt.signal, cuts)
    win = np.concatenate([b.windows[:, -1] for b in batches])
    rr = np.concatenate([b.rr[:, -1] for b in batches])
    assert rr.shape == (win.shape[0], N_RR_TPL) and win.shape[0] > 100
    ref = template_features(win, pre_s=pipe.pre_s, post_s=pipe.post_s).values.astype(np.float32)
    np.testing.assert_array_equal(rr[:, N_RR_COLUMNS:], ref)
    # context rows carry the same columns as when the beat was current
    ctx = np.concatenate([b.rr for b in batches])
    np.testing.assert_array_equal(ctx[10, -2], rr[9])
    np.testing.assert_array_equal(ctx[0, 0], rr[0])
    # a new stream starts a new template: the first row again "matches itself" (fill 0)
    pipe.reset()
    again = _prepare_all(pipe, excerpt.signal, cuts)
    np.testing.assert_array_equal(
        np.concatenate([b.rr for b in again]), np.concatenate([b.rr for b in batches])
    )
    assert rr[0, -1] == 0.0 and rr[-1, -1] == 1.0


def test_live_equals_offline_with_template_columns(excerpt, tpl_models) -> None:
    _net, full, split = tpl_models
    for model in (full, split):
        ref = classify_record(excerpt, model=model, chunk_s=1.0)
        assert len(ref) > 100
        pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=model)
        rng = np.random.default_rng(7)
        cuts = np.sort(rng.integers(0, excerpt.signal.shape[0], 150))
        live = []
        for part in np.split(excerpt.signal, cuts):
            live.extend(pipe.process(part))
        live.extend(pipe.flush())
        assert [b.sample_idx for b in live] == ref.sample_idx.tolist()
        assert [b.label for b in live] == ref.labels.tolist()
        probs = np.array([[b.probabilities[c] for c in ref.classes] for b in live], np.float32)
        # other chunks batch other beats together in ONNX Runtime: float32 rounding only
        np.testing.assert_allclose(probs, ref.probabilities, rtol=0, atol=1e-6)
    # full graph and split form: the same decisions, probabilities within float32 rounding
    a = classify_record(excerpt, model=full)
    b = classify_record(excerpt, model=split)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=TOL)


def test_onnx_full_and_split_match_pytorch_with_template_columns(excerpt, tpl_models) -> None:
    net, full, split = tpl_models
    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=full)
    batches = _prepare_all(pipe, excerpt.signal, np.arange(360, excerpt.signal.shape[0], 360))
    windows = np.concatenate([b.windows for b in batches])
    rr = np.concatenate([b.rr for b in batches])
    with torch.no_grad():
        ref = torch.softmax(
            net.forward_sequence(torch.from_numpy(windows), torch.from_numpy(rr)).logits, 1
        ).numpy()
    np.testing.assert_allclose(full.predict_proba_arrays(windows, rr), ref, atol=TOL)
    np.testing.assert_allclose(split.predict_proba_arrays(windows, rr), ref, atol=TOL)
    (got,) = classify_batches(split, [replace(b) for b in batches[:1]])
    np.testing.assert_allclose(got, ref[: len(batches[0])], atol=TOL)
    # the template columns matter to this network (it is not ignoring them)
    flat = rr.copy()
    flat[..., N_RR_COLUMNS:] = 0.0
    assert np.abs(full.predict_proba_arrays(windows, flat) - ref).max() > 1e-3


def test_rr_only_models_compute_no_templates(excerpt, tiny_model, monkeypatch) -> None:
    """The 13-column model: no tracker, and the same inputs whatever the template code does."""
    import heartline.signal.templates as templates

    pipe = BeatPipeline(fs=FS, lead_names=excerpt.lead_names, model=tiny_model)
    assert not pipe.template_features and pipe._templates is None

    def boom(*_a, **_k):
        raise AssertionError("template features computed for an RR-only model")

    monkeypatch.setattr(templates.TemplateTracker, "update", boom)
    res = classify_record(replace(excerpt, signal=excerpt.signal[: int(20 * FS)]), model=tiny_model)
    assert len(res) > 10


def test_pipeline_refuses_more_columns_than_it_makes() -> None:
    with pytest.raises(ValueError, match="template columns"):
        BeatPipeline(
            fs=FS,
            lead_names=("MLII", "V1"),
            model=None,
            context_k=0,
            n_leads=2,
            window_len=128,
            n_rr=N_RR_TPL + 1,
        )


def test_many_devices_with_template_columns_equal_one_by_one(data_dir, tpl_models, monkeypatch):
    """prepare_many computes the template rows of all devices' new beats together; every
    device's rr rows equal its own one-device prepare() and the batch function on its windows."""
    import heartline.signal.templates as templates
    from heartline.pipeline import prepare_many

    _net, full, _split = tpl_models
    recs = [read_record(record_path("mitdb", r, data_dir=data_dir)) for r in ("214", "208", "119")]
    signals = [r.signal[: int(45 * FS)] for r in recs]
    one = [BeatPipeline(fs=FS, lead_names=r.lead_names, model=full) for r in recs]
    many = [BeatPipeline(fs=FS, lead_names=r.lead_names, model=full) for r in recs]
    widest = []
    compare = templates._compare

    def spy(x, t, geom, eps):
        widest.append(x.shape[0])
        return compare(x, t, geom, eps)

    got: list[list] = [[] for _ in recs]
    want: list[list] = [[] for _ in recs]
    for start in range(0, signals[0].shape[0], 360):
        chunks = [s[start : start + 360] for s in signals]
        with monkeypatch.context() as m:
            m.setattr(templates, "_compare", spy)
            out = prepare_many(many, chunks)
        for i, (p, x, b) in enumerate(zip(one, chunks, out, strict=True)):
            assert not isinstance(b, Exception)
            a = p.prepare(x)
            np.testing.assert_array_equal(a.rr, b.rr)
            np.testing.assert_array_equal(a.windows, b.windows)
            got[i].append(b)
            want[i].append(a)
    assert max(widest) >= 2  # several devices' beats went through one call
    for batches in got:
        batches = [b for b in batches if len(b)]
        win = np.concatenate([b.windows[:, -1] for b in batches])
        rr = np.concatenate([b.rr[:, -1] for b in batches])
        assert win.shape[0] > 40
        ref = template_features(win).values.astype(np.float32)
        np.testing.assert_array_equal(rr[:, N_RR_COLUMNS:], ref)
