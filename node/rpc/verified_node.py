"""The verified node: head trust, header sync, and the JSON-RPC methods it serves.

:class:`VerifiedNode` composes the parts -- an untrusted :class:`~node.rpc.upstream_api.Upstream`,
a :class:`~node.rpc.heads.HeadTrust` strategy, the :class:`~node.chain.header_store.HeaderStore`
(anchored headers only), proven state and the local EVM, verified blocks and logs -- and
declares every method it answers in :meth:`VerifiedNode.methods` (see :mod:`node.rpc.server`).

Block tags (execution-apis ``BlockNumberOrTagOrHash``, EIP-1898): ``latest`` and ``pending``
are the anchored head (the node has no mempool); ``safe``/``finalized`` the finalized anchor
when the trust mode knows finality; ``earliest`` block 0 when anchored; a number must be at
or below the anchored head (beyond it is an error saying so); ``{"blockHash": ..}`` must be an
anchored header (``requireCanonical``: on the canonical chain).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from node.chain.anchor import Anchor
from node.chain.errors import MalformedInputError
from node.chain.header import Header
from node.chain.header_rules import calculate_base_fee_per_gas
from node.chain.header_store import HeaderStore
from node.chain.rpcjson import parse_data, parse_quantity
from node.chain.transactions import decode_transaction
from node.outbox.checks import Kind as EntryKind
from node.outbox.checks import OutboxRefused, admit
from node.outbox.flush import flush
from node.outbox.reconcile import expire_old, finalize, reorged, settle_nonces
from node.outbox.render import queued_transaction_json
from node.outbox.store import ACTIVE, Outbox
from node.rpc import fees
from node.rpc.blocks import LogRangeError, UpstreamLieError, VerifiedBlocks
from node.rpc.evm import (
    CallRequest,
    EstimateGasError,
    ExecResult,
    LocalEvm,
    parse_call_request,
    parse_state_overrides,
)
from node.rpc.heads import GroundTrust, HeadTrust, TrustedHeads
from node.rpc.pending import PendingReads
from node.rpc.server import (
    EXECUTION_REVERTED,
    INVALID_PARAMS,
    RESOURCE_UNAVAILABLE,
    Handler,
    Kind,
    Method,
    RpcError,
    declare,
)
from node.rpc.sync import link_down, sync_anchor
from node.rpc.upstream_api import Upstream, UpstreamError
from node.rpc.witness import ProvenState, WitnessStore
from wallet.errors import WalletError

log = logging.getLogger(__name__)

CLIENT_VERSION = "orbital/0.1.0 (verified)"
MAX_RAW_TRANSACTION = 128 * 1024
DEFAULT_HISTORY = 256
"""Ancestors of each anchor kept linked (BLOCKHASH reaches 256 back)."""
DEFAULT_PRIORITY_FEE = 10**9
"""The tip suggested when the recent anchored blocks hold no transactions (anvil's too)."""
TIP_BLOCKS = 5
TIP_PERCENTILE = 60
STATES_KEPT = 8
MAX_PROOF_KEYS = 1024
MAX_FEE_HISTORY = 1024
FLUSH_BUDGET = 10.0
"""Seconds one outbox pass may take (a pass too short resumes at the next contact)."""
OUTBOX_MAX_AGE = 86_400.0
"""Seconds a transaction may wait in the outbox unacknowledged before it expires
(``[outbox] max_age``)."""
LINK_BACK_LIMIT = 8192
"""Blocks below the head the node links back for the receipt of its own transaction
(a day of mainnet blocks; about 64 round trips and 15 MB of headers at most)."""
EXECUTION_FAILED = -32000  # geth: a call that halted or could not run
CACHED_READS = frozenset({
    "eth_getBalance", "eth_getTransactionCount", "eth_getStorageAt", "eth_getCode",
    "eth_getProof", "eth_call", "eth_estimateGas", "eth_createAccessList",
    "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_getBlockReceipts", "eth_getLogs", "eth_feeHistory",
    "eth_gasPrice", "eth_maxPriorityFeePerGas"})
"""Reads answered from the verified cache when it holds them; queued when it does not and
no upstream answers."""


@dataclass
class VerifiedNode:
    """See the module docstring. Not thread-safe: one event loop owns it."""

    upstream: Upstream
    trust: HeadTrust
    store: HeaderStore
    chain_id: int
    history: int = DEFAULT_HISTORY
    clock: Callable[[], float] = time.time
    last_heads: TrustedHeads | None = None
    last_refresh: float | None = None
    refresh_error: str | None = None
    extra_status: dict[str, Callable[[], Any]] = field(default_factory=dict)
    observe: Callable[[str, str, int | None], None] | None = None
    """Told of every answer the node's own users take from :meth:`methods` (name, kind,
    JSON-RPC error code or None), as the RPC server tells of the answers it serves."""
    witness: WitnessStore = field(default_factory=WitnessStore)
    evm: LocalEvm | None = None  # None: no fork schedule, so no local execution
    pending: PendingReads = field(default_factory=PendingReads)
    outbox: Outbox | None = None  # None: eth_sendRawTransaction relays at once
    flush_budget: float = FLUSH_BUDGET
    contact_since: float | None = None
    """When the current contact began (set by the link task): an entry acknowledged since
    is not broadcast again in this contact. None: every flush rebroadcasts."""
    max_age: float = OUTBOX_MAX_AGE  # outbox: queued longer than this, never sent: expired
    blocks: VerifiedBlocks = field(init=False)
    _methods: dict[str, Method] | None = field(default=None, init=False, repr=False)
    _flushing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _states: OrderedDict[bytes, ProvenState] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.blocks = VerifiedBlocks(self.upstream, self.store, config=self.store.config)

    # -- trust and sync ---------------------------------------------------------------------

    async def refresh(self) -> TrustedHeads:
        """Ask the trust strategy for its anchors and link them (and their ancestors) into
        the header store. Raises what the strategy or the sync raise (nothing is half done:
        each store call commits whole)."""
        try:
            heads = await self.trust.heads()
            for anchor, final in self._anchors(heads):
                floor = max(0, anchor.number - self.history)
                await sync_anchor(anchor, self.upstream, self.store, final=final, floor=floor)
        except Exception as exc:
            self.refresh_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_heads, self.last_refresh, self.refresh_error = heads, self.clock(), None
        await self.pending.retry(self._run_method)  # a contact: what waited is fetched now
        await self.flush_outbox()
        return heads

    async def _run_method(self, name: str, params: list[Any]) -> Any:
        return await self.methods()[name].handler(params)

    @staticmethod
    def _anchors(heads: TrustedHeads) -> list[tuple[Anchor, bool]]:
        out = []
        if heads.finalized is not None:
            out.append((heads.finalized, True))
        if heads.finalized is None or heads.finalized.hash != heads.latest.hash:
            out.append((heads.latest, False))
        return out

    # -- block tags ---------------------------------------------------------------------------

    def head(self) -> Header:
        """The anchored head, or an error saying the node has none yet."""
        head = self.store.head
        if head is None:
            raise RpcError(RESOURCE_UNAVAILABLE, "no anchored head yet: the node has not "
                                                 "reached its trust source")
        return head

    def resolve(self, tag: Any) -> Header:
        """The anchored header a ``BlockNumberOrTagOrHash`` names (see the module docstring)."""
        head = self.head()
        if tag is None or tag in ("latest", "pending"):
            return head
        if tag in ("safe", "finalized"):
            final = self.store.finalized
            if final is None:
                raise RpcError(RESOURCE_UNAVAILABLE,
                               f"no {tag} block: trust mode {self.trust.mode} knows no "
                               f"finality yet")
            return self._anchored(self.store.get(final.hash), f"finalized block {final.number}")
        if tag == "earliest":
            return self._by_number(0, head)
        if isinstance(tag, dict):
            if "blockHash" in tag:
                block_hash = parse_data(tag["blockHash"], "blockHash", 32)
                header = self.store.get(block_hash)
                if header is None:
                    raise RpcError(RESOURCE_UNAVAILABLE,
                                   f"block 0x{block_hash.hex()} is not anchored")
                if tag.get("requireCanonical") and self.store.canonical_hash(
                        header.number) != block_hash:
                    raise RpcError(RESOURCE_UNAVAILABLE,
                                   f"block 0x{block_hash.hex()} is not canonical")
                return header
            if "blockNumber" in tag:
                return self._by_number(parse_quantity(tag["blockNumber"], "blockNumber", 64),
                                       head)
            raise MalformedInputError("a block object needs blockHash or blockNumber")
        if isinstance(tag, str) and tag.startswith("0x"):
            return self._by_number(parse_quantity(tag, "block", 64), head)
        raise MalformedInputError(f"bad block tag {str(tag)[:40]!r}")

    def _by_number(self, number: int, head: Header) -> Header:
        if number > head.number:
            raise RpcError(RESOURCE_UNAVAILABLE,
                           f"block {number} is beyond the anchored head {head.number}")
        return self._anchored(self.store.by_number(number), f"block {number}")

    @staticmethod
    def _anchored(header: Header | None, what: str) -> Header:
        if header is None:
            raise RpcError(RESOURCE_UNAVAILABLE,
                           f"{what} is not anchored here (older than the history kept)")
        return header

    # -- proven state ---------------------------------------------------------------------------

    def state_at(self, tag: Any) -> ProvenState:
        """The proven state after the anchored block ``tag`` names (one per block, the most
        recent :data:`STATES_KEPT` kept; all share one witness store)."""
        header = self.resolve(tag)
        state = self._states.get(header.hash)
        if state is None:
            state = ProvenState(self.upstream, header, store=self.witness)
            self._states[header.hash] = state
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        self._states.move_to_end(header.hash)
        return state

    async def _balance(self, params: list[Any]) -> str:
        address, tag = _params(params, 1, 2, "eth_getBalance(address, block)")
        proven = await self.state_at(tag).account(_address(address))
        return hex(proven.account.balance)

    async def _nonce(self, params: list[Any]) -> str:
        """The proven nonce; for ``pending``, plus the sender's contiguous queued ones."""
        address, tag = _params(params, 1, 2, "eth_getTransactionCount(address, block)")
        proven = await self.state_at(tag).account(_address(address))
        if tag == "pending" and self.outbox is not None:
            return hex(self.outbox.pending_nonce(_address(address), proven.account.nonce))
        return hex(proven.account.nonce)

    async def _storage(self, params: list[Any]) -> str:
        address, slot, tag = _params(params, 2, 3, "eth_getStorageAt(address, slot, block)")
        value = await self.state_at(tag).storage(_address(address),
                                                 parse_quantity(slot, "slot", 256))
        return "0x" + value.to_bytes(32, "big").hex()

    async def _code(self, params: list[Any]) -> str:
        address, tag = _params(params, 1, 2, "eth_getCode(address, block)")
        return "0x" + (await self.state_at(tag).code(_address(address))).hex()

    async def _proof(self, params: list[Any]) -> dict[str, Any]:
        address, keys, tag = _params(params, 2, 3, "eth_getProof(address, keys, block)")
        if not isinstance(keys, list) or len(keys) > MAX_PROOF_KEYS:
            raise RpcError(INVALID_PARAMS, f"eth_getProof: storage keys must be a list of at "
                                           f"most {MAX_PROOF_KEYS}")
        slots = [parse_quantity(k, f"keys[{i}]", 256) for i, k in enumerate(keys)]
        return await self.state_at(tag).proof(_address(address), slots)

    # -- local execution ------------------------------------------------------------------------

    def _execution(self, params: list[Any], usage: str
                   ) -> tuple[LocalEvm, ProvenState, CallRequest, Any, Callable[[int], Any]]:
        call, tag, overrides = _params(params, 1, 3, usage)
        if self.evm is None:
            raise RpcError(RESOURCE_UNAVAILABLE, "local execution needs the chain's fork "
                                                 "schedule: start the node with --chain")
        state = self.state_at(tag)
        return (self.evm, state, parse_call_request(call), parse_state_overrides(overrides),
                self._ancestor_hashes(state.header))

    def _ancestor_hashes(self, header: Header) -> Callable[[int], bytes | None]:
        """BLOCKHASH for a call on ``header``: its anchored ancestors only."""
        canonical = self.store.canonical_hash(header.number) == header.hash

        def block_hash(number: int) -> bytes | None:
            if not canonical or number >= header.number:
                return None
            return self.store.canonical_hash(number)
        return block_hash

    async def _call(self, params: list[Any]) -> str:
        evm, state, request, overrides, hashes = self._execution(
            params, "eth_call(transaction, block, stateOverrides)")
        result = await evm.call(state, request, overrides=overrides, block_hash=hashes)
        if result.success:
            return "0x" + result.output.hex()
        raise _failure(result)

    async def _estimate_gas(self, params: list[Any]) -> str:
        evm, state, request, overrides, hashes = self._execution(
            params, "eth_estimateGas(transaction, block, stateOverrides)")
        try:
            return hex(await evm.estimate_gas(state, request, overrides=overrides,
                                              block_hash=hashes))
        except EstimateGasError as exc:
            if exc.failure.revert_data is not None:
                raise _failure(exc.failure) from None
            raise RpcError(EXECUTION_FAILED, str(exc)) from None

    async def _access_list(self, params: list[Any]) -> dict[str, Any]:
        evm, state, request, overrides, hashes = self._execution(
            params, "eth_createAccessList(transaction, block, stateOverrides)")
        found = await evm.create_access_list(state, request, overrides=overrides,
                                             block_hash=hashes)
        out: dict[str, Any] = {
            "accessList": [{"address": "0x" + address.hex(),
                            "storageKeys": ["0x" + k.hex() for k in keys]}
                           for address, keys in found.access_list],
            "gasUsed": hex(found.result.gas_used)}
        if not found.result.success:
            out["error"] = found.result.error or "execution reverted"
        return out

    # -- blocks, transactions, receipts, logs, fees -----------------------------------------------

    async def _block_by_number(self, params: list[Any]) -> dict[str, Any]:
        tag, full = _params(params, 1, 2, "eth_getBlockByNumber(block, fullTransactions)")
        return await self.blocks.block(self.resolve(tag).hash, bool(full))

    async def _block_by_hash(self, params: list[Any]) -> dict[str, Any]:
        block_hash, full = _params(params, 1, 2, "eth_getBlockByHash(hash, fullTransactions)")
        return await self.blocks.block(parse_data(block_hash, "blockHash", 32), bool(full))

    async def _transaction_count(self, params: list[Any]) -> str:
        (tag,) = _params(params, 1, 1, "eth_getBlockTransactionCountByNumber(block)")
        block = await self.blocks.block(self.resolve(tag).hash, False)
        return hex(len(block["transactions"]))

    async def _transaction_count_by_hash(self, params: list[Any]) -> str:
        (block_hash,) = _params(params, 1, 1, "eth_getBlockTransactionCountByHash(hash)")
        block = await self.blocks.block(parse_data(block_hash, "blockHash", 32), False)
        return hex(len(block["transactions"]))

    async def _transaction(self, params: list[Any]) -> dict[str, Any] | None:
        """The transaction in its anchored canonical block (verified); else, if the outbox
        holds it queued or sent, its queued form (:mod:`node.outbox.render`: block fields
        null, as geth answers a pending one) -- out of contact too."""
        (tx_hash,) = _params(params, 1, 1, "eth_getTransactionByHash(hash)")
        tx_hash = parse_data(tx_hash, "transactionHash", 32)
        entry = None if self.outbox is None else self.outbox.get(tx_hash)
        if entry is None or entry.state not in ACTIVE:
            return await self.blocks.transaction(tx_hash)
        try:
            found = await self.blocks.transaction(tx_hash)
        except UpstreamError:  # out of contact: the outbox still knows it
            found = None
        return found if found is not None else queued_transaction_json(entry)

    async def _receipt(self, params: list[Any]) -> dict[str, Any] | None:
        (tx_hash,) = _params(params, 1, 1, "eth_getTransactionReceipt(hash)")
        return await self.blocks.receipt(parse_data(tx_hash, "transactionHash", 32))

    async def _block_receipts(self, params: list[Any]) -> list[dict[str, Any]]:
        (tag,) = _params(params, 1, 1, "eth_getBlockReceipts(block)")
        return await self.blocks.block_receipts(self.resolve(tag).hash)

    async def _logs(self, params: list[Any]) -> list[dict[str, Any]]:
        (query,) = _params(params, 1, 1, "eth_getLogs(filter)")
        if not isinstance(query, dict):
            raise RpcError(INVALID_PARAMS, "eth_getLogs takes a filter object")
        query = dict(query)
        if query.get("blockHash") is None:
            for key in ("fromBlock", "toBlock"):
                query[key] = hex(self.resolve(query.get(key, "latest")).number)
        elif self.store.get(parse_data(query["blockHash"], "blockHash", 32)) is None:
            raise RpcError(RESOURCE_UNAVAILABLE, "eth_getLogs: that block is not anchored")
        try:
            return await self.blocks.logs(query)
        except LogRangeError as exc:
            raise RpcError(INVALID_PARAMS, f"eth_getLogs: {exc}") from None

    async def _fee_history(self, params: list[Any]) -> dict[str, Any]:
        count, tag, percentiles = _params(
            params, 2, 3, "eth_feeHistory(blockCount, newestBlock, rewardPercentiles)")
        count = count if isinstance(count, int) else parse_quantity(count, "blockCount", 16)
        if not 1 <= count <= MAX_FEE_HISTORY:
            raise RpcError(INVALID_PARAMS, f"eth_feeHistory: blockCount must be "
                                           f"1..{MAX_FEE_HISTORY}")
        if percentiles is not None and (
                not isinstance(percentiles, list) or len(percentiles) > 100
                or not all(isinstance(p, int | float) and 0 <= p <= 100 for p in percentiles)
                or percentiles != sorted(percentiles)):
            raise RpcError(INVALID_PARAMS, "eth_feeHistory: rewardPercentiles must be "
                                           "ascending numbers in 0..100")
        newest = self.resolve(tag)
        headers = []
        for number in range(max(0, newest.number - count + 1), newest.number + 1):
            header = self.store.by_number(number)
            if header is not None:
                headers.append(header)
            else:
                headers.clear()  # keep the run of anchored headers ending at the newest
        rewards = None
        if percentiles:
            rewards = [fees.rewards(block.header, block.transactions, receipts, percentiles)
                       for block, receipts in await self.blocks.proven(headers)]
        return fees.fee_history(headers, self.store.config, rewards)

    # -- methods --------------------------------------------------------------------------------

    def methods(self) -> dict[str, Method]:
        """Every method this node answers, each declared verified, local or relayed (built
        once: the server, pending retries and ``orbital_status`` share it)."""
        if self._methods is None:
            self._methods = self._method_table()
        return self._methods

    def _method_table(self) -> dict[str, Method]:
        extra: dict[str, tuple[Kind, Handler]] = {}
        if isinstance(self.trust, GroundTrust):
            extra["orbital_submitHead"] = ("local", self._submit_head)
        table = declare({
            **extra,
            "eth_chainId": ("local", self._chain_id),
            "net_version": ("local", self._net_version),
            "web3_clientVersion": ("local", self._client_version),
            "eth_blockNumber": ("verified", self._block_number),
            "eth_getBalance": ("verified", self._balance),
            "eth_getTransactionCount": ("verified", self._nonce),
            "eth_getStorageAt": ("verified", self._storage),
            "eth_getCode": ("verified", self._code),
            "eth_getProof": ("verified", self._proof),
            "eth_getBlockByNumber": ("verified", self._block_by_number),
            "eth_getBlockByHash": ("verified", self._block_by_hash),
            "eth_getBlockTransactionCountByNumber": ("verified", self._transaction_count),
            "eth_getBlockTransactionCountByHash": ("verified",
                                                   self._transaction_count_by_hash),
            "eth_getTransactionByHash": ("verified", self._transaction),
            "eth_getTransactionReceipt": ("verified", self._receipt),
            "eth_getBlockReceipts": ("verified", self._block_receipts),
            "eth_getLogs": ("verified", self._logs),
            "eth_feeHistory": ("verified", self._fee_history),
            "eth_call": ("local", self._call),
            "eth_estimateGas": ("local", self._estimate_gas),
            "eth_createAccessList": ("local", self._access_list),
            "eth_gasPrice": ("local", self._gas_price),
            "eth_maxPriorityFeePerGas": ("local", self._priority_fee),
            "eth_sendRawTransaction": ("relayed", self._send_raw_transaction),
            "orbital_status": ("local", self._status),
            "orbital_pending": ("local", self._pending),
            "orbital_outbox": ("local", self._outbox),
        })
        return {name: replace(method, handler=self._queue_when_unreachable(name,
                                                                            method.handler))
                if name in CACHED_READS else method for name, method in table.items()}

    def _queue_when_unreachable(self, name: str, handler: Handler) -> Handler:
        """A read the verified cache cannot answer while no upstream is reachable: an error
        naming what is missing, and the read queued for the next contact
        (:mod:`node.rpc.pending`)."""
        async def read(params: list[Any]) -> Any:
            try:
                return await handler(params)
            except UpstreamError as exc:
                queued = self.pending.queue(name, params, str(exc))
                what = f"{name}({', '.join(json.dumps(p) for p in params)})"
                raise RpcError(RESOURCE_UNAVAILABLE,
                               f"{what}: not in the verified cache and no upstream answers "
                               f"({exc}); queued as pending read #{queued.id} for the next "
                               f"contact -- retry then (orbital_pending lists it)",
                               {"pending": queued.id}) from None
        return read

    async def _pending(self, params: list[Any]) -> list[dict[str, Any]]:
        return self.pending.listing()

    async def _submit_head(self, params: list[Any]) -> dict[str, Any]:
        """Ground mode: a signed head (the JSON of ``orbital ground head``) checked and kept;
        the next refresh anchors it."""
        assert isinstance(self.trust, GroundTrust)
        if len(params) != 1 or not isinstance(params[0], str | dict):
            raise RpcError(INVALID_PARAMS, "orbital_submitHead takes one signed head (JSON)")
        text = params[0] if isinstance(params[0], str) else json.dumps(params[0])
        try:
            anchor = self.trust.submit(text)
        except WalletError as exc:
            raise RpcError(INVALID_PARAMS, f"signed head refused: {exc}") from None
        await self.refresh()
        return {"number": anchor.number, "hash": "0x" + anchor.hash.hex(),
                "detail": anchor.detail}

    async def _chain_id(self, params: list[Any]) -> str:
        return hex(self.chain_id)

    async def _net_version(self, params: list[Any]) -> str:
        return str(self.chain_id)

    async def _client_version(self, params: list[Any]) -> str:
        return CLIENT_VERSION

    async def _block_number(self, params: list[Any]) -> str:
        return hex(self.head().number)

    def next_base_fee(self) -> int:
        """EIP-1559 base fee of the block after the anchored head."""
        head = self.head()
        if head.base_fee_per_gas is None:
            return 0
        return calculate_base_fee_per_gas(head.gas_limit, head.gas_used, head.base_fee_per_gas)

    async def suggested_tip(self) -> int:
        """A priority fee that got transactions in lately: the median of the
        :data:`TIP_PERCENTILE`-th percentile tips of the last :data:`TIP_BLOCKS` anchored
        blocks that hold transactions (bodies and receipts verified; go-ethereum's oracle
        reads the same percentile); :data:`DEFAULT_PRIORITY_FEE` when they hold none."""
        head = self.head()
        headers = [h for n in range(max(0, head.number - TIP_BLOCKS + 1), head.number + 1)
                   if (h := self.store.by_number(n)) is not None and h.gas_used > 0]
        tips = [fees.rewards(block.header, block.transactions, receipts, [TIP_PERCENTILE])[0]
                for block, receipts in await self.blocks.proven(headers)
                if block.transactions]
        return sorted(tips)[len(tips) // 2] if tips else DEFAULT_PRIORITY_FEE

    async def _gas_price(self, params: list[Any]) -> str:
        return hex(self.next_base_fee() + await self.suggested_tip())

    async def _priority_fee(self, params: list[Any]) -> str:
        return hex(await self.suggested_tip())

    async def _send_raw_transaction(self, params: list[Any]) -> str:
        """``eth_sendRawTransaction``: :meth:`submit_raw` of a client's transaction."""
        if len(params) != 1:
            raise RpcError(INVALID_PARAMS, "eth_sendRawTransaction takes one raw transaction")
        raw = parse_data(params[0], "transaction", max_size=MAX_RAW_TRANSACTION)
        return "0x" + (await self.submit_raw(raw)).hex()

    async def submit_raw(self, raw: bytes, kind: EntryKind = "transaction") -> bytes:
        """Decoded and checked; with an outbox, durable (fsync) before the hash is returned,
        online or not, and sent at once if the link is up, else at the next contact.
        ``kind`` tags the outbox entry (``certificate``: the mission's submissions)."""
        tx = decode_transaction(raw)
        if tx.chain_id not in (None, self.chain_id):
            raise RpcError(INVALID_PARAMS, f"transaction for chain {tx.chain_id}, this node "
                                           f"serves chain {self.chain_id}")
        sender = tx.sender  # recovers with low-s enforced; raises on a bad signature
        if self.outbox is None:
            answer = await self.upstream.call("eth_sendRawTransaction", ["0x" + raw.hex()])
            answer.value("eth_sendRawTransaction")  # an upstream refusal is the client's
            log.info("relayed %s 0x%s from 0x%s", kind, tx.hash.hex(), sender.hex())
            return tx.hash
        try:
            admitted = admit(raw, chain_id=self.chain_id,
                             verified_nonce=await self._verified_nonce(sender), kind=kind)
            entry = self.outbox.add(admitted)
        except OutboxRefused as exc:
            raise RpcError(EXECUTION_FAILED, str(exc)) from None
        log.info("queued %s 0x%s from 0x%s nonce %d", kind, entry.hash.hex(), sender.hex(),
                 entry.nonce)
        if self.upstream.reachable():  # known out of contact: the next pass sends it
            await self.flush_outbox()
        return entry.hash

    async def _verified_nonce(self, sender: bytes) -> int:
        """The sender's nonce proven at the anchored head; out of contact and not cached,
        0 (the outbox then learns the real one at the next contact and drops what it
        contradicts)."""
        try:
            return (await self.state_at("latest").account(sender)).account.nonce
        except (UpstreamError, RpcError):
            return 0

    async def flush_outbox(self) -> None:
        """One outbox pass (:mod:`node.outbox.reconcile`): expire what waited longer than
        :attr:`max_age`; put back what a reorg took out of the canonical chain; settle each
        sender against its nonce proven at the anchored head (found included, or dropped:
        nonce taken); send what is left (nonce order, within :attr:`flush_budget`) and mark
        what anchored blocks include (verified receipts); mark final what the finalized
        anchor covers. A failed pass is logged -- the entries stay for the next contact.
        One pass at a time (concurrent submissions never broadcast over each other)."""
        if self.outbox is None:
            return
        async with self._flushing:
            await self._flush_outbox(self.outbox)

    async def _flush_outbox(self, outbox: Outbox) -> None:
        expired = expire_old(outbox, self.clock(), self.max_age)
        for entry in expired:
            log.info("outbox: 0x%s expired (%s)", entry.hash.hex(), entry.reason)
        if self.store.head is None:
            return
        try:
            back = reorged(outbox, self.store.canonical_hash)
            found, dropped = await settle_nonces(outbox, self._proven_nonce,
                                                 self._outbox_receipt)
            report = await flush(outbox, self.upstream, budget_seconds=self.flush_budget,
                                 receipts=self._outbox_receipt,
                                 resend_before=self.contact_since)
            final = finalize(outbox, self.store.finalized, self.store.canonical_hash)
        except Exception as exc:  # the queue is durable: the next contact tries again
            log.warning("outbox flush failed: %s", _leaves(exc))
            return
        for entry in dropped:
            log.info("outbox: 0x%s dropped (%s)", entry.hash.hex(), entry.reason)
        if back or found or dropped or final or report.sent or report.included \
                or report.failed:
            log.info("outbox: %d sent, %d included, %d refused, %d dropped, %d reorged back, "
                     "%d final, %d queued, %d awaiting", len(report.sent),
                     len(report.included) + len(found), len(report.failed), len(dropped),
                     len(back), len(final), report.remaining, report.awaiting)

    async def _outbox_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The verified receipt of an outbox entry, or None (not mined as far as anything
        verified shows; an upstream caught lying about it is penalised, and the other
        entries' flush goes on). When an upstream places it in a block below what this node
        has linked (it was out of contact longer than its history), the anchored chain is
        first linked back down to that block (at most :data:`LINK_BACK_LIMIT` below the
        head) -- else a mined entry would look like one whose nonce another transaction
        took."""
        try:
            return await self._linked_receipt(tx_hash)
        except UpstreamLieError as exc:
            log.warning("outbox: no receipt for 0x%s: %s", tx_hash.hex(), exc)
            return None

    async def _linked_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        receipt = await self.blocks.receipt(tx_hash)
        claimed = self.blocks.unanchored_claims.get(tx_hash)
        head = self.store.head
        if receipt is not None or claimed is None or head is None \
                or not head.number - LINK_BACK_LIMIT <= claimed < head.number \
                or self.store.canonical_hash(claimed) is not None:
            return receipt
        linked, requests, _ = await link_down(head, self.upstream, self.store, floor=claimed)
        log.info("linked %d headers back to block %d in %d requests for the receipt of 0x%s",
                 linked, claimed, requests, tx_hash.hex())
        return await self.blocks.receipt(tx_hash)

    async def _proven_nonce(self, sender: bytes) -> int | None:
        """The sender's nonce proven at the anchored head; None when no upstream answers
        and it is not cached (its entries are settled at a later contact)."""
        try:
            return (await self.state_at("latest").account(sender)).account.nonce
        except UpstreamError:
            return None

    async def _outbox(self, params: list[Any]) -> list[dict[str, Any]]:
        if self.outbox is None:
            return []
        return [entry.to_json() for entry in self.outbox.entries()]

    async def _status(self, params: list[Any]) -> dict[str, Any]:
        head = self.store.head
        anchor = None if head is None else self.store.anchor_of(head.hash)
        status: dict[str, Any] = {
            "trustMode": self.trust.mode,
            "chainId": hex(self.chain_id),
            "head": None if head is None else {
                "number": head.number, "hash": "0x" + head.hash.hex(),
                "timestamp": head.timestamp,
                "age": max(0.0, self.clock() - head.timestamp),
                "source": None if anchor is None else str(anchor.source),
                "detail": None if anchor is None else anchor.detail},
            "finalized": None if self.store.finalized is None else {
                "number": self.store.finalized.number,
                "hash": "0x" + self.store.finalized.hash.hex()},
            "lastRefresh": self.last_refresh,
            "pendingReads": sum(r["state"] == "queued" for r in self.pending.listing()),
            "refreshError": self.refresh_error,
            "methods": {name: m.kind for name, m in sorted(self.methods().items())},
        }
        status["upstreams"] = self.upstream.state()
        for key, value in self.extra_status.items():
            status[key] = value()
        return status


def _leaves(exc: BaseException) -> str:
    """What failed, with an exception group's members named (its own message only says
    how many there were)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_leaves(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _params(params: list[Any], required: int, total: int, usage: str) -> list[Any]:
    """``params`` padded with None to ``total`` (optional trailing block tags), at least
    ``required`` given."""
    if not required <= len(params) <= total:
        raise RpcError(INVALID_PARAMS, f"want {usage}, got {len(params)} parameter(s)")
    return [*params, *([None] * (total - len(params)))]


def _address(value: Any) -> bytes:
    return parse_data(value, "address", 20)


ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)


def _failure(result: ExecResult) -> RpcError:
    """A call that did not succeed, as geth answers it: a revert is code 3 with the revert
    data (and an ``Error(string)`` reason in the message); anything else its error."""
    data = result.revert_data
    if data is None:
        return RpcError(EXECUTION_FAILED, result.error or "execution failed")
    message = "execution reverted"
    if data[:4] == ERROR_STRING and len(data) >= 68:
        length = int.from_bytes(data[36:68], "big")
        if 68 + length <= len(data):
            reason = data[68:68 + length].decode("utf-8", "replace")
            message = f"execution reverted: {reason}"
    return RpcError(EXECUTION_REVERTED, message, "0x" + data.hex())
