"""Split ONNX form of a hybrid (encoder + sequence graph): export, runtime loading, parity."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from heartline.data.beat_dataset import build_beat_set
from heartline.edge import shipped
from heartline.edge.onnx_export import export_onnx, export_onnx_split
from heartline.edge.runtime import OnnxBeatClassifier, split_paths
from heartline.edge.shipped import PARITY_TOLERANCE, check_split_parity
from heartline.models.hybrid import HybridNet
from heartline.signal.segmentation import RR_FEATURE_NAMES, model_rr_columns
from heartline.training import ship as shipping
from heartline.training.registry import DEEP_MODELS, get_model
from heartline.training.ship import ship_split
from heartline.training.trainer import predict_logits

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

N_RR = len(RR_FEATURE_NAMES)


def _net(seed: int, **kw) -> HybridNet:
    torch.manual_seed(seed)
    params = dict(context_k=3, channels=4, feature_dim=16, lstm_hidden=16, early_alarm=True)
    params.update(kw)
    return HybridNet(n_leads=2, window_len=128, n_rr=N_RR, **params).eval()


@pytest.fixture(scope="module")
def beats(data_dir):
    # record 208: N, S, V and F beats
    return build_beat_set(["208"], data_dir=data_dir, progress=False).subset(np.arange(700))


@pytest.fixture(scope="module")
def split_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    net = _net(0, contrast=True, rr_mode="log_ratios")
    path = export_onnx(net, root / "hybrid.onnx", name="hybrid")
    export_onnx_split(net, path, name="hybrid")
    return net, path


def test_split_composition_equals_full_model_and_pytorch_on_real_beats(split_model, beats):
    net, path = split_model
    clf = OnnxBeatClassifier(path)
    assert clf.has_split and clf.feature_dim == 16 + 7 + (N_RR - 8)
    assert [p.name for p in split_paths(path)] == ["hybrid.encoder.onnx", "hybrid.sequence.onnx"]
    full = clf.predict_proba(beats)
    split = clf.predict_proba(beats, use_split=True, batch_size=256)
    assert np.abs(split - full).max() <= PARITY_TOLERANCE
    torch_p = torch.softmax(torch.from_numpy(predict_logits(net, beats)), 1).numpy()
    assert np.abs(split - torch_p).max() <= PARITY_TOLERANCE
    # the early-alarm head from the sequence graph
    ctx = beats.context_index(clf.context_k)
    w, r = beats.windows[ctx], model_rr_columns(beats.rr[ctx], clf.n_rr)
    feats = clf.encode(w.reshape(-1, 2, 128), r.reshape(-1, clf.n_rr)).reshape(len(beats), 4, -1)
    np.testing.assert_allclose(
        clf.predict_proba_features(feats, head="next"),
        clf.predict_proba_arrays(w, r, head="next"),
        atol=PARITY_TOLERANCE,
    )
    # the comparison is sharp: another network's features give other probabilities
    other = OnnxBeatClassifier(
        export_onnx(_net(5, contrast=True, rr_mode="log_ratios"), path.parent / "other.onnx")
    )
    assert not other.has_split
    assert np.abs(other.predict_proba(beats) - split).max() > 10 * PARITY_TOLERANCE
    rep = check_split_parity(path, beats, torch_proba=torch_p)
    assert rep.n_beats == len(beats) and rep.max_abs_diff_full <= PARITY_TOLERANCE
    with pytest.raises(ValueError, match="split ONNX differs"):
        check_split_parity(path, beats, torch_proba=other.predict_proba(beats))


def test_split_runtime_checks_shapes(split_model):
    _, path = split_model
    clf = OnnxBeatClassifier(path)
    with pytest.raises(ValueError, match="windows must have shape"):
        clf.encode(np.zeros((2, 1, 128)), np.zeros((2, N_RR)))
    with pytest.raises(ValueError, match="features must have shape"):
        clf.predict_proba_features(np.zeros((2, 3, clf.feature_dim)))
    assert clf.encode(np.zeros((0, 2, 128)), np.zeros((0, N_RR))).shape == (0, clf.feature_dim)


def test_split_export_refuses_nets_without_a_split(tmp_path):
    flat = _net(0, context_k=0)
    path = export_onnx(flat, tmp_path / "k0.onnx")
    with pytest.raises(ValueError, match="context_k == 0"):
        export_onnx_split(flat, path)
    torch.manual_seed(0)
    cnn = DEEP_MODELS["cnn"](n_leads=2, window_len=128, n_rr=N_RR, dropout=0.3).eval()
    with pytest.raises(ValueError, match="no encoder/sequence split"):
        export_onnx_split(cnn, path)
    with pytest.raises(FileNotFoundError, match="full_path"):
        export_onnx_split(_net(0), tmp_path / "absent.onnx")


def test_runtime_falls_back_to_the_full_graph(split_model, tmp_path, caplog):
    net, path = split_model
    # no split files: full graph only; split=True refuses
    alone = tmp_path / "alone.onnx"
    shutil.copyfile(path, alone)
    assert not OnnxBeatClassifier(alone).has_split
    with pytest.raises(FileNotFoundError, match="split file"):
        OnnxBeatClassifier(alone, split=True)
    with pytest.raises(ValueError, match="use_split"):
        OnnxBeatClassifier(alone).predict_proba(None, use_split=True)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no split form"):
        OnnxBeatClassifier(alone).encode(np.zeros((1, 2, 128)), np.zeros((1, N_RR)))
    assert not OnnxBeatClassifier(path, split=False).has_split
    # a stale pair (exported beside another model) is never paired with this one
    stale = tmp_path / "stale.onnx"
    export_onnx(net, stale)
    export_onnx_split(net, stale)
    export_onnx(_net(7), stale)  # re-exported, the split files not
    with caplog.at_level(logging.WARNING, logger="heartline.edge.runtime"):
        assert not OnnxBeatClassifier(stale).has_split
    assert "was not exported from this stale.onnx" in caplog.text
    with pytest.raises(ValueError, match="was not exported from"):
        OnnxBeatClassifier(stale, split=True)


def _save_shipped(dest, seed: int):
    """A tiny trained-shape hybrid saved as the shipped files (``hybrid.pt``/``.json``)."""
    torch.manual_seed(seed)
    model = get_model("hybrid", context_k=2, channels=4, feature_dim=16, lstm_hidden=16)
    model.build(n_leads=2, window_len=128, n_rr=N_RR)
    model.net.eval()
    model.save(dest / "run")
    shutil.copyfile(dest / "run" / "model.pt", dest / "hybrid.pt")
    shutil.copyfile(dest / "run" / "model.json", dest / "hybrid.json")
    return model


def test_ship_split_adds_the_split_to_a_shipped_model(tmp_path, data_dir):
    model = _save_shipped(tmp_path, 0)
    full = export_onnx(model.net, tmp_path / "hybrid.onnx", name="hybrid")
    before = full.read_bytes()
    rep = ship_split(dest=tmp_path, records=("100",), data_dir=data_dir)
    assert full.read_bytes() == before  # the full model is left as it is
    assert rep.encoder_path.is_file() and rep.sequence_path.is_file()
    assert rep.n_beats > 2000 and rep.max_abs_diff_full <= PARITY_TOLERANCE
    assert rep.max_abs_diff_torch <= PARITY_TOLERANCE
    assert OnnxBeatClassifier(full).has_split
    assert not (tmp_path / "hybrid_metrics.json").exists()  # nothing shipped to record it in
    # a shipped summary gets the split recorded (and keeps what it had)
    (tmp_path / "hybrid_metrics.json").write_text(json.dumps({"model": "hybrid"}))
    ship_split(dest=tmp_path, records=("100",), data_dir=data_dir)
    summary = json.loads((tmp_path / "hybrid_metrics.json").read_text())
    assert summary["model"] == "hybrid"
    assert summary["split_files"] == ["hybrid.encoder.onnx", "hybrid.sequence.onnx"]
    assert summary["max_abs_diff_split_vs_onnx"] <= PARITY_TOLERANCE
    assert "record" in summary["split_check"] and "100" in summary["split_check"]
    # weights that are not the ONNX model's: refused, nothing written
    for p in split_paths(full):
        p.unlink()
    _save_shipped(tmp_path, 1)
    with pytest.raises(ValueError, match="are not the weights"):
        ship_split(dest=tmp_path, records=("100",), data_dir=data_dir)
    assert not any(p.exists() for p in split_paths(full))


def test_shipped_model_has_its_split_form(data_dir):
    onnx_path = shipped.shipped_model_path()
    clf = OnnxBeatClassifier(onnx_path, split=True)  # present, and made from this hybrid.onnx
    assert clf.has_split and clf.context_k > 0
    beats = build_beat_set(["119"], data_dir=data_dir, progress=False, template_features=True)
    torch_p = shipping._load_shipped_torch(shipped.ASSETS_DIR, "hybrid").predict_proba(beats)
    rep = check_split_parity(onnx_path, beats, torch_proba=torch_p)
    assert rep.max_abs_diff_full <= PARITY_TOLERANCE
    assert rep.max_abs_diff_torch <= PARITY_TOLERANCE
    # the shipped summary and model card say so
    summary = json.loads((shipped.ASSETS_DIR / "hybrid_metrics.json").read_text())
    assert summary["split_files"] == [p.name for p in split_paths(onnx_path)]
    assert "`hybrid.encoder.onnx` (per-beat features)" in shipped.shipped_model_card().read_text()


def test_ship_writes_and_checks_the_split_form(tmp_path, data_dir):
    """`heartline ship` of a hybrid with context: split files beside it, parity in the summary;
    a later ship of a context-free hybrid into the same folder removes them."""
    from heartline.training.protocols import ProtocolData

    data = ProtocolData(
        data_dir=data_dir, train_records=("101",), val_records=("106",), test_records=("100",)
    )
    dest = tmp_path / "dest"
    for k in (2, 0):
        torch.manual_seed(0)
        model = get_model("hybrid", context_k=k, channels=4, feature_dim=16, lstm_hidden=16)
        model.build(n_leads=2, window_len=128, n_rr=N_RR)
        model.net.eval()
        model.save(tmp_path / f"run{k}" / "model")
        rep = shipping.ship(
            tmp_path / f"run{k}", dest=dest, data=data, n_bootstrap=5, latency_beats=10
        )
        enc, seq = split_paths(rep.onnx_path)
        s = rep.metrics
        if k:
            assert enc.is_file() and seq.is_file()
            assert s["split_files"] == [enc.name, seq.name]
            assert s["max_abs_diff_split_vs_onnx"] <= PARITY_TOLERANCE
            assert s["max_abs_diff_split_vs_torch"] <= PARITY_TOLERANCE
            assert OnnxBeatClassifier(rep.onnx_path).has_split
        else:
            assert not enc.exists() and not seq.exists() and s["split_files"] is None
            assert not OnnxBeatClassifier(rep.onnx_path).has_split


def test_ship_scores_a_template_hybrid_on_template_beat_sets(tmp_path, data_dir):
    """A ``template_features = true`` hybrid (32 RR columns) ships: ``ship`` builds the DS2 beat
    sets with the template columns it reads (the default data has only the 13 RR columns)."""
    from heartline.training.protocols import ProtocolData

    data = ProtocolData(
        data_dir=data_dir, train_records=("101",), val_records=("106",), test_records=("100",)
    )
    assert not data.template_features
    torch.manual_seed(0)
    model = get_model(
        "hybrid", context_k=2, channels=4, feature_dim=16, lstm_hidden=16, template_features=True
    )
    model.build(n_leads=2, window_len=128, n_rr=32)
    model.net.eval()
    model.save(tmp_path / "run" / "model")
    rep = shipping.ship(
        tmp_path / "run", dest=tmp_path / "dest", data=data, n_bootstrap=5, latency_beats=10
    )
    assert OnnxBeatClassifier(rep.onnx_path).n_rr == 32
    assert rep.max_abs_diff <= PARITY_TOLERANCE
    assert rep.metrics["max_abs_diff_split_vs_torch"] <= PARITY_TOLERANCE
    assert rep.metrics["ds2"]["annotated"]["n_test_beats"] > 2000
