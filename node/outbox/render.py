"""The queued form of an outbox entry, as ``eth_getTransactionByHash`` answers it.

A transaction the node accepted but has not seen in an anchored block is answered as
go-ethereum answers a transaction of its pool (``ethapi.newRPCPendingTransaction``,
execution-apis ``transaction.yaml``): every field decoded from the signed raw transaction
(:func:`node.rpc.blocks.transaction_json`, which renders a mined one too), with
``blockHash``, ``blockNumber``, ``blockTimestamp`` and ``transactionIndex`` null. ``gasPrice``
of a fee-market transaction is its ``maxFeePerGas`` as in geth (no block, so no effective
price). Nothing else is added: the entry's outbox state is ``orbital_outbox``'s business.
"""

from __future__ import annotations

from typing import Any

from node.chain.transactions import decode_transaction
from node.outbox.store import Entry
from node.rpc.blocks import transaction_json


def queued_transaction_json(entry: Entry) -> dict[str, Any]:
    """``entry``'s transaction as a pending ``eth_getTransactionByHash`` result."""
    return transaction_json(decode_transaction(entry.raw), entry.sender, None)
