"""Every field of a bootstrap, an update, a finality update and an optimistic update, corrupted
one at a time, is refused -- with :class:`UpdateRejected` naming the failed check of the sync
protocol (or :class:`BlsError`/:class:`SszError` for an encoding that is not a point or not SSZ)
-- and the store is exactly as it was, in memory and in SQLite.

The honest objects come from tests/beacon_sim.py (real BLS, real Merkle branches), for a chain
in Capella, in Deneb and in Electra (deeper state branches), so each mutation runs three times.
The store is bootstrapped at slot 40 (period 0, next committee unknown) and its clock reads slot
200; the update is attested at 56 and signed at 57 by 28 of the 32 members, with the next
committee and the finalized header (slot 40); the finality update is attested at 60, the
optimistic update at 62.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.chain.beacon.bls import BlsError
from node.chain.beacon.containers import compute_signing_root
from node.chain.beacon.ssz import SszError
from node.chain.beacon.store import LightClient, _encode_store
from node.chain.beacon.sync_protocol import UpdateRejected

from beacon_sim import ZERO, BeaconChainSim, SimClock, sim_network

BOOTSTRAP_SLOT = 40
UPDATE_SLOT = 56  # signed at 57; finalizes slot 40 (epoch 7 -> checkpoint epoch 5)
FINALITY_SLOT = 60
OPTIMISTIC_SLOT = 62
NOW = 200
SIGNERS = 28
FORKS = ("capella", "deneb", "electra")


def _from_genesis(fork: str) -> dict[str, int]:
    names = ("altair", "bellatrix", "capella", "deneb", "electra")
    return {name: 0 for name in names[:names.index(fork) + 1]} | {
        name: 1000 for name in names[names.index(fork) + 1:]}


@dataclass
class World:
    """One chain, its honest light-client objects and a store that must never change."""

    fork: str
    sim: BeaconChainSim
    clock: SimClock
    path: Path
    client: LightClient
    bootstrap: Any
    update: Any
    finality: Any
    optimistic: Any

    def refuse(self, kind: str, obj: Any, error: type[Exception], match: str) -> None:
        client = self.client
        before, saved = client.store, _encode_store(client.store, "minimal")
        process = {"update": client.process_update,
                   "finality": client.process_finality_update,
                   "optimistic": client.process_optimistic_update}[kind]
        with pytest.raises(error, match=match):
            process(obj)
        assert client.store is before
        assert _encode_store(client.store, "minimal") == saved


@pytest.fixture(scope="module", params=FORKS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    fork = request.param
    sim = BeaconChainSim(sim_network(_from_genesis(fork), name=f"{fork}-sim"))
    clock = SimClock(sim.config).at_slot(NOW)
    path = tmp_path_factory.mktemp(fork) / "lc.sqlite"
    client = LightClient.bootstrap(sim.config, sim.root(BOOTSTRAP_SLOT),
                                   sim.bootstrap(BOOTSTRAP_SLOT), path, clock=clock)
    return World(fork, sim, clock, path, client, sim.bootstrap(BOOTSTRAP_SLOT),
                 sim.update(UPDATE_SLOT, participation=SIGNERS),
                 sim.finality_update(FINALITY_SLOT, participation=SIGNERS),
                 sim.optimistic_update(OPTIMISTIC_SLOT, participation=SIGNERS))


# -- corrupting one field -------------------------------------------------------------------

_STEP = re.compile(r"(\w+)(?:\[(-?\d+)\])?")


def replace_at(obj: Any, path: str, change: Callable[[Any], Any]) -> Any:
    """``obj`` with the value at ``path`` (``a.b[3].c``) replaced by ``change(value)``."""
    step, _, rest = path.partition(".")
    match = _STEP.fullmatch(step)
    assert match, path
    name, index = match.group(1), match.group(2)
    value = getattr(obj, name)
    if index is None:
        new = replace_at(value, rest, change) if rest else change(value)
    else:
        i = int(index) % len(value)
        item = replace_at(value[i], rest, change) if rest else change(value[i])
        new = (*value[:i], item, *value[i + 1:])
    return dataclasses.replace(obj, **{name: new})


def flip(data: bytes) -> bytes:
    """The same bytes with the lowest bit of the last byte flipped."""
    return data[:-1] + bytes([data[-1] ^ 1])


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    change: Callable[[World, Any, Any], Any]  # (world, whole object, old value) -> new value
    match: str  # the start of the message: the failed check
    error: type[Exception] = UpdateRejected

    def apply(self, world: World, obj: Any) -> Any:
        return replace_at(obj, self.path, lambda old: self.change(world, obj, old))


def _set(value: Any) -> Callable[[World, Any, Any], Any]:
    return lambda world, obj, old: value


def _bump(world: World, obj: Any, old: Any) -> Any:
    return old + 1 if isinstance(old, int) else flip(old)


def _resign(*, period: int = 0, domain_fork: str | None = None,
            header_slot: int | None = None) -> Callable[[World, Any, Any], bytes]:
    """A real signature by the object's participants -- of ``period``'s committee, in
    ``domain_fork``'s domain, over the block at ``header_slot`` (each defaulting to what is
    right)."""
    def change(world: World, obj: Any, old: Any) -> bytes:
        sim = world.sim
        header = (obj.attested_header.beacon if header_slot is None
                  else sim.block(header_slot).header)
        root = compute_signing_root(header, sim.domain(obj.signature_slot, domain_fork))
        return sim.sign(period, obj.sync_aggregate.sync_committee_bits, root)
    return change


def _bits(how: str) -> Callable[[World, Any, Any], tuple[bool, ...]]:
    def change(world: World, obj: Any, bits: tuple[bool, ...]) -> tuple[bool, ...]:
        out = list(bits)
        if how == "clear a signer":
            out[out.index(True)] = False
        elif how == "set an absent member":
            out[out.index(False)] = True
        elif how == "clear all":
            out = [False] * len(out)
        else:  # another subset of the same size
            out = out[1:] + out[:1] if out[1:] + out[:1] != out else out[::-1]
        assert tuple(out) != bits
        return tuple(out)
    return change


SIG = "sync_aggregate.sync_committee_signature"
BITS = "sync_aggregate.sync_committee_bits"
SIGNATURE_FAILS = r"sync_aggregate\.sync_committee_signature: not the signature"


def signed_mutations(header_state_check: str) -> list[Mutation]:
    """What every signed object (update, finality update, optimistic update) has: the
    signature, the participation bits, the attested header, its execution header and
    branch, and the signature slot. ``header_state_check`` is the check that notices a
    changed attested state root first."""
    out = [
        Mutation("signature over another header", SIG, _resign(header_slot=BOOTSTRAP_SLOT),
                 SIGNATURE_FAILS),
        Mutation("signature under another fork's domain", SIG, _resign(domain_fork="altair"),
                 SIGNATURE_FAILS),
        Mutation("signature by the next period's committee", SIG, _resign(period=1),
                 SIGNATURE_FAILS),
        Mutation("signature: the point at infinity", SIG, _set(b"\xc0" + bytes(95)),
                 SIGNATURE_FAILS),
        Mutation("signature: one bit flipped", SIG, lambda w, o, old: flip(old),
                 "BLS signature 0x[0-9a-f]+… is not a G2 point", BlsError),
        Mutation("signature: zero bytes", SIG, _set(bytes(96)),
                 "BLS signature 0x0+… is not a G2 point", BlsError),
        Mutation("signature: 95 bytes", SIG, lambda w, o, old: old[:95],
                 "a BLS signature is 96 bytes, got 95", BlsError),
        Mutation("bits: a signer's bit cleared", BITS, _bits("clear a signer"),
                 SIGNATURE_FAILS),
        Mutation("bits: an absent member's bit set", BITS, _bits("set an absent member"),
                 SIGNATURE_FAILS),
        Mutation("bits: another subset of the same size", BITS, _bits("rotate"),
                 SIGNATURE_FAILS),
        Mutation("bits: all cleared", BITS, _bits("clear all"),
                 "sync_aggregate.sync_committee_bits: 0 participants, at least 1 needed"),
        Mutation("attested slot - 1", "attested_header.beacon.slot",
                 lambda w, o, old: old - 1, SIGNATURE_FAILS),
        Mutation("attested slot = signature slot", "attested_header.beacon.slot",
                 lambda w, o, old: o.signature_slot, "signature_slot: want current slot"),
        Mutation("attested proposer_index", "attested_header.beacon.proposer_index", _bump,
                 SIGNATURE_FAILS),
        Mutation("attested parent_root", "attested_header.beacon.parent_root", _bump,
                 SIGNATURE_FAILS),
        Mutation("attested state_root", "attested_header.beacon.state_root", _bump,
                 header_state_check),
        Mutation("attested body_root", "attested_header.beacon.body_root", _bump,
                 "attested_header.execution_branch: execution payload header does not match"),
        Mutation("signature_slot = attested slot", "signature_slot",
                 lambda w, o, old: o.attested_header.beacon.slot,
                 r"signature_slot: want current slot 200 >= signature slot \d+ > attested"),
        Mutation("signature_slot after the current slot", "signature_slot", _set(NOW + 1),
                 "signature_slot: want current slot 200 >= signature slot 201"),
        Mutation("signature_slot in the next period", "signature_slot", _set(64 + 3),
                 r"signature_slot: signed in period 1; the store \(period 0, next committee "
                 r"unknown\) can check only period 0"),
        Mutation("signature_slot two periods ahead", "signature_slot", _set(128 + 3),
                 "signature_slot: signed in period 2"),
    ]
    for field in ("block_hash", "block_number", "state_root", "parent_hash", "timestamp"):
        out.append(Mutation(f"attested execution.{field}", f"attested_header.execution.{field}",
                            _bump, "attested_header.execution_branch"))
    for i in range(4):
        out.append(Mutation(f"attested execution_branch[{i}]",
                            f"attested_header.execution_branch[{i}]", _bump,
                            "attested_header.execution_branch"))
    return out


def finality_mutations() -> list[Mutation]:
    """The finalized header, its execution header and the finality branch."""
    out = [
        Mutation("finality_branch zeroed", "finality_branch",
                 lambda w, o, old: (ZERO,) * len(old),
                 "finalized_header: present without a finality branch"),
        Mutation("finalized header of another block", "finalized_header",
                 lambda w, o, old: w.sim.lc_header(48), "finality_branch"),
        Mutation("finalized slot after the attested slot", "finalized_header.beacon.slot",
                 lambda w, o, old: o.attested_header.beacon.slot + 1,
                 r"signature_slot: want .* >= finalized slot"),
        Mutation("finalized execution header zeroed", "finalized_header.execution",
                 lambda w, o, old: type(old).default(), "finalized_header.execution_branch"),
    ]
    for field in ("slot", "proposer_index", "parent_root", "state_root"):
        change = (lambda w, o, old: old - 1) if field == "slot" else _bump
        out.append(Mutation(f"finalized {field}", f"finalized_header.beacon.{field}", change,
                            "finality_branch: does not prove the finalized header"))
    out.append(Mutation("finalized body_root", "finalized_header.beacon.body_root", _bump,
                        "finalized_header.execution_branch: execution payload header does "
                        "not match"))
    for field in ("block_hash", "block_number", "state_root"):
        out.append(Mutation(f"finalized execution.{field}", f"finalized_header.execution.{field}",
                            _bump, "finalized_header.execution_branch"))
    for i in range(4):
        out.append(Mutation(f"finalized execution_branch[{i}]",
                            f"finalized_header.execution_branch[{i}]", _bump,
                            "finalized_header.execution_branch"))
    for i in (0, 1, 2, 3, 4, 5, -1):  # 6 nodes before Electra, 7 from Electra
        out.append(Mutation(f"finality_branch[{i}]", f"finality_branch[{i}]", _bump,
                            "finality_branch: does not prove"))
    return out


def committee_mutations() -> list[Mutation]:
    """The next sync committee and its branch."""
    committee = "next_sync_committee"
    out = [
        Mutation("next committee: pubkeys[0] of another committee", f"{committee}.pubkeys[0]",
                 lambda w, o, old: w.sim.committee(5).pubkeys[0], "next_sync_committee_branch"),
        Mutation("next committee: pubkeys[31] of another committee",
                 f"{committee}.pubkeys[31]",
                 lambda w, o, old: w.sim.committee(5).pubkeys[31],
                 "next_sync_committee_branch"),
        Mutation("next committee: two keys swapped", f"{committee}.pubkeys",
                 lambda w, o, old: (old[1], old[0], *old[2:]), "next_sync_committee_branch"),
        Mutation("next committee: aggregate_pubkey", f"{committee}.aggregate_pubkey",
                 lambda w, o, old: w.sim.committee(0).aggregate_pubkey,
                 "next_sync_committee_branch"),
        Mutation("next committee: the current one", committee,
                 lambda w, o, old: w.sim.committee(0), "next_sync_committee_branch"),
        Mutation("next committee branch zeroed", "next_sync_committee_branch",
                 lambda w, o, old: (ZERO,) * len(old),
                 "next_sync_committee: present without a branch"),
    ]
    for i in (0, 1, 2, 3, 4, -1):  # 5 nodes before Electra, 6 from Electra
        out.append(Mutation(f"next_sync_committee_branch[{i}]",
                            f"next_sync_committee_branch[{i}]", _bump,
                            "next_sync_committee_branch: does not prove"))
    return out


UPDATE_MUTATIONS = (signed_mutations("finality_branch") + finality_mutations()
                    + committee_mutations())
FINALITY_MUTATIONS = signed_mutations("finality_branch") + finality_mutations()
OPTIMISTIC_MUTATIONS = signed_mutations(SIGNATURE_FAILS)


def _run(world: World, kind: str, obj: Any, mutation: Mutation) -> None:
    forged = mutation.apply(world, obj)
    assert forged != obj
    world.refuse(kind, forged, mutation.error, "^" + mutation.match)


def test_the_honest_objects_are_accepted(world: World) -> None:
    client = LightClient.bootstrap(world.sim.config, world.sim.root(BOOTSTRAP_SLOT),
                                   world.bootstrap, clock=world.clock)
    client.process_update(world.update)
    assert client.next_sync_committee_known
    assert client.store.finalized_header == world.update.finalized_header
    client.process_finality_update(world.finality)
    assert client.store.finalized_header == world.finality.finalized_header
    client.process_optimistic_update(world.optimistic)
    assert client.optimistic_execution == world.sim.execution_head(OPTIMISTIC_SLOT)
    assert world.update.finalized_header.beacon.slot == BOOTSTRAP_SLOT
    assert sum(world.update.sync_aggregate.sync_committee_bits) == SIGNERS


@pytest.mark.parametrize("mutation", UPDATE_MUTATIONS, ids=lambda m: m.name)
def test_a_corrupted_update_is_refused(world: World, mutation: Mutation) -> None:
    _run(world, "update", world.update, mutation)


@pytest.mark.parametrize("mutation", FINALITY_MUTATIONS, ids=lambda m: m.name)
def test_a_corrupted_finality_update_is_refused(world: World, mutation: Mutation) -> None:
    _run(world, "finality", world.finality, mutation)


@pytest.mark.parametrize("mutation", OPTIMISTIC_MUTATIONS, ids=lambda m: m.name)
def test_a_corrupted_optimistic_update_is_refused(world: World, mutation: Mutation) -> None:
    _run(world, "optimistic", world.optimistic, mutation)


# -- bootstraps ---------------------------------------------------------------------------

NOT_TRUSTED = "bootstrap.header: header root 0x[0-9a-f]+ is not the trusted block root"
BAD_EXECUTION = "bootstrap.header: execution payload header does not match"
BAD_COMMITTEE = "bootstrap.current_sync_committee_branch: does not prove the sync committee"


def bootstrap_mutations() -> list[Mutation]:
    out = [
        Mutation("header slot", "header.beacon.slot", lambda w, o, old: old - 1, NOT_TRUSTED),
        Mutation("header of another block", "header", lambda w, o, old: w.sim.lc_header(48),
                 NOT_TRUSTED),
        Mutation("header body_root", "header.beacon.body_root", _bump, BAD_EXECUTION),
        Mutation("committee: pubkeys[0] of another committee",
                 "current_sync_committee.pubkeys[0]",
                 lambda w, o, old: w.sim.committee(5).pubkeys[0], BAD_COMMITTEE),
        Mutation("committee: pubkeys[31] of another committee",
                 "current_sync_committee.pubkeys[31]",
                 lambda w, o, old: w.sim.committee(5).pubkeys[31], BAD_COMMITTEE),
        Mutation("committee: aggregate_pubkey", "current_sync_committee.aggregate_pubkey",
                 lambda w, o, old: w.sim.committee(1).aggregate_pubkey, BAD_COMMITTEE),
        Mutation("committee: the next period's", "current_sync_committee",
                 lambda w, o, old: w.sim.committee(1), BAD_COMMITTEE),
        Mutation("committee: a malformed key", "current_sync_committee.pubkeys[7]",
                 _set(b"\xc0" + bytes(47)), BAD_COMMITTEE),
    ]
    for field in ("proposer_index", "parent_root", "state_root"):
        out.append(Mutation(f"header {field}", f"header.beacon.{field}", _bump, NOT_TRUSTED))
    for field in ("block_hash", "block_number", "state_root"):
        out.append(Mutation(f"execution.{field}", f"header.execution.{field}", _bump,
                            BAD_EXECUTION))
    for i in range(4):
        out.append(Mutation(f"execution_branch[{i}]", f"header.execution_branch[{i}]", _bump,
                            BAD_EXECUTION))
    for i in (0, 1, 2, 3, 4, -1):  # 5 nodes before Electra, 6 from Electra
        out.append(Mutation(f"current_sync_committee_branch[{i}]",
                            f"current_sync_committee_branch[{i}]", _bump, BAD_COMMITTEE))
    return out


@pytest.mark.parametrize("mutation", bootstrap_mutations(), ids=lambda m: m.name)
def test_a_corrupted_bootstrap_is_refused(world: World, mutation: Mutation) -> None:
    """Refused before any state exists: the persisted store of an earlier, honest bootstrap
    at the same path is not replaced."""
    forged = mutation.apply(world, world.bootstrap)
    assert forged != world.bootstrap
    with pytest.raises(UpdateRejected, match="^" + mutation.match):
        LightClient.bootstrap(world.sim.config, world.sim.root(BOOTSTRAP_SLOT), forged,
                              world.path, clock=world.clock)
    resumed = LightClient.resume(world.sim.config, world.path, clock=world.clock)
    assert resumed.store == world.client.store
    resumed.close()


# -- malformed encodings -------------------------------------------------------------------


KINDS = ["bootstrap", "update", "finality", "optimistic"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage, match", [
    ("cut in half", r"expected at least \d+ bytes, got \d+"),
    ("32 bytes more", r"exceed"),
    ("first offset moved", r"first offset \d+ does not point just past the fixed-size part"),
])
def test_malformed_encodings_are_refused_by_the_decoder(world: World, kind: str, damage: str,
                                                        match: str) -> None:
    obj = getattr(world, kind)
    data = obj.encode()
    assert type(obj).decode(data) == obj
    if damage == "cut in half":
        data = data[:len(data) // 2]
    elif damage == "32 bytes more":
        data += bytes(32)  # the trailing extra_data (11 bytes) would pass its limit of 32
    else:
        offset = _first_offset(type(obj))  # every Capella+ header is variable-size
        value = int.from_bytes(data[offset:offset + 4], "little") + 1
        data = data[:offset] + value.to_bytes(4, "little") + data[offset + 4:]
    with pytest.raises(SszError, match=match):
        type(obj).decode(data)


@pytest.mark.parametrize("kind, check", [
    ("bootstrap", BAD_EXECUTION),
    ("update", "finalized_header.execution_branch"),
    ("finality", "finalized_header.execution_branch"),
    ("optimistic", "attested_header.execution_branch"),
])
@pytest.mark.parametrize("damage", ["one byte less", "one byte more"])
def test_a_byte_less_or_more_is_another_object_the_store_refuses(
        world: World, kind: str, check: str, damage: str) -> None:
    """Each object ends in a header's ``extra_data`` (a byte list): a byte cut or appended is
    still a canonical encoding -- of a header whose execution payload no longer matches its
    body root."""
    obj = getattr(world, kind)
    data = obj.encode()
    data = data[:-1] if damage == "one byte less" else data + b"\x01"
    forged = type(obj).decode(data)
    assert forged != obj and forged.encode() == data
    if kind == "bootstrap":
        with pytest.raises(UpdateRejected, match="^" + check):
            LightClient.bootstrap(world.sim.config, world.sim.root(BOOTSTRAP_SLOT), forged,
                                  clock=world.clock)
    else:
        world.refuse(kind, forged, UpdateRejected, "^" + check)


def _first_offset(cls: Any) -> int:
    """Byte position of the first offset in the fixed-size part of ``cls``."""
    position = 0
    for _, typ in cls.ssz_type.fields:
        if typ.fixed_size is None:
            return position
        position += typ.fixed_size
    raise AssertionError(f"{cls.__qualname__} has no variable-size field")


# -- what the chain itself committed to ----------------------------------------------------


@pytest.mark.parametrize("key, match", [
    (b"\xc0" + bytes(47), "BLS public key is the point at infinity"),
    (b"\x80" + bytes(47), "BLS public key 0x8000000000000000… is not a G1 point"),
])
def test_a_committee_with_an_unusable_key_is_refused_when_it_must_verify(
        key: bytes, match: str) -> None:
    """A key that is not a usable point, committed by the chain's own state (its branch is
    valid): the bootstrap is accepted, every signature of that committee is refused with
    BlsError (KeyValidate) and nothing changes."""
    sim = BeaconChainSim(sim_network(_from_genesis("deneb")), pubkey_overrides={0: {7: key}})
    clock = SimClock(sim.config).at_slot(NOW)
    client = LightClient.bootstrap(sim.config, sim.root(BOOTSTRAP_SLOT),
                                   sim.bootstrap(BOOTSTRAP_SLOT), clock=clock)
    before = client.store
    with pytest.raises(BlsError, match=match):
        client.process_update(sim.update(UPDATE_SLOT))
    with pytest.raises(BlsError, match=match):
        client.process_optimistic_update(sim.optimistic_update(OPTIMISTIC_SLOT, participation=3))
    assert client.store is before


def test_a_conflicting_next_committee_is_refused_once_one_is_known() -> None:
    """A second chain signed by the same period-0 committee (a slashable equivocation) that
    commits to another period-1 committee: once the store knows the next committee, an
    update of the same period bringing a different one is refused."""
    config = sim_network(_from_genesis("electra"))
    sim = BeaconChainSim(config)
    liar = BeaconChainSim(config, committee_seeds={1: b"someone else"})
    assert liar.committee(0) == sim.committee(0) and liar.committee(1) != sim.committee(1)
    clock = SimClock(config).at_slot(NOW)
    client = LightClient.bootstrap(config, sim.root(BOOTSTRAP_SLOT),
                                   sim.bootstrap(BOOTSTRAP_SLOT), clock=clock)
    client.process_update(sim.update(UPDATE_SLOT))
    before = client.store
    with pytest.raises(UpdateRejected, match=r"^next_sync_committee: differs from the next "
                                             r"committee the store already knows"):
        client.process_update(liar.update(UPDATE_SLOT + 2))
    assert client.store is before
    client.process_update(sim.update(UPDATE_SLOT + 2))  # the honest chain goes on


def test_the_signature_slot_is_not_signed_within_a_period_and_fork(world: World) -> None:
    """Not a mutation the protocol can catch, pinned so nobody counts on it: the committee
    signs the attested block root in the domain of ``signature_slot - 1``'s fork, not the
    signature slot itself. Moving it within the same period and fork (and not past the
    clock) changes nothing that is verified, and the update stays valid -- the store only uses
    it to pick the committee, the domain and, last, to rank updates (``is_better_update``)."""
    moved = dataclasses.replace(world.update, signature_slot=world.update.signature_slot + 5)
    client = LightClient.bootstrap(world.sim.config, world.sim.root(BOOTSTRAP_SLOT),
                                   world.bootstrap, clock=world.clock)
    client.process_update(moved)
    assert client.store.finalized_header == world.update.finalized_header
