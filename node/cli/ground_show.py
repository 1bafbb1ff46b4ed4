"""What an operator is about to sign, in words, and the question before signing.

``orbital ground cosign`` prints the envelope decoded -- the command (kind, nonce, chain,
satellite, validity window, who signed already) and its payload (for ``sign_transaction``
the transaction: destination, value in ether, fees at most, calldata selector) -- then asks
``sign? [y/N]`` on the terminal. ``--yes`` skips the question; without a terminal and
without ``--yes`` nothing is signed. Everything printed comes from checked values or from
ASCII-only canonical JSON, so a hostile file cannot put terminal escape sequences on the
operator's screen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from eth_utils import to_checksum_address

from node.cli.errors import UsageError
from wallet.commands import Envelope, canonical_json, payload_hash, satellite_id
from wallet.errors import MalformedRequestError
from wallet.policy import format_wei
from wallet.transactions import request_from_json

PAYLOAD_SHOWN = 2000
"""Characters of a payload other than a transaction shown before eliding the rest."""
_TX_TYPES = {0: "legacy", 1: "EIP-2930", 2: "EIP-1559", 4: "EIP-7702"}


def _when(timestamp: int, now: float) -> str:
    try:
        text = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        text = f"unix {timestamp}"
    delta = int(timestamp - now)
    ago = f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"
    return f"{text} ({ago})"


def _span(seconds: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def describe_transaction(payload: Mapping[str, Any]) -> list[str]:
    """The transaction request ``payload`` in words (raises MalformedRequestError if it is
    not a valid request)."""
    tx = request_from_json(payload)
    lines = [f"transaction (type {tx.tx_type}, {_TX_TYPES.get(tx.tx_type, '?')}):",
             "  to         " + ("(contract creation)" if tx.to is None
                                else to_checksum_address(tx.to)),
             f"  value      {format_wei(tx.value)}",
             f"  chain id   {tx.chain_id if tx.chain_id is not None else '(none: replayable)'}",
             f"  nonce      {tx.nonce}",
             f"  gas limit  {tx.gas}"]
    if tx.max_fee_per_gas is not None:
        lines.append(f"  fee        at most {format_wei(tx.max_fee_per_gas)} per gas (priority "
                     f"{format_wei(tx.max_priority_fee_per_gas or 0)})")
    else:
        lines.append(f"  gas price  {format_wei(tx.gas_price or 0)}")
    lines.append(f"  fees       at most {format_wei(tx.max_fee)} (gas limit x max fee)")
    lines.append(f"  total      at most {format_wei(tx.value + tx.max_fee)}")
    if tx.data:
        lines.append(f"  data       {len(tx.data)} bytes, selector 0x{tx.data[:4].hex()}")
    else:
        lines.append("  data       (none)")
    if tx.access_list:
        lines.append(f"  access     {len(tx.access_list)} address(es) in the access list")
    for auth in tx.authorizations:
        lines.append(f"  delegates  the signing account's code to "
                     f"{to_checksum_address(auth.address)} (chain {auth.chain_id}, "
                     f"nonce {auth.nonce})")
    return lines


def describe_envelope(envelope: Envelope, *, satellite: str | None = None,
                      now: float | None = None) -> list[str]:
    """The envelope in words: the command, who signed it, its payload. ``satellite``
    (a name) is checked against the command's satellite id; a payload that does not match
    its hash is refused here, before anything is shown as if it were signed."""
    now = time.time() if now is None else now
    command = envelope.command
    if payload_hash(envelope.payload) != command.payload_hash:
        raise MalformedRequestError("the envelope's payload does not match its payloadHash: "
                                    "refusing to show or sign it")
    sat = "0x" + command.satellite_id.hex()
    if satellite is not None:
        if satellite_id(satellite) != command.satellite_id:
            raise MalformedRequestError(
                f"the command is not for satellite {satellite!r}: its satelliteId is {sat}")
        sat = f"{satellite} ({sat})"
    else:
        sat += " (keccak256 of the satellite's name; --satellite NAME checks it)"
    signed = ", ".join(to_checksum_address(e.signer) for e in envelope.signatures) or "nobody"
    lines = [f"command    {command.kind}, nonce {command.nonce}",
             f"chain      {command.chain_id}",
             f"satellite  {sat}",
             f"valid from {_when(command.not_before, now)}",
             f"expires    {_when(command.expiry, now)}",
             f"signed by  {signed} (claimed; checked before signing)"]
    if command.kind == "sign_transaction":
        lines += describe_transaction(envelope.payload)
    else:
        text = canonical_json(envelope.payload).decode("ascii")
        if len(text) > PAYLOAD_SHOWN:
            text = text[:PAYLOAD_SHOWN] + f"... ({len(text) - PAYLOAD_SHOWN} more characters)"
        lines.append(f"payload    {text}")
    return lines


def confirm(lines: list[str], yes: bool, *, question: str = "sign this command?",
            stdin: TextIO | None = None, out: TextIO | None = None) -> bool:
    """Print ``lines``; unless ``yes``, ask ``question`` on the terminal. True to sign.
    Without a terminal (and without ``yes``) a :class:`UsageError` says to pass --yes."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    print("\n".join(lines), file=out, flush=True)
    if yes:
        return True
    if stdin is None or not stdin.isatty():
        raise UsageError("not signed: stdin is not a terminal, so nobody could confirm; read "
                         "what is printed above and pass --yes to sign it")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")
