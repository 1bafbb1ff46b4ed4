"""``orbital ground``: operators build, co-sign and check command envelopes.

A command (EIP-712 ``Command``: kind, payload hash, nonce, notBefore, expiry, satellite
id) is signed by operator keys held in keystores on the ground; the satellite acts on it
only with m-of-n known operator signatures, inside its time window, with a nonce above
the last it accepted (``orbital wallet run-command``).

A head (EIP-712 ``Head``: chain id, block number, hash, timestamp) is read by each operator
from a node they run and signed the same way; a satellite in ``ground`` head-trust mode
anchors on it only with m-of-n operator signatures and while it is fresh.
"""

from __future__ import annotations

import argparse

from node.cli.argtypes import positive, uint
from node.cli.lazy import lazy


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``ground`` and its subcommands."""
    parser = commands.add_parser("ground", help="operator command envelopes and signed heads "
                                 "(build, co-sign, verify)", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("command", help="build a command envelope and sign it",
                         description="Build a command for a satellite and sign it with an "
                         "operator keystore (password from --password-file or "
                         "$ORBITAL_KEYSTORE_PASSWORD or a prompt).")
    p.add_argument("--kind", default="sign_transaction", help="command kind")
    p.add_argument("--payload", required=True, metavar="FILE.json",
                   help="the payload (for sign_transaction: the transaction request)")
    p.add_argument("--nonce", required=True, type=uint(256))
    p.add_argument("--satellite", required=True, help="satellite name")
    p.add_argument("--chain-id", required=True, type=uint(64))
    p.add_argument("--not-before", type=uint(64), help="UNIX time (default: now)")
    p.add_argument("--expires-in", type=uint(32), default=3600, help="seconds (default 3600)")
    p.add_argument("--keystore", required=True, help="operator keystore file")
    p.add_argument("--password-file")
    p.add_argument("--out", required=True, metavar="ENVELOPE.json")
    p.set_defaults(run=lazy("node.cli.ground_run", "_command"))

    p = verbs.add_parser("cosign", help="add an operator's signature to an envelope",
                         description="Show the envelope decoded (the command, its window, "
                         "who signed it, and for sign_transaction the transaction: "
                         "destination, value, fees at most, calldata), ask before signing, "
                         "then add your signature. --yes signs without asking; without a "
                         "terminal and without --yes nothing is signed (exit 2). Declining "
                         "exits 1.")
    p.add_argument("file", metavar="ENVELOPE.json")
    p.add_argument("--keystore", required=True)
    p.add_argument("--password-file")
    p.add_argument("--satellite", metavar="NAME",
                   help="refuse unless the command is for this satellite")
    p.add_argument("--yes", action="store_true", help="sign without asking")
    p.set_defaults(run=lazy("node.cli.ground_run", "_cosign"))

    p = verbs.add_parser("verify-command", help="check an envelope as the satellite will")
    p.add_argument("file", metavar="ENVELOPE.json")
    p.add_argument("--operators", required=True, help="comma-separated operator addresses")
    p.add_argument("--threshold", required=True, type=uint(16))
    p.add_argument("--satellite", required=True)
    p.add_argument("--chain-id", required=True, type=uint(64))
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lazy("node.cli.ground_run", "_verify"))

    p = verbs.add_parser("head", help="sign the chain's head read from your node, or co-sign "
                         "a head file",
                         description="Read a block from a node you run (--rpc), recompute its "
                         "header hash and sign the EIP-712 Head (chain id, number, hash, "
                         "timestamp) into --out; or, with --cosign FILE, check that your node "
                         "has that block at that height on that chain and add your signature. "
                         "Password from --password-file or $ORBITAL_KEYSTORE_PASSWORD or a "
                         "prompt.")
    p.add_argument("--rpc", required=True, metavar="URL", help="JSON-RPC of a node you run")
    p.add_argument("--block", metavar="latest|safe|finalized|NUMBER",
                   help="the block to sign (default latest; on a public network sign "
                        "finalized)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="HEAD.json", help="write a new signed head")
    mode.add_argument("--cosign", metavar="HEAD.json", help="add your signature to this file")
    p.add_argument("--keystore", required=True, help="operator keystore file")
    p.add_argument("--password-file")
    p.add_argument("--timeout", type=positive, default=30.0, help="RPC timeout, seconds")
    p.set_defaults(run=lazy("node.cli.ground_head", "_head"))

    p = verbs.add_parser("verify-head", help="check a signed head as a satellite will")
    p.add_argument("file", metavar="HEAD.json")
    p.add_argument("--operators", required=True, help="comma-separated operator addresses")
    p.add_argument("--threshold", required=True, type=uint(16))
    p.add_argument("--chain-id", required=True, type=uint(256))
    p.add_argument("--max-age", type=uint(32), metavar="S",
                   help="oldest head accepted, seconds since its timestamp (default 3600)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lazy("node.cli.ground_head", "_verify_head"))
