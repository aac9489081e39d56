"""Per-device sequence tracking: classify every arriving frame before it is stored.

Devices number their frames ``seq = 0, 1, 2, ...`` and replay unacknowledged ones after a
reconnect, so the server sees duplicates, late frames (replayed after newer ones) and gaps.
:class:`SequenceTracker` tells them apart in O(1) memory per open gap:

``NEW``        the next expected ``seq`` (or the first frame seen from the device);
``GAP``        newer than expected: stored, and ``missing`` names the skipped range;
``LATE``       older than the newest but never seen (it fills a gap): stored, never dropped;
``DUPLICATE``  already seen: skip it (storage is idempotent anyway).

The tracker is advisory: the database's UNIQUE(device_id, seq) is the authority. When the tracker
has forgotten something (a restart, more than ``max_open_gaps`` gaps) it answers ``LATE`` rather
than ``DUPLICATE``, so that uncertainty costs one redundant INSERT, never a lost frame.

>>> t = SequenceTracker()
>>> [t.observe("d", s).status.value for s in (0, 1, 3, 2, 2, 4)]
['new', 'new', 'gap', 'late', 'duplicate', 'new']
>>> t.counters("d").missing_now
0
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

__all__ = ["DeviceSeqCounters", "SeqObservation", "SeqStatus", "SequenceTracker"]


class SeqStatus(enum.Enum):
    """Classification of one frame's ``seq``."""

    NEW = "new"
    GAP = "gap"
    LATE = "late"
    DUPLICATE = "duplicate"

    @property
    def should_store(self) -> bool:
        """``True`` for every status but ``DUPLICATE``."""
        return self is not SeqStatus.DUPLICATE


@dataclass(frozen=True)
class SeqObservation:
    """Result of :meth:`SequenceTracker.observe`.

    ``missing`` is the half-open range ``(start, stop)`` of sequence numbers skipped by a ``GAP``.
    """

    device_id: str
    seq: int
    status: SeqStatus
    expected: int | None
    missing: tuple[int, int] | None = None


@dataclass(frozen=True)
class DeviceSeqCounters:
    """Counters of one device (since the tracker started)."""

    new: int
    gap_events: int
    late: int
    duplicate: int
    missing_total: int
    missing_now: int
    highest_seq: int | None


@dataclass
class _DeviceState:
    highest: int
    # Open gaps as half-open ranges [a, b), oldest first.
    gaps: list[list[int]] = field(default_factory=list)
    floor: int = 0  # below this, nothing is known any more (forgotten gaps)
    new: int = 0
    gap_events: int = 0
    late: int = 0
    duplicate: int = 0
    missing_total: int = 0


class SequenceTracker:
    """Classify ``(device_id, seq)`` arrivals as new, gap, late or duplicate.

    Parameters
    ----------
    max_open_gaps : int
        Open gaps remembered per device; the oldest is forgotten beyond that (its late frames are
        then reported ``LATE``, never ``DUPLICATE``).

    Thread-safe.
    """

    def __init__(self, *, max_open_gaps: int = 1024) -> None:
        if max_open_gaps < 1:
            raise ValueError(f"max_open_gaps must be >= 1, got {max_open_gaps}")
        self.max_open_gaps = max_open_gaps
        self._devices: dict[str, _DeviceState] = {}
        self._lock = threading.Lock()

    def observe(self, device_id: str, seq: int) -> SeqObservation:
        """Classify one arrival and update the state."""
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        with self._lock:
            st = self._devices.get(device_id)
            if st is None:
                # First frame from this device since the tracker started: baseline.
                self._devices[device_id] = _DeviceState(highest=seq, floor=seq, new=1)
                return SeqObservation(device_id, seq, SeqStatus.NEW, None)
            expected = st.highest + 1
            if seq == expected:
                st.highest = seq
                st.new += 1
                return SeqObservation(device_id, seq, SeqStatus.NEW, expected)
            if seq > expected:
                st.gaps.append([expected, seq])
                st.gap_events += 1
                st.missing_total += seq - expected
                st.highest = seq
                while len(st.gaps) > self.max_open_gaps:
                    st.floor = st.gaps.pop(0)[1]
                return SeqObservation(device_id, seq, SeqStatus.GAP, expected, (expected, seq))
            # seq < expected
            for i, gap in enumerate(st.gaps):
                a, b = gap
                if a <= seq < b:
                    if seq == a and seq == b - 1:
                        st.gaps.pop(i)
                    elif seq == a:
                        gap[0] = a + 1
                    elif seq == b - 1:
                        gap[1] = b - 1
                    else:
                        st.gaps[i : i + 1] = [[a, seq], [seq + 1, b]]
                    st.late += 1
                    return SeqObservation(device_id, seq, SeqStatus.LATE, expected)
            if seq < st.floor:
                # Before the baseline or in a forgotten gap: unknown, so let storage decide.
                st.late += 1
                return SeqObservation(device_id, seq, SeqStatus.LATE, expected)
            st.duplicate += 1
            return SeqObservation(device_id, seq, SeqStatus.DUPLICATE, expected)

    def counters(self, device_id: str) -> DeviceSeqCounters:
        """Counters of one device (all zero when never seen)."""
        with self._lock:
            st = self._devices.get(device_id)
            if st is None:
                return DeviceSeqCounters(0, 0, 0, 0, 0, 0, None)
            return DeviceSeqCounters(
                new=st.new,
                gap_events=st.gap_events,
                late=st.late,
                duplicate=st.duplicate,
                missing_total=st.missing_total,
                missing_now=sum(b - a for a, b in st.gaps),
                highest_seq=st.highest,
            )

    def missing(self, device_id: str) -> list[tuple[int, int]]:
        """Open gaps of a device as half-open ``(start, stop)`` ranges, oldest first."""
        with self._lock:
            st = self._devices.get(device_id)
            return [(a, b) for a, b in st.gaps] if st else []

    @property
    def devices(self) -> list[str]:
        """Devices seen so far."""
        with self._lock:
            return sorted(self._devices)
