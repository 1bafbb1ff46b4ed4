"""``orbital demo``: the most complete job the project can do so far.

It verifies a real block captured from an anvil devnet (every transaction envelope:
legacy, EIP-155, EIP-2930, EIP-1559, EIP-4844, EIP-7702), its receipts and a state
proof, links headers into a header store from a checkpoint, then shows that a
tampered copy of each is refused.
"""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = commands.add_parser("demo", help="run the end-to-end demonstration",
                                 description=__doc__)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    raise NotImplementedError
