"""The work behind ``orbital node`` (imported only when such a subcommand runs)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE = Path(__file__).resolve().parents[2]


def _benchmark(name: str) -> ModuleType:
    """``benchmarks.<name>`` from the source checkout this package lives in."""
    if not (SOURCE / "benchmarks" / f"{name}.py").is_file():
        raise FileNotFoundError(f"benchmarks/{name}.py is not beside this installation "
                                f"({SOURCE}); run from a source checkout")
    if str(SOURCE) not in sys.path:
        sys.path.insert(0, str(SOURCE))
    return importlib.import_module(f"benchmarks.{name}")


def _gossip_bench(args: argparse.Namespace) -> int:
    try:
        bench = _benchmark("gossip")
    except FileNotFoundError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return 2
    argv = [flag for flag, on in (("--quick", args.quick), ("--check", args.check),
                                  ("--json", args.json)) if on]
    if args.nodes is not None:
        argv += ["--nodes", str(args.nodes)]
    if args.messages is not None:
        argv += ["--messages", str(args.messages)]
    for rate in args.rate or ():
        argv += ["--rate", str(rate)]
    if args.attestations is not None:
        argv += ["--attestations", str(args.attestations)]
    for rate in args.bundle_rate or ():
        argv += ["--bundle-rate", str(rate)]
    return int(bench.main(argv))


def _lc_sync(args: argparse.Namespace) -> int:
    import asyncio

    from node.chain.beacon.api import BeaconApiClient
    from node.chain.beacon.config import network
    from node.chain.beacon.follow import catch_up
    from node.chain.beacon.store import DAY, LightClient, LightClientStateError
    from node.chain.errors import MalformedInputError
    from node.cli.verify import _emit, _guard, _hex
    from node.cli.verify_lc import clock_of, heads_lines, heads_report

    async def sync() -> tuple[LightClient, Any, bool]:
        config = network(args.network)
        clock = clock_of(args)
        async with BeaconApiClient(args.beacon_url, config, encoding=args.encoding) as api:
            fresh = not Path(args.store).exists()
            if fresh:
                if args.checkpoint is None:
                    raise MalformedInputError(f"no light-client state in {args.store} yet: "
                                              f"pass --checkpoint ROOT to bootstrap it")
                bootstrap = await api.bootstrap(args.checkpoint)
                client = LightClient.bootstrap(config, args.checkpoint, bootstrap, args.store,
                                               max_checkpoint_age=args.max_checkpoint_age * DAY,
                                               clock=clock)
            else:
                client = LightClient.resume(config, args.store, clock=clock)
                if args.checkpoint is not None and args.checkpoint != client.trusted_block_root:
                    client.close()
                    raise LightClientStateError(
                        f"{args.store} was bootstrapped from "
                        f"{_hex(client.trusted_block_root)}, not {_hex(args.checkpoint)}")
            with client:
                done = await catch_up(client, api)
        return client, done, fresh

    def work() -> int:
        client, done, fresh = asyncio.run(sync())
        lines = [("bootstrapped from " if fresh else "resumed, bootstrapped from ")
                 + f"{_hex(client.trusted_block_root)} on {client.config.name}",
                 f"{done.updates} update(s) in {done.requests} request(s), "
                 f"{done.bytes_received:,} bytes from {args.beacon_url}",
                 *heads_lines(client)]
        report = {"verified": True, "network": client.config.name,
                  "checkpoint": _hex(client.trusted_block_root), "bootstrapped": fresh,
                  "updates": done.updates, "requests": done.requests,
                  "bytes": done.bytes_received, **heads_report(client)}
        return _emit(args, report, lines)

    return _guard(args, work)


def _run_node(args: argparse.Namespace) -> int:
    import asyncio

    from node.config import ConfigError, load_node_config, node_options
    from node.logs import setup_logging
    from node.service import NodeOptions, ServiceError, run_node

    overrides: dict[str, Any] = {
        "upstreams": tuple(args.upstream), "trust": args.trust, "chain_id": args.chain_id,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "rpc_host": args.rpc[0] if args.rpc else None,
        "rpc_port": args.rpc[1] if args.rpc else None,
        "checkpoint": args.checkpoint, "quorum": args.quorum, "chain": args.chain,
        "history": args.history, "refresh": args.refresh, "beacon_url": args.beacon_url,
        "network": args.network, "operators": args.operators, "threshold": args.threshold,
        "heads_dir": Path(args.heads_dir) if args.heads_dir else None,
        "max_head_age": args.max_head_age}
    metrics = None
    log_format = args.log_format or "text"
    log_level, log_file = "info", None
    try:
        if args.config:
            config = load_node_config(args.config)
            options = node_options(config, overrides)
            if config.metrics is not None:
                metrics = (config.metrics.host, config.metrics.port)
            log_format = args.log_format or config.log.format
            log_level, log_file = config.log.level, config.log.file
        else:
            missing = [flag for flag, key in (("--upstream", "upstreams"), ("--trust", "trust"),
                                              ("--chain-id", "chain_id"),
                                              ("--data-dir", "data_dir"))
                       if not overrides[key] and overrides[key] != 0]
            if missing:
                raise ServiceError(f"give {', '.join(missing)} (or --config FILE)")
            options = NodeOptions(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"orbital: {args.config}: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return 2
    try:
        setup_logging(log_format, log_level, file=log_file)
    except OSError as exc:
        print(f"orbital: log file {log_file}: {exc.strerror}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"serving {url}", flush=True)

    try:
        asyncio.run(run_node(options, ready, metrics=metrics))
    except ServiceError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return 2
    return 0
