"""Storage acknowledgements are bounded (issue 18, finding 2).

A 49-byte acknowledgement ``{"ranges": [[0, 999999999]]}`` published to a device's ack topic
used to be expanded into a list of every sequence number in the range: ``heartline serve`` with
its simulated wearables grew to 22.7 GB and was killed. A device now applies acknowledgements as
ranges, touching only the frames it holds.
"""

from __future__ import annotations

import json
import tracemalloc
from types import SimpleNamespace

import pytest

from heartline.devices.publisher import FramePublisher
from heartline.devices.store_forward import StoreForwardQueue
from heartline.ingestion.acks import StorageAck, acks_topic
from heartline.ingestion.broker import BrokerAddress


def _publisher(tmp_path, frame_maker, n: int = 10) -> tuple[FramePublisher, StoreForwardQueue]:
    q = StoreForwardQueue(tmp_path / "q.sqlite")
    for seq in range(n):
        q.enqueue(frame_maker("dev-ack", seq))
    pub = FramePublisher(
        q,
        address=BrokerAddress("127.0.0.1", 1),  # never connected
        device_id="dev-ack",
        partitions=8,
        delete_on="storage",
    )
    return pub, q


def _deliver(pub: FramePublisher, payload: bytes) -> None:
    pub._on_message(None, None, SimpleNamespace(topic=acks_topic("dev-ack"), payload=payload))
    pub._drain_acks()


def test_a_huge_ack_range_costs_no_memory_and_deletes_nothing(tmp_path, frame_maker) -> None:
    """Finding 2 (memory), and what ``bench faults`` showed next: on a broker without ACL the
    forged ``[[0, 999999999]]`` also deleted frames that were sent but not yet stored (3 of
    1,640 honest frames lost on 2026-12-07). An acknowledgement reaching past the highest seq
    the device ever issued is ignored whole; the real one still deletes."""
    pub, q = _publisher(tmp_path, frame_maker)
    pub._awaiting.update({s: 0.0 for s in range(5)})  # sent, waiting for storage
    tracemalloc.start()
    try:
        # first a million (the old code's failure stays small and quick: ~40 MB), and only
        # when that was cheap the 999,999,999 of the finding (tens of GB in the old code)
        _deliver(pub, b'{"v":1,"device_id":"dev-ack","ranges":[[0,1000000]]}')
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
        _deliver(pub, b'{"v":1,"device_id":"dev-ack","ranges":[[0,999999999]]}')
        _deliver(pub, b'{"v":1,"device_id":"dev-ack","ranges":[[0,5],[11,12]]}')
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert len(q) == 10 and sorted(pub._awaiting) == list(range(5))  # nothing lost
    assert pub.counters().acks_refused == 3 and pub.counters().storage_acked == 0
    _deliver(pub, b'{"v":1,"device_id":"dev-ack","ranges":[[0,10]]}')  # the processor's
    assert len(q) == 0 and not pub._awaiting
    assert pub.counters().storage_acked == 10
    q.close()


def test_acks_delete_only_the_frames_in_their_ranges(tmp_path, frame_maker) -> None:
    pub, q = _publisher(tmp_path, frame_maker)
    _deliver(pub, StorageAck("dev-ack", ((2, 4), (7, 8))).to_json())
    assert [f.seq for f in q.peek_batch(100)] == [0, 1, 4, 5, 6, 8, 9]
    _deliver(pub, StorageAck("other-dev", ((0, 10),)).to_json())  # not ours: ignored
    assert len(q) == 7
    q.close()


def test_thousands_of_forged_ranges_outside_the_queue_cost_no_query_each(
    tmp_path, frame_maker
) -> None:
    """``bench faults`` (huge_acks): 10,000 ranges far beyond the device's sequence numbers, on
    every honest device's ack topic, cost each device one query per range (the honest devices'
    latency rose to seconds during that attack). Only ranges overlapping the queue are read."""
    from heartline.ingestion.acks import MAX_ACK_RANGES

    pub, q = _publisher(tmp_path, frame_maker)
    statements: list[str] = []
    q._db.set_trace_callback(statements.append)
    forged = [(10**9 + 2 * k, 10**9 + 2 * k + 1) for k in range(MAX_ACK_RANGES)]
    assert q.ack_ranges(forged) == []  # the queue itself, below the publisher's own check
    assert len(q) == 10 and len(statements) < 10, statements[:20]
    statements.clear()
    assert q.ack_ranges([(3, 5), *forged[:100]]) == [3, 4]
    assert [f.seq for f in q.peek_batch(100)] == [0, 1, 2, 5, 6, 7, 8, 9]
    assert len(statements) < 20
    statements.clear()
    _deliver(pub, StorageAck("dev-ack", tuple(forged)).to_json())  # ignored whole: forged
    assert len(q) == 8 and pub.counters().acks_refused == 1
    q.close()


def test_storage_ack_refuses_absurd_payloads() -> None:
    with pytest.raises(ValueError, match="ranges"):
        StorageAck.from_json(json.dumps({"device_id": "d", "ranges": [[0, 1]] * 20_000}).encode())
    with pytest.raises(ValueError, match="bytes"):
        StorageAck.from_json(b" " * (1024 * 1024))
    huge = StorageAck.from_json(b'{"device_id":"d","ranges":[[0,999999999]]}')
    assert huge.n_seqs == 999_999_999 and huge.covers(5) and not huge.covers(999_999_999)
    with pytest.raises(ValueError, match="expand"):
        huge.seqs()  # never expanded into a list
