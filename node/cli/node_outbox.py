"""The work behind ``orbital node outbox list|show|drop`` (parsers in :mod:`node.cli.node`).

The outbox is the node's SQLite file (:class:`node.outbox.store.Outbox`); this opens the
same file from another process. That is safe while the node runs: every change is one
``BEGIN IMMEDIATE`` transaction (the node and this command take the database's write lock in
turn), and an entry dropped here while the node is broadcasting it keeps its drop
(:meth:`~node.outbox.store.Outbox.mark_sent_many`). Every refusal is one line and exit 2
(:class:`~node.cli.errors.UsageError`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from node.cli.errors import UsageError
from node.outbox.checks import OutboxError
from node.outbox.render import queued_transaction_json
from node.outbox.store import Entry, Outbox


def outbox_path(args: argparse.Namespace) -> Path:
    """The outbox file named by ``--outbox``, ``--data-dir`` or ``--config``; it must
    exist (a typo must not create an empty outbox and list nothing)."""
    if args.outbox is not None:
        path = Path(args.outbox)
    elif args.data_dir is not None:
        path = Path(args.data_dir) / "outbox.sqlite"
    else:
        from node.config import ConfigError, load_node_config
        try:
            path = load_node_config(args.config).outbox.path
        except ConfigError as exc:
            raise UsageError(f"{args.config}: {exc}") from None
    if not path.is_file():
        raise UsageError(f"no outbox at {path} (the node creates it when it first runs)")
    return path


def parse_hash(text: str) -> bytes:
    """A transaction hash: 0x and 64 hex digits."""
    digits = text.removeprefix("0x")
    if len(digits) != 64 or not text.startswith("0x"):
        raise UsageError(f"bad transaction hash {text[:80]!r}: want 0x and 64 hex digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise UsageError(f"bad transaction hash {text[:80]!r}: want 0x and 64 hex digits"
                         ) from None


def list_entries(args: argparse.Namespace) -> int:
    """``list [--state S] [--json]``."""
    with Outbox(outbox_path(args)) as box:
        entries = box.entries(args.state)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=1))
        return 0
    now = time.time()
    for e in entries:
        print(_line(e, now))
    if not entries:
        print(f"no {args.state + ' ' if args.state else ''}entries")
    return 0


def show_entry(args: argparse.Namespace) -> int:
    """``show HASH``: the entry and its transaction decoded, as JSON."""
    tx_hash = parse_hash(args.hash)
    with Outbox(outbox_path(args)) as box:
        entry = box.get(tx_hash)
    if entry is None:
        raise UsageError(f"no outbox entry 0x{tx_hash.hex()}")
    print(json.dumps(_shown(entry), indent=1))
    return 0


def drop_entry(args: argparse.Namespace) -> int:
    """``drop HASH``: a queued or sent entry becomes dropped ("dropped by operator")."""
    tx_hash = parse_hash(args.hash)
    with Outbox(outbox_path(args)) as box:
        before = box.get(tx_hash)
        try:
            entry = box.drop(tx_hash)
        except OutboxError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(entry.to_json(), indent=1))
        return 0
    was = before.state if before is not None else "active"
    note = ("; an upstream acknowledged it, so it may still be mined (the node would then "
            "mark it included)" if entry.sent_at is not None else
            "; no upstream ever acknowledged it")
    print(f"dropped 0x{tx_hash.hex()} (was {was}, from 0x{entry.sender.hex()} nonce "
          f"{entry.nonce}): the node will not broadcast it again{note}")
    return 0


def _line(e: Entry, now: float) -> str:
    where = (f"block {e.block_number}" if e.block_number is not None else
             e.reason or e.last_error or f"{e.attempts} broadcast(s)")
    return (f"0x{e.hash.hex()}  {e.state:<8}  0x{e.sender.hex()}  nonce {e.nonce:<6}  "
            f"{e.kind:<11}  {now - e.queued_at:>8.0f} s  {where}")


def _shown(entry: Entry) -> dict[str, Any]:
    out = entry.to_json()
    out.pop("raw")
    out["transaction"] = queued_transaction_json(entry)
    out["raw"] = "0x" + entry.raw.hex()
    return out
