"""Validator withdrawals (EIP-4895): ``rlp([index, validatorIndex, address, amount])``,
amount in gwei; a block's ``withdrawalsRoot`` is the ordered trie of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.chain import rlp
from node.chain.rpcjson import data, obj_at, quantity


@dataclass(frozen=True)
class Withdrawal:
    """One withdrawal from the beacon chain to an execution address (EIP-4895)."""

    index: int
    validator_index: int
    address: bytes
    amount_gwei: int

    @property
    def encoded(self) -> bytes:
        """The RLP the withdrawals trie holds."""
        return rlp.encode([self.index, self.validator_index, self.address, self.amount_gwei])


def withdrawal_from_rpc(obj: Mapping[str, Any], where: str = "withdrawal") -> Withdrawal:
    """A :class:`Withdrawal` from its JSON-RPC object (all quantities are 64-bit)."""
    obj = obj_at(obj, where)
    return Withdrawal(
        index=quantity(obj, "index", where, bits=64),
        validator_index=quantity(obj, "validatorIndex", where, bits=64),
        address=data(obj, "address", where, size=20),
        amount_gwei=quantity(obj, "amount", where, bits=64),
    )
