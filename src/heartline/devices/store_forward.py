"""The edge device's on-disk frame queue (SQLite), so that no frame is lost to a dead link.

Every frame is written here *before* it is published and removed only when it is acknowledged
(:mod:`heartline.devices.publisher`: by the broker's PUBACK, or, with storage acknowledgements,
once the stream processor has committed it to the database). The queue survives process restarts and
power loss (SQLite WAL with ``synchronous=FULL`` by default) and replays in ``seq`` order.

Policy when full (``max_frames`` or ``max_bytes`` reached)
--------------------------------------------------------
``on_full="drop_oldest"`` (default) evicts the oldest queued frames, counts them in
``dropped_full`` and logs a warning. Rationale for monitoring: the queue exists to bridge link
outages; if an outage outlasts its capacity (24 h of 1 s frames by default), the clinically
actionable data is the *current* rhythm, and a device that refused new frames would go blind to
a deterioration happening now in order to keep a backlog nobody can act on any more. The loss is
never silent: the frames' sequence numbers become a permanent gap that the server's
:class:`~heartline.ingestion.sequencing.SequenceTracker` reports. ``on_full="refuse"`` keeps the
oldest data and refuses new frames (``enqueue`` returns ``False``, ``refused_full`` counts them),
for recorder-style deployments where completeness of the record matters more than liveness.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from heartline.ingestion.payloads import Frame

__all__ = ["ON_FULL_POLICIES", "QueueCounters", "QueuedFrame", "StoreForwardQueue"]

log = logging.getLogger(__name__)

#: Valid ``on_full`` policies.
ON_FULL_POLICIES: tuple[str, ...] = ("drop_oldest", "refuse")
_COUNTERS = ("enqueued_total", "acked_total", "dropped_full", "refused_full", "duplicate_enqueues")


@dataclass(frozen=True)
class QueuedFrame:
    """One queued frame: its ``seq`` and the exact wire payload."""

    seq: int
    payload: bytes
    enqueued_at_s: float


@dataclass(frozen=True)
class QueueCounters:
    """Queue state and lifetime counters (persisted with the queue)."""

    queued: int
    queued_bytes: int
    enqueued_total: int
    acked_total: int
    dropped_full: int
    refused_full: int
    duplicate_enqueues: int
    last_seq: int | None


class StoreForwardQueue:
    """A bounded, persistent FIFO of frames keyed by ``seq``.

    Parameters
    ----------
    path : path-like
        SQLite file (created with its folder).
    max_frames : int
        Capacity in frames (default 86,400: 24 h of 1 s frames).
    max_bytes : int
        Capacity in payload bytes (default 512 MiB).
    on_full : {"drop_oldest", "refuse"}
        What to do when full (see the module docstring).
    synchronous : {"FULL", "NORMAL"}
        SQLite durability: ``FULL`` survives power loss, ``NORMAL`` only process crashes.

    Thread-safe (the publisher acks from its worker thread).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_frames: int = 86_400,
        max_bytes: int = 512 * 1024 * 1024,
        on_full: str = "drop_oldest",
        synchronous: str = "FULL",
    ) -> None:
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, got {on_full!r}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if synchronous not in {"FULL", "NORMAL"}:
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path)
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.on_full = on_full
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
                "n_bytes INTEGER NOT NULL, enqueued_at REAL NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
            for key in _COUNTERS:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (key,))
            self._db.execute("COMMIT")

    # -------------------------------------------------------------------- writes
    def enqueue(self, frame: Frame) -> bool:
        """Queue a frame durably; ``False`` if refused (full, ``refuse`` policy) or already queued."""
        return self.enqueue_payload(frame.seq, frame.to_json())

    def enqueue_payload(self, seq: int, payload: bytes) -> bool:
        """Queue an already-serialised payload under ``seq`` (see :meth:`enqueue`)."""
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        n = len(payload)
        if n > self.max_bytes:
            raise ValueError(f"payload of {n} bytes exceeds max_bytes={self.max_bytes}")
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM queue WHERE seq = ?", (seq,)).fetchone():
                    self._bump("duplicate_enqueues")
                    db.execute("COMMIT")
                    return False
                count, size = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(n_bytes), 0) FROM queue"
                ).fetchone()
                if count + 1 > self.max_frames or size + n > self.max_bytes:
                    if self.on_full == "refuse":
                        self._bump("refused_full")
                        db.execute("COMMIT")
                        log.warning(
                            "store-and-forward queue %s full: refused frame %d", self.path, seq
                        )
                        return False
                    dropped = 0
                    for old_seq, old_n in db.execute(
                        "SELECT seq, n_bytes FROM queue ORDER BY seq"
                    ).fetchall():
                        if count + 1 <= self.max_frames and size + n <= self.max_bytes:
                            break
                        db.execute("DELETE FROM queue WHERE seq = ?", (old_seq,))
                        count, size, dropped = count - 1, size - old_n, dropped + 1
                    self._bump("dropped_full", dropped)
                    log.warning(
                        "store-and-forward queue %s full: dropped %d oldest frame(s)",
                        self.path,
                        dropped,
                    )
                db.execute(
                    "INSERT INTO queue VALUES (?, ?, ?, ?)",
                    (seq, sqlite3.Binary(payload), n, time.time()),
                )
                self._bump("enqueued_total")
                db.execute(
                    "INSERT INTO meta VALUES ('last_seq', ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                    (seq,),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def ack(self, seq: int) -> bool:
        """Remove a frame the broker acknowledged; ``False`` when it was not queued."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            removed = db.execute("DELETE FROM queue WHERE seq = ?", (seq,)).rowcount
            if removed:
                self._bump("acked_total")
            db.execute("COMMIT")
        return bool(removed)

    def ack_many(self, seqs: Iterable[int]) -> int:
        """Remove several frames at once (one transaction); returns how many were queued."""
        rows = [(int(s),) for s in seqs]
        if not rows:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM queue WHERE seq = ?", rows)
                removed = db.total_changes - before
                self._bump("acked_total", removed)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(removed)

    def ack_ranges(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Remove the queued frames whose ``seq`` lies in half-open ``ranges`` (one transaction).

        Returns the sequence numbers removed: never more than the queue held, whatever the
        ranges span (a storage acknowledgement is applied as ranges, never expanded). Only the
        ranges that overlap the queue's ``seq`` span are looked at, so thousands of ranges
        outside it (a forged acknowledgement) cost no query each.
        """
        rows = [(int(a), int(b)) for a, b in ranges]
        if not rows:
            return []
        removed: list[int] = []
        with self._lock:
            db = self._db
            lo, hi = db.execute("SELECT MIN(seq), MAX(seq) FROM queue").fetchone()
            if lo is None:
                return []
            rows = [(a, b) for a, b in rows if a <= hi and b > lo]
            if not rows:
                return []
            db.execute("BEGIN IMMEDIATE")
            try:
                for a, b in rows:
                    removed.extend(
                        int(s)
                        for (s,) in db.execute(
                            "SELECT seq FROM queue WHERE seq >= ? AND seq < ?", (a, b)
                        )
                    )
                db.executemany("DELETE FROM queue WHERE seq >= ? AND seq < ?", rows)
                self._bump("acked_total", len(removed))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return removed

    def _bump(self, key: str, by: int = 1) -> None:
        if by:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (by, key))

    # -------------------------------------------------------------------- reads
    def peek_batch(self, limit: int = 100, *, after_seq: int | None = None) -> list[QueuedFrame]:
        """The oldest queued frames (ascending ``seq``), optionally only those after ``after_seq``."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload, enqueued_at FROM queue WHERE seq > ? ORDER BY seq LIMIT ?",
                (-1 if after_seq is None else after_seq, limit),
            ).fetchall()
        return [QueuedFrame(int(s), bytes(p), float(t)) for s, p, t in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    @property
    def last_seq(self) -> int | None:
        """Highest ``seq`` ever enqueued (persisted), so that a rebooted device continues after it."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        return None if row is None else int(row[0])

    def counters(self) -> QueueCounters:
        """Current size and lifetime counters."""
        with self._lock:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(n_bytes), 0) FROM queue"
            ).fetchone()
        return QueueCounters(
            queued=int(count),
            queued_bytes=int(size),
            last_seq=int(meta["last_seq"]) if "last_seq" in meta else None,
            **{k: int(meta[k]) for k in _COUNTERS},
        )

    # -------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> StoreForwardQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
