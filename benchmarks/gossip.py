"""Attestation gossip between node processes: propagation latency to all nodes, loss at a
claimed rate, and how many attestations one node validates per second.

Run from the repository root (or as ``orbital node gossip-bench``, same options)::

    python -m benchmarks.gossip                  # 10 nodes, 300 messages at 5, 10, 20, 50 msg/s,
                                                 # then 3,000 attestations in bundles at 500
                                                 # and 1,000 attestations/s
    python -m benchmarks.gossip --quick          # 5 nodes, 60 messages at 20 msg/s, 600
                                                 # attestations in bundles at 200/s (smoke test)
    python -m benchmarks.gossip --rate 50 --rate 80 --messages 1000
    python -m benchmarks.gossip --bundle-rate 500 --bundle-rate 2000 --attestations 5000
    python -m benchmarks.gossip --json           # results as JSON instead of the table
    python -m benchmarks.gossip --check          # exit 1 if a target is missed

**Propagation.** ``--nodes`` gossip nodes, each in its own OS process
(:mod:`node.gossip.peer_process`, one satellite = one process), listen on 127.0.0.1 and dial
a fixed topology: a ring plus the chords ``i <-> i + n/2`` (for 10 nodes the Möbius ladder:
degree 3, diameter 3). Real py-libp2p: TCP, Noise, yamux, gossipsub, the attestation validator
on every node. Once every node has its neighbours in its gossipsub mesh and a warm-up batch
reached everyone, node 0 publishes ``--messages`` distinct attestations per rate, handed to it
on an absolute schedule at the rate (the driver paces; the node's own token bucket is set
above it). For each message the latency is from the moment node 0 read the publish command to
the moment the *last* of the n nodes delivered it to its application (``time.monotonic_ns``,
one system-wide clock on Linux); p50 and p99 over the messages. The baseline is the same
messages' time until all of node 0's direct neighbours (one hop) delivered them. "Delivered"
counts (message, node) pairs after a drain period: anything under 100 % is a message some node
never got. Every node's count of RPCs py-libp2p dropped (full per-peer queue, the silent loss)
is reported too. The rate we claim is the highest at which every node delivered every message
*and* p99 stayed under :data:`SUSTAINED_P99_MS` -- a rate the nodes cannot keep up with also
loses nothing for a while, its backlog only shows as latency growing through the run. Its
target is the node's default publish rate (``GossipConfig.publish_rate``).

**Bundles** (issue #17 item 7), in the same run and the same network, after the
one-per-message rates: node 0 is handed ``--attestations`` attestations per
``--bundle-rate`` (attestations/s) with ``bundle: true``; its
:class:`~node.gossip.bundle.BundlePublisher` groups what arrives within its window (0.1 s, at
most 200) into one gossip message, and every node validates, stores and delivers each
attestation on its own. Latency, loss and CPU are measured per *attestation* exactly as above
(from node 0 reading the publish command to the last node delivering that attestation). The
target row is the highest bundle rate with every attestation at every node and p99 < 1 s:
**>= 500 attestations/s** with 10 nodes, against the named baseline, the highest such rate of
the one-attestation-per-message path measured just before.

**Validation.** :meth:`AttestationValidator.validate` (decode, domain, low-s, recovery, registry,
model) on distinct valid attestations, on one core, the node's signature recovery (libsecp256k1
through coincurve, :func:`node.attest.attestation.coincurve_recover`) against the same
validation with eth-account's recovery (``Account._recover_hash``: eth-keys, whose backend is
also libsecp256k1 when coincurve is installed, plus its object and checksum-address layers) as
the named baseline; both must accept every attestation. Best of several runs, taking turns.

Keys are software keys (the wallet's keystore signer, key in memory): this measures gossip and
validation, not the HSM. The machine's cores are shared by all node processes (and by this
driver), so CPU per message per node is reported as well: the rate at which loss begins is set
by total CPU, n nodes x that figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys import KeyAPI

from benchmarks.common import (
    Row,
    Target,
    as_json,
    benchmark_parser,
    environment,
    interleaved,
    measured,
    pin_to_one_core,
    render,
)
from contracts import eip712
from node.attest import StaticRegistry, attest, decode, encode
from node.attest.attestation import coincurve_recover
from node.gossip.bundle import BundleConfig
from node.gossip.config import GossipConfig
from node.gossip.peer_client import PeerProcess, PeerProcessError
from node.gossip.validator import AttestationValidator
from wallet.keys.keystore import KeystoreSigner, create_keystore

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
MODEL = hashlib.sha256(b"orbital gossip benchmark model").digest()
INPUT = hashlib.sha256(b"orbital gossip benchmark input").digest()
SIGNERS = 3
WARM_UP = 20
WARM_UP_RATE = 10.0
SUSTAINED_P99_MS = 1000.0
DELIVERY = Target("ours", 100.0)
VALIDATION_RATIO = Target("ratio", 1.0)
BUNDLE_TARGET = Target("ours", 500.0)  # attestations/s to all 10 nodes, p99 < 1 s, no loss


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    nodes: int = 10
    messages: int = 300                  # per rate
    rates: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0)
    validations: int = 2_000             # attestations per validation run
    repeats: int = 5
    drain: float = 10.0                  # seconds to wait after the last publish
    attestations: int = 3_000            # per bundle rate
    bundle_rates: tuple[float, ...] = (500.0, 1000.0)  # attestations/s, in bundles


QUICK = Sizes(nodes=5, messages=60, rates=(20.0,), validations=300, repeats=2, drain=10.0,
              attestations=600, bundle_rates=(200.0,))


@dataclass
class RateResult:
    """One rate's run over the whole network."""

    rate: float
    messages: int
    nodes: int
    delivered: int                       # (message, node) deliveries
    complete: int                        # messages every node delivered
    to_all_ms: list[float]               # per complete message
    to_neighbours_ms: list[float]        # per message every neighbour of the publisher got
    sent_rate: float                     # what the driver achieved
    dropped: dict[str, dict[str, int]]   # node -> reason/kind -> count, this rate only
    rejected: int                        # validator rejections (should be 0: all valid)
    cpu_ms_per_message: list[float] = field(default_factory=list)  # per node
    bundled: bool = False                # attestations handed in with bundle: true
    gossip_messages: int = 0             # messages node 0 published for them (bundled only)

    @property
    def expected(self) -> int:
        return self.messages * self.nodes

    @property
    def lossless(self) -> bool:
        return self.delivered == self.expected

    @property
    def sustained(self) -> bool:
        """Every message at every node, and no backlog (p99 under the bound)."""
        return self.lossless and percentile(self.to_all_ms, 0.99) < SUSTAINED_P99_MS

    @property
    def dropped_total(self) -> int:
        return sum(sum(d.values()) for d in self.dropped.values())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in [0, 1])."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def topology(n: int) -> list[tuple[int, int]]:
    """A ring plus chords ``i <-> i + n // 2``: degree 3 (2 when n < 4), diameter ~n/4."""
    edges = {tuple(sorted((i, (i + 1) % n))) for i in range(n)} if n > 2 else {(0, 1)}
    if n >= 4:
        edges |= {tuple(sorted((i, i + n // 2))) for i in range(n - n // 2)}
    return sorted((a, b) for a, b in edges if a != b)


# --------------------------------------------------------------------------- attestations

def make_signers(directory: Path, count: int = SIGNERS) -> list[KeystoreSigner]:
    """Software keys: wallet keystores (cheap KDF) opened into memory."""
    signers = []
    for i in range(count):
        path = directory / f"signer-{i}.json"
        create_keystore(path, "bench-password",
                        private_key=hashlib.sha256(f"gossip bench signer {i}".encode()).digest(),
                        kdf="pbkdf2", iterations=2)
        signers.append(KeystoreSigner(path, "bench-password"))
    return signers


def make_attestations(signers: Sequence[KeystoreSigner], count: int,
                      first_epoch: int) -> list[bytes]:
    """``count`` distinct encoded attestations (epochs ``first_epoch ...``), signers in turn."""
    out = []
    for epoch in range(first_epoch, first_epoch + count):
        task = hashlib.sha256(epoch.to_bytes(8, "big")).digest()
        output = hashlib.sha256(b"output" + task).digest()
        result = eip712.TaskResult(task, MODEL, INPUT, output, epoch)
        out.append(encode(attest(result, signers[epoch % len(signers)], CHAIN_ID, CONTRACT)))
    return out


def registry_file(directory: Path, signers: Sequence[KeystoreSigner]) -> Path:
    path = directory / "registry.json"
    path.write_text(json.dumps({"signers": ["0x" + s.address.hex() for s in signers],
                                "models": ["0x" + MODEL.hex()], "chain_id": CHAIN_ID,
                                "contract": "0x" + CONTRACT.hex()}))
    return path


# --------------------------------------------------------------------------- propagation

class Network:
    """``n`` peer processes in :func:`topology`, node 0 the publisher."""

    def __init__(self, peers: list[PeerProcess], edges: list[tuple[int, int]]) -> None:
        self.peers = peers
        self.edges = edges
        self.neighbours: dict[int, set[int]] = {i: set() for i in range(len(peers))}
        for a, b in edges:
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)

    @classmethod
    async def start(cls, n: int, registry: Path, publish_rate: float) -> Network:
        results = await asyncio.gather(*(
            PeerProcess.spawn(f"gossip bench node {i}", registry=registry, name=f"node{i}",
                              publish_rate=publish_rate, ready_timeout=120.0)
            for i in range(n)), return_exceptions=True)
        peers = [r for r in results if isinstance(r, PeerProcess)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(p.stop() for p in peers))
            raise failed[0]
        net = cls(peers, topology(n))
        try:
            await asyncio.gather(*(peers[a].connect(peers[b].addr) for a, b in net.edges))
            await net.wait_meshes(timeout=60.0)
        except BaseException:
            await net.stop()
            raise
        return net

    async def wait_meshes(self, timeout: float) -> None:
        """Until every node has all its neighbours in its gossipsub mesh (heartbeats GRAFT)."""
        async with asyncio.timeout(timeout):
            while True:
                stats = await self.stats()
                if all({self.peers[j].peer_id for j in self.neighbours[i]}
                       <= set(s["mesh_peers"]) for i, s in enumerate(stats)):
                    return
                await asyncio.sleep(0.2)

    async def stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.stats() for p in self.peers)))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.peers))

    async def send(self, batch: Sequence[bytes], rate: float, drain: float,
                   bundle: bool = False) -> tuple[list[dict[str, Any]], float]:
        """Hand ``batch`` to node 0 at ``rate`` on an absolute schedule, then wait (at most
        ``drain`` s after the last publish) until every node delivered every message.
        Returns node 0's publish replies and the rate actually sent."""
        loop = asyncio.get_running_loop()
        publisher = self.peers[0]
        futures = []
        start = loop.time() + 0.05
        for k, data in enumerate(batch):
            delay = start + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            futures.append(publisher.publish_nowait(data, bundle=bundle))
        sent = loop.time() - start
        async with asyncio.timeout(drain + len(batch) / rate + 30.0):
            replies = list(await asyncio.gather(*futures))
        ids = [r["id"] for r in replies]
        waits = await asyncio.gather(*(p.wait_delivered(ids, drain) for p in self.peers),
                                     return_exceptions=True)
        for peer, outcome in zip(self.peers, waits, strict=True):
            if isinstance(outcome, BaseException) and peer.returncode is not None:
                raise outcome  # a node died; a timeout only means loss, reported as such
        return replies, (len(batch) - 1) / sent if sent > 0 and len(batch) > 1 else rate


