"""The gossip node: a py-libp2p gossipsub host on :data:`~node.gossip.config.TOPIC`, driven
from asyncio (DESIGN.md, data flow 4).

:class:`GossipNode` composes the parts, each in a module of its own:

* :mod:`node.gossip.config` -- :class:`GossipConfig`, every py-libp2p default restated;
* :mod:`node.gossip.transport` -- the libp2p host (identity, Noise only, yamux, no auto-dial);
* :mod:`node.gossip.router` / :mod:`node.gossip.cache` -- gossipsub and pubsub as we configure
  them (``sha256(data)`` message ids, drop counting, the topic validator);
* :mod:`node.gossip.bridge` -- the one trio <-> asyncio bridge (a trio thread per host);
* :mod:`node.gossip.bucket` -- the publish pacer;
* :mod:`node.gossip.delivery` -- subscription -> store -> the application's queues;
* :mod:`node.gossip.sync` -- the catch-up protocol served from the store.

``connect`` + graceful ``stop`` (which closes the host's connections first so peers see the
disconnect at once) are what restarts rely on: a peer whose process vanished without closing
was still listed as connected (and kept in the mesh) by py-libp2p several seconds later in our
runs.

Pacing: :meth:`GossipNode.publish` keeps one publish in flight and admits at most
``publish_rate`` messages per second with a burst of ``publish_burst`` (defaults 50/s, burst 16
-- half the per-peer queue). A node forwards at the rate it receives, so pacing at the source
bounds every queue along the path as long as every hop drains faster than the rate. Measured
here (3 nodes in one process, a line, 600 attestations published concurrently): unpaced, 366 of
600 were dropped at the first hop's full queue; at 100/s, 0 or 27 dropped (run to run); at
50/s, none. Nodes in one process share the GIL (~5 ms of CPU per message per hop), so the safe
rate falls with the number of nodes per process; one node per process handles ~400 msg/s.
Pacing alone cannot know how fast the peers drain: a peer whose CPU is busy, or behind a slow
link once yamux's 256 KiB window is in flight, stops reading, our writes block and its queue
fills. :meth:`GossipNode.publish` therefore also waits while any peer's outgoing queue holds
``queue_high_water`` RPCs (backpressure; at most ``backpressure_timeout``, for a stuck peer):
publishing slows down to what the peers absorb instead of losing messages. Measured: 10 node
processes on 2 cores, 50 and 100 msg/s offered: 644 of 3,000 deliveries lost without it, none
with it (the publisher's latency grows instead); 800 attestations over a 256 kbit/s link: 190
dropped without it, none with it (``tests/test_gossip_link.py``). Drops that still happen are
counted in :attr:`GossipNode.dropped_rpcs` (py-libp2p only logs them at debug).

Catch-up (:mod:`node.gossip.sync`): :meth:`GossipNode.connect` runs :meth:`GossipNode.sync_from`
after every dial with ``sync_back`` set, which makes the server sync from the dialler in turn:
a node whose links return fetches only what it missed, and its neighbours fetch what they
missed from it, whichever side dialled. Synced messages pass the same validator and
deduplication as gossip.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service

from node.attest.codec import message_id
from node.gossip import sync
from node.gossip.bridge import TrioBridge
from node.gossip.bucket import TokenBucket
from node.gossip.config import MAX_MESSAGE_BYTES, GossipConfig, GossipError
from node.gossip.bundle import GossipValidator
from node.gossip.delivery import Delivery
from node.gossip.router import make_router, stop_timed_caches
from node.gossip.store import GossipStore
from node.gossip.transport import forget_addresses, make_host

log = logging.getLogger(__name__)


class GossipNode:
    """A gossipsub host on the configured topic, driven from asyncio. Create with
    :meth:`start`."""

    def __init__(self, config: GossipConfig, key_seed: bytes | str | None,
                 validator: Callable[[bytes], bool] | None, listen_port: int) -> None:
        self.config = config
        self._key_seed = key_seed
        # every node takes bundles (node.gossip.bundle): ``validator`` checks each attestation
        self.validator = validator if validator is None or isinstance(
            validator, GossipValidator) else GossipValidator(validator)
        self._validator = self.validator
        self._bridge = TrioBridge(f"gossip-trio-{listen_port}")
        self.store = GossipStore(config.store_path, max_message_bytes=MAX_MESSAGE_BYTES,
                                 max_messages=config.store_max_messages)
        self._delivery = Delivery(self.store, self._bridge.notify)
        self._count_lock = threading.Lock()  # counters are bumped from both threads
        self._publish_lock = asyncio.Lock()
        self._bucket = TokenBucket(config.publish_rate, config.publish_burst)
        self._stopped = False
        self._background: set[asyncio.Task[Any]] = set()  # sync-back tasks
        self.peer_id = ""
        self.listen_addr = ""
        self.synced_count = 0
        self.sync_fetched = 0   # frames received over the sync protocol (new or not)
        self.backpressure_timeouts = 0  # publishes sent although a peer's queue stayed full
        self.sync_rejected = 0
        self.host: Any = None
        self.pubsub: Any = None
        self.gossipsub: Any = None

    # ---- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def start(cls, listen_port: int = 0, key_seed: bytes | str | None = None, *,
                    validator: Callable[[bytes], bool] | None = None,
                    config: GossipConfig | None = None) -> GossipNode:
        """Start a host listening on ``config.host:listen_port`` (0 = any free port).

        ``key_seed`` makes the ed25519 peer identity deterministic (sha256 of the seed);
        ``validator`` (``bytes -> bool``) is installed as the topic validator: a message it
        rejects is neither delivered nor forwarded. ``None`` installs no validator (tests only).
        A validator of single attestations is wrapped in a
        :class:`~node.gossip.bundle.GossipValidator` (:attr:`validator`), which also takes
        bundles, checking each attestation in them with it.
        """
        node = cls(config or GossipConfig(), key_seed, validator, listen_port)
        node._bridge.start(functools.partial(node._trio_main, listen_port))
        try:
            await node._bridge.wait_ready(node.config.start_timeout)
        except BaseException:
            await node.stop()
            raise
        return node

    async def stop(self) -> None:
        """Close the host and join its thread. Idempotent."""
        if self._stopped:
            return
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._bridge.running:
            # close connections first so peers see EOF now, not when their keep-alive fails
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._call(self._close_host), 5.0)
        self._stopped = True
        await self._bridge.close()
        self.store.close()

    # ---- asyncio-facing API ----------------------------------------------------------------

    @property
    def delivered_count(self) -> int:
        """Messages stored and handed to the subscribers (each once)."""
        return self._delivery.delivered_count

    @property
    def duplicates_dropped(self) -> int:
        """Messages delivered again by py-libp2p or sync and dropped by the store."""
        return self._delivery.duplicates_dropped

    async def connect(self, addr: str, *, sync: bool = True) -> int:
        """Dial the peer at ``addr`` (a multiaddr with ``/p2p/<peer id>``), then (``sync``)
        catch up from it with :meth:`sync_from`; return how many messages were new (0 without
        ``sync``)."""
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))

        async def dial() -> None:
            forget_addresses(self.host, info.peer_id)
            await self.host.connect(info)
            await self.pubsub.wait_for_peer(info.peer_id, timeout=5.0)

        await self._call(dial)
        return await self.sync_from(str(info.peer_id), sync_back=True) if sync else 0

    async def sync_from(self, peer_id: str, *, sync_back: bool = False) -> int:
        """Catch up from a connected peer over :data:`~node.gossip.sync.SYNC_PROTOCOL`; return
        how many messages were new to us.

        Asks for what the peer stored after the last sequence number we fetched from it (0 the
        first time, or when its ``store_id`` changed), page by page. Each offered message passes
        our validator (else it is counted in ``sync_rejected`` and dropped); a new one is
        stored, delivered and re-published (paced) so that peers behind us, cut off while we
        were down, get it by ordinary gossip -- its message id is ``sha256(data)``, so nodes
        that already have it drop the copy. The cursor moves only after a page is stored.

        ``sync_back`` asks the peer to catch up from us in turn (what :meth:`connect` does): a
        link that returns is caught up in both directions whichever side dialled."""
        page_size = self.config.sync_page
        new = 0
        store_id, since = self.store.cursor(peer_id)
        more = True
        while more:
            asked = store_id
            page = await self._call(functools.partial(
                sync.fetch_page, self.host, peer_id, store_id, since, page_size, sync_back))
            store_id, more, frames = page.store_id, page.more, page.frames
            sync_back = False  # asked once
            if store_id != asked:  # first contact, or the peer's store started over
                since = 0
            if frames and frames[0][0] <= since:
                raise GossipError(f"peer {peer_id} answered from seq {frames[0][0]}, "
                                  f"asked after {since}")
            valid = [data for _, data in frames
                     if self._validator is None or self._validator(data)]
            with self._count_lock:
                self.sync_rejected += len(frames) - len(valid)
            # the page is stored in one transaction (one fsync), as gossip deliveries are
            added = await asyncio.to_thread(self._delivery.deliver_many, valid)
            for data, is_new in zip(valid, added, strict=True):
                if is_new:
                    new += 1
                    await self.publish(data)
            with self._count_lock:
                self.sync_fetched += len(frames)
            if frames:
                since = frames[-1][0]
            self.store.set_cursor(peer_id, store_id, since)
        with self._count_lock:
            self.synced_count += new
        return new

    async def publish(self, data: bytes) -> bytes:
        """Publish ``data`` on the topic (paced, see module docstring); return its message id.

        Our own validator runs on it first: a message it rejects is not sent (py-libp2p drops it
        silently; this raises :class:`GossipError` instead).
        """
        data = bytes(data)
        if self._validator is not None and not self._validator(data):
            raise GossipError("refusing to publish a message our own validator rejects")
        async with self._publish_lock:  # one publish in flight: closed loop plus the rate cap
            await self._bucket.take()
            await self._call(functools.partial(self._send_when_drained, data))
        return message_id(data)

    async def _send_when_drained(self, data: bytes) -> None:
        """On the trio loop: wait (up to ``backpressure_timeout``) until every peer's outgoing
        queue is below ``queue_high_water``, then publish. A peer that reads slowly (a busy
        CPU, a slow link) thereby slows the publisher down instead of having py-libp2p drop
        what no longer fits in its 32-RPC queue."""
        cfg = self.config
        deadline = trio.current_time() + cfg.backpressure_timeout
        while any(len(q) >= cfg.queue_high_water for q in self.pubsub.peer_queues.values()):
            if trio.current_time() >= deadline:
                self.backpressure_timeouts += 1
                break
            await trio.sleep(0.002)
        await self.pubsub.publish(cfg.topic, data)

    @property
    def dropped_rpcs(self) -> dict[tuple[str, str], int]:
        """RPCs py-libp2p dropped on the way out, by (reason, publish/control): a non-zero
        ``("queue_full", "publish")`` means a peer missed messages -- publish slower."""
        return dict(self.gossipsub.dropped) if self.gossipsub is not None else {}

    def stored(self) -> list[bytes]:
        """Every message delivered so far (oldest first), from the store: after a restart with
        the same ``store_path`` this includes what was delivered before."""
        return self.store.all()

    def subscribe(self) -> asyncio.Queue[bytes]:
        """A new queue receiving every message delivered from now on (validated, deduplicated;
        own publishes included)."""
        return self._delivery.subscribe()

    async def mesh_peers(self) -> set[str]:
        """Peer ids currently in our gossipsub mesh for the topic."""
        async def get() -> set[str]:
            return {str(p) for p in self.gossipsub.mesh.get(self.config.topic, ())}
        return await self._call(get)

    async def connected_peers(self) -> set[str]:
        async def get() -> set[str]:
            return {str(p) for p in self.host.get_connected_peers()}
        return await self._call(get)

    async def peer_scores(self) -> dict[str, float]:
        """Gossipsub score of every connected or retained peer (:mod:`node.gossip.scoring`)."""
        async def get() -> dict[str, float]:
            return self.gossipsub.peer_scores()
        return await self._call(get)

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await fn()`` on this host's trio loop (:class:`~node.gossip.bridge.TrioBridge`)."""
        if self._stopped:
            raise GossipError("gossip node is not running")
        return await self._bridge.call(fn)

    # ---- the trio side -----------------------------------------------------------------------

    async def _close_host(self) -> None:
        await self.host.close()

    async def _trio_main(self, listen_port: int) -> None:
        cfg = self.config
        listen = multiaddr.Multiaddr(f"/ip4/{cfg.host}/tcp/{listen_port}")
        self.host = make_host(cfg, self._key_seed, listen)
        self.pubsub, self.gossipsub = make_router(self.host, cfg, self._validator)
        self.host.set_stream_handler(sync.SYNC_PROTOCOL, self._serve_sync)
        try:
            async with self.host.run(listen_addrs=[listen]), \
                    background_trio_service(self.pubsub), \
                    background_trio_service(self.gossipsub):
                await self.pubsub.wait_until_ready()
                subscription = await self.pubsub.subscribe(cfg.topic)
                self.peer_id = self.host.get_id().to_string()
                addrs = [str(a) for a in self.host.get_addrs()
                         if a.value_for_protocol("tcp") is not None]
                if not addrs:
                    raise GossipError("host has no TCP listen address")
                self.listen_addr = addrs[0]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._delivery.drain, subscription)
                    self._bridge.serve_commands(nursery)
                    self._bridge.set_ready()
                    await trio.sleep_forever()
        finally:
            stop_timed_caches(self.pubsub)

    async def _serve_sync(self, stream: Any) -> None:
        await sync.serve(stream, self.store, self.config.sync_page,
                         lambda peer: self._bridge.notify(self._sync_back, peer))

    def _sync_back(self, peer_id: str) -> None:
        """On the asyncio loop: catch up from ``peer_id`` in the background (once per ask)."""
        if self._stopped:
            return
        task = asyncio.create_task(self.sync_from(peer_id), name=f"sync-back-{peer_id}")
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sync back failed: %r", task.exception())
