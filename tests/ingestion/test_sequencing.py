from __future__ import annotations

import pytest

from heartline.ingestion.sequencing import SeqStatus, SequenceTracker


def statuses(tracker, device, seqs):
    return [tracker.observe(device, s).status for s in seqs]


def test_in_order_stream():
    t = SequenceTracker()
    assert statuses(t, "d", range(5)) == [SeqStatus.NEW] * 5
    c = t.counters("d")
    assert (c.new, c.duplicate, c.late, c.gap_events, c.highest_seq) == (5, 0, 0, 0, 4)


def test_duplicates():
    t = SequenceTracker()
    assert statuses(t, "d", [0, 1, 1, 0, 2, 2]) == [
        SeqStatus.NEW,
        SeqStatus.NEW,
        SeqStatus.DUPLICATE,
        SeqStatus.DUPLICATE,
        SeqStatus.NEW,
        SeqStatus.DUPLICATE,
    ]
    assert t.counters("d").duplicate == 3
    assert not SeqStatus.DUPLICATE.should_store and SeqStatus.LATE.should_store


def test_gap_then_late_fill_then_duplicate():
    t = SequenceTracker()
    t.observe("d", 10)
    obs = t.observe("d", 15)
    assert obs.status is SeqStatus.GAP and obs.missing == (11, 15) and obs.expected == 11
    assert t.missing("d") == [(11, 15)]
    assert t.observe("d", 13).status is SeqStatus.LATE  # splits the gap
    assert t.missing("d") == [(11, 13), (14, 15)]
    assert statuses(t, "d", [11, 12, 14]) == [SeqStatus.LATE] * 3
    assert t.missing("d") == []
    assert statuses(t, "d", [13, 14, 15]) == [SeqStatus.DUPLICATE] * 3
    c = t.counters("d")
    assert (c.gap_events, c.missing_total, c.missing_now, c.late) == (1, 4, 0, 4)


def test_out_of_order_replay_after_reconnect():
    # Device replays 3..6 after 7 and 8 arrived live.
    t = SequenceTracker()
    got = statuses(t, "d", [0, 1, 2, 7, 8, 3, 4, 5, 6, 5, 9])
    assert got == [SeqStatus.NEW] * 3 + [SeqStatus.GAP, SeqStatus.NEW] + [SeqStatus.LATE] * 4 + [
        SeqStatus.DUPLICATE,
        SeqStatus.NEW,
    ]
    assert t.counters("d").missing_now == 0


def test_devices_are_independent():
    t = SequenceTracker()
    t.observe("a", 0)
    assert t.observe("b", 100).status is SeqStatus.NEW
    assert t.observe("a", 1).status is SeqStatus.NEW
    assert t.devices == ["a", "b"]
    assert t.counters("zzz").highest_seq is None


def test_unknown_history_is_late_not_duplicate():
    # After a restart the tracker starts at 50; older frames might be unseen: store them.
    t = SequenceTracker()
    t.observe("d", 50)
    assert t.observe("d", 10).status is SeqStatus.LATE
    # Forgotten gaps (over max_open_gaps) also degrade to LATE.
    t = SequenceTracker(max_open_gaps=2)
    for s in [0, 2, 4, 6, 8]:
        t.observe("d", s)
    assert t.missing("d") == [(5, 6), (7, 8)]
    assert t.observe("d", 1).status is SeqStatus.LATE
    assert t.observe("d", 2).status is SeqStatus.LATE  # unknown region: storage dedups


def test_validation():
    with pytest.raises(ValueError, match="seq"):
        SequenceTracker().observe("d", -1)
    with pytest.raises(ValueError, match="max_open_gaps"):
        SequenceTracker(max_open_gaps=0)
