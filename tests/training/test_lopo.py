"""Leave-one-patient-out selection and the prematurity classifier, on synthetic patients."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heartline.data.aami import AAMI_CLASSES
from heartline.data.beat_set import BeatSet, concat_beat_sets
from heartline.data.splits import DS1, lopo_folds
from heartline.features.prematurity import (
    prematurity_features,
    qrs_fiducial_s,
    record_rr_features,
)
from heartline.training.lopo import (
    PrematurityClassifier,
    lopo_oof,
    paired_lopo_bootstrap,
    peak_source_beats,
    record_confusions,
    run_lopo_selection,
    score_lopo,
)

S, V, N = AAMI_CLASSES.index("S"), AAMI_CLASSES.index("V"), AAMI_CLASSES.index("N")
FS = 360.0


def _patient(record: str, rr_s: float, seed: int, n: int = 400) -> BeatSet:
    """Sinus rhythm at ``rr_s`` with premature S beats (normal shape) and wide V beats."""
    rng = np.random.default_rng(seed)
    labels = np.full(n, N)
    labels[rng.choice(np.arange(5, n - 1), size=40, replace=False)] = S
    free = np.flatnonzero(labels[5:-1] == N) + 5
    labels[rng.choice(free, size=30, replace=False)] = V
    rr = rr_s * (1 + 0.03 * rng.standard_normal(n))
    early = labels != N
    rr[early] *= 0.65  # premature
    after = np.flatnonzero(early) + 1
    rr[after[after < n]] *= 1.3  # pause
    peaks = np.round(np.cumsum(rr) * FS).astype(np.int64)
    t = np.linspace(-0.25, 0.45, 64)
    narrow = np.exp(-((t / 0.02) ** 2))
    wide = 0.8 * np.exp(-((t / 0.06) ** 2))
    windows = np.where((labels == V)[:, None], wide, narrow) + 0.05 * rng.standard_normal((n, 64))
    windows = windows[:, None, :].astype(np.float32)
    return BeatSet(
        windows=windows,
        rr=np.zeros((n, 0), np.float32),
        rr_names=(),
        labels=labels.astype(np.int64),
        record=np.full(n, record),
        sample_idx=peaks,
        fs=FS,
        lead_names=("MLII",),
    )


@pytest.fixture(scope="module")
def patients() -> BeatSet:
    # heart rates from 45 to 110 bpm: only prematurity relative to the patient separates S from N
    rates = [1.3, 0.55, 1.0, 0.7, 1.15]
    return concat_beat_sets([_patient(f"p{i}", r, i) for i, r in enumerate(rates)])


def test_lopo_folds_cover_ds1_once() -> None:
    folds = lopo_folds()
    assert [t for _, (t,) in folds] == list(DS1)
    assert all(len(tr) == 21 and t[0] not in tr for tr, t in folds)
    with pytest.raises(ValueError, match="repeat"):
        lopo_folds(["a", "a", "b"])
    with pytest.raises(ValueError, match="at least 2"):
        lopo_folds(["a"])


def test_record_rr_features_five_minute_average_is_causal() -> None:
    peaks = np.arange(0, 700) * 360  # one beat a second for 700 s
    peaks[600:] = peaks[599] + np.arange(1, 101) * 180  # then two a second
    f = record_rr_features(peaks, fs=360.0)
    assert f[599, 3] == pytest.approx(1.0)
    # beat 699 is at 649 s: its window [349, 649] s holds beats 349..599 (previous RR 1 s) and
    # the 100 half-second beats; beats before 349 s are out
    assert f[699, 3] == pytest.approx((251 * 1.0 + 100 * 0.5) / 351)
    with pytest.raises(ValueError, match="increasing"):
        record_rr_features(np.array([0, 5, 5]), fs=360.0)


def test_ratio_features_do_not_depend_on_the_heart_rate() -> None:
    slow, fast = _patient("a", 1.2, 7), _patient("b", 0.6, 7)
    fa = prematurity_features(slow, feature_set="ratios")
    fb = prematurity_features(fast, feature_set="ratios")
    k = [fa.names.index(c) for c in ("log_pre_avg5", "log_post_pre")]
    # first 240 beats: both 5-minute windows hold the whole record so far; R-peaks are whole
    # samples, so an interval of 140 samples is off by up to 0.7 % (log units: 0.007)
    np.testing.assert_allclose(
        fa.values[:240, k], fb.values[:240, k], atol=0.02
    )  # 1-sample rounding
    premature = slow.labels == S
    assert np.median(fa.values[premature, k[0]]) < -0.3 < np.median(fa.values[~premature, k[0]])
    assert np.median(fa.values[premature, k[1]]) > 0.3
    assert not any(n.startswith("rr_") for n in fa.names)  # no 16-beat rhythm columns


def test_feature_set_errors(patients: BeatSet) -> None:
    with pytest.raises(ValueError, match="unknown feature_set"):
        prematurity_features(patients, feature_set="nope")
    with pytest.raises(ValueError, match="lead 3"):
        prematurity_features(patients, leads=(3,))
    with pytest.raises(ValueError, match="rr_irregularity"):
        prematurity_features(patients, feature_set="ratios_rhythm")


def test_lopo_lda_finds_premature_beats_of_unseen_patients(patients: BeatSet) -> None:
    proba = lopo_oof(patients, lambda: PrematurityClassifier(estimator="lda"), progress=False)
    assert np.isfinite(proba).all()
    conf = record_confusions(patients, proba, patients.records)
    score = score_lopo(conf, patients.records)
    assert score.sveb_se > 0.9 and score.sveb_ppv > 0.8
    assert score.veb_f1 > 0.9
    assert score.sveb_f1_per_patient > 0.85


def test_save_load_round_trip(patients: BeatSet, tmp_path) -> None:
    model = PrematurityClassifier(estimator="lda+hgb", hgb_iter=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict_proba(patients)
    model.fit(patients, None, seed=0)
    model.save(tmp_path / "m")
    again = PrematurityClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(patients), model.predict_proba(patients))
    assert np.allclose(model.predict_proba(patients).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown estimator"):
        PrematurityClassifier(estimator="svm")


def test_paired_bootstrap_and_selection(patients: BeatSet, tmp_path) -> None:
    recs = patients.records
    good = lopo_oof(patients, lambda: PrematurityClassifier(estimator="lda"), progress=False)
    always_n = np.zeros_like(good)
    always_n[:, N] = 1.0
    cg = record_confusions(patients, good, recs)
    cn = record_confusions(patients, always_n, recs)
    d, lo, hi, p = paired_lopo_bootstrap(cg, cg, n_boot=50)
    assert (d, lo, hi) == (0.0, 0.0, 0.0)
    d, lo, hi, p = paired_lopo_bootstrap(cg, cn, n_boot=200)
    assert d > 0.5 and lo > 0.3 and p == 1.0
    result = run_lopo_selection(
        patients,
        {"lda": {"estimator": "lda"}, "lda_abs": {"estimator": "lda", "feature_set": "dechazal"}},
        tmp_path,
        records=recs,
        n_boot=50,
    )
    assert result["winner"] in ("lda", "lda_abs")
    assert (tmp_path / "selection.md").is_file() and (tmp_path / "oof_lda.npz").is_file()
    cands = {
        "lda": {"estimator": "lda"},
        "lda_abs": {"estimator": "lda", "feature_set": "dechazal"},
    }
    again = run_lopo_selection(
        patients, cands, tmp_path, records=recs, n_boot=20, controls=[result["winner"]]
    )
    assert again["winner"] != result["winner"]  # a control never wins (OOF read from the cache)
    with pytest.raises(ValueError, match="not candidates"):
        run_lopo_selection(patients, cands, tmp_path, records=recs, controls=["x"])


def test_gate_columns_measure_background_irregularity() -> None:
    sinus = _patient("a", 0.8, 3)
    rng = np.random.default_rng(5)
    af_rr = 0.7 * np.exp(0.25 * rng.standard_normal(len(sinus)))
    af = BeatSet(
        sinus.windows,
        sinus.rr,
        (),
        sinus.labels,
        np.full(len(sinus), "b"),
        np.round(np.cumsum(af_rr) * FS).astype(np.int64),
        FS,
        ("MLII",),
    )
    fs_ = prematurity_features(sinus, feature_set="ratios_gate")
    fa = prematurity_features(af, feature_set="ratios_gate")
    k = fs_.names.index("irr64")
    assert np.median(fa.values[64:, k]) > 3 * np.median(fs_.values[64:, k])
    assert np.isfinite(fa.values).all()


def test_linear_onnx_matches_predict_proba(patients: BeatSet, tmp_path) -> None:
    import onnxruntime as ort

    from heartline.training.lopo import export_linear_onnx

    for est in ("lda", "logreg"):
        model = PrematurityClassifier(estimator=est)
        model.fit(patients, None)
        path = export_linear_onnx(model, tmp_path / f"{est}.onnx")
        x, _ = model.features(patients)
        x[:3, 0] = np.nan  # imputed with the training median, as in predict_proba
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(["proba"], {"features": x.astype(np.float32)})[0]
        want = np.zeros((len(x), 5))
        want[:, model._classes] = model._models[0].predict_proba(model._pre.transform(x))
        np.testing.assert_allclose(got, want, atol=1e-5)
    hgb = PrematurityClassifier(estimator="hgb", hgb_iter=3)
    hgb.fit(patients, None)
    with pytest.raises(ValueError, match="only linear"):
        export_linear_onnx(hgb, tmp_path / "x.onnx")


def _late(beats: BeatSet, shift: int) -> BeatSet:
    """The same beats with R-peaks ``shift`` window samples late (as a detector firing late):
    window content moves ``shift`` samples earlier, edge-padded."""
    w = np.concatenate(
        [beats.windows[..., shift:], np.repeat(beats.windows[..., -1:], shift, -1)], -1
    )
    step = (beats.pre_s + beats.post_s) / (beats.window_len - 1)
    return dataclasses.replace(
        beats, windows=w, sample_idx=beats.sample_idx + round(shift * step * beats.fs)
    )


def test_qrs_fiducial_aligns_morphology_of_late_r_peaks(patients: BeatSet) -> None:
    # noise-free shapes: a noisy flat-topped V beat has no single fiducial sample
    t = np.linspace(-0.25, 0.45, patients.window_len)
    narrow, wide = np.exp(-((t / 0.02) ** 2)), 0.8 * np.exp(-((t / 0.06) ** 2))
    shape = np.where((patients.labels == V)[:, None], wide, narrow)[:, None, :]
    patients = dataclasses.replace(patients, windows=shape.astype(np.float32))
    late = _late(patients, 3)
    step = (patients.pre_s + patients.post_s) / (patients.window_len - 1)
    np.testing.assert_allclose(
        qrs_fiducial_s(late) - qrs_fiducial_s(patients), -3 * step, atol=1e-9
    )
    # the aligned feature set reads template columns: give both copies one
    with_tpl = [
        dataclasses.replace(b, rr=np.zeros((len(b), 1), np.float32), rr_names=("tpl_x",))
        for b in (patients, late)
    ]
    plain = [prematurity_features(b, feature_set="ratios_tpl_gate") for b in with_tpl]
    aligned = [prematurity_features(b, feature_set="ratios_tpl_gate_align") for b in with_tpl]
    assert plain[0].names == aligned[0].names
    cols = [i for i, n in enumerate(plain[0].names) if n.startswith("morph")]
    # fixed-time samples move with the R-peak; samples relative to the QRS fiducial do not
    assert np.abs(plain[0].values[:, cols] - plain[1].values[:, cols]).max() > 0.1
    np.testing.assert_allclose(aligned[0].values[:, cols], aligned[1].values[:, cols], atol=1e-5)


def test_peak_source_beats_and_lopo_on_another_r_peak_source(patients: BeatSet, tmp_path) -> None:
    recs = patients.records
    late = _late(patients, 4)
    sources = {"annotated": patients, "detected": late}
    both = peak_source_beats(sources, "annotated+detected", recs[:2])
    assert len(both) == 2 * len(patients.select_records(recs[:2]))
    assert set(both.records) == {*recs[:2], *(f"{r}@detected" for r in recs[:2])}
    np.testing.assert_array_equal(
        both.labels,
        np.r_[patients.select_records(recs[:2]).labels, late.select_records(recs[:2]).labels],
    )
    assert peak_source_beats(sources, "detected", recs).windows is not patients.windows
    with pytest.raises(ValueError, match="unknown train_peaks"):
        peak_source_beats(sources, "both", recs)
    with pytest.raises(ValueError, match="needs beat sets"):
        peak_source_beats({"annotated": patients}, "detected", recs)
    seen: list[tuple[str, ...]] = []

    def train(train_recs):
        seen.append(tuple(train_recs))
        return peak_source_beats(sources, "detected", train_recs)

    proba = lopo_oof(
        patients, lambda: PrematurityClassifier(estimator="lda"), progress=False, train_beats=train
    )
    assert np.isfinite(proba).all() and len(seen) == len(recs)
    assert all(rec not in tr for rec, tr in zip(recs, seen, strict=True))  # never the test patient
    cands = {
        f"lda@{tp}": {"estimator": "lda", "train_peaks": tp}
        for tp in ("annotated", "detected", "annotated+detected")
    }
    result = run_lopo_selection(
        late, cands, tmp_path, records=recs, n_boot=20, peak_sources=sources
    )
    assert set(result["candidates"]) == set(cands)
    oof = {n: np.load(tmp_path / f"oof_{n}.npz")["proba"] for n in cands}
    assert not np.allclose(oof["lda@annotated"], oof["lda@detected"])
    with pytest.raises(ValueError, match="needs beat sets"):
        run_lopo_selection(late, cands, tmp_path, records=recs, n_boot=20)
