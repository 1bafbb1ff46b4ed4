"""A small beacon chain made by the tests: blocks, states and sync committees whose light-client
data (bootstraps, updates, finality and optimistic updates) the tests build and sign themselves,
honest or lying, for any fork schedule.

What is real here:

* **BLS** -- secret keys made from a seed, public keys ``G1 * sk``, signatures
  ``hash_to_curve(signing_root, DST) * sk`` summed over the participants (py-arkworks-bls12381,
  the ciphersuite of consensus-specs ``phase0/beacon-chain.md`` "BLS signatures");
* **signing** -- ``compute_signing_root(attested_header.beacon, compute_domain(
  DOMAIN_SYNC_COMMITTEE, fork version at signature_slot - 1, genesis_validators_root))``
  (altair ``light-client/sync-protocol.md``, ``validate_light_client_update``);
* **Merkleization** -- every root and branch is computed by ``node.chain.beacon.ssz`` over
  containers whose *field positions* are those of the fork's ``BeaconState`` (24 fields in
  Altair .. 37 in Electra) and ``BeaconBlockBody`` (``execution_payload`` at field 9). So the
  finalized checkpoint root sits at gindex 105 (169 from Electra), the current and next sync
  committees at 54/55 (86/87), the execution payload at 25, exactly as on the real chain;
* **the fork schedule** -- a :class:`~node.chain.beacon.config.NetworkConfig` with the chosen
  activation epochs; every header carries the execution payload header of its own slot's fork
  and is converted to the light-client format asked for (Electra-format objects carry
  normalised branches of older states, as ``upgrade_lc_*_to_electra`` makes them).

What is a stand-in: the fields a light client never opens (validators, balances, randao mixes,
attestations, ...) are 32-byte values in place of their subtree roots -- a Merkle tree only sees
a field's root, so the state root is that of a ``BeaconState`` whose fields had those roots.
There is no validator set and no fork choice: finality is a function of the epoch (two epochs
behind by default; pass ``finality=`` to stall it), and execution blocks are numbered one per
beacon block with synthetic hashes (the light client proves them, it does not re-execute them).

Typical use::

    config = sim_network({"capella": 0, "deneb": 16, "electra": 32})
    sim = BeaconChainSim(config)
    clock = SimClock(config).at_slot(41)
    client = LightClient.bootstrap(config, sim.root(40), sim.bootstrap(40), clock=clock)
    client.process_update(sim.update(48))            # signed at slot 49 by period 0
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from py_arkworks_bls12381 import G1Point, G2Point, Scalar

from node.chain.beacon.bls import DST
from node.chain.beacon.config import FAR_FUTURE_EPOCH, Fork, NetworkConfig
from node.chain.beacon.containers import (
    DOMAIN_SYNC_COMMITTEE,
    EXECUTION_PAYLOAD_GINDEX,
    MINIMAL,
    BeaconBlockHeader,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientTypes,
    LightClientUpdate,
    Preset,
    SyncAggregate,
    SyncCommittee,
    compute_domain,
    compute_signing_root,
    light_client_types,
)
from node.chain.beacon.ssz import (
    Bytes4,
    Bytes32,
    Bytes96,
    Container,
    SszType,
    floorlog2,
    generalized_index,
    merkle_proof,
    normalize_merkle_branch,
    ssz_field,
    uint64,
)
from node.chain.beacon.store import ExecutionHead

CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""r, the order of the BLS12-381 groups: secret keys are integers in [1, r)."""

GENESIS_TIME = 1_700_000_000
FIRST_EXECUTION_BLOCK = 20_000_000
"""Execution block number of the first simulated block with an execution payload."""
ZERO = bytes(32)
FORK_ORDER = ("phase0", "altair", "bellatrix", "capella", "deneb", "electra")
FORK_VERSIONS = {name: bytes([index, 0, 0, 1]) for index, name in enumerate(FORK_ORDER)}
"""The minimal preset's fork versions (0x00000001, 0x01000001, ...)."""