def _dropped_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    delta = Counter(after["dropped_rpcs"])
    delta.subtract(before["dropped_rpcs"])
    return {k: v for k, v in delta.items() if v}


async def run_rate(net: Network, batch: Sequence[bytes], rate: float,
                   drain: float, bundle: bool = False) -> RateResult:
    before = await net.stats()
    replies, sent_rate = await net.send(batch, rate, drain, bundle)
    after = await net.stats()
    peers = net.peers
    to_all, to_neighbours, complete, delivered = [], [], 0, 0
    for reply in replies:
        mid, t0 = reply["id"], reply["t_ns"]
        times = [p.delivered.get(mid) for p in peers]
        delivered += sum(t is not None for t in times)
        if all(t is not None for t in times):
            complete += 1
            to_all.append((max(t for t in times if t is not None) - t0) / 1e6)
        near = [times[j] for j in net.neighbours[0]]
        if all(t is not None for t in near):
            to_neighbours.append((max(t for t in near if t is not None) - t0) / 1e6)
    return RateResult(
        rate=rate, messages=len(batch), nodes=len(peers), delivered=delivered,
        complete=complete, to_all_ms=to_all, to_neighbours_ms=to_neighbours,
        sent_rate=sent_rate,
        dropped={p.name: d for p, b, a in zip(peers, before, after, strict=True)
                 if (d := _dropped_delta(b, a))},
        rejected=sum(sum(a["rejections"].values()) - sum(b["rejections"].values())
                     for b, a in zip(before, after, strict=True)),
        cpu_ms_per_message=[1000 * (a["cpu_s"] - b["cpu_s"]) / len(batch)
                            for b, a in zip(before, after, strict=True)],
        bundled=bundle,
        gossip_messages=sum(after[0]["bundle_sizes"].values())
        - sum(before[0]["bundle_sizes"].values()))


