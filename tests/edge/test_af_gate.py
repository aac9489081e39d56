"""The atrial-fibrillation gate on SVEB calls (heartline.edge.af_gate, heartline.training.af_gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heartline.data.paths import resolve_data_dir
from heartline.edge.af_gate import (
    RhythmWindows,
    apply_af_gate,
    beat_rhythm_verdicts,
    rhythm_windows,
)
from heartline.edge.rhythm import OnnxRhythmClassifier, shipped_rhythm_model_path

needs_model = pytest.mark.skipif(
    not shipped_rhythm_model_path().is_file(), reason="shipped rhythm model not installed"
)


@pytest.fixture(scope="module")
def mitdb() -> Path:
    """MIT-BIH (``<data_dir>/mitdb``), or skip when it is absent."""
    path = resolve_data_dir() / "mitdb"
    if not (path / "201.hea").is_file() or not (path / "100.hea").is_file():
        pytest.skip(f"MIT-BIH records 100 and 201 not found in {path}")
    return path


@pytest.fixture(scope="module")
def clf() -> OnnxRhythmClassifier:
    if not shipped_rhythm_model_path().is_file():
        pytest.skip("shipped rhythm model not installed")
    return OnnxRhythmClassifier()


def _mlii(mitdb: Path, rec: str, a_s: float, b_s: float) -> tuple[np.ndarray, float]:
    from heartline.io.records import read_record

    r = read_record(mitdb / rec)
    return r.lead("MLII")[round(a_s * r.fs) : round(b_s * r.fs)], r.fs


# ----------------------------------------------------------------------------- apply_af_gate
def test_gate_turns_s_into_n_in_af_only() -> None:
    labels = np.array(["N", "S", "S", "V", "S"])
    af = np.array([True, True, False, True, True])
    np.testing.assert_array_equal(apply_af_gate(labels, af), ["N", "N", "S", "V", "N"])
    idx = np.array([0, 1, 1, 2, 1])  # AAMI indices
    np.testing.assert_array_equal(apply_af_gate(idx, af), [0, 0, 1, 2, 0])
    np.testing.assert_array_equal(labels, ["N", "S", "S", "V", "S"])  # input untouched


def test_gate_on_probabilities_moves_s_mass_to_n_for_s_calls_only() -> None:
    p = np.array(
        [
            [0.2, 0.5, 0.3, 0.0, 0.0],  # S call in AF -> N (0.7)
            [0.25, 0.3, 0.45, 0.0, 0.0],  # V call in AF: unchanged (not turned into N)
            [0.1, 0.8, 0.1, 0.0, 0.0],  # S call outside AF: unchanged
        ]
    )
    out = apply_af_gate(p, np.array([True, True, False]))
    np.testing.assert_allclose(out[0], [0.7, 0.0, 0.3, 0.0, 0.0])
    np.testing.assert_array_equal(out[1:], p[1:])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert list(np.argmax(out, axis=1)) == [0, 2, 1]


def test_gate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="af_mask entries"):
        apply_af_gate(np.array(["S", "N"]), np.array([True]))
    with pytest.raises(ValueError, match="boolean"):
        apply_af_gate(np.array(["S"]), np.array([1]))
    with pytest.raises(ValueError, match="columns"):
        apply_af_gate(np.zeros((2, 4)), np.array([True, False]))
    with pytest.raises(ValueError, match="'N' and 'S'"):
        apply_af_gate(np.array(["S"]), np.array([True]), classes=("A", "B"))


# ----------------------------------------------------------------------------- causality
def test_beat_gets_the_last_window_ending_at_or_before_it() -> None:
    w = RhythmWindows(
        end_idx=np.array([100, 200, 300]),
        start_idx=np.array([0, 0, 0]),
        proba=np.array([[0.0, 1, 0, 0], [1.0, 0, 0, 0], [0.0, 1, 0, 0]]),
        labels=np.array(["A", "N", "A"]),
        fs=100.0,
    )
    b = beat_rhythm_verdicts(fs=100.0, beat_idx=[50, 100, 150, 199, 200, 250, 300, 999], windows=w)
    np.testing.assert_array_equal(b.window, [-1, 0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(b.af_mask, [False, True, True, True, False, False, True, True])
    assert b.labels[0] == "" and np.isnan(b.proba[0]).all()
    with pytest.raises(ValueError, match="Hz"):
        beat_rhythm_verdicts(fs=360.0, beat_idx=[1], windows=w)
    with pytest.raises(ValueError, match="signal or precomputed"):
        beat_rhythm_verdicts(fs=100.0, beat_idx=[1])


# ----------------------------------------------------------------------------- real records
@needs_model
def test_af_excerpt_is_gated_and_sinus_is_not(mitdb, clf) -> None:
    # record 201: (AFIB from the start to 378 s; record 100: sinus rhythm throughout
    x_af, fs = _mlii(mitdb, "201", 0.0, 120.0)
    x_n, fs_n = _mlii(mitdb, "100", 0.0, 120.0)
    w_af = rhythm_windows(x_af, fs=fs, classifier=clf)
    w_n = rhythm_windows(x_n, fs=fs_n, classifier=clf)
    # due every 5 s from the start, the first once 10 s after the 2 s warm-up are in (15 s)
    np.testing.assert_array_equal(w_af.end_idx, np.arange(15, 121, 5) * round(fs))
    assert w_af.start_idx[0] == round(2 * fs) and w_af.start_idx[-1] == round(90 * fs)
    assert np.mean(w_af.labels == "A") >= 0.8, w_af.labels
    assert not np.any(w_n.labels == "A"), w_n.labels
    beats = np.arange(round(fs), x_af.size, round(0.7 * fs))
    v = beat_rhythm_verdicts(fs=fs, beat_idx=beats, windows=w_af)
    assert not v.af_mask[beats < 15 * fs].any()  # no window yet: never gated
    assert v.af_mask[beats >= 40 * fs].mean() >= 0.8
    s_calls = np.full(beats.size, "S")
    gated = apply_af_gate(s_calls, v.af_mask)
    assert (gated == "N").sum() == v.af_mask.sum() > 0
    v_n = beat_rhythm_verdicts(fs=fs_n, beat_idx=beats, windows=w_n)
    assert (apply_af_gate(s_calls, v_n.af_mask) == "S").all()


@needs_model
def test_verdicts_are_causal(mitdb, clf) -> None:
    x, fs = _mlii(mitdb, "201", 300.0, 420.0)  # AF ends at 378 s
    full = rhythm_windows(x, fs=fs, classifier=clf)
    cut = rhythm_windows(x[: round(70 * fs)], fs=fs, classifier=clf)
    k = len(cut)
    assert k >= 10
    np.testing.assert_array_equal(full.end_idx[:k], cut.end_idx)
    np.testing.assert_array_equal(full.labels[:k], cut.labels)
    np.testing.assert_allclose(full.proba[:k], cut.proba, atol=1e-12)


class _Verdicts:
    """A replay processor that records its rhythm verdicts (as tests/ingestion do)."""

    @staticmethod
    def make(model: Any) -> Any:
        from heartline.ingestion.replay import ReplayProcessor

        class P(ReplayProcessor):
            def __init__(self, **kw: Any) -> None:
                super().__init__(**kw)
                self.rhythm_own_detector = True
                self.verdicts: list[tuple[float, float, str, dict[str, float]]] = []

            def _engine_call(self, st: Any, method: str, *args: Any, **kwargs: Any) -> Any:
                if method == "add_rhythm":
                    self.verdicts.append((*args, kwargs["label"], dict(kwargs["probabilities"])))
                return super()._engine_call(st, method, *args, **kwargs)

        return P(model=model)


@needs_model
def test_offline_windows_are_the_stream_processors(mitdb, clf) -> None:
    """Same window ends, labels and probabilities as the live processor's rhythm stage."""
    from heartline.ingestion.replay import replay_signal, shipped_beat_model
    from heartline.io.readers import read_ecg

    rec = read_ecg(mitdb / "201")
    n = round(80 * rec.fs)
    proc = _Verdicts.make(shipped_beat_model())
    replay_signal(
        rec.signal[:n], fs=rec.fs, lead_names=tuple(rec.lead_names), record="201", processor=proc
    )
    mine = rhythm_windows(rec.signal[:n, 0], fs=rec.fs, classifier=clf)
    live = proc.verdicts
    assert len(live) == len(mine) >= 10
    t_end = np.array([t1 for _t0, t1, _l, _p in live])
    t_start = np.array([t0 for t0, _t1, _l, _p in live])
    epoch = t_end[-1] - n / rec.fs  # the replay's wall-clock time of sample 0
    np.testing.assert_allclose(t_end - epoch, mine.end_idx / rec.fs, atol=1e-6)
    full = mine.start_idx > round(2 * rec.fs)  # (the processor reports a window holding the
    # whole segment but its warm-up as starting at the segment's start)
    assert full.sum() >= 8
    np.testing.assert_allclose(t_start[full] - epoch, mine.start_idx[full] / rec.fs, atol=1e-6)
    assert [lab for _t0, _t1, lab, _p in live] == list(mine.labels)
    got = np.array([[p[c] for c in ("N", "A", "O", "~")] for *_, p in live])
    np.testing.assert_allclose(got, mine.proba, atol=1e-6)


