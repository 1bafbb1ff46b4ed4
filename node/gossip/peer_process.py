"""One gossip node in its own OS process, driven by JSON lines (one satellite = one process).

Run ``python -m node.gossip.peer_process --seed S [--port P] (--registry FILE | --signer ADDR
... --model HEX ...)``. The process starts a :class:`~node.gossip.host.GossipNode` whose topic
validator is an :class:`~node.gossip.validator.AttestationValidator` over a
:class:`~node.attest.attestation.StaticRegistry` of the given signer addresses and model hashes
(``--registry`` is a JSON file ``{"signers": [addr, ...], "models": [hash, ...], "chain_id":
n, "contract": addr}``, every key optional; flags add to it and override ``chain_id`` /
``contract``). ``--store FILE`` keeps the node's delivered messages in SQLite (default: in
memory), so a restart with the same seed and file resumes where it stopped.

Control, one JSON object per line on **stdin**; every op may carry a ``"req"`` value, echoed in
its reply so a client can match replies to requests (ops run concurrently):

* ``{"op": "connect", "addr": MULTIADDR, "sync": true}`` -- dial (and catch up, see
  :meth:`GossipNode.connect`); reply ``{"event": "connected", "addr", "synced"}``;
* ``{"op": "publish", "hex": DATA}`` -- publish (paced by the node's token bucket); reply
  ``{"event": "published", "id", "t_ns", "done_ns"}``: ``t_ns`` when the op was read,
  ``done_ns`` when py-libp2p took the message; with ``"bundle": true`` the attestation goes
  out in the node's next bundle (:class:`~node.gossip.bundle.BundlePublisher`, grouped for
  ``--bundle-window`` seconds, at most ``--bundle-max``) and ``done_ns`` is when that bundle
  was taken;
* ``{"op": "stats"}`` -- reply ``{"event": "stats", ...}`` (see :meth:`_Peer.stats`);
* ``{"op": "quit"}`` -- stop cleanly. End of stdin (the parent went away), SIGTERM and SIGINT
  do the same.

Reports, one JSON object per line on **stdout** (nothing else is written there: anything a
library prints to file descriptor 1 goes to stderr instead):

* ``{"event": "ready", "peer_id", "addr", "pid"}`` once the host listens;
* ``{"event": "delivered", "id": HEX, "t_ns": N}`` for each message the node delivers (valid,
  first copy; own publishes included), ``id`` the gossip message id ``sha256(data)`` and
  ``t_ns`` :func:`time.monotonic_ns` when the application got it -- ``CLOCK_MONOTONIC`` is
  system-wide on Linux, so times from different processes on one machine compare;
* ``{"event": "error", "op", "error"}`` for an op that failed (bad JSON, unknown op, a dial
  that failed ...) -- the process keeps running;
* ``{"event": "stopped", "reason"}`` last, after the host closed.

:class:`node.gossip.peer_client.PeerProcess` spawns and drives such a process from asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from node.attest.attestation import StaticRegistry
from node.attest.codec import message_id
from node.gossip.bundle import MAX_ENTRIES, BundleConfig, BundlePublisher
from node.gossip.config import GossipConfig, GossipError
from node.gossip.host import GossipNode
from node.gossip.validator import AttestationValidator

log = logging.getLogger("node.gossip.peer_process")


class UsageError(Exception):
    """Bad command-line input; the message says what to fix."""


def _hex_bytes(text: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not hex") from None
    if len(raw) != size:
        raise UsageError(f"{what} {text!r} is {len(raw)} bytes, expected {size}")
    return raw


@dataclasses.dataclass(frozen=True)
class Registry:
    """Who this node accepts attestations from, and for which models and domain."""

    signers: frozenset[bytes]
    models: frozenset[bytes]
    chain_id: int | None = None
    contract: bytes | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any], where: str) -> Registry:
        if not isinstance(document, Mapping):
            raise UsageError(f"{where}: expected a JSON object")
        unknown = set(document) - {"signers", "models", "chain_id", "contract"}
        if unknown:
            raise UsageError(f"{where}: unknown keys {sorted(unknown)}")
        signers = document.get("signers", [])
        models = document.get("models", [])
        if not isinstance(signers, list) or not isinstance(models, list):
            raise UsageError(f"{where}: signers and models must be lists of hex strings")
        chain_id = document.get("chain_id")
        if chain_id is not None and (isinstance(chain_id, bool) or not isinstance(chain_id, int)):
            raise UsageError(f"{where}: chain_id must be an integer")
        contract = document.get("contract")
        return cls(frozenset(_hex_bytes(str(s), 20, "signer") for s in signers),
                   frozenset(_hex_bytes(str(m), 32, "model") for m in models), chain_id,
                   None if contract is None else _hex_bytes(str(contract), 20, "contract"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signers": ["0x" + s.hex() for s in sorted(self.signers)],
                               "models": ["0x" + m.hex() for m in sorted(self.models)]}
        if self.chain_id is not None:
            out["chain_id"] = self.chain_id
        if self.contract is not None:
            out["contract"] = "0x" + self.contract.hex()
        return out


def _config_value(field: dataclasses.Field[Any], text: str) -> Any:
    kind = type(field.default)
    if kind not in (bool, int, float, str):  # e.g. scoring: a nested dataclass
        raise UsageError(f"gossip config {field.name} cannot be set with --gossip-config")
    if kind is bool:
        return text.lower() in ("1", "true", "yes")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"gossip config {field.name}={text!r}: expected a "
                         f"{kind.__name__}") from None


def gossip_config(args: argparse.Namespace) -> GossipConfig:
    """The :class:`GossipConfig` the flags ask for (defaults otherwise)."""
    fields = {f.name: f for f in dataclasses.fields(GossipConfig)}
    changes: dict[str, Any] = {}
    for item in args.gossip_config:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise UsageError(f"--gossip-config {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(fields)}")
        changes[name] = _config_value(fields[name], value)
    if args.publish_rate is not None:
        changes["publish_rate"] = args.publish_rate
    if args.publish_burst is not None:
        changes["publish_burst"] = args.publish_burst
    if args.store is not None:
        changes["store_path"] = args.store
    return dataclasses.replace(GossipConfig(), **changes)


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The registry file (if any) plus the ``--signer`` / ``--model`` / domain flags."""
    base = Registry(frozenset(), frozenset())
    if args.registry:
        path = Path(args.registry)
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"registry file {path}: {exc}") from None
        base = Registry.from_json(document, str(path))
    contract = base.contract if args.contract is None else _hex_bytes(args.contract, 20,
                                                                      "contract")
    return Registry(
        base.signers | {_hex_bytes(s, 20, "signer") for s in args.signer},
        base.models | {_hex_bytes(m, 32, "model") for m in args.model},
        base.chain_id if args.chain_id is None else args.chain_id, contract)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m node.gossip.peer_process",
        description="One gossip node in its own process, controlled by JSON lines on stdin, "
                    "reporting JSON lines on stdout.")
    parser.add_argument("--seed", required=True, help="peer identity seed (same seed, same id)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--registry", metavar="FILE",
                        help='JSON {"signers": [...], "models": [...], "chain_id", "contract"}')
    parser.add_argument("--signer", action="append", default=[], metavar="ADDR",
                        help="an active signer address (repeatable)")
    parser.add_argument("--model", action="append", default=[], metavar="HEX",
                        help="an accepted model hash (repeatable)")
    parser.add_argument("--chain-id", type=int, help="accept only this chain id")
    parser.add_argument("--contract", help="accept only this TaskAttestations address")
    parser.add_argument("--publish-rate", type=float, help="messages/s publish admits")
    parser.add_argument("--publish-burst", type=int, help="publish token bucket size")
    parser.add_argument("--store", metavar="FILE",
                        help="SQLite file of delivered messages (default: in memory); a "
                             "restart with the same file resumes from it")
    parser.add_argument("--gossip-config", action="append", default=[], metavar="KEY=VALUE",
                        help="any other GossipConfig field (repeatable)")
    parser.add_argument("--bundle-window", type=float, default=BundleConfig.window,
                        help="seconds an attestation published with bundle=true waits for "
                             "others (default %(default)s)")
    parser.add_argument("--bundle-max", type=int, default=MAX_ENTRIES,
                        help="most attestations per bundle (default %(default)s)")
    parser.add_argument("--accept-all", action="store_true",
                        help="install no validator: deliver and forward anything (tests only: "
                             "plays a forger)")
    parser.add_argument("--log-level", default="WARNING")
    return parser


