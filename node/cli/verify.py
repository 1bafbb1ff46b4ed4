"""``orbital verify``: check headers, blocks and state proofs read from files.

For operators and scripts: feed it what any RPC returned (``eth_getBlockByNumber``,
``eth_getBlockReceipts``, ``eth_getProof``) and it recomputes every hash and root it
can. Exit 0 when verified, 1 on a mismatch (one line naming the field and both
values), 2 on malformed input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from node.chain.block import verify_block
from node.chain.errors import VerificationError
from node.chain.header import Header, verify_header
from node.chain.header_store import HeaderStore, Reorg
from node.chain.proof import verify_account_proof
from node.cli import anchoring
from node.cli.argtypes import beacon_root, moment, positive
from node.cli.jsonfile import load_result
from node.cli.lazy import lazy

JSON_HELP = "print one JSON object on stdout instead of text (errors too)"
TRUST_HELP = (
    "Linking proves ancestry only backward: a header that hashes and links forward from a "
    "trusted block proves nothing after the Merge (anyone can build one), so give the blocks "
    "you trust (--trusted, --lc-store) or say --unanchored.")
LC_DESCRIPTION = """\
Verify Beacon API light-client responses saved to files -- JSON ({"version", "data"}, a list of
them for updates) or SSZ (updates in the chunked format, single objects bare) -- offline with
the sync protocol: bootstrap from the trusted block root, each update (by attested slot), the
finality update, the optimistic update. Prints the verified finalized and optimistic execution
blocks (number, hash, state root). Trust comes from --trusted ROOT (a beacon block root you
trust); with --unanchored instead the bootstrap's own root is used and the output says the
result is NOT anchored; with neither it exits 2. Exit 0 verified, 1 a check failed (named),
2 malformed input or usage."""




def register(commands: argparse._SubParsersAction) -> None:
    """Add ``verify`` and its subcommands."""
    parser = commands.add_parser(
        "verify", help="verify Ethereum data read from JSON-RPC result files",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    header = kinds.add_parser(
        "header", help="check a block's header hash and that it leads back from an anchor",
        description="Recompute keccak256(rlp(header)) from an eth_getBlockBy* result, then "
                    "require the block to be an anchor or its ancestor (--headers link it "
                    "back), checking the consensus rules between every parent and child. "
                    "Prints 'verified <number> <hash>'. " + TRUST_HELP)
    header.add_argument("block", metavar="BLOCK.json", help="eth_getBlockBy* result ('-' = stdin)")
    anchoring.add_options(header)
    header.add_argument("--json", action="store_true", help=JSON_HELP)
    header.set_defaults(run=_run_header)

    proof = kinds.add_parser(
        "proof", help="verify an eth_getProof result against an anchored block's stateRoot",
        description="Verify the header of BLOCK.json and that it leads back from an anchor, "
                    "then the account and storage proofs of PROOF.json (EIP-1186) against its "
                    "stateRoot; print the proven values. " + TRUST_HELP)
    proof.add_argument("--block", required=True, metavar="BLOCK.json",
                       help="the block the proof was taken at")
    proof.add_argument("proof", metavar="PROOF.json", help="eth_getProof result ('-' = stdin)")
    anchoring.add_options(proof)
    proof.add_argument("--json", action="store_true", help=JSON_HELP)
    proof.set_defaults(run=_run_proof)

    block = kinds.add_parser(
        "block", help="verify a block's hash, anchoring and every root its data allows",
        description="Verify the header hash and that the block leads back from an anchor, "
                    "sha3Uncles, transactionsRoot (needs full transactions: "
                    "eth_getBlockByNumber(N, true)), each transaction's hash and sender, "
                    "blobGasUsed, withdrawalsRoot and, with --receipts, each receipt's bloom, "
                    "receiptsRoot, logsBloom and gasUsed. What cannot be checked from the data "
                    "given is listed as not checked. " + TRUST_HELP)
    block.add_argument("block", metavar="BLOCK.json", help="eth_getBlockBy* result ('-' = stdin)")
    block.add_argument("--receipts", metavar="RECEIPTS.json",
                       help="eth_getBlockReceipts result for the same block")
    anchoring.add_options(block)
    block.add_argument("--json", action="store_true", help=JSON_HELP)
    block.set_defaults(run=_run_block)

    chain = kinds.add_parser(
        "chain", help="verify headers lead back from trusted blocks and obey the fork rules",
        description="Verify each header's hash, the consensus rules between every parent and "
                    "child (execution-specs validate_header), and that every header is an "
                    "anchor or an ancestor of one, linked by parentHash walking backward. "
                    "Exit 0 only when all are; exit 1 names the first that is not anchored or "
                    "breaks a rule. Anchored headers go into a header store (SQLite); a switch "
                    "of the canonical chain between anchors is reported as a reorg. "
                    + TRUST_HELP)
    chain.add_argument("headers", nargs="+", metavar="BLOCKS.json",
                       help="files each holding one eth_getBlockBy* result or a JSON array "
                            "of them, in any order ('-' = stdin)")
    anchoring.add_options(chain, headers=False)
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
    lc.add_argument("--trusted", "--checkpoint", dest="checkpoint", metavar="ROOT",
                    type=beacon_root,
                    help="trusted beacon block root (0x + 64 hex) the bootstrap must match")
    lc.add_argument("--unanchored", action="store_true",
                    help="no trusted root: take the bootstrap's own root; the output says "
                         "NOT anchored")
    lc.add_argument("--network", default="mainnet", metavar="NAME|CONFIG",
                    help="mainnet (default), sepolia, hoodi, or a consensus config.yaml path")
    lc.add_argument("--now", metavar="TIME", type=moment,
                    help="verify as of TIME (unix seconds or ISO 8601, e.g. for archived data; "
                         "default: the clock)")
    lc.add_argument("--max-checkpoint-age", metavar="DAYS", type=positive, default=14.0,
                    help="refuse a checkpoint older than this (default 14 days)")
    lc.add_argument("--lc-store", "--store", dest="store", metavar="FILE",
                    help="keep the light-client store in this SQLite file")
    lc.add_argument("--json", action="store_true",
                    help=JSON_HELP)
    lc.set_defaults(run=lazy("node.cli.verify_lc", "run"))


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


def _anchor_block(args: argparse.Namespace, trust: anchoring.Trust, header: Header) -> None:
    """Link one block: ``--headers`` may lead it back to an anchor; the rules between every
    pair are checked; raises unless it is anchored (or ``--unanchored`` was chosen)."""
    trust.link([header, *(h for _, h in anchoring.load_headers(args.headers))])
    trust.require(header)


def _first_line(trust: anchoring.Trust, header: Header, what: str = "") -> str:
    if trust.unanchored:
        return f"self-consistent {what}{header.number} {_hex(header.hash)} (NOT anchored)"
    return f"verified {what}{header.number} {_hex(header.hash)}"


def _run_header(args: argparse.Namespace) -> int:
    def work() -> int:
        trust = anchoring.trust_from_args(args)
        header = verify_header(load_result(args.block))
        _anchor_block(args, trust, header)
        report = {"verified": not trust.unanchored, "number": header.number,
                  "hash": _hex(header.hash), "fork": header.fork, **trust.report(header)}
        return _emit(args, report, [_first_line(trust, header), *trust.lines(header)])
    return _guard(args, work)


def _run_proof(args: argparse.Namespace) -> int:
    def work() -> int:
        trust = anchoring.trust_from_args(args)
        header = verify_header(load_result(args.block))
        _anchor_block(args, trust, header)
        proven = verify_account_proof(header.state_root, load_result(args.proof))
        account = proven.account
        report = {
            "verified": not trust.unanchored, "blockNumber": header.number,
            "blockHash": _hex(header.hash),
            "stateRoot": _hex(header.state_root), "address": _hex(proven.address),
            "exists": proven.exists, "nonce": account.nonce, "balance": str(account.balance),
            "storageHash": _hex(account.storage_root), "codeHash": _hex(account.code_hash),
            "storage": [{"key": _hex(s.key), "value": hex(s.value)} for s in proven.storage],
            **trust.report(header),
        }
        lines = [
            _first_line(trust, header, f"account {_hex(proven.address)} at block ")
            + ("" if proven.exists else " (absent: empty account)"),
            *trust.lines(header),
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
        trust = anchoring.trust_from_args(args)
        block = load_result(args.block)
        receipts = load_result(args.receipts) if args.receipts else None
        result = verify_block(block, receipts)
        header = result.header
        _anchor_block(args, trust, header)
        report = {
            "verified": not trust.unanchored, "number": header.number,
            "hash": _hex(header.hash), "fork": header.fork, "checked": list(result.verified),
            "notChecked": [{"field": f, "why": why} for f, why in result.skipped],
            "transactions": len(result.transactions), "receipts": len(result.receipts),
            **trust.report(header),
        }
        lines = [_first_line(trust, header), *trust.lines(header)]
        lines += [f"  ok           {name}" for name in result.verified]
        lines += [f"  not checked  {name}: {why}" for name, why in result.skipped]
        return _emit(args, report, lines)
    return _guard(args, work)


def _run_chain(args: argparse.Namespace) -> int:
    def work() -> int:
        trust = anchoring.trust_from_args(args)
        given = anchoring.load_headers(args.headers)
        headers = {h.hash: h for _, h in given}
        trust.link(headers.values())
        ordered = sorted(headers.values(), key=lambda h: h.number)
        if not trust.unanchored:
            for header in ordered:  # the lowest that is not anchored is named
                trust.require(header)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.store) if args.store else Path(tmp) / "headers.sqlite"
            with HeaderStore(path, trust.config) as store:
                reorgs = _store_chain(store, trust, ordered) if not trust.unanchored else []
                head = store.head
        tips = [h for h in ordered if not any(c.parent_hash == h.hash for c in ordered)]
        report: dict[str, Any] = {
            "verified": not trust.unanchored, "headers": len(headers),
            **trust.report(),
            "reorgs": [{"ancestor": r.ancestor_number, "depth": r.depth,
                        "oldHead": _hex(r.old_head), "newHead": _hex(r.new_head)}
                       for r in reorgs]}
        if trust.unanchored:
            report["tips"] = [{"number": t.number, "hash": _hex(t.hash)} for t in tips]
            lines = [f"{len(headers)} headers hash and obey the rules between parent and child "
                     f"-- NOT anchored; {len(tips)} chain tip(s): "
                     + ", ".join(f"{t.number} {_hex(t.hash)}" for t in tips)]
        else:
            assert head is not None
            report.update(head=head.number, headHash=_hex(head.hash))
            lines = [f"verified {len(headers)} headers, each an anchor or its ancestor; head "
                     f"{head.number} {_hex(head.hash)}"]
            lines += [f"  anchor  {a.describe()}" for a, _ in trust.anchors
                      if a.hash in headers]
        lines += trust.lines()[1 if trust.unanchored else 0:]
        lines += [f"  reorg at {r.ancestor_number}: depth {r.depth}, "
                  f"{_hex(r.old_head)} -> {_hex(r.new_head)}" for r in reorgs]
        return _emit(args, report, lines)
    return _guard(args, work)


def _store_chain(store: HeaderStore, trust: anchoring.Trust,
                 ordered: list[Header]) -> list[Reorg]:
    """Put the anchors, then their ancestors newest first, into ``store``; the reorgs."""
    by_hash = {h.hash: h for h in ordered}
    reorgs = []
    for anchor, final in trust.anchors:
        header = by_hash.get(anchor.hash)
        if header is not None:
            insertion = store.add_anchor(anchor, header, final=final)
            if insertion.reorg is not None:
                reorgs.append(insertion.reorg)
    insertions = store.add_many(h for h in reversed(ordered) if store.status(h.hash) is None)
    reorgs += [i.reorg for i in insertions if i.reorg is not None]
    return reorgs
