"""The beacon chain's light-client containers, for each fork and preset.

A light client follows the beacon chain with a handful of SSZ containers (consensus-specs
``specs/altair/light-client/sync-protocol.md`` "Containers", modified by Capella, Deneb and
Electra):

* :class:`LightClientBootstrap` -- a trusted block's header plus the sync committee of its
  period and the Merkle branch that ties the committee to the header's state root;
* :class:`LightClientUpdate` -- an attested header signed by the sync committee (the
  :class:`SyncAggregate`), with the next committee and a finalized header, each proven
  against the attested header's state root; :class:`LightClientFinalityUpdate` and
  :class:`LightClientOptimisticUpdate` are the same without the next committee (and
  without the finalized header);
* :class:`LightClientHeader` -- a :class:`BeaconBlockHeader`, and from Capella on the
  block's :class:`ExecutionPayloadHeader` proven against its ``body_root``.

Their shapes change with the fork (Capella adds the execution header, Deneb two blob-gas
fields, Electra one more level in every state branch, since ``BeaconState`` outgrew 32
fields) and with the preset (the committee has 512 members on mainnet, 32 under the
``minimal`` preset of the specification tests). :func:`light_client_types` picks the
concrete classes for a fork and preset::

    types = light_client_types("deneb", "mainnet")
    update = types.LightClientUpdate.decode(data)   # strict SSZ
    update.attested_header.beacon.hash_tree_root()

The module-level classes of the same names are the abstract families: use them in type
annotations and ``isinstance``; every concrete class derives from its family. Values of
one preset share classes across forks (a mainnet ``SyncCommittee`` is the same class under
Altair and Electra), and Bellatrix uses Altair's containers, Fulu Electra's (Fulu changed
no light-client container).

The signing helpers (:func:`compute_domain`, :func:`compute_signing_root`, fork digests)
are phase0's (``specs/phase0/beacon-chain.md`` "Misc").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from node.chain.beacon.ssz import (
    Bitvector,
    ByteList,
    Bytes4,
    Bytes20,
    Bytes32,
    Bytes48,
    Bytes96,
    ByteVector,
    Container,
    SszError,
    Vector,
    floorlog2,
    ssz_field,
    uint64,
    uint256,
)

# -- Custom types (phase0 beacon-chain.md "Custom types"; bellatrix "Custom types") --------

Slot = uint64
Epoch = uint64
ValidatorIndex = uint64
Root = Bytes32
Hash32 = Bytes32
Version = Bytes4
DomainType = Bytes4
Domain = Bytes32
BLSPubkey = Bytes48
BLSSignature = Bytes96
ExecutionAddress = Bytes20

# -- Constants ----------------------------------------------------------------------------

FINALIZED_ROOT_GINDEX = 105
"""``get_generalized_index(altair.BeaconState, 'finalized_checkpoint', 'root')``."""
CURRENT_SYNC_COMMITTEE_GINDEX = 54
"""``get_generalized_index(altair.BeaconState, 'current_sync_committee')``."""
NEXT_SYNC_COMMITTEE_GINDEX = 55
"""``get_generalized_index(altair.BeaconState, 'next_sync_committee')``."""
FINALIZED_ROOT_GINDEX_ELECTRA = 169
"""The same in Electra's ``BeaconState`` (37 fields: one level deeper)."""
CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA = 86
NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA = 87
EXECUTION_PAYLOAD_GINDEX = 25
"""``get_generalized_index(BeaconBlockBody, 'execution_payload')`` (Capella on)."""

DOMAIN_SYNC_COMMITTEE = bytes.fromhex("07000000")
"""Domain type of sync-committee signatures (altair beacon-chain.md "Domain types")."""

BYTES_PER_LOGS_BLOOM = 256
MAX_EXTRA_DATA_BYTES = 32


@dataclass(frozen=True)
class Preset:
    """The preset values a light client depends on (consensus-specs ``presets/*/``)."""

    name: str
    sync_committee_size: int  # SYNC_COMMITTEE_SIZE (altair)
    slots_per_epoch: int  # SLOTS_PER_EPOCH (phase0)
    epochs_per_sync_committee_period: int  # EPOCHS_PER_SYNC_COMMITTEE_PERIOD (altair)
    min_sync_committee_participants: int  # MIN_SYNC_COMMITTEE_PARTICIPANTS (altair)

    @property
    def update_timeout(self) -> int:
        """UPDATE_TIMEOUT: slots in one sync-committee period."""
        return self.slots_per_epoch * self.epochs_per_sync_committee_period


