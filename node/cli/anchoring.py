"""The trust decision of ``orbital verify header|block|proof|chain``, made explicit.

After the Merge a header carries no seal, so a hash that links proves nothing by itself:
data is verified only when its block is an *anchor* -- a block the user trusts
(``--trusted NUMBER:HASH``) or one a beacon light client proved (``--lc-store FILE``) -- or
an ancestor of one, linked by ``parentHash`` walking backward from the anchor
(:mod:`node.chain.anchor`). Without any anchor the user must say ``--unanchored``; the
commands then check self-consistency only and print "NOT anchored". With neither, they
exit 2 explaining the choice.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from node.chain.anchor import Anchor, link_backward, parse_anchor
from node.chain.errors import MalformedInputError, NotAnchoredError
from node.chain.forks import ChainConfig, load_chain_config
from node.chain.header import Header, verify_header
from node.chain.header_rules import validate_header
from node.cli.errors import UsageError
from node.cli.jsonfile import load_result

NO_ANCHOR = (
    "no anchor given: a block whose header hashes and links proves nothing after the Merge "
    "unless it leads back from a block you trust. Pass --trusted NUMBER:HASH (repeatable) or "
    "--lc-store FILE (a light-client store whose proven execution block is the anchor), or "
    "--unanchored to check self-consistency only (the result is then NOT anchored)")


def add_options(parser: argparse.ArgumentParser, *, headers: bool = True) -> None:
    """The anchor options (and, with ``headers``, ``--headers`` linking files)."""
    group = parser.add_argument_group(
        "trust (one of --trusted / --lc-store, or --unanchored)",
        "A header is verified only when it is an anchor or an ancestor of one (linked by "
        "parentHash backward). Headers that link forward from a trusted block are NOT "
        "verified: after the Merge anyone can build them.")
    group.add_argument("--trusted", action="append", default=[], metavar="NUMBER:HASH",
                       type=_anchor_arg,
                       help="a block you trust (decimal or 0x number, 32-byte 0x-hash); "
                            "repeatable")
    group.add_argument("--lc-store", metavar="FILE",
                       help="a light-client store (orbital verify lc --store / node "
                            "lc-sync): its proven finalized and optimistic execution blocks "
                            "are anchors")
    group.add_argument("--lc-network", metavar="NAME|CONFIG",
                       help="network of --lc-store (default: the one it records)")
    group.add_argument("--unanchored", action="store_true",
                       help="no anchor: check hashes, links and rules only; the output says "
                            "NOT anchored")
    group.add_argument("--chain", metavar="NAME|FILE", dest="chain_config",
                       help="fork schedule for the header rules: mainnet, sepolia, hoodi, a "
                            "genesis.json or a hive forkenv.json (default: the --lc-store "
                            "network's, else rules needing it are reported not checked)")
    if headers:
        group.add_argument("--headers", action="append", default=[], metavar="BLOCKS.json",
                           help="eth_getBlockBy* results (one or a JSON array per file) that "
                                "link the block back to an anchor; repeatable")


def _anchor_arg(text: str) -> Anchor:
    try:
        return parse_anchor(text, detail="--trusted")
    except MalformedInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_headers(paths: Iterable[str]) -> list[tuple[str, Header]]:
    """Hash-checked headers from files each holding a block or a JSON array of blocks,
    with where each came from."""
    out: list[tuple[str, Header]] = []
    for path in paths:
        value = load_result(path)
        items = value if isinstance(value, list) else [value]
        for i, block in enumerate(items):
            where = f"{path}[{i}]" if isinstance(value, list) else path
            out.append((where, verify_header(block, where)))
    return out


@dataclass
class Trust:
    """The anchors of one command and what they reach."""

    anchors: list[tuple[Anchor, bool]]  # (anchor, final)
    config: ChainConfig | None
    unanchored: bool
    reached: dict[bytes, Anchor] = field(default_factory=dict)
    missing: list[Anchor] = field(default_factory=list)  # anchors whose header was not given
    not_checked: dict[str, str] = field(default_factory=dict)

    def link(self, headers: Iterable[Header]) -> None:
        """Check the rules between every parent/child pair of ``headers`` (anchored or
        not), then walk backward from each anchor through them."""
        by_hash = {h.hash: h for h in headers}
        for header in by_hash.values():
            parent = by_hash.get(header.parent_hash)
            if parent is not None:
                report = validate_header(header, parent, self.config)
                for rule, why in report.not_checked:
                    self.not_checked.setdefault(rule, why)
        present = []
        for anchor, _final in self.anchors:
            header = by_hash.get(anchor.hash)
            if header is None:
                self.missing.append(anchor)
            else:
                present.append((anchor, header))
        self.reached = link_backward(present, by_hash)

    def require(self, header: Header) -> Anchor | None:
        """The anchor that reaches ``header``; None with --unanchored; otherwise
        :class:`NotAnchoredError` saying why."""
        if self.unanchored:
            return None
        anchor = self.reached.get(header.hash)
        if anchor is not None:
            return anchor
        raise NotAnchoredError(header.number, header.hash, self.why_not(header))

    def why_not(self, header: Header) -> str:
        parts = ["no anchor leads back to it by parentHash (linking forward from a trusted "
                 "block proves nothing after the Merge)"]
        if self.missing:
            parts.append("the header of " + ", ".join(a.describe() for a in self.missing)
                         + " is not among the files given")
        return "; ".join(parts)

    def report(self, header: Header | None = None) -> dict[str, Any]:
        """The trust part of a ``--json`` report."""
        anchor = None if header is None else self.reached.get(header.hash)
        return {"anchored": not self.unanchored,
                "anchor": None if anchor is None else anchor_json(anchor),
                "anchors": [anchor_json(a) for a, _ in self.anchors],
                "rulesNotChecked": [{"rule": r, "why": w} for r, w in self.not_checked.items()]}

    def lines(self, header: Header | None = None) -> list[str]:
        """The trust part of the text output."""
        if self.unanchored:
            out = ["  NOT anchored: hashes, links and rules checked only (--unanchored); "
                   "nothing here is verified against a trusted block"]
        else:
            anchor = None if header is None else self.reached.get(header.hash)
            out = [] if anchor is None else [f"  anchored by  {anchor.describe()}"]
        out += [f"  rule not checked  {r}: {w}" for r, w in self.not_checked.items()]
        return out


def anchor_json(anchor: Anchor) -> dict[str, Any]:
    return {"number": anchor.number, "hash": "0x" + anchor.hash.hex(),
            "source": str(anchor.source), "detail": anchor.detail}


def trust_from_args(args: argparse.Namespace) -> Trust:
    """The anchors the options give (exit 2 through :class:`UsageError` when the choice
    is missing or contradictory)."""
    anchors: list[tuple[Anchor, bool]] = []
    network_name = None
    if args.lc_store:
        lc_anchors, network_name = light_client_anchors(args.lc_store, args.lc_network)
        anchors += lc_anchors
    anchors += [(a, False) for a in args.trusted]
    if args.unanchored and anchors:
        raise UsageError("--unanchored contradicts the anchors given: choose one")
    if not args.unanchored and not anchors:
        raise UsageError(NO_ANCHOR)
    config_name = args.chain_config or (
        network_name if network_name in ("mainnet", "sepolia", "hoodi") else None)
    config = load_chain_config(config_name) if config_name else None
    return Trust(anchors, config, args.unanchored)


def light_client_anchors(path: str, network_arg: str | None
                         ) -> tuple[list[tuple[Anchor, bool]], str]:
    """The proven execution blocks of the light-client store ``path``: finalized (final)
    and optimistic."""
    from node.chain.beacon.config import network
    from node.chain.beacon.store import LightClient, stored_network

    config = network(network_arg or stored_network(path))
    with LightClient.resume(config, path) as client:
        out: list[tuple[Anchor, bool]] = []
        for kind, head, final in (("finalized", client.finalized_execution, True),
                                  ("optimistic", client.optimistic_execution, False)):
            if head is not None and all(a.hash != head.block_hash for a, _ in out):
                out.append((head.anchor(kind), final))
    if not out:
        raise UsageError(f"--lc-store {path}: the light client has no proven execution "
                         f"block yet (pre-Capella headers)")
    return out, config.name
