"""The work behind ``orbital ground`` (see :mod:`node.cli.ground` for the
command line); imported only when such a subcommand runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.argtypes import shown
from node.cli.ground_show import confirm, describe_envelope
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


def operator_signer(args: argparse.Namespace) -> keystore.KeystoreSigner:
    """The operator's keystore (``--keystore``), its password from ``--password-file``,
    ``$ORBITAL_KEYSTORE_PASSWORD`` or a prompt (never argv)."""
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
    signer = operator_signer(args)
    envelope = add_signature(Envelope(command, payload), signer)
    Path(args.out).write_text(envelope_to_json(envelope))
    print(f"wrote {args.out}: {args.kind} nonce {args.nonce} for {args.satellite}, signed by "
          f"0x{signer.address.hex()}")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    envelope = envelope_from_json(_read(args.file))
    lines = describe_envelope(envelope, satellite=args.satellite)
    if not confirm(lines, args.yes):
        print("orbital: not signed (declined)", file=sys.stderr)
        return 1
    signer = operator_signer(args)
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
            raise MalformedRequestError(f"--operators: {shown(text)} is not an address")
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