def _at_least(fork: str, than: str) -> bool:
    return FORK_ORDER.index(fork) >= FORK_ORDER.index(than)


def sim_network(forks: Mapping[str, int], *, preset: Preset = MINIMAL, name: str = "sim",
                genesis_time: int = GENESIS_TIME, seconds_per_slot: int = 6,
                genesis_validators_root: bytes | None = None) -> NetworkConfig:
    """A network whose forks activate at ``forks`` (name -> epoch; forks left out are
    unscheduled, so give every fork up to the last one you want)."""
    unknown = set(forks) - set(FORK_ORDER[1:])
    if unknown:
        raise ValueError(f"unknown fork(s) {sorted(unknown)}: use {', '.join(FORK_ORDER[1:])}")
    schedule = [Fork("phase0", FORK_VERSIONS["phase0"], 0)]
    schedule += [Fork(fork, FORK_VERSIONS[fork], forks.get(fork, FAR_FUTURE_EPOCH))
                 for fork in FORK_ORDER[1:]]
    if genesis_validators_root is None:
        genesis_validators_root = hashlib.sha256(b"orbital beacon sim " + name.encode()).digest()
    return NetworkConfig(name=name, preset=preset,
                         genesis_validators_root=genesis_validators_root,
                         genesis_time=genesis_time, seconds_per_slot=seconds_per_slot,
                         forks=tuple(schedule))


class SimClock:
    """An injectable clock (``LightClient(clock=...)``) set by slot: ``clock.at_slot(s)``."""

    def __init__(self, config: NetworkConfig, slot: int = 0) -> None:
        self.config = config
        self.now = float(config.slot_start(slot))

    def __call__(self) -> float:
        return self.now

    def at_slot(self, slot: int) -> SimClock:
        self.now = float(self.config.slot_start(slot))
        return self

    def later(self, seconds: float) -> SimClock:
        self.now += seconds
        return self


# -- containers shaped like the chain's ----------------------------------------------------


class Checkpoint(Container):
    """phase0 ``Checkpoint``."""

    epoch: int = ssz_field(uint64)
    root: bytes = ssz_field(Bytes32)


class ForkInfo(Container):
    """phase0 ``Fork`` (the state's ``fork`` field)."""

    previous_version: bytes = ssz_field(Bytes4)
    current_version: bytes = ssz_field(Bytes4)
    epoch: int = ssz_field(uint64)


def _container(name: str, schema: Sequence[tuple[str, SszType | type[Container]]]
               ) -> type[Container]:
    namespace: dict[str, Any] = {"__annotations__": {field: Any for field, _ in schema},
                                 "__module__": __name__, "__qualname__": name}
    namespace.update({field: ssz_field(typ) for field, typ in schema})
    return cast(type[Container], type(name, (Container,), namespace))


_UINT_FIELDS = frozenset({
    "genesis_time", "slot", "eth1_deposit_index", "next_withdrawal_index",
    "next_withdrawal_validator_index", "deposit_requests_start_index",
    "deposit_balance_to_consume", "exit_balance_to_consume", "earliest_exit_epoch",
    "consolidation_balance_to_consume", "earliest_consolidation_epoch"})
_CHECKPOINT_FIELDS = ("previous_justified_checkpoint", "current_justified_checkpoint",
                      "finalized_checkpoint")

# BeaconState's fields in order (altair, bellatrix, capella, electra beacon-chain.md); Deneb
# changed only the execution payload header's type, not the state's shape.
_STATE_FIELDS = {
    "altair": (
        "genesis_time", "genesis_validators_root", "slot", "fork", "latest_block_header",
        "block_roots", "state_roots", "historical_roots", "eth1_data", "eth1_data_votes",
        "eth1_deposit_index", "validators", "balances", "randao_mixes", "slashings",
        "previous_epoch_participation", "current_epoch_participation", "justification_bits",
        "previous_justified_checkpoint", "current_justified_checkpoint",
        "finalized_checkpoint", "inactivity_scores", "current_sync_committee",
        "next_sync_committee"),
}
_STATE_FIELDS["bellatrix"] = (*_STATE_FIELDS["altair"], "latest_execution_payload_header")
_STATE_FIELDS["capella"] = (*_STATE_FIELDS["bellatrix"], "next_withdrawal_index",
                            "next_withdrawal_validator_index", "historical_summaries")
