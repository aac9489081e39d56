"""The shipped model: the ONNX file loads, predicts the right shape, matches its PyTorch weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from heartline.data.beat_dataset import build_beat_set
from heartline.edge import shipped
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.edge.shipped import PARITY_TOLERANCE, shipped_model_card, shipped_model_path
from heartline.models.hybrid import N_RAW_RR, N_RR_COLUMNS
from heartline.training import ship as shipping
from heartline.training.deep import TorchBeatClassifier

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def beats(data_dir):
    # with the template columns: a model with template_features reads all 32, others the leading
    return build_beat_set(["100"], data_dir=data_dir, progress=False, template_features=True)


def test_shipped_onnx_loads_and_predicts_probabilities(beats) -> None:
    clf = OnnxBeatClassifier(shipped_model_path())
    assert clf.classes == ("N", "S", "V", "F", "Q")
    assert (clf.n_leads, clf.window_len) == (beats.n_leads, beats.window_len)
    # the model takes the leading RR columns: with the template columns (32), the 13 RR and
    # rhythm columns, or the 8 before the rhythm columns
    assert clf.n_rr in (N_RAW_RR, N_RR_COLUMNS, beats.rr.shape[1])
    p = clf.predict_proba(beats)
    assert p.shape == (len(beats), 5)
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5)
    # record 100 is almost all N: the model must say so
    assert np.mean(p.argmax(axis=1) == 0) > 0.9


def test_shipped_onnx_matches_its_pytorch_weights(beats, tmp_path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(shipped.ASSETS_DIR / "hybrid.pt", folder / "model.pt")
    shutil.copyfile(shipped.ASSETS_DIR / "hybrid.json", folder / "model.json")
    torch_model = TorchBeatClassifier.load(folder)
    onnx_model = OnnxBeatClassifier(shipped_model_path())
    sub = beats.subset(np.arange(600))
    diff = np.abs(torch_model.predict_proba(sub) - onnx_model.predict_proba(sub)).max()
    assert diff <= PARITY_TOLERANCE
    assert (shipped.ASSETS_DIR / "hybrid.pt").stat().st_size < shipped.MAX_WEIGHTS_BYTES


def test_model_card_and_metrics_are_shipped() -> None:
    card = shipped_model_card().read_text()
    for heading in (
        "## Data and protocol",
        "## Metrics on DS2",
        "## Known failure modes",
        "## Intended use",
        "## Latency",
    ):
        assert heading in card
    s = json.loads((shipped.ASSETS_DIR / "hybrid_metrics.json").read_text())
    assert s["max_abs_diff_torch_vs_onnx"] <= PARITY_TOLERANCE
    assert set(s["ds2"]) == {"annotated", "detected"}
    assert s["ds2"]["annotated"]["protocol"] == "inter-patient"
    assert not set(s["ds2"]["annotated"]["train_records"]) & set(
        s["ds2"]["annotated"]["test_records"]
    )
    assert (shipped.ASSETS_DIR / "hybrid.toml").is_file()


def test_missing_shipped_model_says_how_to_regenerate(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(shipped, "ASSETS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="heartline ship"):
        shipped_model_path()


def test_model_card_states_how_ds1_was_used() -> None:
    proto = shipping._training_protocol
    assert "validation records 101, 116" in proto("hybrid", {"val_records": ["101", "116"]}, {})
    refit = proto("hybrid", {"val_records": []}, {"best_epoch": 7})
    assert "all 22 DS1 records for a fixed 7 epochs" in refit and "heartline select" in refit
    assert "Cross-fitted ensemble" in proto("hybrid_ensemble", {"val_records": ["101"]}, {})