async def propagation(sizes: Sizes, signers: Sequence[KeystoreSigner], registry: Path,
                      say: Callable[[str], None]) -> list[RateResult]:
    say(f"propagation: starting {sizes.nodes} node processes ...")
    began = time.monotonic()
    net = await Network.start(sizes.nodes, registry, publish_rate=2 * max(sizes.rates))
    try:
        say(f"  {sizes.nodes} nodes up, {len(net.edges)} links, meshes formed in "
            f"{time.monotonic() - began:.1f} s; warming up ...")
        epoch = 1
        warm = make_attestations(signers, WARM_UP, epoch)
        epoch += WARM_UP
        result = await run_rate(net, warm, WARM_UP_RATE, 30.0)
        if not result.lossless:
            raise PeerProcessError(f"warm-up lost messages: {result.delivered} of "
                                   f"{result.expected} delivered")
        results = []
        for rate in sizes.rates:
            batch = make_attestations(signers, sizes.messages, epoch)
            epoch += sizes.messages
            say(f"  {sizes.messages} attestations at {rate:g} msg/s ...")
            result = await run_rate(net, batch, rate, sizes.drain)
            say(f"    delivered {result.delivered}/{result.expected}, "
                f"p50 {_p(result.to_all_ms, 0.5)} ms, p99 {_p(result.to_all_ms, 0.99)} ms, "
                f"{result.dropped_total} RPCs dropped")
            results.append(result)
        for rate in sizes.bundle_rates:
            batch = make_attestations(signers, sizes.attestations, epoch)
            epoch += sizes.attestations
            say(f"  {sizes.attestations} attestations in bundles at {rate:g}/s ...")
            result = await run_rate(net, batch, rate, sizes.drain, bundle=True)
            say(f"    delivered {result.delivered}/{result.expected} in "
                f"{result.gossip_messages} gossip messages, p50 {_p(result.to_all_ms, 0.5)} "
                f"ms, p99 {_p(result.to_all_ms, 0.99)} ms, {result.dropped_total} RPCs dropped")
            results.append(result)
        return results
    finally:
        await net.stop()


