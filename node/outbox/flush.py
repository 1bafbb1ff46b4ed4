"""One contact's worth of outbox traffic: :func:`flush`.

At a contact the node calls ``flush`` with the time the pass leaves for it. In order:

1. receipts of entries sent at earlier contacts (so nothing mined is broadcast again);
2. entries never acknowledged (``queued``), then those acknowledged but not yet seen
   included (``sent``, a rebroadcast: an upstream's acknowledgement is not inclusion; once
   per contact when the node says when the contact began, ``resend_before``), each
   sender's in nonce order and only contiguous from its verified nonce
   (:meth:`~node.outbox.store.Outbox.to_send`), in JSON-RPC batches.

What this pass sends cannot be in an anchored block yet (the pass's anchor came first):
its receipts are asked for at the next refresh, not now.

Every batch's answers are committed before the next batch goes, so when the budget ends
(``asyncio.timeout``) the pass stops where it is and the next pass resumes there; a batch
cut off in flight is simply sent again: the upstream answers "already known" (counted as an
acknowledgement) or, if it was mined meanwhile, "nonce too low", which makes ``flush`` ask
for its receipt. An entry is ``included`` only on the node's ``receipts(hash)`` -- a receipt
verified against an anchored block's receiptsRoot -- never on an upstream's word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.outbox.store import Entry, Outbox
from node.rpc.upstream_api import Answer, Upstream, UpstreamError

Receipts = Callable[[bytes], Awaitable[Mapping[str, Any] | None]]
"""The node's verified receipt of a transaction hash, or None while it is not in an anchored
block (``VerifiedBlocks.receipt``)."""

log = logging.getLogger(__name__)

BATCH_SIZE = 50
RECEIPT_CONCURRENCY = 16

_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "already exists",
                  "alreadyknown")
_NONCE_TOO_LOW = ("nonce too low",)


@dataclass
class FlushReport:
    """What one pass did."""

    sent: list[bytes] = field(default_factory=list)  # acknowledged by the upstream
    included: list[bytes] = field(default_factory=list)  # verified receipts found
    failed: dict[bytes, str] = field(default_factory=dict)  # refused: the upstream's words
    remaining: int = 0  # still queued (never acknowledged) after the pass
    awaiting: int = 0  # sent, not yet seen included, after the pass
    complete: bool = False  # False: the budget ended or the link failed first
    error: str | None = None  # why the pass stopped early, if it did
    batches: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"sent": len(self.sent), "included": len(self.included),
                "failed": {"0x" + h.hex(): m for h, m in self.failed.items()},
                "remaining": self.remaining, "awaiting": self.awaiting,
                "complete": self.complete, "error": self.error, "batches": self.batches}


async def flush(outbox: Outbox, upstream: Upstream, *, budget_seconds: float,
                receipts: Receipts, batch_size: int = BATCH_SIZE,
                resend_before: float | None = None) -> FlushReport:
    """Broadcast the outbox and collect verified receipts within ``budget_seconds``.
    ``resend_before``: a ``sent`` entry acknowledged at or after this time (in this
    contact) is not broadcast again (rebroadcast once per contact, not once per refresh)."""
    report = FlushReport()
    try:
        async with asyncio.timeout(budget_seconds):
            await _check_receipts(outbox, _awaiting(outbox), receipts, report)
            queue = outbox.to_send()
            order = ([e for e in queue if e.state == "queued"]
                     + [e for e in queue if e.state == "sent" and (
                         resend_before is None or e.sent_at is None
                         or e.sent_at < resend_before)])
            for start in range(0, len(order), batch_size):
                await _send(outbox, upstream, order[start:start + batch_size], receipts, report)
        report.complete = True
    except TimeoutError:
        report.error = f"budget of {budget_seconds} s ended"
    except UpstreamError as exc:
        report.error = str(exc)
    except asyncio.CancelledError:  # LOS or shutdown: what was answered is committed
        log.info("outbox pass cut off after %d batch(es): %d sent, %d included",
                 report.batches, len(report.sent), len(report.included))
        raise
    counts = outbox.counts()
    report.remaining, report.awaiting = counts["queued"], counts["sent"]
    return report


def _awaiting(outbox: Outbox) -> list[Entry]:
    """Sent entries, and dropped ones an upstream acknowledged (they may be mined still)."""
    return outbox.entries("sent") + [e for e in outbox.entries("dropped")
                                     if e.sent_at is not None and e.block_hash is None]


async def _send(outbox: Outbox, upstream: Upstream, chunk: Sequence[Entry], receipts: Receipts,
                report: FlushReport) -> None:
    answers = await upstream.batch([("eth_sendRawTransaction", ["0x" + e.raw.hex()])
                                    for e in chunk])
    report.batches += 1
    marks: list[tuple[bytes, str | None]] = []
    nonce_low: list[Entry] = []
    for entry, answer in zip(chunk, answers, strict=True):
        message = _error_message(answer)
        if message is None or any(m in message.lower() for m in _ALREADY_KNOWN):
            marks.append((entry.hash, None))
            report.sent.append(entry.hash)
        else:
            marks.append((entry.hash, message))
            if any(m in message.lower() for m in _NONCE_TOO_LOW):
                nonce_low.append(entry)  # mined already, or its nonce taken: ask
            else:
                report.failed[entry.hash] = message
    outbox.mark_sent_many(marks)
    for entry in nonce_low:
        if not await _check_one(outbox, entry, receipts, report):
            report.failed[entry.hash] = "nonce too low and no verified receipt yet"


def _error_message(answer: Answer) -> str | None:
    if answer.error is None:
        return None
    return str(answer.error.get("message") or answer.error)


async def _check_receipts(outbox: Outbox, entries: Sequence[Entry], receipts: Receipts,
                          report: FlushReport) -> None:
    limit = asyncio.Semaphore(RECEIPT_CONCURRENCY)

    async def one(entry: Entry) -> None:
        async with limit:
            await _check_one(outbox, entry, receipts, report)

    try:
        async with asyncio.TaskGroup() as group:
            for entry in entries:
                group.create_task(one(entry))
    except* UpstreamError as failed:  # the link failed: the pass stops here, as for a send
        raise failed.exceptions[0] from None


async def _check_one(outbox: Outbox, entry: Entry, receipts: Receipts,
                     report: FlushReport) -> bool:
    if not await include_if_receipt(outbox, entry, receipts):
        return False
    report.included.append(entry.hash)
    return True


async def include_if_receipt(outbox: Outbox, entry: Entry, receipts: Receipts) -> bool:
    """Mark ``entry`` included if the node has its verified receipt; True if it did."""
    receipt = await receipts(entry.hash)
    if receipt is None:
        return False
    number, block_hash = receipt["blockNumber"], receipt["blockHash"]
    outbox.mark_included(entry.hash, int(number, 16) if isinstance(number, str) else number,
                         bytes.fromhex(block_hash.removeprefix("0x"))
                         if isinstance(block_hash, str) else block_hash)
    return True
