"""The hand-feature head for record-level DP-SGD: Opacus trains it as it is, it reports its
epsilon, it learns under DP, and it never fits anything on the private data outside DP-SGD."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from heartline.features.public_scale import public_scale
from heartline.features.rhythm import RR_FEATURE_NAMES
from heartline.federated.tasks import SiteData, SiteTask, head_model_of, net_for_arrays
from heartline.training.local import (
    build_rhythm_head,
    public_rhythm_class_weights,
    rhythm_label_weights,
    state_arrays,
)
from heartline.training.rhythm import RhythmArrays

torch.set_num_threads(1)


def _separable(n: int, seed: int) -> RhythmArrays:
    """Records whose class moves four RR features by 3 public scale units each (linearly
    separable after the public standardisation); the ECG is flat (the head never reads it)."""
    rng = np.random.default_rng(seed)
    loc, scale = public_scale(RR_FEATURE_NAMES)
    y = rng.integers(0, 4, size=n).astype(np.int64)
    z = rng.standard_normal((n, len(RR_FEATURE_NAMES))) * 0.5
    z[np.arange(n), y] += 3.0
    rr = (loc + z * scale).astype(np.float32)
    length = 1000
    return RhythmArrays(
        np.asarray([f"R{seed}_{i:04d}" for i in range(n)]),
        y,
        np.zeros((n, length), dtype=np.float32),
        np.full(n, length, dtype=np.int64),
        rr,
        100.0,
    )


def test_head_is_dp_compatible_without_a_fix_and_ignores_the_ecg() -> None:
    from opacus.validators import ModuleValidator

    net = build_rhythm_head("hand-head")
    assert ModuleValidator.validate(net, strict=False) == []
    assert sum(p.numel() for p in net.parameters()) == 54 * 4 + 4
    x = torch.randn(2, 1000)
    rr = torch.randn(2, 54)
    with torch.no_grad():
        a = net(x, torch.ones_like(x), rr)
        b = net(100 * x, torch.zeros_like(x), rr)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="hand-head"):
        build_rhythm_head("cnn-head")


def test_head_learns_under_dp_sgd_and_reports_its_epsilon() -> None:
    data = SiteData(_separable(600, 0), _separable(300, 1), ())
    kw = dict(epochs=3, lr=0.03, batch_size=32, dp_rounds=4, dp_clip=1.0, model="rr-head")
    site = SiteTask("rhythm", data, dp_epsilon=3.0, **kw)
    site.set_class_weights(public_rhythm_class_weights(1.0).tolist())
    start = state_arrays(site.net)
    before = site.evaluate(start).macro_f1
    w = start
    for r in range(1, 5):
        w, metrics = site.fit(w, round_seed=r, rounds_done=r)
    # Opacus' accountant over the 4 rounds x 3 epochs of Poisson steps: the target, not more
    assert metrics["dp-epsilon"] == pytest.approx(3.0, abs=0.02)
    assert metrics["dp-noise-multiplier"] > 0.5
    after = site.evaluate(w).macro_f1
    assert after > 0.8 > before + 0.3, (before, after)
    # the input standardisation stayed the public one: nothing was fitted on the records
    loc, scale = public_scale(RR_FEATURE_NAMES)
    np.testing.assert_allclose(w["rr_mean"], loc)
    np.testing.assert_allclose(w["rr_std"], scale)

    # and the noise is real: from the same start and seeds, a smaller epsilon (more noise)
    # ends farther from the same DP-SGD run with (almost) no noise
    def run(eps: float | None, z: float | None = None) -> np.ndarray:
        t = SiteTask("rhythm", data, dp_epsilon=eps or 3.0, **kw)
        t.set_class_weights(public_rhythm_class_weights(1.0).tolist())
        if z is not None:
            t.cfg = type(t.cfg)(**{**t.cfg.__dict__, "dp_noise_multiplier": z})
        ww = start
        for r in range(1, 5):
            ww, _ = t.fit(ww, round_seed=r, rounds_done=r)
        return np.concatenate([ww["head.weight"].ravel(), ww["head.bias"]])

    quiet = run(None, z=1e-6)
    d3, d03 = np.linalg.norm(run(3.0) - quiet), np.linalg.norm(run(0.3) - quiet)
    assert d03 > d3 > 1.0, (d3, d03)


def test_head_weights_are_recognised_for_scoring() -> None:
    from heartline.federated.export import evaluate_arrays

    arrays = state_arrays(build_rhythm_head("rr-head", seed=1))
    assert head_model_of(arrays) == "rr-head"
    assert head_model_of(state_arrays(build_rhythm_head("hand-head"))) == "hand-head"
    net = net_for_arrays("rhythm", arrays)
    assert type(net).__name__ == "FeatureRhythmNet"
    ev = evaluate_arrays("rhythm", arrays, _separable(40, 2))
    assert ev["n_beats"] == 40 and 0.0 <= ev["macro_f1"] <= 1.0


def test_public_class_weights_use_only_published_counts() -> None:
    w = public_rhythm_class_weights(0.3)
    np.testing.assert_allclose(w, rhythm_label_weights(np.array([5050 * 0.3, 738, 2456, 284])))


def test_a_head_run_refuses_private_statistics(tmp_path) -> None:
    from heartline.federated.deployment import FederatedRunConfig

    with pytest.raises(ValueError, match="global_statistics=False"):
        FederatedRunConfig(
            task="rhythm", manifest=tmp_path / "m.json", num_rounds=1, model="hand-head"
        )
    with pytest.raises(ValueError, match="rhythm task"):
        FederatedRunConfig(
            task="beats",
            manifest=tmp_path / "m.json",
            num_rounds=1,
            model="hand-head",
            global_statistics=False,
        )


def test_one_dp_round_of_the_head_over_a_real_deployment(tmp_path, data_dir) -> None:
    """SuperLink + two SuperNodes (real processes), one round of DP-SGD of the hand-feature head:
    no statistics query, the public scaler kept, Opacus' epsilon reported, nothing left running."""
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from heartline.features.rhythm import HAND_FEATURE_NAMES
    from heartline.federated.deployment import FederatedRunConfig, pid_alive, run_federation
    from heartline.federated.partition import (
        Hospital,
        Manifest,
        rhythm_holdout_records,
        rhythm_labels,
        save_manifest,
    )

    labels = rhythm_labels(data_dir)
    held = set(rhythm_holdout_records(labels))
    pool = sorted(r for r in labels if r not in held)
    hospitals = tuple(Hospital(i, f"site-{i}", tuple(pool[i * 15 : (i + 1) * 15])) for i in (0, 1))
    manifest = save_manifest(
        Manifest("rhythm", "cinc2017", 0, 1.0, hospitals, tuple(sorted(held))[:5]),
        tmp_path / "m.json",
    )
    cfg = FederatedRunConfig(
        task="rhythm",
        manifest=manifest,
        num_rounds=1,
        local_epochs=2,
        lr=0.03,
        batch_size=8,
        record_dp_epsilon=8.0,
        model="hand-head",
        global_statistics=False,
        round_timeout_s=120.0,
        connect_timeout_s=120.0,
        data_dir=data_dir,
    )
    res = run_federation(cfg, out_dir=tmp_path / "run")
    r1 = {r["round"]: r for r in res["rounds"]}[1]
    assert r1["failures"] == 0
    assert r1["record_dp_epsilon"] == pytest.approx(8.0, abs=0.05)
    final = np.load(res["final_weights"])
    init = np.load(tmp_path / "run" / "initial_weights.npz")
    assert not np.allclose(final["head.weight"], init["head.weight"])  # it trained
    loc, scale = public_scale(HAND_FEATURE_NAMES)
    np.testing.assert_allclose(final["rr_mean"], loc)
    np.testing.assert_allclose(final["rr_std"], scale)
    assert not (tmp_path / "run" / "server" / "statistics.json").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in res["pids"]):
        time.sleep(0.2)
    assert not [p for p in res["pids"] if pid_alive(p)]


