"""The light client (node/chain/beacon/store.py) on chains the tests make and sign themselves
(tests/beacon_sim.py, real BLS): period changes, a skipped period, the forced update after the
update timeout, fork transitions Altair -> Bellatrix -> Capella -> Deneb -> Electra with each
fork's signing domain and Electra's normalised branches, finality and optimistic updates,
stale checkpoints and partial participation -- each ending on the execution head the store
proves (block number, hash and state root)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from py_arkworks_bls12381 import G1Point
from py_ecc.bls import G2ProofOfPossession as reference

from node.chain.beacon.bls import CommitteeKeys
from node.chain.beacon.config import NetworkConfig
from node.chain.beacon.containers import compute_signing_root, light_client_types
from node.chain.beacon.store import DAY, LightClient, StaleCheckpoint
from node.chain.beacon.sync_protocol import UpdateRejected

from beacon_sim import CURVE_ORDER, ZERO, BeaconChainSim, SimClock, sim_network

# Minimal preset: 8 slots an epoch, 64 slots (8 epochs) a sync-committee period.
# Capella from genesis, Deneb from period 2 (slot 128), Electra from period 4 (slot 256).
FORKS = {"altair": 0, "bellatrix": 0, "capella": 0, "deneb": 16, "electra": 32}
BOOTSTRAP_SLOT = 40
IN_PERIOD = 40  # attested slot of the period updates, counted from the period's start


@pytest.fixture(scope="module")
def config() -> NetworkConfig:
    return sim_network(FORKS)


@pytest.fixture(scope="module")
def sim(config: NetworkConfig) -> BeaconChainSim:
    return BeaconChainSim(config)


def period_slot(sim: BeaconChainSim, period: int, offset: int = IN_PERIOD) -> int:
    return sim.period_start(period) + offset


def bootstrapped(sim: BeaconChainSim, slot: int = BOOTSTRAP_SLOT, path: Path | None = None
                 ) -> tuple[LightClient, SimClock]:
    clock = SimClock(sim.config).at_slot(slot + 1)
    client = LightClient.bootstrap(sim.config, sim.root(slot), sim.bootstrap(slot), path,
                                   clock=clock)
    return client, clock


def sync_period(client: LightClient, clock: SimClock, sim: BeaconChainSim, period: int,
                **options: object) -> None:
    """Process the period's update: attested IN_PERIOD slots in, signed the slot after,
    with the next committee and the state's finalized header."""
    attested = period_slot(sim, period)
    clock.at_slot(attested + 1)
    client.process_update(sim.update(attested, **options))  # type: ignore[arg-type]


def synced(sim: BeaconChainSim, through: int, path: Path | None = None
           ) -> tuple[LightClient, SimClock]:
    """A client bootstrapped in period 0 and synced through ``through``'s update: its
    finalized header in period ``through`` (period 0: the bootstrap's), next committee known."""
    client, clock = bootstrapped(sim, path=path)
    for period in range(through + 1):
        sync_period(client, clock, sim, period)
    return client, clock


def assert_finalized_at(client: LightClient, sim: BeaconChainSim, slot: int) -> None:
    assert client.store.finalized_header.beacon == sim.block(slot).header
    assert client.finalized_execution == sim.execution_head(slot)


def assert_refused_unchanged(client: LightClient, process: Callable[[object], None],
                             update: object, match: str) -> None:
    before = client.store
    with pytest.raises(UpdateRejected, match=match):
        process(update)
    assert client.store is before


# -- the simulator's signatures are the real thing -----------------------------------------


def test_simulated_signatures_verify_with_py_ecc(sim: BeaconChainSim) -> None:
    """An independent BLS implementation accepts the simulator's aggregate signature."""
    update = sim.update(48, participation=3)
    aggregate = update.sync_aggregate
    committee = sim.committee(0)
    signers = [key for key, bit in zip(committee.pubkeys, aggregate.sync_committee_bits,
                                       strict=True) if bit]
    message = compute_signing_root(update.attested_header.beacon, sim.domain(49))
    assert len(signers) == 3
    assert reference.FastAggregateVerify(signers, message, aggregate.sync_committee_signature)
    assert not reference.FastAggregateVerify(signers[:2], message,
                                             aggregate.sync_committee_signature)


