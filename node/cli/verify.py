"""``orbital verify``: check headers, blocks and state proofs read from files.

For operators and scripts: feed it what any RPC returned (``eth_getBlockByNumber``,
``eth_getBlockReceipts``, ``eth_getProof``) and it recomputes every hash and root it
can. Exit 0 when verified, 1 on a mismatch (one line naming the field and both
values), 2 on malformed input.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from node.chain.block import verify_block
from node.chain.errors import ChainError, HeaderStoreError, VerificationError
from node.chain.header import verify_header
from node.chain.header_store import Checkpoint, HeaderStore
from node.chain.proof import verify_account_proof
from node.chain.rpcjson import parse_data
from node.cli.jsonfile import load_result
from node.cli.lazy import lazy

JSON_HELP = "print one JSON object on stdout instead of text (errors too)"
LC_DESCRIPTION = """\
Verify Beacon API light-client responses saved to files -- JSON ({"version", "data"}, a list of
them for updates) or SSZ (updates in the chunked format, single objects bare) -- offline with
the sync protocol: bootstrap from the trusted block root, each update (by attested slot), the
finality update, the optimistic update. Prints the verified finalized and optimistic execution
blocks (number, hash, state root). Without --checkpoint the bootstrap's own root is used and the
output says the result is NOT anchored to a trusted root. Exit 0 verified, 1 a check failed
(named), 2 malformed input."""




def register(commands: argparse._SubParsersAction) -> None:
    """Add ``verify`` and its subcommands."""
    parser = commands.add_parser(
        "verify", help="verify Ethereum data read from JSON-RPC result files",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    header = kinds.add_parser(
        "header", help="check that a block's header fields hash to its hash",
        description="Recompute keccak256(rlp(header)) from an eth_getBlockBy* result and "
                    "compare it with the block's hash. Prints 'verified <number> <hash>'.")
    header.add_argument("block", metavar="BLOCK.json", help="eth_getBlockBy* result ('-' = stdin)")
    header.add_argument("--json", action="store_true", help=JSON_HELP)
    header.set_defaults(run=_run_header)

    proof = kinds.add_parser(
        "proof", help="verify an eth_getProof result against a block's stateRoot",
        description="Verify the header of BLOCK.json, then the account and storage proofs of "
                    "PROOF.json (EIP-1186) against its stateRoot; print the proven values.")
    proof.add_argument("--block", required=True, metavar="BLOCK.json",
                       help="the block the proof was taken at")
    proof.add_argument("proof", metavar="PROOF.json", help="eth_getProof result ('-' = stdin)")
    proof.add_argument("--json", action="store_true", help=JSON_HELP)
    proof.set_defaults(run=_run_proof)

    block = kinds.add_parser(
        "block", help="verify a block's hash and every root its data allows",
        description="Verify the header hash, sha3Uncles, transactionsRoot (needs full "
                    "transactions: eth_getBlockByNumber(N, true)), each transaction's hash and "
                    "sender, blobGasUsed, withdrawalsRoot and, with --receipts, each receipt's "
                    "bloom, receiptsRoot, logsBloom and gasUsed. What cannot be checked from "
                    "the data given is listed as not checked.")
    block.add_argument("block", metavar="BLOCK.json", help="eth_getBlockBy* result ('-' = stdin)")
    block.add_argument("--receipts", metavar="RECEIPTS.json",
                       help="eth_getBlockReceipts result for the same block")
    block.add_argument("--json", action="store_true", help=JSON_HELP)
    block.set_defaults(run=_run_block)

    chain = kinds.add_parser(
        "chain", help="hash-check headers and link them from a trusted checkpoint",
        description="Verify each header's hash, then link the headers into a header store "
                    "(SQLite) anchored at --checkpoint: a header is accepted only if it links "
                    "by parentHash to one already accepted. Competing branches are kept and a "
                    "switch of the canonical chain is reported as a reorg.")
    chain.add_argument("headers", nargs="+", metavar="BLOCKS.json",
                       help="files each holding one eth_getBlockBy* result or a JSON array "
                            "of them, in any order ('-' = stdin)")
    chain.add_argument("--checkpoint", required=True, metavar="NUMBER:HASH", type=_checkpoint,
                       help="the trusted block to anchor at, e.g. 0:0xd4e5...8fa3")
    chain.add_argument("--store", metavar="FILE",
                       help="header store to use and keep (default: a temporary one)")
    chain.add_argument("--json", action="store_true", help=JSON_HELP)
    chain.set_defaults(run=_run_chain)
    _add_lc(kinds)


def _add_lc(kinds: argparse._SubParsersAction) -> None:
    """``verify lc``; the work is in :mod:`node.cli.verify_lc` (BLS, SSZ: imported when run)."""
    lc = kinds.add_parser(
        "lc", help="verify downlinked beacon light-client data; print the proven execution head",
        description=LC_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    lc.add_argument("--bootstrap", required=True, metavar="FILE",
                    help="light_client/bootstrap response (JSON or SSZ)")
    lc.add_argument("--updates", action="append", default=[], metavar="FILE",
                    help="light_client/updates response (JSON list or chunked SSZ); repeatable")
    lc.add_argument("--finality", metavar="FILE", help="light_client/finality_update response")
    lc.add_argument("--optimistic", metavar="FILE",
                    help="light_client/optimistic_update response")
    lc.add_argument("--checkpoint", metavar="ROOT", type=beacon_root,
                    help="trusted beacon block root (0x + 64 hex) the bootstrap must match")
    lc.add_argument("--network", default="mainnet", metavar="NAME|CONFIG",
                    help="mainnet (default), sepolia, hoodi, or a consensus config.yaml path")
    lc.add_argument("--now", metavar="TIME", type=moment,
                    help="verify as of TIME (unix seconds or ISO 8601, e.g. for archived data; "
                         "default: the clock)")
    lc.add_argument("--max-checkpoint-age", metavar="DAYS", type=float, default=14.0,
                    help="refuse a checkpoint older than this (default 14 days)")
    lc.add_argument("--store", metavar="FILE",
                    help="keep the light-client store in this SQLite file")
    lc.add_argument("--json", action="store_true",
                    help=JSON_HELP)
    lc.set_defaults(run=lazy("node.cli.verify_lc", "run"))


def beacon_root(text: str) -> bytes:
    raw = text.removeprefix("0x")
    if len(raw) != 64:
        raise argparse.ArgumentTypeError(f"want a 32-byte 0x-hex root, got {text!r}")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a 32-byte 0x-hex root, got {text!r}") from None


def moment(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want unix seconds or ISO 8601, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _checkpoint(text: str) -> Checkpoint:
    number, sep, block_hash = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return Checkpoint(int(number, 0), parse_data(block_hash, "--checkpoint", 32))
    except (ValueError, ChainError):
        raise argparse.ArgumentTypeError(
            f"want NUMBER:HASH with a 32-byte 0x-hash, got {text!r}") from None


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _emit(args: argparse.Namespace, report: dict[str, Any], lines: list[str]) -> int:
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))
    return 0


def _guard(args: argparse.Namespace, work: Any) -> int:
    """Run ``work``; with --json also report failures as JSON (then re-raise for the code)."""
    try:
        return work()
    except Exception as exc:
        if args.json and hasattr(exc, "__str__"):
            out: dict[str, Any] = {"verified": False, "error": str(exc),
                                   "kind": type(exc).__name__}
            if isinstance(exc, VerificationError):
                out["field"] = exc.field
                out["claimed"] = _plain(exc.claimed)
                out["computed"] = _plain(exc.computed)
            json.dump(out, sys.stdout)
            sys.stdout.write("\n")
        raise


def _plain(value: object) -> object:
    return _hex(value) if isinstance(value, bytes) else value


def _run_header(args: argparse.Namespace) -> int:
    def work() -> int:
        header = verify_header(load_result(args.block))
        return _emit(args, {"verified": True, "number": header.number,
                            "hash": _hex(header.hash), "fork": header.fork},
                     [f"verified {header.number} {_hex(header.hash)}"])
    return _guard(args, work)


def _run_proof(args: argparse.Namespace) -> int:
    def work() -> int:
        header = verify_header(load_result(args.block))
        proven = verify_account_proof(header.state_root, load_result(args.proof))
        account = proven.account
        report = {
            "verified": True, "blockNumber": header.number, "blockHash": _hex(header.hash),
            "stateRoot": _hex(header.state_root), "address": _hex(proven.address),
            "exists": proven.exists, "nonce": account.nonce, "balance": str(account.balance),
            "storageHash": _hex(account.storage_root), "codeHash": _hex(account.code_hash),
            "storage": [{"key": _hex(s.key), "value": hex(s.value)} for s in proven.storage],
        }
        lines = [
            f"verified account {_hex(proven.address)} at block {header.number} "
            f"{_hex(header.hash)}" + ("" if proven.exists else " (absent: empty account)"),
            f"  stateRoot    {_hex(header.state_root)}",
            f"  nonce        {account.nonce}",
            f"  balance      {account.balance} wei",
            f"  storageHash  {_hex(account.storage_root)}",
            f"  codeHash     {_hex(account.code_hash)}",
        ]
        lines += [f"  storage[{_hex(s.key)}] = {hex(s.value)}" for s in proven.storage]
        return _emit(args, report, lines)
    return _guard(args, work)


def _run_block(args: argparse.Namespace) -> int:
    def work() -> int:
        block = load_result(args.block)
        receipts = load_result(args.receipts) if args.receipts else None
        result = verify_block(block, receipts)
        header = result.header
        report = {
            "verified": True, "number": header.number, "hash": _hex(header.hash),
            "fork": header.fork, "checked": list(result.verified),
            "notChecked": [{"field": f, "why": why} for f, why in result.skipped],
            "transactions": len(result.transactions), "receipts": len(result.receipts),
        }
        lines = [f"verified {header.number} {_hex(header.hash)}"]
        lines += [f"  ok           {name}" for name in result.verified]
        lines += [f"  not checked  {name}: {why}" for name, why in result.skipped]
        return _emit(args, report, lines)
    return _guard(args, work)


def _run_chain(args: argparse.Namespace) -> int:
    def work() -> int:
        blocks: list[tuple[str, Any]] = []
        for path in args.headers:
            value = load_result(path)
            items = value if isinstance(value, list) else [value]
            blocks += [(f"{path}[{i}]" if isinstance(value, list) else path, b)
                       for i, b in enumerate(items)]
        headers = sorted((verify_header(b, where) for where, b in blocks),
                         key=lambda h: h.number)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.store) if args.store else Path(tmp) / "headers.sqlite"
            with HeaderStore(path, args.checkpoint) as store:
                below = [h for h in headers if h.number < args.checkpoint.number]
                insertions = store.add_many(
                    [h for h in headers if h.number >= args.checkpoint.number] + below[::-1])
                head = store.head
        if head is None:
            raise HeaderStoreError(f"no header has the checkpoint's hash "
                                   f"0x{args.checkpoint.hash.hex()}: nothing links to it")
        reorgs = [i.reorg for i in insertions if i.reorg is not None]
        side = sum(i.status == "side" for i in insertions)
        report = {"verified": True, "headers": len(headers), "head": head.number,
                  "headHash": _hex(head.hash), "sideBranchHeaders": side,
                  "reorgs": [{"ancestor": r.ancestor_number, "depth": r.depth,
                              "oldHead": _hex(r.old_head), "newHead": _hex(r.new_head)}
                             for r in reorgs]}
        lines = [f"verified {len(headers)} headers linked from checkpoint "
                 f"{args.checkpoint.number}; head {head.number} {_hex(head.hash)}"]
        if side:
            lines.append(f"  {side} headers on side branches")
        lines += [f"  reorg at {r.ancestor_number}: depth {r.depth}, "
                  f"{_hex(r.old_head)} -> {_hex(r.new_head)}" for r in reorgs]
        return _emit(args, report, lines)
    return _guard(args, work)
