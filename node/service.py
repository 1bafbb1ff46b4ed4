"""Composition root of ``orbital node run``: wires the upstream, head trust, header store and
the verified JSON-RPC server, and runs them as one tree of tasks until SIGTERM/SIGINT.

The task tree (asyncio ``TaskGroup``): the HTTP server, and a refresh loop that asks the
trust strategy for anchors and links them every ``refresh`` seconds (a failed refresh is
logged and shown in ``orbital_status``; the node keeps serving what it proved). A stop
signal cancels the group; the server closes its sockets, the store its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiohttp import web

from node.chain.anchor import Anchor
from node.chain.forks import ChainConfig, load_chain_config
from node.chain.header_store import HeaderStore
from node.metrics import NodeMetrics, serve_metrics
from node.outbox.store import Outbox
from node.rpc.evm import LocalEvm
from node.rpc.heads import CheckpointTrust, GroundTrust, HeadTrust, QuorumTrust
from node.rpc.server import RpcServer
from node.rpc.upstream import Endpoint, UpstreamPool
from node.rpc.upstream_api import Upstream
from node.rpc.verified_node import VerifiedNode

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
    extra: dict[str, str] = field(default_factory=dict)


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
        endpoints = [Endpoint.parse(url) for url in options.upstreams]
        upstream = await resources.enter_async_context(
            UpstreamPool(endpoints, chain_id=options.chain_id))
        members: list[tuple[str, Upstream]] = []
        for endpoint in endpoints:  # independent sources for a quorum: one pool each
            single = await resources.enter_async_context(
                UpstreamPool([endpoint], chain_id=options.chain_id))
            members.append((endpoint.name, single))
        trust = build_trust(options, members, resources)
        for name, probe in (await upstream.probe()).items():
            log.info("upstream %s: chain %s, serves %s%s", name, probe.chain_id,
                     ", ".join(m for m, ok in probe.capabilities.items() if ok) or "nothing probed",
                     f" ({probe.error})" if probe.error else "")
        store = resources.enter_context(
            HeaderStore(options.data_dir / "headers.sqlite", chain_config(options)))
        config = store.config
        evm = None if config is None else await resources.enter_async_context(LocalEvm(config))
        outbox = resources.enter_context(Outbox(options.data_dir / "outbox.sqlite"))
        node = VerifiedNode(upstream, trust, store, options.chain_id, history=options.history,
                            evm=evm, outbox=outbox)
        server = RpcServer(node.methods(), _head_of(store))
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        resources.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, options.rpc_host, options.rpc_port)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await node.refresh()
        except Exception as exc:  # keep serving; the status says why
            log.warning("first refresh failed: %s", exc)
        gauges = NodeMetrics()
        if metrics is not None:
            metrics_runner, metrics_url = await serve_metrics(gauges, *metrics)
            resources.push_async_callback(metrics_runner.cleanup)
            log.info("metrics at %s", metrics_url)
        seen: dict[tuple[str, str], int] = {}
        _record(node, gauges, seen)
        ready(f"http://{options.rpc_host}:{port}")
        async with asyncio.TaskGroup() as tasks:
            refresher = tasks.create_task(_refresh_loop(node, options.refresh, gauges, seen))
            await stop.wait()
            refresher.cancel()


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


async def _refresh_loop(node: VerifiedNode, every: float, gauges: NodeMetrics,
                        seen: dict[tuple[str, str], int]) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await node.refresh()
        except Exception as exc:
            log.warning("refresh failed: %s", exc)
            gauges.record_refusal("refresh")
        _record(node, gauges, seen)


def _record(node: VerifiedNode, gauges: NodeMetrics,
            seen: dict[tuple[str, str], int]) -> None:
    """The head and the upstreams' new lies (``seen``: those already counted), for
    /metrics."""
    head = node.store.head
    if head is not None:
        gauges.record_head(head.number, head.timestamp)
    state = getattr(node.upstream, "state", None)
    for upstream in state() if callable(state) else ():
        for kind, count in upstream.get("lies", {}).items():
            key = (upstream["name"], kind)
            for _ in range(count - seen.get(key, 0)):
                gauges.record_lie(*key)
            seen[key] = count



def _head_of(store: HeaderStore) -> Callable[[], tuple[int, bytes, int] | None]:
    def head() -> tuple[int, bytes, int] | None:
        header = store.head
        return None if header is None else (header.number, header.hash, header.timestamp)
    return head
