"""The EVM over a witness: py-evm running calls on proven trie nodes only, in a worker process.

What runs here (DESIGN.md, "The verified node"): py-evm's own ``AccountDB`` walks the partial
trie from the anchored ``stateRoot`` over a database that holds only proven nodes and code
(:class:`~node.rpc.witness.WitnessStore`). Where the walk needs a node the witness lacks,
py-evm raises its missing-trie-node or missing-code error; :class:`WitnessAccountDB` turns
each into a *miss* naming exactly the account, the storage slot (py-evm's own error carries
only keccak(slot), so the raw slot is caught one level up, in ``get_storage``) or the code,
and lets the run go on with a placeholder, so one run lists every miss it meets. BLOCKHASH
reads the hashes the caller resolved; an unresolved one is a miss too. A run with a miss
is never an answer: the caller proves what was missed and runs again. Only a run without a
miss counts, and a forged node is never reached (nodes are found by their hash).

eth_call semantics (geth ``DoCall``, anvil): an unsigned transaction wrapped in py-evm's
``SpoofTransaction`` (the sender without a signature), ``build_evm_message`` then
``build_computation`` -- no validation, no finalisation -- in the context of the block
itself (its number, timestamp, base fee, prevRandao, coinbase), fee 0 unless the call names
a fee; system contracts are not installed at state creation (``set_system_contracts`` reads
EIP-4788/2935 code: a no-op here). Gas used is what a receipt would say: EIP-3529 refunds
(at most a fifth) and the EIP-7623 calldata floor (Prague) applied.

``eth_estimateGas`` is geth's search (``eth/gasestimator``): run at the cap, then from the
gas used, an optimistic try at ``(used + refund + 2300) * 64 / 63``, then bisection -- to the
exact least gas limit that succeeds (anvil's answer; geth stops within 1.5 %), never below
the intrinsic gas or the EIP-7623 floor. ``eth_createAccessList`` is geth's loop: run with the
list, list what the run touched (less the sender, the recipient and the precompiles, which are
warm anyway, EIP-2929), until the list no longer changes.

The worker process (``python -m node.rpc.evm_worker``) keeps a mirror of each witness store it
was sent, receives only the entries added since (:class:`Request`), runs one :class:`Job` at
a time and answers with a :class:`Done` or the :class:`Misses`. Messages are length-prefixed
pickles over its stdin/stdout, between the node and the process it started itself.
"""

from __future__ import annotations

import enum
import os
import pickle
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

from node.chain.errors import ChainError
from node.chain.forks import ChainConfig
from node.chain.header import Header

# -- typed calls and results (shared by the node and the worker) ---------------------------


@dataclass(frozen=True)
class CallRequest:
    """An ``eth_call`` / ``eth_estimateGas`` transaction object, parsed
    (:func:`node.rpc.evm.parse_call_request`; execution-apis ``GenericTransaction``)."""

    sender: bytes  # ``from``; the zero address when absent (geth, anvil)
    to: bytes | None  # None: contract creation
    data: bytes = b""  # ``input`` (or its older name ``data``)
    value: int = 0
    gas: int | None = None  # None: the block gas limit (capped by the node's gas cap)
    gas_price: int | None = None  # legacy fee; GASPRICE and the fee paid
    max_fee_per_gas: int | None = None  # EIP-1559
    max_priority_fee_per_gas: int | None = None  # EIP-1559
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()  # EIP-2930, 32-byte keys

    @property
    def priced(self) -> bool:
        """Whether the call names a non-zero fee (then it is paid and checked, like geth)."""
        return bool(self.gas_price or self.max_fee_per_gas or self.max_priority_fee_per_gas)


@dataclass(frozen=True)
class AccountOverride:
    """One account of an ``eth_call`` state override set (geth ``override.Account``)."""

    address: bytes
    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: tuple[tuple[bytes, int], ...] | None = None  # replaces all storage
    state_diff: tuple[tuple[bytes, int], ...] | None = None  # patches some slots


