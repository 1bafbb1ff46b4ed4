"""``eth_feeHistory`` from verified data (execution-apis ``eth_feeHistory``; go-ethereum
``eth/gasprice/feehistory.go`` for the reward percentiles).

Base fees and gas-used ratios come from anchored headers; the base fee of the block after the
newest is computed (EIP-1559), as are blob base fees where the fork schedule is known
(EIP-4844, EIP-7691, EIP-7892). Rewards need the transactions and receipts: each block's
effective tips (EIP-1559: ``min(maxPriorityFeePerGas, maxFeePerGas - baseFee)``, or
``gasPrice - baseFee``) sorted ascending, weighted by each transaction's gas used, read at
each requested percentile of the block's gas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.chain.forks import ChainConfig
from node.chain.header import Header
from node.chain.header_rules import (
    base_fee_per_blob_gas,
    calculate_base_fee_per_gas,
    calculate_excess_blob_gas,
)
from node.chain.receipts import Receipt
from node.chain.transactions import Transaction

MAX_BLOCKS = 1024


def effective_tip(tx: Transaction, base_fee: int) -> int:
    """What the block's producer earned per gas of ``tx`` (EIP-1559)."""
    if tx.tx_type >= 2:
        return min(tx["maxPriorityFeePerGas"], tx["maxFeePerGas"] - base_fee)
    return tx["gasPrice"] - base_fee


def rewards(header: Header, transactions: Sequence[Transaction],
            receipts: Sequence[Receipt], percentiles: Sequence[float]) -> list[int]:
    """The tips at ``percentiles`` of the block's gas (0 for an empty block)."""
    if not transactions or header.gas_used == 0:
        return [0] * len(percentiles)
    base_fee = header.base_fee_per_gas or 0
    used, previous = [], 0
    for receipt in receipts:
        used.append(receipt.cumulative_gas_used - previous)
        previous = receipt.cumulative_gas_used
    ranked = sorted(zip((effective_tip(tx, base_fee) for tx in transactions), used,
                        strict=True))
    out, index, total = [], 0, ranked[0][1]
    for p in percentiles:
        threshold = header.gas_used * p / 100
        while total < threshold and index < len(ranked) - 1:
            index += 1
            total += ranked[index][1]
        out.append(ranked[index][0])
    return out


def fee_history(headers: Sequence[Header], config: ChainConfig | None,
                block_rewards: Sequence[list[int]] | None) -> dict[str, Any]:
    """The ``eth_feeHistory`` result for consecutive anchored ``headers`` (oldest first)."""
    newest = headers[-1]
    base_fees = [h.base_fee_per_gas or 0 for h in headers]
    base_fees.append(0 if newest.base_fee_per_gas is None else calculate_base_fee_per_gas(
        newest.gas_limit, newest.gas_used, newest.base_fee_per_gas))
    out: dict[str, Any] = {
        "oldestBlock": hex(headers[0].number),
        "baseFeePerGas": [hex(f) for f in base_fees],
        "gasUsedRatio": [h.gas_used / h.gas_limit if h.gas_limit else 0.0 for h in headers],
    }
    if config is not None and newest.excess_blob_gas is not None:
        blob_fees, ratios = [], []
        for header in headers:
            schedule = config.blob_schedule_at(header.timestamp)
            if schedule is None or header.excess_blob_gas is None:
                blob_fees.append(0)
                ratios.append(0.0)
                continue
            blob_fees.append(base_fee_per_blob_gas(header.excess_blob_gas, schedule))
            ratios.append((header.blob_gas_used or 0) / schedule.max_blob_gas)
        era = config.era_at(newest.timestamp + 1)  # the rules of the next block
        if era.blobs is None:
            blob_fees.append(0)
        else:
            excess = calculate_excess_blob_gas(newest, era.blobs, era.reserve_price)
            blob_fees.append(base_fee_per_blob_gas(excess, era.blobs))
        out["baseFeePerBlobGas"] = [hex(f) for f in blob_fees]
        out["blobGasUsedRatio"] = ratios
    if block_rewards is not None:
        out["reward"] = [[hex(r) for r in block] for block in block_rewards]
    return out