MAINNET = Preset("mainnet", 512, 32, 256, 1)
MINIMAL = Preset("minimal", 32, 8, 8, 1)
PRESETS: dict[str, Preset] = {preset.name: preset for preset in (MAINNET, MINIMAL)}


# -- Containers that do not depend on the fork or preset -----------------------------------


class BeaconBlockHeader(Container):
    """A beacon block without its body (phase0 beacon-chain.md): the thing light
    clients follow. Its ``hash_tree_root`` is the block root."""

    slot: int = ssz_field(Slot)
    proposer_index: int = ssz_field(ValidatorIndex)
    parent_root: bytes = ssz_field(Root)
    state_root: bytes = ssz_field(Root)  # root of the BeaconState the branches prove against
    body_root: bytes = ssz_field(Root)  # root of the BeaconBlockBody (execution branch)


class ForkData(Container):
    """Input of the fork data root (phase0 beacon-chain.md)."""

    current_version: bytes = ssz_field(Version)
    genesis_validators_root: bytes = ssz_field(Root)


class SigningData(Container):
    """What is actually signed: an object's root bound to a domain (phase0)."""

    object_root: bytes = ssz_field(Root)
    domain: bytes = ssz_field(Domain)


class ExecutionPayloadHeader(Container, abstract=True):
    """The execution block as the beacon chain records it (bellatrix beacon-chain.md);
    the fields every fork's header has. Concrete: :class:`BellatrixExecutionPayloadHeader`,
    :class:`CapellaExecutionPayloadHeader`, :class:`DenebExecutionPayloadHeader` (also
    Electra's)."""

    parent_hash: bytes = ssz_field(Hash32)
    fee_recipient: bytes = ssz_field(ExecutionAddress)
    state_root: bytes = ssz_field(Bytes32)  # the execution state root
    receipts_root: bytes = ssz_field(Bytes32)
    logs_bloom: bytes = ssz_field(ByteVector(BYTES_PER_LOGS_BLOOM))
    prev_randao: bytes = ssz_field(Bytes32)
    block_number: int = ssz_field(uint64)
    gas_limit: int = ssz_field(uint64)
    gas_used: int = ssz_field(uint64)
    timestamp: int = ssz_field(uint64)
    extra_data: bytes = ssz_field(ByteList(MAX_EXTRA_DATA_BYTES))
    base_fee_per_gas: int = ssz_field(uint256)
    block_hash: bytes = ssz_field(Hash32)  # the execution block hash
    transactions_root: bytes = ssz_field(Root)


class BellatrixExecutionPayloadHeader(ExecutionPayloadHeader):
    """Bellatrix's execution payload header (bellatrix beacon-chain.md)."""


class CapellaExecutionPayloadHeader(ExecutionPayloadHeader):
    """Capella's: adds the withdrawals root (capella beacon-chain.md, EIP-4895)."""

    withdrawals_root: bytes = ssz_field(Root)


class DenebExecutionPayloadHeader(ExecutionPayloadHeader):
    """Deneb's, unchanged in Electra: adds the blob gas fields (deneb beacon-chain.md,
    EIP-4844)."""

    withdrawals_root: bytes = ssz_field(Root)
    blob_gas_used: int = ssz_field(uint64)
    excess_blob_gas: int = ssz_field(uint64)


EXECUTION_BRANCH_DEPTH = floorlog2(EXECUTION_PAYLOAD_GINDEX)
"""Length of ``execution_branch`` (capella light-client ``ExecutionBranch``): 4."""


class LightClientHeader(Container, abstract=True):
    """A beacon block header as light clients carry it (altair light-client
    sync-protocol.md; capella and deneb "Modified LightClientHeader"). Concrete:
    :class:`AltairLightClientHeader` (also Bellatrix's), :class:`CapellaLightClientHeader`,
    :class:`DenebLightClientHeader` (also Electra's)."""

    beacon: BeaconBlockHeader = ssz_field(BeaconBlockHeader)


