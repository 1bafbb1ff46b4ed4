"""What a raw transaction must pass before the outbox accepts it (:func:`admit`).

The outbox accepts a transaction while the link is down, so it checks everything that can be
checked without the network, and words each refusal as go-ethereum's transaction pool does
(clients match on these strings):

* size: at most :data:`MAX_TX_SIZE` bytes (128 KiB, geth's ``txMaxSize``) -- "oversized data";
* decoding through the one door, :func:`node.chain.transactions.decode_transaction`
  (EIP-2718 envelopes); blob transactions (EIP-4844, type 3) are refused: the outbox keeps no
  sidecars -- "transaction type not supported";
* chain id: EIP-155 ``v`` or the typed ``chainId`` must be this chain's; a pre-EIP-155 legacy
  transaction (``v`` 27/28) binds no chain and is replayable on every chain, so it is refused
  unless ``allow_unprotected`` -- "only replay-protected (EIP-155) transactions allowed";
* signature: the sender recovers, with ``s`` in the lower half of the curve order (EIP-2, for
  every envelope, unprotected legacy included) -- "invalid sender";
* fees: ``maxPriorityFeePerGas <= maxFeePerGas`` (EIP-1559);
* gas: the gas limit covers the intrinsic gas -- 21000, calldata 4 per zero byte and 16 per
  other byte (EIP-2028), 32000 and 2 per initcode word for a creation (EIP-2, EIP-3860, whose
  49152-byte initcode limit also applies), 2400 per access-list address and 1900 per storage
  key (EIP-2930), 25000 per authorization (EIP-7702) -- "intrinsic gas too low", and the
  calldata floor 21000 + 10 per calldata token (EIP-7623) -- "insufficient gas for floor data
  gas cost";
* nonce: not below the sender's verified nonce -- "nonce too low".

What needs state the node may not have offline (balance, the block gas limit, the base fee) is
left to the chain: such a transaction is mined as failed or never, and the outbox says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from node.chain.errors import ChainError
from node.chain.transactions import (
    BLOB,
    LEGACY,
    SECP256K1_N,
    SET_CODE,
    Transaction,
    decode_transaction,
)

MAX_TX_SIZE = 128 * 1024
"""Largest raw transaction accepted, in bytes (geth ``txMaxSize``: 4 slots of 32 KiB)."""

TX_GAS = 21_000
TX_GAS_CREATION = 53_000  # 21000 + 32000 (EIP-2)
TX_DATA_ZERO_GAS = 4
TX_DATA_NONZERO_GAS = 16  # EIP-2028
INITCODE_WORD_GAS = 2  # EIP-3860
MAX_INITCODE_SIZE = 2 * 24_576  # EIP-3860
ACCESS_LIST_ADDRESS_GAS = 2_400  # EIP-2930
ACCESS_LIST_STORAGE_KEY_GAS = 1_900  # EIP-2930
PER_EMPTY_ACCOUNT_COST = 25_000  # EIP-7702, charged per authorization
TOTAL_COST_FLOOR_PER_TOKEN = 10  # EIP-7623

Kind = Literal["transaction", "certificate"]
KINDS: tuple[Kind, ...] = ("transaction", "certificate")

JSONRPC_TX_REFUSED = -32000
"""The JSON-RPC error code geth gives every transaction-pool refusal."""


class OutboxError(Exception):
    """Base class of the outbox's errors."""


class OutboxRefused(OutboxError):
    """The transaction was not accepted; the message is the JSON-RPC error message, worded
    as geth's pool does ("nonce too low: ...", "intrinsic gas too low: ...")."""

    code = JSONRPC_TX_REFUSED


@dataclass(frozen=True)
class Admitted:
    """A transaction that passed :func:`admit`: everything the outbox stores about it."""

    raw: bytes  # the canonical encoding (EIP-2718) as received
    tx: Transaction
    hash: bytes  # keccak256(raw)
    sender: bytes  # 20 bytes, recovered with low-s (EIP-2)
    nonce: int
    max_fee: int  # maxFeePerGas, or gasPrice for legacy and EIP-2930 transactions
    max_tip: int  # maxPriorityFeePerGas, or gasPrice
    gas: int
    intrinsic_gas: int  # max(intrinsic gas, EIP-7623 floor)
    chain_id: int | None  # None: pre-EIP-155 legacy (only with allow_unprotected)
    verified_nonce: int  # the sender's nonce at the node's verified head, when admitted
    kind: Kind = "transaction"


