"""The queued form of an outbox entry, as ``eth_getTransactionByHash`` answers it.

A transaction the node accepted but has not seen in an anchored block is answered as
go-ethereum answers a transaction of its pool (``ethapi.newRPCPendingTransaction``,
execution-apis ``transaction.yaml``): every field decoded from the signed raw transaction
(the same fields :func:`node.rpc.blocks._transaction_json` renders for a mined one), with
``blockHash``, ``blockNumber``, ``blockTimestamp`` and ``transactionIndex`` null. ``gasPrice``
of a fee-market transaction is its ``maxFeePerGas`` as in geth (no block, so no effective
price). Nothing else is added: the entry's outbox state is ``orbital_outbox``'s business.
"""

from __future__ import annotations

from typing import Any

from node.chain.rpcjson import to_hex
from node.chain.transactions import ACCESS_LIST, LEGACY, SET_CODE, decode_transaction
from node.outbox.store import Entry


def queued_transaction_json(entry: Entry) -> dict[str, Any]:
    """``entry``'s transaction as a pending ``eth_getTransactionByHash`` result."""
    tx = decode_transaction(entry.raw)
    t = tx.tx_type
    out: dict[str, Any] = {
        "blockHash": None, "blockNumber": None, "blockTimestamp": None,
        "from": to_hex(entry.sender), "gas": to_hex(tx["gas"]), "hash": to_hex(entry.hash),
        "input": to_hex(tx["input"]), "nonce": to_hex(tx["nonce"]),
        "to": to_hex(tx["to"]) if tx["to"] else None, "transactionIndex": None,
        "value": to_hex(tx["value"]), "type": to_hex(t),
    }
    if t in (LEGACY, ACCESS_LIST):
        out["gasPrice"] = to_hex(tx["gasPrice"])
    else:
        out["maxFeePerGas"] = to_hex(tx["maxFeePerGas"])
        out["maxPriorityFeePerGas"] = to_hex(tx["maxPriorityFeePerGas"])
        out["gasPrice"] = to_hex(tx["maxFeePerGas"])  # geth: the fee cap until mined
    if t == LEGACY:
        if tx.chain_id is not None:
            out["chainId"] = to_hex(tx.chain_id)
        out["v"] = to_hex(tx["v"])
    else:
        out["chainId"] = to_hex(tx["chainId"])
        out["accessList"] = [{"address": to_hex(address),
                              "storageKeys": [to_hex(k) for k in keys]}
                             for address, keys in tx["accessList"]]
        out["v"] = out["yParity"] = to_hex(tx["yParity"])
    if t == SET_CODE:
        out["authorizationList"] = [
            {"chainId": to_hex(chain_id), "address": to_hex(address), "nonce": to_hex(nonce),
             "yParity": to_hex(parity), "r": to_hex(r), "s": to_hex(s)}
            for chain_id, address, nonce, parity, r, s in tx["authorizationList"]]
    out["r"] = to_hex(tx["r"])
    out["s"] = to_hex(tx["s"])
    return out
