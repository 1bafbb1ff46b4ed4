"""Delivery: messages py-libp2p accepted -> the store -> the application's queues.

py-libp2p marks a message seen and forwards it *before* it hands it over, through a 32-deep
channel that drops when full (``Pubsub.notify_subscriptions``): a node whose storage stalled
0.5 s stored 186 of 200 messages while its neighbour got all 200. So the hand-over is ours
(:class:`~node.gossip.router.OrbitalPubsub` calls :meth:`Delivery.offer`): a bounded in-memory
queue (``GossipConfig.delivery_queue`` messages) that never waits, drained by one trio task that
stores in batches (one SQLite transaction each, off the trio loop). Nothing on the receive path
ever waits on storage. What cannot be kept is accounted, never silent:

* the queue full (storage stalled for longer than the queue covers): the message is counted in
  ``handoff_overflows``, its id is kept (the newest :data:`OVERFLOW_IDS_KEPT`), and once the
  backlog is stored ``on_loss`` runs -- the node then syncs from its connected peers
  (:mod:`node.gossip.catchup`), which stored what we missed, until :meth:`Delivery.unrecovered`
  finds every overflowed id in the store;
* py-libp2p dropping a publish on its way to a peer (its outgoing queue was full): once what
  the node holds is stored, that peer is asked to sync from us (:meth:`Delivery.once_stored`);
* a store write that fails (a full or failing disk): counted in ``store_failures`` and retried
  with backoff, the batch kept in memory.

Every delivered message is committed to the :class:`~node.gossip.store.GossipStore` before the
application sees it, deduplicated by message id (the store's primary key is ``sha256(data)``),
so the application never sees the same bytes twice -- also across py-libp2p's seen-cache
expiry and across restarts with the same store file.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

import trio

from node.attest.codec import message_id
from node.gossip.bundle import attestations_in
from node.gossip.config import MAX_MESSAGE_BYTES
from node.gossip.store import GossipStore

log = logging.getLogger(__name__)

Notify = Callable[..., None]
"""Runs a callback on the asyncio loop (:meth:`node.gossip.bridge.TrioBridge.notify`)."""

BATCH = 256
"""Most messages stored in one transaction."""
OVERFLOW_IDS_KEPT = 65_536
"""Ids of overflowed messages kept until they are recovered (2 MiB)."""


class Delivery:
    """Hands accepted messages to the store and the new ones to the subscribers' queues."""

    def __init__(self, store: GossipStore, notify: Notify, on_loss: Callable[[], None], *,
                 queue_limit: int) -> None:
        self.store = store
        self._notify = notify
        self._on_loss = on_loss
        self._queues: list[asyncio.Queue[bytes]] = []
        self._lock = threading.Lock()  # counters are bumped from worker threads
        self._send, self._receive = trio.open_memory_channel[bytes](queue_limit)
        self._lost = False  # the queue overflowed since the last repair was asked for
        self._overflowed: OrderedDict[bytes, None] = OrderedDict()  # ids, not yet recovered
        self._overflow_lock = threading.Lock()  # trio thread adds, a worker thread prunes
        self._unstored = 0  # offered and not stored yet (trio thread only)
        self._once_stored: dict[str, Callable[[], None]] = {}
        self.delivered_count = 0
        self.duplicates_dropped = 0
        self.handoff_overflows = 0
        self.handoff_high_water = 0
        self.store_failures = 0

    def subscribe(self) -> asyncio.Queue[bytes]:
        """A new queue receiving every message delivered from now on (on the asyncio loop)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.remove(queue)

    @property
    def subscriber_backlog(self) -> int:
        """The most messages any subscriber has not taken yet (the queues are unbounded: a
        message is already stored when it is queued, and a subscriber that falls behind shows
        here)."""
        return max((q.qsize() for q in self._queues), default=0)

    @property
    def backlog(self) -> int:
        """Messages handed over by py-libp2p and not stored yet (queued, or taken by the drain
        and being stored: a message handed straight to a waiting drain is in no buffer)."""
        return self._unstored

    # ---- trio side -------------------------------------------------------------------------

    def offer(self, data: bytes) -> None:
        """On the trio loop, synchronously: take a message py-libp2p accepted (never waits)."""
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            self.handoff_overflows += 1
            self._lost = True
            with self._overflow_lock:  # a bundle is stored as its attestations: their ids
                for entry in attestations_in(data):
                    self._overflowed[message_id(entry)] = None
                while len(self._overflowed) > OVERFLOW_IDS_KEPT:
                    self._overflowed.popitem(last=False)
            return
        self._unstored += 1
        self.handoff_high_water = max(self.handoff_high_water, self._unstored)

    def once_stored(self, key: str, action: Callable[[], None]) -> None:
        """On the trio loop: run ``action`` on the asyncio loop once everything offered so far
        is stored (at once if it is). One pending action per ``key``."""
        if self._unstored == 0:
            self._notify(action)
        else:
            self._once_stored[key] = action

    async def drain(self) -> None:
        """On the trio loop: store what :meth:`offer` took, in batches, in order."""
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < BATCH:  # whatever else is already waiting: one group commit
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._store(batch)
            self._unstored -= len(batch)
            if self._unstored == 0:
                if self._lost:
                    self._lost = False
                    self._notify(self._on_loss)
                actions, self._once_stored = self._once_stored, {}
                for action in actions.values():
                    self._notify(action)

    async def _store(self, batch: list[bytes]) -> None:
        delay = 0.05
        while True:
            try:  # the store's fsync happens off the trio loop
                await trio.to_thread.run_sync(self.deliver_many, batch)
                return
            except Exception as exc:
                self.store_failures += 1
                log.warning("storing %d delivered messages failed (retrying in %.2f s): %r",
                            len(batch), delay, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ---- any thread ------------------------------------------------------------------------

    def unrecovered(self) -> int:
        """How many overflowed messages are still not in the store (forgetting those that
        are). Blocks on the store: run it in a worker thread."""
        with self._overflow_lock:
            ids = list(self._overflowed)
        stored = [i for i in ids if self.store.contains(i)]
        with self._overflow_lock:
            for i in stored:
                self._overflowed.pop(i, None)
            return len(self._overflowed)

    def deliver_many(self, batch: list[bytes]) -> list[bool]:
        """Store ``batch`` durably in one transaction (dropping duplicates by message id), then
        hand the new messages to the subscribers on the asyncio loop; for each, True if it was
        new. Blocks: run it in a worker thread. A bundle is stored and delivered as the
        attestations it carries (:mod:`node.gossip.bundle`); it counts as new if one was."""
        parts = [attestations_in(data) for data in batch]
        entries = [entry for part in parts for entry in part]
        fits = [len(data) <= MAX_MESSAGE_BYTES for data in entries]
        added = iter(self.store.add_many([d for d, ok in zip(entries, fits, strict=True) if ok]))
        new = [ok and next(added) for ok in fits]
        fresh = [d for d, is_new in zip(entries, new, strict=True) if is_new]
        with self._lock:
            self.delivered_count += len(fresh)
            self.duplicates_dropped += sum(1 for ok, is_new in zip(fits, new, strict=True)
                                           if ok and not is_new)
        if fresh:
            self._notify(self._fan_out, fresh)
        flags = iter(new)
        return [any([next(flags) for _ in part]) for part in parts]

    def _fan_out(self, fresh: list[bytes]) -> None:
        for data in fresh:
            for queue in self._queues:
                queue.put_nowait(data)
