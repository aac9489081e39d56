"""MQTT topic layout of the live pipeline.

Frames: ``heartline/v1/<partition>/<device_id>/frames`` where ``partition = crc32(device_id) mod
N`` (:func:`zlib.crc32`, stable across processes and Python versions, unlike ``hash``). Worker
``k`` of ``N`` stream processors subscribes to ``heartline/v1/k/+/frames``; several replicas of
one worker can share it with ``$share/<group>/heartline/v1/k/+/frames`` (MQTT 5 shared
subscriptions, supported by Mosquitto 2). All frames of one device land on one partition, so one
worker sees each device's sequence in order.

>>> partition_for("sim-0001", partitions=8)
5
>>> frames_topic("sim-0001", partitions=8)
'heartline/v1/5/sim-0001/frames'
>>> parse_frames_topic("heartline/v1/5/sim-0001/frames")
FramesTopic(partition=5, device_id='sim-0001')
>>> partition_subscription(3)
'heartline/v1/3/+/frames'
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from heartline.ingestion.payloads import DEVICE_ID_PATTERN

__all__ = [
    "ALL_FRAMES_SUBSCRIPTION",
    "TOPIC_PREFIX",
    "FramesTopic",
    "frames_topic",
    "parse_frames_topic",
    "partition_for",
    "partition_subscription",
    "shared_subscription",
]

#: Root of every Heartline topic (the version changes with an incompatible payload schema).
TOPIC_PREFIX = "heartline/v1"
#: Subscription matching the frames of every partition.
ALL_FRAMES_SUBSCRIPTION = f"{TOPIC_PREFIX}/+/+/frames"

_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)


@dataclass(frozen=True)
class FramesTopic:
    """A parsed frames topic."""

    partition: int
    device_id: str


def _check_partitions(partitions: int) -> None:
    if not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")


def check_device_id(device_id: str) -> None:
    if not _DEVICE_RE.match(device_id or ""):
        raise ValueError(f"device_id {device_id!r} does not match {DEVICE_ID_PATTERN}")


def partition_for(device_id: str, *, partitions: int) -> int:
    """Stable partition of a device: ``zlib.crc32(device_id) % partitions``."""
    _check_partitions(partitions)
    check_device_id(device_id)
    return zlib.crc32(device_id.encode()) % partitions


def frames_topic(device_id: str, *, partitions: int) -> str:
    """Topic a device publishes its frames to."""
    return f"{TOPIC_PREFIX}/{partition_for(device_id, partitions=partitions)}/{device_id}/frames"


def partition_subscription(partition: int) -> str:
    """Subscription of the worker that owns ``partition``."""
    if not isinstance(partition, int) or partition < 0:
        raise ValueError(f"partition must be an int >= 0, got {partition!r}")
    return f"{TOPIC_PREFIX}/{partition}/+/frames"


def shared_subscription(partition: int, *, group: str = "processors") -> str:
    """MQTT 5 shared subscription: replicas in ``group`` split the partition's messages."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", group or ""):
        raise ValueError(f"group must be 1..64 of [A-Za-z0-9_.-], got {group!r}")
    return f"$share/{group}/{partition_subscription(partition)}"


def parse_frames_topic(topic: str) -> FramesTopic:
    """Split a frames topic into partition and device id.

    Raises
    ------
    ValueError
        ``topic`` is not ``heartline/v1/<int>/<device_id>/frames``.
    """
    parts = topic.split("/")
    if (
        len(parts) != 5
        or "/".join(parts[:2]) != TOPIC_PREFIX
        or parts[4] != "frames"
        or not parts[2].isdigit()
    ):
        raise ValueError(f"topic {topic!r} is not {TOPIC_PREFIX}/<partition>/<device_id>/frames")
    check_device_id(parts[3])
    return FramesTopic(partition=int(parts[2]), device_id=parts[3])
