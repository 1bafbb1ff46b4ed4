"""The light-client sync protocol: follow the beacon chain's finalized and optimistic heads
with sync-committee signatures only.

This is consensus-specs ``specs/altair/light-client/sync-protocol.md`` as modified for
Capella (execution payload headers in ``LightClientHeader``), Deneb (blob gas fields) and
Electra (deeper state gindices; branches normalised with
:func:`~node.chain.beacon.ssz.is_valid_normalized_merkle_branch`). Function names and checks
follow the specification one to one; every failed ``assert`` of the specification raises
:class:`UpdateRejected` naming the check instead.

Objects of any light-client fork may meet in one store (a Capella store fed Altair-format
data, say): a header's validity and its execution root are decided by the fork *its slot*
falls in under the network's fork schedule (:class:`~node.chain.beacon.config.NetworkConfig`),
which is what the specification's ``upgrade_lc_*`` functions amount to.

Signatures are checked with the committee's keys decoded once per committee
(:class:`~node.chain.beacon.bls.CommitteeCache`) and the participants' key built by
subtraction from the branch-authenticated aggregate key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from node.chain.beacon import bls
from node.chain.beacon.config import FORK_NAMES, NetworkConfig
from node.chain.beacon.containers import (
    CURRENT_SYNC_COMMITTEE_GINDEX,
    CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA,
    DOMAIN_SYNC_COMMITTEE,
    EXECUTION_BRANCH_DEPTH,
    EXECUTION_PAYLOAD_GINDEX,
    FINALIZED_ROOT_GINDEX,
    FINALIZED_ROOT_GINDEX_ELECTRA,
    FORKS,
    NEXT_SYNC_COMMITTEE_GINDEX,
    NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA,
    CapellaExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    SyncCommittee,
    compute_domain,
    compute_signing_root,
    light_client_types,
)
from node.chain.beacon.ssz import (
    get_subtree_index,
    is_valid_merkle_branch,
    is_valid_normalized_merkle_branch,
)
from node.chain.errors import VerificationError

GENESIS_SLOT = 0
ZERO_ROOT = bytes(32)


class UpdateRejected(VerificationError):
    """A bootstrap or update failed a check of the sync protocol; ``field`` names the check."""


def _reject(check: str, reason: str) -> UpdateRejected:
    return UpdateRejected(check, reason=reason)


@dataclass
class LightClientStore:
    """``LightClientStore`` (altair light-client sync-protocol.md)."""

    finalized_header: LightClientHeader
    """Header that is finalized."""
    current_sync_committee: SyncCommittee
    """Sync committee of the finalized header's period."""
    next_sync_committee: SyncCommittee
    """Sync committee of the next period (the default value while unknown)."""
    best_valid_update: LightClientUpdate | None
    """Best available update to force-apply if the update timeout elapses."""
    optimistic_header: LightClientHeader
    """Most recent header signed by more than the safety threshold."""
    previous_max_active_participants: int
    current_max_active_participants: int


# -- periods, forks, headers --------------------------------------------------------------


def _at_least(fork: str, than: str) -> bool:
    return FORK_NAMES.index(fork) >= FORK_NAMES.index(than)


def _fork_of_slot(config: NetworkConfig, slot: int) -> str:
    """The fork of ``slot``; a fork whose light-client data this module does not implement
    (phase0 has none; Gloas changes the execution payload's place) is refused, not guessed."""
    fork = config.fork_at_slot(slot).name
    if fork not in FORKS:
        raise _reject("fork", f"slot {slot} is in {config.name}'s {fork} fork, whose "
                              f"light-client data is not supported (supported: altair to fulu)")
    return fork


def get_lc_execution_root(config: NetworkConfig, header: LightClientHeader) -> bytes:
    """The execution payload header's root in the form of the fork of ``header``'s slot
    (deneb light-client sync-protocol.md ``get_lc_execution_root``); zero before Capella."""
    fork = _fork_of_slot(config, header.beacon.slot)
    execution = getattr(header, "execution", None)
    if execution is None or not _at_least(fork, "capella"):
        return ZERO_ROOT
    if _at_least(fork, "deneb"):
        return execution.hash_tree_root()
    names = {f.name for f in dataclasses.fields(CapellaExecutionPayloadHeader)}
    capella = CapellaExecutionPayloadHeader(
        **{f.name: getattr(execution, f.name) for f in dataclasses.fields(execution)
           if f.name in names})
    return capella.hash_tree_root()


