"""eth_call, eth_estimateGas and eth_createAccessList on proven state, off the event loop.

:class:`LocalEvm` answers the three methods for a block the caller anchored, from a
:class:`~node.rpc.witness.ProvenState` and nothing else (DESIGN.md, "The verified node"):

1. the call object enters through one door, :func:`parse_call_request` (and
   :func:`parse_state_overrides`): typed, sizes checked, unsupported fields refused;
2. on a cold state the sender, the recipient and its code are proven, while the upstream's
   own ``eth_createAccessList`` answer is fetched alongside -- as a *hint* only, to prove in
   the next batch what the call will probably touch (a wrong or short hint costs a round
   trip, never a wrong answer; anvil's leaves out precompiles and EIP-7702 delegation
   targets, and it errors on reverting calls);
3. a worker process runs py-evm over the witness (:mod:`node.rpc.evm_worker`); a run that
   met missing state returns the exact accounts, slots, code and BLOCKHASH numbers it
   missed, which are proven in one batch (block hashes come from the caller's
   ``block_hash(number)``, from its anchored headers), and the job runs again. Only a run
   without a miss is an answer.

Workers are separate processes so that a CPU-bound call (py-evm runs ~7 Mgas/s) never
blocks the node's event loop; each mirrors the witness stores it has seen and is sent only
the entries added since (a fresh or restarted worker is resynced from zero). Every job is
bounded: its gas by ``gas_cap`` (geth's ``RPCGasCap``; a larger or missing ``gas`` is
capped), its time by ``timeout`` (geth's ``RPCEVMTimeout``), after which the worker is
killed and replaced. State overrides (``balance``, ``nonce``, ``code``, ``state``,
``stateDiff``, as geth and anvil take them) are supported; block overrides, blob and
EIP-7702 authorization fields are refused with :class:`UnsupportedCallError`.

``vm_class_for`` (in :mod:`node.rpc.evm_worker`) picks the VM by the block's fork: py-evm's
London to Prague, and :class:`node.rpc.osaka.OsakaVM` for Osaka and the BPO forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from node.chain.errors import MalformedInputError
from node.chain.forks import ChainConfig
from node.chain.rpcjson import obj_at, parse_data, parse_quantity, to_hex
from node.rpc.evm_worker import (
    _HEADER,
    READY,
    AccessList,
    AccessListResult,
    AccountOverride,
    CallRequest,
    CallStatus,
    Done,
    EstimateResult,
    EvmError,
    ExecResult,
    Failed,
    Job,
    Misses,
    Request,
    Resync,
    UnsupportedForkError,
    vm_class_for,
)
from node.rpc.upstream_api import UpstreamError
from node.rpc.witness import ProvenState, StateNeeds, WitnessStore

__all__ = [
    "AccessListResult",
    "AccountOverride",
    "BlockHashUnavailableError",
    "CallRequest",
    "CallStatus",
    "EstimateGasError",
    "EvmError",
    "EvmStats",
    "EvmTimeoutError",
    "ExecResult",
    "LocalEvm",
    "UnsupportedCallError",
    "UnsupportedForkError",
    "parse_call_request",
    "parse_state_overrides",
    "vm_class_for",
]

DEFAULT_GAS_CAP = 50_000_000
"""geth's default ``RPCGasCap``: the most gas one call may use here."""
DEFAULT_TIMEOUT = 5.0
"""geth's default ``RPCEVMTimeout`` (seconds of EVM time for one job)."""
MAX_ROUNDS = 16
"""Prove-and-run-again rounds before a call is given up (each adds proven state)."""
MAX_HINT_ADDRESSES = 256
MAX_HINT_KEYS = 2048
"""A hint larger than this is ignored (proving it would cost more than a miss round)."""
STARTUP_TIMEOUT = 60.0
"""Seconds a worker gets to import py-evm and say it is ready."""

BlockHashFn = Callable[[int], "bytes | Awaitable[bytes | None] | None"]
"""``block_hash(number)``: the hash of an anchored ancestor of the call's block, or None."""


class EvmTimeoutError(EvmError):
    """A job ran longer than the EVM timeout (its worker was killed and replaced)."""


class UnsupportedCallError(EvmError):
    """The call asks for something the local EVM does not do (named in the message)."""


