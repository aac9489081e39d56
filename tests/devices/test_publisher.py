"""Publisher -> Mosquitto -> storing subscriber: zero loss, zero duplicates in storage."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from heartline.devices.publisher import FramePublisher
from heartline.devices.store_forward import StoreForwardQueue
from heartline.ingestion.broker import BrokerAddress, free_port
from heartline.storage.tables import FrameRecord

PARTITIONS = 8


def stored_seqs(sub, device_id: str) -> list[int]:
    with sub.factory() as s:
        return list(
            s.scalars(
                select(FrameRecord.seq)
                .where(FrameRecord.device_id == device_id)
                .order_by(FrameRecord.seq)
            )
        )


def row_count(sub) -> int:
    with sub.factory() as s:
        return int(s.scalar(select(func.count()).select_from(FrameRecord)))


def test_publish_to_system_broker(
    tmp_path, system_broker, subscriber_factory, frame_maker, device_name
):
    dev = device_name("sys")
    sub = subscriber_factory(system_broker, [dev])
    with (
        StoreForwardQueue(tmp_path / "q.sqlite") as q,
        FramePublisher(q, address=system_broker, device_id=dev, partitions=PARTITIONS) as pub,
    ):
        assert pub.wait_connected(5)
        for seq in range(40):
            assert pub.publish(frame_maker(dev, seq))
        assert pub.flush(10), f"not all acknowledged: {pub.counters()}"
        assert len(q) == 0 and pub.counters().acked == 40
    assert sub.wait_stored(40, 10)
    assert stored_seqs(sub, dev) == list(range(40))
    assert [s for d, s in sub.arrivals if d == dev] == list(range(40))  # in order


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path, child_broker, subscriber_factory, frame_maker, device_name
):
    devs = [device_name("rst"), device_name("rst")]
    sub = subscriber_factory(child_broker.address, devs)
    queues = [StoreForwardQueue(tmp_path / f"{d}.sqlite") for d in devs]
    pubs = [
        FramePublisher(q, address=child_broker.address, device_id=d, partitions=PARTITIONS).start()
        for q, d in zip(queues, devs, strict=True)
    ]
    try:
        assert all(p.wait_connected(5) for p in pubs)
        n = 150
        for seq in range(n):
            for p, d in zip(pubs, devs, strict=True):
                p.publish(frame_maker(d, seq))
            if seq == 60:
                child_broker.restart()  # graceful: persistence saved and reloaded
            time.sleep(0.004)
        assert all(p.flush(20) for p in pubs), [p.counters() for p in pubs]
        assert sub.wait_stored(n * len(devs), 20), (sub.stored, [p.counters() for p in pubs])
        time.sleep(0.3)  # let any redelivered duplicate arrive before counting
        for d in devs:
            assert stored_seqs(sub, d) == list(range(n)), f"{d}: lost or extra frames"
        assert row_count(sub) == n * len(devs)  # zero duplicates in storage
        assert all(p.counters().connects >= 2 for p in pubs)  # they really reconnected
        assert sub.connects >= 2
    finally:
        for p in pubs:
            p.stop()
        for q in queues:
            q.close()


def test_link_outage_replays_in_order(
    tmp_path, child_broker, subscriber_factory, frame_maker, device_name
):
    dev = device_name("link")
    sub = subscriber_factory(child_broker.address, [dev])
    with (
        StoreForwardQueue(tmp_path / "q.sqlite") as q,
        FramePublisher(
            q, address=child_broker.address, device_id=dev, partitions=PARTITIONS
        ) as pub,
    ):
        assert pub.wait_connected(5)
        for seq in range(10):
            pub.publish(frame_maker(dev, seq))
        assert pub.flush(5)
        pub.set_link(False)
        for seq in range(10, 40):
            pub.publish(frame_maker(dev, seq))
        time.sleep(0.3)
        assert len(q) == 30 and sub.stored == 10  # held on disk while the link is down
        pub.set_link(True)
        assert pub.flush(10), pub.counters()
    assert sub.wait_stored(40, 10)
    assert [s for _, s in sub.arrivals] == list(range(40))
    assert stored_seqs(sub, dev) == list(range(40))


def test_publisher_restart_replays_queue(
    tmp_path, child_broker, subscriber_factory, frame_maker, device_name
):
    dev = device_name("boot")
    sub = subscriber_factory(child_broker.address, [dev])
    path = tmp_path / "q.sqlite"
    # First "boot": no broker reachable, frames only reach the disk queue.
    dead = BrokerAddress("127.0.0.1", free_port())
    with (
        StoreForwardQueue(path) as q,
        FramePublisher(q, address=dead, device_id=dev, partitions=PARTITIONS) as pub,
    ):
        for seq in range(25):
            pub.publish(frame_maker(dev, seq))
        assert not pub.wait_connected(0.5)
    # Second boot: same queue file, broker reachable; continue numbering after last_seq.
    with (
        StoreForwardQueue(path) as q,
        FramePublisher(
            q, address=child_broker.address, device_id=dev, partitions=PARTITIONS
        ) as pub,
    ):
        assert len(q) == 25 and q.last_seq == 24
        for seq in range(q.last_seq + 1, 30):
            pub.publish(frame_maker(dev, seq))
        assert pub.flush(10), pub.counters()
    assert sub.wait_stored(30, 10)
    assert stored_seqs(sub, dev) == list(range(30))
    assert [s for _, s in sub.arrivals] == list(range(30))


def test_redelivered_duplicates_are_not_stored_twice(
    tmp_path, child_broker, subscriber_factory, frame_maker, device_name
):
    dev = device_name("dup")
    sub = subscriber_factory(child_broker.address, [dev])
    path = tmp_path / "q.sqlite"
    with (
        StoreForwardQueue(path) as q,
        FramePublisher(
            q, address=child_broker.address, device_id=dev, partitions=PARTITIONS
        ) as pub,
    ):
        for seq in range(10):
            pub.publish(frame_maker(dev, seq))
        assert pub.flush(5)
        # A device that lost its acks (crash before deleting) sends the same frames again.
        for seq in range(5):
            q.enqueue_payload(seq + 100, frame_maker(dev, seq).to_json())
        assert pub.flush(5)
    assert sub.wait_stored(10, 5)
    deadline = time.monotonic() + 5
    while sub.db_duplicates < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sub.db_duplicates == 5
    assert stored_seqs(sub, dev) == list(range(10))