def is_valid_light_client_header(config: NetworkConfig, header: LightClientHeader) -> bool:
    """``is_valid_light_client_header`` (capella, deneb light-client sync-protocol.md)."""
    fork = _fork_of_slot(config, header.beacon.slot)
    execution = getattr(header, "execution", None)
    if execution is None:  # an Altair-format header: upgraded, it has a default execution
        return not _at_least(fork, "capella")
    branch = header.execution_branch
    if not _at_least(fork, "deneb") and (getattr(execution, "blob_gas_used", 0) != 0
                                         or getattr(execution, "excess_blob_gas", 0) != 0):
        return False
    if not _at_least(fork, "capella"):
        return execution == type(execution).default() and all(n == ZERO_ROOT for n in branch)
    return is_valid_merkle_branch(get_lc_execution_root(config, header), branch,
                                  EXECUTION_BRANCH_DEPTH,
                                  get_subtree_index(EXECUTION_PAYLOAD_GINDEX),
                                  header.beacon.body_root)


def _gindex(config: NetworkConfig, slot: int, before: int, electra: int) -> int:
    """``*_gindex_at_slot`` (electra light-client sync-protocol.md)."""
    return electra if _at_least(_fork_of_slot(config, slot), "electra") else before


def _is_zero_branch(branch: tuple[bytes, ...]) -> bool:
    return all(node == ZERO_ROOT for node in branch)


def is_sync_committee_update(update: LightClientUpdate) -> bool:
    return not _is_zero_branch(update.next_sync_committee_branch)


def is_finality_update(update: LightClientUpdate) -> bool:
    return not _is_zero_branch(update.finality_branch)


def is_next_sync_committee_known(store: LightClientStore) -> bool:
    return store.next_sync_committee != type(store.next_sync_committee).default()


def get_safety_threshold(store: LightClientStore) -> int:
    return max(store.previous_max_active_participants,
               store.current_max_active_participants) // 2


def _participants(update: LightClientUpdate) -> int:
    return sum(update.sync_aggregate.sync_committee_bits)


def is_better_update(config: NetworkConfig, new: LightClientUpdate,
                     old: LightClientUpdate) -> bool:
    """``is_better_update`` (altair light-client sync-protocol.md)."""
    period = config.sync_committee_period_at_slot
    max_active = len(new.sync_aggregate.sync_committee_bits)
    new_active, old_active = _participants(new), _participants(old)
    new_super, old_super = new_active * 3 >= max_active * 2, old_active * 3 >= max_active * 2
    if new_super != old_super:
        return new_super
    if not new_super and new_active != old_active:
        return new_active > old_active

    def relevant(u: LightClientUpdate) -> bool:
        return is_sync_committee_update(u) and (period(u.attested_header.beacon.slot)
                                                == period(u.signature_slot))

    if relevant(new) != relevant(old):
        return relevant(new)
    new_final, old_final = is_finality_update(new), is_finality_update(old)
    if new_final != old_final:
        return new_final
    if new_final:
        def committee_final(u: LightClientUpdate) -> bool:
            return (period(u.finalized_header.beacon.slot)
                    == period(u.attested_header.beacon.slot))
        if committee_final(new) != committee_final(old):
            return committee_final(new)
    if new_active != old_active:
        return new_active > old_active
    if new.attested_header.beacon.slot != old.attested_header.beacon.slot:
        return new.attested_header.beacon.slot < old.attested_header.beacon.slot
    return new.signature_slot < old.signature_slot


# -- bootstrap --------------------------------------------------------------------------


def initialize_light_client_store(config: NetworkConfig, trusted_block_root: bytes,
                                  bootstrap: LightClientBootstrap) -> LightClientStore:
    """``initialize_light_client_store`` (altair; electra's normalised branch)."""
    header = bootstrap.header
    if not is_valid_light_client_header(config, header):
        raise _reject("bootstrap.header", "execution payload header does not match the "
                                          "block's body root")
    root = header.beacon.hash_tree_root()
    if root != trusted_block_root:
        raise UpdateRejected("bootstrap.header", "0x" + trusted_block_root.hex(),
                             "0x" + root.hex(),
                             reason=f"header root 0x{root.hex()} is not the trusted block root "
                                    f"0x{trusted_block_root.hex()}")
    gindex = _gindex(config, header.beacon.slot, CURRENT_SYNC_COMMITTEE_GINDEX,
                     CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA)
    if not is_valid_normalized_merkle_branch(bootstrap.current_sync_committee.hash_tree_root(),
                                             bootstrap.current_sync_committee_branch, gindex,
                                             header.beacon.state_root):
        raise _reject("bootstrap.current_sync_committee_branch",
                      "does not prove the sync committee in the header's state root")
    committee_type = type(bootstrap.current_sync_committee)
    return LightClientStore(header, bootstrap.current_sync_committee, committee_type.default(),
                            None, header, 0, 0)


# -- updates ----------------------------------------------------------------------------


