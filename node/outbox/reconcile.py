"""Keeping the outbox in step with the verified chain at each contact (issue #15, point 1).

:func:`flush` sends and collects receipts; around it the node (``VerifiedNode.flush_outbox``)
reconciles the outbox with what the anchored chain proves:

* :func:`expire_old` -- queued entries older than ``max_age`` become ``expired`` (never
  acknowledged by an upstream, so nothing of them is out there);
* :func:`reorged` -- an ``included`` entry whose block is no longer the canonical anchored
  block at its height (a reorg replaced it) goes back to ``sent`` and is broadcast again;
  one whose height has no canonical anchored header here (older than the history kept, or
  not back-filled yet) is left as it is: the store cannot tell;
* :func:`settle_nonces` -- for each sender with active entries, the nonce proven at the
  anchored head (EIP-1186 account proof): an active entry below it is either in a block (its
  verified receipt marks it ``included``) or its nonce was taken by another transaction
  (``dropped``, with the reason); the verified nonce is recorded so the sender's run is sent
  from it (:meth:`~node.outbox.store.Outbox.to_send`);
* :func:`finalize` -- ``included`` entries at or below the finalized anchor, whose block is
  the canonical one at their height, become ``final``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node.chain.anchor import BlockId
from node.outbox.flush import Receipts, include_if_receipt
from node.outbox.store import ACTIVE, Entry, Outbox

CanonicalHash = Callable[[int], bytes | None]
"""The canonical anchored block hash at a height, or None when the node has none there."""
VerifiedNonce = Callable[[bytes], Awaitable[int | None]]
"""A sender's nonce proven at the anchored head, or None when it cannot be had now."""


def expire_old(outbox: Outbox, now: float, max_age: float) -> list[Entry]:
    """Queued entries queued more than ``max_age`` seconds before ``now``: expired."""
    return outbox.expire(now - max_age)


def reorged(outbox: Outbox, canonical_hash: CanonicalHash) -> list[Entry]:
    """Included entries whose block a reorg removed from the canonical chain: back to sent."""
    out = []
    for entry in outbox.entries("included"):
        if entry.block_number is None:
            continue
        canonical = canonical_hash(entry.block_number)
        if canonical is not None and canonical != entry.block_hash:
            out.append(outbox.mark_reorged(entry.hash))
    return out


async def settle_nonces(outbox: Outbox, verified_nonce: VerifiedNonce, receipts: Receipts
                        ) -> tuple[list[Entry], list[Entry]]:
    """Settle every sender with active entries against its verified nonce; returns
    (entries found included, entries dropped because another transaction took the nonce)."""
    active = [e for e in outbox.entries() if e.state in ACTIVE]
    senders = list(dict.fromkeys(e.sender for e in active))
    included: list[Entry] = []
    dropped: list[Entry] = []
    for sender in senders:
        nonce = await verified_nonce(sender)
        if nonce is None:
            continue
        for entry in active:
            if entry.sender == sender and entry.nonce < nonce \
                    and await include_if_receipt(outbox, entry, receipts):
                included.append(entry)
        dropped += outbox.settle(sender, nonce)
    return included, dropped


def finalize(outbox: Outbox, finalized: BlockId | None,
             canonical_hash: CanonicalHash) -> list[Entry]:
    """Included entries at or below the finalized anchor, in its canonical chain: final."""
    if finalized is None:
        return []
    hashes = {entry.block_hash for entry in outbox.entries("included")
              if entry.block_number is not None and entry.block_number <= finalized.number
              and canonical_hash(entry.block_number) == entry.block_hash}
    hashes.discard(None)
    if not hashes:  # mark_final with no hashes would finalize every one at or below
        return []
    return outbox.mark_final(finalized.number, hashes)  # type: ignore[arg-type]