def calldata_tokens(data: bytes) -> int:
    """EIP-7623 tokens: zero bytes count 1, other bytes 4."""
    zeros = data.count(0)
    return zeros + 4 * (len(data) - zeros)


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution (Prague): base, calldata (EIP-2028), creation and
    initcode words (EIP-2, EIP-3860), access list (EIP-2930), authorizations (EIP-7702)."""
    data: bytes = tx["input"]
    creation = tx["to"] == b""
    gas = TX_GAS_CREATION if creation else TX_GAS
    gas += calldata_tokens(data) * TX_DATA_ZERO_GAS  # 4/token == 4 per zero, 16 per non-zero
    if creation:
        gas += INITCODE_WORD_GAS * ((len(data) + 31) // 32)
    if tx.tx_type != LEGACY:
        for _address, keys in tx["accessList"]:
            gas += ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_STORAGE_KEY_GAS * len(keys)
    if tx.tx_type == SET_CODE:
        gas += PER_EMPTY_ACCOUNT_COST * len(tx["authorizationList"])
    return gas


def floor_data_gas(tx: Transaction) -> int:
    """EIP-7623 floor: 21000 + 10 per calldata token."""
    return TX_GAS + TOTAL_COST_FLOOR_PER_TOKEN * calldata_tokens(tx["input"])


def fees(tx: Transaction) -> tuple[int, int]:
    """(max fee per gas, max priority fee per gas); both are ``gasPrice`` before EIP-1559."""
    if tx.tx_type in (LEGACY, 1):
        return tx["gasPrice"], tx["gasPrice"]
    return tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]


def admit(raw: bytes, *, chain_id: int, verified_nonce: int, allow_unprotected: bool = False,
          kind: Kind = "transaction") -> Admitted:
    """Check ``raw`` (see the module docstring) and return what the outbox stores; raise
    :class:`OutboxRefused` naming the first failed check."""
    if kind not in KINDS:
        raise OutboxRefused(f"unknown outbox entry kind {kind!r} (want one of {KINDS})")
    if len(raw) > MAX_TX_SIZE:
        raise OutboxRefused(f"oversized data: transaction size {len(raw)}, limit {MAX_TX_SIZE}")
    if raw[:1] == bytes([BLOB]):
        raise OutboxRefused("transaction type not supported: blob transactions (EIP-4844) "
                            "are not queued by the outbox")
    try:
        tx = decode_transaction(raw)
        tx_chain = tx.chain_id
    except ChainError as exc:
        raise OutboxRefused(f"invalid transaction: {exc}") from None
    if tx.encoded != raw:
        raise OutboxRefused("invalid transaction: not in canonical encoding (EIP-2718)")
    if tx_chain is None:
        if not allow_unprotected:
            raise OutboxRefused("only replay-protected (EIP-155) transactions allowed: this "
                                "pre-EIP-155 transaction binds no chain (enable "
                                "allow_unprotected to queue it)")
    elif tx_chain != chain_id:
        raise OutboxRefused(f"invalid chain id for signer: transaction for chain {tx_chain}, "
                            f"this node serves chain {chain_id}")
    if tx["s"] > SECP256K1_N // 2:
        raise OutboxRefused("invalid transaction v, r, s values: s is in the upper half of "
                            "the curve order (EIP-2)")
    try:
        sender = tx.sender
    except ChainError as exc:
        raise OutboxRefused(f"invalid sender: {exc}") from None
    max_fee, max_tip = fees(tx)
    if max_tip > max_fee:
        raise OutboxRefused(f"max priority fee per gas higher than max fee per gas: "
                            f"tip {max_tip}, max fee {max_fee}")
    if tx.tx_type == SET_CODE and not tx["authorizationList"]:
        raise OutboxRefused("EIP-7702 transaction with empty auth list")
    if tx["to"] == b"" and len(tx["input"]) > MAX_INITCODE_SIZE:
        raise OutboxRefused(f"max initcode size exceeded: code size {len(tx['input'])}, "
                            f"limit {MAX_INITCODE_SIZE} (EIP-3860)")
    gas, needed, floor = tx["gas"], intrinsic_gas(tx), floor_data_gas(tx)
    if gas < needed:
        raise OutboxRefused(f"intrinsic gas too low: gas {gas}, minimum needed {needed}")
    if gas < floor:
        raise OutboxRefused(f"insufficient gas for floor data gas cost: gas {gas}, "
                            f"minimum needed {floor} (EIP-7623)")
    if tx["nonce"] < verified_nonce:
        raise OutboxRefused(f"nonce too low: address 0x{sender.hex()}, tx: {tx['nonce']} "
                            f"state: {verified_nonce}")
    return Admitted(raw=raw, tx=tx, hash=tx.hash, sender=sender, nonce=tx["nonce"],
                    max_fee=max_fee, max_tip=max_tip, gas=gas,
                    intrinsic_gas=max(needed, floor), chain_id=tx_chain,
                    verified_nonce=verified_nonce, kind=kind)