def _p(values: Sequence[float], fraction: float) -> str:
    return f"{percentile(values, fraction):.1f}" if values else "-"


def propagation_rows(results: Sequence[RateResult], quick: bool) -> list[Row]:
    single = [r for r in results if not r.bundled]
    rows = _rate_rows(single, quick)
    bundled = [r for r in results if r.bundled]
    if not bundled:
        return rows
    rows += _rate_rows(bundled, quick)
    baseline = max((r.rate for r in single if r.sustained), default=0.0)
    rows.append(Row(f"attestations/s to all {bundled[0].nodes} processes, zero loss, p99 < "
                    f"{SUSTAINED_P99_MS / 1000:g} s: bundles vs one per message", "att/s",
                    max((r.rate for r in bundled if r.sustained), default=0.0), baseline,
                    None if quick else BUNDLE_TARGET))
    return rows


def _rate_rows(results: Sequence[RateResult], quick: bool) -> list[Row]:
    rows = []
    for r in results:
        at = (f"@ {r.rate:g} att/s in bundles ({r.messages / max(r.gossip_messages, 1):.0f} "
              f"per message)" if r.bundled else f"@ {r.rate:g} msg/s")
        per = "att" if r.bundled else "msg"
        if r.to_all_ms:
            for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                rows.append(Row(
                    f"propagation to all {r.nodes} nodes, {name} {at} (vs 1 hop)", f"ms/{per}",
                    percentile(r.to_all_ms, fraction),
                    percentile(r.to_neighbours_ms, fraction) if r.to_neighbours_ms else None))
        rows.append(Row(f"delivered to all {r.nodes} nodes {at} ({r.dropped_total} RPCs "
                        "dropped)", "%", 100.0 * r.delivered / r.expected, None, DELIVERY))
        rows.append(Row(f"node CPU per {'attestation' if r.bundled else 'message'}, mean of "
                        f"{r.nodes} {at}", f"ms/{per}", statistics.fmean(r.cpu_ms_per_message)))
    sustained = [r.rate for r in results if r.sustained]
    if results and not results[0].bundled:
        rows.append(Row(f"highest rate with zero loss and p99 < {SUSTAINED_P99_MS / 1000:g} s "
                        f"({results[0].nodes} processes)", "msg/s", max(sustained, default=0.0),
                        None, None if quick else Target("ours", GossipConfig.publish_rate)))
    return rows


