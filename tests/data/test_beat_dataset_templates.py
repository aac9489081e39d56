"""build_beat_set(template_features=True): template columns after the RR columns, opt-in, cached."""

from __future__ import annotations

import numpy as np
import pytest

from heartline.data import beat_dataset
from heartline.data.beat_dataset import build_beat_set
from heartline.signal.segmentation import RR_FEATURE_NAMES
from heartline.signal.templates import template_feature_names, template_features

N_RR = len(RR_FEATURE_NAMES)
RECORDS = ["119", "214"]  # ventricular bigeminy; left bundle branch block with PVCs


@pytest.fixture(scope="module")
def sets(data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("tpl_cache")
    kw = {"data_dir": data_dir, "cache_dir": cache, "progress": False}
    return build_beat_set(RECORDS, **kw), build_beat_set(RECORDS, template_features=True, **kw)


def test_default_set_is_rr_only(sets) -> None:
    plain, _ = sets
    assert plain.rr.shape[1] == N_RR and plain.rr_names == RR_FEATURE_NAMES


def test_template_columns_follow_the_unchanged_rr_columns(sets) -> None:
    plain, tpl = sets
    assert tpl.rr_names == RR_FEATURE_NAMES + template_feature_names(2)
    assert tpl.rr.shape == (len(plain), N_RR + 19) and tpl.rr.dtype == np.float32
    np.testing.assert_array_equal(tpl.rr[:, :N_RR], plain.rr)
    np.testing.assert_array_equal(tpl.windows, plain.windows)
    np.testing.assert_array_equal(tpl.labels, plain.labels)
    assert np.isfinite(tpl.rr[:, N_RR:]).all()


def test_template_columns_are_per_record_on_the_model_windows(sets) -> None:
    _, tpl = sets
    ref = template_features(tpl.windows, record_ids=tpl.record, pre_s=tpl.pre_s, post_s=tpl.post_s)
    np.testing.assert_array_equal(tpl.rr[:, N_RR:], ref.values.astype(np.float32))
    fill = tpl.rr[:, -1]
    starts = np.flatnonzero(np.r_[True, tpl.record[1:] != tpl.record[:-1]])
    assert fill[starts].tolist() == [0.0, 0.0]  # each record starts its own template
    assert fill[starts[1] - 1] == 1.0


def test_cache_holds_templates_and_entries_without_them_are_rebuilt(data_dir, tmp_path) -> None:
    a = build_beat_set(["101"], data_dir=data_dir, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("*.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays["tpl"].shape == (len(a), 19)
    del arrays["tpl"]  # an entry written before the template columns existed
    np.savez(path, **arrays)
    b = build_beat_set(
        ["101"], data_dir=data_dir, cache_dir=tmp_path, progress=False, template_features=True
    )
    np.testing.assert_array_equal(b.rr[:, :N_RR], a.rr)
    with np.load(path) as z:
        assert "tpl" in z.files


def test_source_hash_covers_the_template_code(monkeypatch) -> None:
    """Editing heartline/signal/templates.py must invalidate the beat cache."""
    from pathlib import Path

    import heartline.signal.templates as templates

    before = beat_dataset._source_hash("annotated")
    real = Path.read_bytes

    def edited(self: Path) -> bytes:
        data = real(self)
        return data + b"\n# edited\n" if self == Path(templates.__file__) else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert beat_dataset._source_hash("annotated") != before