# ----------------------------------------------------------------------------- MIT-BIH helpers
@needs_model
def test_record_rhythm_masks_beat_sets_and_reads_reference_rhythm(mitdb, tmp_path) -> None:
    from heartline.data.aami import AAMI_CLASSES
    from heartline.data.beat_set import BeatSet
    from heartline.training.af_gate import (
        AFGatedClassifier,
        RecordRhythm,
        reference_rhythm_per_beat,
    )

    rr = RecordRhythm(data_dir=mitdb.parent, cache_dir=tmp_path)
    idx = np.array([round(s * 360) for s in (5, 100, 200, 300, 400, 450)])
    n = idx.size * 2
    beats = BeatSet(
        windows=np.zeros((n, 1, 4), np.float32),
        rr=np.zeros((n, 0), np.float32),
        rr_names=(),
        labels=np.zeros(n, np.int64),
        record=np.array(["201"] * idx.size + ["100@detected"] * idx.size),
        sample_idx=np.concatenate([idx, idx]),
        fs=360.0,
        lead_names=("MLII",),
    )
    mask = rr.af_mask(beats)
    ref = reference_rhythm_per_beat(mitdb / "201", idx)
    assert list(ref) == ["(AFIB"] * 4 + ["(N"] * 2  # AFIB 0-378 s, then sinus
    assert not mask[0] and mask[1:4].all()  # 5 s: no window yet; 100-300 s: AF
    assert not mask[idx.size :].any()  # record 100: sinus
    assert len(list(tmp_path.glob("201_*.npz"))) == 1  # cached, and the cache reads back
    again = RecordRhythm(data_dir=mitdb.parent, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.af_mask(beats), mask)

    class AlwaysS:
        name = "always_s"

        def predict_proba(self, b: BeatSet) -> np.ndarray:
            p = np.zeros((len(b), len(AAMI_CLASSES)))
            p[:, AAMI_CLASSES.index("S")] = 1.0
            return p

    gated = AFGatedClassifier(AlwaysS(), rr)
    call = np.argmax(gated.predict_proba(beats), axis=1)
    np.testing.assert_array_equal(call == AAMI_CLASSES.index("N"), mask)
    assert gated.name == "always_s"