class _Peer:
    """The running process: a node, its validator, the protocol output."""

    def __init__(self, node: GossipNode, validator: AttestationValidator | None,
                 publisher: BundlePublisher, out: IO[str]) -> None:
        self.node = node
        self.validator = validator
        self.publisher = publisher
        self.out = out
        self.stop = asyncio.Event()
        self.reason = "quit"
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader is gone
            self.finish("stdout closed")

    def finish(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()

    async def stats(self) -> dict[str, Any]:
        """Counters: delivered, duplicates, synced / sync_rejected / sync_undecided /
        sync_refused / sync_serves_refused,
        handoff_overflows and store_failures (delivery, see node.gossip.delivery), accepted,
        rejections and undecided by reason (the validator's), dropped_rpcs by ``reason/kind``
        (py-libp2p's silent drops),
        gossip_cached (messages gossipsub can still replay by IHAVE/IWANT), mesh and connected
        peers, bundle verdicts and the sizes of the bundles published, peer scores and the
        control messages ignored from graylisted peers, and the process's CPU seconds so far
        (all threads)."""
        node, v = self.node, self.validator
        cache = getattr(node.gossipsub, "mcache", None)
        return {
            "peer_id": node.peer_id,
            "delivered": node.delivered_count,
            "duplicates": node.duplicates_dropped,
            "synced": node.synced_count,
            "sync_rejected": node.sync_rejected,
            "sync_undecided": node.sync_undecided,
            "sync_refused": node.sync_refused,
            "sync_serves_refused": node.sync_serves_refused,
            "handoff_overflows": node.handoff_overflows,
            "store_failures": node.store_failures,
            "accepted": None if v is None else v.accepted,
            "rejections": {} if v is None else dict(v.rejections),
            "undecided": {} if v is None else dict(v.undecided),
            "dropped_rpcs": {f"{reason}/{kind}": n
                             for (reason, kind), n in node.dropped_rpcs.items()},
            "gossip_cached": len(cache.msgs) if cache is not None else None,
            "mesh_peers": sorted(await node.mesh_peers()),
            "connected_peers": sorted(await node.connected_peers()),
            "bundles": {} if node.validator is None else node.validator.counts(),
            "bundle_sizes": {str(k): n for k, n in sorted(self.publisher.sizes.items())},
            "scores": await node.peer_scores(),
            "graylisted_rpcs": node.gossipsub.graylisted_rpcs,
            "cpu_s": time.process_time(),
        }

    async def handle(self, line: str, t_ns: int) -> None:
        req: Any = None
        op: Any = None
        try:
            command = json.loads(line)
            if not isinstance(command, dict):
                raise ValueError("a command is a JSON object")
            req, op = command.get("req"), command.get("op")
            reply = await self._run(op, command, t_ns)
        except Exception as exc:
            reply = {"event": "error", "op": op, "error": f"{type(exc).__name__}: {exc}"}
        if reply is not None:
            if req is not None:
                reply["req"] = req
            self.emit(reply)

    async def _run(self, op: Any, command: dict[str, Any], t_ns: int) -> dict[str, Any] | None:
        if op == "publish":
            data = bytes.fromhex(str(command["hex"]).removeprefix("0x"))
            if command.get("bundle"):
                mid = await self.publisher.publish(data)
            else:
                mid = await self.node.publish(data)
            return {"event": "published", "id": mid.hex(), "t_ns": t_ns,
                    "done_ns": time.monotonic_ns()}
        if op == "connect":
            addr = str(command["addr"])
            sync = bool(command.get("sync", True))
            synced = await self.node.connect(addr, sync=sync)
            return {"event": "connected", "addr": addr, "synced": synced}
        if op == "stats":
            return {"event": "stats", **await self.stats()}
        if op == "quit":
            self.finish("quit")
            return None
        raise ValueError(f"unknown op {op!r} (connect, publish, stats, quit)")

    def spawn(self, line: str) -> None:
        task = asyncio.create_task(self.handle(line, time.monotonic_ns()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def read_commands(self, reader: asyncio.StreamReader) -> None:
        while not self.stop.is_set():
            line = await reader.readline()
            if not line:
                self.finish("stdin closed")
                return
            if line.strip():
                self.spawn(line.decode())

    async def report_deliveries(self) -> None:
        inbox = self.node.subscribe()
        while True:
            data = await inbox.get()
            self.emit({"event": "delivered", "id": message_id(data).hex(),
                       "t_ns": time.monotonic_ns()})

    async def cancel_ops(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _protocol_stdout() -> IO[str]:
    """The real stdout for our JSON lines; file descriptor 1 (and ``sys.stdout``) now point
    at stderr, so a stray print from a library cannot corrupt the protocol."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


async def serve(args: argparse.Namespace, out: IO[str]) -> int:
    config = gossip_config(args)
    validator: AttestationValidator | None = None
    if not args.accept_all:
        registry = registry_from_args(args)
        if not registry.signers or not registry.models:
            raise UsageError("a validating node needs at least one signer and one model "
                             "(--signer/--model or --registry); --accept-all for none")
        validator = AttestationValidator(StaticRegistry(registry.signers), registry.models,
                                         registry.chain_id, registry.contract)
    try:
        bundling = BundleConfig(window=args.bundle_window, max_entries=args.bundle_max)
    except ValueError as exc:
        raise UsageError(f"--bundle-window/--bundle-max: {exc}") from None
    node = await GossipNode.start(args.port, args.seed, validator=validator, config=config)
    publisher = BundlePublisher(node, validator, bundling)
    if node.validator is not None:  # a rejected bundle's good entries go out again
        node.validator.on_salvage = publisher.submit_threadsafe
    peer = _Peer(node, validator, publisher, out)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, peer.finish, signal.Signals(signum).name)
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with asyncio.TaskGroup() as group:
            deliveries = group.create_task(peer.report_deliveries())
            commands = group.create_task(peer.read_commands(reader))
            bundles = group.create_task(publisher.run())
            peer.emit({"event": "ready", "peer_id": node.peer_id, "addr": node.listen_addr,
                       "pid": os.getpid()})
            await peer.stop.wait()
            commands.cancel()
            await peer.cancel_ops()
            deliveries.cancel()
            bundles.cancel()
    finally:
        await node.stop()
    peer.emit({"event": "stopped", "reason": peer.reason})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = _protocol_stdout()
    try:
        return asyncio.run(serve(args, out))
    except UsageError as exc:
        print(f"peer_process: {exc}", file=sys.stderr)
        return 2
    except GossipError as exc:
        print(f"peer_process: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(OSError, ValueError):
            out.close()


if __name__ == "__main__":
    sys.exit(main())
