"""What wires adaptation into live processing: the database loader workers use (one query per
refresh for all patients, bytes read once per version), the processor hook with several beat
models and a failing patient, and the worker option spec."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import event

from heartline.edge.adapt import PatientModelRegistry, apply_batches, fit_prototypes
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.edge.shipped import shipped_model_path
from heartline.ingestion.adaptation import patient_models_spec, resolve_patient_models
from heartline.storage import adaptation_repository as arepo
from heartline.storage import repository as repo
from heartline.storage.engine import make_engine, make_session_factory, session_scope
from heartline.storage.migrations import upgrade_database


@pytest.fixture(scope="module")
def base() -> OnnxBeatClassifier:
    return OnnxBeatClassifier(shipped_model_path())


def _art_bytes(base: OnnxBeatClassifier, pid: str, version: int) -> bytes:
    rng = np.random.default_rng(version)
    f = rng.standard_normal((30, int(base.feature_dim)))
    p = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (30, 1))
    art = fit_prototypes(
        f,
        np.repeat([0, 2], 15),
        p,
        patient_id=pid,
        base_sha256=file_sha256(base.path),
        version=version,
    )
    return art.to_bytes()


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        for pid in ("p1", "p2"):
            repo.register_patient(s, patient_id=pid, display_name=pid)
    yield url, engine, factory
    engine.dispose()


def test_cached_loader_sees_adaptations_and_rollbacks(base, db) -> None:
    _url, engine, factory = db
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    now = [0.0]
    load = arepo.cached_artefact_loader(factory, refresh_s=5.0, clock=lambda: now[0])
    assert load("p1") is None and load("p2") is None
    assert len(statements) == 1  # one snapshot query for every patient
    with session_scope(factory) as s:
        arepo.add_model(
            s,
            patient_id="p1",
            method="prototypes",
            base_sha256="x",
            artefact=_art_bytes(base, "p1", 1),
            summary={},
            actor="c",
        )
    assert load("p1") is None  # not before the next refresh
    now[0] = 5.0
    statements.clear()
    got = load("p1")
    assert got is not None and got[:2] == (1, "prototypes")
    assert load("p1") is got and load("p2") is None
    assert len(statements) == 2  # the snapshot, then the bytes once
    with session_scope(factory) as s:
        arepo.rollback_to_base(s, patient_id="p1")
    now[0] = 10.0
    assert load("p1") is None
    with session_scope(factory) as s:
        arepo.activate_model(s, patient_id="p1", version=1)
    now[0] = 15.0
    assert load("p1")[0] == 1
    with pytest.raises(ValueError, match="refresh_s"):
        arepo.cached_artefact_loader(factory, refresh_s=-1)


def test_hook_skips_other_models_and_isolates_a_failing_patient(base, tmp_path) -> None:
    sha = file_sha256(base.path)
    stored = {"p1": (1, "prototypes", _art_bytes(base, "p1", 1))}
    reg = PatientModelRegistry(base, stored.get)
    n = 3
    rng = np.random.default_rng(0)
    batch = SimpleNamespace(
        windows=rng.standard_normal((n, 1, base.n_leads, base.window_len)).astype(np.float32),
        rr=np.ones((n, 1, base.n_rr), np.float32),
    )
    broken = SimpleNamespace(windows=np.zeros((n, 1, 1, 3), np.float32), rr=batch.rr)
    p = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (n, 1))
    (tmp_path / "single.onnx").write_bytes(b"another model")
    other = SimpleNamespace(path=tmp_path / "single.onnx", name="single")
    gone = SimpleNamespace(path=tmp_path / "gone.onnx", name="gone")
    probs, versions = apply_batches(
        reg,
        [("p1", batch), ("p1", batch), ("p2", batch), ("p1", broken), ("p1", batch)],
        [p, p, p, p, p],
        models=[base, other, base, base, gone],
    )
    assert versions[0].endswith("+prototypes:p1/v1")
    # another beat model (a one-lead wearable's): left alone, its own version
    assert versions[1] == f"single@{file_sha256(other.path)[:12]}" and probs[1] is p
    assert versions[4] is None and probs[4] is p  # a model without a readable file
    assert versions[2] == f"{base.name}@{sha[:12]}"
    assert versions[3] == versions[2] and probs[3] is p  # adaptation failed: base, with a notice
    assert any("p1" in x and "failed" in x for x in reg.notices)
    assert not np.allclose(probs[0], p)


def test_worker_option_spec(base, db) -> None:
    url, _engine, _factory = db
    assert patient_models_spec(False) is None
    for bad in ({"refresh": 1}, {"refresh_s": -1}, "yes", 3):
        with pytest.raises(ValueError, match="patient_models"):
            patient_models_spec(bad)
    model, opts = resolve_patient_models(
        {"patient_models": {"refresh_s": 1.0}, "batch_max": 10}, model=base.path, database_url=url
    )
    assert isinstance(opts["patient_models"], PatientModelRegistry) and opts["batch_max"] == 10
    assert opts["patient_models"].base is model and opts["patient_models"].refresh_s == 1.0
    same, opts2 = resolve_patient_models({"x": 1}, model=base, database_url=url)
    assert same is base and opts2 == {"x": 1}


def test_hook_reuses_the_streams_encoder_features(base, monkeypatch) -> None:
    """Live, the adapted model costs no second encoder call: the current beats' features come
    from the stream's feature cache, and give the same probabilities as encoding them again."""
    from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches

    fs = 360.0
    t = np.arange(int(30 * fs)) / fs
    mv = 1.2 * np.exp(-((np.mod(t, 0.8) - 0.4) ** 2) / (2 * 0.012**2)) - 0.1
    pipe = BeatPipeline(fs=fs, lead_names=("MLII", "V5"), model=base)
    batch = pipe.prepare(np.stack([mv, mv], axis=1))
    assert len(batch) > 20 and batch.context is not None
    (p,) = classify_batches(base, [batch])
    reg = PatientModelRegistry(base, {"p1": (1, "prototypes", _art_bytes(base, "p1", 1))}.get)
    calls = []
    encode = base.encode
    monkeypatch.setattr(base, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    (q_cached,), (v,) = apply_batches(reg, [("p1", batch)], [p], models=[base])
    assert calls == [] and v.endswith("/v1")
    q_again, _ = reg.apply("p1", batch.windows[:, -1], batch.rr[:, -1], p)
    assert calls == [1]
    np.testing.assert_allclose(q_cached, q_again, atol=1e-5)
    assert not np.allclose(q_cached, p)
    # a batch without the stream's cache (context None) is encoded again inside the hook
    import dataclasses

    (q_no_cache,), (v2,) = apply_batches(
        reg, [("p1", dataclasses.replace(batch, context=None))], [p], models=[base]
    )
    assert calls == [1, 1] and v2 == v
    np.testing.assert_allclose(q_no_cache, q_cached, atol=1e-5)


def test_nearest_prototype_fast_path_matches_the_reference() -> None:
    """The live path (k = 1: one matrix product, per-class minima) gives the probabilities of the
    reference per-class computation, for 0, 1 and many beats and a class without prototypes."""
    from heartline.edge.adapt import combine_proba

    rng = np.random.default_rng(3)
    f = rng.standard_normal((120, 16))
    y = rng.permutation(np.r_[np.zeros(60, int), np.full(40, 2), np.full(20, 1)])
    p = rng.dirichlet(np.ones(5), 120)
    art = fit_prototypes(f, y, p, patient_id="x", base_sha256="s")
    assert art.k == 1 and set(art.adapted_classes) == {"N", "S", "V"}
    for n in (0, 1, 7, 120):
        z = (f[:n] - art.mean) / art.scale
        dist = np.full((n, 5), np.inf)
        for c in np.unique(art.prototype_labels):  # mean squared distance to the nearest one
            diff = z[:, None, :] - art.prototypes[art.prototype_labels == c][None]
            dist[:, c] = (diff**2).mean(2).min(1) if n else dist[:, c]
        ref = combine_proba(p[:n], dist, weight=art.weight, tau=art.tau)
        np.testing.assert_allclose(art.proba(f[:n], p[:n]), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("weight", "tau"), [(0.5, 0.05), (1.0, 1.0), (0.25, 0.1), (0.0, 0.05)])
def test_live_proba_with_a_mixture_matches_the_reference(weight: float, tau: float) -> None:
    """The per-patient constants (standardisation folded into the prototypes, |z|^2 left out,
    class groups of unequal size padded) give the reference probabilities for every mixture,
    not only the weight the fit happened to choose; weight 0 returns the base model's."""
    import dataclasses

    from heartline.edge.adapt import combine_proba

    rng = np.random.default_rng(7)
    f = 3.0 + 2.0 * rng.standard_normal((150, 12))
    y = rng.permutation(np.r_[np.zeros(90, int), np.full(45, 2), np.full(15, 1)])
    p = rng.dirichlet(np.ones(5), 150)
    art = dataclasses.replace(
        fit_prototypes(f, y, p, patient_id="x", base_sha256="s"), weight=weight, tau=tau
    )
    counts = np.bincount(art.prototype_labels)
    assert len(set(counts[counts > 0].tolist())) > 1  # groups of unequal size are padded
    for n in (0, 1, 2, 150):
        z = (f[:n] - art.mean) / art.scale
        dist = np.full((n, 5), np.inf)
        for c in np.unique(art.prototype_labels):
            diff = z[:, None, :] - art.prototypes[art.prototype_labels == c][None]
            dist[:, c] = (diff**2).mean(2).min(1) if n else dist[:, c]
        ref = combine_proba(p[:n], dist, weight=weight, tau=tau)
        got = art.proba(f[:n].astype(np.float32), p[:n])
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
        if weight == 0.0:
            np.testing.assert_array_equal(got, p[:n])
        elif n:
            assert not np.allclose(got, p[:n])


def test_hook_skips_an_adaptation_whose_weight_is_zero(base, monkeypatch) -> None:
    """A prototype artefact fitted with mixture weight 0 changes no probability: the hook
    neither looks up nor computes features for it, and the beats get the adapted version."""
    import dataclasses

    from heartline.edge import adapt
    from heartline.edge.adapt import PatientPrototypes

    art = PatientPrototypes.from_bytes(_art_bytes(base, "p1", 1))
    zero = dataclasses.replace(art, weight=0.0).to_bytes()
    reg = PatientModelRegistry(base, {"p1": (1, "prototypes", zero)}.get)
    assert reg.get("p1").adapted.passthrough
    monkeypatch.setattr(adapt, "_cached_features", lambda *a: pytest.fail("features looked up"))
    batch = SimpleNamespace(windows=np.zeros((2, 3, 2, 128)), rr=np.zeros((2, 3, 13)))
    p = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.2, 0.6, 0.1, 0.05, 0.05]], np.float32)
    (q,), (v,) = apply_batches(reg, [("p1", batch)], [p], models=[base])
    np.testing.assert_array_equal(q, p)
    assert v.endswith("+prototypes:p1/v1")
    # with a non-zero weight the same call does look features up
    reg2 = PatientModelRegistry(base, {"p1": (1, "prototypes", art.to_bytes())}.get)
    assert art.weight > 0 and not reg2.get("p1").adapted.passthrough
    with pytest.raises(pytest.fail.Exception, match="features looked up"):
        apply_batches(reg2, [("p1", batch)], [p], models=[base])