class AltairLightClientHeader(LightClientHeader):
    """Altair and Bellatrix: the beacon block header only."""


class CapellaLightClientHeader(LightClientHeader):
    """Capella: with the execution payload header and its branch to ``beacon.body_root``
    at :data:`EXECUTION_PAYLOAD_GINDEX`."""

    execution: CapellaExecutionPayloadHeader = ssz_field(CapellaExecutionPayloadHeader)
    execution_branch: tuple[bytes, ...] = ssz_field(Vector(Bytes32, EXECUTION_BRANCH_DEPTH))


class DenebLightClientHeader(LightClientHeader):
    """Deneb and Electra: as Capella's, with Deneb's execution payload header."""

    execution: DenebExecutionPayloadHeader = ssz_field(DenebExecutionPayloadHeader)
    execution_branch: tuple[bytes, ...] = ssz_field(Vector(Bytes32, EXECUTION_BRANCH_DEPTH))


# -- Families whose shape depends on the preset (and fork): concrete classes come from
#    light_client_types() -----------------------------------------------------------------


class SyncCommittee(Container, abstract=True):
    """The committee that signs headers for one period (altair beacon-chain.md)."""

    pubkeys: tuple[bytes, ...]  # SYNC_COMMITTEE_SIZE BLS public keys (48 bytes, compressed)
    aggregate_pubkey: bytes  # the sum of all of them


class SyncAggregate(Container, abstract=True):
    """Which committee members signed, and their aggregate signature (altair)."""

    sync_committee_bits: tuple[bool, ...]  # one bit per committee member
    sync_committee_signature: bytes  # 96-byte BLS aggregate signature


class LightClientBootstrap(Container, abstract=True):
    """A trusted header with its period's sync committee (altair light-client
    sync-protocol.md); the branch proves the committee against ``header.beacon.state_root``
    at the current-sync-committee gindex."""

    header: LightClientHeader
    current_sync_committee: SyncCommittee
    current_sync_committee_branch: tuple[bytes, ...]


class LightClientUpdate(Container, abstract=True):
    """An update (altair light-client sync-protocol.md): ``sync_aggregate``, made in
    ``signature_slot``, signs ``attested_header``; the branches prove
    ``next_sync_committee`` and ``finalized_header`` against the attested state root.
    Absent parts are default values with zero branches."""

    attested_header: LightClientHeader
    next_sync_committee: SyncCommittee
    next_sync_committee_branch: tuple[bytes, ...]
    finalized_header: LightClientHeader
    finality_branch: tuple[bytes, ...]
    sync_aggregate: SyncAggregate
    signature_slot: int


class LightClientFinalityUpdate(Container, abstract=True):
    """An update without the next sync committee (altair light-client)."""

    attested_header: LightClientHeader
    finalized_header: LightClientHeader
    finality_branch: tuple[bytes, ...]
    sync_aggregate: SyncAggregate
    signature_slot: int


class LightClientOptimisticUpdate(Container, abstract=True):
    """A signed attested header only (altair light-client)."""

    attested_header: LightClientHeader
    sync_aggregate: SyncAggregate
    signature_slot: int


def _named(cls: type[Container], name: str, *params: str) -> None:
    cls.__name__ = name
    cls.__qualname__ = f"{name}[{', '.join(params)}]"


@functools.cache
def _sync_classes(preset: Preset) -> tuple[type[SyncCommittee], type[SyncAggregate]]:
    size = preset.sync_committee_size

    class Committee(SyncCommittee):
        __doc__ = SyncCommittee.__doc__

        pubkeys: tuple[bytes, ...] = ssz_field(Vector(BLSPubkey, size))
        aggregate_pubkey: bytes = ssz_field(BLSPubkey)

    class Aggregate(SyncAggregate):
        __doc__ = SyncAggregate.__doc__

        sync_committee_bits: tuple[bool, ...] = ssz_field(Bitvector(size))
        sync_committee_signature: bytes = ssz_field(BLSSignature)

    _named(Committee, "SyncCommittee", preset.name)
    _named(Aggregate, "SyncAggregate", preset.name)
    return Committee, Aggregate


_HEADERS: dict[str, type[LightClientHeader]] = {
    "altair": AltairLightClientHeader,
    "capella": CapellaLightClientHeader,
    "deneb": DenebLightClientHeader,
    "electra": DenebLightClientHeader,
}


