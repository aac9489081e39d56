from __future__ import annotations

import zlib

import pytest

from heartline.ingestion.topics import (
    ALL_FRAMES_SUBSCRIPTION,
    frames_topic,
    parse_frames_topic,
    partition_for,
    partition_subscription,
    shared_subscription,
)


def test_partition_is_stable_crc32():
    for dev in ["sim-0001", "sim-0002", "patch.A7", "x"]:
        assert partition_for(dev, partitions=16) == zlib.crc32(dev.encode()) % 16
    assert partition_for("anything", partitions=1) == 0


def test_partitions_spread_devices():
    counts = [0] * 8
    for i in range(800):
        counts[partition_for(f"sim-{i:04d}", partitions=8)] += 1
    assert min(counts) > 60  # roughly uniform (100 expected per partition)


def test_topic_roundtrip_and_subscriptions():
    topic = frames_topic("sim-0042", partitions=8)
    parsed = parse_frames_topic(topic)
    assert parsed.device_id == "sim-0042" and parsed.partition == partition_for(
        "sim-0042", partitions=8
    )
    assert topic.startswith(f"heartline/v1/{parsed.partition}/")
    assert partition_subscription(parsed.partition) == f"heartline/v1/{parsed.partition}/+/frames"
    assert shared_subscription(2, group="proc") == "$share/proc/heartline/v1/2/+/frames"
    assert ALL_FRAMES_SUBSCRIPTION == "heartline/v1/+/+/frames"


@pytest.mark.parametrize(
    "topic",
    [
        "heartline/v1/x/dev/frames",
        "heartline/v2/1/dev/frames",
        "heartline/v1/1/dev/beats",
        "heartline/v1/1/a+b/frames",
        "a/b",
    ],
)
def test_parse_rejects(topic):
    with pytest.raises(ValueError):
        parse_frames_topic(topic)


def test_validation():
    with pytest.raises(ValueError, match="partitions"):
        partition_for("d", partitions=0)
    with pytest.raises(ValueError, match="device_id"):
        frames_topic("bad/id", partitions=4)
    with pytest.raises(ValueError, match="group"):
        shared_subscription(0, group="a/b")
