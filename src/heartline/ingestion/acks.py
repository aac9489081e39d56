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

Acknowledgements are bounded: a payload above :data:`MAX_ACK_BYTES` or with more than
:data:`MAX_ACK_RANGES` ranges is refused, and a receiver applies the ranges as ranges
(:meth:`StorageAck.covers`), never as a list of every sequence number in them: anyone who can
publish on a device's ack topic could otherwise send ``{"ranges": [[0, 999999999]]}`` (49 bytes)
and make the device allocate gigabytes.

>>> acks_topic("sim-0001")
'heartline/v1/acks/sim-0001'
>>> seq_ranges([5, 1, 2, 3, 7, 6])
[(1, 4), (5, 8)]
>>> a = StorageAck.from_json(StorageAck("d1", ((1, 4),)).to_json())
>>> a.seqs()
[1, 2, 3]
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from heartline.ingestion.topics import TOPIC_PREFIX, _check_device

__all__ = [
    "ACKS_SUBSCRIPTION",
    "MAX_ACK_BYTES",
    "MAX_ACK_RANGES",
    "MAX_EXPANDED_SEQS",
    "StorageAck",
    "acks_topic",
    "seq_ranges",
]

#: Every device's acknowledgements (for monitoring).
ACKS_SUBSCRIPTION = f"{TOPIC_PREFIX}/acks/+"
#: Ranges in one acknowledgement, at most.
MAX_ACK_RANGES = 10_000
#: Bytes of one acknowledgement payload, at most (10,000 ranges of 12-digit numbers fit).
MAX_ACK_BYTES = 320 * 1024
#: :meth:`StorageAck.seqs` refuses to build a list longer than this.
MAX_EXPANDED_SEQS = 100_000


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
    #: the ranges sorted and merged (starts, stops), for :meth:`covers`
    _merged: tuple[list[int], list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts: list[int] = []
        stops: list[int] = []
        for a, b in sorted(self.ranges):
            if stops and a <= stops[-1]:
                stops[-1] = max(stops[-1], b)
            else:
                starts.append(a)
                stops.append(b)
        object.__setattr__(self, "_merged", (starts, stops))

    @property
    def n_seqs(self) -> int:
        """How many sequence numbers the ranges cover (computed, nothing expanded)."""
        starts, stops = self._merged
        return sum(b - a for a, b in zip(starts, stops, strict=True))

    def covers(self, seq: int) -> bool:
        """Whether ``seq`` lies in one of the ranges (a binary search)."""
        starts, stops = self._merged
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and seq < stops[i]

    def seqs(self) -> list[int]:
        """Every acknowledged sequence number (refused above :data:`MAX_EXPANDED_SEQS`).

        Raises
        ------
        ValueError
            The ranges cover more than :data:`MAX_EXPANDED_SEQS` numbers: apply them as
            ranges (:meth:`covers`, ``StoreForwardQueue.ack_ranges``) instead.
        """
        if self.n_seqs > MAX_EXPANDED_SEQS:
            raise ValueError(
                f"ranges cover {self.n_seqs} sequence numbers; will not expand more than"
                f" {MAX_EXPANDED_SEQS} into a list (use covers() or the ranges themselves)"
            )
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
        if len(raw) > MAX_ACK_BYTES:
            raise ValueError(
                f"raw: {len(raw)} bytes, an acknowledgement has at most {MAX_ACK_BYTES}"
            )
        try:
            data = json.loads(bytes(raw).decode("utf-8"))
            device_id = str(data["device_id"])
            raw_ranges = data["ranges"]
            if not isinstance(raw_ranges, list) or len(raw_ranges) > MAX_ACK_RANGES:
                raise ValueError(f"ranges must be a list of at most {MAX_ACK_RANGES} [start, stop]")
            ranges = tuple((int(a), int(b)) for a, b in raw_ranges)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"raw is not a storage acknowledgement: {exc}") from None
        _check_device(device_id)
        if any(not 0 <= a < b for a, b in ranges):
            raise ValueError("raw: ranges must be [start, stop) with 0 <= start < stop")
        return cls(device_id, ranges)
