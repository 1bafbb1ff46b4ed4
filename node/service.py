"""Composition root of ``orbital node run``: wires the upstream, head trust, header store and
the verified JSON-RPC server, and runs them as one tree of tasks until SIGTERM/SIGINT.

The task tree (asyncio ``TaskGroup``): the HTTP server, and the link task
(:mod:`node.contact`): with a contact plan it works each pass (refresh, prefetch, outbox)
and sleeps between them; without one it probes every ``refresh`` seconds. A failed refresh
is logged and shown in ``orbital_status``; the node keeps serving what it proved. A stop
signal cancels the group; the server closes its sockets, the stores their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web

from node.chain.anchor import Anchor
from node.chain.forks import ChainConfig, load_chain_config
from node.chain.header_store import HeaderStore
from node.contact import (
    ContactSchedule,
    Hooks,
    PlannedUpstream,
    follow_plan,
    prefetch,
    probe,
    refresh_once,
    set_contact,
)
from node.metrics import NodeMetrics, serve_metrics
from node.outbox.store import Outbox
from node.rpc.evm import LocalEvm
from node.rpc.heads import CheckpointTrust, GroundTrust, HeadTrust, QuorumTrust
from node.rpc.server import RpcServer
from node.rpc.upstream import Endpoint, UpstreamPool
from node.rpc.upstream_api import Upstream
from node.rpc.verified_node import VerifiedNode

if TYPE_CHECKING:
    from node.config import NodeConfig

log = logging.getLogger(__name__)

CHAIN_CONFIGS = {1: "mainnet", 11155111: "sepolia", 560048: "hoodi", 31337: "anvil"}
"""Fork schedules picked by chain id when none is given."""


class ServiceError(Exception):
    """The node cannot start with these options (one line: what to change)."""


@dataclass(frozen=True)
class NodeOptions:
    upstreams: tuple[str, ...]
    trust: str  # checkpoint | quorum | ground | beacon
    chain_id: int
    data_dir: Path
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    checkpoint: Anchor | None = None
    quorum: int | None = None  # K of the upstreams (default: all)
    chain: str | None = None  # fork schedule name or file
    history: int = 256
    refresh: float = 12.0
    beacon_url: str | None = None
    network: str = "mainnet"
    operators: tuple[bytes, ...] = ()
    threshold: int = 0
    heads_dir: Path | None = None
    max_head_age: float = 3600.0
    config: NodeConfig | None = None  # the file's other sections ([link], [watch], ...)


def chain_config(options: NodeOptions) -> ChainConfig | None:
    """The fork schedule for the header rules: given, or known for the chain id."""
    name = options.chain or CHAIN_CONFIGS.get(options.chain_id)
    return None if name is None else load_chain_config(name)


def build_trust(options: NodeOptions, upstreams: list[tuple[str, Upstream]],
                resources: contextlib.AsyncExitStack) -> HeadTrust:
    """The head-trust strategy of ``options.trust`` (what it opens is closed with
    ``resources``)."""
    if options.trust == "checkpoint":
        if options.checkpoint is None:
            raise ServiceError("--trust checkpoint needs --checkpoint NUMBER:HASH")
        return CheckpointTrust(options.checkpoint)
    if options.trust == "quorum":
        k = options.quorum or len(upstreams)
        if not 1 <= k <= len(upstreams):
            raise ServiceError(f"--quorum {k}: need 1..{len(upstreams)} (one per --upstream)")
        return QuorumTrust(upstreams, k)
    if options.trust == "beacon":
        return _beacon_trust(options, resources)
    if options.trust == "ground":
        if not options.operators or not 1 <= options.threshold <= len(options.operators):
            raise ServiceError("--trust ground needs --operators ADDR,ADDR,... and "
                               "--threshold M (1 <= M <= operators)")
        return GroundTrust(options.heads_dir or options.data_dir / "heads", options.operators,
                           options.threshold, options.chain_id, options.max_head_age)
    raise ServiceError(f"--trust {options.trust} is not available yet in this build")


def _beacon_trust(options: NodeOptions, resources: contextlib.AsyncExitStack) -> HeadTrust:
    from node.chain.beacon.api import BeaconApiClient
    from node.chain.beacon.config import network
    from node.chain.beacon.store import LightClient
    from node.rpc.heads import BeaconTrust

    if options.beacon_url is None:
        raise ServiceError("--trust beacon needs --beacon-url URL (a Beacon API server)")
    store = options.data_dir / "lc.sqlite"
    if not store.exists():
        raise ServiceError(f"no light client in {store}: bootstrap it first with "
                           f"orbital node lc-sync --store {store} --checkpoint ROOT")
    config = network(options.network)
    client = resources.enter_context(LightClient.resume(config, store))
    api = BeaconApiClient(options.beacon_url, config)
    resources.push_async_callback(api.close)
    return BeaconTrust(client, api)


async def run_node(options: NodeOptions, ready: Callable[[str], None],
                   stop: asyncio.Event | None = None, *,
                   metrics: tuple[str, int] | None = None) -> None:
    """Run the node until ``stop`` is set or SIGTERM/SIGINT arrives; ``ready(url)`` is
    called once the server accepts connections. With ``metrics`` (host, port), Prometheus
    metrics are served there (``/metrics``)."""
    if not options.upstreams:
        raise ServiceError("give at least one --upstream URL")
    options.data_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as resources:
        resources.enter_context(_lock_data_dir(options.data_dir))  # released on exit
        node, pools, schedule = await _open_node(options, resources)
        gauges = NodeMetrics()
        recorder = Recorder(node, gauges, pools)
        node.observe = recorder.observe  # the mission's verified reads count too
        port = await _serve_rpc(node, recorder, options, resources)
        if metrics is not None:
            metrics_runner, metrics_url = await serve_metrics(gauges, *metrics)
            resources.push_async_callback(metrics_runner.cleanup)
            log.info("metrics at %s", metrics_url)
        config = options.config
        watch = config.watch if config is not None else None
        mission = None
        if config is not None and config.tasks is not None:  # [tasks], [gossip], [wallet]
            from node.mission import open_mission

            mission = await open_mission(config, node, options.data_dir, resources)

        async def prefetch_watch() -> None:
            await prefetch(node, watch, () if mission is None else mission.accounts())
            if mission is not None:
                await mission.after_refresh()

        hooks = Hooks(recorder.after, recorder.contact, prefetch_watch)
        node.extra_status["counters"] = recorder.counters
        node.extra_status["link"] = lambda: {
            "inContact": recorder.in_contact, "contacts": recorder.contacts,
            "plan": None if schedule is None else schedule.status()}
        async with asyncio.TaskGroup() as tasks:
            if schedule is None:  # try once before serving; a failure is logged and shown
                up = await refresh_once(node, hooks, "first refresh failed")
                set_contact(node, hooks, up)
                link = tasks.create_task(probe(node, options.refresh, hooks, up))
            else:
                link = tasks.create_task(follow_plan(schedule, node, options.refresh, hooks))
            work = None if mission is None else tasks.create_task(mission.run())
            ready(f"http://{options.rpc_host}:{port}")
            await stop.wait()
            link.cancel()
            if work is not None:
                work.cancel()


async def _open_node(options: NodeOptions, resources: contextlib.AsyncExitStack
                     ) -> tuple[VerifiedNode, list[UpstreamPool], ContactSchedule | None]:
    """The verified node of ``options`` (its upstream gated by the contact plan when there
    is one), every upstream pool it uses (for /metrics) and the plan's schedule."""
    endpoints = [Endpoint.parse(url) for url in options.upstreams]
    upstream = await resources.enter_async_context(
        UpstreamPool(endpoints, chain_id=options.chain_id))
    pools = [upstream]
    members: list[tuple[str, Upstream]] = []
    for endpoint in endpoints:  # independent sources for a quorum: one pool each
        single = await resources.enter_async_context(
            UpstreamPool([endpoint], chain_id=options.chain_id))
        members.append((endpoint.name, single))
        pools.append(single)
    trust = build_trust(options, members, resources)
    for name, found in (await upstream.probe()).items():
        log.info("upstream %s: chain %s, serves %s%s", name, found.chain_id,
                 ", ".join(m for m, ok in found.capabilities.items() if ok) or "nothing probed",
                 f" ({found.error})" if found.error else "")
    store = resources.enter_context(
        HeaderStore(options.data_dir / "headers.sqlite", chain_config(options)))
    rules = store.config
    evm = None if rules is None else await resources.enter_async_context(LocalEvm(rules))
    config = options.config
    outbox = resources.enter_context(Outbox(
        config.outbox.path if config is not None else options.data_dir / "outbox.sqlite"))
    schedule = (ContactSchedule.from_config(config.link)
                if config is not None and config.link is not None else None)
    node = VerifiedNode(upstream if schedule is None else PlannedUpstream(upstream, schedule),
                        trust, store, options.chain_id, history=options.history, evm=evm,
                        outbox=outbox)
    if config is not None:
        node.max_age = config.outbox.max_age
    return node, pools, schedule


