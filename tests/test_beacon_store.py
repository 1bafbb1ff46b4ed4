"""node/chain/beacon/store.py: the persistent light client on a consensus-spec-tests case --
the checkpoint-age policy, the clock, a refused update leaving no trace, the proven execution
head, and a restart resuming from SQLite (also after kill -9 between updates: every applied
update is committed before process_update returns)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cramjam
import pytest
import yaml

from node.chain.beacon.config import NetworkConfig
from node.chain.beacon.containers import light_client_types
from node.chain.beacon.store import (
    DAY,
    LightClient,
    LightClientStateError,
    StaleCheckpoint,
)
from node.chain.beacon.sync_protocol import UpdateRejected

from vectors import vector_path

VECTORS = vector_path("consensus-light-client")
CASE = VECTORS / "minimal" / "deneb" / "sync" / "pyspec_tests" / "light_client_sync"


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


class Case:
    def __init__(self, path: Path) -> None:
        self.meta = yaml.safe_load((path / "meta.yaml").read_text())
        self.config = NetworkConfig.from_yaml(
            (path / "config.yaml").read_text(), name="spec-minimal",
            genesis_validators_root=_hex(self.meta["genesis_validators_root"]))
        self.path = path
        self.steps = [next(iter(s.items())) for s in yaml.safe_load(
            (path / "steps.yaml").read_text())]
        self.trusted = _hex(self.meta["trusted_block_root"])

    def types(self, digest: str):
        return light_client_types(self.config.fork_by_digest(_hex(digest)).name, "minimal")

    def read(self, name: str) -> bytes:
        return bytes(cramjam.snappy.decompress_raw((self.path / f"{name}.ssz_snappy")
                                                   .read_bytes()))

    def bootstrap(self):
        return self.types(self.meta["bootstrap_fork_digest"]).LightClientBootstrap.decode(
            self.read("bootstrap"))

    def update(self, step: dict):
        return self.types(step["update_fork_digest"]).LightClientUpdate.decode(
            self.read(step["update"]))

    def run(self, client: LightClient, kind: str, step: dict) -> None:
        if kind == "process_update":
            client.process_update(self.update(step))
        else:
            assert kind == "force_update"
            client.force_update()

    def time_of(self, slot: int) -> float:
        return float(self.config.genesis_time + slot * self.config.seconds_per_slot)


@pytest.fixture(scope="module")
def case() -> Case:
    return Case(CASE)


def test_updates_apply_and_a_restart_resumes(case: Case, tmp_path: Path) -> None:
    now = [case.time_of(case.bootstrap().header.beacon.slot)]
    path = tmp_path / "lc.sqlite"
    client = LightClient.bootstrap(case.config, case.trusted, case.bootstrap(), path,
                                   clock=lambda: now[0])
    half = len(case.steps) // 2
    for kind, step in case.steps[:half]:
        now[0] = case.time_of(step["current_slot"])
        case.run(client, kind, step)
    before = client.store
    client.close()  # a restart, or a kill -9 after the last process_update returned

    again = LightClient.resume(case.config, path, clock=lambda: now[0])
    assert again.store == before
    assert again.trusted_block_root == case.trusted
    for kind, step in case.steps[half:]:
        now[0] = case.time_of(step["current_slot"])
        case.run(again, kind, step)
    want = case.steps[-1][1]["checks"]["finalized_header"]
    assert again.store.finalized_header.beacon.slot == want["slot"]
    assert again.store.finalized_header.beacon.hash_tree_root() == _hex(want["beacon_root"])
    head = again.finalized_execution
    assert head is not None and head.slot == want["slot"]
    assert head.block_hash == again.store.finalized_header.execution.block_hash
    assert head.as_dict()["blockNumber"] == head.block_number
    anchor = head.anchor("finalized")  # what the execution-side header store is anchored at
    assert (anchor.number, anchor.hash, anchor.state_root) == (
        head.block_number, head.block_hash, head.state_root)
    assert anchor.source == "beacon"
    again.close()


def test_a_refused_update_leaves_the_store_as_it_was(case: Case, tmp_path: Path) -> None:
    _, step = case.steps[0]
    now = case.time_of(step["current_slot"])
    client = LightClient.bootstrap(case.config, case.trusted, case.bootstrap(),
                                   tmp_path / "lc.sqlite", clock=lambda: now)
    update = case.update(step)
    bits = list(update.sync_aggregate.sync_committee_bits)
    bits[bits.index(True)] = False  # one signer less: the aggregate no longer matches
    forged = dataclasses.replace(update, sync_aggregate=dataclasses.replace(
        update.sync_aggregate, sync_committee_bits=tuple(bits)))
    before = client.store
    with pytest.raises(UpdateRejected, match="sync_committee_signature"):
        client.process_update(forged)
    assert client.store is before
    client.close()
    resumed = LightClient.resume(case.config, tmp_path / "lc.sqlite", clock=lambda: now)
    assert resumed.store == before
    resumed.close()


def test_the_clock_bounds_the_signature_slot(case: Case) -> None:
    _, step = case.steps[0]
    bootstrap = case.bootstrap()
    at_checkpoint = case.time_of(bootstrap.header.beacon.slot)  # before the update was signed
    client = LightClient.bootstrap(case.config, case.trusted, bootstrap,
                                   clock=lambda: at_checkpoint)
    with pytest.raises(UpdateRejected, match="signature_slot: want current slot"):
        client.process_update(case.update(step))


def test_a_stale_or_future_checkpoint_is_refused(case: Case) -> None:
    bootstrap = case.bootstrap()
    at = case.time_of(bootstrap.header.beacon.slot)
    with pytest.raises(StaleCheckpoint, match=r"days old, more than the allowed 14\.0 days"):
        LightClient.bootstrap(case.config, case.trusted, bootstrap, clock=lambda: at + 15 * DAY)
    with pytest.raises(StaleCheckpoint, match="in the future"):
        LightClient.bootstrap(case.config, case.trusted, bootstrap, clock=lambda: at - 3600)
    assert LightClient.bootstrap(case.config, case.trusted, bootstrap,
                                 max_checkpoint_age=30 * DAY, clock=lambda: at + 15 * DAY)


def test_a_wrong_trusted_root_is_refused(case: Case) -> None:
    bootstrap = case.bootstrap()
    now = case.time_of(bootstrap.header.beacon.slot)
    with pytest.raises(UpdateRejected, match="is not the trusted block root"):
        LightClient.bootstrap(case.config, b"\x01" * 32, bootstrap, clock=lambda: now)


def test_resume_refuses_another_network_and_missing_state(case: Case, tmp_path: Path) -> None:
    bootstrap = case.bootstrap()
    now = case.time_of(bootstrap.header.beacon.slot)
    path = tmp_path / "lc.sqlite"
    LightClient.bootstrap(case.config, case.trusted, bootstrap, path, clock=lambda: now).close()
    other = case.config.with_genesis_validators_root(b"\x02" * 32)
    with pytest.raises(LightClientStateError, match="not spec-minimal"):
        LightClient.resume(other, path)
    with pytest.raises(LightClientStateError, match="no light-client state"):
        LightClient.resume(case.config, tmp_path / "empty.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LightClientStateError, match="not a light-client database"):
        LightClient.resume(case.config, tmp_path / "junk.sqlite")


def test_light_client_data_of_an_unsupported_fork_is_refused_by_name() -> None:
    from node.chain.beacon.config import SEPOLIA
    from node.chain.beacon.sync_protocol import is_valid_light_client_header

    gloas = SEPOLIA.fork("gloas")
    header_type = light_client_types("fulu", "mainnet").LightClientHeader
    header = header_type.default()
    header = dataclasses.replace(header, beacon=dataclasses.replace(
        header.beacon, slot=gloas.epoch * SEPOLIA.preset.slots_per_epoch))
    with pytest.raises(UpdateRejected, match="gloas fork, whose light-client data is not "
                                             "supported"):
        is_valid_light_client_header(SEPOLIA, header)