class BlockHashUnavailableError(EvmError):
    """BLOCKHASH asked for a block the caller's anchored headers do not give."""


class EstimateGasError(EvmError):
    """No gas limit up to the cap lets the call succeed; ``failure`` is the run at the
    cap (for a revert, its ``revert_data``)."""

    def __init__(self, message: str, failure: ExecResult, cap: int) -> None:
        self.failure = failure
        self.cap = cap
        super().__init__(message)


# -- the one door for call objects ---------------------------------------------------------


_REFUSED_FIELDS = {
    "authorizationList": "EIP-7702 authorizations in a call",
    "blobVersionedHashes": "blob transactions in a call",
    "maxFeePerBlobGas": "blob transactions in a call",
    "blobs": "blob transactions in a call",
}


def parse_call_request(obj: Any, where: str = "call") -> CallRequest:
    """Read an ``eth_call`` / ``eth_estimateGas`` / ``eth_createAccessList`` transaction
    object (execution-apis ``GenericTransaction``) into a :class:`CallRequest`.

    ``from`` defaults to the zero address; ``input`` and its older name ``data`` must agree
    when both are given; ``gasPrice`` excludes the EIP-1559 fee fields. Raises
    :class:`MalformedInputError` naming the field, :class:`UnsupportedCallError` for blob
    and EIP-7702 fields.
    """
    obj = obj_at(obj, where)
    for key, what in _REFUSED_FIELDS.items():
        if obj.get(key) is not None:
            raise UnsupportedCallError(f"{where}.{key}: {what} is not supported")
    sender = _opt_data(obj, "from", where, 20) or bytes(20)
    to = _opt_data(obj, "to", where, 20)
    data = _opt_data(obj, "input", where)
    legacy = _opt_data(obj, "data", where)
    if data is not None and legacy is not None and data != legacy:
        raise MalformedInputError('both "data" and "input" are set and not equal', where=where)
    gas_price = _opt_quantity(obj, "gasPrice", where)
    max_fee = _opt_quantity(obj, "maxFeePerGas", where)
    priority = _opt_quantity(obj, "maxPriorityFeePerGas", where)
    if gas_price is not None and (max_fee is not None or priority is not None):
        raise MalformedInputError("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) "
                                  "specified", where=where)
    _opt_quantity(obj, "nonce", where, 64)  # accepted, not used: the state's nonce counts
    return CallRequest(
        sender=sender, to=to, data=data if data is not None else (legacy or b""),
        value=_opt_quantity(obj, "value", where) or 0,
        gas=_opt_quantity(obj, "gas", where, 64), gas_price=gas_price,
        max_fee_per_gas=max_fee, max_priority_fee_per_gas=priority,
        access_list=_access_list(obj.get("accessList"), f"{where}.accessList"))


def parse_state_overrides(obj: Any, where: str = "stateOverrides") -> tuple[AccountOverride,
                                                                           ...]:
    """Read an ``eth_call`` state override set (geth ``override.StateOverride``: address ->
    ``{balance, nonce, code, state | stateDiff}``). ``None`` is no override.
    ``movePrecompileToAddress`` is refused with :class:`UnsupportedCallError`."""
    if obj is None:
        return ()
    obj = obj_at(obj, where)
    out = []
    for raw_address, raw in obj.items():
        at = f"{where}.{raw_address}"
        address = parse_data(raw_address, at, 20)
        entry = obj_at(raw, at)
        if entry.get("movePrecompileToAddress") is not None:
            raise UnsupportedCallError(f"{at}.movePrecompileToAddress is not supported")
        unknown = set(entry) - {"balance", "nonce", "code", "state", "stateDiff"}
        if unknown:
            raise MalformedInputError(f"unknown override field(s) {sorted(unknown)}", where=at)
        if entry.get("state") is not None and entry.get("stateDiff") is not None:
            raise MalformedInputError("both state and stateDiff are set", where=at)
        out.append(AccountOverride(
            address=address, balance=_opt_quantity(entry, "balance", at),
            nonce=_opt_quantity(entry, "nonce", at, 64), code=_opt_data(entry, "code", at),
            state=_slots(entry.get("state"), f"{at}.state"),
            state_diff=_slots(entry.get("stateDiff"), f"{at}.stateDiff")))
    return tuple(out)


