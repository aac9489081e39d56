"""QoS 1 MQTT publisher backed by the store-and-forward queue.

Flow for every frame: :meth:`FramePublisher.publish` writes it to the
:class:`~heartline.devices.store_forward.StoreForwardQueue` first; a worker thread hands queued
frames to paho-mqtt in ``seq`` order (at most ``max_inflight`` unacknowledged at once) while
connected; a frame leaves the queue only when its PUBACK arrives. While disconnected nothing is
handed over and frames pile up on disk; after reconnecting, paho first re-sends the in-flight
ones (the oldest), then the worker continues from the queue, so replay stays in order. After a
process restart everything still queued is replayed; frames the broker had already received are
then duplicates that the server drops by ``(device_id, seq)``.

Storage acknowledgements (``delete_on="storage"``)
--------------------------------------------------
Mosquitto sends PUBACK before it persists a message, so a hard broker crash can lose the frames
it had just acknowledged. With ``delete_on="storage"`` the PUBACK only frees a flow-control slot;
a frame leaves the queue when the stream processor reports it committed to the database
(:mod:`heartline.ingestion.acks`, topic ``heartline/v1/acks/<device_id>``). After every
(re)connect, and when no storage acknowledgement has arrived for ``storage_ack_timeout_s``
(doubling up to 8x while nothing progresses), every frame still queued is published again, oldest
first; at most ``max_unconfirmed`` frames are out without a storage acknowledgement. Replays
are duplicates for the server, which stores each ``(device_id, seq)`` once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from heartline.devices.store_forward import StoreForwardQueue
from heartline.ingestion.acks import StorageAck, acks_topic
from heartline.ingestion.broker import BrokerAddress, configure_client
from heartline.ingestion.payloads import Frame
from heartline.ingestion.topics import frames_topic

__all__ = ["DELETE_ON", "FramePublisher", "PublisherCounters"]

#: When a queued frame is deleted: on the broker's PUBACK, or on the processor's storage ack.
DELETE_ON: tuple[str, ...] = ("puback", "storage")

log = logging.getLogger(__name__)

#: Storage acknowledgements received and not yet applied, at most (the oldest are dropped).
_MAX_ACKS_WAITING = 256


@dataclass(frozen=True)
class PublisherCounters:
    """Publisher statistics since start."""

    published: int
    acked: int
    connects: int
    disconnects: int
    queued: int
    in_flight: int
    connected: bool
    storage_acked: int = 0
    replays: int = 0
    acks_refused: int = 0


class FramePublisher:
    """Publish one device's frames with QoS 1 and store-and-forward.

    Parameters
    ----------
    queue : StoreForwardQueue
        The device's persistent queue (the publisher does not close it).
    address : BrokerAddress
        Broker to connect to, with the device's own credentials when the broker enforces
        per-device ACLs (username = ``device_id``); ``address.tls`` connects over TLS,
        verifying the broker against ``address.ca_certs``.
    device_id : str
        Device whose frames this publisher sends (fixes the topic).
    partitions : int
        Topic partitions (must match the processors').
    client_id : str, optional
        MQTT client id (default ``heartline-dev-<device_id>``).
    max_inflight : int
        Frames handed to the broker and not yet acknowledged, at most.
    keepalive_s : int
        MQTT keep-alive.
    reconnect_delay_s : tuple of float
        Minimum and maximum back-off between reconnect attempts.
    delete_on : {"puback", "storage"}
        Delete a queued frame on the broker's PUBACK, or only on the processor's storage
        acknowledgement (see the module docstring).
    storage_ack_timeout_s : float
        ``delete_on="storage"``: replay the queue when no storage ack arrived for this long.
    max_unconfirmed : int
        ``delete_on="storage"``: frames published and not yet storage-acknowledged, at most.
    """

    def __init__(
        self,
        queue: StoreForwardQueue,
        *,
        address: BrokerAddress,
        device_id: str,
        partitions: int,
        client_id: str | None = None,
        max_inflight: int = 20,
        keepalive_s: int = 30,
        reconnect_delay_s: tuple[float, float] = (0.2, 5.0),
        delete_on: str = "puback",
        storage_ack_timeout_s: float = 10.0,
        max_unconfirmed: int = 600,
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if delete_on not in DELETE_ON:
            raise ValueError(f"delete_on must be one of {DELETE_ON}, got {delete_on!r}")
        if storage_ack_timeout_s <= 0:
            raise ValueError(f"storage_ack_timeout_s must be > 0, got {storage_ack_timeout_s}")
        if max_unconfirmed < max_inflight:
            raise ValueError(
                f"max_unconfirmed must be >= max_inflight={max_inflight}, got {max_unconfirmed}"
            )
        self.delete_on = delete_on
        self.storage_ack_timeout_s = float(storage_ack_timeout_s)
        self.max_unconfirmed = int(max_unconfirmed)
        self.acks_topic = acks_topic(device_id)
        self.queue = queue
        self.address = address
        self.device_id = device_id
        self.topic = frames_topic(device_id, partitions=partitions)
        self.max_inflight = max_inflight
        self.keepalive_s = keepalive_s
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"heartline-dev-{device_id}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        lo, hi = reconnect_delay_s
        self._client.reconnect_delay_set(min_delay=max(1, round(lo)), max_delay=max(1, round(hi)))
        configure_client(self._client, address)  # credentials, TLS for mqtts:// addresses
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._wake = threading.Condition()
        self._acked_mids: collections.deque[int] = collections.deque()
        self._inflight: dict[int, int] = {}  # mid -> seq, worker thread only
        self._handed_max_seq: int | None = None
        self._connected = threading.Event()
        self._link_up = True
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._published = self._acked = self._connects = self._disconnects = 0
        # storage-ack mode (worker thread only, except the deques filled by callbacks)
        # bounded: a flood of acknowledgements drops the oldest (the device then replays)
        self._stored_in: collections.deque[StorageAck] = collections.deque(maxlen=_MAX_ACKS_WAITING)
        self._awaiting: dict[int, float] = {}  # seq -> monotonic time of its PUBACK
        self._stored_recent: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._rewind = False
        self._last_progress = time.monotonic()
        self._backoff = 1.0
        self._storage_acked = 0
        self._replays = 0
        self._acks_refused = 0  # implausible (forged) storage acknowledgements ignored

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("%s: broker refused the connection: %s", self.device_id, reason_code)
            return
        self._connects += 1
        if self.delete_on == "storage":
            client.subscribe(self.acks_topic, qos=1)
            self._rewind = True  # replay whatever is still queued, oldest first
        self._connected.set()
        self._notify()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._disconnects += 1
        self._connected.clear()
        log.info("%s: disconnected (%s); frames keep queueing", self.device_id, reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        # Called with paho's message mutex held: only record, the worker does the rest.
        self._acked_mids.append(mid)
        self._notify()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: Any) -> None:
        try:
            ack = StorageAck.from_json(msg.payload)
        except ValueError as exc:
            log.warning("%s: ignoring a bad storage ack on %s: %s", self.device_id, msg.topic, exc)
            return
        if ack.device_id == self.device_id:
            self._stored_in.append(ack)
            self._notify()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain_acks()
            self._hand_over()
            with self._wake:
                if not self._acked_mids and not self._stored_in:
                    self._wake.wait(timeout=0.2)
        self._drain_acks()

    def _plausible(self, ack: StorageAck) -> bool:
        """Whether ``ack`` can come from a processor: it acknowledges no ``seq`` this device
        never issued. A processor acknowledges only frames it stored, so an acknowledgement
        reaching past the highest ``seq`` ever enqueued is forged (``[[0, 999999999]]`` on the
        device's ack topic, where a broker without ACL lets anyone publish) and is ignored
        whole: applied, it deleted frames that were sent but not yet stored (lost)."""
        if not ack.ranges:
            return True
        last = self.queue.last_seq
        top = max(b for _a, b in ack.ranges)
        if last is not None and top <= last + 1:
            return True
        self._acks_refused += 1
        log.warning(
            "%s: ignoring a storage ack up to seq %d: the highest seq issued is %s",
            self.device_id,
            top - 1,
            last,
        )
        return False

    def _drain_acks(self) -> None:
        storage = self.delete_on == "storage"
        now = time.monotonic()
        while self._acked_mids:
            mid = self._acked_mids.popleft()
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue
            if storage:
                if seq not in self._stored_recent:
                    self._awaiting[seq] = now
            else:
                self.queue.ack(seq)
                self._acked += 1
        if not storage:
            return
        seqs: list[int] = []
        removed = 0
        got_ack = False
        while self._stored_in:
            # applied as ranges: only the frames this device holds are touched, so an absurd
            # range (``[[0, 999999999]]``) costs nothing (issue 18, finding 2)
            ack = self._stored_in.popleft()
            if not self._plausible(ack):
                continue
            got_ack = True
            deleted = self.queue.ack_ranges(ack.ranges)
            removed += len(deleted)
            seqs.extend(deleted)
            seqs.extend(s for s in list(self._awaiting) if ack.covers(s))
            seqs.extend(s for s in self._inflight.values() if ack.covers(s))
        if got_ack:
            self._storage_acked += removed
            self._acked += removed
            for s in seqs:
                self._awaiting.pop(s, None)
                self._stored_recent[s] = None
            while len(self._stored_recent) > 4 * self.max_unconfirmed:
                self._stored_recent.popitem(last=False)
            self._last_progress = now
            self._backoff = 1.0
        elif (
            self._awaiting
            and now - self._last_progress > self.storage_ack_timeout_s * self._backoff
            and now - min(self._awaiting.values()) > self.storage_ack_timeout_s
        ):
            log.info(
                "%s: no storage ack for %.0f s; replaying %d queued frame(s)",
                self.device_id,
                now - self._last_progress,
                len(self.queue),
            )
            self._rewind = True
            self._last_progress = now
            self._backoff = min(8.0, self._backoff * 2)
        if self._rewind:
            self._rewind = False
            self._awaiting.clear()
            self._handed_max_seq = None
            self._replays += 1

    def _hand_over(self) -> None:
        if not (self._connected.is_set() and self._link_up):
            return
        room = self.max_inflight - len(self._inflight)
        if self.delete_on == "storage":
            room = min(room, self.max_unconfirmed - len(self._awaiting) - len(self._inflight))
        if room <= 0:
            return
        for item in self.queue.peek_batch(room, after_seq=self._handed_max_seq):
            info = self._client.publish(self.topic, item.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning(
                    "%s: publish of seq %d failed (rc=%s); will retry",
                    self.device_id,
                    item.seq,
                    info.rc,
                )
                break
            # NO_CONN: paho keeps the message and sends it on reconnect, in order.
            self._inflight[info.mid] = item.seq
            self._handed_max_seq = item.seq
            self._published += 1

    # ------------------------------------------------------------------ public API
    def start(self) -> FramePublisher:
        """Connect (asynchronously; retried with back-off) and start the worker."""
        if self._worker is not None:
            return self
        self._client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        self._worker = threading.Thread(
            target=self._run, name=f"publisher-{self.device_id}", daemon=True
        )
        self._worker.start()
        return self

    def publish(self, frame: Frame) -> bool:
        """Queue ``frame`` durably and schedule it; ``False`` if the queue refused it."""
        if frame.device_id != self.device_id:
            raise ValueError(
                f"frame.device_id {frame.device_id!r} != publisher device_id {self.device_id!r}"
            )
        ok = self.queue.enqueue(frame)
        self._notify()
        return ok

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (``False`` on timeout)."""
        return self._connected.wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued frame is acknowledged; ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.queue) == 0 and not self._inflight:
                return True
            self._notify()
            time.sleep(0.02)
        return False

    def set_link(self, up: bool) -> None:
        """Simulate the radio link going down (``False``) or coming back (``True``)."""
        if up == self._link_up:
            return
        self._link_up = up
        if up:
            self._client.reconnect_delay_set(1, 5)
            self._client.connect_async(
                self.address.host, self.address.port, keepalive=self.keepalive_s
            )
            self._client.loop_start()
        else:
            self._client.disconnect()
            self._client.loop_stop()
            self._connected.clear()
        self._notify()

    def counters(self) -> PublisherCounters:
        """Current statistics."""
        return PublisherCounters(
            published=self._published,
            acked=self._acked,
            connects=self._connects,
            disconnects=self._disconnects,
            queued=len(self.queue),
            in_flight=len(self._inflight),
            connected=self._connected.is_set(),
            storage_acked=self._storage_acked,
            replays=self._replays,
            acks_refused=self._acks_refused,
        )

    def stop(self, *, flush_timeout_s: float = 0.0) -> None:
        """Optionally flush, then disconnect; unacknowledged frames stay queued on disk."""
        if flush_timeout_s > 0:
            self.flush(flush_timeout_s)
        self._stop.set()
        self._notify()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> FramePublisher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
