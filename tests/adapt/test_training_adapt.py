"""The torch fine-tuned head: trains, exports to ONNX, runs without torch, keeps the base at start."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.edge.adapt import OnnxAdaptedHead

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from tests.adapt.test_edge_adapt import _patient  # noqa: E402

from heartline.training.adapt import export_head, fine_tune_head  # noqa: E402


def test_untrained_head_is_the_base_model(tmp_path) -> None:
    f, y, p = _patient()
    head = fine_tune_head(f, y, p, patient_id="p1", base_sha256="s", steps=0)
    onnx_head = OnnxAdaptedHead(export_head(head, tmp_path / "h.onnx"))
    np.testing.assert_allclose(onnx_head.proba(f, p), p, atol=1e-4)
    assert (onnx_head.patient_id, onnx_head.version, onnx_head.base_sha256) == ("p1", 1, "s")


def test_fine_tuned_head_learns_the_patient(tmp_path) -> None:
    f, y, p = _patient()
    head = fine_tune_head(f[:60], y[:60], p[:60], patient_id="p1", base_sha256="s")
    onnx_head = OnnxAdaptedHead(export_head(head, tmp_path / "h.onnx"))
    out = onnx_head.proba(f[60:], p[60:])
    assert (out.argmax(1) == y[60:]).mean() > 0.95
    assert not head.weight[3:].any()  # F and Q had no beats: frozen
