"""Torch-free patient adaptation: prototypes, artefacts, fallbacks, the per-patient registry."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from heartline.edge.adapt import (
    AdaptationNotice,
    NotEnoughBeatsError,
    PatientModelRegistry,
    PatientPrototypes,
    apply_batches,
    check_label_counts,
    combine_proba,
    fit_prototypes,
    fit_unsupervised,
    load_patient_artefact,
    load_patient_model,
)
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.edge.shipped import shipped_model_path


def _patient(n_per_class: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features in which N, S and V form tight clusters, and a base model that calls S beats N."""
    rng = np.random.default_rng(seed)
    centres = {0: np.zeros(8), 1: np.r_[4.0, np.zeros(7)], 2: np.r_[0.0, 4.0, np.zeros(6)]}
    y = np.repeat([0, 1, 2], n_per_class)
    rng.shuffle(y)
    f = np.stack([centres[c] + 0.3 * rng.standard_normal(8) for c in y])
    p = np.full((y.size, 5), 0.01)
    p[y == 0, 0] = 0.96
    p[y == 1, 0] = 0.7  # the base model misses the patient's SVEB ...
    p[y == 1, 1] = 0.26
    p[y == 2, 2] = 0.96
    return f, y, p / p.sum(1, keepdims=True)


def test_prototypes_fix_what_the_base_model_misses() -> None:
    f, y, p = _patient()
    art = fit_prototypes(f[:60], y[:60], p[:60], patient_id="p1", base_sha256="x")
    assert art.weight > 0
    out = art.proba(f[60:], p[60:])
    assert (p[60:].argmax(1) == y[60:]).mean() < 0.8
    assert (out.argmax(1) == y[60:]).mean() > 0.95
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-9)


def test_not_enough_beats_says_what_is_missing() -> None:
    with pytest.raises(NotEnoughBeatsError, match="3 more N") as ei:
        check_label_counts(np.array([1, 1, 1]))
    assert ei.value.missing == {"N": 3}
    adapted, short = check_label_counts(np.array([0, 0, 0, 2]))
    assert adapted == ("N",) and short == {"V": 2}
    with pytest.raises(ValueError, match="class indices"):
        check_label_counts(np.array([0, 7]))


def test_classes_without_prototypes_keep_the_base_probability() -> None:
    p = np.array([[0.5, 0.2, 0.3, 0.0, 0.0]])
    d = np.array([[0.0, np.inf, 5.0, np.inf, np.inf]])
    out = combine_proba(p, d, weight=1.0, tau=1.0)
    assert out[0, 1] == pytest.approx(0.2)
    assert out[0, 0] + out[0, 2] == pytest.approx(0.8)
    assert out[0, 0] > 0.7
    np.testing.assert_allclose(combine_proba(p, d, weight=0.0, tau=1.0), p)


def test_artefact_round_trip_and_corruption(tmp_path) -> None:
    f, y, p = _patient()
    art = fit_prototypes(f, y, p, patient_id="p1", base_sha256="abc", version=3)
    path = art.save(tmp_path / "p1.npz")
    back = PatientPrototypes.load(path)
    assert (back.version, back.patient_id, back.base_sha256) == (3, "p1", "abc")
    np.testing.assert_allclose(back.proba(f, p), art.proba(f, p), atol=1e-5)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    with pytest.raises(ValueError):
        PatientPrototypes.from_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a patient prototype"):
        PatientPrototypes.from_bytes(b"garbage")


@pytest.fixture(scope="module")
def base() -> OnnxBeatClassifier:
    return OnnxBeatClassifier(shipped_model_path())


def _real_art(base: OnnxBeatClassifier, *, sha: str, version: int = 1) -> PatientPrototypes:
    rng = np.random.default_rng(1)
    d = int(base.feature_dim)
    f = rng.standard_normal((30, d))
    y = np.repeat([0, 2], 15)
    p = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (30, 1))
    return fit_prototypes(f, y, p, patient_id="p1", base_sha256=sha, version=version)


def test_loader_falls_back_with_a_notice(base, tmp_path) -> None:
    sha = file_sha256(base.path)
    good = _real_art(base, sha=sha).save(tmp_path / "good.npz")
    loaded = load_patient_model(base, good, base_sha256=sha)
    assert loaded.adapted is not None and loaded.notice is None
    assert loaded.model_version.endswith("+prototypes:p1/v1")
    other = _real_art(base, sha="0" * 64).save(tmp_path / "other.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 100)
    for path, why in (
        (other, "made for base model"),
        (bad, "not a patient"),
        (tmp_path / "none.npz", "not found"),
    ):
        with pytest.warns(AdaptationNotice, match=why):
            fb = load_patient_model(base, path, base_sha256=sha)
        assert fb.adapted is None and why in fb.notice
        assert fb.model_version == f"{base.name}@{sha[:12]}"


def test_registry_uses_the_active_model_and_rolls_back(base) -> None:
    sha = file_sha256(base.path)
    store: dict[str, tuple[int, str, bytes] | None] = {"p1": None}
    now = [0.0]
    reg = PatientModelRegistry(base, lambda pid: store.get(pid), refresh_s=10, clock=lambda: now[0])
    w = (
        np.random.default_rng(0)
        .standard_normal((4, base.n_leads, base.window_len))
        .astype(np.float32)
    )
    rr = np.ones((4, base.n_rr), np.float32)
    p = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (4, 1))
    out, v0 = reg.apply("p1", w, rr, p)
    np.testing.assert_array_equal(out, p)
    store["p1"] = (1, "prototypes", _real_art(base, sha=sha).to_bytes())
    assert reg.apply("p1", w, rr, p)[1] == v0  # cached until refresh_s
    now[0] = 11.0
    out, v1 = reg.apply("p1", w, rr, p)
    assert v1.endswith("/v1") and out.shape == p.shape
    store["p1"] = (2, "prototypes", b"corrupt")
    now[0] = 22.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, v2 = reg.apply("p1", w, rr, p)
    assert v2 == v0 and any("not used" in n for n in reg.notices)
    store["p1"] = None  # rollback
    reg.invalidate("p1")
    assert reg.apply("p1", w, rr, p)[1] == v0
    # the processor hook: one call per classified batch list
    store["p1"] = (3, "prototypes", _real_art(base, sha=sha, version=3).to_bytes())
    reg.invalidate()
    batch = SimpleNamespace(windows=w[:, None], rr=rr[:, None])
    probs, versions = apply_batches(reg, [("p1", batch), ("p2", batch)], [p, p])
    assert versions[0].endswith("/v3") and versions[1] == v0
    np.testing.assert_array_equal(probs[1], p)
    assert apply_batches(None, [("p1", batch)], [p])[1] == [None]


def test_unsupervised_pseudo_labels_follow_the_base_model() -> None:
    f, y, p = _patient()
    art = fit_unsupervised(f, p, patient_id="p1", base_sha256="x", n_clusters=6)
    assert art.method == "unsupervised"
    assert set(art.adapted_classes) <= {"N", "V"}  # the base model never says S here
    out = art.proba(f, p)
    assert (out.argmax(1)[y == 2] == 2).all()


def test_stored_bytes_loader(base) -> None:
    sha = file_sha256(base.path)
    ok = load_patient_artefact(base, _real_art(base, sha=sha).to_bytes(), method="prototypes")
    assert ok.adapted is not None
    with pytest.warns(AdaptationNotice):
        assert load_patient_artefact(base, b"x", method="finetune").adapted is None
