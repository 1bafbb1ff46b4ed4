"""Catch-up policy on the asyncio side: when to sync from which peer, and what a synced page
does to the store and the cursor (the wire protocol is :mod:`node.gossip.sync`).

A node syncs from a peer

* when it dials it (:meth:`node.gossip.host.GossipNode.connect`, with ``sync_back`` set so the
  peer catches up from us in turn);
* when a peer asks it to (a request with the back flag);
* when it lost messages between py-libp2p and its store (:mod:`node.gossip.delivery`): from
  every peer (:meth:`CatchUp.repair`), which stored what we missed;
* when a message a peer offered could not be decided (:meth:`CatchUp.retry_undecided`);
* every ``anti_entropy_interval`` seconds, from every peer (anti-entropy: gossipsub sends a
  message only to the peers it knows subscribe, and a peer whose subscription it missed --
  likely what the containerised demo showed once: two satellites connected, one direction's
  attestation never delivered -- gets it here; a sync with nothing new is one round trip);
* and it asks a peer to sync from it when py-libp2p dropped a publish on the way to that peer
  (:mod:`node.gossip.router`), and every other connected peer when a sync brought it new
  messages: catch-up spreads hop by hop to the peers that miss something, without
  re-publishing anything (a re-publish costs every node of the mesh ~10 ms of CPU per message
  and kept ``connect()`` busy for 6.2 s with 300 messages at the publish rate).

"Every peer" is every connected peer in good standing, and a sync from a graylisted one is refused
(:meth:`CatchUp._sync`, counted in ``sync_refused``): a graylisted peer
(:mod:`node.gossip.scoring`), whose messages gossipsub ignores, must not get them in by sync --
by asking us to sync from it, or by being asked to when a sync or a dropped publish spreads.

Background syncs are coalesced per peer: at most one runs and at most one more waits for each
peer, however many times it is asked; they run in one :class:`asyncio.TaskGroup` owned by
:meth:`CatchUp.run`. A sync, in the background or awaited, holds the peer's lock, so there is
never more than one sync with a peer at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from node.attest.codec import message_id
from node.gossip import sync
from node.gossip.config import GossipConfig, GossipError
from node.gossip.delivery import Delivery
from node.gossip.store import GossipStore
from node.gossip.validator import Validator, Verdict, verdict_of

log = logging.getLogger(__name__)


UNDECIDED_MAX_DELAY = 60.0
"""Longest wait before deciding again about messages a peer offered that could not be
decided (e.g. while the registry is unreachable)."""
REPAIR_ROUNDS = 12
"""Rounds of syncs from every peer after a loss before a repair gives up (about 8 min)."""
RETRIES = 5
"""A failed background sync is asked again after 2, 4, ... 32 s, then given up (the next
connect, sync-back or loss asks again)."""


@dataclass
class _Queued:
    sync_back: bool
    due: float  # loop time


@dataclass
class _PeerLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CatchUp:
    """Syncs from peers into ``delivery`` (see the module docstring)."""

    def __init__(self, config: GossipConfig, store: GossipStore, delivery: Delivery, *,
                 call: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
                 host: Callable[[], Any], validator: Validator | None,
                 peers_in_good_standing: Callable[[], Awaitable[set[str]]],
                 graylisted: Callable[[str], Awaitable[bool]]) -> None:
        self.config = config
        self.store = store
        self.delivery = delivery
        self._call = call
        self._host = host
        self._validator = validator
        self._peers_in_good_standing = peers_in_good_standing
        self._graylisted = graylisted
        self._locks: dict[str, _PeerLock] = {}
        self._queued: dict[str, _Queued] = {}   # at most one waiting sync per peer
        self._failures: dict[str, int] = {}     # consecutive failed background syncs
        self._undecided_backoff: dict[str, float] = {}  # peer -> last retry delay
        self._group: asyncio.TaskGroup | None = None
        self._repairing = False
        self._count_lock = threading.Lock()
        self.synced_count = 0
        self.sync_fetched = 0   # frames received over the sync protocol (new or not)
        self.sync_rejected = 0
        self.sync_undecided = 0  # offered by sync, not decided (asked again later)
        self.sync_stalled = 0    # empty pages that claimed 'more'
        self.sync_refused = 0    # syncs not made: the peer is graylisted
        self.background_failures = 0
        self.anti_entropy_rounds = 0

    # ---- the background ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run background syncs, and anti-entropy rounds, until cancelled (then they are
        cancelled too)."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                if self.config.anti_entropy_interval > 0:
                    await self._anti_entropy(self.config.anti_entropy_interval)  # never ends
                else:
                    await asyncio.Event().wait()
            finally:
                self._group = None

    async def _anti_entropy(self, interval: float) -> None:
        """Every ``interval`` seconds, a background sync from every connected peer in good
        standing; each asks only for what that peer stored after our cursor, so a round with
        nothing new costs one request and one empty answer per peer."""
        while True:
            await asyncio.sleep(interval)
            try:
                peers = await self._peers_in_good_standing()
            except Exception as exc:  # stopping, or the host failed: try again next round
                log.warning("anti-entropy: cannot list peers: %r", exc)
                continue
            for peer in sorted(peers):
                self.request(peer)
            self.anti_entropy_rounds += 1

    def request(self, peer_id: str, *, sync_back: bool = False, delay: float = 0.0) -> None:
        """Sync from ``peer_id`` in the background, after ``delay`` seconds (coalesced per
        peer, see the module docstring). On the asyncio loop."""
        if self._group is None:
            return
        due = asyncio.get_running_loop().time() + delay
        queued = self._queued.get(peer_id)
        if queued is not None:
            queued.sync_back = queued.sync_back or sync_back
            queued.due = min(queued.due, due)
            return
        self._queued[peer_id] = _Queued(sync_back, due)
        self._group.create_task(self._background(peer_id), name=f"sync-{peer_id}")

    def repair(self) -> None:
        """After a loss: sync from every connected peer in good standing, again (after 1, 2, 4, ...
        :data:`UNDECIDED_MAX_DELAY` s, at most :data:`REPAIR_ROUNDS` rounds) until every lost
        message is stored; one repair at a time, in the background."""
        if self._group is not None and not self._repairing:
            self._repairing = True
            self._group.create_task(self._repair(), name="sync-repair")

    async def _repair(self) -> None:
        delay = 1.0
        try:
            for _ in range(REPAIR_ROUNDS):
                try:
                    peers = await self._peers_in_good_standing()
                except Exception as exc:  # stopping
                    log.warning("repair: cannot list peers: %r", exc)
                    return
                for peer in sorted(peers):
                    try:
                        await self.sync_from(peer)
                    except Exception as exc:
                        log.warning("repair: sync from %s failed: %r", peer, exc)
                missing = await asyncio.to_thread(self.delivery.unrecovered)
                if not missing:
                    return
                log.warning("repair: %d lost messages not recovered from %d peers yet",
                            missing, len(peers))
                await asyncio.sleep(delay)
                delay = min(delay * 2, UNDECIDED_MAX_DELAY)
            log.warning("repair: giving up for now (the next loss or connect tries again)")
        finally:
            self._repairing = False

    async def _background(self, peer_id: str) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._queued[peer_id].due - loop.time()) > 0:
            await asyncio.sleep(wait)  # (an earlier request may have moved ``due``)
        try:
            async with self._exclusive(peer_id):
                sync_back = self._queued.pop(peer_id).sync_back
                await self._sync(peer_id, sync_back)
        except Exception as exc:  # a failed background sync must not end the others
            self.background_failures += 1
            failures = self._failures.get(peer_id, 0) + 1
            if failures > RETRIES:
                log.warning("sync from %s failed %d times, giving up: %r", peer_id,
                            failures, exc)
                self._failures.pop(peer_id, None)
                self._undecided_backoff.pop(peer_id, None)
                return
            self._failures[peer_id] = failures
            log.warning("sync from %s failed (retry %d in %.0f s): %r", peer_id, failures,
                        2.0 ** failures, exc)
            self.request(peer_id, sync_back=sync_back, delay=2.0 ** failures)
        else:
            self._failures.pop(peer_id, None)

    # ---- one sync ------------------------------------------------------------------------

    async def sync_from(self, peer_id: str, *, sync_back: bool = False) -> int:
        """Sync from ``peer_id`` now (after any sync with it already running); return how many
        messages were new to us."""
        async with self._exclusive(peer_id):
            return await self._sync(peer_id, sync_back)

    @contextlib.asynccontextmanager
    async def _exclusive(self, peer_id: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(peer_id, _PeerLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[peer_id]

    async def _sync(self, peer_id: str, sync_back: bool) -> int:
        """Asks for what the peer stored after the last sequence number we fetched from it (0
        the first time, or when its ``store_id`` changed), page by page, and stores what our
        validator accepts (a page in one transaction); rejected messages are counted in
        ``sync_rejected`` and dropped. The cursor moves only after a page is stored, and never
        past a message that could not be decided (:attr:`~node.gossip.validator.Verdict.IGNORE`):
        the sync stops there and is asked again later (:meth:`retry_undecided`).

        It always ends: an empty page ends it whatever ``more`` says (counted in
        ``sync_stalled``); a page that does not start after the cursor, or a second change of
        ``store_id``, is a :class:`GossipError`; after ``config.sync_max_pages`` pages the rest
        is fetched by a background sync; each request times out after ``config.sync_timeout``.

        Messages new to us are not re-published: the other connected peers are asked to sync
        from us instead (:meth:`_spread`), in the background, so only a peer that misses them
        fetches them, and it spreads them further the same way.

        A graylisted peer is not synced from (0 new, counted in ``sync_refused``): the one
        check every way to a sync passes. A peer that is not connected (py-libp2p redials
        dropped connections) is tried: the sync fails and a background one is retried."""
        if await self._graylisted(peer_id):
            with self._count_lock:
                self.sync_refused += 1
            log.info("not syncing from %s: graylisted", peer_id)
            return 0
        cfg = self.config
        new = 0
        undecided: list[int] = []
        store_id, since = self.store.cursor(peer_id)
        first_store_id = store_id
        for _ in range(cfg.sync_max_pages):
            asked = store_id
            page = await self._call(functools.partial(
                sync.fetch_page, self._host(), peer_id, store_id, since, cfg.sync_page,
                sync_back, cfg.sync_timeout))
            store_id, frames = page.store_id, page.frames
            sync_back = False  # asked once
            if store_id != asked:  # first contact, or the peer's store started over
                if asked != first_store_id:
                    raise GossipError(f"peer {peer_id} changed its store id twice in one sync")
                since = 0
            if not frames:
                if page.more:
                    self.sync_stalled += 1
                    log.warning("peer %s sent an empty page with 'more' set", peer_id)
                self.store.set_cursor(peer_id, store_id, since)
                break
            if frames[0][0] <= since:
                raise GossipError(f"peer {peer_id} answered from seq {frames[0][0]}, "
                                  f"asked after {since}")
            verdicts = await asyncio.to_thread(self._decide, [d for _, d in frames])
            accepted = [d for (_, d), v in zip(frames, verdicts, strict=True)
                        if v is Verdict.ACCEPT]
            # the page is stored in one transaction (one fsync), as gossip deliveries are
            added = await asyncio.to_thread(self.delivery.deliver_many, accepted)
            undecided = [seq for (seq, _), v in zip(frames, verdicts, strict=True)
                         if v is Verdict.IGNORE]
            with self._count_lock:
                self.sync_fetched += len(frames)
                self.synced_count += sum(added)
                self.sync_rejected += verdicts.count(Verdict.REJECT)
                self.sync_undecided += len(undecided)
            new += sum(added)
            if undecided:  # the cursor stops just before the first undecided message
                since = max([seq for seq, _ in frames if seq < undecided[0]], default=since)
            else:
                since = frames[-1][0]
            self.store.set_cursor(peer_id, store_id, since)
            if undecided or not page.more:
                break
        else:  # sync_max_pages pages and still more: the rest in the background -- if
            if new:  # these pages brought something (a peer paging junk forever is dropped)
                self.request(peer_id)
        if undecided:
            self.retry_undecided(peer_id)
        else:
            self._undecided_backoff.pop(peer_id, None)
        if new:
            self._spread(except_peer=peer_id)
        return new

    def _spread(self, except_peer: str) -> None:
        """New messages came by sync: ask every other peer in good standing to sync from us."""
        if self._group is not None:
            self._group.create_task(self._ask_peers(except_peer), name="sync-spread")

    async def _ask_peers(self, except_peer: str) -> None:
        try:
            peers = await self._peers_in_good_standing()
        except Exception as exc:  # stopping
            log.warning("cannot list peers to spread to: %r", exc)
            return
        for peer in peers - {except_peer}:
            self.request(peer, sync_back=True)

    def _decide(self, batch: list[bytes]) -> list[Verdict]:
        """In a worker thread: a stored message needs no verdict (it was accepted before)."""
        return [Verdict.ACCEPT if self.store.contains(message_id(data))
                else verdict_of(self._validator, data) for data in batch]

    def retry_undecided(self, peer_id: str) -> None:
        """A message from ``peer_id`` could not be decided: sync from it again later (after
        1, 2, 4, ... :data:`UNDECIDED_MAX_DELAY` s while it stays undecided)."""
        delay = self._undecided_backoff.get(peer_id, 0.5) * 2
        self._undecided_backoff[peer_id] = min(delay, UNDECIDED_MAX_DELAY)
        self.request(peer_id, delay=self._undecided_backoff[peer_id])