def _opt_data(obj: Mapping[str, Any], key: str, where: str,
              size: int | None = None) -> bytes | None:
    value = obj.get(key)
    return None if value is None else parse_data(value, where, size, key=key)


def _opt_quantity(obj: Mapping[str, Any], key: str, where: str, bits: int = 256) -> int | None:
    value = obj.get(key)
    return None if value is None else parse_quantity(value, where, bits, key)


def _access_list(raw: Any, where: str) -> AccessList:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MalformedInputError(f"expected a JSON array, got {type(raw).__name__}",
                                  where=where)
    out = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        entry = obj_at(entry, at)
        keys = entry.get("storageKeys") or []
        if not isinstance(keys, list):
            raise MalformedInputError("storageKeys must be a JSON array", where=at)
        out.append((parse_data(entry.get("address"), f"{at}.address", 20),
                    tuple(parse_data(k, f"{at}.storageKeys[{j}]", 32)
                          for j, k in enumerate(keys))))
    return tuple(out)


def _slots(raw: Any, where: str) -> tuple[tuple[bytes, int], ...] | None:
    if raw is None:
        return None
    raw = obj_at(raw, where)
    return tuple((parse_data(k, where, 32), int.from_bytes(parse_data(v, f"{where}.{k}", 32),
                                                            "big"))
                 for k, v in raw.items())


def call_to_json(call: CallRequest) -> dict[str, Any]:
    """``call`` as a transaction object to send upstream (for the access-list hint)."""
    out: dict[str, Any] = {"from": to_hex(call.sender), "input": to_hex(call.data),
                           "data": to_hex(call.data), "value": hex(call.value)}
    if call.to is not None:
        out["to"] = to_hex(call.to)
    for key, value in (("gas", call.gas), ("gasPrice", call.gas_price),
                       ("maxFeePerGas", call.max_fee_per_gas),
                       ("maxPriorityFeePerGas", call.max_priority_fee_per_gas)):
        if value is not None:
            out[key] = hex(value)
    if call.access_list:
        out["accessList"] = [{"address": to_hex(a), "storageKeys": [to_hex(k) for k in keys]}
                             for a, keys in call.access_list]
    return out


def _parse_hint(result: Any) -> StateNeeds | None:
    """An upstream's ``eth_createAccessList`` result as what to prove, or None when it is
    not one (a hint that cannot be read is no hint; nothing is trusted from it)."""
    try:
        entries = _access_list(obj_at(result, "hint").get("accessList"), "hint.accessList")
    except MalformedInputError:
        return None
    if len(entries) > MAX_HINT_ADDRESSES or sum(len(k) for _, k in entries) > MAX_HINT_KEYS:
        return None
    addresses = frozenset(a for a, _ in entries)
    return StateNeeds(addresses, frozenset((a, k) for a, keys in entries for k in keys),
                      addresses)


# -- the worker processes ------------------------------------------------------------------


