"""The node's side of ``ground`` head trust: heads signed m-of-n by operators
(EIP-712 ``Head``, :mod:`wallet.heads`) become anchors, and operators read the heads they
sign from a node they run.

* :func:`anchor_from_signed_head` -- a satellite's step: check a signed head against its
  operators, threshold, chain and clock (:func:`wallet.heads.check_signed_head`) and make it
  an :class:`~node.chain.anchor.Anchor` of source ``ground`` whose detail names the operators
  who signed. A head that fails raises :class:`wallet.heads.HeadRejectedError`.
* :func:`check_head_header` -- the anchored header, once fetched from the untrusted
  upstream, must be the signed block: number, hash and the timestamp freshness was measured
  from (the hash commits to the timestamp, so a mismatch means the operators signed a wrong
  timestamp).
* :func:`read_head` / :func:`confirm_head` -- an operator's step (``orbital ground head``):
  read a block from the operator's own node, recompute its header hash (Yellow Paper §4.3,
  :func:`node.chain.header.verify_header`) and make the ``Head``; a co-signing operator
  confirms that their own node has that very block at that height on that chain before
  signing, so each signature is an independent observation, not a copy of the first.

The signed data and its checks live in :mod:`wallet.heads` (the wallet imports nothing from
the node); this module only adds the chain and I/O around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils import to_checksum_address

from node.chain.anchor import Anchor, AnchorSource
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import Header, verify_header
from node.chain.rpcjson import parse_quantity
from node.rpc.upstream_api import Upstream, UpstreamError
from wallet.errors import MalformedRequestError
from wallet.heads import (
    DEFAULT_MAX_SKEW,
    Head,
    SignedHead,
    VerifiedHead,
    check_signed_head,
)

BLOCK_TAGS = ("latest", "safe", "finalized")
"""Block tags an operator may sign besides a number (execution-apis ``BlockTag``; on a
public network sign ``finalized``: a ``latest`` block can still be reorged away)."""


def anchor_from_verified_head(verified: VerifiedHead) -> Anchor:
    """The anchor of a head :func:`wallet.heads.check_signed_head` accepted: source
    ``ground``, detail ``m-of-n operators: 0xAb..,0xCd..`` (the operators who signed)."""
    head = verified.head
    names = ",".join(to_checksum_address(a) for a in verified.signers)
    detail = f"{len(verified.signers)}-of-{verified.operators} operators: {names}"
    return Anchor(head.number, head.hash, AnchorSource.GROUND, detail)


def anchor_from_signed_head(signed: SignedHead, operators: Iterable[bytes], threshold: int,
                            chain_id: int, *, now: float, max_age: float,
                            max_skew: float = DEFAULT_MAX_SKEW) -> Anchor:
    """``signed`` checked (:func:`wallet.heads.check_signed_head`: signatures, at least
    ``threshold`` of ``operators``, chain ``chain_id``, fresh at ``now``) and made an
    anchor. Raises :class:`wallet.heads.HeadRejectedError` naming what failed."""
    verified = check_signed_head(signed, operators, threshold, chain_id, now=now,
                                 max_age=max_age, max_skew=max_skew)
    return anchor_from_verified_head(verified)


def check_head_header(head: Head, header: Header) -> None:
    """Raise :class:`VerificationError` unless ``header`` is the block ``head`` names
    (hash, number and timestamp)."""
    if header.hash != head.hash:
        raise VerificationError("head.hash", head.hash, header.hash,
                                reason=f"header 0x{header.hash.hex()} is not the signed "
                                       f"{head.describe()}")
    if header.number != head.number:
        raise VerificationError("head.number", head.number, header.number)
    if header.timestamp != head.timestamp:
        raise VerificationError("head.timestamp", head.timestamp, header.timestamp)


def _block_arg(block: str | int) -> str:
    if isinstance(block, int) and not isinstance(block, bool):
        if not 0 <= block < 2**64:
            raise MalformedInputError(f"block number {block} is not a uint64")
        return hex(block)
    if block in BLOCK_TAGS:
        return str(block)
    raise MalformedInputError(f"block: expected a number or one of {', '.join(BLOCK_TAGS)}, "
                              f"got {block!r:.80}")


async def _chain_and_block(upstream: Upstream, block: str | int
                           ) -> tuple[int, Mapping[str, Any]]:
    arg = _block_arg(block)
    chain, found = await upstream.batch([("eth_chainId", []),
                                         ("eth_getBlockByNumber", [arg, False])])
    chain_id = parse_quantity(chain.value("eth_chainId"), "eth_chainId", 256)
    result = found.value("eth_getBlockByNumber")
    if result is None:
        raise UpstreamError(f"eth_getBlockByNumber: upstream {found.upstream} has no block "
                            f"{block}")
    return chain_id, result


async def read_head(upstream: Upstream, block: str | int = "latest") -> tuple[Head, Header]:
    """The ``Head`` of ``block`` (a number or a tag of :data:`BLOCK_TAGS`) on the operator's
    node ``upstream``, from a header whose hash recomputes, and that header."""
    chain_id, result = await _chain_and_block(upstream, block)
    header = verify_header(result, f"eth_getBlockByNumber({block})")
    if isinstance(block, int) and header.number != block:
        raise VerificationError("number", header.number, block,
                                reason=f"asked for block {block}, the node answered block "
                                       f"{header.number}")
    try:
        head = Head(chain_id, header.number, header.hash, header.timestamp)
    except MalformedRequestError as exc:  # the node claims chain id 0
        raise MalformedInputError(str(exc), where="eth_chainId") from None
    return head, header


async def confirm_head(upstream: Upstream, head: Head) -> Header:
    """Check that the operator's node ``upstream`` is on ``head``'s chain and has ``head``'s
    block at its height (canonical there, header hash recomputed); return that header.
    Raises :class:`VerificationError` naming what differs."""
    chain_id, result = await _chain_and_block(upstream, head.number)
    if chain_id != head.chain_id:
        raise VerificationError("head.chainId", head.chain_id, chain_id,
                                reason=f"the head is of chain {head.chain_id}, this node "
                                       f"serves chain {chain_id}")
    header = verify_header(result, f"eth_getBlockByNumber({head.number})")
    if header.hash != head.hash:
        raise VerificationError("head.hash", head.hash, header.hash,
                                reason=f"this node's block {header.number} is "
                                       f"0x{header.hash.hex()}, not the signed "
                                       f"0x{head.hash.hex()} (another branch, or a forged "
                                       "head)")
    check_head_header(head, header)
    return header