class CallStatus(enum.StrEnum):
    SUCCESS = "success"
    REVERT = "revert"  # REVERT opcode: the output is the revert data
    HALT = "halt"  # exceptional halt (out of gas, invalid opcode, ...): all gas used
    INVALID = "invalid"  # not executable as a transaction (intrinsic gas, funds, fee)


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one call on proven state."""

    status: CallStatus
    output: bytes  # return data; for REVERT, the revert data
    gas_used: int  # as a receipt would say (refunds and the EIP-7623 floor applied)
    error: str | None = None  # why it did not succeed, one line

    @property
    def success(self) -> bool:
        return self.status is CallStatus.SUCCESS

    @property
    def revert_data(self) -> bytes | None:
        return self.output if self.status is CallStatus.REVERT else None


AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


@dataclass(frozen=True)
class AccessListResult:
    """``eth_createAccessList``: the list and the call run with it (its ``gas_used``)."""

    access_list: AccessList  # addresses ascending, each with its 32-byte keys ascending
    result: ExecResult


@dataclass(frozen=True)
class EstimateResult:
    """``eth_estimateGas``: the least gas limit that succeeds, or why none up to the cap does."""

    gas: int | None
    failure: ExecResult | None = None  # the run at the highest gas allowed, when it failed
    cap: int = 0  # the highest gas limit tried


@dataclass(frozen=True)
class Job:
    """One computation for the worker: ``kind`` is ``call``, ``estimate`` or ``access_list``."""

    kind: str
    header: Header  # the anchored block: its state root and its context
    chain_config: ChainConfig
    call: CallRequest
    overrides: tuple[AccountOverride, ...] = ()
    block_hashes: Mapping[int, bytes] = field(default_factory=dict)  # BLOCKHASH answers
    gas_cap: int = 50_000_000


@dataclass(frozen=True)
class Misses:
    """What a run needed and the witness did not hold: prove these, then run again."""

    accounts: frozenset[bytes] = frozenset()
    slots: frozenset[tuple[bytes, bytes]] = frozenset()  # (address, 32-byte key)
    codes: frozenset[bytes] = frozenset()  # addresses
    block_numbers: frozenset[int] = frozenset()
    runs: int = 1

    def __bool__(self) -> bool:
        return bool(self.accounts or self.slots or self.codes or self.block_numbers)


@dataclass(frozen=True)
class Done:
    """A job's answer, from runs without a miss."""

    result: ExecResult | EstimateResult | AccessListResult
    runs: int  # EVM runs it took (an estimate takes several)
    seconds: float  # CPU time in the worker


class EvmError(ChainError):
    """A call could not be run on proven state (unsupported fork or request, a worker
    failure, state that could not be proven in time)."""


class UnsupportedForkError(EvmError):
    """No EVM here implements the rules of the block's fork."""


# -- the VM of a block ---------------------------------------------------------------------


_PY_EVM_FORKS = {
    "london": "eth.vm.forks.london.LondonVM",
    "arrow_glacier": "eth.vm.forks.arrow_glacier.ArrowGlacierVM",
    "gray_glacier": "eth.vm.forks.gray_glacier.GrayGlacierVM",
    "paris": "eth.vm.forks.paris.ParisVM",
    "shanghai": "eth.vm.forks.shanghai.ShanghaiVM",
    "cancun": "eth.vm.forks.cancun.CancunVM",
    "prague": "eth.vm.forks.prague.PragueVM",
}


def vm_class_for(header: Header, chain_config: ChainConfig) -> type[Any]:
    """The py-evm VM class whose rules apply to ``header``: the fork active at its number
    and timestamp (:meth:`ChainConfig.fork_at`). London to Prague are py-evm's own classes;
    Osaka and the blob-parameter-only forks after it (EIP-7607, EIP-7892) are
    :class:`node.rpc.osaka.OsakaVM` with the blob schedule in force. Earlier forks (no
    EIP-1559 base fee) and forks without an implementation raise
    :class:`UnsupportedForkError`."""
    fork = chain_config.fork_at(header.number, header.timestamp)
    return _vm_class(fork, chain_config.era_at(header.timestamp).blobs
                     if fork == "osaka" or fork.startswith("bpo") else None)


