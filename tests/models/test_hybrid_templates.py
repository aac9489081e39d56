"""The hybrid's opt-in template columns: fixed encoding, shapes, save/load, the config switch,
and RR-only models (the 13-column fixture, shipped before) unchanged by the wider beat sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from heartline.data.beat_dataset import build_beat_set
from heartline.data.beat_set import BeatSet
from heartline.models.hybrid import (
    N_RR_COLUMNS,
    HybridNet,
    encode_template_features,
    n_template_columns,
)
from heartline.signal.segmentation import RR_FEATURE_NAMES
from heartline.signal.templates import template_feature_names
from heartline.training.config import ExperimentConfig, ModelConfig, config_from_dict, load_config
from heartline.training.registry import get_model
from heartline.training.trainer import predict_logits

torch.set_num_threads(1)

N_TPL = n_template_columns(2)
TINY = dict(context_k=2, channels=4, feature_dim=16, lstm_hidden=16)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _net(*, template_features: bool, rr_mode: str = "log_ratios", **kw) -> HybridNet:
    torch.manual_seed(0)
    n_rr = N_RR_COLUMNS + (N_TPL if template_features else 0)
    return HybridNet(
        n_leads=2,
        window_len=32,
        n_rr=n_rr,
        rr_mode=rr_mode,
        template_features=template_features,
        **TINY,
        **kw,
    ).eval()


def _inputs(n: int = 6, t: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, t, 2, 32, generator=g)
    rr = torch.rand(n, t, N_RR_COLUMNS + N_TPL, generator=g) + 0.3
    return w, rr


def test_encoding_is_bounded_and_keeps_the_width() -> None:
    x = torch.randn(50, N_TPL) * 20
    x[:, [3, 4, 5, 12, 13, 14]] = x[:, [3, 4, 5, 12, 13, 14]].abs()  # RMS differences are >= 0
    enc = encode_template_features(x, 2)
    assert enc.shape == x.shape and torch.isfinite(enc).all()
    assert enc.abs().max() <= 3.0
    # correlations and fill bounded to their ranges; a row that matches its template encodes
    # to correlations 1, differences and log-ratios 0
    match = torch.tensor([[1.0, 1, 1, 0, 0, 0, 0, 0, 0] * 2 + [1.0]])
    torch.testing.assert_close(encode_template_features(match, 2), match)
    with pytest.raises(ValueError, match="template columns"):
        encode_template_features(torch.zeros(2, N_TPL), 1)


def test_switch_off_is_the_rr_only_network() -> None:
    """template_features=False: the same layers and outputs as a hybrid built without the
    argument (the networks of every existing config and model file)."""
    w, rr = _inputs()
    rr13 = rr[..., :N_RR_COLUMNS]
    torch.manual_seed(0)
    legacy = HybridNet(n_leads=2, window_len=32, n_rr=N_RR_COLUMNS, rr_mode="log_ratios", **TINY)
    off = _net(template_features=False)
    assert legacy.state_dict().keys() == off.state_dict().keys()
    for k, v in legacy.state_dict().items():
        torch.testing.assert_close(off.state_dict()[k], v, rtol=0, atol=0)
    torch.testing.assert_close(off(w, rr13), legacy.eval()(w, rr13), rtol=0, atol=0)


@pytest.mark.parametrize("rr_mode", ["log_ratios", "raw"])
def test_template_columns_reach_the_output(rr_mode: str) -> None:
    net = _net(template_features=True, rr_mode=rr_mode)
    w, rr = _inputs()
    out = net(w, rr)
    assert out.shape == (6, 5) and torch.isfinite(out).all()
    other = rr.clone()
    other[..., N_RR_COLUMNS:] = 0.0
    assert not torch.allclose(net(w, other), out)
    # RR columns still matter, and only the leading 13 are RR columns
    rr2 = rr.clone()
    rr2[..., 0] *= 2.0
    assert not torch.allclose(net(w, rr2), out)
    # the extra parameters are those of the 19 extra inputs of the projection (and bypass)
    off = _net(template_features=False, rr_mode=rr_mode)
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in off.parameters())
    per_input = TINY["feature_dim"] + (4 * TINY["lstm_hidden"] if rr_mode == "log_ratios" else 0)
    per_input += TINY["feature_dim"] if rr_mode == "log_ratios" else 0  # head input
    assert extra == N_TPL * per_input


def test_rhythm_rr_off_keeps_the_template_columns() -> None:
    net = _net(template_features=True, rhythm_rr=False)
    w, rr = _inputs()
    rr2 = rr.clone()
    rr2[..., 8:N_RR_COLUMNS] += 1.0  # rhythm columns: ignored
    torch.testing.assert_close(net(w, rr2), net(w, rr))
    rr3 = rr.clone()
    rr3[..., N_RR_COLUMNS:] += 1.0  # template columns: used
    assert not torch.allclose(net(w, rr3), net(w, rr))


def test_wrong_width_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="template_features=True"):
        HybridNet(n_leads=2, window_len=32, n_rr=N_RR_COLUMNS, template_features=True)
    with pytest.raises(ValueError, match="23"):  # one lead: 13 + 10
        HybridNet(n_leads=1, window_len=32, n_rr=N_RR_COLUMNS + N_TPL, template_features=True)


def _synthetic(n: int = 400, seed: int = 0) -> BeatSet:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    rr = (rng.random((n, N_RR_COLUMNS + N_TPL)) + 0.5).astype(np.float32)
    windows = rng.standard_normal((n, 2, 32)).astype(np.float32)
    windows[:, :, 10] += labels[:, None]
    return BeatSet(
        windows=windows,
        rr=rr,
        rr_names=RR_FEATURE_NAMES + template_feature_names(2),
        labels=labels,
        record=np.repeat(["a", "b"], n // 2),
        sample_idx=np.tile(np.arange(n // 2) * 300, 2),
        fs=360.0,
        lead_names=("MLII", "V1"),
        pre_s=0.25,
        post_s=0.45,
    )


def test_registry_model_trains_saves_and_loads_with_templates(tmp_path) -> None:
    from heartline.training.config import TrainConfig

    beats = _synthetic()
    cfg = TrainConfig(max_epochs=1, monitor="none", batch_size=64)
    model = get_model("hybrid", train=cfg, template_features=True, rr_mode="log_ratios", **TINY)
    model.fit(beats, beats.subset(np.zeros(len(beats), bool)))
    assert model.net.n_rr == N_RR_COLUMNS + N_TPL and model.net.template_features
    model.save(tmp_path / "m")
    again = type(model).load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(beats), model.predict_proba(beats))
    # the same model refuses beats without the template columns
    rr_only = dataclasses.replace(
        beats, rr=beats.rr[:, :N_RR_COLUMNS], rr_names=beats.rr_names[:N_RR_COLUMNS]
    )
    with pytest.raises(ValueError, match="32 RR features"):
        model.predict_proba(rr_only)
    # and an RR-only hybrid fitted on it is the 13-column network
    plain = get_model("hybrid", train=cfg, rr_mode="log_ratios", **TINY)
    plain.fit(rr_only, rr_only.subset(np.zeros(len(beats), bool)))
    assert plain.net.n_rr == N_RR_COLUMNS


def test_ensemble_members_take_the_templates() -> None:
    from heartline.models.ensemble import HybridEnsemble

    net = HybridEnsemble(
        n_leads=2,
        window_len=32,
        n_rr=N_RR_COLUMNS + N_TPL,
        n_members=2,
        template_features=True,
        **TINY,
    ).eval()
    assert all(m.template_features for m in net.members)
    w, rr = _inputs()
    assert torch.isfinite(net(w, rr)).all()


def test_config_switch(tmp_path) -> None:
    assert ModelConfig().template_features is False
    base = load_config("configs/experiments/hybrid_best.toml")
    tpl = load_config("configs/shipped/hybrid_best_tpl.toml")
    assert base.model.template_features is False and tpl.model.template_features is True
    # nothing else differs from the shipped recipe
    assert (
        dataclasses.replace(
            tpl,
            name=base.name,
            model=ModelConfig(
                name=tpl.model.name,
                params={k: v for k, v in tpl.model.params.items() if k != "template_features"},
            ),
        )
        == base
    )
    with pytest.raises(TypeError, match="true or false"):
        config_from_dict({"model": {"name": "hybrid", "params": {"template_features": "yes"}}})
    with pytest.raises(ValueError, match="template_features"):  # hybrids only
        config_from_dict({"model": {"name": "cnn", "params": {"template_features": True}}})
    assert isinstance(base, ExperimentConfig)


def test_selection_builds_template_beats_only_for_template_candidates() -> None:
    from heartline.training.protocols import ProtocolData

    assert ProtocolData().template_features is False
    assert ProtocolData.quick().template_features is False


RR13_MODEL = Path(__file__).parent / "fixtures" / "hybrid_rr13"


@pytest.fixture(scope="module")
def rr13_model_and_beats(data_dir):
    """The 13-column hybrid shipped before the template columns (fixture) and record 214."""
    from heartline.training.deep import TorchBeatClassifier

    model = TorchBeatClassifier.load(RR13_MODEL)
    kw = {"data_dir": data_dir, "progress": False}
    plain = build_beat_set(["214"], **kw)
    wide = build_beat_set(["214"], template_features=True, **kw)
    return model, plain, wide


def test_rr13_model_is_bit_identical_on_template_beat_sets(rr13_model_and_beats, tmp_path) -> None:
    """A 13-column model (an old model file, no template_features key) takes the leading
    columns of the wider set: same numbers, in PyTorch and ONNX Runtime."""
    from heartline.edge.onnx_export import export_onnx
    from heartline.edge.runtime import OnnxBeatClassifier

    model, plain, wide = rr13_model_and_beats
    assert "template_features" not in (RR13_MODEL / "model.json").read_text()
    assert model.net.n_rr == N_RR_COLUMNS and not getattr(model.net, "template_features", False)
    np.testing.assert_array_equal(wide.rr[:, :N_RR_COLUMNS], plain.rr)
    np.testing.assert_array_equal(predict_logits(model.net, wide), predict_logits(model.net, plain))
    onnx = OnnxBeatClassifier(export_onnx(model.net, tmp_path / "rr13.onnx", name="hybrid"))
    np.testing.assert_array_equal(onnx.predict_proba(wide), onnx.predict_proba(plain))
