"""Proven state of one anchored block: a witness of trie nodes and code fetched on demand.

The node never holds the state; it fetches what a request needs from an untrusted upstream
with ``eth_getProof`` (EIP-1186) and ``eth_getCode`` and keeps only what it verified:

* :class:`WitnessStore` -- trie nodes and contract code, each keyed by keccak256 computed
  here (Yellow Paper appendix D: a node's reference is its hash; an account's ``codeHash``
  is keccak256 of its code). Only nodes of proofs that verified against the anchored
  ``stateRoot`` enter it, so every node in it is reachable from a state root the caller
  trusts, and a forged node could only be stored under the hash of its own bytes, where no
  walk from that root ever looks. The store is append-only, so a worker process can
  mirror it by receiving only the entries added since it last synced
  (:meth:`WitnessStore.entries_since`).
* :class:`ProvenState` -- the state of one block whose header the caller anchored
  (:mod:`node.chain.anchor`). It answers :meth:`~ProvenState.account`,
  :meth:`~ProvenState.storage`, :meth:`~ProvenState.code` and :meth:`~ProvenState.proof`
  (the EIP-1186 answer to serve, rebuilt from the witness), fetching what is missing in one
  batch of calls and caching the proven values. An absent account or slot is *proven*
  absent (the proof ends off the key's path), never assumed zero.

An answer that does not verify is a lie: the upstream is penalized
(:meth:`node.rpc.upstream_api.Upstream.penalize`) and :class:`StateAnswerError` names what
was wrong. The good answers of the same batch are kept; the bad one never reaches a caller.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from node.chain import rlp
from node.chain.errors import ChainError, MalformedInputError, VerificationError
from node.chain.hashing import EMPTY_KECCAK, keccak256
from node.chain.header import Header
from node.chain.proof import (
    MAX_STATE_NODE_BYTES,
    ProvenAccount,
    parse_account_proof,
    verify_parsed_account_proof,
    verify_proof,
)
from node.chain.rpcjson import parse_data, to_hex
from node.chain.trie import EMPTY_TRIE_ROOT, decode_hex_prefix, nibbles
from node.rpc.upstream_api import Answer, Upstream

MAX_CALLS_PER_BATCH = 128
"""Calls sent in one JSON-RPC batch; a larger need is split into batches sent together."""
MAX_CODE_BYTES = 49_152 * 2
"""Largest code accepted from ``eth_getCode``: EIP-170 limits deployed code to 24,576 bytes
and EIP-3860 initcode to 49,152; twice the latter leaves room for a future fork."""

_tokens = itertools.count(1)


class StateAnswerError(VerificationError):
    """An upstream's ``eth_getProof`` or ``eth_getCode`` answer did not prove what it
    claimed against the anchored state root (the upstream was penalized for it)."""

    def __init__(self, method: str, subject: str, block: int, upstream: str,
                 cause: str) -> None:
        self.method = method
        self.subject = subject
        self.upstream = upstream
        super().__init__(method, reason=f"{subject} at block {block} from upstream "
                                        f"{upstream}: {cause}")


class WitnessStore:
    """Trie nodes and code, each stored under keccak256 of its bytes computed here.

    Content-addressed, so nodes of several blocks may share one store soundly: a walk from
    a trusted root only ever follows hashes to the bytes that hash to them.
    """

    def __init__(self) -> None:
        self.token = next(_tokens)
        """Identifies this store to a worker process mirroring it (unique per process)."""
        self._values: dict[bytes, bytes] = {}
        self._log: list[bytes] = []  # hashes in the order they were added
        self.size_bytes = 0

    def add(self, value: bytes) -> bytes:
        """Store ``value`` under keccak256(value); return the hash."""
        key = keccak256(value)
        if key not in self._values:
            self._values[key] = value
            self._log.append(key)
            self.size_bytes += len(value)
        return key

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._log)

    def entries_since(self, offset: int) -> list[tuple[bytes, bytes]]:
        """The (hash, value) pairs added after the first ``offset`` ones."""
        return [(key, self._values[key]) for key in self._log[offset:]]

    def hashes(self) -> frozenset[bytes]:
        return frozenset(self._values)


def collect_proof(store: WitnessStore, root: bytes, key: bytes) -> list[bytes] | None:
    """The EIP-1186 proof of ``key`` (already hashed: keccak256 of an address or slot) in
    the trie under ``root``, rebuilt from ``store``: the nodes referenced by hash on the
    key's path, down to its leaf or to where the path proves it absent. ``None`` when a
    node on the path is not in the store."""
    if root == EMPTY_TRIE_ROOT:
        return []
    path = nibbles(key)
    pos = 0
    nodes: list[bytes] = []
    ref: rlp.Item = root
    while True:
        if isinstance(ref, bytes):
            encoded = store.get(ref)
            if encoded is None:
                return None
            nodes.append(encoded)
            node = rlp.decode(encoded)
            if not isinstance(node, list):  # the empty trie's root node
                return nodes
        else:
            node = ref  # embedded in its parent (RLP shorter than 32 bytes)
        if len(node) == 17:
            if pos == len(path):
                return nodes
            ref = node[path[pos]]
            pos += 1
            if ref == b"":
                return nodes
            continue
        segment, is_leaf = decode_hex_prefix(node[0])  # type: ignore[arg-type]
        if is_leaf or path[pos: pos + len(segment)] != segment:
            return nodes
        pos += len(segment)
        ref = node[1]


@dataclass(frozen=True)
class StateNeeds:
    """What a computation needs proven: accounts, storage slots (32-byte keys), code."""

    accounts: frozenset[bytes] = frozenset()  # 20-byte addresses
    slots: frozenset[tuple[bytes, bytes]] = frozenset()  # (address, 32-byte key)
    codes: frozenset[bytes] = frozenset()  # addresses whose code is needed

    def __bool__(self) -> bool:
        return bool(self.accounts or self.slots or self.codes)

    def __or__(self, other: StateNeeds) -> StateNeeds:
        return StateNeeds(self.accounts | other.accounts, self.slots | other.slots,
                          self.codes | other.codes)


@dataclass
class FetchStats:
    """What a :class:`ProvenState` asked its upstream for (for metrics and benchmarks)."""

    round_trips: int = 0  # batches sent
    proofs: int = 0  # eth_getProof calls
    codes: int = 0  # eth_getCode calls
    lies: list[str] = field(default_factory=list)  # what each penalty was for


class ProvenState:
    """The state after one anchored block, proven piece by piece on demand.

    ``header`` must be a header the caller anchored (an anchor or an ancestor of one): its
    ``state_root`` is the only thing trusted here. Requests name the block by hash
    (EIP-1898 ``{"blockHash": ...}``) so that an honest upstream on another branch answers
    "unknown block" instead of a proof against another root.

    After a lie (the upstream penalized), what is still missing is asked for again up to
    ``retries_after_lie`` times: a pool of upstreams routes it away from the liar, and a
    lone upstream that lies again fails the request with :class:`StateAnswerError`.
    """

    def __init__(self, upstream: Upstream, header: Header, *,
                 store: WitnessStore | None = None, retries_after_lie: int = 1) -> None:
        self.upstream = upstream
        self.retries_after_lie = retries_after_lie
        self.header = header
        self.store = store if store is not None else WitnessStore()
        self.stats = FetchStats()
        self.block_hashes: dict[int, bytes] = {}
        """BLOCKHASH answers for calls on this block, as the caller resolved them from its
        anchored headers (:mod:`node.rpc.evm`)."""
        self._accounts: dict[bytes, ProvenAccount] = {}
        self._slots: dict[tuple[bytes, bytes], int] = {}
        self._codes: dict[bytes, bytes] = {}  # address -> code, checked against codeHash
        self._pending: dict[tuple[Any, ...], asyncio.Future[None]] = {}

    @property
    def state_root(self) -> bytes:
        return self.header.state_root

    @property
    def block_ref(self) -> dict[str, str]:
        """The block parameter of every request (EIP-1898)."""
        return {"blockHash": to_hex(self.header.hash)}

    # -- what is already proven ---------------------------------------------------------

    def known_account(self, address: bytes) -> ProvenAccount | None:
        return self._accounts.get(address)

    def known_storage(self, address: bytes, key: bytes) -> int | None:
        return self._slots.get((address, key))

    def known_code(self, address: bytes) -> bytes | None:
        code = self._codes.get(address)
        if code is not None:
            return code
        proven = self._accounts.get(address)
        if proven is None:
            return None
        if proven.account.code_hash == EMPTY_KECCAK:
            return b""
        return self.store.get(proven.account.code_hash)  # the same code seen elsewhere

    def missing(self, needs: StateNeeds) -> StateNeeds:
        """The part of ``needs`` not proven yet."""
        return StateNeeds(
            frozenset(a for a in needs.accounts if a not in self._accounts),
            frozenset(s for s in needs.slots if s not in self._slots),
            frozenset(a for a in needs.codes if self.known_code(a) is None))

    # -- proven answers -----------------------------------------------------------------

    async def account(self, address: bytes) -> ProvenAccount:
        """The proven account at ``address`` (``exists`` False: proven absent, and then
        the empty account). The result's ``storage`` is empty; see :meth:`storage`."""
        _check_address(address)
        await self.ensure(StateNeeds(accounts=frozenset({address})))
        return self._accounts[address]

    async def storage(self, address: bytes, slot: int | bytes) -> int:
        """The proven value of a storage slot (0 when proven absent)."""
        _check_address(address)
        key = slot_key(slot)
        await self.ensure(StateNeeds(slots=frozenset({(address, key)})))
        return self._slots[(address, key)]

    async def code(self, address: bytes) -> bytes:
        """The code at ``address``, checked: keccak256(code) == the proven codeHash."""
        _check_address(address)
        await self.ensure(StateNeeds(codes=frozenset({address})))
        code = self.known_code(address)
        assert code is not None
        return code

    async def proof(self, address: bytes, slots: Iterable[int | bytes] = ()) -> dict[str, Any]:
        """The ``eth_getProof`` result to serve (EIP-1186), rebuilt from proven nodes and
        checked against the state root once more before it leaves."""
        _check_address(address)
        keys = [slot_key(s) for s in slots]
        await self.ensure(StateNeeds(accounts=frozenset({address}),
                                     slots=frozenset((address, k) for k in keys)))
        proven = self._accounts[address].account
        account_nodes = collect_proof(self.store, self.state_root, keccak256(address))
        assert account_nodes is not None, "a proven account's path is in the witness"
        verify_proof(self.state_root, keccak256(address), account_nodes, "accountProof",
                     MAX_STATE_NODE_BYTES)
        storage = []
        for key in keys:
            nodes = collect_proof(self.store, proven.storage_root, keccak256(key))
            assert nodes is not None, "a proven slot's path is in the witness"
            verify_proof(proven.storage_root, keccak256(key), nodes, "storageProof",
                         MAX_STATE_NODE_BYTES)
            storage.append({"key": to_hex(key), "value": hex(self._slots[(address, key)]),
                            "proof": [to_hex(n) for n in nodes]})
        return {
            "address": to_hex(address),
            "accountProof": [to_hex(n) for n in account_nodes],
            "balance": hex(proven.balance),
            "codeHash": to_hex(proven.code_hash),
            "nonce": hex(proven.nonce),
            "storageHash": to_hex(proven.storage_root),
            "storageProof": storage,
        }

    # -- fetching -----------------------------------------------------------------------

    async def ensure(self, needs: StateNeeds) -> None:
        """Prove everything in ``needs`` that is not proven yet, in one round of batched
        calls (requests already in flight for another caller are awaited, not repeated).
        Raises :class:`StateAnswerError` when an answer is a lie and
        :class:`~node.rpc.upstream_api.UpstreamError` when the upstream cannot answer."""
        for _ in range(3):  # our own fetch, or at most a couple of others' in flight
            todo = self.missing(needs)
            if not todo:
                return
            keys = _keys(todo)
            waiting = {self._pending[k] for k in keys if k in self._pending}
            mine = StateNeeds(
                frozenset(a for a in todo.accounts if ("a", a) not in self._pending),
                frozenset(s for s in todo.slots if ("s", *s) not in self._pending),
                frozenset(a for a in todo.codes if ("c", a) not in self._pending))
            if mine:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                mine_keys = _keys(mine)
                for k in mine_keys:
                    self._pending[k] = done
                try:
                    await self._fetch_retrying(mine)
                finally:
                    for k in mine_keys:
                        self._pending.pop(k, None)
                    done.set_result(None)
            for future in waiting:
                await future
        todo = self.missing(needs)
        if todo:  # another caller's fetch failed: fetch it ourselves, seeing its error
            await self._fetch_retrying(todo)

    async def _fetch_retrying(self, needs: StateNeeds) -> None:
        for attempt in range(self.retries_after_lie + 1):
            try:
                await self._fetch(needs)
                return
            except StateAnswerError:
                if attempt == self.retries_after_lie:
                    raise
            needs = self.missing(needs)  # the batch's good answers are kept

    async def _fetch(self, needs: StateNeeds) -> None:
        slots_of: dict[bytes, set[bytes]] = {}
        for address in needs.accounts | needs.codes:
            slots_of.setdefault(address, set())
        for address, key in needs.slots:
            slots_of.setdefault(address, set()).add(key)
        calls: list[tuple[str, list[Any]]] = []
        subjects: list[tuple[str, bytes, tuple[bytes, ...]]] = []
        for address, keys in sorted(slots_of.items()):
            if address in self._accounts and not keys:
                continue  # only its code is needed, and the account is proven already
            ordered = tuple(sorted(keys))
            calls.append(("eth_getProof", [to_hex(address), [to_hex(k) for k in ordered],
                                           self.block_ref]))
            subjects.append(("proof", address, ordered))
        for address in sorted(needs.codes):
            calls.append(("eth_getCode", [to_hex(address), self.block_ref]))
            subjects.append(("code", address, ()))
        if not calls:
            return
        chunks = [range(i, min(i + MAX_CALLS_PER_BATCH, len(calls)))
                  for i in range(0, len(calls), MAX_CALLS_PER_BATCH)]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.upstream.batch([calls[i] for i in chunk]))
                         for chunk in chunks]
        except ExceptionGroup as errors:  # one line for the caller, not a group
            raise errors.exceptions[0] from None
        answers = [a for task in tasks for a in task.result()]
        self.stats.round_trips += len(chunks)
        first_error: ChainError | None = None
        codes: list[tuple[bytes, Answer]] = []
        for (kind, address, keys), answer in zip(subjects, answers, strict=True):
            if kind == "code":
                codes.append((address, answer))
                continue
            self.stats.proofs += 1
            try:
                self._accept_proof(address, keys, answer)
            except ChainError as exc:  # keep the batch's good answers before raising
                first_error = first_error or exc
        for address, answer in codes:  # after the proofs: the codeHash must be proven first
            self.stats.codes += 1
            try:
                self._accept_code(address, answer)
            except ChainError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _lie(self, answer: Answer, method: str, subject: str, cause: str) -> StateAnswerError:
        error = StateAnswerError(method, subject, self.header.number, answer.upstream, cause)
        self.stats.lies.append(str(error))
        self.upstream.penalize(answer, str(error))
        return error

    def _accept_proof(self, address: bytes, keys: tuple[bytes, ...], answer: Answer) -> None:
        result = answer.value("eth_getProof")  # a JSON-RPC error: UpstreamError, no penalty
        subject = f"eth_getProof 0x{address.hex()}"
        try:
            parsed = parse_account_proof(result)
            proven = verify_parsed_account_proof(self.state_root, parsed,
                                                 requested_address=address,
                                                 requested_slots=keys)
        except (MalformedInputError, VerificationError) as exc:
            raise self._lie(answer, "eth_getProof", subject, str(exc)) from None
        for node in parsed.account_proof:
            self.store.add(node)
        for entry in parsed.storage_proof:
            for node in entry.proof:
                self.store.add(node)
        self._accounts.setdefault(address, ProvenAccount(address, proven.account,
                                                         proven.exists, ()))
        for slot in proven.storage:
            self._slots[(address, slot.key)] = slot.value

    def _accept_code(self, address: bytes, answer: Answer) -> None:
        result = answer.value("eth_getCode")
        subject = f"eth_getCode 0x{address.hex()}"
        proven = self._accounts.get(address)
        if proven is None:  # its proof failed in this batch: that error is raised
            return
        try:
            code = parse_data(result, "code", max_size=MAX_CODE_BYTES)
        except MalformedInputError as exc:
            raise self._lie(answer, "eth_getCode", subject, str(exc)) from None
        if keccak256(code) != proven.account.code_hash:
            raise self._lie(answer, "eth_getCode", subject,
                            f"keccak256(code) 0x{keccak256(code).hex()} is not the proven "
                            f"codeHash 0x{proven.account.code_hash.hex()}")
        if code:
            self.store.add(code)
        self._codes[address] = code


