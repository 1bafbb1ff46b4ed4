"""The py-libp2p gossipsub host and the one trio <-> asyncio bridge.

py-libp2p is Trio-based; the node is asyncio. Each :class:`GossipNode` runs its libp2p host in
its own thread under ``trio.run`` (one trio event loop per host). The asyncio side talks to it
through exactly two channels:

* asyncio -> trio: :meth:`GossipNode._call` hands a coroutine function to the trio loop with
  ``TrioToken.run_sync_soon`` (non-blocking), which puts it on a trio memory channel; a trio
  task runs it and resolves an asyncio ``Future`` with ``loop.call_soon_threadsafe``.
* trio -> asyncio: delivered messages are pushed onto the asyncio subscriber queues with
  ``loop.call_soon_threadsafe``.

Settings py-libp2p gets wrong for us by default (DESIGN.md, "facts learnt the hard way") are set
explicitly here: Noise is the only security transport (the defaults also offer TLS, SECIO and
plaintext); yamux muxer; no automatic dialling of peerstore peers (the connection manager's
auto-connector is disabled through its watermarks); heartbeat 1 s (default 120 s); spam
protection on with a raised limit (500 msg/s per sender per topic, default 10); message id
``sha256(data)`` (:func:`node.attest.codec.message_id`) on every node, also in the gossip
message cache that IHAVE/IWANT use (py-libp2p 0.8.1 keys that cache by ``from || seqno``
regardless, see :class:`_Sha256MessageCache`); a topic validator that only accepts or rejects
and also runs on our own publishes; and publishing paced by a token bucket because the outgoing
per-peer queue (32 RPCs) drops silently when full.

A received message is validated before it is marked seen, delivered or forwarded; a new
connection's sync answer passes the same validator. ``connect`` + graceful ``stop`` (which
closes the host's connections first so peers see the disconnect at once) are what restarts
rely on: a peer whose process vanished without closing was still listed as connected (and
kept in the mesh) by py-libp2p several seconds later in our runs.

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

Catch-up: a node that was down misses what was gossiped meanwhile (gossipsub replays only its
few-heartbeat message cache). Every node therefore commits each message it delivers to its
:class:`~node.gossip.store.GossipStore` (SQLite, before the application sees it) and serves the
store on a request/response stream protocol (:data:`SYNC_PROTOCOL`): the dialler asks for the
messages after sequence number ``since`` of the server's store
(``store_id[16] || uint64 since || uint32 limit || uint8 sync_back``; a ``store_id`` that is
not the server's own means "from the start"); the server answers
``store_id[16] || uint32 count || uint8 more`` then ``count`` frames of
``uint64 seq || uint16 length || message`` and closes. The dialler keeps, per peer, the
server's ``store_id`` and the highest ``seq`` it fetched (in its own store, so it survives
restarts) and asks again while ``more`` is set. :meth:`GossipNode.connect` runs this sync after
every dial with ``sync_back`` set, which makes the server sync from the dialler in turn: a node
whose links return fetches only what it missed, and its neighbours fetch what they missed from
it, whichever side dialled. Synced messages pass the same validator and deduplication as
gossip.

Duplicates: py-libp2p's seen-cache drops repeats for ``seen_ttl`` seconds; on top of that the
store's primary key is the message id, so the application never sees the same bytes twice
(also across the seen-cache expiry and across restarts with the same store file).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

from node.attest.codec import message_id
from node.gossip.store import GossipStore

log = logging.getLogger(__name__)

TOPIC = "orbital/attestations/1"
GOSSIPSUB_PROTOCOLS = (TProtocol("/meshsub/1.2.0"), TProtocol("/meshsub/1.1.0"),
                       TProtocol("/meshsub/1.0.0"))


SYNC_PROTOCOL = TProtocol("/orbital/attestations-sync/2.0.0")
_MAX_FRAME = 4096
_SYNC_REQUEST = struct.Struct(">16sQIB")   # store_id, since, limit, sync back
_SYNC_HEADER = struct.Struct(">16sIB")     # store_id, count, more
_SYNC_FRAME = struct.Struct(">QH")         # seq, length


class GossipError(Exception):
    """The gossip host failed to start, is stopped, or an operation on it failed."""


@dataclass(frozen=True)
class GossipConfig:
    """Explicit gossipsub parameters (every py-libp2p default we depend on is restated)."""

    topic: str = TOPIC
    host: str = "127.0.0.1"           # never 0.0.0.0
    degree: int = 6                   # D
    degree_low: int = 4               # D_lo
    degree_high: int = 12             # D_hi
    heartbeat_interval: int = 1       # seconds (py-libp2p default: 120)
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl: int = 120               # seconds py-libp2p remembers a message id
    spam_limit_per_second: float = 500.0  # per sender per topic (default 10, own publishes too)
    min_mesh_diversity_ips: int = 1   # all peers share 127.0.0.1 in tests
    publish_rate: float = 50.0        # messages/s admitted by publish() (see module docstring)
    publish_burst: int = 16           # token bucket size (< 32, the silent per-peer queue)
    queue_high_water: int = 16        # publish() waits while a peer's outgoing queue is this full
    backpressure_timeout: float = 5.0  # ...for at most this long (a stuck peer), then sends
    store_path: str = ":memory:"      # the node's GossipStore (SQLite file; see store.py)
    store_max_messages: int | None = 1_000_000  # retention (~0.4 GB of attestations)
    start_timeout: float = 15.0
    max_connections: int = 64
    sync_page: int = 1024             # most messages per catch-up answer (asked again if more)


def _seeded_key_pair(seed: bytes | str) -> Any:
    """The ed25519 identity ``GossipNode.start(key_seed=seed)`` uses: its key from
    sha256(seed)."""
    raw = seed.encode() if isinstance(seed, str) else seed
    return create_new_key_pair(hashlib.sha256(raw).digest())


def peer_id_of(seed: bytes | str) -> str:
    """The peer id (base58) of a host started with ``key_seed=seed``, without starting it:
    what a neighbour's ``peers`` entry ends with."""
    return ID.from_pubkey(_seeded_key_pair(seed).public_key).to_string()