def _reference_proba(art, f: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The direct computation: standardise, mean squared distance to the nearest prototype of
    each class, :func:`combine_proba`."""
    from heartline.edge.adapt import combine_proba

    z = (np.asarray(f, np.float64) - art.mean) / art.scale
    dist = np.full((len(z), 5), np.inf)
    for c in np.unique(art.prototype_labels):
        diff = z[:, None, :] - art.prototypes[art.prototype_labels == c][None]
        dist[:, c] = (diff**2).mean(2).min(1)
    return combine_proba(p, dist, weight=art.weight, tau=art.tau)


def test_hook_gives_the_direct_probabilities_for_several_patients_in_one_batch(base) -> None:
    """One hook call for five patients' streams (mixture weights 0 to 1, one or two beats each
    as live, and one batch of many beats): every batch gets the direct computation's
    probabilities from the stream's cached features, and its patient's model version."""
    import dataclasses

    from heartline.edge.adapt import PatientPrototypes
    from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches

    fs = 360.0
    weights = {"p0": 0.0, "p1": 0.25, "p2": 0.5, "p3": 0.75, "p4": 1.0}
    arts, stored, pipes, signals = {}, {}, {}, {}
    for i, (pid, w) in enumerate(weights.items()):
        art = PatientPrototypes.from_bytes(_art_bytes(base, pid, i + 1))
        arts[pid] = dataclasses.replace(art, weight=w, tau=(0.05, 0.1, 0.25, 0.5, 1.0)[i])
        stored[pid] = (i + 1, "prototypes", arts[pid].to_bytes())
        t = np.arange(int(40 * fs)) / fs
        period = 0.7 + 0.05 * i
        mv = (1.0 + 0.1 * i) * np.exp(-((np.mod(t, period) - 0.3) ** 2) / (2 * 0.012**2)) - 0.1
        signals[pid] = np.stack([mv, 0.8 * mv], axis=1)
        pipes[pid] = BeatPipeline(fs=fs, lead_names=("MLII", "V5"), model=base)
    reg = PatientModelRegistry(base, stored.get)
    checked = {pid: 0 for pid in weights}
    big = 0
    for k, start in enumerate(range(0, int(40 * fs), int(fs))):
        # p4's stream arrives in 12 s pieces (a batch of many beats: the array path)
        chunk = {pid: signals[pid][start : start + int(fs)] for pid in weights if pid != "p4"}
        if k % 12 == 0:
            chunk["p4"] = signals["p4"][start : start + int(12 * fs)]
        batches = [(pid, pipes[pid].prepare(x)) for pid, x in chunk.items()]
        batches = [(pid, b) for pid, b in batches if len(b)]
        if not batches:
            continue
        probs = classify_batches(base, [b for _, b in batches])
        got, versions = apply_batches(reg, batches, probs, models=[base] * len(batches))
        for (pid, b), p, q, v in zip(batches, probs, got, versions, strict=True):
            assert v == f"{reg.base_version}+prototypes:{pid}/v{int(pid[1]) + 1}"
            f = base.encode(b.windows[:, -1], b.rr[:, -1])
            np.testing.assert_allclose(q, _reference_proba(arts[pid], f, p), rtol=1e-6, atol=1e-9)
            if weights[pid] == 0.0:
                assert q is p
            else:
                assert not np.allclose(q, p)
            checked[pid] += len(b)
            big = max(big, len(b))
    assert min(checked.values()) > 20 and big > 8


@pytest.mark.parametrize("weight", [0.25, 0.5, 1.0])
def test_few_beat_path_matches_the_array_path_and_the_reference(weight: float) -> None:
    """The per-beat path of a live call (up to 8 beats) gives the array path's and the direct
    computation's probabilities; beats with a non-finite or negative input go to the array
    path, which returns its own answer (NaN for NaN)."""
    import dataclasses

    from heartline.edge import adapt

    rng = np.random.default_rng(11)
    f = 1.5 + rng.standard_normal((200, 10))
    y = rng.permutation(np.r_[np.zeros(120, int), np.full(50, 2), np.full(30, 3)])
    p = rng.dirichlet(np.ones(5) * 0.3, 200)
    p[:5, [0, 2, 3]] = 0.0  # no base mass on the adapted classes
    p[:5] /= p[:5].sum(1, keepdims=True)
    art = dataclasses.replace(
        fit_prototypes(f, y, p, patient_id="x", base_sha256="s"), weight=weight, tau=0.1
    )
    for n in range(1, adapt._LIVE_ROWS_MAX + 1):
        for start in (0, 50, 120):
            x, b = f[start : start + n].astype(np.float32), p[start : start + n].astype(np.float32)
            rows = art._live_rows(x, b)
            assert rows is not None
            np.testing.assert_allclose(rows, art._live_arrays(x, b), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(
                art.proba(x, b), _reference_proba(art, x, b), rtol=1e-6, atol=1e-9
            )
    bad_f = f[:3].copy()
    bad_f[1, 4] = np.nan
    bad_p = p[:3].copy()
    bad_p[2, 1] = np.nan
    for x, b in ((bad_f, p[:3]), (f[:3], bad_p), (f[:3], np.zeros((3, 5)))):
        assert art._live_rows(x, b) is None
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_array_equal(art.proba(x, b), art._live_arrays(x, b))
    assert np.isnan(art.proba(bad_f, p[:3])[1]).all()
