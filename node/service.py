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
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from node.chain.anchor import Anchor
from node.chain.forks import ChainConfig, load_chain_config
from node.chain.header_store import HeaderStore
from node.rpc.heads import CheckpointTrust, HeadTrust, QuorumTrust
from node.rpc.server import RpcServer
from node.rpc.upstream_api import DirectUpstream, Upstream
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
    extra: dict[str, str] = field(default_factory=dict)


def chain_config(options: NodeOptions) -> ChainConfig | None:
    """The fork schedule for the header rules: given, or known for the chain id."""
    name = options.chain or CHAIN_CONFIGS.get(options.chain_id)
    return None if name is None else load_chain_config(name)


def build_trust(options: NodeOptions, upstreams: list[tuple[str, Upstream]]) -> HeadTrust:
    """The head-trust strategy of ``options.trust``."""
    if options.trust == "checkpoint":
        if options.checkpoint is None:
            raise ServiceError("--trust checkpoint needs --checkpoint NUMBER:HASH")
        return CheckpointTrust(options.checkpoint)
    if options.trust == "quorum":
        k = options.quorum or len(upstreams)
        if not 1 <= k <= len(upstreams):
            raise ServiceError(f"--quorum {k}: need 1..{len(upstreams)} (one per --upstream)")
        return QuorumTrust(upstreams, k)
    raise ServiceError(f"--trust {options.trust} is not available yet in this build")


async def run_node(options: NodeOptions, ready: Callable[[str], None],
                   stop: asyncio.Event | None = None) -> None:
    """Run the node until ``stop`` is set or SIGTERM/SIGINT arrives; ``ready(url)`` is
    called once the server accepts connections."""
    if not options.upstreams:
        raise ServiceError("give at least one --upstream URL")
    options.data_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    members = [(url, DirectUpstream(url, f"upstream{i}")) for i, url in
               enumerate(options.upstreams)]
    trust = build_trust(options, [(f"upstream{i}", u) for i, (_, u) in enumerate(members)])
    upstream = members[0][1]
    with HeaderStore(options.data_dir / "headers.sqlite", chain_config(options)) as store:
        node = VerifiedNode(upstream, trust, store, options.chain_id, history=options.history)
        server = RpcServer(node.methods(), _head_of(store))
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, options.rpc_host, options.rpc_port)
            await site.start()
            port = runner.addresses[0][1]
            try:
                await node.refresh()
            except Exception as exc:  # keep serving; the status says why
                log.warning("first refresh failed: %s", exc)
            ready(f"http://{options.rpc_host}:{port}")
            async with asyncio.TaskGroup() as tasks:
                refresher = tasks.create_task(_refresh_loop(node, options.refresh))
                await stop.wait()
                refresher.cancel()
        finally:
            await runner.cleanup()
            for _, member in members:
                await member.close()


async def _refresh_loop(node: VerifiedNode, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await node.refresh()
        except Exception as exc:
            log.warning("refresh failed: %s", exc)


def _head_of(store: HeaderStore) -> Callable[[], tuple[int, bytes, int] | None]:
    def head() -> tuple[int, bytes, int] | None:
        header = store.head
        return None if header is None else (header.number, header.hash, header.timestamp)
    return head