# --------------------------------------------------------------------------- validation

def eth_account_recover(digest: bytes, signature: bytes) -> bytes:
    """The baseline recovery: eth-account's ``_recover_hash`` (what ``recover_message`` uses)."""
    return bytes.fromhex(Account._recover_hash(digest, signature=signature)[2:])


def validation_rows(sizes: Sizes, signers: Sequence[KeystoreSigner],
                    say: Callable[[str], None]) -> list[Row]:
    say(f"validation: {sizes.validations} attestations, {sizes.repeats} runs ...")
    batch = make_attestations(signers, sizes.validations, 10_000_000)
    addresses = {s.address for s in signers}

    def validator(recover: Callable[[bytes, bytes], bytes]) -> AttestationValidator:
        return AttestationValidator(StaticRegistry(addresses), [MODEL], CHAIN_ID, CONTRACT,
                                    recover=recover)

    ours, theirs = validator(coincurve_recover), validator(eth_account_recover)
    forged = bytearray(batch[0])
    forged[160] ^= 1  # a byte of r
    for v in (ours, theirs):  # same verdicts, before timing
        if not all(v.validate(d) for d in batch) or v.validate(bytes(forged)):
            raise AssertionError("the two validators disagree with the expected verdicts")

    def run(v: AttestationValidator) -> Callable[[], None]:
        def go() -> None:
            check = v.validate
            for data in batch:
                check(data)
        return go

    digests = [(eip712.task_result_digest(*_decoded(d)), d[157:222]) for d in batch]

    def recover_only(recover: Callable[[bytes, bytes], bytes]) -> Callable[[], None]:
        def go() -> None:
            for digest, signature in digests:
                recover(digest, signature)
        return go

    a, b, c, d = interleaved([run(ours), run(theirs), recover_only(coincurve_recover),
                              recover_only(eth_account_recover)], sizes.repeats)
    n = len(batch)
    if ours.accepted != n * (sizes.repeats + 1) or theirs.accepted != n * (sizes.repeats + 1):
        raise AssertionError("a validator rejected a valid attestation while timed")
    return [
        measured("AttestationValidator.validate, 1 core: coincurve vs eth-account recovery",
                 "validations/s", n, a, b, VALIDATION_RATIO),
        measured("signature recovery alone: coincurve vs eth-account", "recoveries/s", n, c, d),
    ]


def _decoded(data: bytes) -> tuple[eip712.TaskResult, int, bytes]:
    att = decode(data)
    return att.result, att.chain_id, att.contract


# --------------------------------------------------------------------------- main

def rate_summary(r: RateResult) -> dict[str, Any]:
    """One rate's figures for the JSON output (every node's dropped RPCs included)."""
    out = asdict(r)
    del out["to_all_ms"], out["to_neighbours_ms"]
    out.update(expected=r.expected, lossless=r.lossless, sustained=r.sustained,
               p50_ms=percentile(r.to_all_ms, 0.5) if r.to_all_ms else None,
               p99_ms=percentile(r.to_all_ms, 0.99) if r.to_all_ms else None,
               max_ms=max(r.to_all_ms, default=None))
    return out


