"""The outbox: durable store-and-forward of raw transactions behind an intermittent link.

A satellite sees the ground a few minutes a few times a day, so ``eth_sendRawTransaction``
cannot wait for an upstream. Instead:

* :func:`~node.outbox.checks.admit` checks the raw transaction offline (size, EIP-2718
  decoding, EIP-155 chain id, EIP-2 low-s sender, EIP-1559 fee caps, intrinsic gas with
  EIP-2028/2930/3860/7702 costs and the EIP-7623 floor, nonce not below the verified
  nonce; EIP-4844 blob transactions refused) and raises
  :class:`~node.outbox.checks.OutboxRefused` worded as geth's pool;
* :meth:`Outbox.add <node.outbox.store.Outbox.add>` makes it durable (SQLite,
  ``synchronous=FULL``: fsynced) *before* the node returns its hash, online or not; same
  sender and nonce replaces only with both fee caps raised by >= 10 %;
* :func:`~node.outbox.flush.flush` broadcasts at each contact in nonce order within a time
  budget and marks entries ``included`` only on the node's verified receipts.

A certificate submission is a raw transaction too, tagged ``kind="certificate"``. The store
survives ``kill -9`` at any point; reopening it resumes where it stopped. It replaced
``wallet/queue.py``'s FIFO: ``orbital wallet queue`` and ``run-command`` use it too.
"""

from node.outbox.checks import Admitted, OutboxError, OutboxRefused, admit
from node.outbox.flush import FlushReport, Receipts, flush
from node.outbox.store import Entry, InvalidTransition, Outbox, UnknownEntry

__all__ = ["Admitted", "Entry", "FlushReport", "InvalidTransition", "Outbox", "OutboxError",
           "OutboxRefused", "Receipts", "UnknownEntry", "admit", "flush"]
