"""Storage acknowledgements: the processor tells a device which of its frames are committed.

MQTT's PUBACK only says the broker *received* a frame; Mosquitto acknowledges before it persists,
so a hard broker crash can lose frames a device already deleted. With storage acknowledgements a
device deletes a queued frame only once the stream processor has committed it to the database:

* topic ``heartline/v1/acks/<device_id>`` (QoS 1, not retained), published by the processor
  right after each database commit that stored (or found already stored) frames of the device;
* payload ``{"v": 1, "device_id": "...", "ranges": [[start, stop], ...]}``: half-open ranges of
  sequence numbers now durably stored.

Duplicates caused by replaying unacknowledged frames are harmless (storage is idempotent on
``(device_id, seq)``).

>>> acks_topic("sim-0001")
'heartline/v1/acks/sim-0001'
>>> seq_ranges([5, 1, 2, 3, 7, 6])
[(1, 4), (5, 8)]
>>> a = StorageAck.from_json(StorageAck("d1", ((1, 4),)).to_json())
>>> a.seqs()
[1, 2, 3]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from heartline.ingestion.topics import TOPIC_PREFIX, _check_device

__all__ = ["ACKS_SUBSCRIPTION", "StorageAck", "acks_topic", "seq_ranges"]

#: Every device's acknowledgements (for monitoring).
ACKS_SUBSCRIPTION = f"{TOPIC_PREFIX}/acks/+"
_MAX_RANGES = 10_000


def acks_topic(device_id: str) -> str:
    """Topic on which ``device_id`` receives its storage acknowledgements."""
    _check_device(device_id)
    return f"{TOPIC_PREFIX}/acks/{device_id}"


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted sequence numbers compressed into half-open ``(start, stop)`` ranges."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(int(x) for x in seqs)):
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], s + 1)
        else:
            out.append((s, s + 1))
    return out


@dataclass(frozen=True)
class StorageAck:
    """Frames of ``device_id`` committed to storage, as half-open ``ranges``."""

    device_id: str
    ranges: tuple[tuple[int, int], ...]

    def seqs(self) -> list[int]:
        """Every acknowledged sequence number."""
        return [s for a, b in self.ranges for s in range(a, b)]

    def to_json(self) -> bytes:
        """Wire payload."""
        return json.dumps(
            {"v": 1, "device_id": self.device_id, "ranges": [list(r) for r in self.ranges]},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StorageAck:
        """Parse a payload.

        Raises
        ------
        ValueError
            Not a valid acknowledgement.
        """
        try:
            data = json.loads(bytes(raw).decode("utf-8"))
            device_id = str(data["device_id"])
            ranges = tuple((int(a), int(b)) for a, b in data["ranges"])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"raw is not a storage acknowledgement: {exc}") from None
        _check_device(device_id)
        if len(ranges) > _MAX_RANGES or any(not 0 <= a < b for a, b in ranges):
            raise ValueError("raw: ranges must be [start, stop) with 0 <= start < stop")
        return cls(device_id, ranges)
