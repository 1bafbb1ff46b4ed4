"""Gossip nodes as separate OS processes (node.gossip.peer_process, driven by PeerProcess):
end-to-end delivery along a line, forgeries rejected at the first honest hop and never
delivered, a SIGKILLed middle node restarted with its seed catching up, clean shutdown; and the
recovery seam the gossip benchmark times (coincurve against eth-account)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account

from contracts import eip712
from node.attest import BadSignature, StaticRegistry, attest, decode, encode, message_id
from node.attest.attestation import coincurve_recover, verify_attestation
from node.gossip.peer_client import PeerProcess, PeerProcessError

from signers import labelled_signer

REPO = Path(__file__).resolve().parents[1]
CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
MODEL = b"\x11" * 32
TIMEOUT = 30.0

SIGNERS = [labelled_signer(f"procs-{i}") for i in range(3)]
FORGER = labelled_signer("procs-forger")


def attestation(signer: object, epoch: int, model: bytes = MODEL) -> bytes:
    result = eip712.TaskResult(b"\x33" * 32, model, b"\x22" * 32, b"\x44" * 32, epoch)
    return encode(attest(result, signer, CHAIN_ID, CONTRACT))


def mid(data: bytes) -> str:
    return message_id(data).hex()


@pytest.fixture
async def procs() -> AsyncIterator[list[PeerProcess]]:
    """Peer processes a test starts (append to the list); all stopped afterwards."""
    started: list[PeerProcess] = []
    yield started
    await asyncio.gather(*(p.stop() for p in started))


async def spawn(procs: list[PeerProcess], name: str, **kwargs: object) -> PeerProcess:
    peer = await PeerProcess.spawn(f"procs test {name}", name=name,
                                   signers=[s.address for s in SIGNERS], models=[MODEL],
                                   chain_id=CHAIN_ID, contract=CONTRACT, **kwargs)  # type: ignore[arg-type]
    procs.append(peer)
    return peer


async def line(peers: list[PeerProcess]) -> None:
    """Each node dials the one before it; wait until every link is in both meshes."""
    for left, right in itertools.pairwise(peers):
        await right.connect(left.addr)
    async with asyncio.timeout(TIMEOUT):
        for left, right in itertools.pairwise(peers):
            while (right.peer_id not in (await left.stats())["mesh_peers"]
                   or left.peer_id not in (await right.stats())["mesh_peers"]):
                await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_line_delivers_end_to_end_and_forgeries_never_pass_the_first_honest_hop(
        procs: list[PeerProcess]) -> None:
    forger, a, b, c = await asyncio.gather(
        spawn(procs, "forger", accept_all=True),  # no validator: publishes anything
        spawn(procs, "a"), spawn(procs, "b"), spawn(procs, "c"))
    await line([forger, a, b, c])

    valid = attestation(SIGNERS[0], 1)
    published = await c.publish(valid)  # from one end ...
    assert published["id"] == mid(valid)
    await forger.wait_delivered([mid(valid)], TIMEOUT)  # ... to the other
    for peer in (a, b, c):  # each process reports its deliveries on its own stream
        await peer.wait_delivered([mid(valid)], TIMEOUT)

    good = bytearray(attestation(SIGNERS[1], 2))
    good[157 + 10] ^= 0x01  # a byte of r
    forged = {
        "unknown signer": attestation(FORGER, 3),
        "wrong model": attestation(SIGNERS[1], 4, model=b"\x12" * 32),
        "tampered signature": bytes(good),
        "garbage": b"\x01not an attestation",
    }
    for data in forged.values():
        await forger.publish(data)
    marker = attestation(SIGNERS[2], 5)  # valid, published last: it arrives after them
    await forger.publish(marker)
    await c.wait_delivered([mid(marker)], TIMEOUT)

    forged_ids = {mid(d) for d in forged.values()}
    for peer in (a, b, c):
        assert forged_ids.isdisjoint(peer.delivered), f"{peer.name} delivered a forgery"
    async with asyncio.timeout(TIMEOUT):
        while sum((stats := await a.stats())["rejections"].values()) < len(forged):
            await asyncio.sleep(0.05)
    assert stats["rejections"]["UnknownSigner"] >= 1
    assert stats["rejections"]["WrongModel"] == 1
    assert stats["rejections"]["DecodeError"] == 1
    assert sum(stats["rejections"].values()) == len(forged)
    assert stats["accepted"] == 2 and stats["delivered"] == 2
    for peer in (b, c):  # never forwarded past the first honest node
        behind = await peer.stats()
        assert behind["rejections"] == {}
        assert behind["delivered"] == 2
        assert behind["dropped_rpcs"] == {}


@pytest.mark.slow
async def test_killed_middle_node_restarts_with_its_seed_and_catches_up(
        procs: list[PeerProcess]) -> None:
    # gossipsub forgets a message after one heartbeat, so only the sync stream can fill a gap
    short = {"config": {"gossip_window": 1, "gossip_history": 1}}
    a, b, c = await asyncio.gather(*(spawn(procs, n, **short) for n in "abc"))
    await line([a, b, c])
    first = attestation(SIGNERS[0], 1)
    await a.publish(first)
    await c.wait_delivered([mid(first)], TIMEOUT)

    old_id = b.peer_id
    assert await b.kill() == -signal.SIGKILL  # no goodbye: a and c see the connection die
    missed = [attestation(SIGNERS[1], 2), attestation(SIGNERS[2], 3)]
    for data in missed:
        await a.publish(data)
    await a.wait_delivered([mid(d) for d in missed], TIMEOUT)
    async with asyncio.timeout(TIMEOUT):
        while (await a.stats())["gossip_cached"]:
            await asyncio.sleep(0.1)
    assert not {mid(d) for d in missed} & set(c.delivered)  # no path to c while b was down

    again = await spawn(procs, "b", **short)  # same seed: same identity, empty memory
    assert again.peer_id == old_id
    assert again.addr != b.addr
    assert (await again.connect(c.addr))["synced"] == 1  # c has only the first
    await line([again, c])  # (already connected: waits for the mesh)
    assert (await again.connect(a.addr))["synced"] == 2  # the two it missed ...
    everything = [mid(first)] + [mid(d) for d in missed]
    await again.wait_delivered(everything, TIMEOUT)
    await c.wait_delivered(everything, TIMEOUT)  # ... re-published to c
    stats = await again.stats()
    assert stats["synced"] == 3 and stats["sync_rejected"] == 0
    assert set(stats["connected_peers"]) == {a.peer_id, c.peer_id}

    after = attestation(SIGNERS[0], 4)  # live gossip crosses the restarted node both ways
    await c.publish(after)
    await a.wait_delivered([mid(after)], TIMEOUT)
    assert (await c.stats())["dropped_rpcs"] == {}


@pytest.mark.slow
async def test_sigterm_stops_cleanly_and_ops_report_errors(procs: list[PeerProcess]) -> None:
    peer = await spawn(procs, "term")
    with pytest.raises(PeerProcessError, match="refusing to publish"):
        await peer.publish(attestation(FORGER, 1))
    with pytest.raises(PeerProcessError, match="unknown op"):
        await peer.request("fly")
    peer.proc.send_signal(signal.SIGTERM)
    assert await peer.proc.wait() == 0
    await peer.wait_for(lambda p: any(e["event"] == "stopped" for e in p.events), "stopped",
                        TIMEOUT)
    assert peer.events[-1] == {"event": "stopped", "reason": "SIGTERM"}


def test_peer_process_refuses_a_validator_without_signers() -> None:
    done = subprocess.run([sys.executable, "-m", "node.gossip.peer_process", "--seed", "x",
                           "--model", "0x" + MODEL.hex()], cwd=REPO, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("peer_process: a validating node "
                                                           "needs at least one signer")


def eth_account_recover(digest: bytes, signature: bytes) -> bytes:
    return bytes.fromhex(Account._recover_hash(digest, signature=signature)[2:])


@pytest.mark.parametrize("recover", [coincurve_recover, eth_account_recover])
def test_recovery_is_pluggable_and_both_agree(recover: object) -> None:
    att = decode(attestation(SIGNERS[0], 1))
    registry = StaticRegistry([s.address for s in SIGNERS])
    assert verify_attestation(att, registry, {MODEL}, recover=recover) == SIGNERS[0].address  # type: ignore[arg-type]
    sig = bytearray(att.signature)
    sig[10] ^= 1
    tampered = decode(encode(att)[:157] + bytes(sig) + encode(att)[222:])
    with pytest.raises(BadSignature):
        verify_attestation(tampered, registry, {MODEL}, recover=recover)  # type: ignore[arg-type]


def test_gossip_bench_cli_help_is_fast_to_build() -> None:
    code = ("import sys\n"
            "from node.cli.main import main\n"
            "try:\n"
            "    main(['node', 'gossip-bench', '--help'])\n"
            "except SystemExit as exc:\n"
            "    assert exc.code == 0, exc.code\n"
            "assert 'libp2p' not in sys.modules, 'libp2p imported to build the parser'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--nodes", "--messages", "--rate", "--quick", "--json"):
        assert option in done.stdout
