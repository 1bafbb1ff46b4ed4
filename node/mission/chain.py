"""What the mission reads from and sends to the chain -- only through the node's own verified
JSON-RPC methods (:meth:`VerifiedNode.methods`), never an upstream directly.

* tasks and certifications: ``eth_getLogs`` (``TaskPosted`` / ``TaskCertified`` of
  TaskAttestations) over anchored blocks: every candidate block's receipts are verified against
  its receiptsRoot, so the list is complete, not merely genuine;
* who may attest: ``eth_call activeSigners()`` on SatelliteRegistry, run by the local EVM on
  proven state at the anchored head, kept in a :class:`RegistrySnapshot` that the gossip
  validator (on the libp2p thread) reads without blocking;
* whether a task is certified: ``eth_call certifiedOutput(taskId)``;
* the transaction: nonce from ``eth_getTransactionCount(.., "pending")`` (the outbox's queued
  nonces counted), fees from ``eth_maxPriorityFeePerGas`` and the next base fee of the
  anchored head, gas from ``eth_estimateGas`` (local EVM), and the node's submission path
  behind ``eth_sendRawTransaction`` (admitted, fsynced in the outbox as a ``certificate``
  entry, flushed at the next contact).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from node.mission.store import PostedTask
from node.rpc.server import RpcError
from node.rpc.verified_node import VerifiedNode

TASK_POSTED = keccak(text="TaskPosted(bytes32,bytes32,bytes32,uint16,address)")
TASK_CERTIFIED = keccak(text="TaskCertified(bytes32,bytes32,uint64,uint256)")
ACTIVE_SIGNERS = keccak(text="activeSigners()")[:4]
CERTIFIED_OUTPUT = keccak(text="certifiedOutput(bytes32)")[:4]
SATELLITE = keccak(text="satellite(address)")[:4]
GAS_HEADROOM = 1.25
"""Gas limit = the local EVM's estimate x this."""
LOG_CHUNK = 2000
"""Blocks per ``eth_getLogs`` of a scan (under the node's max_log_range)."""


def _hx(b: bytes) -> str:
    return "0x" + b.hex()


class RegistrySnapshot:
    """SatelliteRegistry's active signers at one anchored block: a
    :class:`~node.attest.attestation.RegistryView` that never blocks (the gossip validator
    calls it on the libp2p thread); replaced whole at each pass."""

    def __init__(self, active: Iterable[bytes] = (), block: int | None = None) -> None:
        self._lock = threading.Lock()
        self._active = frozenset(bytes(a) for a in active)
        self._block = block

    def is_active(self, address: bytes) -> bool:
        with self._lock:
            return bytes(address) in self._active

    def update(self, active: Iterable[bytes], block: int) -> bool:
        """Take the set read at ``block`` (an older block is ignored); True if it changed."""
        new = frozenset(bytes(a) for a in active)
        with self._lock:
            if self._block is not None and block < self._block:
                return False
            changed = new != self._active
            self._active, self._block = new, block
        return changed

    @property
    def active(self) -> frozenset[bytes]:
        with self._lock:
            return self._active

    @property
    def block(self) -> int | None:
        with self._lock:
            return self._block


class ChainView:
    """The mission's verified reads and its one write path (see the module docstring).
    Raises what the node's methods raise (``RpcError``, ``UpstreamError``...)."""

    def __init__(self, node: VerifiedNode) -> None:
        self.node = node
        self._methods = node.methods()

    async def _rpc(self, method: str, *params: Any) -> Any:
        """A verified method of the node, counted like an answer served over RPC."""
        entry = self._methods[method]
        try:
            result = await entry.handler(list(params))
        except RpcError as exc:
            if self.node.observe is not None:
                self.node.observe(method, entry.kind, exc.code)
            raise
        if self.node.observe is not None:
            self.node.observe(method, entry.kind, None)
        return result

    def head_number(self) -> int | None:
        head = self.node.store.head
        return None if head is None else head.number

    def oldest_anchored(self, low: int, high: int) -> int | None:
        """The lowest block in ``low..high`` whose header is anchored here."""
        for number in range(low, high + 1):
            if self.node.store.by_number(number) is not None:
                return number
        return None

    async def call(self, to: bytes, data: bytes, block: int) -> bytes:
        result = await self._rpc("eth_call", {"to": _hx(to), "data": _hx(data)}, hex(block))
        return bytes.fromhex(result[2:])

    async def active_signers(self, registry: bytes, block: int) -> list[bytes]:
        (signers,) = decode(["address[]"], await self.call(registry, ACTIVE_SIGNERS, block))
        return [bytes.fromhex(a[2:]) for a in signers]

    async def satellite_name(self, registry: bytes, signer: bytes, block: int) -> str:
        """The name ``signer`` was registered under (empty: not registered)."""
        name, _, _, _ = decode(["string", "uint32", "bool", "bool"], await self.call(
            registry, SATELLITE + bytes(12) + signer, block))
        return str(name)

    async def certified_output(self, attestations: bytes, task_id: bytes, block: int) -> bytes:
        """The output TaskAttestations certified for ``task_id`` (32 zero bytes: none)."""
        return await self.call(attestations, CERTIFIED_OUTPUT + task_id, block)

    async def scan(self, attestations: bytes, low: int, high: int
                   ) -> tuple[list[PostedTask], dict[bytes, bytes]]:
        """``TaskPosted`` and ``TaskCertified`` logs of ``attestations`` in blocks
        ``low..high`` (anchored): the tasks (epoch = their block) and the certified outputs."""
        posted: list[PostedTask] = []
        certified: dict[bytes, bytes] = {}
        for start in range(low, high + 1, LOG_CHUNK):
            end = min(high, start + LOG_CHUNK - 1)
            logs = await self._rpc("eth_getLogs", {
                "address": _hx(attestations), "fromBlock": hex(start), "toBlock": hex(end),
                "topics": [[_hx(TASK_POSTED), _hx(TASK_CERTIFIED)]]})
            for entry in logs:
                topics = [bytes.fromhex(t[2:]) for t in entry["topics"]]
                data = bytes.fromhex(entry["data"][2:])
                if len(topics) != 2:
                    continue
                if topics[0] == TASK_POSTED:
                    model, inputs, quorum, _poster = decode(
                        ["bytes32", "bytes32", "uint16", "address"], data)
                    posted.append(PostedTask(topics[1], model, inputs, quorum,
                                             int(entry["blockNumber"], 16)))
                elif topics[0] == TASK_CERTIFIED:
                    output, _epoch, _signers = decode(["bytes32", "uint64", "uint256"], data)
                    certified[topics[1]] = output
        return posted, certified

    async def pending_nonce(self, address: bytes) -> int:
        return int(await self._rpc("eth_getTransactionCount", _hx(address), "pending"), 16)

    async def fees(self) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)``: the suggested tip, and twice the next
        base fee plus the tip (room for six full blocks of base-fee rises)."""
        tip = int(await self._rpc("eth_maxPriorityFeePerGas"), 16)
        return 2 * self.node.next_base_fee() + tip, tip

    async def estimate_gas(self, sender: bytes, to: bytes, data: bytes) -> int:
        gas = int(await self._rpc("eth_estimateGas",
                                  {"from": _hx(sender), "to": _hx(to), "data": _hx(data)},
                                  "latest"), 16)
        return int(gas * GAS_HEADROOM)

    async def send_raw(self, raw: bytes) -> bytes:
        """The node's own submission path (as ``eth_sendRawTransaction``), the outbox entry
        tagged ``certificate``."""
        return await self.node.submit_raw(raw, kind="certificate")