def _sha256_msg_id(msg: Any) -> bytes:
    return message_id(msg.data)


async def _read_exactly(stream: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            raise GossipError(f"sync stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


class _Sha256MessageCache(MessageCache):
    """py-libp2p 0.8.1's gossip message cache keys messages by ``from || seqno`` whatever the
    pubsub ``msg_id_constructor`` is, so its IHAVEs advertise ids that no receiver's seen-cache
    (keyed by ``sha256(data)``) recognises and every IHAVE turns into an IWANT. Key it by the
    same id as everything else."""

    def put(self, msg: Any) -> None:
        mid = message_id(msg.data)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class _CountingGossipSub(GossipSub):
    """GossipSub that counts the RPCs it drops (py-libp2p only logs them at debug level):
    ``dropped[(reason, "publish" | "control")]``, reason ``queue_full`` or ``oversized``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: Counter[tuple[str, str]] = Counter()

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        kind = "publish" if len(rpc.publish) else "control"
        self.dropped[(reason, kind)] += 1
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class _TokenBucket:
    """asyncio token bucket: ``rate`` tokens/s, at most ``burst`` stored."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                if self._last is not None:
                    self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class GossipNode:
    """A gossipsub host on :data:`TOPIC`, driven from asyncio. Create with :meth:`start`."""

    def __init__(self, config: GossipConfig, key_seed: bytes | str | None,
                 validator: Callable[[bytes], bool] | None) -> None:
        self.config = config
        self._key_seed = key_seed
        self._validator = validator
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._cmd_send: trio.MemorySendChannel[Any] | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._queues: list[asyncio.Queue[bytes]] = []
        self.store = GossipStore(config.store_path, max_message_bytes=_MAX_FRAME,
                                 max_messages=config.store_max_messages)
        self._count_lock = threading.Lock()  # counters are bumped from both threads
        self._publish_lock = asyncio.Lock()
        self._bucket = _TokenBucket(config.publish_rate, config.publish_burst)
        self._stopped = False
        self._pending: set[asyncio.Future[Any]] = set()  # asyncio side only
        self._background: set[asyncio.Task[Any]] = set()  # sync-back tasks
        self.peer_id = ""
        self.listen_addr = ""
        self.delivered_count = 0
        self.duplicates_dropped = 0
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
        """
        node = cls(config or GossipConfig(), key_seed, validator)
        node._thread = threading.Thread(target=node._thread_main, args=(listen_port,),
                                        name=f"gossip-trio-{listen_port}", daemon=True)
        node._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(node._ready), node.config.start_timeout)
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
        if self._trio_token is not None and not self._done.done():
            # close connections first so peers see EOF now, not when their keep-alive fails
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._call(self._close_host), 5.0)
        self._stopped = True
        token, scope = self._trio_token, self._cancel
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
            if self._thread.is_alive():  # pragma: no cover - diagnostic
                raise GossipError(f"gossip thread for {self.peer_id} did not stop")
        self.store.close()

    # ---- asyncio-facing API ----------------------------------------------------------------

    async def connect(self, addr: str, *, sync: bool = True) -> int:
        """Dial the peer at ``addr`` (a multiaddr with ``/p2p/<peer id>``), then (``sync``)
        catch up from it with :meth:`sync_from`; return how many messages were new (0 without
        ``sync``)."""
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))

        async def dial() -> None:
            # py-libp2p dials only the first TCP address it has for a peer, so a neighbour that
            # came back on a new port would be dialled at its old one: the address we are
            # given replaces whatever the peerstore remembers. A recent failed dial must not
            # block this one either (py-libp2p's negative cache).
            self.host.get_peerstore().clear_addrs(info.peer_id)
            negative = getattr(self.host.get_network(), "_negative_peer_cache", None)
            if negative is not None:
                negative.evict(str(info.peer_id))
            await self.host.connect(info)
            await self.pubsub.wait_for_peer(info.peer_id, timeout=5.0)

        await self._call(dial)
        return await self.sync_from(str(info.peer_id), sync_back=True) if sync else 0

    async def sync_from(self, peer_id: str, *, sync_back: bool = False) -> int:
        """Catch up from a connected peer over :data:`SYNC_PROTOCOL`; return how many messages
        were new to us.

        Asks for what the peer stored after the last sequence number we fetched from it (0 the
        first time, or when its ``store_id`` changed), page by page. Each offered message passes
        our validator (else it is counted in ``sync_rejected`` and dropped); a new one is
        stored, delivered and re-published (paced) so that peers behind us, cut off while we
        were down, get it by ordinary gossip -- its message id is ``sha256(data)``, so nodes
        that already have it drop the copy. The cursor moves only after a page is stored.

        ``sync_back`` asks the peer to catch up from us in turn (what :meth:`connect` does): a
        link that returns is caught up in both directions whichever side dialled."""
        pid = ID.from_base58(peer_id)
        page = self.config.sync_page

        async def fetch(store_id: bytes, since: int,
                        back: bool) -> tuple[bytes, bool, list[tuple[int, bytes]]]:
            stream = await self.host.new_stream(pid, [SYNC_PROTOCOL])
            try:
                await stream.write(_SYNC_REQUEST.pack(store_id, since, page, back))
                store_id, count, more = _SYNC_HEADER.unpack(
                    await _read_exactly(stream, _SYNC_HEADER.size))
                if count > page:
                    raise GossipError(f"peer {peer_id} sent {count} messages in a page of "
                                      f"at most {page}")
                frames: list[tuple[int, bytes]] = []
                last = 0
                for _ in range(count):
                    seq, size = _SYNC_FRAME.unpack(await _read_exactly(stream, _SYNC_FRAME.size))
                    if size > _MAX_FRAME or seq <= last:
                        raise GossipError(f"peer {peer_id} sent a bad sync frame "
                                          f"(seq {seq} after {last}, {size} bytes)")
                    frames.append((seq, await _read_exactly(stream, size)))
                    last = seq
                return store_id, bool(more), frames
            finally:
                await stream.close()

        new = 0
        store_id, since = self.store.cursor(peer_id)
        more = True
        while more:
            asked = store_id
            store_id, more, frames = await self._call(functools.partial(fetch, store_id, since,
                                                                        sync_back))
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
            added = await asyncio.to_thread(self._deliver_many, valid)
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
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    async def mesh_peers(self) -> set[str]:
        """Peer ids currently in our gossipsub mesh for the topic."""
        async def get() -> set[str]:
            return {str(p) for p in self.gossipsub.mesh.get(self.config.topic, ())}
        return await self._call(get)

    async def connected_peers(self) -> set[str]:
        async def get() -> set[str]:
            return {str(p) for p in self.host.get_connected_peers()}
        return await self._call(get)

    # ---- the bridge ------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await fn()`` on this host's trio loop; return its result here."""
        if self._stopped or self._trio_token is None or self._cmd_send is None:
            raise GossipError("gossip node is not running")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        send = self._cmd_send
        try:
            self._trio_token.run_sync_soon(send.send_nowait, (fn, fut))
        except trio.RunFinishedError:
            raise GossipError("gossip node has stopped") from None
        return await fut

    def _fail_pending(self) -> None:
        """On the asyncio loop once the trio loop has ended: no command can finish any more."""
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(GossipError("gossip node stopped"))

    async def _close_host(self) -> None:
        await self.host.close()

    def _resolve(self, fut: asyncio.Future[Any], result: Any = None,
                 exc: BaseException | None = None) -> None:
        def apply() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        with contextlib.suppress(RuntimeError):  # the asyncio loop is already closed
            self._loop.call_soon_threadsafe(apply)

    def _thread_main(self, listen_port: int) -> None:
        try:
            trio.run(self._trio_main, listen_port)
        except BaseException as exc:
            log.exception("gossip host crashed")
            self._resolve(self._ready, exc=GossipError(f"gossip host failed: {exc!r}"))
        finally:
            self._stop_timed_caches()
            with contextlib.suppress(RuntimeError):  # the asyncio loop is already closed
                self._loop.call_soon_threadsafe(self._fail_pending)
            self._resolve(self._done)
            self._resolve(self._ready, exc=GossipError("gossip host stopped before ready"))

    def _stop_timed_caches(self) -> None:
        # py-libp2p's seen-cache sweeps in a daemon thread of its own that Pubsub never stops.
        seen = getattr(self.pubsub, "seen_messages", None)
        if seen is not None and hasattr(seen, "stop"):
            seen.stop()

    def _make_host(self, listen: multiaddr.Multiaddr) -> Any:
        seed = self._key_seed
        key_pair = create_new_key_pair() if seed is None else _seeded_key_pair(seed)
        noise = NoiseTransport(key_pair,
                               noise_privkey=create_new_x25519_key_pair().private_key)
        # py-libp2p's auto-connector dials peerstore peers whenever fewer than 100
        # connections are open; we choose our neighbours (ISL topology), so it must never fire.
        cfg = self.config
        connections = ConnectionConfig(min_connections=0, low_watermark=0,
                                       high_watermark=cfg.max_connections,
                                       max_connections=cfg.max_connections)
        return new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: noise},
                        muxer_preference="YAMUX", listen_addrs=[listen],
                        connection_config=connections)

    async def _trio_main(self, listen_port: int) -> None:
        cfg = self.config
        self._trio_token = trio.lowlevel.current_trio_token()
        listen = multiaddr.Multiaddr(f"/ip4/{cfg.host}/tcp/{listen_port}")
        self.host = self._make_host(listen)
        self.gossipsub = _CountingGossipSub(
            protocols=list(GOSSIPSUB_PROTOCOLS), degree=cfg.degree, degree_low=cfg.degree_low,
            degree_high=cfg.degree_high, heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_initial_delay=0.1, gossip_window=cfg.gossip_window,
            gossip_history=cfg.gossip_history, spam_protection_enabled=True,
            max_messages_per_topic_per_second=cfg.spam_limit_per_second,
            min_mesh_diversity_ips=cfg.min_mesh_diversity_ips)
        self.gossipsub.mcache = _Sha256MessageCache(cfg.gossip_window, cfg.gossip_history)
        self.pubsub = Pubsub(self.host, self.gossipsub, seen_ttl=cfg.seen_ttl,
                             strict_signing=True, msg_id_constructor=_sha256_msg_id)
        if self._validator is not None:
            check = self._validator
            self.pubsub.set_topic_validator(cfg.topic, lambda _peer, msg: check(msg.data),
                                            False)
        self.host.set_stream_handler(SYNC_PROTOCOL, self._serve_sync)
        cmd_send, cmd_recv = trio.open_memory_channel[Any](1024)
        with trio.CancelScope() as scope:
            self._cancel = scope
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
                self._cmd_send = cmd_send
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._deliver_loop, subscription)
                    nursery.start_soon(self._command_loop, cmd_recv, nursery)
                    self._resolve(self._ready)
                    await trio.sleep_forever()

    async def _serve_sync(self, stream: Any) -> None:
        try:
            store_id, since, limit, back = _SYNC_REQUEST.unpack(
                await _read_exactly(stream, _SYNC_REQUEST.size))
            if back:  # the asker may hold what we missed: catch up from it too
                peer = str(stream.muxed_conn.peer_id)
                self._loop.call_soon_threadsafe(self._sync_back, peer)
            if store_id != self.store.store_id:  # the asker's cursor is for another store
                since = 0
            limit = min(limit, self.config.sync_page)
            rows = await trio.to_thread.run_sync(self.store.since, since, limit + 1)
            page, more = rows[:limit], len(rows) > limit
            parts = [_SYNC_HEADER.pack(self.store.store_id, len(page), more)]
            parts += [_SYNC_FRAME.pack(seq, len(d)) + d for seq, d in page]
            await stream.write(b"".join(parts))
        except Exception as exc:
            log.warning("sync stream failed: %r", exc)
        finally:
            await stream.close()

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

    async def _command_loop(self, cmd_recv: Any, nursery: trio.Nursery) -> None:
        async for fn, fut in cmd_recv:
            nursery.start_soon(self._run_command, fn, fut)

    async def _run_command(self, fn: Callable[[], Awaitable[Any]],
                           fut: asyncio.Future[Any]) -> None:
        try:
            result = await fn()
        except Exception as exc:
            self._resolve(fut, exc=exc)
        else:
            self._resolve(fut, result)

    async def _deliver_loop(self, subscription: Any) -> None:
        channel = subscription.receive_channel
        while True:
            batch = [bytes((await channel.receive()).data)]
            while len(batch) < 256:  # whatever else is already waiting: one group commit
                try:
                    batch.append(bytes(channel.receive_nowait().data))
                except trio.WouldBlock:
                    break
            # the store's fsync happens off the trio loop, in order
            await trio.to_thread.run_sync(self._deliver_many, batch)

    def _deliver_many(self, batch: list[bytes]) -> list[bool]:
        """Store ``batch`` durably in one transaction (dropping duplicates by message id), then
        hand the new messages to the subscribers on the asyncio loop. Runs in a worker
        thread."""
        fits = [len(data) <= _MAX_FRAME for data in batch]
        added = iter(self.store.add_many([d for d, ok in zip(batch, fits, strict=True) if ok]))
        new = [ok and next(added) for ok in fits]
        fresh = [d for d, is_new in zip(batch, new, strict=True) if is_new]
        with self._count_lock:
            self.delivered_count += len(fresh)
            self.duplicates_dropped += sum(1 for ok, is_new in zip(fits, new, strict=True)
                                           if ok and not is_new)
        if fresh:
            with contextlib.suppress(RuntimeError):  # the asyncio loop is already closed
                self._loop.call_soon_threadsafe(self._fan_out, fresh)
        return new

    def _fan_out(self, fresh: list[bytes]) -> None:
        for data in fresh:
            for queue in self._queues:
                queue.put_nowait(data)