_STATE_FIELDS["deneb"] = _STATE_FIELDS["capella"]
_STATE_FIELDS["electra"] = (*_STATE_FIELDS["capella"], "deposit_requests_start_index",
                            "deposit_balance_to_consume", "exit_balance_to_consume",
                            "earliest_exit_epoch", "consolidation_balance_to_consume",
                            "earliest_consolidation_epoch", "pending_deposits",
                            "pending_partial_withdrawals", "pending_consolidations")

# BeaconBlockBody's fields in order (altair .. electra beacon-chain.md).
_BODY_FIELDS = {
    "altair": ("randao_reveal", "eth1_data", "graffiti", "proposer_slashings",
               "attester_slashings", "attestations", "deposits", "voluntary_exits",
               "sync_aggregate"),
}
_BODY_FIELDS["bellatrix"] = (*_BODY_FIELDS["altair"], "execution_payload")
_BODY_FIELDS["capella"] = (*_BODY_FIELDS["bellatrix"], "bls_to_execution_changes")
_BODY_FIELDS["deneb"] = (*_BODY_FIELDS["capella"], "blob_kzg_commitments")
_BODY_FIELDS["electra"] = (*_BODY_FIELDS["deneb"], "execution_requests")


_HEADER_SHAPE = {"phase0": 0, "altair": 0, "bellatrix": 0, "capella": 1, "deneb": 2,
                 "electra": 2}
"""Which light-client header a fork's blocks need (Altair's, Capella's, Deneb's)."""


def _state_shape(fork: str) -> str:
    return "altair" if fork == "phase0" else fork


@functools.cache
def state_class(fork: str, preset: Preset) -> type[Container]:
    """A container with ``fork``'s ``BeaconState`` field positions (see the module docstring)."""
    committee = light_client_types("altair", preset).SyncCommittee
    schema: list[tuple[str, SszType | type[Container]]] = []
    for name in _STATE_FIELDS[_state_shape(fork)]:
        if name in _UINT_FIELDS:
            schema.append((name, uint64))
        elif name in _CHECKPOINT_FIELDS:
            schema.append((name, Checkpoint))
        elif name == "fork":
            schema.append((name, ForkInfo))
        elif name.endswith("sync_committee"):
            schema.append((name, committee))
        else:
            schema.append((name, Bytes32))
    cls = _container(f"SimBeaconState{fork.capitalize()}", schema)
    types = light_client_types("electra" if fork == "electra" else "deneb", preset)
    assert generalized_index(cls, "finalized_checkpoint", "root") == types.finalized_root_gindex
    assert generalized_index(cls, "current_sync_committee") == types.current_sync_committee_gindex
    assert generalized_index(cls, "next_sync_committee") == types.next_sync_committee_gindex
    return cls


@functools.cache
def body_class(fork: str) -> type[Container]:
    """A container with ``fork``'s ``BeaconBlockBody`` field positions; from Bellatrix on
    ``execution_payload`` holds the payload's header (a payload and its header share a root)."""
    shape = _state_shape(fork)
    schema: list[tuple[str, SszType | type[Container]]] = []
    for name in _BODY_FIELDS[shape]:
        if name == "randao_reveal":
            schema.append((name, Bytes96))
        elif name == "execution_payload":
            execution = light_client_types(shape, MINIMAL).ExecutionPayloadHeader
            assert execution is not None
            schema.append((name, execution))
        else:
            schema.append((name, Bytes32))
    cls = _container(f"SimBeaconBlockBody{fork.capitalize()}", schema)
    if _at_least(fork, "bellatrix"):
        assert generalized_index(cls, "execution_payload") == EXECUTION_PAYLOAD_GINDEX
    return cls


