"""``orbital node``: the satellite node's own tools.

``gossip-bench`` runs the attestation gossip benchmark (``benchmarks/gossip.py``): node
processes on 127.0.0.1 in a ring with chords, propagation latency p50/p99 to all of them and
delivery at each publish rate, then attestations validated per second (coincurve recovery
against eth-account's). Progress goes to stderr, the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse

from node.cli.lazy import lazy


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``node`` and its subcommands."""
    parser = commands.add_parser("node", help="the node's own tools (gossip benchmark)",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser(
        "gossip-bench", help="benchmark attestation gossip between node processes",
        description="Start node processes on 127.0.0.1, publish attestations from one at each "
                    "rate, report latency to all nodes (p50/p99), delivery and dropped RPCs, "
                    "and validations per second against eth-account recovery. Needs the "
                    "source checkout (benchmarks/ is not installed).")
    p.add_argument("--nodes", type=int, help="node processes (default 10; --quick 5)")
    p.add_argument("--messages", type=int, help="attestations per rate (default 300)")
    p.add_argument("--rate", type=float, action="append", metavar="MSG_PER_S",
                   help="publish rate (repeatable; default 5, 10, 20 and 50)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=lazy("node.cli.node_run", "_gossip_bench"))