class _Worker:
    """One ``python -m node.rpc.evm_worker`` process and what it mirrors."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._synced: dict[int, int] = {}  # WitnessStore.token -> entries it holds
        self.pid: int | None = None

    async def start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.rpc.evm_worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env)
        self.pid = self._proc.pid
        self._synced = {}
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                ready = await self._read()
        except BaseException:
            await self.kill()
            raise
        if ready != READY:
            await self.kill()
            raise EvmError("EVM worker did not start")

    async def run(self, store: WitnessStore, job: Job, timeout: float) -> Done | Misses:
        if self._proc is None or self._proc.returncode is not None:
            await self.start()
        try:
            async with asyncio.timeout(timeout):
                reply = await self._exchange(store, job)
        except TimeoutError:
            await self.kill()
            raise EvmTimeoutError(f"the call ran longer than {timeout:g} s of EVM time "
                                  f"(worker killed)") from None
        except BaseException:  # cancelled or broken mid-exchange: the stream is out of step
            await self.kill()
            raise
        if isinstance(reply, Failed):
            raise EvmError(f"EVM worker: {reply.message}")
        return reply

    async def _exchange(self, store: WitnessStore, job: Job) -> Done | Misses | Failed:
        for _ in range(3):
            offset = self._synced.get(store.token, 0)
            entries = store.entries_since(offset)
            await self._write(Request(store.token, offset, entries, job))
            reply = await self._read()
            if isinstance(reply, Resync):
                self._synced[store.token] = min(reply.have, len(store))
                continue
            self._synced[store.token] = offset + len(entries)
            if not isinstance(reply, Done | Misses | Failed):
                raise EvmError(f"EVM worker answered {type(reply).__name__}")
            return reply
        raise EvmError("EVM worker could not be synced with the witness")

    async def _write(self, message: object) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._proc.stdin.write(_HEADER.pack(len(data)) + data)
        await self._proc.stdin.drain()

    async def _read(self) -> Any:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            head = await self._proc.stdout.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(head)
            data = await self._proc.stdout.readexactly(size)
        except asyncio.IncompleteReadError:
            raise EvmError("EVM worker exited") from None
        return pickle.loads(data)  # from the process this node started

    async def kill(self) -> None:
        proc, self._proc, self._synced = self._proc, None, {}
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            self._proc = None
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(5.0):
                await proc.wait()
        except TimeoutError:
            await self.kill()
        self._proc = None


# -- the local EVM -------------------------------------------------------------------------


@dataclass
class EvmStats:
    """Totals over a :class:`LocalEvm`'s jobs (for metrics and benchmarks)."""

    jobs: int = 0
    runs: int = 0  # EVM executions, counting runs that missed state
    rounds: int = 0  # worker round trips (a job with misses takes several)
    evm_seconds: float = 0.0  # worker CPU time of the answering runs
    hints: int = 0  # upstream eth_createAccessList hints asked for
    timeouts: int = 0