@dataclass(frozen=True)
class SimBlock:
    """One block of the simulated chain, with its post-state."""

    fork: str
    header: BeaconBlockHeader
    state: Container
    body: Container
    execution: ExecutionPayloadHeader | None  # None before Bellatrix

    @property
    def slot(self) -> int:
        return self.header.slot

    @property
    def root(self) -> bytes:
        return self.header.hash_tree_root()


def _h(*parts: object) -> bytes:
    return hashlib.sha256(b"|".join(str(p).encode() if not isinstance(p, bytes) else p
                                    for p in parts)).digest()


Participation = int | Sequence[bool] | None
"""Who signs: everyone (None), ``n`` members chosen pseudo-randomly, or explicit bits."""


class BeaconChainSim:
    """A deterministic beacon chain (see the module docstring).

    ``dense`` builds a block at every slot from ``start_slot`` up to the highest slot asked
    for (except ``empty_slots``); otherwise only the slots asked for and the checkpoint blocks
    their states finalize (use it for the mainnet preset, whose periods are 8192 slots).
    Blocks are built in slot order: once slot ``s`` is built, an unbuilt slot below ``s`` is
    an empty slot.

    ``finality(epoch)`` is the finalized epoch in the state of a block of ``epoch``;
    ``committee_seeds[p]`` replaces the seed of period ``p``'s committee (a conflicting
    chain); ``pubkey_overrides[p][i]`` replaces member ``i``'s public key as the chain
    records it (a committee with a malformed key); ``extra_data`` fills the execution
    headers' ``extra_data``; ``execution_headers[slot]`` (a :class:`~node.chain.header.Header`)
    is the execution block the beacon block of ``slot`` carries (number, hashes, roots), so
    the light client proves a real execution header.
    """

    def __init__(self, config: NetworkConfig, *, seed: bytes = b"orbital",
                 start_slot: int = 0, dense: bool = True,
                 finality: Callable[[int], int] | None = None,
                 empty_slots: Sequence[int] = (),
                 committee_seeds: Mapping[int, bytes] | None = None,
                 pubkey_overrides: Mapping[int, Mapping[int, bytes]] | None = None,
                 extra_data: bytes = b"orbital sim",
                 execution_headers: Mapping[int, Any] | None = None) -> None:
        self.config = config
        self.preset = config.preset
        self.seed = seed
        self.start_slot = start_slot
        self.dense = dense
        self.finality = finality or (lambda epoch: max(0, epoch - 2))
        self.empty_slots = frozenset(empty_slots)
        self.committee_seeds = dict(committee_seeds or {})
        self.pubkey_overrides = {p: dict(m) for p, m in (pubkey_overrides or {}).items()}
        self.extra_data = extra_data
        self.execution_headers = dict(execution_headers or {})
        self._blocks: dict[int, SimBlock] = {}
        self._slots: list[int] = []  # built slots, ascending
        self._by_root: dict[bytes, SimBlock] = {}

    # -- time ------------------------------------------------------------------------------

    @property
    def slots_per_period(self) -> int:
        return self.preset.slots_per_epoch * self.preset.epochs_per_sync_committee_period

    def period(self, slot: int) -> int:
        return slot // self.slots_per_period

    def period_start(self, period: int) -> int:
        return period * self.slots_per_period

    def epoch(self, slot: int) -> int:
        return slot // self.preset.slots_per_epoch

    def fork(self, slot: int) -> str:
        return self.config.fork_at_slot(slot).name

    def types(self, fork: str) -> LightClientTypes:
        return light_client_types("altair" if fork == "phase0" else fork, self.preset)

    # -- sync committees -------------------------------------------------------------------

    @functools.cache  # noqa: B019 -- a sim lives as long as its tests
    def secret_keys(self, period: int) -> tuple[int, ...]:
        """The committee's secret keys in [1, r)."""
        seed = self.committee_seeds.get(period, self.seed)
        keys = []
        for index in range(self.preset.sync_committee_size):
            sk = int.from_bytes(_h(seed, "sync committee", period, index), "big") % CURVE_ORDER
            keys.append(sk or 1)
        return tuple(keys)

    @staticmethod
    def scalar(sk: int) -> Scalar:
        return Scalar.from_le_bytes(sk.to_bytes(32, "little"))

    @functools.cache  # noqa: B019
    def committee(self, period: int) -> SyncCommittee:
        """The committee of ``period`` as the chain's states record it."""
        points = [G1Point() * self.scalar(sk) for sk in self.secret_keys(period)]
        aggregate = G1Point.identity()
        for point in points:
            aggregate = aggregate + point
        pubkeys = [point.to_compressed_bytes() for point in points]
        for index, key in self.pubkey_overrides.get(period, {}).items():
            pubkeys[index] = key
        return self.types("altair").SyncCommittee(pubkeys=tuple(pubkeys),
                                                  aggregate_pubkey=aggregate.to_compressed_bytes())

    def participation_bits(self, participation: Participation, salt: int = 0
                           ) -> tuple[bool, ...]:
        size = self.preset.sync_committee_size
        if participation is None:
            return (True,) * size
        if isinstance(participation, int):
            if not 0 <= participation <= size:
                raise ValueError(f"{participation} signers in a committee of {size}")
            chosen = set(random.Random(salt).sample(range(size), participation))
            return tuple(i in chosen for i in range(size))
        bits = tuple(bool(b) for b in participation)
        if len(bits) != size:
            raise ValueError(f"{len(bits)} bits for a committee of {size}")
        return bits

    def domain(self, signature_slot: int, fork: str | None = None) -> bytes:
        """The sync-committee domain of ``signature_slot`` (fork version at
        ``signature_slot - 1``), or of ``fork`` if given (to lie)."""
        if fork is None:
            version = self.config.fork_at_slot(max(signature_slot, 1) - 1).version
        else:
            version = self.config.fork(fork).version
        return compute_domain(DOMAIN_SYNC_COMMITTEE, version,
                              self.config.genesis_validators_root)

    def sign(self, period: int, bits: Sequence[bool], message: bytes) -> bytes:
        """The aggregate signature of the members of ``period``'s committee whose bit is
        set over ``message`` (a 32-byte signing root): each signs, the signatures are summed."""
        hashed = G2Point.hash_to_curve(message, DST)
        total = G2Point.identity()
        for sk, bit in zip(self.secret_keys(period), bits, strict=True):
            if bit:
                total = total + hashed * self.scalar(sk)
        return total.to_compressed_bytes()

    def sync_aggregate(self, header: BeaconBlockHeader, signature_slot: int,
                       participation: Participation = None, *, fmt: str = "altair",
                       domain_fork: str | None = None,
                       signer_period: int | None = None) -> SyncAggregate:
        """The committee of ``signature_slot``'s period (or ``signer_period``) signing
        ``header`` in the domain of ``signature_slot`` (or of ``domain_fork``)."""
        period = self.period(signature_slot) if signer_period is None else signer_period
        bits = self.participation_bits(participation, salt=signature_slot)
        root = compute_signing_root(header, self.domain(signature_slot, domain_fork))
        return self.types(fmt).SyncAggregate(sync_committee_bits=bits,
                                             sync_committee_signature=self.sign(period, bits,
                                                                                root))

    # -- blocks ----------------------------------------------------------------------------

    def block(self, slot: int) -> SimBlock:
        """The block at ``slot`` (built, with the blocks before it, on first use)."""
        found = self._blocks.get(slot)
        if found is not None:
            return found
        if slot < self.start_slot or slot in self.empty_slots or (
                self._slots and slot < self._slots[-1]):
            raise ValueError(f"no block at slot {slot} (an empty slot of the simulated chain)")
        self._build(slot)
        return self._blocks[slot]

    def root(self, slot: int) -> bytes:
        return self.block(slot).root

    def _build(self, slot: int) -> None:
        if self.dense:
            first = self._slots[-1] + 1 if self._slots else self.start_slot
            for t in range(first, slot + 1):
                if t not in self.empty_slots:
                    self._make(t)
            return
        epoch = self.finality(self.epoch(slot))
        checkpoint_slot = epoch * self.preset.slots_per_epoch
        if (epoch and checkpoint_slot >= self.start_slot and checkpoint_slot < slot
                and checkpoint_slot not in self.empty_slots
                and (not self._slots or checkpoint_slot > self._slots[-1])):
            self._build(checkpoint_slot)
        self._make(slot)

    def _latest_at_or_before(self, slot: int) -> SimBlock | None:
        index = bisect.bisect_right(self._slots, slot)
        return self._blocks[self._slots[index - 1]] if index else None

    def _checkpoint(self, epoch: int) -> Checkpoint:
        """The checkpoint of ``epoch``: the block at its first slot, or the latest before
        (the genesis checkpoint has a zero root, as in the chain's states)."""
        if epoch == 0:
            return Checkpoint(epoch=0, root=ZERO)
        block = self._latest_at_or_before(epoch * self.preset.slots_per_epoch)
        return Checkpoint(epoch=epoch, root=block.root if block else _h(self.seed, "pre", epoch))

    def _execution(self, slot: int, fork: str, previous: SimBlock | None
                   ) -> ExecutionPayloadHeader | None:
        if not _at_least(fork, "bellatrix"):
            return None
        cls = light_client_types(_state_shape(fork), MINIMAL).ExecutionPayloadHeader
        assert cls is not None
        parent = previous.execution if previous is not None else None
        number = parent.block_number + 1 if parent is not None else FIRST_EXECUTION_BLOCK
        values: dict[str, Any] = {
            "parent_hash": parent.block_hash if parent is not None else _h(self.seed, "el", 0),
            "fee_recipient": _h(self.seed, "fee", number)[:20],
            "state_root": _h(self.seed, "el state", number),
            "receipts_root": _h(self.seed, "el receipts", number),
            "logs_bloom": bytes(256),
            "prev_randao": _h(self.seed, "randao", slot),
            "block_number": number,
            "gas_limit": 36_000_000,
            "gas_used": 21_000 * (number % 1000),
            "timestamp": self.config.slot_start(slot),
            "extra_data": self.extra_data,
            "base_fee_per_gas": 7 + number % 100,
            "block_hash": _h(self.seed, "el block", number),
            "transactions_root": _h(self.seed, "el txs", number),
            "withdrawals_root": _h(self.seed, "el withdrawals", number),
            "blob_gas_used": 131_072 * (number % 7),
            "excess_blob_gas": 131_072 * (number % 11),
        }
        real = self.execution_headers.get(slot)
        if real is not None:
            values.update(block_number=real.number, block_hash=real.hash,
                          parent_hash=real.parent_hash, state_root=real.state_root,
                          receipts_root=real.receipts_root, timestamp=real.timestamp)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def _make(self, slot: int) -> None:
        fork = self.fork(slot)
        previous = self._blocks[self._slots[-1]] if self._slots else None
        execution = self._execution(slot, fork, previous)
        body_values: dict[str, Any] = {}
        for name in _BODY_FIELDS[_state_shape(fork)]:
            if name == "randao_reveal":
                body_values[name] = _h(self.seed, "randao reveal", slot) * 3
            elif name == "execution_payload":
                body_values[name] = execution
            else:
                body_values[name] = _h(self.seed, name, slot)
        body = body_class(fork)(**body_values)
        period = self.period(slot)
        epoch = self.epoch(slot)
        finalized_epoch = self.finality(epoch)
        if not 0 <= finalized_epoch <= epoch:
            raise ValueError(f"finality({epoch}) = {finalized_epoch} is not in [0, {epoch}]")
        config_fork = self.config.fork_at_slot(slot)
        previous_version = self.config.forks[max(self.config.forks.index(config_fork) - 1, 0)]
        state_values: dict[str, Any] = {}
        for name in _STATE_FIELDS[_state_shape(fork)]:
            if name == "genesis_time":
                state_values[name] = self.config.genesis_time
            elif name == "genesis_validators_root":
                state_values[name] = self.config.genesis_validators_root
            elif name == "slot":
                state_values[name] = slot
            elif name == "fork":
                state_values[name] = ForkInfo(previous_version=previous_version.version,
                                              current_version=config_fork.version,
                                              epoch=config_fork.epoch)
            elif name == "finalized_checkpoint":
                state_values[name] = self._checkpoint(finalized_epoch)
            elif name == "current_justified_checkpoint":
                state_values[name] = self._checkpoint(max(finalized_epoch, epoch - 1))
            elif name == "previous_justified_checkpoint":
                state_values[name] = self._checkpoint(max(finalized_epoch, epoch - 2))
            elif name == "current_sync_committee":
                state_values[name] = self.committee(period)
            elif name == "next_sync_committee":
                state_values[name] = self.committee(period + 1)
            elif name == "latest_execution_payload_header":
                state_values[name] = execution.hash_tree_root() if execution else ZERO
            elif name in _UINT_FIELDS:
                state_values[name] = slot // 4
            else:
                state_values[name] = _h(self.seed, name, slot)
        state = state_class(fork, self.preset)(**state_values)
        header = BeaconBlockHeader(
            slot=slot,
            proposer_index=int.from_bytes(_h(self.seed, "proposer", slot)[:4], "little") % 10_000,
            parent_root=previous.root if previous is not None else _h(self.seed, "parent"),
            state_root=state.hash_tree_root(),
            body_root=body.hash_tree_root())
        block = SimBlock(fork, header, state, body, execution)
        self._blocks[slot] = block
        self._slots.append(slot)
        self._by_root[block.root] = block

    def finalized_block(self, slot: int) -> SimBlock | None:
        """The block the state at ``slot`` finalizes; None for the genesis checkpoint."""
        checkpoint = self.block(slot).state.finalized_checkpoint  # type: ignore[attr-defined]
        if checkpoint.root == ZERO:
            return None
        found = self._by_root.get(checkpoint.root)
        if found is None:
            raise ValueError(f"slot {slot} finalizes a block before the simulated history")
        return found

    def execution_head(self, slot: int) -> ExecutionHead:
        """Block number, hash and state root of the execution payload at ``slot``."""
        execution = self.block(slot).execution
        if execution is None:
            raise ValueError(f"slot {slot} ({self.fork(slot)}) has no execution payload")
        return ExecutionHead(slot, execution.block_number, execution.block_hash,
                             execution.state_root)

    # -- light-client data -----------------------------------------------------------------

    def lc_header(self, slot: int, fmt: str | None = None) -> LightClientHeader:
        """The light-client header of the block at ``slot`` in the format of fork ``fmt``
        (default: the block's own fork); older headers in a newer format carry a default
        execution header (before Capella) or the old one with zero new fields."""
        block = self.block(slot)
        fmt = fmt or block.fork
        types = self.types(fmt)
        cls = types.LightClientHeader
        if _HEADER_SHAPE[block.fork] > _HEADER_SHAPE[fmt]:
            raise ValueError(f"a {block.fork} header cannot be written in the {fmt} format")
        if not _at_least(fmt, "capella"):
            return cls(beacon=block.header)
        execution_cls = next(f.metadata["ssz"] for f in fields(cls) if f.name == "execution")
        if not _at_least(block.fork, "capella"):
            return cls(beacon=block.header, execution=execution_cls.default(),
                       execution_branch=(ZERO,) * 4)
        assert block.execution is not None
        names = {f.name for f in fields(execution_cls)}
        values = {f.name: getattr(block.execution, f.name) for f in fields(block.execution)}
        execution = execution_cls(**{**{n: getattr(execution_cls.default(), n) for n in names},
                                     **{k: v for k, v in values.items() if k in names}})
        branch = merkle_proof(block.body, EXECUTION_PAYLOAD_GINDEX)
        return cls(beacon=block.header, execution=execution, execution_branch=branch)

    def state_branch(self, slot: int, what: str, fmt: str) -> tuple[bytes, ...]:
        """The branch of ``what`` (``finalized``, ``current``, ``next``) in the state at
        ``slot``, normalised to the depth of ``fmt``'s containers."""
        block = self.block(slot)
        own = self.types(block.fork)
        target = self.types(fmt)
        name = {"finalized": "finalized_root_gindex", "current": "current_sync_committee_gindex",
                "next": "next_sync_committee_gindex"}[what]
        branch = merkle_proof(block.state, getattr(own, name))
        depth = floorlog2(getattr(target, name))
        if depth < len(branch):
            raise ValueError(f"a {block.fork} state branch does not fit the {fmt} format")
        return normalize_merkle_branch(branch, getattr(target, name))

    def bootstrap(self, slot: int, fmt: str | None = None) -> LightClientBootstrap:
        """``LightClientBootstrap`` for the block at ``slot`` (trusted root: :meth:`root`)."""
        fmt = fmt or self.fork(slot)
        return self.types(fmt).LightClientBootstrap(
            header=self.lc_header(slot, fmt),
            current_sync_committee=self.committee(self.period(slot)),
            current_sync_committee_branch=self.state_branch(slot, "current", fmt))

    def update(self, attested_slot: int, *, signature_slot: int | None = None,
               next_committee: bool = True, finality: bool = True,
               participation: Participation = None, fmt: str | None = None,
               domain_fork: str | None = None, signer_period: int | None = None
               ) -> LightClientUpdate:
        """``LightClientUpdate`` attesting the block at ``attested_slot``, signed at
        ``signature_slot`` (default the next slot) by that slot's committee; with the next
        committee and the state's finalized header unless told otherwise. ``fmt`` is the
        container format (default the attested slot's fork, as the Beacon API serves it)."""
        signature_slot = attested_slot + 1 if signature_slot is None else signature_slot
        fmt = fmt or self.fork(attested_slot)
        types = self.types(fmt)
        attested = self.lc_header(attested_slot, fmt)
        if next_committee:
            committee = self.committee(self.period(attested_slot) + 1)
            committee_branch = self.state_branch(attested_slot, "next", fmt)
        else:
            committee = types.SyncCommittee.default()
            committee_branch = (ZERO,) * floorlog2(types.next_sync_committee_gindex)
        if finality:
            finalized_block = self.finalized_block(attested_slot)
            finalized = (types.LightClientHeader.default() if finalized_block is None
                         else self.lc_header(finalized_block.slot, fmt))
            finality_branch = self.state_branch(attested_slot, "finalized", fmt)
        else:
            finalized = types.LightClientHeader.default()
            finality_branch = (ZERO,) * floorlog2(types.finalized_root_gindex)
        aggregate = self.sync_aggregate(attested.beacon, signature_slot, participation,
                                        fmt=fmt, domain_fork=domain_fork,
                                        signer_period=signer_period)
        return types.LightClientUpdate(
            attested_header=attested, next_sync_committee=committee,
            next_sync_committee_branch=committee_branch, finalized_header=finalized,
            finality_branch=finality_branch, sync_aggregate=aggregate,
            signature_slot=signature_slot)

    def finality_update(self, attested_slot: int, **options: Any) -> LightClientFinalityUpdate:
        """``LightClientFinalityUpdate``: :meth:`update` without the next committee."""
        update = self.update(attested_slot, next_committee=False, finality=True, **options)
        return self.types(options.get("fmt") or self.fork(attested_slot)) \
            .LightClientFinalityUpdate(
                attested_header=update.attested_header,
                finalized_header=update.finalized_header,
                finality_branch=update.finality_branch, sync_aggregate=update.sync_aggregate,
                signature_slot=update.signature_slot)

    def optimistic_update(self, attested_slot: int, **options: Any
                          ) -> LightClientOptimisticUpdate:
        """``LightClientOptimisticUpdate``: a signed attested header only."""
        update = self.update(attested_slot, next_committee=False, finality=False, **options)
        return self.types(options.get("fmt") or self.fork(attested_slot)) \
            .LightClientOptimisticUpdate(
                attested_header=update.attested_header, sync_aggregate=update.sync_aggregate,
                signature_slot=update.signature_slot)
