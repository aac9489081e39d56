"""Occlusion attribution on ONNX Runtime (torch-free), on the shipped beat model and real V beats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heartline.edge.occlusion import BeatExplanation, explain_beats, occlusion_attributions
from heartline.explain.report import qrs_share

MODEL = Path(__file__).parents[2] / "src" / "heartline" / "assets" / "models" / "hybrid.onnx"


def test_module_imports_no_torch() -> None:
    code = (
        "import sys, heartline.edge.occlusion; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generic_occlusion_finds_the_only_informative_samples() -> None:
    """A model that looks at samples 40-56 of lead 1 only: attribution is zero elsewhere."""

    def run(w: np.ndarray) -> np.ndarray:
        s = w[:, 1, 40:56].sum(axis=1)
        p = 1 / (1 + np.exp(-s))
        return np.stack([1 - p, p], axis=1)

    w = np.ones((2, 2, 128), np.float32)
    attr, probs, tgt = occlusion_attributions(run, w, patch_len=8, stride=8)
    assert tgt.tolist() == [1, 1] and probs.shape == (2, 2)
    assert np.abs(attr[:, 0]).max() == 0
    assert (attr[:, 1, 40:56] > 0).all() and np.abs(attr[:, 1, :40]).max() == 0
    assert np.abs(attr[:, 1, 56:]).max() == 0


def test_v_beats_explained_mostly_by_the_qrs(v_beats) -> None:
    w, rr, pre_s, window_s = v_beats
    ex = explain_beats(MODEL, w, rr)
    assert isinstance(ex, BeatExplanation)
    assert ex.attributions.shape == (len(w), 2, 128)
    assert (ex.target == 2).all()  # the shipped model calls these V beats V
    share = qrs_share(ex.attributions, pre_s=pre_s, window_s=window_s)
    # R +- 80 ms is 23 % of the window; it carries most of the attribution
    assert share.mean() > 0.5, share
    d = json.loads(json.dumps(ex.to_dict()))
    assert d["beats"][0]["target"] == "V" and len(d["beats"][0]["attributions"]) == 2


def test_bad_inputs_are_named(v_beats) -> None:
    w, rr, _, _ = v_beats
    with pytest.raises(ValueError, match="rr is missing"):
        explain_beats(MODEL, w)
    with pytest.raises(ValueError, match="input 'windows'"):
        explain_beats(MODEL, w[:, :, :1], rr)  # one lead, the model needs two
    with pytest.raises(ValueError, match="no beat"):
        explain_beats(MODEL, w[:0], rr[:0])
    with pytest.raises(FileNotFoundError, match="model_path"):
        explain_beats(MODEL.with_name("nope.onnx"), w, rr)


def test_score_modes() -> None:
    def run(w: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-w[:, 0, :8].sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    w = np.ones((1, 1, 32), np.float32)
    a_log, _, _ = occlusion_attributions(run, w, patch_len=8, stride=8, score="log_prob")
    a_p, _, _ = occlusion_attributions(run, w, patch_len=8, stride=8, score="prob")
    # occluding samples 0-8 takes p from sigmoid(8) to 0.5
    p8 = 1 / (1 + np.exp(-8.0))
    assert a_p[0, 0, 0] == pytest.approx((p8 - 0.5) / 8, rel=1e-4)
    assert a_log[0, 0, 0] == pytest.approx((np.log(p8) - np.log(0.5)) / 8, rel=1e-4)
    a_odds, _, _ = occlusion_attributions(run, w, patch_len=8, stride=8)  # default: log-odds
    assert a_odds[0, 0, 0] == pytest.approx(8.0 / 8, rel=1e-4)  # log-odds from 8 to 0
    with pytest.raises(ValueError, match="score"):
        occlusion_attributions(run, w, score="logit")


def _randomised_onnx(path: Path, out: Path, *, seed: int = 1) -> Path:
    """The model with every float weight tensor redrawn (same mean and std per tensor), as
    Adebayo et al. (2018) randomise a network's weights."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 1:
            new = rng.normal(w.mean(), w.std() + 1e-6, size=w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(new, init.name))
    onnx.save(m, str(out))
    return out


def test_randomised_weights_change_the_occlusion_maps(v_beats, tmp_path) -> None:
    """Model-randomisation check (Adebayo et al. 2018) on the live side's occlusion maps: the
    trained and the weight-randomised model's maps of the same beats (same target) differ."""
    from scipy.stats import spearmanr

    w, rr, pre_s, window_s = v_beats
    trained = explain_beats(MODEL, w, rr)
    rnd = explain_beats(
        _randomised_onnx(MODEL, tmp_path / "rnd.onnx"), w, rr, target=trained.target
    )
    rho = [
        spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0]
        for a, b in zip(trained.attributions, rnd.attributions, strict=True)
    ]
    # the same criterion as the IG check (tests/explain/test_attribution.py): rank correlation of
    # |map| below 0.9 (occlusion maps keep some input structure: about 0.7 on these beats)
    assert np.mean(rho) < 0.9, rho
    assert not np.allclose(trained.attributions, rnd.attributions, atol=1e-4)
    # the control: the same model gives the same map
    again = explain_beats(MODEL, w, rr, target=trained.target)
    assert np.allclose(trained.attributions, again.attributions, atol=1e-6)
    assert (qrs_share(trained.attributions, pre_s=pre_s, window_s=window_s) > 0.5).mean() >= 0.5


@pytest.mark.slow
def test_alert_explanation_timing_runs(tmp_path, data_dir) -> None:
    """The benchmark's alert section (``heartline bench explain``) on one repeat."""
    from heartline.explain.report import time_alert_explanation

    r = time_alert_explanation(tmp_path, data_dir=data_dir, n_repeats=1)
    assert r["alert_beats"] == 2 and r["explanation_cpu_ms_median"] > 0
    assert r["provider_ms_median"] > 0 and r["target_ms"] == 300.0
    assert 0 < r["cpu_share"] <= 1.5  # CPU / wall (a little over 1 if a library thread helps)
    assert not (tmp_path / "alert_explain.db").exists()


def test_timing_environment_names_the_load_and_the_cpus() -> None:
    from heartline.explain.report import timing_environment

    e = timing_environment()
    assert set(e) >= {"utc", "load_average", "cpu_count", "cpus_allowed", "nice", "omp_num_threads"}
    assert e["load_average"] is None or (
        len(e["load_average"]) == 3 and min(e["load_average"]) >= 0
    )
    assert e["cpus_allowed"] is None or 1 <= e["cpus_allowed"] <= (e["cpu_count"] or 1)
