"""Header sync: an anchor's header, then its ancestors, linked backward into the header store.

Trust arrives as an :class:`~node.chain.anchor.Anchor` (number and hash, from a head-trust
strategy, :mod:`node.rpc.heads`); the header itself comes from the untrusted upstream and must
hash to the anchored hash (Yellow Paper §4.3). Its ancestors are then fetched newest first in
batches by number and accepted only as the parent of the header above (``parentHash`` links,
walking backward: :mod:`node.chain.anchor`), each pair checked against the consensus rules by
the store. A batch answered from another branch (the upstream saw a reorg, or lies) breaks
the link; the rest of that stretch is then fetched by hash, where a wrong answer can only be a
lie: it is penalized and refused. Sync stops at a header already anchored, at ``floor``
(the history the node keeps), or at genesis. A batch asks only for the gap down to the next
anchored header (10 missed blocks: 10 headers, not a full batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.chain.anchor import Anchor
from node.chain.errors import ChainError, HeaderStoreError
from node.chain.header import Header, verify_header
from node.chain.header_store import HeaderStore
from node.rpc.upstream_api import Answer, Upstream, UpstreamError

RETRIES_AFTER_LIE = 2
"""Times a header is asked for again after a lie (a pool routes the retry elsewhere)."""
DEFAULT_BATCH = 128
"""Headers asked for in one JSON-RPC batch (about 1.8 kB of JSON each)."""


@dataclass(frozen=True)
class Synced:
    """What :func:`sync_anchor` did."""

    anchor: Anchor
    head: Header  # the anchor's header
    linked: int  # ancestors added
    requests: int  # upstream round trips
    reorg_depth: int  # canonical headers replaced (0: none)


def header_from_answer(answer: Answer, upstream: Upstream, method: str,
                       expected_hash: bytes | None = None) -> Header:
    """The header of an ``eth_getBlockBy*`` answer: hash-checked (and equal to
    ``expected_hash`` when given); a malformed or mismatching answer is penalized."""
    result = answer.value(method)
    if result is None:
        raise UpstreamError(f"{method}: upstream {answer.upstream} does not know the block")
    try:
        header = verify_header(result, method)
    except ChainError as exc:
        upstream.penalize(answer, f"{method}: {exc}")
        raise
    if expected_hash is not None and header.hash != expected_hash:
        upstream.penalize(answer, f"{method}: asked for 0x{expected_hash.hex()}, got "
                                  f"0x{header.hash.hex()}")
        raise UpstreamError(f"{method}: upstream {answer.upstream} answered block "
                            f"0x{header.hash.hex()} for 0x{expected_hash.hex()}")
    return header


async def fetch_header(upstream: Upstream, block_hash: bytes, *,
                       retries_after_lie: int = RETRIES_AFTER_LIE) -> Header:
    """The header with ``block_hash`` from the upstream, checked to hash to it. After a lie
    (penalized) it is asked again: a pool then prefers another upstream."""
    method = "eth_getBlockByHash"
    for attempt in range(retries_after_lie + 1):
        answer = await upstream.call(method, ["0x" + block_hash.hex(), False])
        try:
            return header_from_answer(answer, upstream, method, block_hash)
        except (ChainError, UpstreamError):
            if attempt == retries_after_lie or answer.error is not None:
                raise
    raise AssertionError("unreachable")


async def sync_anchor(anchor: Anchor, upstream: Upstream, store: HeaderStore, *,
                      final: bool = False, floor: int = 0,
                      batch: int = DEFAULT_BATCH) -> Synced:
    """Add ``anchor`` to ``store`` (its header fetched and checked) and link its ancestors
    backward down to ``floor`` or to a header already anchored; see the module docstring."""
    requests = 1
    header = store.get(anchor.hash) or await fetch_header(upstream, anchor.hash)
    insertion = store.add_anchor(anchor, header, final=final)
    linked, requests_down, reorg_depth = await link_down(header, upstream, store, floor=floor,
                                                         batch=batch)
    requests += requests_down
    if insertion.reorg:
        reorg_depth += insertion.reorg.depth
    if store.get(anchor.hash) is None:
        raise HeaderStoreError(f"anchor {anchor.describe()} was not stored")
    return Synced(anchor, header, linked, requests, reorg_depth)


async def link_down(header: Header, upstream: Upstream, store: HeaderStore, *, floor: int = 0,
                    batch: int = DEFAULT_BATCH) -> tuple[int, int, int]:
    """Link the anchored ``header``'s ancestors backward, newest first in batches of
    ``batch``, until the canonical chain is whole down to ``floor`` (each parent by hash;
    what links from an anchor is anchored). Returns (headers linked, round trips, reorg
    depth)."""
    linked = requests = reorg_depth = 0
    previous: Header | None = None
    while (lowest := store.gap_below(header.number, floor)) is not None:
        if lowest == previous:
            raise HeaderStoreError(f"sync made no progress below header {lowest.number} "
                                   f"0x{lowest.hash.hex()}")
        previous = lowest
        stop = max(floor, lowest.number - batch)
        below = store.highest_canonical_below(lowest.number)
        if below is not None and below + 1 < lowest.number:
            stop = max(stop, below + 1)  # the gap only: its bottom should link to ``below``
        numbers = range(lowest.number - 1, stop - 1, -1)
        answers = await upstream.batch(
            [("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        requests += 1
        run: list[Header] = []
        expected = lowest.parent_hash
        for answer in answers:
            try:
                above = header_from_answer(answer, upstream, "eth_getBlockByNumber")
            except (ChainError, UpstreamError):
                break  # penalized if it was a lie; the parent is then asked for by hash
            if above.hash != expected:
                break  # another branch at that height (a reorg upstream, or a lie)
            run.append(above)
            expected = above.parent_hash
        if not run:  # by hash: a wrong answer here can only be a lie
            run = [await fetch_header(upstream, lowest.parent_hash)]
            requests += 1
        insertions = store.add_many(h for h in run if store.status(h.hash) != "anchored")
        linked += len(run)
        reorg_depth += sum(i.reorg.depth for i in insertions if i.reorg is not None)
    return linked, requests, reorg_depth