class LocalEvm:
    """eth_call, eth_estimateGas and eth_createAccessList over proven state.

    Use as ``async with LocalEvm(config) as evm: await evm.call(state, request)``. The
    ``state`` is a :class:`ProvenState` of a header the caller anchored; ``block_hash``
    answers BLOCKHASH from the caller's anchored headers (``None``: a call that needs one
    fails with :class:`BlockHashUnavailableError`).
    """

    def __init__(self, chain_config: ChainConfig, *, workers: int = 1,
                 gas_cap: int = DEFAULT_GAS_CAP, timeout: float = DEFAULT_TIMEOUT,
                 max_rounds: int = MAX_ROUNDS, hint: bool = True) -> None:
        if workers < 1:
            raise ValueError("LocalEvm needs at least one worker")
        self.chain_config = chain_config
        self.gas_cap = gas_cap
        self.timeout = timeout
        self.max_rounds = max_rounds
        self.hint = hint
        self.stats = EvmStats()
        self._workers = [_Worker() for _ in range(workers)]
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    async def __aenter__(self) -> LocalEvm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the workers now (else each starts at its first job: ~1-2 s of imports)."""
        await _together(worker.start() for worker in self._workers)

    async def close(self) -> None:
        await _together(worker.close() for worker in self._workers)

    @property
    def worker_pids(self) -> list[int | None]:
        return [w.pid for w in self._workers]

    # -- the three methods --------------------------------------------------------------

    async def call(self, state: ProvenState, request: CallRequest, *,
                   overrides: tuple[AccountOverride, ...] = (),
                   block_hash: BlockHashFn | None = None) -> ExecResult:
        """``eth_call``: output, gas used, revert data or the error."""
        result = await self._job("call", state, request, overrides, block_hash)
        assert isinstance(result, ExecResult)
        return result

    async def estimate_gas(self, state: ProvenState, request: CallRequest, *,
                           overrides: tuple[AccountOverride, ...] = (),
                           block_hash: BlockHashFn | None = None) -> int:
        """``eth_estimateGas``: the least gas limit with which the call succeeds. Raises
        :class:`EstimateGasError` (with the revert data) when none up to the cap does."""
        result = await self._job("estimate", state, request, overrides, block_hash)
        assert isinstance(result, EstimateResult)
        if result.gas is not None:
            return result.gas
        failure = result.failure
        assert failure is not None
        if failure.status is CallStatus.REVERT:
            message = "execution reverted"
        elif failure.status is CallStatus.INVALID:
            message = failure.error or "invalid transaction"
        else:
            message = f"gas required exceeds allowance ({result.cap})"
        raise EstimateGasError(message, failure, result.cap)

    async def create_access_list(self, state: ProvenState, request: CallRequest, *,
                                 overrides: tuple[AccountOverride, ...] = (),
                                 block_hash: BlockHashFn | None = None) -> AccessListResult:
        """``eth_createAccessList``: the accounts and slots the call touches, and the call
        run with that list (its ``gas_used``; a revert is reported in ``result``)."""
        result = await self._job("access_list", state, request, overrides, block_hash)
        assert isinstance(result, AccessListResult)
        return result

    # -- the loop -----------------------------------------------------------------------

    async def _job(self, kind: str, state: ProvenState, request: CallRequest,
                   overrides: tuple[AccountOverride, ...],
                   block_hash: BlockHashFn | None) -> Any:
        vm_class_for(state.header, self.chain_config)  # an unsupported fork fails here
        self.stats.jobs += 1
        await self._prefetch(state, request)
        job = Job(kind, state.header, self.chain_config, request, overrides,
                  dict(state.block_hashes), self.gas_cap)
        for _ in range(self.max_rounds):
            async with self._lease() as worker:
                witnessed = len(state.store)  # what the run is given
                try:
                    outcome = await worker.run(state.store, job, self.timeout)
                except EvmTimeoutError:
                    self.stats.timeouts += 1
                    raise
            self.stats.rounds += 1
            self.stats.runs += outcome.runs
            if isinstance(outcome, Done):
                self.stats.evm_seconds += outcome.seconds
                return outcome.result
            hashes = await self._resolve_hashes(state, outcome, block_hash)
            await state.ensure(StateNeeds(outcome.accounts, outcome.slots, outcome.codes))
            # progress: new witness entries (ours, or another call's on this state meanwhile)
            if not hashes and len(state.store) == witnessed:
                raise EvmError("the EVM missed state that is proven already (witness out "
                               "of step)")
            job = replace(job, block_hashes=dict(state.block_hashes))
        raise EvmError(f"the call still missed state after {self.max_rounds} rounds of "
                       f"proofs")

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[_Worker]:
        worker = await self._idle.get()
        try:
            yield worker
        finally:
            self._idle.put_nowait(worker)

    async def _resolve_hashes(self, state: ProvenState, misses: Misses,
                              block_hash: BlockHashFn | None) -> bool:
        for number in sorted(misses.block_numbers):
            if number in state.block_hashes:
                continue
            if block_hash is None:
                raise BlockHashUnavailableError(
                    f"BLOCKHASH({number}) needs the anchored headers: no block_hash given")
            answer = block_hash(number)
            value = await answer if inspect.isawaitable(answer) else answer
            if value is None:
                raise BlockHashUnavailableError(
                    f"BLOCKHASH({number}): block {number} is not an anchored ancestor of "
                    f"block {state.header.number}")
            if not isinstance(value, bytes) or len(value) != 32:
                raise BlockHashUnavailableError(f"BLOCKHASH({number}): block_hash gave "
                                                f"{value!r}, not 32 bytes")
            state.block_hashes[number] = value
        return bool(misses.block_numbers)

    async def _prefetch(self, state: ProvenState, request: CallRequest) -> None:
        """Cold state: prove the sender, the recipient and its code, and ask the upstream
        for its access list alongside; then prove what that hint names."""
        parties = frozenset(a for a in (request.sender, request.to) if a is not None)
        first = StateNeeds(parties, frozenset(), parties - {request.sender})
        if not state.missing(first):
            return  # warm: misses, if any, come from the run itself
        jobs: list[Awaitable[Any]] = [state.ensure(first)]
        if self.hint:
            jobs.append(self._hint(state, request))
        hint = (await _together(jobs))[-1] if self.hint else None
        if hint is not None and state.missing(hint):
            await state.ensure(hint)

    async def _hint(self, state: ProvenState, request: CallRequest) -> StateNeeds | None:
        self.stats.hints += 1
        try:
            answer = await state.upstream.call("eth_createAccessList",
                                               [call_to_json(request), state.block_ref])
        except UpstreamError:
            return None
        if answer.error is not None:
            return None  # anvil errors on reverting calls: no hint then
        return _parse_hint(answer.result)


async def _together(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Await concurrently in a task group; the first failure is raised as itself (one
    typed error for the caller, not an exception group)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_wrap(a)) for a in awaitables]
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [task.result() for task in tasks]


async def _wrap(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