def test_simulated_states_put_the_proven_fields_at_the_specified_gindices(
        sim: BeaconChainSim) -> None:
    """The branches the light client checks prove the right values under the state root."""
    for slot, fork in ((48, "capella"), (168, "deneb"), (296, "electra")):
        update = sim.update(slot)
        assert sim.fork(slot) == fork
        assert type(update) is light_client_types(fork, "minimal").LightClientUpdate
        assert len(update.finality_branch) == (7 if fork == "electra" else 6)
        assert update.next_sync_committee == sim.committee(sim.period(slot) + 1)
        assert update.finalized_header.beacon == sim.block(slot - 16).header


# -- period changes and fork transitions ------------------------------------------------------


def test_period_changes_across_capella_deneb_electra_then_resume(sim: BeaconChainSim,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "lc.sqlite"
    client, clock = bootstrapped(sim, path=path)
    assert not client.next_sync_committee_known
    assert_finalized_at(client, sim, BOOTSTRAP_SLOT)
    sync_period(client, clock, sim, 0)  # learns period 1's committee, finality unchanged
    assert client.next_sync_committee_known
    assert_finalized_at(client, sim, BOOTSTRAP_SLOT)
    for period in range(1, 6):
        sync_period(client, clock, sim, period)  # signed by the committee learnt last
        assert client.finalized_period == period
        assert client.store.current_sync_committee == sim.committee(period)
        assert client.store.next_sync_committee == sim.committee(period + 1)
        finalized = period_slot(sim, period) - 16  # two epochs behind the attested block
        assert_finalized_at(client, sim, finalized)
        assert client.optimistic_execution == sim.execution_head(period_slot(sim, period))
    assert sim.fork(client.store.finalized_header.beacon.slot) == "electra"
    stored = client.store
    client.close()

    again = LightClient.resume(sim.config, path, clock=clock)
    assert again.store == stored
    attested = period_slot(sim, 5, 60)
    clock.at_slot(attested + 1)
    again.process_finality_update(sim.finality_update(attested))
    assert_finalized_at(again, sim, attested - 16 - 4)  # epoch start two epochs back
    assert again.optimistic_execution == sim.execution_head(attested)
    again.close()


def test_altair_bellatrix_headers_have_no_execution_until_capella() -> None:
    config = sim_network({"altair": 0, "bellatrix": 8, "capella": 16, "deneb": 24,
                          "electra": 40}, name="altair-to-electra")
    sim = BeaconChainSim(config)
    client, clock = synced(sim, 0)
    assert type(sim.bootstrap(BOOTSTRAP_SLOT)) is light_client_types(
        "altair", "minimal").LightClientBootstrap
    assert client.finalized_execution is None
    sync_period(client, clock, sim, 1)  # Bellatrix: payloads exist, light clients don't see them
    assert sim.block(client.store.finalized_header.beacon.slot).execution is not None
    assert client.finalized_execution is None

    # A Capella update attested early in period 2 finalizes a Bellatrix block: in the Capella
    # format it carries an empty execution header and a zero execution branch.
    attested = period_slot(sim, 2, 8)
    update = sim.update(attested)
    assert sim.fork(update.finalized_header.beacon.slot) == "bellatrix"
    assert update.finalized_header.execution == type(update.finalized_header.execution).default()
    assert set(update.finalized_header.execution_branch) == {ZERO}
    clock.at_slot(attested + 1)
    client.process_update(update)
    assert client.store.finalized_header.beacon.slot == attested - 16
    assert client.finalized_execution is None
    assert client.optimistic_execution == sim.execution_head(attested)
    sync_period(client, clock, sim, 2)  # Capella finality: the execution head is proven
    assert_finalized_at(client, sim, period_slot(sim, 2) - 16)
    sync_period(client, clock, sim, 3)  # Deneb
    sync_period(client, clock, sim, 4)
    sync_period(client, clock, sim, 5)  # Electra
    assert_finalized_at(client, sim, period_slot(sim, 5) - 16)


@pytest.mark.parametrize("signature_slot, domain", [(256, "deneb"), (257, "electra")])
def test_at_the_fork_boundary_the_domain_is_that_of_the_slot_before_the_signature(
        sim: BeaconChainSim, signature_slot: int, domain: str) -> None:
    """Attested at Deneb's last slot (255): signed at 256 the committee uses Deneb's fork
    version (the slot before the signature is Deneb's), signed at 257 Electra's."""
    client, clock = synced(sim, 3)
    clock.at_slot(signature_slot)
    other = "electra" if domain == "deneb" else "deneb"
    lie = sim.finality_update(255, signature_slot=signature_slot, domain_fork=other)
    assert_refused_unchanged(client, client.process_finality_update, lie,
                             rf"sync_committee_signature: .* \({domain} domain\)")
    client.process_finality_update(sim.finality_update(255, signature_slot=signature_slot))
    assert client.finalized_period == 3
    assert_finalized_at(client, sim, 232)  # epoch 31's checkpoint is epoch 29 (slot 232)
    assert client.optimistic_execution == sim.execution_head(255)
    sync_period(client, clock, sim, 4)  # Electra's first period, signed by the next committee
    assert_finalized_at(client, sim, period_slot(sim, 4) - 16)


def test_electra_format_with_normalised_branches_of_a_deneb_state(sim: BeaconChainSim) -> None:
    """Electra-format objects about Deneb blocks carry branches one node deeper whose
    extra leading node is zero (``normalize_merkle_branch``); the store accepts them, and
    refuses them once that padding node is not zero."""
    attested = period_slot(sim, 3)
    update = sim.update(attested, fmt="electra")
    assert sim.fork(attested) == "deneb"
    assert len(update.finality_branch) == 7 and update.finality_branch[0] == ZERO
    assert len(update.next_sync_committee_branch) == 6
    assert update.next_sync_committee_branch[0] == ZERO
    deneb = sim.update(attested)
    assert update.finality_branch[1:] == deneb.finality_branch
    assert update.sync_aggregate == deneb.sync_aggregate  # the same signed header

    client, clock = synced(sim, 2)
    clock.at_slot(attested + 1)
    padded = dataclasses.replace(update, finality_branch=(b"\x01" * 32,
                                                          *update.finality_branch[1:]))
    assert_refused_unchanged(client, client.process_update, padded, "finality_branch")
    padded = dataclasses.replace(update, next_sync_committee_branch=(
        b"\x01" * 32, *update.next_sync_committee_branch[1:]))
    assert_refused_unchanged(client, client.process_update, padded,
                             "next_sync_committee_branch")
    client.process_update(update)
    assert client.finalized_period == 3
    assert_finalized_at(client, sim, attested - 16)

    bootstrap = sim.bootstrap(attested, fmt="electra")  # a Deneb checkpoint, Electra format
    assert bootstrap.current_sync_committee_branch[0] == ZERO
    clock.at_slot(attested + 1)
    fresh = LightClient.bootstrap(sim.config, sim.root(attested), bootstrap, clock=clock)
    assert_finalized_at(fresh, sim, attested)
    with pytest.raises(ValueError, match="does not fit the deneb format"):
        sim.update(period_slot(sim, 4), fmt="deneb")  # Electra states need deeper branches


def test_genesis_finality_is_a_zero_root_and_an_empty_header(sim: BeaconChainSim) -> None:
    """Early in the chain the state's finalized checkpoint is the genesis one (epoch 0, zero
    root): the update proves the zero root and carries an empty finalized header."""
    client, clock = bootstrapped(sim, slot=8)
    update = sim.update(16)
    assert update.finalized_header == type(update.finalized_header).default()
    assert any(node != ZERO for node in update.finality_branch)
    clock.at_slot(17)
    client.process_update(update)
    assert client.next_sync_committee_known
    assert_finalized_at(client, sim, 8)
    forged = dataclasses.replace(update, finalized_header=sim.lc_header(8))
    assert_refused_unchanged(client, client.process_update, forged, "finality_branch")


# -- skipped periods, forced updates ----------------------------------------------------------


def test_a_skipped_period_is_refused_until_the_intermediate_update(sim: BeaconChainSim) -> None:
    client, clock = synced(sim, 1)  # finalized in period 1, knows period 2's committee
    ahead = period_slot(sim, 3)
    clock.at_slot(ahead + 1)
    assert_refused_unchanged(client, client.process_update, sim.update(ahead),
                             r"signature_slot: signed in period 3; the store \(period 1, next "
                             r"committee known\) can check only period 1 or 2")
    assert_refused_unchanged(client, client.process_finality_update,
                             sim.finality_update(ahead), "signed in period 3")
    sync_period(client, clock, sim, 2)  # the intermediate update
    assert client.finalized_period == 2
    sync_period(client, clock, sim, 3)  # now accepted
    assert client.finalized_period == 3
    assert_finalized_at(client, sim, period_slot(sim, 3) - 16)
    assert client.optimistic_execution == sim.execution_head(period_slot(sim, 3))


def test_an_unknown_next_committee_confines_the_store_to_its_own_period(
        sim: BeaconChainSim) -> None:
    client, clock = bootstrapped(sim)  # next committee unknown
    attested = period_slot(sim, 1)
    clock.at_slot(attested + 1)
    assert_refused_unchanged(client, client.process_update, sim.update(attested),
                             r"signed in period 1; the store \(period 0, next committee "
                             r"unknown\) can check only period 0")


def test_forced_update_after_the_timeout_without_finality(config: NetworkConfig) -> None:
    """Finality stalls at epoch 10 (slot 80, period 1). A period-2 update is valid but
    cannot finalize; after UPDATE_TIMEOUT (64 slots) past the finalized slot the best valid
    update is forced, its attested header taken as finalized, and the committees rotate."""
    sim = BeaconChainSim(config, finality=lambda epoch: min(max(0, epoch - 2), 10))
    client, clock = synced(sim, 1)
    assert_finalized_at(client, sim, 80)
    weaker = period_slot(sim, 2, 4)
    clock.at_slot(weaker + 1)
    client.process_update(sim.update(weaker, participation=24))
    attested = period_slot(sim, 2, 8)
    clock.at_slot(attested + 1)
    update = sim.update(attested)
    assert update.finalized_header.beacon.slot == 80  # the stalled checkpoint
    client.process_update(update)
    assert client.store.best_valid_update == update  # more participants: the better one
    assert_finalized_at(client, sim, 80)
    assert client.optimistic_execution == sim.execution_head(attested)
    assert client.finalized_period == 1

    clock.at_slot(80 + 64)  # the timeout has not yet elapsed
    assert client.force_update() is False
    assert client.store.best_valid_update == update
    clock.at_slot(80 + 64 + 1)
    assert client.force_update() is True
    assert client.store.best_valid_update is None
    assert_finalized_at(client, sim, attested)
    assert client.finalized_period == 2
    assert client.store.current_sync_committee == sim.committee(2)
    assert client.store.next_sync_committee == sim.committee(3)
    assert client.force_update() is False  # nothing left to force

    # Without finality the updates keep flowing: period 3 is forced the same way.
    later = period_slot(sim, 3, 8)
    clock.at_slot(later + 1)
    client.process_update(sim.update(later, finality=False))
    clock.at_slot(attested + 64 + 1)
    assert client.force_update() is True
    assert_finalized_at(client, sim, later)
    assert client.store.current_sync_committee == sim.committee(3)


def test_a_forced_optimistic_update_finalizes_within_the_period(config: NetworkConfig) -> None:
    """An update without the next committee can be forced within the store's period, and
    finalizes its attested header there."""
    sim = BeaconChainSim(config, finality=lambda epoch: min(max(0, epoch - 2), 10))
    client, clock = synced(sim, 1)
    attested = period_slot(sim, 1, 60)
    clock.at_slot(attested + 1)
    client.process_optimistic_update(sim.optimistic_update(attested))
    assert client.optimistic_execution == sim.execution_head(attested)
    clock.at_slot(80 + 65)
    assert client.force_update() is True
    assert_finalized_at(client, sim, attested)
    assert client.store.next_sync_committee == sim.committee(2)  # kept


# -- finality and optimistic updates -----------------------------------------------------


def test_finality_and_optimistic_updates_move_the_heads(sim: BeaconChainSim) -> None:
    client, clock = synced(sim, 2)  # Deneb
    finalized_before = client.store.finalized_header.beacon.slot
    attested = period_slot(sim, 2, 56)
    clock.at_slot(attested + 1)
    client.process_finality_update(sim.finality_update(attested))
    assert_finalized_at(client, sim, period_slot(sim, 2, 40))  # epoch 7 -> checkpoint epoch 5
    assert client.store.finalized_header.beacon.slot > finalized_before
    assert client.optimistic_execution == sim.execution_head(attested)

    newer = attested + 3
    clock.at_slot(newer + 1)
    client.process_optimistic_update(sim.optimistic_update(newer))
    assert client.optimistic_execution == sim.execution_head(newer)
    assert_finalized_at(client, sim, period_slot(sim, 2, 40))  # unchanged

    # At most the safety threshold (half the best participation seen, 16 of 32) does not
    # move the optimistic head; one more signer does.
    weak = newer + 1
    clock.at_slot(weak + 1)
    client.process_optimistic_update(sim.optimistic_update(weak, participation=16))
    assert client.optimistic_execution == sim.execution_head(newer)
    client.process_optimistic_update(sim.optimistic_update(weak, participation=17))
    assert client.optimistic_execution == sim.execution_head(weak)

    # An older optimistic update is still valid but does not move the head back.
    client.process_optimistic_update(sim.optimistic_update(newer - 1))
    assert client.optimistic_execution == sim.execution_head(weak)
    # A finality update signed in the next period by the known next committee moves
    # finality into that period.
    across = period_slot(sim, 3, 20)
    clock.at_slot(across + 1)
    client.process_finality_update(sim.finality_update(across))
    assert client.finalized_period == 3
    assert_finalized_at(client, sim, period_slot(sim, 3, 0))
    assert not client.next_sync_committee_known  # a finality update brings no committee
    sync_period(client, clock, sim, 3)
    assert client.next_sync_committee_known


def test_a_stale_checkpoint_and_stale_updates_are_refused(sim: BeaconChainSim) -> None:
    bootstrap = sim.bootstrap(BOOTSTRAP_SLOT)
    clock = SimClock(sim.config).at_slot(BOOTSTRAP_SLOT).later(15 * DAY)
    with pytest.raises(StaleCheckpoint, match=r"days old, more than the allowed 14\.0 days"):
        LightClient.bootstrap(sim.config, sim.root(BOOTSTRAP_SLOT), bootstrap, clock=clock)
    with pytest.raises(StaleCheckpoint, match="in the future"):
        LightClient.bootstrap(sim.config, sim.root(BOOTSTRAP_SLOT), bootstrap,
                              clock=SimClock(sim.config).at_slot(BOOTSTRAP_SLOT - 2))
    client = LightClient.bootstrap(sim.config, sim.root(BOOTSTRAP_SLOT), bootstrap,
                                   max_checkpoint_age=16 * DAY, clock=clock)
    assert_finalized_at(client, sim, BOOTSTRAP_SLOT)

    client, clock = synced(sim, 2)
    finalized = client.store.finalized_header.beacon.slot
    old = finalized - 2  # attested before the finalized header
    assert_refused_unchanged(client, client.process_finality_update, sim.finality_update(old),
                             rf"attested_header: slot {old} is not newer than the finalized "
                             rf"slot {finalized}")
    assert_refused_unchanged(client, client.process_optimistic_update,
                             sim.optimistic_update(finalized), "is not newer")


# -- partial participation --------------------------------------------------------------------


@pytest.mark.parametrize("signers, path, finalizes", [
    (32, "subtract-absent", True),
    (22, "subtract-absent", True),  # 22 * 3 >= 32 * 2: a supermajority
    (21, "subtract-absent", False),
    (20, "subtract-absent", False),
    (17, "subtract-absent", False),
    (16, "sum-present", False),  # exactly half: summed
    (10, "sum-present", False),
    (1, "sum-present", False),  # MIN_SYNC_COMMITTEE_PARTICIPANTS
])
def test_partial_participation(sim: BeaconChainSim, signers: int, path: str,
                               finalizes: bool) -> None:
    client, clock = synced(sim, 0)
    attested = period_slot(sim, 1)
    update = sim.update(attested, participation=signers)
    bits = update.sync_aggregate.sync_committee_bits
    assert sum(bits) == signers and (signers * 2 > 32) == (path == "subtract-absent")

    # The participants' key, built by either path, is the key of the summed secret keys.
    committee = sim.committee(1)
    secret = sum(sk for sk, bit in zip(sim.secret_keys(1), bits, strict=True) if bit)
    keys = CommitteeKeys(committee.pubkeys, committee.aggregate_pubkey)
    assert keys.participants_key(bits) == G1Point() * sim.scalar(secret % CURVE_ORDER)

    clock.at_slot(attested + 1)
    client.process_update(update)
    moved = signers > 16  # above the safety threshold (half of the 32 seen before)
    assert (client.optimistic_execution == sim.execution_head(attested)) == moved
    if finalizes:
        assert client.finalized_period == 1
        assert_finalized_at(client, sim, attested - 16)
        assert client.store.best_valid_update is None
    else:
        assert client.finalized_period == 0
        assert client.store.best_valid_update == update
        clock.at_slot(BOOTSTRAP_SLOT + 64 + 1)
        assert client.force_update() is True  # forced: finality from the update itself
        assert client.finalized_period == 1
        assert_finalized_at(client, sim, attested - 16)
    assert client.store.current_sync_committee == sim.committee(1)


def test_no_signer_is_refused(sim: BeaconChainSim) -> None:
    client, clock = synced(sim, 0)
    attested = period_slot(sim, 1)
    clock.at_slot(attested + 1)
    assert_refused_unchanged(client, client.process_update,
                             sim.update(attested, participation=0),
                             "sync_committee_bits: 0 participants, at least 1 needed")