# ----------------------------------------------------------------------------- live processor
class _EngineBeats:
    """A replay processor that records the beats its engines receive (time, label)."""

    @staticmethod
    def make(model: Any, **kw: Any) -> Any:
        from heartline.ingestion.replay import ReplayProcessor

        class P(ReplayProcessor):
            def __init__(self, **kw: Any) -> None:
                super().__init__(**kw)
                self.beats: list[tuple[float, str]] = []
                self.verdicts: list[tuple[float, str]] = []

            def _engine_call(self, st: Any, method: str, *args: Any, **kwargs: Any) -> Any:
                if method == "add_beats":
                    s = args[0]
                    self.beats.extend(zip(s.time_s.tolist(), s.label.tolist(), strict=True))
                elif method == "add_rhythm":
                    self.verdicts.append((args[1], kwargs["label"]))
                return super()._engine_call(st, method, *args, **kwargs)

        return P(model=model, **kw)


@needs_model
def test_live_processor_gates_s_calls_in_af(mitdb) -> None:
    """``StreamProcessor(af_gate=True)``: the S calls after an ``A`` verdict reach the engine
    as N, every other beat as without the gate; the counter says how many."""
    from heartline.ingestion.replay import replay_signal, shipped_beat_model
    from heartline.io.readers import read_ecg

    rec = read_ecg(mitdb / "201")  # atrial fibrillation from the start
    n = round(150 * rec.fs)
    runs = {}
    for gate in (False, True):
        proc = _EngineBeats.make(shipped_beat_model(), af_gate=gate)
        replay_signal(
            rec.signal[:n],
            fs=rec.fs,
            lead_names=tuple(rec.lead_names),
            record="201",
            processor=proc,
        )
        runs[gate] = proc
    off, on = runs[False], runs[True]
    assert off.af_gate is False and on.af_gate is True
    assert [t for t, _ in off.beats] == [t for t, _ in on.beats]
    assert off.verdicts == on.verdicts and {lab for _, lab in on.verdicts} == {"A"}
    first_a = on.verdicts[0][0]
    expect = [("N" if lab == "S" and t >= first_a else lab) for t, lab in off.beats]
    assert [lab for _, lab in on.beats] == expect
    gated = sum(a != b for (_, a), (_, b) in zip(off.beats, on.beats, strict=True))
    assert gated > 0, "the beat model called no S in 201's AF: the test checks nothing"
    assert on.counters().beats_af_gated == gated and off.counters().beats_af_gated == 0
    assert not any(lab == "S" and t >= first_a for t, lab in on.beats)
