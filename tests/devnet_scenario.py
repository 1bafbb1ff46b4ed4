"""A block on anvil holding every transaction envelope the verifier must handle.

Used by the devnet tests and by ``scripts/capture_example.py`` (which records the
example ``orbital demo`` verifies). Transactions are signed with eth-account, an
implementation independent of ``node.chain``:

1. legacy without chain id (pre-EIP-155), a plain transfer;
2. legacy with EIP-155 replay protection, deploying :data:`LOGGER_INITCODE`;
3. EIP-2930 call to the contract, with an access list;
4. EIP-1559 call to the contract;
5. EIP-4844 blob transaction (one blob, with KZG commitment and proof);
6. EIP-7702 set-code transaction delegating an EOA to the contract.

All six are mined into one block (automine off, then ``evm_mine``), except that the
blob transaction goes into the next block on its own: anvil 1.7.1 builds the
``transactionsRoot`` of a block holding a blob transaction from the transaction's
network form (with blobs) -- an anvil bug noted in DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from node.chain import rlp
from node.chain.hashing import keccak256

Rpc = Callable[..., Any]

LOG_TOPIC = bytes.fromhex("5f" * 32)
"""topic0 of the contract's event."""

# Runtime: x = calldata[0:32]; sstore(0, x); sstore(caller, x); mstore(0, x);
#          log2(0, 32, LOG_TOPIC, caller); stop
LOGGER_RUNTIME = bytes.fromhex(
    "600035" "80" "80" "600055" "33" "55" "600052" "33" "7f" + LOG_TOPIC.hex()
    + "6020" "6000" "a2" "00")
# Initcode: codecopy(0, 12, len(runtime)); return(0, len(runtime))
LOGGER_INITCODE = (bytes.fromhex("61") + len(LOGGER_RUNTIME).to_bytes(2, "big")
                   + bytes.fromhex("80600c6000396000f3") + LOGGER_RUNTIME)
assert len(LOGGER_INITCODE) - len(LOGGER_RUNTIME) == 12

GWEI = 10**9


@dataclass(frozen=True)
class Scenario:
    """What :func:`mine_every_envelope` left on the devnet."""

    block_number: int  # the block with the five non-blob envelopes
    blob_block_number: int  # the block with the blob transaction
    contract: str  # address of the deployed logger
    delegated_eoa: str  # EOA that delegated to the logger (EIP-7702)
    storage_keys: tuple[str, ...]  # 32-byte slots the logger wrote, as hex
    tx_types: tuple[int, ...]  # envelope types in the main block, in order


def _send(rpc: Rpc, signed: Any) -> str:
    return rpc("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def mine_every_envelope(rpc: Rpc, private_keys: tuple[str, ...], chain_id: int) -> Scenario:
    """Send one transaction of every envelope and mine them; see the module docstring."""
    a, b, c, d = (Account.from_key(k) for k in private_keys[:4])
    nonce = {acct.address: int(rpc("eth_getTransactionCount", acct.address, "pending"), 16)
             for acct in (a, b, c, d)}
    base_fee = int(rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    max_fee = 2 * base_fee + 2 * GWEI
    rpc("evm_setAutomine", False)
    try:
        sent = []
        # 1. legacy, no chain id
        sent.append(_send(rpc, a.sign_transaction({
            "nonce": nonce[a.address], "gasPrice": max_fee, "gas": 21000,
            "to": b.address, "value": 12345, "data": b""})))
        # 2. legacy EIP-155: deploy the logger
        sent.append(_send(rpc, b.sign_transaction({
            "nonce": nonce[b.address], "gasPrice": max_fee, "gas": 200_000, "chainId": chain_id,
            "to": b"", "value": 0, "data": LOGGER_INITCODE})))
        logger = _create_address(b.address, nonce[b.address])
        # 3. EIP-2930 call with an access list
        sent.append(_send(rpc, c.sign_transaction({
            "type": 1, "chainId": chain_id, "nonce": nonce[c.address], "gasPrice": max_fee,
            "gas": 120_000, "to": logger, "value": 0, "data": _word(7),
            "accessList": [{"address": logger, "storageKeys": ["0x" + _word(0).hex()]}]})))
        # 4. EIP-1559 call
        sent.append(_send(rpc, d.sign_transaction({
            "type": 2, "chainId": chain_id, "nonce": nonce[d.address],
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": GWEI, "gas": 120_000,
            "to": logger, "value": 3, "data": _word(0xBEEF)})))
        # 6. EIP-7702: d delegates its code to the logger, c pays and calls d
        auth = d.sign_authorization({"chainId": chain_id, "address": logger,
                                     "nonce": nonce[d.address] + 1})
        sent.append(_send(rpc, c.sign_transaction({
            "type": 4, "chainId": chain_id, "nonce": nonce[c.address] + 1,
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": GWEI, "gas": 200_000,
            "to": d.address, "value": 0, "data": _word(0x7702),
            "authorizationList": [auth]})))
        rpc("evm_mine")
        block_number = int(rpc("eth_blockNumber"), 16)
        # 5. EIP-4844 blob transaction, alone in the next block (see module docstring)
        blob = b"orbital".ljust(4096 * 32, b"\0")
        sent.append(_send(rpc, a.sign_transaction({
            "type": 3, "chainId": chain_id, "nonce": nonce[a.address] + 1,
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": GWEI, "maxFeePerBlobGas": max_fee,
            "gas": 21000, "to": b.address, "value": 1, "data": b""}, blobs=[blob])))
        rpc("evm_mine")
    finally:
        rpc("evm_setAutomine", True)
    for tx_hash in sent:
        receipt = rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None or receipt["status"] != "0x1":
            raise RuntimeError(f"devnet scenario: transaction {tx_hash} failed: {receipt}")
    types = tuple(int(t["type"], 16) for t in
                  rpc("eth_getBlockByNumber", hex(block_number), True)["transactions"])
    return Scenario(block_number, block_number + 1, logger, d.address,
                    ("0x" + _word(0).hex(), "0x" + bytes(12).hex() + c.address[2:].lower(),
                     "0x" + bytes(12).hex() + d.address[2:].lower()), types)


def _create_address(sender: str, nonce: int) -> str:
    """CREATE address: keccak256(rlp([sender, nonce]))[12:] (Yellow Paper §7)."""
    return to_checksum_address(keccak256(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])
