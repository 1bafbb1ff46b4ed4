"""Delivery: messages py-libp2p accepted -> the store -> the application's queues.

Every message a node delivers is committed to its :class:`~node.gossip.store.GossipStore`
(SQLite, before the application sees it), deduplicated by message id (the store's primary key
is ``sha256(data)``), so the application never sees the same bytes twice -- also across
py-libp2p's seen-cache expiry and across restarts with the same store file.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import trio

from node.gossip.bundle import attestations_in
from node.gossip.config import MAX_MESSAGE_BYTES
from node.gossip.store import GossipStore

Notify = Callable[..., None]
"""Runs a callback on the asyncio loop (:meth:`node.gossip.bridge.TrioBridge.notify`)."""


class Delivery:
    """Stores delivered messages and fans the new ones out to the subscribers' queues."""

    def __init__(self, store: GossipStore, notify: Notify) -> None:
        self.store = store
        self._notify = notify
        self._queues: list[asyncio.Queue[bytes]] = []
        self._lock = threading.Lock()  # counters are bumped from worker threads
        self.delivered_count = 0
        self.duplicates_dropped = 0

    def subscribe(self) -> asyncio.Queue[bytes]:
        """A new queue receiving every message delivered from now on (on the asyncio loop)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    async def drain(self, subscription: Any) -> None:
        """On the trio loop: store what the subscription hands over, in batches."""
        channel = subscription.receive_channel
        while True:
            batch = [bytes((await channel.receive()).data)]
            while len(batch) < 256:  # whatever else is already waiting: one group commit
                try:
                    batch.append(bytes(channel.receive_nowait().data))
                except trio.WouldBlock:
                    break
            # the store's fsync happens off the trio loop, in order
            await trio.to_thread.run_sync(self.deliver_many, batch)

    def deliver_many(self, batch: list[bytes]) -> list[bool]:
        """Store ``batch`` durably in one transaction (dropping duplicates by message id), then
        hand the new messages to the subscribers on the asyncio loop. Runs in a worker
        thread. A bundle is stored and delivered as the attestations it carries
        (:mod:`node.gossip.bundle`); it counts as new if one of them was."""
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
