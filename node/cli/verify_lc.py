"""``orbital verify lc``: the work behind the parser in :mod:`node.cli.verify` (which
describes the command); imported only when it runs (BLS, SSZ)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from node.chain.beacon import api
from node.chain.beacon.config import NetworkConfig, network
from node.chain.beacon.containers import FORKS
from node.chain.beacon.store import DAY, ExecutionHead, LightClient
from node.chain.beacon.sync_protocol import UpdateRejected
from node.chain.errors import MalformedInputError
from node.cli.errors import UsageError
from node.cli.verify import _emit, _guard, _hex

MAX_FILE_BYTES = 64 * 1024 * 1024


def clock_of(args: argparse.Namespace) -> Callable[[], float]:
    """The wall clock, or the fixed time of ``--now``."""
    now = args.now
    return time.time if now is None else (lambda: now)


def _read(path: str) -> tuple[bytes, api.Encoding]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MalformedInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise MalformedInputError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    encoding: api.Encoding = "json" if data.lstrip()[:1] in (b"{", b"[") else "ssz"
    return data, encoding


def _single(config: NetworkConfig, kind: api.Kind, path: str) -> Any:
    """A single object from a file: JSON names its fork; bare SSZ is tried as each
    light-client fork, newest first, and must be the fork of its own slot."""
    body, encoding = _read(path)
    if encoding == "json":
        return api.decode_object(config, kind, body, encoding="json", endpoint=path)
    errors = []
    for fork in reversed(FORKS):
        try:
            return api.decode_object(config, kind, body, encoding="ssz", fork=fork,
                                     endpoint=path)
        except MalformedInputError as exc:
            errors.append(f"{fork}: {exc}")
    raise MalformedInputError(f"{path}: not an SSZ {kind} of any light-client fork "
                              f"({errors[0]})")


def _named(what: str, update: Any, process: Any) -> None:
    """``process(update)``; a refusal names the update (which one, its attested slot)."""
    try:
        process(update)
    except UpdateRejected as exc:
        where = f"{what} (attested slot {update.attested_header.beacon.slot})"
        raise UpdateRejected(f"{where}: {exc.field}", exc.claimed, exc.computed,
                             reason=exc.reason) from None


def heads_report(client: LightClient) -> dict[str, Any]:
    """The finalized and optimistic heads of ``client`` for ``--json``."""
    out: dict[str, Any] = {}
    for name, header, head in (
            ("finalized", client.store.finalized_header, client.finalized_execution),
            ("optimistic", client.store.optimistic_header, client.optimistic_execution)):
        out[name] = {"beaconSlot": header.beacon.slot,
                     "beaconRoot": _hex(header.beacon.hash_tree_root()),
                     "execution": head.as_dict() if head else None}
    return out


def heads_lines(client: LightClient) -> list[str]:
    """The finalized and optimistic heads of ``client`` as text."""
    return [f"verified finalized: {_head(client.finalized_execution)}",
            f"verified optimistic: {_head(client.optimistic_execution)}"]


def _head(head: ExecutionHead | None) -> str:
    if head is None:
        return "no execution payload (pre-Capella header)"
    return (f"execution block {head.block_number} {_hex(head.block_hash)} stateRoot "
            f"{_hex(head.state_root)} (beacon slot {head.slot})")


def run(args: argparse.Namespace) -> int:
    def work() -> int:
        anchored = args.checkpoint is not None
        if anchored == args.unanchored:
            raise UsageError(
                "--unanchored contradicts --trusted: choose one" if anchored else
                "no trusted root: pass --trusted ROOT (a beacon block root you trust) or "
                "--unanchored to use the bootstrap's own root (the result is then NOT "
                "anchored)")
        config = network(args.network)
        bootstrap = _single(config, "LightClientBootstrap", args.bootstrap)
        updates = []
        for path in args.updates:
            body, encoding = _read(path)
            updates += api.decode_updates(config, body, encoding=encoding, endpoint=path)
        updates.sort(key=lambda u: (u.attested_header.beacon.slot, u.signature_slot))
        finality = _single(config, "LightClientFinalityUpdate", args.finality) \
            if args.finality else None
        optimistic = _single(config, "LightClientOptimisticUpdate", args.optimistic) \
            if args.optimistic else None

        trusted = args.checkpoint if anchored else bootstrap.header.beacon.hash_tree_root()
        client = LightClient.bootstrap(config, trusted, bootstrap, args.store,
                                       max_checkpoint_age=args.max_checkpoint_age * DAY,
                                       clock=clock_of(args))
        with client:
            for index, update in enumerate(updates, 1):
                _named(f"update {index} of {len(updates)}", update, client.process_update)
            if finality is not None:
                _named("finality update", finality, client.process_finality_update)
            if optimistic is not None:
                _named("optimistic update", optimistic, client.process_optimistic_update)
        lines = [
            f"checkpoint {_hex(trusted)} "
            + ("(trusted, --trusted)" if anchored else
               "(NOT anchored: the bootstrap's own root, --unanchored)"),
            f"{len(updates)} update(s)"
            + (", a finality update" if finality is not None else "")
            + (", an optimistic update" if optimistic is not None else "")
            + f" verified on {config.name}",
        ]
        report = {"verified": True, "network": config.name, "checkpoint": _hex(trusted),
                  "checkpointTrusted": anchored, "updates": len(updates)}
        report.update(heads_report(client))
        lines += heads_lines(client)
        return _emit(args, report, lines)
    return _guard(args, work)
