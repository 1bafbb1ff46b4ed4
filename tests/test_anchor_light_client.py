"""The beacon light client's proven execution blocks anchor the header store.

A simulated beacon chain (keys and signatures made here, :mod:`beacon_sim`) carries real
execution headers of the hive chain in two of its blocks: the light client proves them
(sync-committee signatures, finality and execution branches), and only what leads back from
them by ``parentHash`` is verified -- in the library and through ``orbital verify
--lc-store``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_beacon_follow import write_network

from node.chain.anchor import AnchorSource
from node.chain.beacon.store import LightClient
from node.chain.errors import NotAnchoredError, VerificationError
from node.chain.header import Header, header_to_rpc
from node.chain.header_store import HeaderStore
from node.cli.main import main

from beacon_sim import BeaconChainSim, SimClock, sim_network
from vectors import child_of, hive_chain_config, hive_header, io_case

CONFIG = sim_network({"altair": 0, "bellatrix": 0, "capella": 0, "deneb": 0})
BOOTSTRAP_SLOT = 16
ATTESTED_SLOT = 40  # epoch 5: its state finalizes epoch 3 (slot 24)
FINALIZED_SLOT = 24
OPTIMISTIC_SLOT = 41


def H(number: int) -> Header:
    return hive_header(number)


@pytest.fixture(scope="module")
def sim() -> BeaconChainSim:
    return BeaconChainSim(CONFIG, execution_headers={FINALIZED_SLOT: H(50),
                                                     OPTIMISTIC_SLOT: H(54)})


def proven(sim: BeaconChainSim, path: Path | None = None) -> LightClient:
    """A light client that proved block 50 final and block 54 optimistic."""
    clock = SimClock(CONFIG).at_slot(BOOTSTRAP_SLOT + 1)
    client = LightClient.bootstrap(CONFIG, sim.root(BOOTSTRAP_SLOT),
                                   sim.bootstrap(BOOTSTRAP_SLOT), path, clock=clock)
    clock.at_slot(OPTIMISTIC_SLOT + 1)
    client.process_finality_update(sim.finality_update(ATTESTED_SLOT))
    client.process_optimistic_update(sim.optimistic_update(OPTIMISTIC_SLOT))
    return client


def test_the_proven_execution_blocks_anchor_the_store(sim: BeaconChainSim,
                                                      tmp_path: Path) -> None:
    client = proven(sim)
    final, head = client.finalized_execution, client.optimistic_execution
    assert final is not None and head is not None
    assert (final.block_number, final.block_hash) == (50, H(50).hash)
    assert (head.block_number, head.block_hash) == (54, H(54).hash)
    with HeaderStore(tmp_path / "h.sqlite", hive_chain_config()) as store:
        store.add_anchor(final.anchor("finalized"), H(50), final=True)
        store.add_anchor(head.anchor("optimistic"), H(54))
        store.add_many([H(n) for n in range(53, 39, -1)])
        assert store.head == H(54) and store.finalized.number == 50
        assert all(store.get(H(n).hash) == H(n) for n in range(40, 55))
        sources = {a.source for a in store.anchors()}
        assert sources == {AnchorSource.BEACON}
        assert store.anchors()[-1].detail == f"light client, optimistic, beacon slot {head.slot}"


def test_headers_that_do_not_lead_back_from_the_light_client_are_refused(
        sim: BeaconChainSim, tmp_path: Path) -> None:
    head = proven(sim).optimistic_execution
    assert head is not None
    forged = dataclasses.replace(H(54), state_root=b"\x66" * 32)  # another child of 53
    with HeaderStore(tmp_path / "h.sqlite", hive_chain_config()) as store:
        with pytest.raises(VerificationError, match="anchor"):
            store.add_anchor(head.anchor("optimistic"), forged)  # not the proven block
        store.add_anchor(head.anchor("optimistic"), H(54))
        store.add_many([H(53), H(52)])
        assert store.add(forged).status == "linked"  # links to 53, leads back from nothing
        child = child_of(H(54), hive_chain_config())
        assert store.add(child).status == "linked"  # a child of the proven head: not proven
        for header in (forged, child):
            with pytest.raises(NotAnchoredError):
                store.require_anchored(header.hash)
        assert store.head == H(54)


def test_the_anchor_carries_the_proven_state_root(sim: BeaconChainSim) -> None:
    head = proven(sim).optimistic_execution
    assert head is not None
    anchor = head.anchor("optimistic")
    assert anchor.state_root == H(54).state_root
    with pytest.raises(VerificationError, match="stateRoot"):
        dataclasses.replace(anchor, state_root=b"\x01" * 32).check(H(54))


def test_verify_uses_a_light_client_store_as_its_anchor(
        sim: BeaconChainSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "lc.sqlite"
    proven(sim, store).close()
    network = write_network(tmp_path)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps([header_to_rpc(H(n)) for n in range(45, 55)]))
    lc = ["--lc-store", str(store), "--lc-network", network]
    assert main(["verify", "chain", str(chain), *lc, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["head"] == 54 and [a["source"] for a in report["anchors"]] == ["beacon"] * 2

    block = tmp_path / "b.json"
    block.write_text(json.dumps(io_case("eth_getBlockByNumber", "get-latest").result))
    proof = tmp_path / "p.json"
    proof.write_text(json.dumps(io_case("eth_getProof", "get-account-proof-with-storage").result))
    assert main(["verify", "proof", "--block", str(block), str(proof), *lc]) == 0
    out = capsys.readouterr().out
    assert "anchored by  block 54" in out and "(beacon: light client, optimistic" in out

    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps([header_to_rpc(child_of(H(54), hive_chain_config()))]))
    assert main(["verify", "header", str(forged.parent / "forged.json"), *lc]) == 2  # a list
    code = main(["verify", "chain", str(chain), str(forged), *lc])
    assert code == 1 and "header 55" in capsys.readouterr().err