@cache
def _vm_class(fork: str, blobs: Any) -> type[Any]:
    if fork == "osaka" or (fork.startswith("bpo") and fork[3:].isdigit()):
        try:
            from node.rpc.osaka import OsakaVM
        except ImportError as exc:  # the hook: Osaka rules live in node/rpc/osaka.py
            raise UnsupportedForkError(f"fork {fork}: no Osaka VM ({exc})") from None
        return OsakaVM if blobs is None else OsakaVM.with_blob_schedule(blobs)
    path = _PY_EVM_FORKS.get(fork)
    if path is None:
        raise UnsupportedForkError(f"fork {fork}: calls are run from London (EIP-1559) to "
                                   f"Osaka only")
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def tx_gas_limit_cap(vm_class: type[Any]) -> int | None:
    """The most gas a transaction may ask for under ``vm_class`` (EIP-7825, Osaka), if any."""
    try:
        from node.rpc.osaka import TX_GAS_LIMIT_CAP, OsakaVM
    except ImportError:
        return None
    return TX_GAS_LIMIT_CAP if issubclass(vm_class, OsakaVM) else None


# -- py-evm over the witness ---------------------------------------------------------------


class _Recorder:
    """What one run missed, and what it touched: the accounts and slots whose EIP-2929
    warmth an opcode asked about."""

    def __init__(self, block_hashes: Mapping[int, bytes]) -> None:
        self.block_hashes = block_hashes
        self.accounts: set[bytes] = set()
        self.slots: set[tuple[bytes, bytes]] = set()
        self.codes: set[bytes] = set()
        self.block_numbers: set[int] = set()
        self.touched: dict[bytes, set[int]] = {}

    def misses(self, runs: int) -> Misses:
        return Misses(frozenset(self.accounts), frozenset(self.slots), frozenset(self.codes),
                      frozenset(self.block_numbers), runs)

    def __bool__(self) -> bool:
        return bool(self.accounts or self.slots or self.codes or self.block_numbers)


@cache
def _witness_account_db() -> type[Any]:
    from eth.db.account import AccountDB
    from eth.vm.interrupt import MissingAccountTrieNode, MissingBytecode, MissingStorageTrieNode

    class WitnessAccountDB(AccountDB):  # type: ignore[misc]
        """py-evm's AccountDB whose missing-node and missing-code errors become misses."""

        recorder: _Recorder

        def _get_encoded_account(self, address: bytes, from_journal: bool = True) -> bytes:
            try:
                return super()._get_encoded_account(address, from_journal)
            except MissingAccountTrieNode:
                self.recorder.accounts.add(address)
                return b""  # placeholder: this run no longer counts

        def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int:
            try:
                value = super().get_storage(address, slot, from_journal)
            except MissingStorageTrieNode:
                self.recorder.slots.add((address, slot.to_bytes(32, "big")))
                return 0
            if address in self.recorder.accounts:  # read under a placeholder account
                self.recorder.slots.add((address, slot.to_bytes(32, "big")))
            return value

        def get_code(self, address: bytes) -> bytes:
            try:
                code = super().get_code(address)
            except MissingBytecode:
                self.recorder.codes.add(address)
                return b""
            if address in self.recorder.accounts:
                self.recorder.codes.add(address)
            return code

    return WitnessAccountDB


