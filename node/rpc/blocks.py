"""Blocks, transactions, receipts and logs, served only when proven.

Everything here rests on *anchored* headers (:mod:`node.chain.anchor`): a header is known
only by its hash, and its hash fixes every root it holds (Yellow Paper §4.3). A block body
fetched from the untrusted upstream is served once what it claims has been rebuilt and
compared with the anchored header (:func:`node.chain.block.verify_block`):

* the header hashes to the anchored hash -- not another block's, not one that links
  elsewhere;
* ``transactionsRoot`` from the full transactions (EIP-2718), fetched even when the client
  asked for hashes only, so the hashes served are proven too; each sender is recovered;
* ``withdrawalsRoot`` (EIP-4895); ``sha3Uncles`` from the ommer headers
  (``eth_getUncleByBlockHashAndIndex``, each hashed);
* receipts (``eth_getBlockReceipts``, or one ``eth_getTransactionReceipt`` per transaction
  when the upstream lacks it) rebuild ``receiptsRoot``, the header's ``logsBloom`` and
  ``gasUsed``; every derived field the upstream claims (``from``, ``contractAddress``,
  ``effectiveGasPrice``, ``logIndex``, ...) is compared too.

What is served is *rendered from the verified typed data*, never copied from the upstream's
JSON, so a field nothing proves cannot slip through: ``totalDifficulty`` (not in a post-Merge
header, removed from the execution-apis block schema) is not served; a receipt's
``blobGasUsed``/``blobGasPrice`` appear for blob transactions only (execution-apis
``receipt.yaml``), the price only where it is known (the minimum without excess blob gas,
else from the chain's blob schedule, EIP-4844/EIP-7691).

``eth_getLogs`` is *complete*, not merely genuine: the upstream's ``eth_getLogs`` is never
used. Candidate blocks are the anchored headers whose ``logsBloom`` has the three bits of
some filtered address and of some topic of each constrained position (a bloom has no false
negatives); their receipts are verified against ``receiptsRoot`` and every matching log is
returned, in block and log order. A log matches as in go-ethereum (``filterLogs``), Nethermind
and Besu: a filter with ``n`` topic positions matches only logs with at least ``n`` topics,
even when the trailing positions are null (anvil/reth let trailing nulls match shorter logs).

Nulls and errors: a block asked for that is not anchored (beyond the anchored head, not
back-filled, unknown hash) is a :class:`BlockNotAnchoredError`. A transaction or receipt that
is not in an anchored canonical block is null: the node has no mempool (what the upstream
calls pending is not proven to exist; transactions sent through this node go to the outbox),
and a receipt of a block beyond the anchored head stays null until an anchor reaches it --
which is what a client polling for a receipt expects. Any answer that fails verification
is a lie: the upstream is penalized (:meth:`~node.rpc.upstream_api.Upstream.penalize`) and
:class:`UpstreamLieError` raised; an upstream that answers with an error or null for an
anchored block raises :class:`~node.rpc.upstream_api.UpstreamError` (unavailable, not
penalized).

Verified blocks and receipts are cached by block hash (immutable content; a reorg changes
which hash a number resolves to, never what a hash holds), least recently used first out.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from node.chain import rlp
from node.chain.block import GAS_PER_BLOB, FieldChecks, check_receipt_fields, verify_block
from node.chain.errors import ChainError, MalformedInputError, VerificationError
from node.chain.forks import ChainConfig
from node.chain.hashing import keccak256
from node.chain.header import EMPTY_OMMERS_HASH, Header, header_to_rpc, verify_header
from node.chain.header_rules import base_fee_per_blob_gas
from node.chain.receipts import (
    MAX_TOPICS,
    MIN_BASE_FEE_PER_BLOB_GAS,
    Log,
    Receipt,
    bloom_bits,
    contract_address,
    effective_gas_price,
    receipt_from_rpc,
)
from node.chain.rpcjson import (
    array,
    obj_at,
    optional_data,
    optional_quantity,
    parse_data,
    parse_quantity,
    to_hex,
)
from node.chain.transactions import (
    ACCESS_LIST,
    BLOB,
    LEGACY,
    SET_CODE,
    Transaction,
    transaction_from_rpc,
)
from node.chain.trie import EMPTY_TRIE_ROOT
from node.chain.withdrawals import Withdrawal, withdrawal_from_rpc
from node.rpc.upstream_api import Answer, Upstream, UpstreamError

DEFAULT_MAX_LOG_RANGE = 10_000
"""Blocks one ``eth_getLogs`` may span (fromBlock..toBlock inclusive) unless configured."""
DEFAULT_BATCH_BLOCKS = 32
"""Candidate blocks whose bodies and receipts are fetched in one upstream batch."""
DEFAULT_CACHE_BLOCKS = 256
"""Verified blocks (and, separately, their receipts) kept in memory."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one upstream round trip may take."""

_METHOD_MISSING = re.compile(r"method.*(not found|not supported|unsupported|does not exist|"
                             r"not available|not implemented)", re.IGNORECASE)


class AnchoredHeaders(Protocol):
    """Anchored headers only (a :class:`~node.chain.header_store.HeaderStore` is one)."""

    def get(self, block_hash: bytes) -> Header | None:
        """The anchored header with this hash, canonical or not."""
        ...

    def by_number(self, number: int) -> Header | None:
        """The canonical anchored header at ``number``."""
        ...


# --- errors ---------------------------------------------------------------------------

