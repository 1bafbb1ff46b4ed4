"""Attestation gossip between py-libp2p (node/gossip) and js-libp2p (tools/gossip/peer.mjs).

Real parts on both sides: py :class:`GossipNode` hosts in this process, and a js-libp2p 3.x
node run by Node.js as a subprocess (TCP + Noise + yamux + gossipsub, signed messages, message
id ``sha256(data)``). The JS peer validates nothing, so it is also the forger: what it
publishes is checked by the py nodes' :class:`AttestationValidator` alone.

Line ``py2 - py1 - js``: an attestation published in Python reaches JS byte-identical (also from
py2, forwarded by py1); one built here and published by JS is delivered by py1 and, forwarded,
by py2; forgeries published by JS are rejected by py1 (counted by reason) and never delivered
nor forwarded to py2; nothing is delivered twice, also when a second path (js - py2) appears and
the same bytes are published from two origins. A JS peer that keeps no mesh (D = 0) relays only
through IHAVE/IWANT, which pins that the two implementations' control messages carry the same
message ids.

Node.js or the js-libp2p packages missing fails the tests (``scripts/setup.sh --test`` installs
them), it never skips them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from node.attest.codec import message_id
from node.gossip import AttestationValidator, GossipConfig, GossipNode

from gossip_attestations import attestation as make_attestation
from gossip_attestations import forgeries, make_validator
from gossip_attestations import until as poll_until
from js_gossip_peer import JsPeer, JsPeerError, JsPeerMissingError

pytestmark = pytest.mark.slow

TIMEOUT = 15.0
until = functools.partial(poll_until, timeout=TIMEOUT)  # this file's bound, not the default


def attestation(signer: int, epoch: int) -> bytes:
    """A valid attestation; epochs from 100 on, apart from those :func:`forgeries` uses."""
    return make_attestation(signer, epoch=100 + epoch)


def validator_of(node: GossipNode) -> AttestationValidator:
    v = node.validator.attestations  # inside the node's GossipValidator (node.gossip.bundle)
    assert isinstance(v, AttestationValidator)
    return v


async def until_async(predicate: Callable[[], object], what: str,
                      timeout: float = TIMEOUT) -> None:
    """Like :func:`until` for a predicate that is a coroutine function (asks a node)."""
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():  # type: ignore[misc]
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class Net:
    """The nodes a test starts; all stopped at teardown."""

    def __init__(self) -> None:
        self.py: list[GossipNode] = []
        self.js: list[JsPeer] = []

    async def start_py(self, name: str, config: GossipConfig | None = None) -> GossipNode:
        node = await GossipNode.start(key_seed=f"interop test {name}", validator=make_validator(),
                                      config=config)
        self.py.append(node)
        return node

    async def start_js(self, *args: str) -> JsPeer:
        try:
            peer = await JsPeer.start(*args)
        except JsPeerMissingError as exc:
            pytest.fail(str(exc), pytrace=False)
        self.js.append(peer)
        return peer


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    net = Net()
    try:
        yield net
    finally:
        await asyncio.gather(*(p.stop() for p in net.js), return_exceptions=True)
        await asyncio.gather(*(n.stop() for n in net.py))
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("gossip-trio")]
    assert not leaked, f"threads left running after stop(): {leaked}"
    for peer in net.js:
        assert peer.proc.returncode is not None
        assert not peer.errors, f"JS peer reported errors: {peer.errors}"


async def py_py_mesh(a: GossipNode, b: GossipNode) -> None:
    async def meshed() -> bool:
        return b.peer_id in await a.mesh_peers() and a.peer_id in await b.mesh_peers()
    await until_async(meshed, f"mesh {a.peer_id[-6:]} <-> {b.peer_id[-6:]}")


async def py_js_mesh(py: GossipNode, js: JsPeer) -> None:
    async def meshed() -> bool:
        return js.peer_id in await py.mesh_peers() and py.peer_id in (await js.peers())["mesh"]
    await until_async(meshed, "mesh py <-> js")


@pytest.mark.parametrize("dialer", ["py dials js", "js dials py"])
async def test_attestations_cross_between_py_and_js_libp2p(net: Net, dialer: str) -> None:
    py1 = await net.start_py("py1")
    py2 = await net.start_py("py2")
    js = await net.start_js()
    inbox1, inbox2 = py1.subscribe(), py2.subscribe()
    v1, v2 = validator_of(py1), validator_of(py2)

    # the line py2 - py1 - js
    await py2.connect(py1.listen_addr, sync=False)
    if dialer == "py dials js":
        await py1.connect(js.listen_addr, sync=False)  # the JS peer has no catch-up protocol
    else:
        assert await js.dial(py1.listen_addr) == py1.peer_id
    await py_py_mesh(py1, py2)
    await py_js_mesh(py1, js)
    assert py2.peer_id not in (await js.peers())["connected"]

    # (a) py -> js, byte-identical, signed by the py publisher (also when forwarded by py1)
    from_py1, from_py2 = attestation(0, epoch=1), attestation(1, epoch=2)
    await py1.publish(from_py1)
    await py2.publish(from_py2)
    await until(lambda: len(js.messages) >= 2, "both py attestations at the JS peer")
    assert sorted(js.received()) == sorted([from_py1, from_py2])
    by_data = {bytes.fromhex(m["hex"]): m for m in js.messages}
    assert by_data[from_py1]["from"] == py1.peer_id
    assert by_data[from_py2]["from"] == py2.peer_id
    assert by_data[from_py2]["propagationSource"] == py1.peer_id  # forwarded by py1
    assert all(m["msgId"] == message_id(bytes.fromhex(m["hex"])).hex() for m in js.messages)
    async with asyncio.timeout(TIMEOUT):
        assert {await inbox1.get(), await inbox1.get()} == {from_py1, from_py2}
        assert {await inbox2.get(), await inbox2.get()} == {from_py1, from_py2}

    # (b) js -> py: built here, published by JS, validated and delivered by py1 and (forwarded)
    # by py2, which has no connection to the JS peer
    accepted1, accepted2 = v1.accepted, v2.accepted
    from_js = attestation(2, epoch=3)
    published = await js.publish(from_js)
    assert published["recipients"] == [py1.peer_id]
    assert published["msgId"] == message_id(from_js).hex()
    async with asyncio.timeout(TIMEOUT):
        assert await inbox1.get() == from_js
        assert await inbox2.get() == from_js
    assert v1.accepted == accepted1 + 1 and v2.accepted == accepted2 + 1

    # (c) forgeries from JS: rejected by py1 by reason, never delivered, never forwarded
    forged = forgeries()
    for data in forged.values():
        await js.publish(data)
    await until(lambda: v1.rejected == len(forged), "py1 to reject every forgery")
    marker = attestation(0, epoch=4)  # valid and published after the forgeries
    await js.publish(marker)
    async with asyncio.timeout(TIMEOUT):
        assert await inbox1.get() == marker
        assert await inbox2.get() == marker
    rejections = dict(v1.rejections)
    assert rejections.pop("WrongModel") == 1
    assert rejections.pop("DecodeError") == 2  # truncated, garbage
    # the flipped r byte recovers to another address (UnknownSigner) or to none
    assert rejections in ({"BadSignature": 1, "UnknownSigner": 1},
                          {"MalformedSignature": 1, "UnknownSigner": 1},
                          {"UnknownSigner": 2})
    assert v2.rejected == 0
    assert inbox1.empty() and inbox2.empty()

    # (d) no duplicates, also with a second path (js - py2); the message id is sha256(data) on
    # both implementations, so JS refuses to publish bytes it received from py2
    await js.dial(py2.listen_addr)
    await py_js_mesh(py2, js)
    again = attestation(1, epoch=5)
    await js.publish(again)
    await until(lambda: py1.delivered_count == 5 and py2.delivered_count == 5,
                "the last JS attestation on both py nodes")
    twice = attestation(2, epoch=6)
    await py2.publish(twice)
    await until(lambda: twice in js.received(), "py2's attestation at the JS peer")
    with pytest.raises(JsPeerError, match="Duplicate"):
        await js.publish(twice)  # JS knows the id from py2's copy: sha256(data) there too
    last = attestation(0, epoch=7)
    await py1.publish(last)
    await until(lambda: last in js.received() and py2.delivered_count == 7,
                "py1's last attestation everywhere")
    # each once, although py2's and py1's copies reached JS by two paths
    assert sorted(js.received()) == sorted([from_py1, from_py2, twice, last])
    expected = {from_py1, from_py2, from_js, marker, again, twice, last}
    for node, inbox in ((py1, inbox1), (py2, inbox2)):
        got = [inbox.get_nowait() for _ in range(inbox.qsize())]
        assert len(got) == len(set(got)) and set(got) == expected - {from_py1, from_py2,
                                                                     from_js, marker}
        assert node.delivered_count == len(expected)
    assert v2.rejected == 0


async def test_ihave_iwant_between_py_and_js_carry_the_same_message_ids(net: Net) -> None:
    """py_a - js - py_c where nobody keeps a mesh (D = D_lo = D_hi = 0 on all three): every hop
    is IHAVE -> IWANT -> message, so each direction of the control messages has to carry
    message ids the other implementation recognises (raw sha256 bytes on both)."""
    no_mesh = GossipConfig(degree=0, degree_low=0, degree_high=0)
    py_a = await net.start_py("gossip-a", config=no_mesh)
    py_c = await net.start_py("gossip-c", config=no_mesh)
    js = await net.start_js("--mesh", "0,0,0")
    inbox_a, inbox_c = py_a.subscribe(), py_c.subscribe()
    await py_a.connect(js.listen_addr, sync=False)
    await py_c.connect(js.listen_addr, sync=False)
    await until_async(lambda: subscribed(js, {py_a.peer_id, py_c.peer_id}),
                      "both py nodes subscribed at the JS peer")

    async def no_mesh_anywhere() -> None:
        assert not (await js.peers())["mesh"]
        assert not await py_a.mesh_peers() and not await py_c.mesh_peers()

    # py -> js: py_a's IHAVE, JS's IWANT; js -> py: JS's IHAVE, py_c's IWANT
    data = attestation(0, epoch=11)
    await py_a.publish(data)
    async with asyncio.timeout(TIMEOUT):
        assert await inbox_c.get() == data
    assert js.received() == [data]
    assert js.messages[0]["propagationSource"] == py_a.peer_id

    # and back: py_c's IHAVE, JS's IWANT; JS's IHAVE, py_a's IWANT
    back = attestation(1, epoch=12)
    await py_c.publish(back)
    async with asyncio.timeout(TIMEOUT):
        assert await inbox_a.get() == data  # own publish
        assert await inbox_a.get() == back
        assert await inbox_c.get() == back  # own publish
    assert js.received() == [data, back]
    assert js.messages[1]["propagationSource"] == py_c.peer_id
    assert py_a.delivered_count == 2 and py_c.delivered_count == 2
    assert inbox_a.empty() and inbox_c.empty()
    await no_mesh_anywhere()


async def subscribed(js: JsPeer, peers: set[str]) -> bool:
    return set((await js.peers())["subscribers"]) == peers
