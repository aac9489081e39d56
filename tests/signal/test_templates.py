"""Running-template (patient-adaptive) morphology features: causal, per record, online == batch."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.io import read_annotations, read_record
from heartline.signal.segmentation import normalise_beats, preprocess_ecg, segment_beats
from heartline.signal.templates import (
    TEMPLATE_LEAD_FEATURES,
    TemplateTracker,
    qrs_width_ms,
    template_feature_names,
    template_features,
)

T_S = -0.25 + np.arange(128) * 0.7 / 128  # window time axis of segment_beats' defaults


def _beat(width_s: float, amp: float = 1.0, p_amp: float = 0.15) -> np.ndarray:
    """A synthetic beat: Gaussian QRS of the given width plus a small P wave 160 ms before R."""
    return amp * np.exp(-((T_S / width_s) ** 2)) + p_amp * np.exp(-(((T_S + 0.16) / 0.02) ** 2))


NARROW, WIDE = _beat(0.012), _beat(0.045)


def _col(f, name: str) -> np.ndarray:
    return f.values[:, f.names.index(name)]


def test_shapes_names_and_no_nan():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(50, 2, 128)).astype(np.float32)
    f = template_features(w, record_ids=np.repeat(["a", "b"], 25), n_template=8)
    assert f.values.shape == (50, 2 * len(TEMPLATE_LEAD_FEATURES) + 1)
    assert f.values.dtype == np.float64 and f.names == template_feature_names(2)
    assert len(set(f.names)) == len(f.names) and f.n_template == 8
    assert np.all(np.isfinite(f.values))
    # 2-D windows are one lead
    assert template_features(w[:, 0], n_template=8).values.shape == (50, 10)


def test_first_beat_is_compared_with_itself():
    w = np.stack([WIDE, NARROW, NARROW])
    f = template_features(w, n_template=4)
    row = dict(zip(f.names, f.values[0], strict=True))
    for name in ("tpl_corr_l0", "tpl_corr_qrs_l0", "tpl_corr_p_l0"):
        assert row[name] == pytest.approx(1.0)
    for name in (
        "tpl_nrmsd_l0",
        "tpl_nrmsd_qrs_l0",
        "tpl_nrmsd_p_l0",
        "tpl_qrs_width_logratio_l0",
        "tpl_qrs_energy_logratio_l0",
        "tpl_qrs_amp_logratio_l0",
        "tpl_fill",
    ):
        assert row[name] == 0.0
    # beat 1 is compared with beat 0 alone; fill grows by 1 / n_template per beat
    assert _col(f, "tpl_qrs_width_logratio_l0")[1] < -0.5
    assert _col(f, "tpl_fill").tolist() == [0.0, 0.25, 0.5]


def test_ectopic_beat_stands_out_from_its_own_patient():
    beats = np.stack([NARROW] * 40 + [WIDE] + [NARROW] * 5)
    f = template_features(beats, n_template=16)
    corr, width = _col(f, "tpl_corr_qrs_l0"), _col(f, "tpl_qrs_width_logratio_l0")
    nrmsd = _col(f, "tpl_nrmsd_qrs_l0")
    assert corr[40] < 0.8 and width[40] > 0.7 and nrmsd[40] > 0.3
    # one odd beat does not move the median template: the next normal beats match it exactly
    assert np.allclose(corr[41:], 1.0) and np.allclose(nrmsd[41:], 0.0)


def test_patient_normalisation_wide_dominant_beat_looks_normal():
    """A bundle-branch-block patient: every beat wide. Relative to its template it is normal,
    while its absolute width is that of a ventricular beat."""
    rng = np.random.default_rng(2)
    lbbb = np.stack([_beat(0.045, amp=1 + 0.05 * rng.normal()) for _ in range(60)])
    f = template_features(lbbb, n_template=16)
    assert np.all(np.abs(_col(f, "tpl_qrs_width_logratio_l0")[16:]) < 0.15)
    assert np.all(_col(f, "tpl_corr_l0")[16:] > 0.99)
    assert np.all(qrs_width_ms(lbbb)[:, 0] > 2 * qrs_width_ms(NARROW[None])[0, 0])


def test_premature_supraventricular_beat_changes_p_wave_not_qrs():
    normal = _beat(0.012)
    no_p = _beat(0.012, p_amp=0.0) + 0.15 * np.exp(-(((T_S + 0.22) / 0.02) ** 2))  # P moved
    f = template_features(np.stack([normal] * 20 + [no_p]), n_template=16)
    assert _col(f, "tpl_corr_p_l0")[20] < 0.5
    assert _col(f, "tpl_corr_qrs_l0")[20] > 0.999


def test_records_do_not_share_templates():
    w = np.stack([WIDE] * 10 + [NARROW] * 10)
    ids = np.array(["a"] * 10 + ["b"] * 10)
    split = template_features(w, record_ids=ids, n_template=8)
    assert _col(split, "tpl_fill")[10] == 0.0
    assert _col(split, "tpl_qrs_width_logratio_l0")[10] == 0.0
    # as one record, the first narrow beat is compared with the wide template
    joined = template_features(w, n_template=8)
    assert _col(joined, "tpl_qrs_width_logratio_l0")[10] < -0.5
    # each record alone gives the same rows as the batch
    alone = template_features(w[10:], n_template=8)
    np.testing.assert_array_equal(split.values[10:], alone.values)


def test_causal_future_beats_do_not_change_past_rows():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(120, 2, 128))
    base = template_features(w, n_template=32).values
    w2 = w.copy()
    w2[70:] = rng.normal(size=w2[70:].shape) * 5
    changed = template_features(w2, n_template=32).values
    np.testing.assert_array_equal(base[:70], changed[:70])
    assert not np.allclose(base[70], changed[70])


def test_template_is_median_of_previous_beats():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(30, 1, 128))
    m, i = 8, 20
    f = template_features(w, n_template=m)
    # recompute beat i's NRMSD against the explicit median of beats i-m .. i-1
    tpl = np.median(w[i - m : i, 0], axis=0)
    expected = np.sqrt(np.mean((w[i, 0] - tpl) ** 2)) / (np.sqrt(np.mean(tpl**2)) + 1e-3)
    assert _col(f, "tpl_nrmsd_l0")[i] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_template", [1, 5, 32])
def test_online_equals_batch(n_template):
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3000, 2, 128)).astype(np.float32)  # > the batch chunk size
    batch = template_features(w, n_template=n_template).values
    tracker = TemplateTracker(n_template=n_template)
    online = np.stack([tracker.update(b) for b in w])
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-12)
    assert tracker.names == template_feature_names(2)
    tracker.reset()
    # after reset the next beat is a first beat again
    np.testing.assert_allclose(tracker.update(w[7]), template_features(w[7:8]).values[0])


def test_online_equals_batch_on_real_record(mitdb_dir):
    rec = read_record(mitdb_dir / "208")  # DS1; many PVCs, couplets and fusion beats
    peaks = read_annotations(mitdb_dir / "208").beats().sample_idx[:600]
    peaks = peaks[(peaks > 0) & (peaks < rec.n_samples)]
    clean = preprocess_ecg(rec.signal, fs=rec.fs)
    w = normalise_beats(segment_beats(clean, peaks, fs=rec.fs))
    batch = template_features(w).values
    tracker = TemplateTracker()
    online = np.stack([tracker.update(b) for b in w])
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-12)
    assert np.all(np.isfinite(batch))


def test_flat_windows_are_finite():
    f = template_features(np.zeros((10, 2, 128)), n_template=4)
    assert np.all(np.isfinite(f.values))
    assert np.all(_col(f, "tpl_corr_l0") == 0.0)  # no shape to correlate
    assert np.all(_col(f, "tpl_qrs_width_logratio_l0") == 0.0)


def test_empty_input():
    f = template_features(np.zeros((0, 2, 128)), record_ids=np.array([], dtype=str))
    assert f.values.shape == (0, 19)


def test_validation():
    w = np.zeros((4, 128))
    with pytest.raises(ValueError, match="n_template"):
        template_features(w, n_template=0)
    with pytest.raises(ValueError, match="windows"):
        template_features(np.zeros((2, 2, 2, 128)))
    with pytest.raises(ValueError, match="record_ids"):
        template_features(w, record_ids=["a", "a"])
    with pytest.raises(ValueError, match="contiguous"):
        template_features(w, record_ids=["a", "b", "a", "a"])
    with pytest.raises(ValueError, match="window_len"):
        template_features(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="pre_s"):
        template_features(w, pre_s=-0.1)
    with pytest.raises(ValueError, match="NaN"):
        template_features(np.where(np.arange(128) == 5, np.nan, w))
    with pytest.raises(ValueError, match="n_template"):
        TemplateTracker(n_template=0)
    tracker = TemplateTracker()
    tracker.update(np.zeros((2, 128)))
    with pytest.raises(ValueError, match="shape"):
        tracker.update(np.zeros((1, 128)))
    with pytest.raises(ValueError, match="window"):
        tracker.update(np.zeros((1, 2, 128)))
    with pytest.raises(ValueError, match="NaN"):
        tracker.update(np.full((2, 128), np.inf))


@pytest.mark.parametrize("k", [1, 2, 7, 32])
def test_fast_median_equals_numpy(k):
    from heartline.signal.templates import _median_last

    x = np.random.default_rng(k).normal(size=(50, 2, 16, k))
    np.testing.assert_array_equal(_median_last(x), np.median(x, axis=-1))


def test_qrs_width_orders_beats_by_width():
    widths = qrs_width_ms(np.stack([_beat(s) for s in (0.008, 0.015, 0.03, 0.05)]))[:, 0]
    assert np.all(np.diff(widths) > 0)
    assert 10 < widths[0] < 40 and widths[-1] > 80


def test_update_many_equals_update_bit_for_bit():
    """Many streams' next beats in rounds of vectorised calls: the rows and states of one-beat
    updates, bit for bit, whatever mix of filling / full histories, settings and batch sizes."""
    rng = np.random.default_rng(11)
    settings = [
        dict(n_template=4),
        dict(n_template=4),
        dict(n_template=4, eps=1e-2),  # other settings: never grouped with the first two
        dict(n_template=7),
        dict(n_template=4),
    ]
    leads = [2, 2, 2, 2, 1]  # a one-lead stream beside the two-lead ones
    many = [TemplateTracker(**s) for s in settings]
    ref = [TemplateTracker(**s) for s in settings]
    streams = [rng.normal(size=(120, c, 64)) for c in leads]
    streams[1][:, 1] = 0.0  # a flat lead: finite rows there too
    pos = [0] * len(many)
    widest = 0
    for _call in range(60):
        counts = [int(rng.integers(0, 4)) for _ in many]
        ws = [s[p : p + n] for s, p, n in zip(streams, pos, counts, strict=True)]
        got = TemplateTracker.update_many(many, ws)
        for t, w, g in zip(ref, ws, got, strict=True):
            want = np.stack([t.update(b) for b in w]) if len(w) else np.empty((0, g.shape[1]))
            assert g.shape == want.shape
            np.testing.assert_array_equal(g, want)
        pos = [p + len(w) for p, w in zip(pos, ws, strict=True)]
        widest = max(
            widest, sum(1 for w, t in zip(ws, many, strict=True) if len(w) and t._count > 4)
        )
    assert min(pos) > 20 and widest >= 2  # histories filled and streams batched together
    # more new beats in one call than a history holds (the ring wraps within the call), and a
    # fresh stream filling its whole history in one call
    fresh, fresh_ref = TemplateTracker(n_template=4), TemplateTracker(n_template=4)
    ws = [s[p : p + 11] for s, p in zip(streams, pos, strict=True)]
    got = TemplateTracker.update_many([*many, fresh], [*ws, streams[0][:9]])
    for t, w, g in zip([*ref, fresh_ref], [*ws, streams[0][:9]], got, strict=True):
        np.testing.assert_array_equal(g, np.stack([t.update(b) for b in w]))
    for a, b in zip(many, ref, strict=True):
        assert a._count == b._count
        np.testing.assert_array_equal(a._history, b._history)


def test_update_many_validates_before_changing_anything():
    rng = np.random.default_rng(2)
    a, b = TemplateTracker(n_template=3), TemplateTracker(n_template=3)
    TemplateTracker.update_many([a, b], [rng.normal(size=(5, 2, 64))] * 2)
    hist = a._history.copy()
    bad = rng.normal(size=(2, 2, 64))
    bad[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TemplateTracker.update_many([a, b], [rng.normal(size=(2, 2, 64)), bad])
    assert a._count == 5 and np.array_equal(a._history, hist)
    with pytest.raises(ValueError, match="differs"):
        TemplateTracker.update_many([a, b], [rng.normal(size=(1, 2, 64)), rng.normal(size=(1, 64))])
    assert a._count == 5
    with pytest.raises(ValueError, match="align"):
        TemplateTracker.update_many([a, b], [bad])
    with pytest.raises(ValueError, match="distinct"):
        TemplateTracker.update_many([a, a], [bad, bad])
    with pytest.raises(ValueError, match="must be"):
        TemplateTracker.update_many([a], [np.zeros((2, 2, 2, 64))])
    fresh = TemplateTracker(n_template=3)
    with pytest.raises(ValueError, match="window_len"):
        TemplateTracker.update_many([fresh, a], [np.zeros((1, 2, 4)), rng.normal(size=(1, 2, 64))])
    assert fresh._history is None and a._count == 5
    assert TemplateTracker.update_many([], []) == []
