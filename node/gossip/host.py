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

Catch-up (:mod:`node.gossip.sync`, :mod:`node.gossip.catchup`): :meth:`GossipNode.connect`
runs :meth:`GossipNode.sync_from` after every dial with ``sync_back`` set, which makes the
server sync from the dialler in turn: a node whose links return fetches only what it missed,
and its neighbours fetch what they missed from it, whichever side dialled; what is new to a
node spreads by sync to its other peers, not by re-publishing. Synced messages pass the same
validator and deduplication as gossip.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service

from node.attest.codec import message_id
from node.gossip import sync
from node.gossip.bridge import TrioBridge
from node.gossip.bucket import TokenBucket
from node.gossip.bundle import GossipValidator
from node.gossip.catchup import CatchUp
from node.gossip.config import MAX_MESSAGE_BYTES, GossipConfig, GossipError, UndecidedError
from node.gossip.delivery import Delivery
from node.gossip.router import make_router, stop_timed_caches
from node.gossip.store import GossipStore
from node.gossip.transport import forget_addresses, make_host
from node.gossip.validator import Validator, Verdict, verdict_of

log = logging.getLogger(__name__)


class GossipNode:
    """A gossipsub host on the configured topic, driven from asyncio. Create with
    :meth:`start`."""

    def __init__(self, config: GossipConfig, key_seed: bytes | str | None,
                 validator: Validator | None, listen_port: int,
                 store: GossipStore | None) -> None:
        self.config = config
        self._key_seed = key_seed
        # every node takes bundles (node.gossip.bundle): ``validator`` checks each attestation
        self.validator = validator if validator is None or isinstance(
            validator, GossipValidator) else GossipValidator(validator)
        self._validator = self.validator
        self._bridge = TrioBridge(f"gossip-trio-{listen_port}", config.max_bridge_calls)
        self.store = store if store is not None else GossipStore(
            config.store_path, max_message_bytes=MAX_MESSAGE_BYTES,
            max_messages=config.store_max_messages)
        self._delivery = Delivery(self.store, self._bridge.notify, self._repair,
                                  queue_limit=config.delivery_queue)
        self._catchup = CatchUp(config, self.store, self._delivery, call=self._call,
                                host=lambda: self.host, validator=self._validator,
                                peers_in_good_standing=self.peers_in_good_standing,
                                graylisted=self.graylisted)
        self._catchup_task: asyncio.Task[None] | None = None
        self._publish_lock = asyncio.Lock()
        self._bucket = TokenBucket(config.publish_rate, config.publish_burst)
        self._stopped = False
        self.peer_id = ""
        self.listen_addr = ""
        self.backpressure_timeouts = 0  # publishes sent although a peer's queue stayed full
        self.sync_serves_refused = 0  # sync requests from graylisted peers, left unanswered
        self.host: Any = None
        self.pubsub: Any = None
        self.gossipsub: Any = None

    # ---- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def start(cls, listen_port: int = 0, key_seed: bytes | str | None = None, *,
                    validator: Validator | None = None,
                    config: GossipConfig | None = None,
                    store: GossipStore | None = None) -> GossipNode:
        """Start a host listening on ``config.host:listen_port`` (0 = any free port).

        ``key_seed`` makes the ed25519 peer identity deterministic (sha256 of the seed);
        ``validator`` (``bytes -> Verdict | bool``, :mod:`node.gossip.validator`) is installed
        as the topic validator: a message it rejects or cannot decide on is neither delivered
        nor forwarded. ``None`` installs no validator (tests only). A validator of single
        attestations is wrapped in a :class:`~node.gossip.bundle.GossipValidator`
        (:attr:`validator`), which also takes bundles, checking each attestation in them.
        ``store`` replaces the store ``config.store_path`` names (the node closes it at stop).
        """
        node = cls(config or GossipConfig(), key_seed, validator, listen_port, store)
        node._bridge.start(functools.partial(node._trio_main, listen_port))
        try:
            await node._bridge.wait_ready(node.config.start_timeout)
        except BaseException:
            await node.stop()
            raise
        node._catchup_task = asyncio.create_task(node._catchup.run(), name="gossip-catchup")
        return node

    async def stop(self) -> None:
        """Close the host and join its thread. Idempotent."""
        if self._stopped:
            return
        if self._catchup_task is not None:
            self._catchup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._catchup_task
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

    @property
    def handoff_overflows(self) -> int:
        """Messages py-libp2p accepted that did not fit in the delivery queue (recovered by
        syncing from the connected peers, see :mod:`node.gossip.delivery`)."""
        return self._delivery.handoff_overflows

    async def unrecovered(self) -> int:
        """Messages lost at the hand-over and not recovered by sync yet."""
        return await asyncio.to_thread(self._delivery.unrecovered)

    @property
    def store_failures(self) -> int:
        """Failed store writes of delivered messages (retried)."""
        return self._delivery.store_failures

    @property
    def delivery_backlog(self) -> int:
        """Messages accepted and not stored yet."""
        return self._delivery.backlog

    @property
    def synced_count(self) -> int:
        """Messages new to us that came by sync."""
        return self._catchup.synced_count

    @property
    def anti_entropy_rounds(self) -> int:
        """Anti-entropy rounds run (each a background sync from every peer in good
        standing, see :mod:`node.gossip.catchup`)."""
        return self._catchup.anti_entropy_rounds

    @property
    def sync_fetched(self) -> int:
        """Frames received over the sync protocol (new or not)."""
        return self._catchup.sync_fetched

    @property
    def sync_rejected(self) -> int:
        """Synced messages our validator rejected."""
        return self._catchup.sync_rejected

    @property
    def sync_stalled(self) -> int:
        """Sync answers that were empty but claimed more (the sync stopped there)."""
        return self._catchup.sync_stalled

    @property
    def sync_refused(self) -> int:
        """Syncs not made because the peer is graylisted (:mod:`node.gossip.catchup`)."""
        return self._catchup.sync_refused

    @property
    def sync_undecided(self) -> int:
        """Synced messages our validator could not decide on (fetched again later)."""
        return self._catchup.sync_undecided

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
        """Catch up from a connected peer over :data:`~node.gossip.sync.SYNC_PROTOCOL` (see
        :mod:`node.gossip.catchup`); return how many messages were new to us.

        ``sync_back`` asks the peer to catch up from us in turn (what :meth:`connect` does): a
        link that returns is caught up in both directions whichever side dialled."""
        return await self._catchup.sync_from(peer_id, sync_back=sync_back)

    async def publish(self, data: bytes) -> bytes:
        """Publish ``data`` on the topic (paced, see module docstring); return its message id.

        Our own validator runs on it first: a message it rejects is not sent (py-libp2p drops it
        silently; this raises :class:`GossipError` instead), nor one it cannot decide on now
        (:class:`~node.gossip.config.UndecidedError`).
        """
        data = bytes(data)
        verdict = verdict_of(self._validator, data)
        if verdict is Verdict.REJECT:
            raise GossipError("refusing to publish a message our own validator rejects")
        if verdict is Verdict.IGNORE:
            raise UndecidedError("our own validator cannot decide on this message now "
                                 "(is the registry reachable?); publish it again later")
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

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        """Stop filling a queue :meth:`subscribe` returned."""
        self._delivery.unsubscribe(queue)

    @property
    def subscriber_backlog(self) -> int:
        """The most delivered messages a subscriber has not taken yet (accounting for the
        unbounded subscriber queues)."""
        return self._delivery.subscriber_backlog

    async def mesh_peers(self) -> set[str]:
        """Peer ids currently in our gossipsub mesh for the topic."""
        async def get() -> set[str]:
            return {str(p) for p in self.gossipsub.mesh.get(self.config.topic, ())}
        return await self._call(get)

    async def connected_peers(self) -> set[str]:
        async def get() -> set[str]:
            return {str(p) for p in self.host.get_connected_peers()}
        return await self._call(get)

    async def peers_in_good_standing(self) -> set[str]:
        """Connected peers that are not graylisted (:mod:`node.gossip.scoring`)."""
        async def get() -> set[str]:
            return {str(p) for p in self.host.get_connected_peers()
                    if not self._is_graylisted(p)}
        return await self._call(get)

    async def graylisted(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is graylisted, connected or not (scores outlive a disconnect,
        :mod:`node.gossip.scoring`)."""
        async def get() -> bool:
            return self._is_graylisted(ID.from_base58(peer_id))
        return await self._call(get)

    def _is_graylisted(self, peer: ID) -> bool:
        """On the trio loop: the scorer's verdict on ``peer`` for our topic."""
        return self.gossipsub.scorer.is_graylisted(peer, [self.config.topic])

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
        self.pubsub, self.gossipsub = make_router(
            self.host, cfg, self._validator, deliver=self._delivery.offer,
            on_publish_dropped=lambda peer: self._delivery.once_stored(
                peer, functools.partial(self._peer_missed, peer)),
            on_undecided=lambda peer: self._bridge.notify(self._undecided_from, peer))
        self.host.set_stream_handler(sync.SYNC_PROTOCOL, self._serve_sync)
        try:
            async with self.host.run(listen_addrs=[listen]), \
                    background_trio_service(self.pubsub), \
                    background_trio_service(self.gossipsub):
                await self.pubsub.wait_until_ready()
                await self.pubsub.subscribe(cfg.topic)  # delivery: OrbitalPubsub -> Delivery
                self.peer_id = self.host.get_id().to_string()
                addrs = [str(a) for a in self.host.get_addrs()
                         if a.value_for_protocol("tcp") is not None]
                if not addrs:
                    raise GossipError("host has no TCP listen address")
                self.listen_addr = addrs[0]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._delivery.drain)
                    self._bridge.serve_commands(nursery)
                    self._bridge.set_ready()
                    await trio.sleep_forever()
        finally:
            stop_timed_caches(self.pubsub)

    async def _serve_sync(self, stream: Any) -> None:
        """Answer a peer's sync request -- not a graylisted peer's: gossipsub ignores its
        RPCs, and its syncs would spend our link on a peer we stopped talking to (the stream
        is closed unanswered, counted in ``sync_serves_refused``)."""
        if self._is_graylisted(stream.muxed_conn.peer_id):
            self.sync_serves_refused += 1
            await stream.close()
            return
        await sync.serve(stream, self.store, self.config.sync_page,
                         lambda peer: self._bridge.notify(self._sync_back, peer))

    # ---- callbacks from the trio side, on the asyncio loop --------------------------------------

    def _sync_back(self, peer_id: str) -> None:
        """A peer asked us to catch up from it."""
        if not self._stopped:
            self._catchup.request(peer_id)

    def _peer_missed(self, peer_id: str) -> None:
        """py-libp2p dropped a publish on its way to ``peer_id`` (and we have stored it since):
        ask the peer to sync from us."""
        if not self._stopped:
            self._catchup.request(peer_id, sync_back=True)

    def _undecided_from(self, peer_id: str) -> None:
        """Our validator could not decide on a message ``peer_id`` forwarded: it is neither
        seen nor forwarded; decide again later, from that peer's store."""
        if not self._stopped and peer_id != self.peer_id:
            self._catchup.retry_undecided(peer_id)

    def _repair(self) -> None:
        """Delivery lost messages after py-libp2p marked them seen: sync from every peer."""
        if not self._stopped:
            self._catchup.repair()