@cache
def _state_class(vm_class: type[Any]) -> type[Any]:
    """``vm_class``'s state over :class:`WitnessAccountDB`, without system contracts at
    init, with BLOCKHASH answered from the caller's resolved hashes."""
    witness_db = _witness_account_db()
    base = vm_class.get_state_class()

    class WitnessState(base):  # type: ignore[misc, valid-type]
        recorder: _Recorder
        account_db_class = witness_db

        def set_system_contracts(self) -> None:
            """No-op: a call runs on the block's state as it is (DESIGN.md)."""

        def get_ancestor_hash(self, block_number: int) -> bytes:
            """BLOCKHASH (Yellow Paper §9.4.3 / EIP-2935 leaves it at 256 blocks): the
            hash of one of the 256 blocks before this one, else empty (pushes 0)."""
            depth = self.block_number - block_number - 1
            if not 0 <= depth < 256 or block_number < 0:
                return b""
            known = self.recorder.block_hashes.get(block_number)
            if known is None:
                self.recorder.block_numbers.add(block_number)
                return b""
            return known

        def is_address_warm(self, address: bytes) -> bool:
            """EIP-2929's question, asked exactly where an opcode charges for an account
            (BALANCE, EXTCODE*, CALL*, SELFDESTRUCT, a delegation it follows): recorded
            for eth_createAccessList."""
            self.recorder.touched.setdefault(address, set())
            return super().is_address_warm(address)

        def is_storage_warm(self, address: bytes, slot: int) -> bool:
            """Asked by SLOAD and SSTORE: recorded for eth_createAccessList."""
            self.recorder.touched.setdefault(address, set()).add(slot)
            return super().is_storage_warm(address, slot)

    WitnessState.__name__ = f"Witness{base.__name__}"
    return WitnessState


class _ReadOnlyDB:
    """The witness as py-evm's database: reads only (a run never writes below its journal)."""

    def __init__(self, values: Mapping[bytes, bytes]) -> None:
        self._values = values

    def __getitem__(self, key: bytes) -> bytes:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise RuntimeError("the witness is read-only")

    def __delitem__(self, key: bytes) -> None:
        raise RuntimeError("the witness is read-only")


def _make_db(values: Mapping[bytes, bytes]) -> Any:
    from eth.db.atomic import AtomicDB
    from eth.db.backends.memory import MemoryDB

    return AtomicDB(MemoryDB(_ReadOnlyDB(values)))  # type: ignore[arg-type]


@dataclass
class _Run:
    result: ExecResult
    recorder: _Recorder
    sender: bytes
    recipient: bytes  # the call's target, or the created contract's address
    precompiles: frozenset[bytes]
    refund: int = 0  # EIP-3529 refund granted (geth's RefundedGas)
    sender_balance: int = 0


