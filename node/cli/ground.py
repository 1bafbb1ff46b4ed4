"""``orbital ground``: operators build, co-sign and check command envelopes.

A command (EIP-712 ``Command``: kind, payload hash, nonce, notBefore, expiry, satellite
id) is signed by operator keys held in keystores on the ground; the satellite acts on it
only with m-of-n known operator signatures, inside its time window, with a nonce above
the last it accepted (``orbital wallet run-command``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from wallet.commands import (
    CommandVerifier,
    Envelope,
    NonceStore,
    add_signature,
    build_command,
    envelope_from_json,
    envelope_to_json,
    satellite_id,
)
from wallet.errors import MalformedRequestError
from wallet.keys import keystore
from wallet.keys.pin import read_pin


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``ground`` and its subcommands."""
    parser = commands.add_parser("ground", help="operator command envelopes (build, "
                                 "co-sign, verify)", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("command", help="build a command envelope and sign it",
                         description="Build a command for a satellite and sign it with an "
                         "operator keystore (password from --password-file or "
                         "$ORBITAL_KEYSTORE_PASSWORD or a prompt).")
    p.add_argument("--kind", default="sign_transaction", help="command kind")
    p.add_argument("--payload", required=True, metavar="FILE.json",
                   help="the payload (for sign_transaction: the transaction request)")
    p.add_argument("--nonce", required=True, type=int)
    p.add_argument("--satellite", required=True, help="satellite name")
    p.add_argument("--chain-id", required=True, type=int)
    p.add_argument("--not-before", type=int, help="UNIX time (default: now)")
    p.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    p.add_argument("--keystore", required=True, help="operator keystore file")
    p.add_argument("--password-file")
    p.add_argument("--out", required=True, metavar="ENVELOPE.json")
    p.set_defaults(run=_command)

    p = verbs.add_parser("cosign", help="add an operator's signature to an envelope")
    p.add_argument("file", metavar="ENVELOPE.json")
    p.add_argument("--keystore", required=True)
    p.add_argument("--password-file")
    p.set_defaults(run=_cosign)

    p = verbs.add_parser("verify-command", help="check an envelope as the satellite will")
    p.add_argument("file", metavar="ENVELOPE.json")
    p.add_argument("--operators", required=True, help="comma-separated operator addresses")
    p.add_argument("--threshold", required=True, type=int)
    p.add_argument("--satellite", required=True)
    p.add_argument("--chain-id", required=True, type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_verify)


def _operator(args: argparse.Namespace) -> keystore.KeystoreSigner:
    password = read_pin(args.password_file, True, env_var=keystore.PASSWORD_ENV,
                        what="keystore password")
    return keystore.KeystoreSigner(args.keystore, password)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MalformedRequestError(f"{path}: cannot read: {exc.strerror}") from None


def _command(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(_read(args.payload))
    except (ValueError, RecursionError) as exc:
        raise MalformedRequestError(f"{args.payload}: not JSON: {exc}") from None
    not_before = int(time.time()) if args.not_before is None else args.not_before
    command = build_command(args.kind, payload, args.nonce, not_before,
                            not_before + args.expires_in, satellite_id(args.satellite),
                            args.chain_id)
    signer = _operator(args)
    envelope = add_signature(Envelope(command, payload), signer)
    Path(args.out).write_text(envelope_to_json(envelope))
    print(f"wrote {args.out}: {args.kind} nonce {args.nonce} for {args.satellite}, signed by "
          f"0x{signer.address.hex()}")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    envelope = envelope_from_json(_read(args.file))
    signer = _operator(args)
    envelope = add_signature(envelope, signer)
    Path(args.file).write_text(envelope_to_json(envelope))
    print(f"added 0x{signer.address.hex()}: {len(envelope.signatures)} signature(s)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    operators = set()
    for text in args.operators.split(","):
        try:
            address = bytes.fromhex(text.strip().removeprefix("0x"))
        except ValueError:
            address = b""
        if len(address) != 20:
            raise MalformedRequestError(f"--operators: {text!r} is not an address")
        operators.add(address)
    envelope = envelope_from_json(_read(args.file))
    with NonceStore(":memory:") as nonces:
        verified = CommandVerifier(operators, args.threshold, satellite_id(args.satellite),
                                   args.chain_id, nonces).verify(envelope, time.time())
    report: dict[str, Any] = {"valid": True, "kind": verified.kind.value,
                              "nonce": verified.command.nonce,
                              "signers": ["0x" + s.hex() for s in verified.signers]}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"valid: {verified.kind.value} nonce {verified.command.nonce}, signed by "
              f"{len(verified.signers)} of {len(operators)} operators")
    return 0