async def _serve_rpc(node: VerifiedNode, recorder: Recorder, options: NodeOptions,
                     resources: contextlib.AsyncExitStack) -> int:
    """Serve the node's JSON-RPC at ``options.rpc_host:rpc_port``; the port bound."""
    server = RpcServer(node.methods(), _head_of(node.store), observe=recorder.observe)
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    resources.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, options.rpc_host, options.rpc_port)
    await site.start()
    return int(runner.addresses[0][1])


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive lock on ``DATA_DIR/node.lock`` (``flock``): one node per data directory,
    so two processes never sync, flush the outbox or count linked headers over each other.
    Closing the file releases it; so does the kernel when the process ends, kill -9
    included."""
    handle = (data_dir / "node.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ServiceError(f"{data_dir} is in use by node {holder}: one node per data "
                           f"directory") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


REFUSALS = {-32602: "invalid_params", -32002: "unavailable", -32099: "verification_failed",
            -32000: "refused", -32603: "internal", -32601: "method_not_found"}
"""Metric label of each JSON-RPC error code the node answers with (a revert, code 3, is an
answer: it counts as a verification)."""


@dataclass
class Recorder:
    """Feeds /metrics: answers by outcome, the head, new lies, link bytes, outbox depth,
    contacts."""

    node: VerifiedNode
    gauges: NodeMetrics
    pools: list[UpstreamPool]
    _lies: dict[tuple[str, str], int] = field(default_factory=dict)
    _bytes: dict[tuple[int, str], int] = field(default_factory=dict)
    verifications: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    link_bytes: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})

    def observe(self, method: str, kind: str, code: int | None) -> None:
        if code is None or code == 3:
            if kind == "verified":
                self.gauges.record_verification(method)
                self.verifications[method] += 1
        else:
            self._refuse(REFUSALS.get(code, "error"))

    def _refuse(self, kind: str) -> None:
        self.gauges.record_refusal(kind)
        self.refusals[kind] += 1

    def counters(self) -> dict[str, Any]:
        """``orbital_status``'s ``counters``: what /metrics counts since the start."""
        return {"verifications": dict(self.verifications), "refusals": dict(self.refusals),
                "lies": {f"{name}:{kind}": n for (name, kind), n in self._lies.items()},
                "linkBytes": dict(self.link_bytes), "contacts": self.contacts}

    in_contact: bool | None = None  # None: not known yet
    contacts: int = 0

    def contact(self, up: bool) -> None:
        self.gauges.record_contact(up)
        self.contacts += up
        self.in_contact = up

    def after(self, ok: bool) -> None:
        """After a refresh attempt (``ok``: it succeeded)."""
        if not ok:
            self._refuse("refresh")
        head = self.node.store.head
        if head is not None:
            self.gauges.record_head(head.number, head.timestamp)
        if self.node.outbox is not None:
            self.gauges.record_outbox(self.node.outbox.counts())
        up = down = 0
        for i, pool in enumerate(self.pools):
            for upstream in pool.state():
                for kind, count in upstream["lies"].items():
                    key = (upstream["name"], kind)
                    for _ in range(count - self._lies.get(key, 0)):
                        self.gauges.record_lie(*key)
                    self._lies[key] = count
                up += self._delta((i, upstream["name"] + ">"), upstream["bytes_sent"])
                down += self._delta((i, upstream["name"] + "<"), upstream["bytes_received"])
        self.gauges.record_bytes(up, down)
        self.link_bytes["up"] += up
        self.link_bytes["down"] += down

    def _delta(self, key: tuple[int, str], total: int) -> int:
        last, self._bytes[key] = self._bytes.get(key, 0), total
        return total - last


def _head_of(store: HeaderStore) -> Callable[[], tuple[int, bytes, int] | None]:
    def head() -> tuple[int, bytes, int] | None:
        header = store.head
        return None if header is None else (header.number, header.hash, header.timestamp)
    return head