def run_call(job: Job, values: Mapping[bytes, bytes], gas: int,
             access_list: AccessList | None = None) -> _Run:
    """One execution of ``job.call`` with gas limit ``gas`` over the witness ``values``."""
    from eth.vm.execution_context import ExecutionContext
    from eth.vm.spoof import SpoofTransaction

    header, call = job.header, job.call
    vm_class = vm_class_for(header, job.chain_config)
    context = ExecutionContext(
        coinbase=header.coinbase, timestamp=header.timestamp, block_number=header.number,
        difficulty=header.difficulty, mix_hash=header.mix_hash, gas_limit=header.gas_limit,
        prev_hashes=(), chain_id=job.chain_config.chain_id,
        base_fee_per_gas=header.base_fee_per_gas, excess_blob_gas=header.excess_blob_gas)
    recorder = _Recorder(job.block_hashes)
    state = _state_class(vm_class)(_make_db(values), context, header.state_root)
    state.recorder = state._account_db.recorder = recorder  # before the first read
    _apply_overrides(state, job.overrides)
    priority, max_fee = _fee_fields(call, header.base_fee_per_gas or 0)
    acl = access_list if access_list is not None else call.access_list
    tx = SpoofTransaction(vm_class.get_transaction_builder().new_unsigned_dynamic_fee_transaction(
        chain_id=job.chain_config.chain_id, nonce=0, max_priority_fee_per_gas=priority,
        max_fee_per_gas=max_fee, gas=gas, to=call.to if call.to is not None else b"",
        value=call.value, data=call.data,
        access_list=[(a, [int.from_bytes(k, "big") for k in keys]) for a, keys in acl]),
        from_=call.sender)
    precompiles = frozenset(state.computation_class.get_precompiles())
    executor = state.get_transaction_executor()
    floor = _data_floor(executor, tx)
    balance = state.get_balance(call.sender)
    recipient = call.to if call.to is not None else _create_address(
        call.sender, state.get_nonce(call.sender))
    run = _Run(ExecResult(CallStatus.INVALID, b"", 0), recorder, call.sender, recipient,
               precompiles, 0, balance)
    invalid = _precheck(state, call, tx, gas, floor, header.base_fee_per_gas or 0, balance)
    if invalid is not None:
        run.result = ExecResult(CallStatus.INVALID, b"", 0, invalid)
        return run
    try:
        message = executor.build_evm_message(tx)
        computation = executor.build_computation(message, tx)
    except Exception:
        if recorder:  # a placeholder led py-evm astray: this run does not count anyway
            return run
        raise
    used = gas - computation.get_gas_remaining()
    run.refund = min(computation.get_gas_refund(), used // 5)  # EIP-3529
    gas_used = max(used - run.refund, floor)  # EIP-7623
    if not computation.is_error:
        run.result = ExecResult(CallStatus.SUCCESS, computation.output, gas_used)
    elif _is_revert(computation.error):
        run.result = ExecResult(CallStatus.REVERT, computation.output, gas_used,
                                "execution reverted")
    else:
        run.result = ExecResult(CallStatus.HALT, b"", gas_used,
                                _halt_reason(computation.error))
    return run


def _fee_fields(call: CallRequest, base_fee: int) -> tuple[int, int]:
    """(maxPriorityFeePerGas, maxFeePerGas) of the spoofed EIP-1559 transaction: a legacy
    ``gasPrice`` is both (its effective price is itself); no fee is 0, 0 (price 0)."""
    if call.gas_price is not None:
        return call.gas_price, call.gas_price
    if call.max_fee_per_gas is None and call.max_priority_fee_per_gas is None:
        return 0, 0
    max_fee = call.max_fee_per_gas if call.max_fee_per_gas is not None else (
        base_fee * 2 + (call.max_priority_fee_per_gas or 0))
    return min(call.max_priority_fee_per_gas or 0, max_fee), max_fee


def _data_floor(executor: Any, tx: Any) -> int:
    """EIP-7623's floor (Prague on): 21000 + 10 per calldata token; 0 before Prague."""
    if not hasattr(executor, "calc_data_floor_gas"):
        return 0
    return executor.calc_data_floor_gas(tx, 0, 0)


def _precheck(state: Any, call: CallRequest, tx: Any, gas: int, floor: int,
              base_fee: int, balance: int) -> str | None:
    """geth's ``preCheck``/``IntrinsicGas`` for a call (nonce and signature skipped): why
    the transaction could not run at all, else None."""
    intrinsic = tx.intrinsic_gas
    if gas < intrinsic:
        return f"intrinsic gas too low: gas {gas}, minimum needed {intrinsic}"
    if gas < floor:
        return f"insufficient gas for floor data gas cost: gas {gas}, minimum needed {floor}"
    if call.priced:
        max_fee = tx.max_fee_per_gas
        if max_fee < base_fee:
            return f"max fee per gas less than block base fee: maxFeePerGas {max_fee}, " \
                   f"baseFee {base_fee}"
        if tx.max_priority_fee_per_gas > max_fee:
            return "max priority fee per gas higher than max fee per gas"
    cost = gas * state.get_gas_price(tx) + call.value
    if balance < cost:
        return f"insufficient funds for gas * price + value: address 0x{call.sender.hex()} " \
               f"have {balance} want {cost}"
    return None


def _create_address(sender: bytes, nonce: int) -> bytes:
    from eth._utils.address import generate_contract_address

    return generate_contract_address(sender, nonce)


def _is_revert(error: BaseException) -> bool:
    from eth.exceptions import Revert

    return isinstance(error, Revert)


def _halt_reason(error: BaseException) -> str:
    from eth.exceptions import OutOfGas

    if isinstance(error, OutOfGas):
        return "out of gas"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _apply_overrides(state: Any, overrides: tuple[AccountOverride, ...]) -> None:
    """geth's ``StateOverride.Apply``: set balance, nonce, code; replace (``state``) or
    patch (``stateDiff``) storage. Then lock the changes, so that they are the values a
    transaction starts from (EIP-2200's original values, EIP-2929's cold sets)."""
    if not overrides:
        return
    for override in overrides:
        address = override.address
        if override.nonce is not None:
            state.set_nonce(address, override.nonce)
        if override.code is not None:
            state.set_code(address, override.code)
        if override.balance is not None:
            state.set_balance(address, override.balance)
        if override.state is not None:
            state.delete_storage(address)
            for key, value in override.state:
                state.set_storage(address, int.from_bytes(key, "big"), value)
        if override.state_diff is not None:
            for key, value in override.state_diff:
                state.set_storage(address, int.from_bytes(key, "big"), value)
    state._account_db.lock_changes()  # (BaseState.lock_changes is a property in py-evm)


# -- the three jobs ------------------------------------------------------------------------


class _Missed(Exception):  # control flow inside a job
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder


def _counted(job: Job, values: Mapping[bytes, bytes], counter: list[int], gas: int,
             access_list: AccessList | None = None) -> _Run:
    counter[0] += 1
    run = run_call(job, values, gas, access_list)
    if run.recorder:
        raise _Missed(run.recorder)
    return run


def default_gas(job: Job) -> int:
    """The gas limit of a call that names none, or names more than allowed: the block's
    gas limit (anvil), at most the node's gas cap (geth ``RPCGasCap``)."""
    gas = job.call.gas if job.call.gas is not None else job.header.gas_limit
    return min(gas, job.gas_cap)


def execute(job: Job, values: Mapping[bytes, bytes]) -> Done | Misses:
    """Run ``job`` over the witness ``values`` (hash -> node or code)."""
    started = time.process_time()
    counter = [0]
    try:
        if job.kind == "call":
            result: Any = _counted(job, values, counter, default_gas(job)).result
        elif job.kind == "estimate":
            result = _estimate(job, values, counter)
        elif job.kind == "access_list":
            result = _access_list(job, values, counter)
        else:
            raise EvmError(f"unknown job kind {job.kind!r}")
    except _Missed as missed:
        return missed.recorder.misses(counter[0])
    return Done(result, counter[0], time.process_time() - started)


def _estimate(job: Job, values: Mapping[bytes, bytes], counter: list[int]) -> EstimateResult:
    call = job.call
    hi = default_gas(job)
    cap = tx_gas_limit_cap(vm_class_for(job.header, job.chain_config))
    if cap is not None:  # EIP-7825: no transaction may ask for more
        hi = min(hi, cap)
    first = _counted(job, values, counter, hi)
    price = call.gas_price if call.gas_price is not None else (call.max_fee_per_gas or 0)
    if price:  # geth: no more gas than the sender's balance pays for at the fee cap
        allowance = max(first.sender_balance - call.value, 0) // price
        if allowance < hi:
            hi = allowance
            first = _counted(job, values, counter, hi)
    if not first.result.success:
        return EstimateResult(None, first.result, hi)
    # geth: the gas the unconstrained run used bounds the limit from below (it is at least
    # the intrinsic gas and the EIP-7623 floor); the refund must fit in the limit too.
    lo = first.result.gas_used - 1
    optimistic = (first.result.gas_used + first.refund + 2300) * 64 // 63
    if lo < optimistic < hi:
        if _counted(job, values, counter, optimistic).result.success:
            hi = optimistic
        else:
            lo = optimistic
    while lo + 1 < hi:  # to the exact least limit (geth's error ratio 0, anvil's answer)
        mid = (lo + hi) // 2
        if mid > lo * 2:
            mid = lo * 2
        if _counted(job, values, counter, mid).result.success:
            hi = mid
        else:
            lo = mid
    return EstimateResult(hi, None, hi)


def _access_list(job: Job, values: Mapping[bytes, bytes],
                 counter: list[int]) -> AccessListResult:
    """geth's ``AccessList`` loop: run with the list, add what the run touched, until the
    list stays the same. Storage keys are listed for every address (the recipient's too);
    an address alone is not listed when it is warm anyway (EIP-2929, EIP-3651): the sender,
    the recipient, the precompiles, the coinbase."""
    current = _normalize(job.call.access_list)
    gas = default_gas(job)
    for _ in range(16):
        run = _counted(job, values, counter, gas, current)
        excluded = {run.sender, run.recipient, job.header.coinbase} | run.precompiles
        listed: dict[bytes, set[bytes]] = {a: set(keys) for a, keys in current}
        for address, slots in run.recorder.touched.items():
            if slots or address not in excluded:
                listed.setdefault(address, set()).update(s.to_bytes(32, "big") for s in slots)
        found = _normalize(tuple((a, tuple(k)) for a, k in listed.items()))
        if found == current:
            return AccessListResult(current, run.result)
        current = found
    raise EvmError("eth_createAccessList: the access list did not settle in 16 runs")


def _normalize(access_list: AccessList) -> AccessList:
    merged: dict[bytes, set[bytes]] = {}
    for address, keys in access_list:
        merged.setdefault(address, set()).update(keys)
    return tuple((a, tuple(sorted(merged[a]))) for a in sorted(merged))


# -- the worker process --------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """The node's message to a worker: the witness entries added since ``offset`` (hash,
    value), then the job to run over that witness."""

    store: int  # WitnessStore.token
    offset: int  # entries the node believes the worker already has
    entries: list[tuple[bytes, bytes]]
    job: Job


@dataclass(frozen=True)
class Resync:
    """The worker's mirror of ``store`` holds ``have`` entries, not the request's offset
    (a fresh or evicted mirror): send again from there."""

    store: int
    have: int


@dataclass(frozen=True)
class Failed:
    """The job raised (a bug or an unsupported request): one line naming it."""

    message: str


READY = b"orbital-evm-worker-ready"
MAX_MIRRORS = 8
"""Witness stores a worker mirrors at once (least recently used ones are dropped)."""
_HEADER = struct.Struct(">I")


def write_message(stream: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # only ever from the node that started this process


class Mirrors:
    """The worker's copies of the node's witness stores, by token, least recently used
    first out."""

    def __init__(self, limit: int = MAX_MIRRORS) -> None:
        self.limit = limit
        self._stores: OrderedDict[int, tuple[dict[bytes, bytes], list[int]]] = OrderedDict()

    def handle(self, request: Request) -> Done | Misses | Resync | Failed:
        values, count = self._stores.get(request.store, (None, [0]))
        if values is None or count[0] != request.offset:
            return Resync(request.store, 0 if values is None else count[0])
        self._stores.move_to_end(request.store)
        values.update(request.entries)
        count[0] += len(request.entries)
        try:
            return execute(request.job, values)
        except ChainError as exc:
            return Failed(str(exc))
        except Exception as exc:  # a py-evm bug must not kill the worker
            return Failed(f"{type(exc).__name__}: {exc}")

    def create(self, store: int) -> None:
        self._stores[store] = ({}, [0])
        while len(self._stores) > self.limit:
            self._stores.popitem(last=False)

    def serve(self, request: Request) -> Done | Misses | Resync | Failed:
        if request.store not in self._stores and request.offset == 0:
            self.create(request.store)
        return self.handle(request)


def main() -> int:
    """Serve requests on stdin/stdout until stdin closes."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    source = sys.stdin.buffer
    _state_class(_vm_class("prague", None))  # import py-evm before saying ready
    write_message(out, READY)
    mirrors = Mirrors()
    while True:
        request = read_message(source)
        if request is None:
            return 0
        write_message(out, mirrors.serve(request))


if __name__ == "__main__":
    # Run the imported module's main, so that the messages' classes pickle under their
    # module's name (node.rpc.evm_worker), not __main__.
    from node.rpc.evm_worker import main as _main

    sys.exit(_main())