def parse(argv: list[str] | None) -> tuple[Any, Sizes]:
    parser = benchmark_parser("benchmarks.gossip", __doc__)
    parser.add_argument("--nodes", type=int, help="node processes (default 10; quick 5)")
    parser.add_argument("--messages", type=int, help="attestations per rate (default 300)")
    parser.add_argument("--rate", type=float, action="append",
                        help="publish rate, msg/s (repeatable; default 5, 10, 20, 50)")
    parser.add_argument("--attestations", type=int,
                        help="attestations per bundle rate (default 3000)")
    parser.add_argument("--bundle-rate", type=float, action="append",
                        help="attestations/s handed to node 0 for bundling (repeatable; "
                             "default 500, 1000)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    changes: dict[str, Any] = {}
    if args.nodes is not None:
        if args.nodes < 2:
            parser.error("--nodes must be at least 2")
        changes["nodes"] = args.nodes
    if args.messages is not None:
        if args.messages < 1:
            parser.error("--messages must be at least 1")
        changes["messages"] = args.messages
    if args.rate:
        if min(args.rate) <= 0:
            parser.error("--rate must be positive")
        changes["rates"] = tuple(sorted(args.rate))
    if args.attestations is not None:
        if args.attestations < 1:
            parser.error("--attestations must be at least 1")
        changes["attestations"] = args.attestations
    if args.bundle_rate:
        if min(args.bundle_rate) <= 0:
            parser.error("--bundle-rate must be positive")
        changes["bundle_rates"] = tuple(sorted(args.bundle_rate))
    return args, Sizes(**{**asdict(sizes), **changes})


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    load_before = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory(prefix="orbital-bench-gossip-") as tmp:
        directory = Path(tmp)
        signers = make_signers(directory)
        registry = registry_file(directory, signers)
        results = asyncio.run(propagation(sizes, signers, registry, say))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = pin_to_one_core()  # only now: node processes would inherit the affinity
    rows = propagation_rows(results, args.quick) + validation_rows(sizes, signers, say)
    single = [r for r in results if not r.bundled]
    bundled = [r for r in results if r.bundled]
    lossless = [r.rate for r in single if r.lossless]
    sustained = [r.rate for r in single if r.sustained]
    # CPU per message where every message reached every node (else work was skipped)
    cpu_ms = [statistics.fmean(r.cpu_ms_per_message) for r in single if r.lossless]
    dirty = {f"{r.rate:g}{' att/s' if r.bundled else ''}": r.dropped
             for r in results if r.dropped}
    notes = [
        f"{sizes.nodes} node processes on 127.0.0.1 (py-libp2p: TCP, Noise, yamux, gossipsub "
        f"D={GossipConfig.degree}, heartbeat {GossipConfig.heartbeat_interval} s), ring + "
        f"chords i<->i+n/2 ({len(topology(sizes.nodes))} links), sharing "
        f"{cores} CPUs with the driver; node 0 publishes",
        "latency: node 0 reads the publish command -> the last node delivers it to its "
        "application (CLOCK_MONOTONIC across processes); baseline: the same messages to all "
        "of node 0's direct neighbours (1 hop)",
        "publish commands sent to node 0: " + ", ".join(
            f"{r.rate:g} -> {r.sent_rate:.1f}/s{' (bundles)' if r.bundled else ''}"
            for r in results)
        + "; above what the peers absorb, node 0 holds them back (backpressure), which shows "
          "as latency, not loss",
        (f"highest rate with every message at every node: {max(lossless):g} msg/s; also with "
         f"p99 < {SUSTAINED_P99_MS:g} ms: {max(sustained, default=0):g} msg/s")
        if lossless else "no rate tried was loss-free",
        (f"CPU bound: {sizes.nodes} nodes x {statistics.fmean(cpu_ms):.1f} ms per message "
         f"(mean of the loss-free rates) on {cores} cores -> at most "
         f"~{1000 * cores / (sizes.nodes * statistics.fmean(cpu_ms)):.0f} msg/s on this "
         f"machine; load average {load_before} before, {os.getloadavg()[0]:.2f} after")
        if cpu_ms else f"load average {load_before} before",
        "bundles: " + ("; ".join(
            f"{r.rate:g} att/s: {r.messages} attestations in {r.gossip_messages} gossip "
            f"messages, {r.delivered}/{r.expected} deliveries, "
            f"{statistics.fmean(r.cpu_ms_per_message):.2f} ms CPU per attestation per node, "
            f"p99 {_p(r.to_all_ms, 0.99)} ms" for r in bundled) or "none run")
        + f" (node 0 groups what arrives within {BundleConfig.window:g} s, at most "
          f"{BundleConfig.max_entries} per message)",
        "dropped RPCs by node (py-libp2p's silent per-peer queue drops): "
        + (json.dumps(dirty) if dirty else "none at any rate"),
        "validation: software keys (wallet keystore signer), 1 core, best of "
        f"{sizes.repeats}; eth-keys backend: {type(KeyAPI().backend).__name__}",
        f"{'quick' if args.quick else 'full'} run; pinned to CPU {cpu} for validation "
        f"({cores} usable before)",
    ]
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), notes=notes,
                                 rates=[rate_summary(r) for r in results],
                                 **environment(cpu)), indent=2))
    else:
        print(render(rows, notes))
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
