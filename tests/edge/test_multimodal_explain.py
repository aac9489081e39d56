"""Torch-free occlusion explanation of the multimodal diagnosis (heartline.edge.multimodal_explain):
the shortcuts match the full pipeline, shapes, determinism, bad input, no torch, and two sanity
checks in the manner of Adebayo et al. (2018): model randomisation and deletion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heartline.edge.multimodal import MultimodalModel, model_version, shipped_multimodal_model_dir
from heartline.edge.multimodal_explain import (
    METADATA_FIELDS,
    MultimodalExplanation,
    explain_diagnosis,
    plot_explanation,
)
from heartline.edge.occlusion import class_score

ROOT = Path(__file__).resolve().parents[2]
#: PTB-XL records of the shipped data: ecg_id 1 (normal) and three myocardial infarctions that the
#: shipped model calls MI (131 ASMI, 139 IMI, 77 AMI).
RECORDS = {"00001": "NORM", "00131": "MI", "00139": "MI", "00077": "MI"}
META = {"age": 56, "sex": "female", "weight": 63}


@pytest.fixture(scope="module")
def model() -> MultimodalModel:
    return MultimodalModel()


def _read(data_dir: Path, name: str):  # type: ignore[no-untyped-def]
    import heartline

    path = data_dir / "ptbxl" / "records100" / "00000" / f"{name}_lr"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"PTB-XL record {path} not found")
    return heartline.read_record(path)


@pytest.fixture(scope="module")
def record(data_dir: Path):  # type: ignore[no-untyped-def]
    return _read(data_dir, "00131")


@pytest.fixture(scope="module")
def explanation(model: MultimodalModel, record) -> MultimodalExplanation:  # type: ignore[no-untyped-def]
    return explain_diagnosis(
        record.signal, fs=record.fs, lead_names=record.lead_names, metadata=META, model=model
    )


def test_shapes_probabilities_and_json(model: MultimodalModel, record, explanation) -> None:  # type: ignore[no-untyped-def]
    ex = explanation
    n_patches = len(range(0, 1000 - 50 + 1, 25))  # 0.5 s patches every 0.25 s at 100 Hz
    assert ex.classes == model.classes and ex.patch_len == 50 and ex.stride == 25
    assert ex.attributions.shape == (5, 12, 1000) and ex.attributions.dtype == np.float32
    assert ex.patch_drops.shape == (5, 12, n_patches) and len(ex.patch_starts_idx) == n_patches
    assert ex.lead_totals.shape == ex.lead_drops.shape == (5, 12)
    assert np.allclose(ex.lead_totals, ex.attributions.sum(axis=2), atol=1e-4)
    assert ex.signals.shape == (12, 1000) and ex.fs_hz == 100.0
    assert np.allclose(ex.lead_baseline_mv, np.median(ex.signals, axis=1))
    dx = model.diagnose(record.signal, fs=record.fs, lead_names=record.lead_names, metadata=META)
    for c in model.classes:  # the unoccluded row is the diagnosis itself
        assert abs(ex.probabilities[c] - dx.probabilities[c]) < 1e-6
    assert ex.modality_weights == pytest.approx(dx.modality_weights, abs=1e-6)
    assert "MI" in ex.positive() and ex.default_classes() == ex.positive()
    meta = ex.metadata_attributions["MI"]
    assert set(meta) == set(METADATA_FIELDS) and meta["height"] is None  # not given
    assert all(isinstance(meta[f], float) for f in ("age", "sex", "weight"))
    top = ex.top_segments("MI", 3)
    assert [t["drop"] for t in top] == sorted((t["drop"] for t in top), reverse=True)
    assert top[0]["stop_s"] - top[0]["start_s"] == pytest.approx(0.5)
    d = json.loads(json.dumps(ex.to_dict()))
    assert d["baseline"] == "lead median" and d["model_version"] == model.version
    assert np.asarray(d["classes"]["MI"]["attributions"]).shape == (12, 1000)
    assert "attributions" not in ex.to_dict(samples=False)["classes"]["MI"]


def test_shortcuts_equal_the_full_pipeline(model: MultimodalModel, explanation) -> None:  # type: ignore[no-untyped-def]
    """The reused crops and per-lead features give what the full pipeline gives on explicitly
    occluded copies (a patch of lead I across a crop edge, one of lead II, a whole lead V2, and
    the age masked)."""
    ex = explanation
    x, base = ex.signals, ex.lead_baseline_mv
    k = ex.patch_starts_idx.index(225)  # 2.25-2.75 s crosses the 2.5 s crop edge
    copies, expect = [], []
    for lead, j in ((0, k), (1, 10)):
        c = x.copy()
        s = ex.patch_starts_idx[j]
        c[lead, s : s + ex.patch_len] = base[lead]
        copies.append(c)
        expect.append(ex.patch_drops[:, lead, j])
    c = x.copy()
    c[7] = base[7]
    copies.append(c)
    expect.append(ex.lead_drops[:, 7])
    from heartline.edge.multimodal import patient_metadata

    m = patient_metadata(META)
    n = len(copies)
    p, _ = model.predict_batch(
        np.stack([x, *copies]),
        np.repeat(m.values[None], n + 1, axis=0),
        np.repeat(m.present[None], n + 1, axis=0),
        np.zeros(n + 1, dtype=bool),
    )
    drops = class_score(p[:1]) - class_score(p[1:])
    np.testing.assert_allclose(drops, np.stack(expect), atol=1e-5)
    no_age = patient_metadata({k: v for k, v in META.items() if k != "age"})
    p_age, _ = model.predict_batch(
        x[None], no_age.values[None], no_age.present[None], np.zeros(1, dtype=bool)
    )
    want = class_score(p[0]) - class_score(p_age[0])
    got = [ex.metadata_attributions[c]["age"] for c in ex.classes]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_held_rpeaks_change_lead_ii_only(model: MultimodalModel, record, explanation) -> None:  # type: ignore[no-untyped-def]
    held = explain_diagnosis(
        record.signal,
        fs=record.fs,
        lead_names=record.lead_names,
        metadata=META,
        model=model,
        hold_rpeaks=True,
    )
    assert held.rpeaks == "held" and explanation.rpeaks == "re-detected"
    other = [j for j in range(12) if j != 1]
    np.testing.assert_array_equal(held.patch_drops[:, other], explanation.patch_drops[:, other])
    assert not np.allclose(held.lead_drops[:, 1], explanation.lead_drops[:, 1])
    # lead II occluded whole: no beat is detected when the peaks are re-detected
    assert explanation.lead_drops[1, 1] > held.lead_drops[1, 1]


def test_deterministic_and_class_subset(model: MultimodalModel, record, explanation) -> None:  # type: ignore[no-untyped-def]
    again = explain_diagnosis(
        record.signal,
        fs=record.fs,
        lead_names=record.lead_names,
        metadata=META,
        model=model,
        classes="MI",
    )
    assert again.classes == ("MI",)
    np.testing.assert_array_equal(again.attributions[0], explanation.attributions[1])
    np.testing.assert_array_equal(again.lead_drops[0], explanation.lead_drops[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ["AF"]}, r"unknown class 'AF'; the model's classes: \['NORM', 'MI'"),
        ({"classes": []}, r"classes is empty"),
        ({"patch_s": 12.0}, r"patch_s=12 s is longer than the record the model reads \(10 s\)"),
        ({"patch_s": 0.0}, r"patch_s must be a finite duration > 0 s"),
        ({"stride_s": -1}, r"stride_s must be a finite duration > 0 s"),
        ({"stride_s": 0.001}, r"stride_s=0.001 s is shorter than one sample at 100 Hz"),
        ({"score": "logit"}, r"score must be one of"),
        ({"fs": 50.0}, r"fs=50 Hz is below the 100 Hz"),
        ({"metadata": {"bmi": 30}}, r"unknown metadata key"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(model: MultimodalModel, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    args = {"fs": 100.0, "lead_names": model.leads, "model": model, **kwargs}
    x = np.zeros((1000, 12))
    with pytest.raises(ValueError, match=message):
        explain_diagnosis(x, **args)


def test_plot_writes_a_png(tmp_path: Path, explanation) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "mi.png"
    assert plot_explanation(explanation, out, record_id="00131_lr") == "MI"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="class 'AF' was not explained"):
        plot_explanation(explanation, tmp_path / "x.png", cls="AF")


def _randomised_copy(dst: Path, *, seed: int, randomise_head: bool = True) -> Path:
    """The shipped model with the networks' weights and the head's leaf values randomised
    (cascading-randomisation control of Adebayo et al. 2018), its version recomputed."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    src = shipped_multimodal_model_dir()
    spec = json.loads((src / "multimodal.json").read_text())
    rng = np.random.default_rng(seed)
    for net in spec["networks"]:
        m = onnx.load(str(src / net["file"]))
        for init in m.graph.initializer:
            a = numpy_helper.to_array(init)
            if a.dtype.kind == "f" and a.size > 1:
                r = rng.normal(0.0, float(a.std()) or 0.1, a.shape).astype(a.dtype)
                init.CopyFrom(numpy_helper.from_array(r, init.name))
        onnx.save(m, str(dst / net["file"]))
    head = onnx.load(str(src / spec["head"]["file"]))
    for node in head.graph.node:
        for att in node.attribute:
            if randomise_head and att.name == "leaf_weights":  # TreeEnsemble: a tensor
                vals = numpy_helper.to_array(att.t)
                att.t.CopyFrom(numpy_helper.from_array(rng.permutation(vals), att.t.name))
    onnx.save(head, str(dst / spec["head"]["file"]))
    spec["version"] = model_version(dst, spec)
    (dst / "multimodal.json").write_text(json.dumps(spec))
    return dst


