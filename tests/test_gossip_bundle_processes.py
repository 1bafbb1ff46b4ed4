"""Attestation bundles between node processes (node.gossip.peer_process; the harness of
test_gossip_processes): many attestations per gossip message reach every node, each stored
and delivered on its own, nothing lost; a bundle holding one forged attestation is rejected at
the first honest hop, never forwarded, and its good attestations still reach everyone."""

from __future__ import annotations

import asyncio

import pytest
from test_gossip_processes import FORGER, SIGNERS, TIMEOUT, attestation, line, mid, procs, spawn

from node.gossip.bundle import encode_bundle
from node.gossip.peer_client import PeerProcess

__all__ = ["procs"]  # the fixture, imported


@pytest.mark.slow
async def test_bundles_cross_a_line_of_processes_and_nothing_is_lost(
        procs: list[PeerProcess]) -> None:
    a, b, c = await asyncio.gather(*(spawn(procs, n, bundle_window=0.05) for n in "abc"))
    await line([a, b, c])
    batch = [attestation(SIGNERS[k % 3], 1000 + k) for k in range(400)]
    replies = await asyncio.gather(*(a.publish_nowait(d, bundle=True) for d in batch))
    assert [r["id"] for r in replies] == [mid(d) for d in batch]  # each attestation's own id
    lone = attestation(SIGNERS[0], 5000)  # the one-per-message path still works beside it
    await c.publish(lone)
    everything = [mid(d) for d in batch] + [mid(lone)]
    for peer in (a, b, c):
        await peer.wait_delivered(everything, TIMEOUT)

    sent = (await a.stats())["bundle_sizes"]
    assert sum(int(size) * n for size, n in sent.items()) == len(batch)
    assert sum(sent.values()) < len(batch) // 10  # far fewer gossip messages than attestations
    for peer in (b, c):
        stats = await peer.stats()
        assert stats["delivered"] == len(batch) + 1  # stored and delivered one by one
        assert stats["accepted"] >= len(batch) + 1 and stats["rejections"] == {}
        assert stats["bundles"]["accepted"] == sum(n for s, n in sent.items() if s != "1")
        assert stats["dropped_rpcs"] == {}


@pytest.mark.slow
async def test_a_bundle_with_a_forged_entry_is_stopped_and_its_good_entries_still_arrive(
        procs: list[PeerProcess]) -> None:
    forger, a, b = await asyncio.gather(spawn(procs, "forger", accept_all=True),
                                        spawn(procs, "a"), spawn(procs, "b"))
    await line([forger, a, b])
    good = [attestation(SIGNERS[0], 1), attestation(SIGNERS[1], 2)]
    forged = attestation(FORGER, 3)  # signed by a key the registry does not know
    await forger.publish(encode_bundle([good[0], forged, good[1]]))

    await b.wait_delivered([mid(d) for d in good], TIMEOUT)  # re-published by a
    await a.wait_delivered([mid(d) for d in good], TIMEOUT)
    for peer in (a, b):
        assert mid(forged) not in peer.delivered
    stats_a = await a.stats()
    assert stats_a["bundles"]["bad_entry"] == 1 and stats_a["bundles"]["salvaged"] == 2
    assert stats_a["rejections"] == {"UnknownSigner": 1}
    assert stats_a["delivered"] == 2
    assert stats_a["scores"][forger.peer_id] < 0  # P4: the forwarder of the bad bundle
    stats_b = await b.stats()
    assert stats_b["rejections"] == {} and stats_b["bundles"] == {"accepted": 1}
    assert stats_b["delivered"] == 2
