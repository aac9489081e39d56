"""``tune_gc``: startup objects frozen, fewer collections, garbage still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from heartline.ingestion import live as live_mod
from heartline.ingestion.processor import GC_THRESHOLD0, tune_gc


@pytest.fixture
def restore_gc():
    old = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*old)


def test_tune_gc_freezes_live_objects_and_raises_threshold0(restore_gc) -> None:
    gc.unfreeze()
    keep = [object() for _ in range(10)]  # alive at the call: frozen
    old = tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_THRESHOLD0, old[1], old[2])
    frozen = gc.get_freeze_count()
    # frozen objects are outside every generation: a full collection does not see them
    assert sum(gc.get_count()) < frozen
    assert keep


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cyclic_garbage_made_after_tune_gc_is_still_collected(restore_gc) -> None:
    tune_gc()
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a reference cycle: only the cyclic collector frees it
    ref = weakref.ref(a)
    del a, b
    assert ref() is not None  # no automatic collection yet (threshold0 is high)
    gc.collect()
    assert ref() is None


def test_tune_gc_refuses_a_threshold_below_the_default(restore_gc) -> None:
    with pytest.raises(ValueError, match="threshold0"):
        tune_gc(threshold0=100)


def test_live_system_tunes_gc_only_when_asked(monkeypatch, tmp_path) -> None:
    calls: list[int] = []
    monkeypatch.setattr(live_mod, "tune_gc", lambda: calls.append(1))
    from heartline.service.config import load_service_settings

    settings = load_service_settings(state_dir=tmp_path, broker_url="mqtt://127.0.0.1:9")
    for flag, expected in ((False, 0), (True, 1)):
        calls.clear()
        sys_ = live_mod.LiveSystem(settings, model=object(), tune_gc=flag)
        monkeypatch.setattr(sys_, "_make_processor", lambda parts: _NoProc())
        sys_.start()
        sys_.close()
        assert len(calls) == expected


class _NoProc:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