def test_randomised_head_gives_other_attributions(tmp_path: Path, record, explanation) -> None:  # type: ignore[no-untyped-def]
    """Model randomisation (Adebayo et al. 2018): with the networks' weights redrawn and the
    boosted heads' leaf values permuted, the MI attributions of an MI record change (signed rank
    correlation with the shipped model's well below 0.5; 0.13 when written)."""
    from scipy.stats import spearmanr

    rnd = MultimodalModel(_randomised_copy(tmp_path, seed=0))
    ex_r = explain_diagnosis(
        record.signal, fs=record.fs, lead_names=record.lead_names, metadata=META, model=rnd
    )
    a, b = explanation.patch_drops[1].ravel(), ex_r.patch_drops[1].ravel()  # MI
    assert not np.allclose(a, b, atol=1e-3)
    rho = spearmanr(a, b).statistic
    assert rho < 0.5, f"attributions of the randomised model correlate with the shipped ones: {rho}"


def test_randomised_networks_change_the_network_driven_attributions(
    tmp_path: Path, record, explanation
) -> None:  # type: ignore[no-untyped-def]
    """Redrawing only the CNN-LSTM weights changes the modality attention and the attributions of
    the classes whose head reads the network (NORM here). For this record the MI head decides on
    the ECG features alone (its MI attributions did not move when written), which is what the
    attributions are meant to show, not a failure of the method."""
    rnd = MultimodalModel(_randomised_copy(tmp_path, seed=1, randomise_head=False))
    ex_r = explain_diagnosis(
        record.signal, fs=record.fs, lead_names=record.lead_names, metadata=META, model=rnd
    )
    assert abs(ex_r.modality_weights["ecg"] - explanation.modality_weights["ecg"]) > 0.05
    assert not np.allclose(explanation.patch_drops[0], ex_r.patch_drops[0], atol=1e-3)


