"""``orbital``: entry point. Each subcommand lives in its own module and registers its
parser here; errors a user can meet become one line on stderr and an exit code.

Exit codes: 0 success, 1 verification failed (a mismatch), 2 malformed input or usage, 3-9
wallet refusals (see the epilog), 70 an internal error (a bug: the traceback is printed only
with ``--debug``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from node.chain.errors import ChainError, MalformedInputError, VerificationError
from node.cli import contracts, demo, ground, link, node, verify, wallet
from node.cli.argtypes import Parser
from node.cli.errors import UsageError
from sim_link.errors import LinkError
from wallet.errors import WalletError

EXIT_OK, EXIT_MISMATCH, EXIT_MALFORMED, EXIT_INTERNAL = 0, 1, 2, 70


def build_parser() -> argparse.ArgumentParser:
    """The ``orbital`` parser with every subcommand. Every parser in it is a
    :class:`~node.cli.argtypes.Parser`: no abbreviated options, no secrets in usage
    errors."""
    parser = Parser(
        prog="orbital",
        description="Decentralised orbital verification node: verify Ethereum data you do "
                    "not trust, sign from an HSM, emulate satellite links, attest AI results.",
        epilog="Exit codes: 0 ok, 1 verification failed, 2 malformed input, 3 policy "
               "denied, 4 bad PIN or password, 5 token locked, 6 key not found, 7 signing "
               "failed, 8 audit log damaged, 9 command rejected, 70 internal error (a bug; "
               "rerun with --debug for the traceback). "
               "Run 'orbital COMMAND --help' for details.")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback too")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify.register(commands)
    wallet.register(commands)
    ground.register(commands)
    link.register(commands)
    contracts.register(commands)
    demo.register(commands)
    node.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``orbital`` with ``argv``; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except VerificationError as exc:
        print(f"orbital: verification failed: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except MalformedInputError as exc:
        print(f"orbital: malformed input: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except ChainError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except LinkError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except WalletError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return exc.exit_code
    except UsageError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a path that is not what it must be (a file for a directory...)
        where = f": {exc.filename}" if exc.filename is not None else ""
        print(f"orbital: {exc.strerror or exc or type(exc).__name__}{where}", file=sys.stderr)
        return EXIT_MALFORMED
    except Exception as exc:  # a bug: one line (and the traceback with --debug), never 1
        if args.debug:
            traceback.print_exc()
        print(f"orbital: internal error: {type(exc).__name__}: {exc} (this is a bug; rerun "
              f"with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