def validate_light_client_update(config: NetworkConfig, store: LightClientStore,
                                 update: LightClientUpdate, current_slot: int,
                                 committees: bls.CommitteeCache | None = None) -> None:
    """``validate_light_client_update`` (altair; capella/deneb headers; electra branches).
    Raises :class:`UpdateRejected` naming the failed check."""
    preset = config.preset
    period = config.sync_committee_period_at_slot
    aggregate = update.sync_aggregate
    participants = sum(aggregate.sync_committee_bits)
    if participants < preset.min_sync_committee_participants:
        raise _reject("sync_aggregate.sync_committee_bits",
                      f"{participants} participants, at least "
                      f"{preset.min_sync_committee_participants} needed")
    if not is_valid_light_client_header(config, update.attested_header):
        raise _reject("attested_header.execution_branch",
                      "execution payload header does not match the block's body root")
    attested_slot = update.attested_header.beacon.slot
    finalized_slot = update.finalized_header.beacon.slot
    if not current_slot >= update.signature_slot > attested_slot >= finalized_slot:
        raise _reject("signature_slot",
                      f"want current slot {current_slot} >= signature slot "
                      f"{update.signature_slot} > attested slot {attested_slot} >= finalized "
                      f"slot {finalized_slot}")
    store_period = period(store.finalized_header.beacon.slot)
    signature_period = period(update.signature_slot)
    next_known = is_next_sync_committee_known(store)
    allowed = (store_period, store_period + 1) if next_known else (store_period,)
    if signature_period not in allowed:
        raise _reject("signature_slot",
                      f"signed in period {signature_period}; the store (period {store_period}, "
                      f"next committee {'known' if next_known else 'unknown'}) can check "
                      f"only period {' or '.join(map(str, allowed))}")
    attested_period = period(attested_slot)
    has_next = (not next_known and is_sync_committee_update(update)
                and attested_period == store_period)
    if not (attested_slot > store.finalized_header.beacon.slot or has_next):
        raise _reject("attested_header",
                      f"slot {attested_slot} is not newer than the finalized slot "
                      f"{store.finalized_header.beacon.slot} and brings no needed committee")

    state_root = update.attested_header.beacon.state_root
    if not is_finality_update(update):
        if update.finalized_header != type(update.finalized_header).default():
            raise _reject("finalized_header", "present without a finality branch")
    else:
        if finalized_slot == GENESIS_SLOT:
            if update.finalized_header != type(update.finalized_header).default():
                raise _reject("finalized_header", "genesis finality with a non-empty header")
            finalized_root = ZERO_ROOT
        else:
            if not is_valid_light_client_header(config, update.finalized_header):
                raise _reject("finalized_header.execution_branch",
                              "execution payload header does not match the block's body root")
            finalized_root = update.finalized_header.beacon.hash_tree_root()
        gindex = _gindex(config, attested_slot, FINALIZED_ROOT_GINDEX,
                         FINALIZED_ROOT_GINDEX_ELECTRA)
        if not is_valid_normalized_merkle_branch(finalized_root, update.finality_branch,
                                                 gindex, state_root):
            raise _reject("finality_branch", "does not prove the finalized header in the "
                                             "attested state root")

    if not is_sync_committee_update(update):
        if update.next_sync_committee != type(update.next_sync_committee).default():
            raise _reject("next_sync_committee", "present without a branch")
    else:
        if attested_period == store_period and next_known \
                and update.next_sync_committee != store.next_sync_committee:
            raise _reject("next_sync_committee", "differs from the next committee the store "
                                                 "already knows for this period")
        gindex = _gindex(config, attested_slot, NEXT_SYNC_COMMITTEE_GINDEX,
                         NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA)
        if not is_valid_normalized_merkle_branch(update.next_sync_committee.hash_tree_root(),
                                                 update.next_sync_committee_branch, gindex,
                                                 state_root):
            raise _reject("next_sync_committee_branch", "does not prove the next sync "
                                                        "committee in the attested state root")

    committee = (store.current_sync_committee if signature_period == store_period
                 else store.next_sync_committee)
    cache = committees if committees is not None else bls.CommitteeCache()
    keys = cache.get(committee.hash_tree_root(), committee.pubkeys, committee.aggregate_pubkey)
    fork_version_slot = max(update.signature_slot, 1) - 1
    fork = config.fork_at_slot(fork_version_slot)
    domain = compute_domain(DOMAIN_SYNC_COMMITTEE, fork.version, config.genesis_validators_root)
    signing_root = compute_signing_root(update.attested_header.beacon, domain)
    if not bls.verify_aggregate(keys.participants_key(aggregate.sync_committee_bits),
                                signing_root, aggregate.sync_committee_signature):
        raise _reject("sync_aggregate.sync_committee_signature",
                      f"not the signature of the {participants} participating members of the "
                      f"period-{signature_period} committee over attested slot {attested_slot} "
                      f"({fork.name} domain)")


