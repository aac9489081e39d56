"""Beat artefact detector (:mod:`heartline.signal.artefact`): motion-artefact firings flagged,
real ventricular beats kept, bad input handled, and the stream processor's use of it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from heartline.signal.artefact import (
    ARTEFACT_FEATURE_NAMES,
    ARTEFACT_MODEL_PATH,
    BeatArtefactModel,
    BeatArtefactTracker,
    artefact_features,
)

L = 128
K = len(ARTEFACT_FEATURE_NAMES)
T_S = -0.25 + np.arange(L) * 0.7 / L


def _beat(amp: float = 1.0) -> np.ndarray:
    return amp * np.exp(-((T_S / 0.012) ** 2)) - 0.1 * amp * np.exp(-(((T_S - 0.25) / 0.05) ** 2))


def test_shipped_model_loads_and_round_trips(tmp_path):
    m = BeatArtefactModel.load()
    assert 0 < m.threshold < 1
    p = tmp_path / "m.json"
    p.write_text(json.dumps(m.to_dict()))
    assert BeatArtefactModel.load(p) == m
    d = m.to_dict() | {"features": ["log_amp"]}
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="features"):
        BeatArtefactModel.load(p)


def test_features_are_relative_to_the_streams_own_beats():
    tr = BeatArtefactTracker(window_len=L)
    feats = tr.update_many(np.stack([_beat(0.5)] * 10 + [_beat(3.0)]))
    assert feats[:3, :3].tolist() == [[0.0] * 3] * 3  # no history yet: neutral
    assert np.allclose(feats[5, :3], 0.0)  # a beat like the others
    assert feats[5, ARTEFACT_FEATURE_NAMES.index("corr")] == pytest.approx(1.0)
    assert feats[-1, 0] == pytest.approx(math.log(6.0), rel=1e-6)  # 6x the running median
    # the offline form gives the same numbers, and the same at another overall scale
    assert np.allclose(artefact_features(np.stack([_beat(0.5)] * 10 + [_beat(3.0)])), feats)
    scaled = artefact_features(10 * np.stack([_beat(0.5)] * 10 + [_beat(3.0)]))
    assert np.allclose(scaled, feats)


def test_flat_and_nan_windows():
    m = BeatArtefactModel.load()
    tr = m.tracker(window_len=L)
    flat = tr.update_many(np.zeros((8, L)))
    assert np.isnan(flat).all()  # no deflection: no opinion
    assert not m.is_artefact(flat).any()
    assert not m.is_artefact(tr.update_many(np.stack([_beat()] * 8))).any()
    bad = _beat()
    bad[40] = np.nan
    f = tr.update(bad)
    assert np.isnan(f).all()
    assert m.predict_proba(f[None])[0] == 0.0 and not m.is_artefact(f[None])[0]
    with pytest.raises(ValueError, match="points"):
        tr.update(np.zeros(L + 1))


def test_model_validates_its_parameters():
    with pytest.raises(ValueError, match="threshold"):
        BeatArtefactModel(
            mean=(0.0,) * K, scale=(1.0,) * K, coef=(0.0,) * K, intercept=0.0, threshold=1.0
        )
    with pytest.raises(ValueError, match=f"{K} values"):
        BeatArtefactModel(
            mean=(0.0,), scale=(1.0,) * K, coef=(0.0,) * K, intercept=0.0, threshold=0.5
        )


def test_shipped_model_asset_is_the_module_default():
    assert ARTEFACT_MODEL_PATH.exists()
    assert ARTEFACT_MODEL_PATH.parent.name == "models"


# --------------------------------------------------------------------- on real MIT-BIH beats
def _always(threshold: float = 0.5) -> BeatArtefactModel:
    """A model calling every beat with a full history an artefact (for the wiring tests)."""
    k = len(ARTEFACT_FEATURE_NAMES)
    return BeatArtefactModel(
        mean=(0.0,) * k, scale=(1.0,) * k, coef=(0.0,) * k, intercept=20.0, threshold=threshold
    )


@pytest.fixture(scope="module")
def mlii_model():
    from heartline.edge.model_select import beat_model_specs
    from heartline.edge.runtime import OnnxBeatClassifier

    spec = min((s for s in beat_model_specs() if s.installed), key=lambda s: s.n_leads)
    return OnnxBeatClassifier(spec.onnx_path)


def _beats(sig, fs, model, artefact_model):
    from heartline.pipeline.beat_pipeline import BeatPipeline

    pipe = BeatPipeline(fs=fs, lead_names=("MLII",), model=model, artefact_model=artefact_model)
    out = []
    step = round(fs)
    for i in range(0, sig.shape[0], step):
        out += pipe.process(sig[i : i + step, None])
    return out + pipe.flush()


def _noisy(data_dir, rec, em, rng):
    """5 min of MIT-BIH ``rec`` (MLII) with a 1-3 s burst of nstdb electrode-motion noise at
    -12 dB (nstdb's SNR: signal power (QRS peak-to-peak)^2 / 8) every 20 s."""
    import wfdb

    r = wfdb.rdrecord(str(data_dir / "mitdb" / rec), sampto=300 * 360)
    ann = wfdb.rdann(str(data_dir / "mitdb" / rec), "atr", sampto=300 * 360)
    x = r.p_signal[:, r.sig_name.index("MLII")].copy()
    beats_idx = ann.sample[np.isin(ann.symbol, list("NLRejAaJSVEFQ/f"))]
    v_idx = ann.sample[np.isin(ann.symbol, ["V", "E"])]
    pp = np.median([np.ptp(x[max(0, i - 36) : i + 36]) for i in beats_idx])
    spans = []
    for a in np.arange(5 * 360, x.size - 4 * 360, 20 * 360):
        n = int(rng.uniform(1.0, 3.0) * 360)
        o = int(rng.integers(0, em.size - n))
        seg = em[o : o + n] - em[o : o + n].mean()
        seg *= np.sqrt(pp**2 / 8 / 10 ** (-12 / 10) / np.mean(seg**2))
        x[a : a + n] += seg * np.hanning(n) ** 0.25
        spans.append((a, a + n))
    return x, beats_idx, v_idx, spans


def test_flags_nstdb_artefact_firings_and_keeps_real_v_beats(data_dir, mlii_model):
    """DS1 records with ventricular ectopy (119 bigeminy, 106, 203 runs) with nstdb noise
    bursts: the shipped model flags a share of the detector's firings on the noise that the
    beat model calls V (9 of 66 here, 14 %; 37 % of such firings out of fold in training,
    docs/results/alarms.md), and almost none of the annotated V beats the beat model calls V
    (1 of 177). Measured once, bounds with margin: a model that flags nothing, or everything,
    fails."""
    import wfdb

    em = wfdb.rdrecord(str(data_dir / "nstdb" / "em")).p_signal[:, 0]
    rng = np.random.default_rng(1)
    art, true_v = [], []
    for rec in ("119", "106", "203"):
        x, beats_idx, v_idx, spans = _noisy(data_dir, rec, em, rng)
        got = _beats(x, 360.0, mlii_model, BeatArtefactModel.load())

        def near(idx, ref):
            return ref.size > 0 and np.min(np.abs(ref - idx)) <= 0.15 * 360

        art += [
            b.artefact
            for b in got
            if b.label == "V"
            and not near(b.sample_idx, beats_idx)
            and any(a <= b.sample_idx < c for a, c in spans)
        ]
        true_v += [b.artefact for b in got if b.label == "V" and near(b.sample_idx, v_idx)]
    assert len(art) >= 40 and len(true_v) >= 100
    assert np.mean(art) >= 0.1
    assert np.mean(true_v) <= 0.02


def test_verdicts_do_not_depend_on_chunking(data_dir, mlii_model):
    import wfdb

    from heartline.pipeline.beat_pipeline import BeatPipeline

    em = wfdb.rdrecord(str(data_dir / "nstdb" / "em")).p_signal[:, 0]
    x = _noisy(data_dir, "106", em, np.random.default_rng(2))[0][: 120 * 360]
    got = _beats(x, 360.0, mlii_model, BeatArtefactModel.load())
    assert any(b.artefact for b in got)
    pipe = BeatPipeline(
        fs=360.0, lead_names=("MLII",), model=mlii_model, artefact_model=BeatArtefactModel.load()
    )
    again = pipe.process(x[:, None]) + pipe.flush()
    assert [(b.sample_idx, b.artefact) for b in again] == [(b.sample_idx, b.artefact) for b in got]


def test_pipeline_without_a_model_flags_nothing(data_dir, mlii_model):
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "119"), sampto=30 * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")]
    assert not any(b.artefact for b in _beats(x, 360.0, mlii_model, None))
    flagged = _beats(x, 360.0, mlii_model, _always())
    assert all(b.artefact for b in flagged[4:])  # the first beats have no history


