from __future__ import annotations

import threading

import pytest

from heartline.devices.store_forward import StoreForwardQueue


def test_replays_in_seq_order_and_acks(tmp_path, frame_maker):
    with StoreForwardQueue(tmp_path / "q.sqlite") as q:
        for seq in [3, 0, 2, 1]:
            assert q.enqueue(frame_maker("d", seq))
        assert [f.seq for f in q.peek_batch(10)] == [0, 1, 2, 3]
        assert [f.seq for f in q.peek_batch(2)] == [0, 1]
        assert [f.seq for f in q.peek_batch(10, after_seq=1)] == [2, 3]
        assert q.peek_batch(1)[0].payload == frame_maker("d", 0).to_json()
        assert q.ack(1) and not q.ack(1) and not q.ack(99)
        assert [f.seq for f in q.peek_batch(10)] == [0, 2, 3]
        assert not q.enqueue(frame_maker("d", 2))  # already queued
        c = q.counters()
        assert (c.queued, c.enqueued_total, c.acked_total, c.duplicate_enqueues, c.last_seq) == (
            3,
            4,
            1,
            1,
            3,
        )


def test_survives_reopen(tmp_path, frame_maker):
    path = tmp_path / "edge" / "q.sqlite"
    q = StoreForwardQueue(path)
    for seq in range(5):
        q.enqueue(frame_maker("d", seq))
    q.ack(0)
    q.close()
    q.close()  # idempotent
    with StoreForwardQueue(path) as q2:
        assert [f.seq for f in q2.peek_batch(10)] == [1, 2, 3, 4]
        assert q2.last_seq == 4 and len(q2) == 4
        c = q2.counters()
        assert (c.enqueued_total, c.acked_total) == (5, 1)
        q2.ack(4)
        assert q2.last_seq == 4  # last_seq never goes back (a rebooted device continues after it)


def test_drop_oldest_when_full(tmp_path, frame_maker):
    with StoreForwardQueue(tmp_path / "q.sqlite", max_frames=3) as q:
        for seq in range(5):
            assert q.enqueue(frame_maker("d", seq))
        assert [f.seq for f in q.peek_batch(10)] == [2, 3, 4]
        assert q.counters().dropped_full == 2


def test_refuse_when_full(tmp_path, frame_maker):
    with StoreForwardQueue(tmp_path / "q.sqlite", max_frames=3, on_full="refuse") as q:
        results = [q.enqueue(frame_maker("d", seq)) for seq in range(5)]
        assert results == [True, True, True, False, False]
        assert [f.seq for f in q.peek_batch(10)] == [0, 1, 2]
        assert q.counters().refused_full == 2
        q.ack(0)
        assert q.enqueue(frame_maker("d", 5))


def test_byte_bound(tmp_path, frame_maker):
    size = len(frame_maker("d", 0).to_json())
    with StoreForwardQueue(tmp_path / "q.sqlite", max_bytes=int(size * 2.5)) as q:
        for seq in range(4):
            q.enqueue(frame_maker("d", seq))
        c = q.counters()
        assert c.queued == 2 and c.queued_bytes <= size * 2.5 and c.dropped_full == 2
        with pytest.raises(ValueError, match="max_bytes"):
            q.enqueue_payload(9, b"x" * (size * 3))


def test_concurrent_enqueue_and_ack(tmp_path, frame_maker):
    frames = [frame_maker("d", s) for s in range(200)]
    with StoreForwardQueue(tmp_path / "q.sqlite", synchronous="NORMAL") as q:

        def producer():
            for f in frames:
                q.enqueue(f)

        t = threading.Thread(target=producer)
        t.start()
        acked = 0
        while acked < 200:
            for item in q.peek_batch(50):
                acked += q.ack(item.seq)
        t.join()
        assert len(q) == 0 and q.counters().acked_total == 200


def test_validation(tmp_path):
    with pytest.raises(ValueError, match="on_full"):
        StoreForwardQueue(tmp_path / "q.sqlite", on_full="drop_newest")
    with pytest.raises(ValueError, match="max_frames"):
        StoreForwardQueue(tmp_path / "q.sqlite", max_frames=0)
    with StoreForwardQueue(tmp_path / "q.sqlite") as q:
        with pytest.raises(ValueError, match="limit"):
            q.peek_batch(0)
        with pytest.raises(ValueError, match="seq"):
            q.enqueue_payload(-1, b"{}")