def _state_gindices(shape: str) -> tuple[int, int, int]:
    """Gindices of the finalized root, current and next sync committee in the state."""
    if shape == "electra":
        return (FINALIZED_ROOT_GINDEX_ELECTRA, CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA,
                NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA)
    return FINALIZED_ROOT_GINDEX, CURRENT_SYNC_COMMITTEE_GINDEX, NEXT_SYNC_COMMITTEE_GINDEX


@functools.cache
def _update_classes(shape: str, preset: Preset) -> tuple[
        type[LightClientBootstrap], type[LightClientUpdate], type[LightClientFinalityUpdate],
        type[LightClientOptimisticUpdate]]:
    header_type = _HEADERS[shape]
    committee_type, aggregate_type = _sync_classes(preset)
    finalized, current, next_ = _state_gindices(shape)
    current_branch = Vector(Bytes32, floorlog2(current))
    next_branch = Vector(Bytes32, floorlog2(next_))
    finality_branch_type = Vector(Bytes32, floorlog2(finalized))

    class Bootstrap(LightClientBootstrap):
        __doc__ = LightClientBootstrap.__doc__

        header: LightClientHeader = ssz_field(header_type)
        current_sync_committee: SyncCommittee = ssz_field(committee_type)
        current_sync_committee_branch: tuple[bytes, ...] = ssz_field(current_branch)

    class Update(LightClientUpdate):
        __doc__ = LightClientUpdate.__doc__

        attested_header: LightClientHeader = ssz_field(header_type)
        next_sync_committee: SyncCommittee = ssz_field(committee_type)
        next_sync_committee_branch: tuple[bytes, ...] = ssz_field(next_branch)
        finalized_header: LightClientHeader = ssz_field(header_type)
        finality_branch: tuple[bytes, ...] = ssz_field(finality_branch_type)
        sync_aggregate: SyncAggregate = ssz_field(aggregate_type)
        signature_slot: int = ssz_field(Slot)

    class FinalityUpdate(LightClientFinalityUpdate):
        __doc__ = LightClientFinalityUpdate.__doc__

        attested_header: LightClientHeader = ssz_field(header_type)
        finalized_header: LightClientHeader = ssz_field(header_type)
        finality_branch: tuple[bytes, ...] = ssz_field(finality_branch_type)
        sync_aggregate: SyncAggregate = ssz_field(aggregate_type)
        signature_slot: int = ssz_field(Slot)

    class OptimisticUpdate(LightClientOptimisticUpdate):
        __doc__ = LightClientOptimisticUpdate.__doc__

        attested_header: LightClientHeader = ssz_field(header_type)
        sync_aggregate: SyncAggregate = ssz_field(aggregate_type)
        signature_slot: int = ssz_field(Slot)

    classes = (Bootstrap, Update, FinalityUpdate, OptimisticUpdate)
    for cls, family in zip(classes, (LightClientBootstrap, LightClientUpdate,
                                     LightClientFinalityUpdate, LightClientOptimisticUpdate),
                           strict=True):
        _named(cls, family.__name__, shape, preset.name)
    return classes


_SHAPES = {"altair": "altair", "bellatrix": "altair", "capella": "capella", "deneb": "deneb",
           "electra": "electra", "fulu": "electra"}

FORKS: tuple[str, ...] = tuple(_SHAPES)
"""Fork names with light-client data, oldest first (the Beacon API's ``version`` values)."""

_EXECUTION_HEADERS: dict[str, type[ExecutionPayloadHeader] | None] = {
    "altair": None,
    "bellatrix": BellatrixExecutionPayloadHeader,
    "capella": CapellaExecutionPayloadHeader,
    "deneb": DenebExecutionPayloadHeader,
    "electra": DenebExecutionPayloadHeader,
    "fulu": DenebExecutionPayloadHeader,
}


