"""The catch-up protocol (:data:`SYNC_PROTOCOL`): a request/response stream over which a node
serves its :class:`~node.gossip.store.GossipStore` by sequence number.

A node that was down misses what was gossiped meanwhile (gossipsub replays only its
few-heartbeat message cache). The dialler asks for the messages after sequence number
``since`` of the server's store::

    request  = store_id[16] || uint64 since || uint32 limit || uint8 sync_back
    answer   = store_id[16] || uint32 count || uint8 more, then count frames of
    frame    = uint64 seq || uint16 length || message

(a ``store_id`` that is not the server's own means "from the start"); the server answers and
closes. The dialler keeps, per peer, the server's ``store_id`` and the highest ``seq`` it
fetched (in its own store, so it survives restarts) and asks again while ``more`` is set.
``sync_back`` asks the server to catch up from the dialler in turn.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from node.gossip.config import MAX_MESSAGE_BYTES, GossipError
from node.gossip.store import GossipStore

log = logging.getLogger(__name__)

SYNC_PROTOCOL = TProtocol("/orbital/attestations-sync/2.0.0")
REQUEST = struct.Struct(">16sQIB")   # store_id, since, limit, sync back
HEADER = struct.Struct(">16sIB")     # store_id, count, more
FRAME = struct.Struct(">QH")         # seq, length


@dataclass(frozen=True)
class Page:
    """One sync answer: the server's ``store_id``, whether it has ``more``, and the
    ``(seq, message)`` frames in increasing ``seq``."""

    store_id: bytes
    more: bool
    frames: list[tuple[int, bytes]]


async def read_exactly(stream: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            raise GossipError(f"sync stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


async def serve(stream: Any, store: GossipStore, max_page: int,
                on_sync_back: Callable[[str], None]) -> None:
    """On the trio loop: answer one request on ``stream`` from ``store``; a request with the
    back flag calls ``on_sync_back(peer_id)``."""
    try:
        store_id, since, limit, back = REQUEST.unpack(await read_exactly(stream, REQUEST.size))
        if back:  # the asker may hold what we missed: catch up from it too
            on_sync_back(str(stream.muxed_conn.peer_id))
        if store_id != store.store_id:  # the asker's cursor is for another store
            since = 0
        limit = min(limit, max_page)
        rows = await trio.to_thread.run_sync(store.since, since, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        parts = [HEADER.pack(store.store_id, len(page), more)]
        parts += [FRAME.pack(seq, len(d)) + d for seq, d in page]
        await stream.write(b"".join(parts))
    except Exception as exc:
        log.warning("sync stream failed: %r", exc)
    finally:
        await stream.close()


async def fetch_page(host: Any, peer_id: str, store_id: bytes, since: int, limit: int,
                     back: bool, timeout: float) -> Page:
    """On the trio loop: ask ``peer_id`` for up to ``limit`` messages after ``since`` of its
    store ``store_id``; check the answer's framing. :class:`GossipError` if the whole
    exchange takes longer than ``timeout`` seconds."""
    with trio.move_on_after(timeout) as scope:
        return await _fetch_page(host, peer_id, store_id, since, limit, back)
    assert scope.cancelled_caught
    raise GossipError(f"peer {peer_id} did not answer a sync request within {timeout} s")


async def _fetch_page(host: Any, peer_id: str, store_id: bytes, since: int, limit: int,
                      back: bool) -> Page:
    stream = await host.new_stream(ID.from_base58(peer_id), [SYNC_PROTOCOL])
    try:
        await stream.write(REQUEST.pack(store_id, since, limit, back))
        store_id, count, more = HEADER.unpack(await read_exactly(stream, HEADER.size))
        if count > limit:
            raise GossipError(f"peer {peer_id} sent {count} messages in a page of "
                              f"at most {limit}")
        frames: list[tuple[int, bytes]] = []
        last = 0
        for _ in range(count):
            seq, size = FRAME.unpack(await read_exactly(stream, FRAME.size))
            if size > MAX_MESSAGE_BYTES or seq <= last:
                raise GossipError(f"peer {peer_id} sent a bad sync frame "
                                  f"(seq {seq} after {last}, {size} bytes)")
            frames.append((seq, await read_exactly(stream, size)))
            last = seq
        return Page(store_id, bool(more), frames)
    finally:
        await stream.close()
