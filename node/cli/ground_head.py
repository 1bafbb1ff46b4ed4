"""The work behind ``orbital ground head`` and ``orbital ground verify-head`` (see
:mod:`node.cli.ground` for the command line); imported only when one of them runs.

An operator signs a head only after reading it from a node they run: the first operator
reads the block (``--block``), recomputes its header hash and signs the EIP-712 ``Head``
(:mod:`wallet.heads`); each co-signer's own node must have that very block at that height
on that chain before their signature is added (:func:`node.rpc.ground_heads.confirm_head`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from node.chain.header import Header
from node.cli.argtypes import shown
from node.cli.errors import UsageError
from node.cli.ground_run import operator_signer
from node.rpc.ground_heads import BLOCK_TAGS, anchor_from_verified_head, confirm_head, read_head
from node.rpc.upstream_api import DirectUpstream
from wallet.errors import MalformedRequestError
from wallet.files import write_atomic
from wallet.heads import (
    DEFAULT_MAX_AGE,
    MAX_FILE_BYTES,
    Head,
    SignedHead,
    add_signature,
    check_signed_head,
    sign_head,
    signed_head_from_json,
    signed_head_to_json,
)


def _read(path: str) -> SignedHead:
    try:
        with Path(path).open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MalformedRequestError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return signed_head_from_json(raw)
    except MalformedRequestError as exc:
        raise MalformedRequestError(f"{path}: {exc}") from None


def _write(path: str, signed: SignedHead) -> None:
    """Write ``path`` whole or not at all (a co-signer rewrites the file they were given)."""
    write_atomic(Path(path), signed_head_to_json(signed).encode())


def _block(text: str | None) -> str | int:
    if text is None or text in BLOCK_TAGS:
        return text or "latest"
    try:
        number = int(text, 0)
    except ValueError:
        number = -1
    if not 0 <= number < 2**64:
        raise UsageError(f"--block: expected {'|'.join(BLOCK_TAGS)} or a block number, got "
                         f"{text!r}")
    return number


async def _from_node(url: str, timeout: float, block: str | int,
                     head: Head | None) -> tuple[Head, Header]:
    """``block`` read from the node at ``url`` -- or, given ``head``, ``head`` confirmed
    there."""
    async with DirectUpstream(url, timeout=timeout) as upstream:
        if head is None:
            return await read_head(upstream, block)
        return head, await confirm_head(upstream, head)


def _head(args: argparse.Namespace) -> int:
    if not args.rpc.startswith(("http://", "https://")):
        raise UsageError(f"--rpc {args.rpc!r}: expected an http:// or https:// URL")
    if args.cosign is not None and args.block is not None:
        raise UsageError("--block makes a new head; --cosign signs the head in its file: "
                         "choose one")
    if args.cosign is None:
        head, _ = asyncio.run(_from_node(args.rpc, args.timeout, _block(args.block), None))
        signer = operator_signer(args)
        signed = sign_head(head, signer)
        _write(args.out, signed)
        print(f"wrote {args.out}: {head.describe()}, signed by "
              f"{to_checksum_address(signer.address)}")
        return 0
    signed = _read(args.cosign)
    asyncio.run(_from_node(args.rpc, args.timeout, "latest", signed.head))
    signer = operator_signer(args)
    signed = add_signature(signed, signer)
    _write(args.cosign, signed)
    print(f"added {to_checksum_address(signer.address)} to {args.cosign}: "
          f"{len(signed.signatures)} signature(s) on {signed.head.describe()}")
    return 0


def _operators(text: str) -> set[bytes]:
    operators = set()
    for item in text.split(","):
        try:
            address = bytes.fromhex(item.strip().removeprefix("0x"))
        except ValueError:
            address = b""
        if len(address) != 20:
            raise MalformedRequestError(f"--operators: {shown(item)} is not an address")
        operators.add(address)
    return operators


def _verify_head(args: argparse.Namespace) -> int:
    operators = _operators(args.operators)
    signed = _read(args.file)
    now = time.time()
    max_age = DEFAULT_MAX_AGE if args.max_age is None else args.max_age
    verified = check_signed_head(signed, operators, args.threshold, args.chain_id, now=now,
                                 max_age=max_age)
    head = verified.head
    signers = [to_checksum_address(a) for a in verified.signers]
    age = int(now) - head.timestamp
    if args.json:
        report: dict[str, Any] = {
            "valid": True, "chainId": head.chain_id, "number": head.number,
            "hash": "0x" + head.hash.hex(), "timestamp": head.timestamp, "age": age,
            "signers": signers, "threshold": args.threshold, "operators": len(operators),
            "anchor": anchor_from_verified_head(verified).describe()}
        print(json.dumps(report))
    else:
        print(f"valid: {head.describe()} (age {age} s), signed by {len(signers)} of "
              f"{len(operators)} operators ({args.threshold} required): {','.join(signers)}")
    return 0