def slot_key(slot: int | bytes) -> bytes:
    """A storage slot as its 32-byte key."""
    if isinstance(slot, bytes):
        if len(slot) != 32:
            raise MalformedInputError(f"storage key must be 32 bytes, got {len(slot)}")
        return slot
    if not 0 <= slot < 2**256:
        raise MalformedInputError(f"storage slot {slot} is not a uint256")
    return slot.to_bytes(32, "big")


def _check_address(address: bytes) -> None:
    if not isinstance(address, bytes) or len(address) != 20:
        raise MalformedInputError("an address must be 20 bytes")


def _keys(needs: StateNeeds) -> list[tuple[Any, ...]]:
    return ([("a", a) for a in needs.accounts] + [("s", *s) for s in needs.slots]
            + [("c", a) for a in needs.codes])


def reachable(store: WitnessStore, state_root: bytes) -> frozenset[bytes]:
    """Every hash in ``store`` reachable from ``state_root``: the state trie's nodes, then
    the storage tries of the accounts found in its leaves, and their code. A witness built
    only from verified proofs has nothing else (what :func:`reachable` does not return
    could never be used)."""
    seen: set[bytes] = set()
    todo: list[tuple[rlp.Item, bool]] = [(state_root, True)]  # (reference, in state trie)
    while todo:
        ref, in_state = todo.pop()
        if isinstance(ref, bytes):
            if len(ref) != 32 or ref in seen or ref not in store:
                continue
            seen.add(ref)
            encoded = store.get(ref)
            assert encoded is not None
            node = rlp.decode(encoded)
            if not isinstance(node, list):
                continue
        else:
            node = ref
        children: list[rlp.Item]
        leaf_value: rlp.Item = b""
        if len(node) == 17:
            children, leaf_value = node[:16], node[16]
        else:
            try:
                _, is_leaf = decode_hex_prefix(node[0])  # type: ignore[arg-type]
            except (MalformedInputError, TypeError):
                continue
            children, leaf_value = ([], node[1]) if is_leaf else ([node[1]], b"")
        todo.extend((c, in_state) for c in children if c != b"")
        if in_state and isinstance(leaf_value, bytes) and leaf_value:
            try:
                fields = rlp.decode(leaf_value)
            except MalformedInputError:
                continue
            if isinstance(fields, list) and len(fields) == 4:
                storage_root, code_hash = fields[2], fields[3]
                todo.append((storage_root, False))
                if isinstance(code_hash, bytes) and code_hash in store:
                    seen.add(code_hash)
    return frozenset(seen)


__all__ = [
    "FetchStats",
    "ProvenState",
    "StateAnswerError",
    "StateNeeds",
    "WitnessStore",
    "collect_proof",
    "reachable",
    "slot_key",
]