@dataclass(frozen=True)
class LightClientTypes:
    """The light-client containers and generalized indices of one fork under one preset.

    The branches of a fork's containers have the depth of its gindices
    (``floorlog2(gindex)``); check them with
    :func:`~node.chain.beacon.ssz.is_valid_normalized_merkle_branch`, which also accepts
    older, shorter branches once normalized.
    """

    fork: str
    preset: Preset
    BeaconBlockHeader: type[BeaconBlockHeader]
    SyncCommittee: type[SyncCommittee]
    SyncAggregate: type[SyncAggregate]
    ExecutionPayloadHeader: type[ExecutionPayloadHeader] | None  # None before Bellatrix
    LightClientHeader: type[LightClientHeader]
    LightClientBootstrap: type[LightClientBootstrap]
    LightClientUpdate: type[LightClientUpdate]
    LightClientFinalityUpdate: type[LightClientFinalityUpdate]
    LightClientOptimisticUpdate: type[LightClientOptimisticUpdate]
    finalized_root_gindex: int
    current_sync_committee_gindex: int
    next_sync_committee_gindex: int
    execution_payload_gindex: int | None  # None before Capella (no execution in headers)

    def container(self, name: str) -> type[Container]:
        """The class of the container called ``name`` in the specification
        (``"LightClientUpdate"``, ``"SyncCommittee"``, ...)."""
        cls = getattr(self, name, None) if name[:1].isupper() else None
        if not (isinstance(cls, type) and issubclass(cls, Container)):
            raise SszError(f"no light-client container {name!r} in {self.fork}")
        return cls


@functools.cache
def light_client_types(fork: str, preset: str | Preset = "mainnet") -> LightClientTypes:
    """The light-client types of ``fork`` (one of :data:`FORKS`) under ``preset``
    (``"mainnet"``, ``"minimal"`` or a :class:`Preset`)."""
    shape = _SHAPES.get(fork)
    if shape is None:
        raise SszError(f"no light-client data in fork {fork!r} (known: {', '.join(FORKS)})")
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise SszError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        preset = PRESETS[preset]
    committee, aggregate = _sync_classes(preset)
    bootstrap, update, finality, optimistic = _update_classes(shape, preset)
    finalized, current, next_ = _state_gindices(shape)
    return LightClientTypes(
        fork=fork,
        preset=preset,
        BeaconBlockHeader=BeaconBlockHeader,
        SyncCommittee=committee,
        SyncAggregate=aggregate,
        ExecutionPayloadHeader=_EXECUTION_HEADERS[fork],
        LightClientHeader=_HEADERS[shape],
        LightClientBootstrap=bootstrap,
        LightClientUpdate=update,
        LightClientFinalityUpdate=finality,
        LightClientOptimisticUpdate=optimistic,
        finalized_root_gindex=finalized,
        current_sync_committee_gindex=current,
        next_sync_committee_gindex=next_,
        execution_payload_gindex=None if shape == "altair" else EXECUTION_PAYLOAD_GINDEX,
    )


# -- Domains and signing roots (phase0 beacon-chain.md "Misc") -----------------------------


def compute_fork_data_root(current_version: bytes, genesis_validators_root: bytes) -> bytes:
    """``hash_tree_root(ForkData(current_version, genesis_validators_root))``."""
    return ForkData(current_version=current_version,
                    genesis_validators_root=genesis_validators_root).hash_tree_root()


def compute_fork_digest(current_version: bytes, genesis_validators_root: bytes) -> bytes:
    """The 4-byte fork digest (phase0 to Electra; Fulu's mixes in the blob parameters,
    which this function does not)."""
    return compute_fork_data_root(current_version, genesis_validators_root)[:4]


def compute_domain(domain_type: bytes, fork_version: bytes,
                   genesis_validators_root: bytes) -> bytes:
    """The 32-byte signing domain: ``domain_type`` followed by 28 bytes of the fork data
    root (the specification's defaults, genesis version and a zero root, are not assumed:
    pass them)."""
    domain_type = DomainType.encode(domain_type)
    return domain_type + compute_fork_data_root(fork_version, genesis_validators_root)[:28]


def compute_signing_root(ssz_object: Container | bytes, domain: bytes) -> bytes:
    """The root a BLS signature signs: ``hash_tree_root(SigningData(object root, domain))``.
    ``ssz_object`` is a container or a 32-byte root (a ``Root`` is its own hash tree root)."""
    if isinstance(ssz_object, Container):
        object_root = ssz_object.hash_tree_root()
    else:
        object_root = Root.hash_tree_root(ssz_object)
    return SigningData(object_root=object_root, domain=domain).hash_tree_root()
