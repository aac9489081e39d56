"""Deep baselines and the registry: shapes, one-batch overfit, fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heartline.data.synthetic import synthetic_beats
from heartline.models.base import BeatClassifier
from heartline.training.config import TrainConfig
from heartline.training.deep import TorchBeatClassifier
from heartline.training.registry import DEEP_MODELS, check_model_params, get_model, model_names

torch.set_num_threads(1)

TINY = {
    "hybrid": {"context_k": 3, "channels": 4, "feature_dim": 16, "lstm_hidden": 16},
    "cnn": {"channels": 8, "hidden": 16},
    "lstm": {"hidden": 16},
    "gru": {"hidden": 16},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "patch": 4},
}
TINY["hybrid_ensemble"] = {**TINY["hybrid"], "n_members": 2}


def build(name: str, dropout: float = 0.3):
    torch.manual_seed(0)
    return DEEP_MODELS[name](n_leads=2, window_len=32, n_rr=3, dropout=dropout, **TINY[name])


@pytest.mark.parametrize("name", sorted(DEEP_MODELS))
def test_output_shape(name: str) -> None:
    net = build(name).eval()
    t = net.context_k + 1
    out = net(torch.randn(6, t, 2, 32), torch.randn(6, t, 3))
    assert out.shape == (6, 5)


@pytest.mark.parametrize("name", sorted(DEEP_MODELS))
def test_overfits_one_batch(name: str) -> None:
    beats = synthetic_beats(16, seed=4)
    net = build(name, dropout=0.0)
    ctx = torch.from_numpy(beats.context_index(net.context_k))
    w, r, y = (
        torch.from_numpy(beats.windows),
        torch.from_numpy(beats.rr),
        torch.from_numpy(beats.labels),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        net.train()
        loss = torch.nn.functional.cross_entropy(net.forward_context(w, r, ctx).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net.forward_context(w, r, ctx).logits.argmax(dim=1)
    assert float(loss.detach()) < 0.05, name
    assert bool((pred == y).all()), name


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_baselines_look_at_the_current_beat_only(name: str) -> None:
    net = build(name).eval()
    w, r = torch.randn(3, 1, 2, 32), torch.randn(3, 1, 3)
    assert net.context_k == 0
    w2 = w.clone()
    w2[1] += 1.0
    out, out2 = net(w, r), net(w2, r)
    torch.testing.assert_close(out[[0, 2]], out2[[0, 2]])  # beats are independent in a batch (eval)


def test_registry_names_and_errors() -> None:
    names = model_names()
    assert {"hybrid", "cnn", "lstm", "gru", "transformer"} <= set(names)
    with pytest.raises(ValueError, match=r"valid names: .*hybrid"):
        get_model("resnet9000")
    with pytest.raises(ValueError, match="unknown parameter"):
        get_model("hybrid", context_size=3)
    with pytest.raises(ValueError, match="unknown parameter"):
        check_model_params("cnn", {"dropout": 0.1})  # dropout comes from the training config
    check_model_params("hybrid", {"context_k": 4, "early_alarm": True})


def test_models_attribute_covers_deep_models() -> None:
    from heartline.training import registry

    assert set(DEEP_MODELS) <= set(registry.MODELS)


@pytest.mark.parametrize("name", ["hybrid", "gru"])
def test_fit_predict_save_load_round_trip(name: str, tmp_path) -> None:
    train = synthetic_beats(40, ("a", "b", "c"), seed=5)
    val = synthetic_beats(30, ("d",), seed=6)
    model = get_model(name, train=TrainConfig(max_epochs=2, batch_size=16), **TINY[name])
    assert isinstance(model, BeatClassifier)
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict_proba(val)
    model.fit(train, val, seed=1)
    proba = model.predict_proba(val)
    assert proba.shape == (len(val), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = TorchBeatClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(val), proba, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "lstm", "gru", "transformer"])
def test_baselines_encode_template_columns_like_the_hybrid(name: str) -> None:
    """With the 13 RR + 19 template columns the baselines read the template columns through the
    hybrid's fixed encoding (bounded: a huge RMS difference reads as the cap); the RR columns,
    and inputs of any other width, are read as they are."""
    from heartline.models.hybrid import TEMPLATE_CLAMP

    torch.manual_seed(0)
    net = DEEP_MODELS[name](n_leads=2, window_len=32, n_rr=32, dropout=0.3, **TINY[name]).eval()
    w, r = torch.randn(4, 1, 2, 32), torch.randn(4, 1, 32)
    nrmsd = 13 + 3  # tpl_nrmsd_l0: the first template column after the 13 RR columns + 3 corrs
    a, b = r.clone(), r.clone()
    a[..., nrmsd] = 1e6
    b[..., nrmsd] = float(np.expm1(TEMPLATE_CLAMP)) + 5.0  # past the cap too
    torch.testing.assert_close(net(w, a), net(w, b))
    c = r.clone()
    c[..., 2] += 1e3  # an RR column: not clamped
    assert not torch.allclose(net(w, c), net(w, r))
    plain = DEEP_MODELS[name](n_leads=2, window_len=32, n_rr=13, dropout=0.3, **TINY[name])
    x = torch.randn(5, 13)
    assert plain._rr_in(x) is x