def apply_light_client_update(config: NetworkConfig, store: LightClientStore,
                              update: LightClientUpdate) -> None:
    """``apply_light_client_update`` (altair)."""
    store_period = config.sync_committee_period_at_slot(store.finalized_header.beacon.slot)
    finalized_period = config.sync_committee_period_at_slot(update.finalized_header.beacon.slot)
    if not is_next_sync_committee_known(store):
        if finalized_period != store_period:
            raise _reject("finalized_header", f"finalizes period {finalized_period} while the "
                                              f"store is in period {store_period} without "
                                              f"the next committee")
        store.next_sync_committee = update.next_sync_committee
    elif finalized_period == store_period + 1:
        store.current_sync_committee = store.next_sync_committee
        store.next_sync_committee = update.next_sync_committee
        store.previous_max_active_participants = store.current_max_active_participants
        store.current_max_active_participants = 0
    if update.finalized_header.beacon.slot > store.finalized_header.beacon.slot:
        store.finalized_header = update.finalized_header
        if store.finalized_header.beacon.slot > store.optimistic_header.beacon.slot:
            store.optimistic_header = store.finalized_header


def process_light_client_store_force_update(config: NetworkConfig, store: LightClientStore,
                                            current_slot: int) -> bool:
    """``process_light_client_store_force_update`` (altair): after ``UPDATE_TIMEOUT`` slots
    without finality, apply the best valid update (its attested header as finalized if need
    be). Returns whether an update was forced."""
    best = store.best_valid_update
    if not (current_slot > store.finalized_header.beacon.slot + config.preset.update_timeout
            and best is not None):
        return False
    if best.finalized_header.beacon.slot <= store.finalized_header.beacon.slot:
        best = dataclasses.replace(best, finalized_header=best.attested_header)
    apply_light_client_update(config, store, best)
    store.best_valid_update = None
    return True


def process_light_client_update(config: NetworkConfig, store: LightClientStore,
                                update: LightClientUpdate, current_slot: int,
                                committees: bls.CommitteeCache | None = None) -> None:
    """``process_light_client_update`` (altair)."""
    validate_light_client_update(config, store, update, current_slot, committees)
    bits = update.sync_aggregate.sync_committee_bits
    active = sum(bits)
    if store.best_valid_update is None or is_better_update(config, update,
                                                           store.best_valid_update):
        store.best_valid_update = update
    store.current_max_active_participants = max(store.current_max_active_participants, active)
    if active > get_safety_threshold(store) \
            and update.attested_header.beacon.slot > store.optimistic_header.beacon.slot:
        store.optimistic_header = update.attested_header
    period = config.sync_committee_period_at_slot
    finalizes_next = (not is_next_sync_committee_known(store)
                      and is_sync_committee_update(update) and is_finality_update(update)
                      and period(update.finalized_header.beacon.slot)
                      == period(update.attested_header.beacon.slot))
    if active * 3 >= len(bits) * 2 and (
            update.finalized_header.beacon.slot > store.finalized_header.beacon.slot
            or finalizes_next):
        apply_light_client_update(config, store, update)
        store.best_valid_update = None


def _as_update(config: NetworkConfig, partial: Any, **fields: Any) -> LightClientUpdate:
    """A full ``LightClientUpdate`` of ``partial``'s fork built from a finality or optimistic
    update (the specification's ``process_light_client_*_update`` do the same)."""
    for fork in ("altair", "capella", "deneb", "electra"):
        types = light_client_types(fork, config.preset)
        if type(partial) in (types.LightClientFinalityUpdate,
                             types.LightClientOptimisticUpdate):
            return dataclasses.replace(types.LightClientUpdate.default(),
                                       attested_header=partial.attested_header,
                                       sync_aggregate=partial.sync_aggregate,
                                       signature_slot=partial.signature_slot, **fields)
    raise TypeError(f"not a finality or optimistic update of the {config.preset.name} preset: "
                    f"{type(partial).__qualname__}")


def process_light_client_finality_update(config: NetworkConfig, store: LightClientStore,
                                         finality_update: LightClientFinalityUpdate,
                                         current_slot: int,
                                         committees: bls.CommitteeCache | None = None) -> None:
    """``process_light_client_finality_update`` (altair)."""
    update = _as_update(config, finality_update,
                        finalized_header=finality_update.finalized_header,
                        finality_branch=finality_update.finality_branch)
    process_light_client_update(config, store, update, current_slot, committees)


def process_light_client_optimistic_update(config: NetworkConfig, store: LightClientStore,
                                           optimistic_update: LightClientOptimisticUpdate,
                                           current_slot: int,
                                           committees: bls.CommitteeCache | None = None) -> None:
    """``process_light_client_optimistic_update`` (altair)."""
    update = _as_update(config, optimistic_update)
    process_light_client_update(config, store, update, current_slot, committees)