def _occlude(x: np.ndarray, base: np.ndarray, segs, patch_len: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    c = x.copy()
    for lead, s in segs:
        c[lead, s : s + patch_len] = base[lead]
    return c


def test_deleting_top_segments_lowers_the_class_more_than_random(
    model: MultimodalModel, data_dir: Path
) -> None:
    """Deletion check: occluding the 5 top-attributed patches (distinct, non-overlapping) lowers
    the explained class's probability more than occluding 5 random patches, on real records."""
    from heartline.edge.multimodal import patient_metadata

    rng = np.random.default_rng(0)
    m = patient_metadata(META)
    for name, cls in RECORDS.items():
        rec = _read(data_dir, name)
        ex = explain_diagnosis(
            rec.signal,
            fs=rec.fs,
            lead_names=rec.lead_names,
            metadata=META,
            model=model,
            classes=cls,
        )
        drops, starts = ex.patch_drops[0], np.asarray(ex.patch_starts_idx)
        top: list[tuple[int, int]] = []
        for flat in np.argsort(-drops, axis=None):  # greedy, skipping overlapping patches
            lead, j = np.unravel_index(int(flat), drops.shape)
            s = int(starts[j])
            if all(lead != q or abs(s - t) >= ex.patch_len for q, t in top):
                top.append((int(lead), s))
            if len(top) == 5:
                break
        n_rand = 20
        rand = []
        for _ in range(n_rand):
            picks = rng.choice(drops.size, size=5, replace=False)
            rand.append(
                [(int(f // drops.shape[1]), int(starts[f % drops.shape[1]])) for f in picks]
            )
        batch = [
            _occlude(ex.signals, ex.lead_baseline_mv, segs, ex.patch_len) for segs in [top, *rand]
        ]
        n = len(batch)
        p, _ = model.predict_batch(
            np.stack(batch),
            np.repeat(m.values[None], n, axis=0),
            np.repeat(m.present[None], n, axis=0),
            np.zeros(n, dtype=bool),
        )
        k = model.classes.index(cls)
        p0 = ex.probabilities[cls]
        assert p[0, k] < np.median(p[1:, k]) and p[0, k] < p0, (name, cls, p0, p[0, k], p[1:, k])


def test_module_imports_no_torch() -> None:
    code = (
        "import sys, heartline.edge.multimodal_explain;"
        "bad = sorted(k for k in sys.modules if k in ('torch', 'onnx') "
        "or k.startswith(('torch.', 'onnx.', 'heartline.models', 'heartline.training')));"
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_api_exports_explain_diagnosis(record) -> None:  # type: ignore[no-untyped-def]
    import heartline

    assert "explain_diagnosis" in heartline.__all__
    ex = heartline.explain_diagnosis(
        record.signal, fs=record.fs, lead_names=record.lead_names, classes=["MI"]
    )
    assert isinstance(ex, MultimodalExplanation) and ex.classes == ("MI",)
