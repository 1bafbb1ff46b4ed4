"""``orbital node``: the satellite node's own tools.

``lc-sync`` brings a persistent beacon light client up to the chain's head from a Beacon API
server it does not trust (bootstrapping from a trusted block root the first time) and prints
the execution block it proves. ``run`` serves the verified JSON-RPC. ``outbox`` lists, shows
and drops the transactions the node queued (safe while it runs). ``gossip-bench`` runs the
attestation gossip benchmark (``benchmarks/gossip.py``): node processes on 127.0.0.1 in a
ring with chords, propagation latency p50/p99 to all of them and delivery at each publish
rate, then attestations validated per second (coincurve recovery against eth-account's).
Progress goes to stderr, the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.argtypes import beacon_root, moment, positive, uint
from node.cli.lazy import lazy


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``node`` and its subcommands."""
    parser = commands.add_parser("node", help="the node's own tools (run, light-client sync, "
                                              "outbox, gossip benchmark)",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser(
        "lc-sync", help="catch a beacon light client up from a Beacon API server",
        description="Open the light client in --store (or bootstrap it from --checkpoint, "
                    "fetching the bootstrap from the server), request exactly the "
                    "sync-committee updates the gap needs, then the finality and optimistic "
                    "updates; everything is verified before it counts. Prints the verified "
                    "finalized and optimistic execution blocks. Exit 0 synced, 1 the server "
                    "sent something that failed a check (named), 2 malformed input or config.")
    p.add_argument("--beacon-url", required=True, metavar="URL",
                   help="Beacon API base URL, e.g. http://127.0.0.1:5052")
    p.add_argument("--store", required=True, metavar="FILE",
                   help="the light client's SQLite file (created on first use)")
    p.add_argument("--checkpoint", metavar="ROOT", type=beacon_root,
                   help="trusted beacon block root (needed the first time; checked after)")
    p.add_argument("--network", default="mainnet", metavar="NAME|CONFIG",
                   help="mainnet (default), sepolia, hoodi, or a consensus config.yaml path")
    p.add_argument("--encoding", choices=("ssz", "json"), default="ssz",
                   help="response encoding to ask for (default ssz: smaller)")
    p.add_argument("--now", metavar="TIME", type=moment,
                   help="act as of TIME (unix seconds or ISO 8601; default: the clock)")
    p.add_argument("--max-checkpoint-age", metavar="DAYS", type=positive, default=14.0,
                   help="refuse a checkpoint older than this when bootstrapping (default 14)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=lazy("node.cli.node_run", "_lc_sync"))

    p = verbs.add_parser(
        "run", help="serve a verified JSON-RPC from untrusted upstreams",
        description="Run the verified node: a local JSON-RPC (web3.py, cast and other "
                    "clients unchanged) that answers only from data proven against an "
                    "anchored block. Anchors come from --trust: checkpoint (one fixed block), "
                    "quorum (K of the --upstream URLs agree on a block hash), ground (heads "
                    "signed by m-of-n operators), beacon (a light client). Prints 'serving "
                    "http://HOST:PORT' once ready; exits cleanly on SIGTERM.")
    p.add_argument("--config", metavar="FILE",
                   help="a node TOML file (configs/genesis-1.toml); flags given override it")
    p.add_argument("--log-format", choices=("text", "json"),
                   help="log lines as text (default) or one JSON object per line")
    p.add_argument("--upstream", action="append", default=[], metavar="URL",
                   help="an Ethereum JSON-RPC the node does not trust (repeatable)")
    p.add_argument("--trust", choices=("checkpoint", "quorum", "ground", "beacon"),
                   help="where anchors come from (required without --config)")
    p.add_argument("--checkpoint", metavar="NUMBER:HASH", type=_anchor,
                   help="the trusted block of --trust checkpoint")
    p.add_argument("--quorum", metavar="K", type=uint(16),
                   help="upstreams that must agree with --trust quorum (default: all)")
    p.add_argument("--chain-id", type=uint(64), metavar="ID",
                   help="the chain served; transactions for another are refused")
    p.add_argument("--chain", metavar="NAME|FILE",
                   help="fork schedule for the header rules (default: by chain id: mainnet, "
                        "sepolia, hoodi, anvil 31337)")
    p.add_argument("--rpc", metavar="HOST:PORT", type=_host_port,
                   help="where to serve (default 127.0.0.1:8545; port 0 picks a free one)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the node's files (header store, light client)")
    p.add_argument("--history", type=uint(32), metavar="N",
                   help="ancestors of each anchor kept linked (default 256)")
    p.add_argument("--refresh", type=positive, metavar="SECONDS",
                   help="how often to ask the trust source for a new head (default 12)")
    p.add_argument("--beacon-url", metavar="URL",
                   help="--trust beacon: a Beacon API server (not trusted); the light client "
                        "lives in DATA_DIR/lc.sqlite (bootstrap it with orbital node lc-sync)")
    p.add_argument("--network", metavar="NAME|CONFIG",
                   help="--trust beacon: the consensus network (default mainnet)")
    p.add_argument("--operators", metavar="ADDR,ADDR,...", type=_addresses,
                   help="--trust ground: the operators whose signatures count")
    p.add_argument("--threshold", metavar="M", type=uint(16),
                   help="--trust ground: signatures needed (m of the operators)")
    p.add_argument("--heads-dir", metavar="DIR",
                   help="--trust ground: where signed heads arrive (default DATA_DIR/heads; "
                        "orbital_submitHead also writes there)")
    p.add_argument("--max-head-age", type=positive, metavar="SECONDS",
                   help="--trust ground: refuse signed heads older than this (default 3600)")
    p.set_defaults(run=lazy("node.cli.node_run", "_run_node"))

    _register_outbox(verbs)

    p = verbs.add_parser(
        "gossip-bench", help="benchmark attestation gossip between node processes",
        description="Start node processes on 127.0.0.1, publish attestations from one at each "
                    "rate, report latency to all nodes (p50/p99), delivery and dropped RPCs, "
                    "and validations per second against eth-account recovery. Needs the "
                    "source checkout (benchmarks/ is not installed).")
    p.add_argument("--nodes", type=uint(16), help="node processes (default 10; --quick 5)")
    p.add_argument("--messages", type=uint(32), help="attestations per rate (default 300)")
    p.add_argument("--rate", type=positive, action="append", metavar="MSG_PER_S",
                   help="publish rate (repeatable; default 5, 10, 20 and 50)")
    p.add_argument("--attestations", type=uint(32),
                   help="attestations per bundle rate (default 3000)")
    p.add_argument("--bundle-rate", type=positive, action="append", metavar="ATT_PER_S",
                   help="attestations/s published in bundles (repeatable; default 500, 1000)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=lazy("node.cli.node_run", "_gossip_bench"))


OUTBOX_STATES = ("queued", "sent", "included", "final", "dropped", "expired")


def _register_outbox(verbs: argparse._SubParsersAction) -> None:
    """``orbital node outbox list|show|drop`` (work in :mod:`node.cli.node_outbox`)."""
    outbox = verbs.add_parser(
        "outbox", help="list, show and drop the node's outbox entries",
        description="The transactions eth_sendRawTransaction accepted into the node's durable "
                    "outbox (DATA_DIR/outbox.sqlite), and their states: queued (never "
                    "acknowledged by an upstream), sent (acknowledged, not yet seen in an "
                    "anchored block), included (verified receipt), final, dropped (replaced, "
                    "nonce taken, or by the operator), expired. Safe while the node runs: "
                    "every change is one SQLite transaction. Exit 2 on an unknown or "
                    "malformed hash, an entry in the wrong state, or no outbox at the path.")
    subs = outbox.add_subparsers(dest="outbox_verb", metavar="VERB", required=True)

    p = subs.add_parser("list", help="entries, oldest first",
                        description="One line per entry: hash, state, sender, nonce, kind and "
                                    "the reason or block; --json prints what orbital_outbox "
                                    "answers.")
    _outbox_location(p)
    p.add_argument("--state", choices=OUTBOX_STATES, help="only entries in this state")
    p.add_argument("--json", action="store_true", help="one JSON array on stdout")
    p.set_defaults(run=lazy("node.cli.node_outbox", "list_entries"))

    p = subs.add_parser("show", help="one entry and its decoded transaction",
                        description="The entry (state, attempts, last upstream error, block) "
                                    "and its transaction decoded as eth_getTransactionByHash "
                                    "gives a pending one, as JSON.")
    _outbox_location(p)
    p.add_argument("hash", metavar="HASH", help="the transaction hash (0x + 64 hex digits)")
    p.set_defaults(run=lazy("node.cli.node_outbox", "show_entry"))

    p = subs.add_parser("drop", help="stop broadcasting a queued or sent entry",
                        description="Mark a queued or sent entry dropped ('dropped by "
                                    "operator'): the node will not broadcast it again and its "
                                    "sender's later nonces wait for a replacement. One already "
                                    "sent may still be mined by an upstream that kept it; the "
                                    "node then marks it included. Included, final, dropped or "
                                    "expired entries are refused (exit 2).")
    _outbox_location(p)
    p.add_argument("hash", metavar="HASH", help="the transaction hash (0x + 64 hex digits)")
    p.add_argument("--json", action="store_true", help="print the dropped entry as JSON")
    p.set_defaults(run=lazy("node.cli.node_outbox", "drop_entry"))


def _outbox_location(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", metavar="DIR", help="the node's data directory "
                                                         "(DIR/outbox.sqlite)")
    where.add_argument("--config", metavar="FILE",
                       help="the node's TOML file ([outbox] path, or DATA_DIR/outbox.sqlite)")
    where.add_argument("--outbox", metavar="PATH", help="the outbox SQLite file itself")


def _anchor(text: str) -> Any:
    from node.chain.anchor import parse_anchor
    from node.chain.errors import MalformedInputError

    try:
        return parse_anchor(text, detail="--checkpoint")
    except MalformedInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"want HOST:PORT (port 0..65535), got {text!r}")
    return host, int(port)


def _addresses(text: str) -> tuple[bytes, ...]:
    out = []
    for item in text.split(","):
        raw = item.strip().removeprefix("0x")
        if len(raw) != 40:
            raise argparse.ArgumentTypeError(f"want 0x-addresses separated by commas, got "
                                             f"{item!r}")
        try:
            out.append(bytes.fromhex(raw))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad address {item!r}") from None
    return tuple(out)
