"""ONNX export and the torch-free runtime: same outputs as PyTorch, fixed names, no torch import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from heartline.data.beat_set import BeatSet
from heartline.edge.onnx_export import INPUT_NAMES, export_onnx
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.models.registry import DEEP_MODELS
from heartline.training.trainer import predict_logits

torch.set_num_threads(1)

# torch.onnx's dynamo exporter warns about its own internals (LSTM flat weights, size checks).
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

TINY = {
    "hybrid": {
        "context_k": 3,
        "channels": 4,
        "feature_dim": 16,
        "lstm_hidden": 16,
        "early_alarm": True,
    },
    "cnn": {"channels": 8, "hidden": 16},
    "lstm": {"hidden": 16},
    "gru": {"hidden": 16},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "patch": 4},
}
TINY["hybrid_ensemble"] = {**TINY["hybrid"], "n_members": 2}


def _softmax(x: torch.Tensor) -> np.ndarray:
    return torch.softmax(x, dim=1).detach().numpy()


def _beats(n: int, *, n_leads: int, window_len: int, n_rr: int, seed: int = 0) -> BeatSet:
    rng = np.random.default_rng(seed)
    return BeatSet(
        rng.standard_normal((n, n_leads, window_len)).astype(np.float32),
        rng.standard_normal((n, n_rr)).astype(np.float32),
        tuple(f"rr{i}" for i in range(n_rr)),
        rng.integers(0, 5, n).astype(np.int64),
        np.repeat(np.array(["r1", "r2"]), [n // 2, n - n // 2]),
        np.arange(n, dtype=np.int64),
        360.0,
        tuple(f"L{i}" for i in range(n_leads)),
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for name, factory in DEEP_MODELS.items():
        torch.manual_seed(0)
        net = factory(n_leads=2, window_len=32, n_rr=3, dropout=0.3, **TINY[name]).eval()
        if name == "hybrid_ensemble":  # calibrated offsets must travel inside the graph
            net.set_decision_bias(np.array([0.0, 1.5, -0.5, 0.7, 0.0]))
        out[name] = (net, export_onnx(net, root / f"{name}.onnx", name=name))
    return out


@pytest.mark.parametrize("name", sorted(DEEP_MODELS))
def test_onnx_runtime_matches_pytorch_on_random_inputs(exported, name: str) -> None:
    net, path = exported[name]
    runtime = OnnxBeatClassifier(path)
    assert runtime.context_k == net.context_k and runtime.name == name
    assert [i.name for i in runtime.session.get_inputs()] == list(INPUT_NAMES)
    assert not list(path.parent.glob(f"{path.name}.data"))  # no external data file
    t = net.context_k + 1
    for batch in (1, 7):  # dynamic batch
        w, r = torch.randn(batch, t, 2, 32), torch.randn(batch, t, 3)
        out = net(w, r)
        current = out[0] if isinstance(out, tuple) else out
        np.testing.assert_allclose(
            runtime.predict_proba_arrays(w.numpy(), r.numpy()), _softmax(current), atol=1e-4
        )
        if isinstance(out, tuple):
            np.testing.assert_allclose(
                runtime.predict_proba_arrays(w.numpy(), r.numpy(), head="next"),
                _softmax(out[1]),
                atol=1e-4,
            )


def test_real_shaped_hybrid_and_beat_set_prediction(tmp_path) -> None:
    # MIT-BIH shapes: 2 leads, 128-sample windows, 8 RR features, K = 8 previous beats
    torch.manual_seed(1)
    net = DEEP_MODELS["hybrid"](
        n_leads=2, window_len=128, n_rr=8, dropout=0.3, context_k=8, rr_mode="log_ratios"
    ).eval()
    runtime = OnnxBeatClassifier(export_onnx(net, tmp_path / "hybrid.onnx"))
    beats = _beats(50, n_leads=2, window_len=128, n_rr=8)
    expected = _softmax(torch.from_numpy(predict_logits(net, beats)))
    got = runtime.predict_proba(beats, batch_size=16)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        runtime.predict_proba(_beats(4, n_leads=1, window_len=128, n_rr=8))
    with pytest.raises(ValueError, match="windows must have shape"):
        runtime.predict_proba_arrays(
            np.zeros((2, 3, 2, 128), np.float32), np.zeros((2, 3, 8), np.float32)
        )


def test_int8_quantised_model_runs_and_stays_close(tmp_path) -> None:
    torch.manual_seed(2)
    net = DEEP_MODELS["hybrid"](n_leads=2, window_len=128, n_rr=8, dropout=0.3, context_k=4).eval()
    path = export_onnx(net, tmp_path / "q.onnx", name="hybrid", quantize=True)
    runtime = OnnxBeatClassifier(path)
    assert runtime.name == "hybrid" and runtime.context_k == 4  # metadata survives quantisation
    w, r = torch.randn(32, 5, 2, 128), torch.randn(32, 5, 8)
    got = runtime.predict_proba_arrays(w.numpy(), r.numpy())
    np.testing.assert_allclose(got, _softmax(net(w, r)), atol=0.05)


def test_runtime_module_does_not_import_torch() -> None:
    code = "import sys, heartline.edge.runtime; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
