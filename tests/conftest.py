"""Shared fixtures: the real PhysioNet data in ../shared/data (read-only), a tiny exported model."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartline.data.paths import resolve_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = resolve_data_dir()
    if not (path / "mitdb" / "100.hea").exists():
        pytest.fail(
            f"MIT-BIH data not found in {path}: the test suite needs ../shared/data or HEARTLINE_DATA_DIR"
        )
    return path


@pytest.fixture(scope="session")
def mitdb_dir(data_dir: Path) -> Path:
    return data_dir / "mitdb"


def _tiny_model_path(tmp_path_factory) -> Path:
    """A tiny, seeded hybrid CNN-LSTM exported to ONNX once per test session (shared path)."""
    import torch

    from heartline.edge.onnx_export import export_onnx
    from heartline.models.hybrid import HybridNet

    torch.set_num_threads(1)
    path = tmp_path_factory.getbasetemp() / "tiny_hybrid_k3.onnx"
    lock = path.with_suffix(".lock")
    with open(lock, "w") as fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
        if not path.exists():
            torch.manual_seed(0)
            net = HybridNet(
                n_leads=2,
                window_len=128,
                n_rr=8,
                context_k=3,
                channels=4,
                feature_dim=16,
                lstm_hidden=16,
            ).eval()
            export_onnx(net, path.with_suffix(".tmp.onnx"), name="hybrid")
            path.with_suffix(".tmp.onnx").rename(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return _tiny_model_path(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from heartline.edge.runtime import OnnxBeatClassifier

    return OnnxBeatClassifier(tiny_model_path)