def test_flat_and_nan_stream(mlii_model):
    from heartline.pipeline.beat_pipeline import BeatPipeline

    pipe = BeatPipeline(
        fs=360.0, lead_names=("MLII",), model=mlii_model, artefact_model=BeatArtefactModel.load()
    )
    assert pipe.process(np.zeros((3600, 1))) + pipe.flush() == []
    pipe.reset()
    with pytest.raises(Exception, match=r"(?i)nan|finite"):
        pipe.process(np.full((360, 1), np.nan))


def test_processor_keeps_artefact_v_beats_out_of_the_rules(data_dir, mlii_model):
    """MIT-BIH 119's first 3 minutes raise ventricular alarms; with a model calling every beat
    an artefact the engine sees no V beat and raises none (the stored beats keep V)."""
    from heartline.alerts.rules.events import VENTRICULAR_KINDS as v_kinds
    from heartline.ingestion.replay import replay_signal
    from heartline.io.readers import read_ecg

    r = read_ecg(data_dir / "mitdb" / "119")
    sig = r.signal[: round(180 * r.fs), [r.lead_names.index("MLII")]]
    kinds = {}
    for name, m in (("off", None), ("always", _always())):
        rows = replay_signal(
            sig, fs=r.fs, lead_names=("MLII",), record="119", model=mlii_model, artefact_model=m
        )
        kinds[name] = {x.type for x in rows} & v_kinds
    assert kinds["off"], kinds
    assert not kinds["always"], kinds


@pytest.mark.parametrize("shape", [(16,), (15,), (1,), (2,), (128,), (16, 3), (7, 40), (16, 40)])
def test_the_fast_median_is_numpys_bit_for_bit(shape) -> None:
    from heartline.signal.artefact import _median0

    rng = np.random.default_rng(sum(shape))
    for scale in (1e-6, 1.0, 1e6):
        a = rng.standard_normal(shape) * scale
        a[rng.random(shape) < 0.2] = 0.5  # ties
        assert np.array_equal(_median0(a), np.median(a, axis=0))