def test_head_exports_to_onnx_with_the_three_inputs(tmp_path) -> None:
    """The same ONNX export as every rhythm network (the edge runtime feeds x, mask and rr):
    the unused ECG inputs stay in the graph and ONNX Runtime agrees with PyTorch."""
    import onnx
    import onnxruntime as ort

    from heartline.features.rhythm import HAND_FEATURE_NAMES
    from heartline.training.rhythm import export_rhythm_onnx

    net = build_rhythm_head("hand-head", seed=3).eval()
    path = export_rhythm_onnx(net, tmp_path / "head.onnx", name="dp-head")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["heartline.rr_features"] == ",".join(HAND_FEATURE_NAMES)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x", "mask", "rr"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3000)).astype(np.float32)
    rr = (public_scale(HAND_FEATURE_NAMES)[0] + rng.standard_normal((3, 54))).astype(np.float32)
    (proba,) = sess.run(None, {"x": x, "mask": np.ones_like(x), "rr": rr})
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(x), torch.ones(3, 3000), torch.from_numpy(rr)), 1)
    np.testing.assert_allclose(proba, ref.numpy(), atol=1e-5)


def test_bench_defines_the_head_dp_runs_without_private_statistics(tmp_path) -> None:
    from heartline.bench.federated import BenchConfig, _scenarios
    from heartline.federated.deployment import FederatedRunConfig

    cfg = BenchConfig()
    runs = dict(_scenarios(cfg, "rhythm"))
    assert {"dphead_eps1", "dphead_eps3", "dphead_eps8", "fedavg_head"} <= set(runs)
    assert "dphead_eps3" not in dict(_scenarios(cfg, "beats"))
    over = runs["dphead_eps3"]
    assert over["record_dp_epsilon"] == 3.0 and over["model"] == "hand-head"
    assert over["global_statistics"] is False and "label_skew" not in over
    rc = FederatedRunConfig(task="rhythm", manifest=tmp_path / "m.json", num_rounds=4, **over)
    text = rc.run_config(n_hospitals=5, out_dir=tmp_path, initial_weights=tmp_path / "w.npz")
    assert 'model="hand-head"' in text and "global-statistics=false" in text
    assert "batch-size=32" in text and "local-epochs=3" in text
    assert "record_dp_epsilon" not in runs["fedavg_head"]