class BlockNotAnchoredError(ChainError):
    """A block was asked for that no anchored header proves (beyond the anchored head, not
    back-filled yet, or an unknown hash): there is nothing to verify it against."""

    def __init__(self, message: str, *, number: int | None = None,
                 block_hash: bytes | None = None) -> None:
        self.number = number
        self.block_hash = block_hash
        super().__init__(message)


class UpstreamLieError(VerificationError):
    """The upstream answered with something that does not verify; it was penalized."""

    def __init__(self, upstream: str, what: str, cause: ChainError) -> None:
        field = cause.field if isinstance(cause, VerificationError) else "malformed"
        super().__init__(field, getattr(cause, "claimed", None), getattr(cause, "computed", None),
                         reason=str(cause))
        self.upstream = upstream
        self.what = what
        self.args = (f"upstream {upstream} lied about {what}: {cause}",)


class LogRangeError(ChainError):
    """An ``eth_getLogs`` range that is reversed or longer than the configured bound."""


# --- the log filter ---------------------------------------------------------------------

_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


@dataclass(frozen=True)
class LogFilter:
    """An ``eth_getLogs`` filter (execution-apis ``filter.yaml``) with block tags already
    resolved to numbers: either ``from_block``..``to_block`` or one ``block_hash``.

    ``addresses`` empty means any address. ``topics[i]`` is the OR-list of topics allowed
    at position ``i``, or None for any topic (a JSON null, an empty list, or a list holding
    a null, as go-ethereum reads them)."""

    from_block: int | None = None
    to_block: int | None = None
    block_hash: bytes | None = None
    addresses: tuple[bytes, ...] = ()
    topics: tuple[tuple[bytes, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        if self.block_hash is not None:
            if self.from_block is not None or self.to_block is not None:
                raise MalformedInputError("cannot specify both blockHash and "
                                          "fromBlock/toBlock, choose one or the other",
                                          where="filter")
        elif self.from_block is None or self.to_block is None:
            raise MalformedInputError("give blockHash, or both fromBlock and toBlock as "
                                      "numbers", where="filter")
        if len(self.topics) > MAX_TOPICS:
            raise MalformedInputError(f"{len(self.topics)} topic positions, at most "
                                      f"{MAX_TOPICS}", where="filter.topics")

    @classmethod
    def from_rpc(cls, obj: Any) -> LogFilter:
        """Read a JSON-RPC filter object. Block numbers may be QUANTITY strings or ints;
        tags (``latest`` ...) must have been resolved to numbers by the caller."""
        obj = obj_at(obj, "filter")
        return cls(
            from_block=_block_number(obj.get("fromBlock"), "filter.fromBlock"),
            to_block=_block_number(obj.get("toBlock"), "filter.toBlock"),
            block_hash=optional_data(obj, "blockHash", "filter", size=32),
            addresses=_addresses(obj.get("address")),
            topics=_topics(obj.get("topics")),
        )

    def matches(self, log: Log) -> bool:
        """Whether ``log`` is selected (go-ethereum ``filterLogs``)."""
        if self.addresses and log.address not in self.addresses:
            return False
        if len(self.topics) > len(log.topics):
            return False
        return all(allowed is None or topic in allowed
                   for allowed, topic in zip(self.topics, log.topics, strict=False))

    def may_match(self, logs_bloom: bytes) -> bool:
        """Whether a block with this ``logsBloom`` may hold a matching log: some address and
        some topic of each constrained position have all three bits set (Yellow Paper
        §4.3.1). False means certainly none (a bloom has no false negatives)."""
        bloom = int.from_bytes(logs_bloom, "big")
        if bloom == 0:
            return False  # no logs at all
        return all(any(bloom & mask == mask for mask in masks) for masks in self._masks)

    @cached_property
    def _masks(self) -> tuple[tuple[int, ...], ...]:
        """The bloom masks of the address set and of each constrained topic position."""
        groups = [self.addresses] if self.addresses else []
        groups += [allowed for allowed in self.topics if allowed is not None]
        return tuple(tuple(_bloom_mask(item) for item in group) for group in groups)


def _bloom_mask(item: bytes) -> int:
    mask = 0
    for bit in bloom_bits(item):
        mask |= 1 << bit
    return mask


def _block_number(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if type(value) is int:
        if not 0 <= value < 2**64:
            raise MalformedInputError(f"block number {value} is not a uint64", where=where)
        return value
    if isinstance(value, str) and value in _TAGS:
        raise MalformedInputError(f"block tag {value!r} must be resolved to a number first",
                                  where=where)
    return parse_quantity(value, where, 64)


def _addresses(value: Any) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(parse_data(a, f"filter.address[{i}]", 20) for i, a in enumerate(value))
    return (parse_data(value, "filter.address", 20),)


def _topics(value: Any) -> tuple[tuple[bytes, ...] | None, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedInputError(f"expected a JSON array, got {type(value).__name__}",
                                  where="filter.topics")
    out: list[tuple[bytes, ...] | None] = []
    for i, position in enumerate(value):
        where = f"filter.topics[{i}]"
        if position is None:
            out.append(None)
        elif isinstance(position, list):
            if not position or any(t is None for t in position):
                out.append(None)  # an empty OR-list, or one holding null, matches anything
            else:
                out.append(tuple(parse_data(t, f"{where}[{j}]", 32)
                                 for j, t in enumerate(position)))
        else:
            out.append((parse_data(position, where, 32),))
    return tuple(out)


# --- verified data ----------------------------------------------------------------------

@dataclass(frozen=True)
class VerifiedBlock:
    """A block whose every part was rebuilt and matched its anchored header."""

    header: Header
    transactions: tuple[Transaction, ...]
    senders: tuple[bytes, ...]  # recovered from each transaction's signature
    ommers: tuple[Header, ...]
    withdrawals: tuple[Withdrawal, ...] | None  # None before Shanghai (EIP-4895)

    @cached_property
    def size(self) -> int:
        """Bytes of rlp([header, transactions, ommers(, withdrawals)]): the block as the
        network sends it (typed transactions as byte strings, EIP-2718)."""
        txs = sum(len(tx.encoded) if tx.tx_type == LEGACY else _rlp_length(len(tx.encoded))
                  for tx in self.transactions)
        body = (len(self.header.rlp) + _rlp_length(txs)
                + _rlp_length(sum(len(o.rlp) for o in self.ommers)))
        if self.withdrawals is not None:
            body += _rlp_length(sum(len(w.encoded) for w in self.withdrawals))
        return _rlp_length(body)


def _rlp_length(payload: int) -> int:
    """Length of an RLP string (of more than one byte) or list with ``payload`` bytes."""
    return payload + (1 if payload < 56 else 1 + (payload.bit_length() + 7) // 8)


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class _Lru(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"cache size must be at least 1, got {size}")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> list[V]:
        """Store ``value``; return the values evicted to make room."""
        self._items[key] = value
        self._items.move_to_end(key)
        evicted = []
        while len(self._items) > self.size:
            evicted.append(self._items.popitem(last=False)[1])
        return evicted

    def __len__(self) -> int:
        return len(self._items)


# --- the service ------------------------------------------------------------------------

class VerifiedBlocks:
    """Blocks, transactions, receipts and logs from ``upstream``, proven against the anchored
    ``headers``; each method returns the JSON-RPC result to serve (see the module docstring).

    ``config`` (default: ``headers.config`` when it has one) gives the blob schedule that
    prices blob gas above the minimum."""

    def __init__(self, upstream: Upstream, headers: AnchoredHeaders, *,
                 config: ChainConfig | None = None,
                 max_log_range: int = DEFAULT_MAX_LOG_RANGE,
                 batch_blocks: int = DEFAULT_BATCH_BLOCKS,
                 cache_blocks: int = DEFAULT_CACHE_BLOCKS,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if max_log_range < 1 or batch_blocks < 1:
            raise ValueError("max_log_range and batch_blocks must be at least 1")
        self._upstream = upstream
        self._headers = headers
        self._config = config if config is not None else getattr(headers, "config", None)
        self.max_log_range = max_log_range
        self._batch_blocks = batch_blocks
        self._timeout = timeout
        self._blocks: _Lru[bytes, VerifiedBlock] = _Lru(cache_blocks)
        self._receipts: _Lru[bytes, tuple[Receipt, ...]] = _Lru(cache_blocks)
        self._tx_index: dict[bytes, tuple[bytes, int]] = {}  # tx hash -> (block hash, index)
        self._in_flight: dict[bytes, asyncio.Future[None]] = {}  # block hash -> its fetch
        self.unanchored_claims: _Lru[bytes, int] = _Lru(1024)
        """tx hash -> the block number an upstream placed it at, where this node has no
        anchored block (a claim, not proof: a reason to link back that far, nothing more)."""

    # -- eth_getBlockByNumber / eth_getBlockByHash ---------------------------------------

    async def block(self, block: int | bytes, full: bool) -> dict[str, Any]:
        """The block ``block`` (a number on the anchored canonical chain, or a 32-byte hash of
        any anchored block), with full transaction objects or their hashes."""
        verified = await self._block(self._anchored(block))
        return _block_json(verified, full)

    # -- eth_getTransactionByHash ----------------------------------------------------------

    async def transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The transaction ``tx_hash`` in its anchored canonical block; None when it is in
        none (pending, unknown, or in a block not anchored yet)."""
        found = await self._locate(tx_hash, "eth_getTransactionByHash")
        if found is None:
            return None
        header, index, claim = found
        verified = await self._block(header)
        self._check_position(verified, index, tx_hash, claim)
        if claim is not None:
            answer, obj = claim
            self._judge(answer, f"transaction 0x{tx_hash.hex()}",
                        lambda: _check_claimed_transaction(obj, verified, index))
        return _transaction_json(verified, index)

    # -- eth_getTransactionReceipt / eth_getBlockReceipts ----------------------------------

    async def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The receipt of ``tx_hash``; None unless it is in an anchored canonical block."""
        found = await self._locate(tx_hash, "eth_getTransactionReceipt")
        if found is None:
            return None
        header, index, claim = found
        ((verified, receipts),) = await self._with_receipts([header])
        self._check_position(verified, index, tx_hash, claim)
        if claim is not None:
            answer, obj = claim
            self._judge(answer, f"the receipt of 0x{tx_hash.hex()}",
                        lambda: _check_claimed_receipt(obj, verified, receipts, index,
                                                       self._config))
        return _receipt_json(verified, receipts, index, self._config)

    async def block_receipts(self, block: int | bytes) -> list[dict[str, Any]]:
        """Every receipt of the anchored block ``block`` (a number or a hash)."""
        ((verified, receipts),) = await self._with_receipts([self._anchored(block)])
        return [_receipt_json(verified, receipts, i, self._config)
                for i in range(len(receipts))]

    async def proven(self, headers: Sequence[Header]
                     ) -> list[tuple[VerifiedBlock, tuple[Receipt, ...]]]:
        """Verified blocks and their verified receipts for anchored ``headers`` (fetched in
        one batch where the caches lack them): for callers that compute from them
        (``eth_feeHistory`` rewards)."""
        return await self._with_receipts(headers)

    # -- eth_getLogs -----------------------------------------------------------------------

    async def logs(self, query: LogFilter | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every log of the anchored blocks in range that matches the filter (complete: see
        the module docstring)."""
        log_filter = query if isinstance(query, LogFilter) else LogFilter.from_rpc(query)
        candidates = [h for h in self._range(log_filter) if log_filter.may_match(h.logs_bloom)]
        out: list[dict[str, Any]] = []
        for start in range(0, len(candidates), self._batch_blocks):
            chunk = candidates[start:start + self._batch_blocks]
            for verified, receipts in await self._with_receipts(chunk):
                out += _matching_logs(verified, receipts, log_filter)
        return out

    def _range(self, log_filter: LogFilter) -> list[Header]:
        """The anchored headers the filter spans, lowest first."""
        if log_filter.block_hash is not None:
            return [self._anchored(log_filter.block_hash)]
        low, high = log_filter.from_block, log_filter.to_block
        assert low is not None and high is not None  # LogFilter guarantees it
        if low > high:
            raise LogRangeError(f"invalid block range: fromBlock {low} > toBlock {high}")
        if high - low + 1 > self.max_log_range:
            raise LogRangeError(f"block range {low}..{high} spans {high - low + 1} blocks, "
                                f"over the bound of {self.max_log_range} (max_log_range)")
        return [self._anchored(n) for n in range(low, high + 1)]

    # -- anchored headers ------------------------------------------------------------------

    def _anchored(self, block: int | bytes) -> Header:
        if isinstance(block, bytes):
            header = self._headers.get(block)
            if header is None:
                raise BlockNotAnchoredError(f"block 0x{block.hex()} is unknown: no anchored "
                                            "header has this hash", block_hash=block)
            return header
        header = self._headers.by_number(block)
        if header is not None:
            return header
        head = getattr(self._headers, "head", None)
        if isinstance(head, Header) and block > head.number:
            why = f"beyond the anchored head {head.number}"
        elif isinstance(head, Header):
            why = f"below the anchored head {head.number}, but not back-filled yet"
        else:
            why = "beyond the anchored head, or not back-filled yet"
        raise BlockNotAnchoredError(f"block {block} is not anchored: {why}", number=block)

    def _canonical(self, block_hash: bytes) -> Header | None:
        """The anchored header ``block_hash`` if it is on the canonical chain."""
        header = self._headers.get(block_hash)
        if header is None:
            return None
        canonical = self._headers.by_number(header.number)
        return header if canonical is not None and canonical.hash == block_hash else None

    # -- finding a transaction -------------------------------------------------------------

    async def _locate(self, tx_hash: bytes, method: str
                      ) -> tuple[Header, int, tuple[Answer, Mapping[str, Any]] | None] | None:
        """Where ``tx_hash`` sits: from a cached verified block, else as the upstream claims
        (its answer comes back to be judged once the block is verified)."""
        if len(tx_hash) != 32:
            raise MalformedInputError(f"a transaction hash is 32 bytes, got {len(tx_hash)}")
        cached = self._tx_index.get(tx_hash)
        if cached is not None:
            header = self._canonical(cached[0])
            if header is not None:
                return header, cached[1], None
        (answer,) = await self._batch([(method, ["0x" + tx_hash.hex()])])
        obj = answer.value(method)
        if obj is None:
            return None  # not proven absent: the upstream does not know it
        what = f"{method}(0x{tx_hash.hex()})"
        block_hash, index, number = self._judge(answer, what, lambda: _claimed_position(obj))
        if block_hash is None:
            return None  # pending: the node has no mempool
        header = self._canonical(block_hash)
        if header is None:
            if number is not None:
                self.unanchored_claims.put(tx_hash, number)
            return None  # not in an anchored canonical block (yet)
        if number is not None and number != header.number:
            self._lie(answer, what, VerificationError("blockNumber", number, header.number))
        return header, index, (answer, obj)

    def _check_position(self, verified: VerifiedBlock, index: int, tx_hash: bytes,
                        claim: tuple[Answer, Mapping[str, Any]] | None) -> None:
        txs = verified.transactions
        if index < len(txs) and txs[index].hash == tx_hash:
            return
        error = VerificationError("transactionIndex", reason=(
            f"0x{tx_hash.hex()} is not transaction {index} of block "
            f"{verified.header.number} 0x{verified.header.hash.hex()}"))
        if claim is None:  # our own index: cannot happen for an immutable block
            raise error
        self._lie(claim[0], f"the position of transaction 0x{tx_hash.hex()}", error)

    # -- fetching and verifying ------------------------------------------------------------

    async def _block(self, header: Header) -> VerifiedBlock:
        cached = self._blocks.get(header.hash)
        if cached is not None:
            return cached
        (answer,) = await self._batch([_get_block(header)])
        return await self._verify_block(header, answer)

    async def _with_receipts(self, headers: Sequence[Header]
                             ) -> list[tuple[VerifiedBlock, tuple[Receipt, ...]]]:
        """Verified blocks and receipts for ``headers``: whatever the caches lack is fetched
        in one batch (plus one for per-transaction receipts, should the upstream lack
        ``eth_getBlockReceipts``). A block another call is fetching already is waited for,
        not fetched twice (sixteen receipts of one block at once cost one download)."""
        theirs = {self._in_flight[h.hash] for h in headers if h.hash in self._in_flight}
        mine = {h.hash for h in headers if h.hash not in self._in_flight}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for block_hash in mine:
            self._in_flight[block_hash] = done
        try:
            if theirs:  # their result lands in the caches; a failure is ours to retry
                await asyncio.wait(theirs)
            return await self._fetch_with_receipts(headers)
        finally:
            for block_hash in mine:
                del self._in_flight[block_hash]
            done.set_result(None)

    async def _fetch_with_receipts(self, headers: Sequence[Header]
                                   ) -> list[tuple[VerifiedBlock, tuple[Receipt, ...]]]:
        calls: list[tuple[str, Sequence[Any]]] = []
        blocks: dict[bytes, VerifiedBlock | int] = {}  # verified, or where its call is
        receipts: dict[bytes, tuple[Receipt, ...] | int] = {}
        for header in headers:
            if header.transactions_root == header.receipts_root == EMPTY_TRIE_ROOT:
                receipts[header.hash] = ()  # no transactions: the header alone proves it
            for cache, out, call in ((self._blocks, blocks, _get_block(header)),
                                     (self._receipts, receipts, _get_receipts(header))):
                if header.hash in out:
                    continue
                cached = cache.get(header.hash)
                if cached is None:
                    out[header.hash] = len(calls)
                    calls.append(call)
                else:
                    out[header.hash] = cached
        answers = await self._batch(calls) if calls else []
        for header in headers:
            at = blocks[header.hash]
            if isinstance(at, int):
                blocks[header.hash] = await self._verify_block(header, answers[at])
        verified = {h: b for h, b in blocks.items() if isinstance(b, VerifiedBlock)}
        lacking = []  # blocks whose upstream has no eth_getBlockReceipts
        for header in headers:
            at = receipts[header.hash]
            if not isinstance(at, int):
                continue
            answer = answers[at]
            if answer.error is not None and _method_missing(answer.error):
                lacking.append(verified[header.hash])
            else:
                receipts[header.hash] = self._verify_receipts(
                    verified[header.hash], answer, answer.value("eth_getBlockReceipts"))
        if lacking:
            receipts.update(await self._receipts_one_by_one(lacking))
        out = []
        for header in headers:
            proven = receipts[header.hash]
            assert not isinstance(proven, int)
            out.append((verified[header.hash], proven))
        return out

    async def _receipts_one_by_one(self, blocks: Sequence[VerifiedBlock]
                                   ) -> dict[bytes, tuple[Receipt, ...]]:
        """Receipts by ``eth_getTransactionReceipt``, one call per transaction, one batch."""
        calls = [("eth_getTransactionReceipt", ["0x" + tx.hash.hex()])
                 for verified in blocks for tx in verified.transactions]
        answers = iter(await self._batch(calls) if calls else [])
        out = {}
        for verified in blocks:
            mine = [next(answers) for _ in verified.transactions]
            raw = [a.value("eth_getTransactionReceipt") for a in mine]
            if None in raw:
                raise UpstreamError(f"upstream {mine[raw.index(None)].upstream} has no receipt "
                                    f"for a transaction of anchored block "
                                    f"{verified.header.number}")
            out[verified.header.hash] = self._verify_receipts(verified, mine[0], raw)
        return out

    async def _verify_block(self, header: Header, answer: Answer) -> VerifiedBlock:
        raw = answer.value("eth_getBlockByHash")
        what = f"block {header.number} 0x{header.hash.hex()}"
        if raw is None:
            raise UpstreamError(f"upstream {answer.upstream} does not have anchored {what}")
        checked, ommer_hashes = self._judge(answer, what, lambda: _check_block(raw, header))
        ommers: tuple[Header, ...] = ()
        if ommer_hashes:
            ommers = await self._ommers(header, ommer_hashes, answer)
        verified = VerifiedBlock(header, checked.transactions, checked.senders, ommers,
                                 checked.withdrawals)
        for old in self._blocks.put(header.hash, verified):
            for i, tx in enumerate(old.transactions):
                if self._tx_index.get(tx.hash) == (old.header.hash, i):
                    del self._tx_index[tx.hash]
        for i, tx in enumerate(verified.transactions):
            self._tx_index[tx.hash] = (header.hash, i)
        return verified

    async def _ommers(self, header: Header, hashes: list[bytes], block_answer: Answer
                      ) -> tuple[Header, ...]:
        """The ommer headers, each hashing to its listed hash, together to ``sha3Uncles``."""
        answers = await self._batch([
            ("eth_getUncleByBlockHashAndIndex", ["0x" + header.hash.hex(), hex(i)])
            for i in range(len(hashes))])
        ommers = []
        for i, (answer, listed) in enumerate(zip(answers, hashes, strict=True)):
            raw = answer.value("eth_getUncleByBlockHashAndIndex")
            what = f"ommer {i} of block {header.number}"
            if raw is None:
                raise UpstreamError(f"upstream {answer.upstream} does not have {what}")
            ommers.append(self._judge(answer, what, lambda raw=raw, listed=listed:
                                      _check_ommer(raw, listed)))
        computed = keccak256(rlp.encode([rlp.decode(o.rlp) for o in ommers]))
        if computed != header.ommers_hash:
            self._lie(block_answer, f"the ommers of block {header.number}",
                      VerificationError("sha3Uncles", header.ommers_hash, computed))
        return tuple(ommers)

    def _verify_receipts(self, verified: VerifiedBlock, answer: Answer, raw: Any
                         ) -> tuple[Receipt, ...]:
        header = verified.header
        if raw is None:
            raise UpstreamError(f"upstream {answer.upstream} has no receipts for anchored "
                                f"block {header.number} 0x{header.hash.hex()}")
        receipts = self._judge(answer, f"the receipts of block {header.number} "
                               f"0x{header.hash.hex()}",
                               lambda: _check_receipts(raw, verified, self._config))
        self._receipts.put(header.hash, receipts)
        return receipts

    # -- upstream I/O and lies -------------------------------------------------------------

    async def _batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        try:
            async with asyncio.timeout(self._timeout):
                answers = await self._upstream.batch(calls)
        except TimeoutError:
            raise UpstreamError(f"no upstream answered {len(calls)} call(s) "
                                f"({calls[0][0]}, ...) within {self._timeout:g} s") from None
        if len(answers) != len(calls):
            raise UpstreamError(f"{len(answers)} answers to a batch of {len(calls)} calls")
        return answers

    def _judge(self, answer: Answer, what: str, check: Callable[[], T]) -> T:
        """Run ``check()``; a verification or format failure is the answer's lie."""
        try:
            return check()
        except (VerificationError, MalformedInputError) as exc:
            self._lie(answer, what, exc)

    def _lie(self, answer: Answer, what: str, cause: ChainError) -> NoReturn:
        error = UpstreamLieError(answer.upstream, what, cause)
        self._upstream.penalize(answer, f"{what}: {cause}")
        raise error


def _get_block(header: Header) -> tuple[str, list[Any]]:
    return "eth_getBlockByHash", ["0x" + header.hash.hex(), True]


def _get_receipts(header: Header) -> tuple[str, list[Any]]:
    return "eth_getBlockReceipts", ["0x" + header.hash.hex()]


def _method_missing(error: Mapping[str, Any]) -> bool:
    """Whether a JSON-RPC error says the method does not exist (EIP-1474: -32601)."""
    return error.get("code") == -32601 or bool(_METHOD_MISSING.search(
        str(error.get("message", ""))))


# --- checks (pure) ----------------------------------------------------------------------

@dataclass(frozen=True)
class _CheckedBody:
    transactions: tuple[Transaction, ...]
    senders: tuple[bytes, ...]
    withdrawals: tuple[Withdrawal, ...] | None


def _check_block(raw: Any, anchored: Header) -> tuple[_CheckedBody, list[bytes]]:
    """Verify an ``eth_getBlockByHash(hash, true)`` answer against the anchored header;
    return its body and the listed ommer hashes still to be checked."""
    report = verify_block(raw, where="block")
    if report.header.hash != anchored.hash:
        raise VerificationError("hash", report.header.hash, anchored.hash, reason=(
            f"block {anchored.number} is anchored as 0x{anchored.hash.hex()}, the upstream's "
            f"block {report.header.number} hashes to 0x{report.header.hash.hex()}"))
    if "transactionsRoot" not in report.verified:
        raise VerificationError("transactions", reason="full transaction objects were asked "
                                "for, the block lists hashes")
    senders = []
    for i, tx in enumerate(report.transactions):
        try:
            senders.append(tx.sender)
        except MalformedInputError as exc:
            raise VerificationError(f"transactions[{i}]", reason=f"signature: {exc}") from None
    withdrawals = None
    if anchored.withdrawals_root is not None:  # verify_block rebuilt withdrawalsRoot
        withdrawals = tuple(withdrawal_from_rpc(w, f"block.withdrawals[{i}]")
                            for i, w in enumerate(array(raw, "withdrawals", "block")))
    ommer_hashes: list[bytes] = []
    if "uncles" in raw:
        ommer_hashes = [parse_data(h, f"block.uncles[{i}]", 32)
                        for i, h in enumerate(array(raw, "uncles", "block"))]
    elif anchored.ommers_hash != EMPTY_OMMERS_HASH:
        raise MalformedInputError("missing field (the block has ommers)", where="block.uncles")
    if ommer_hashes and anchored.ommers_hash == EMPTY_OMMERS_HASH:
        raise VerificationError("sha3Uncles", reason=f"{len(ommer_hashes)} ommers listed, but "
                                "the header commits to none")
    body = _CheckedBody(report.transactions, tuple(senders), withdrawals)
    return body, ommer_hashes


def _check_ommer(raw: Any, listed: bytes) -> Header:
    ommer = verify_header(raw, "ommer")
    if ommer.hash != listed:
        raise VerificationError("uncles", ommer.hash, listed,
                                reason=f"ommer 0x{ommer.hash.hex()} is not the listed "
                                       f"0x{listed.hex()}")
    return ommer


def _check_receipts(raw: Any, verified: VerifiedBlock, config: ChainConfig | None
                    ) -> tuple[Receipt, ...]:
    """Verify a block's receipts: roots and positions by :func:`verify_block` over the
    verified header and transaction hashes, then the fields that follow from each verified
    transaction."""
    if not isinstance(raw, list):
        raise MalformedInputError(f"expected a JSON array of receipts, got "
                                  f"{type(raw).__name__}", where="receipts")
    report = verify_block(_block_json(verified, full=False), raw, where="block")
    checks = FieldChecks()
    first_log = 0
    for i, (obj, receipt) in enumerate(zip(raw, report.receipts, strict=True)):
        _check_receipt_derived(obj, verified, i, first_log, checks, config)
        first_log += len(receipt.logs)
    return report.receipts


def _check_receipt_derived(obj: Any, verified: VerifiedBlock, index: int, first_log: int,
                           checks: FieldChecks, config: ChainConfig | None) -> None:
    tx = verified.transactions[index]
    where = f"receipts[{index}]"
    check_receipt_fields(obj, index, verified.header, tx.hash, tx, checks,
                         first_log_index=first_log, where=where)
    claimed = optional_quantity(obj, "blobGasPrice", where)
    price = _blob_gas_price(verified.header, config)
    if claimed is not None and price is not None:
        checks.expect("receipts.blobGasPrice", f"{where}.blobGasPrice", claimed, price)


def _claimed_position(obj: Any) -> tuple[bytes | None, int, int | None]:
    """(blockHash, transactionIndex, blockNumber) of a transaction or receipt answer;
    blockHash None for a pending transaction."""
    obj = obj_at(obj, "answer")
    block_hash = optional_data(obj, "blockHash", "answer", size=32)
    if block_hash is None:
        return None, 0, None
    index = optional_quantity(obj, "transactionIndex", "answer", bits=64)
    if index is None:
        raise MalformedInputError("missing field", where="answer.transactionIndex")
    return block_hash, index, optional_quantity(obj, "blockNumber", "answer", bits=64)


def _check_claimed_transaction(obj: Any, verified: VerifiedBlock, index: int) -> None:
    """An ``eth_getTransactionByHash`` answer must be the verified transaction (its signed
    fields hash to it), with the verified sender, effective price and timestamp."""
    tx = verified.transactions[index]
    claimed = transaction_from_rpc(obj, "transaction")
    if claimed.hash != tx.hash:
        raise VerificationError("transaction", claimed.hash, tx.hash, reason=(
            f"the transaction claimed hashes to 0x{claimed.hash.hex()}, not "
            f"0x{tx.hash.hex()}"))
    checks = FieldChecks()
    claimed_hash = optional_data(obj, "hash", "transaction", size=32)
    if claimed_hash is not None:
        checks.expect("hash", "transaction.hash", claimed_hash, tx.hash)
    sender = optional_data(obj, "from", "transaction", size=20)
    if sender is not None:
        checks.expect("from", "transaction.from", sender, verified.senders[index])
    price = optional_quantity(obj, "gasPrice", "transaction")
    if price is not None and tx.tx_type not in (LEGACY, ACCESS_LIST):  # else signed
        checks.expect("gasPrice", "transaction.gasPrice", price,
                      effective_gas_price(tx, verified.header.base_fee_per_gas))
    timestamp = optional_quantity(obj, "blockTimestamp", "transaction", bits=64)
    if timestamp is not None:
        checks.expect("blockTimestamp", "transaction.blockTimestamp", timestamp,
                      verified.header.timestamp)


def _check_claimed_receipt(obj: Any, verified: VerifiedBlock, receipts: tuple[Receipt, ...],
                           index: int, config: ChainConfig | None) -> None:
    """An ``eth_getTransactionReceipt`` answer must be the receipt the receiptsRoot commits
    to, with every derived field right."""
    claimed = receipt_from_rpc(obj, "receipt")
    if claimed != receipts[index]:
        raise VerificationError("receipt", reason=(
            f"differs from receipt {index} that block {verified.header.number}'s "
            "receiptsRoot commits to"))
    first_log = sum(len(r.logs) for r in receipts[:index])
    _check_receipt_derived(obj, verified, index, first_log, FieldChecks(), config)


# --- rendering (JSON-RPC results from verified data) ------------------------------------

def _block_json(verified: VerifiedBlock, full: bool) -> dict[str, Any]:
    """execution-apis ``block.yaml``: header fields, size, transactions, ommer hashes,
    withdrawals."""
    out: dict[str, Any] = header_to_rpc(verified.header)
    out["size"] = to_hex(verified.size)
    out["transactions"] = ([_transaction_json(verified, i)
                            for i in range(len(verified.transactions))] if full else
                           [to_hex(tx.hash) for tx in verified.transactions])
    out["uncles"] = [to_hex(o.hash) for o in verified.ommers]
    if verified.withdrawals is not None:
        out["withdrawals"] = [
            {"index": to_hex(w.index), "validatorIndex": to_hex(w.validator_index),
             "address": to_hex(w.address), "amount": to_hex(w.amount_gwei)}
            for w in verified.withdrawals]
    return out


def _transaction_json(verified: VerifiedBlock, index: int) -> dict[str, Any]:
    """Transaction ``index`` of the verified block (:func:`transaction_json`)."""
    return transaction_json(verified.transactions[index], verified.senders[index],
                            (verified.header, index))


def transaction_json(tx: Transaction, sender: bytes, position: tuple[Header, int] | None
                     ) -> dict[str, Any]:
    """execution-apis ``transaction.yaml`` as go-ethereum renders it (``chainId`` for legacy
    only when EIP-155 protected; ``v`` and ``yParity`` both for typed transactions;
    ``gasPrice`` the effective price of a fee-market one, EIP-1559). ``position`` is the
    block and index holding it; None renders geth's pending form
    (``ethapi.newRPCPendingTransaction``): block fields null, ``gasPrice`` the fee cap."""
    header, index = position if position is not None else (None, None)
    t = tx.tx_type
    out: dict[str, Any] = {
        "blockHash": None if header is None else to_hex(header.hash),
        "blockNumber": None if header is None else to_hex(header.number),
        "blockTimestamp": None if header is None else to_hex(header.timestamp),
        "from": to_hex(sender), "gas": to_hex(tx["gas"]), "hash": to_hex(tx.hash),
        "input": to_hex(tx["input"]), "nonce": to_hex(tx["nonce"]),
        "to": to_hex(tx["to"]) if tx["to"] else None,
        "transactionIndex": None if index is None else to_hex(index),
        "value": to_hex(tx["value"]), "type": to_hex(t),
    }
    if t in (LEGACY, ACCESS_LIST):
        out["gasPrice"] = to_hex(tx["gasPrice"])
    else:
        out["maxFeePerGas"] = to_hex(tx["maxFeePerGas"])
        out["maxPriorityFeePerGas"] = to_hex(tx["maxPriorityFeePerGas"])
        price = (tx["maxFeePerGas"] if header is None
                 else effective_gas_price(tx, header.base_fee_per_gas))
        if price is not None:
            out["gasPrice"] = to_hex(price)
    if t == LEGACY:
        if tx.chain_id is not None:
            out["chainId"] = to_hex(tx.chain_id)
        out["v"] = to_hex(tx["v"])
    else:
        out["chainId"] = to_hex(tx["chainId"])
        out["accessList"] = [{"address": to_hex(address), "storageKeys": [to_hex(k) for k in keys]}
                             for address, keys in tx["accessList"]]
        out["v"] = out["yParity"] = to_hex(tx["yParity"])
    if t == BLOB:
        out["maxFeePerBlobGas"] = to_hex(tx["maxFeePerBlobGas"])
        out["blobVersionedHashes"] = [to_hex(h) for h in tx["blobVersionedHashes"]]
    if t == SET_CODE:
        out["authorizationList"] = [
            {"chainId": to_hex(chain_id), "address": to_hex(address), "nonce": to_hex(nonce),
             "yParity": to_hex(parity), "r": to_hex(r), "s": to_hex(s)}
            for chain_id, address, nonce, parity, r, s in tx["authorizationList"]]
    out["r"] = to_hex(tx["r"])
    out["s"] = to_hex(tx["s"])
    return out


def _blob_gas_price(header: Header, config: ChainConfig | None) -> int | None:
    """The blob base fee of ``header`` (EIP-4844): the minimum without excess blob gas, else
    from the fork's update fraction (EIP-7691), when the chain's schedule is known."""
    excess = header.excess_blob_gas
    if excess is None:
        return None
    if excess == 0:
        return MIN_BASE_FEE_PER_BLOB_GAS
    schedule = config.blob_schedule_at(header.timestamp) if config is not None else None
    return None if schedule is None else base_fee_per_blob_gas(excess, schedule)


def _receipt_json(verified: VerifiedBlock, receipts: tuple[Receipt, ...], index: int,
                  config: ChainConfig | None) -> dict[str, Any]:
    """execution-apis ``receipt.yaml`` for receipt ``index``, every derived field computed
    from the verified block (Yellow Paper §7 for ``contractAddress``)."""
    header = verified.header
    receipt = receipts[index]
    tx = verified.transactions[index]
    sender = verified.senders[index]
    previous = receipts[index - 1].cumulative_gas_used if index else 0
    first_log = sum(len(r.logs) for r in receipts[:index])
    creation = not tx["to"]
    out: dict[str, Any] = {
        "blockHash": to_hex(header.hash), "blockNumber": to_hex(header.number),
        "contractAddress": to_hex(contract_address(sender, tx["nonce"])) if creation else None,
        "cumulativeGasUsed": to_hex(receipt.cumulative_gas_used), "from": to_hex(sender),
        "gasUsed": to_hex(receipt.cumulative_gas_used - previous),
        "logs": [_log_json(log, verified, index, first_log + j)
                 for j, log in enumerate(receipt.logs)],
        "logsBloom": to_hex(receipt.logs_bloom), "to": None if creation else to_hex(tx["to"]),
        "transactionHash": to_hex(tx.hash), "transactionIndex": to_hex(index),
        "type": to_hex(tx.tx_type),
    }
    price = effective_gas_price(tx, header.base_fee_per_gas)
    if price is not None:
        out["effectiveGasPrice"] = to_hex(price)
    if isinstance(receipt.outcome, bytes):
        out["root"] = to_hex(receipt.outcome)  # before Byzantium (EIP-658)
    else:
        out["status"] = to_hex(receipt.outcome)
    if tx.tx_type == BLOB:
        out["blobGasUsed"] = to_hex(len(tx["blobVersionedHashes"]) * GAS_PER_BLOB)
        blob_price = _blob_gas_price(header, config)
        if blob_price is not None:
            out["blobGasPrice"] = to_hex(blob_price)
    return out


def _log_json(log: Log, verified: VerifiedBlock, tx_index: int, log_index: int
              ) -> dict[str, Any]:
    header = verified.header
    return {
        "address": to_hex(log.address), "topics": [to_hex(t) for t in log.topics],
        "data": to_hex(log.data), "blockNumber": to_hex(header.number),
        "transactionHash": to_hex(verified.transactions[tx_index].hash),
        "transactionIndex": to_hex(tx_index), "blockHash": to_hex(header.hash),
        "blockTimestamp": to_hex(header.timestamp), "logIndex": to_hex(log_index), "removed": False,
    }


def _matching_logs(verified: VerifiedBlock, receipts: tuple[Receipt, ...],
                   log_filter: LogFilter) -> list[dict[str, Any]]:
    out = []
    log_index = 0
    for i, receipt in enumerate(receipts):
        for log in receipt.logs:
            if log_filter.matches(log):
                out.append(_log_json(log, verified, i, log_index))
            log_index += 1
    return out
