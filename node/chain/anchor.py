"""Anchors: the blocks a verification node trusts, and where that trust came from.

Before the Merge a header carried its own proof of work; after it (EIP-3675) a header has
no seal at all, and anyone can build headers that hash-link *forward* from a genuine block
with any ``stateRoot`` they like. What a hash link does prove is ancestry *backward*: a
header's hash commits to its ``parentHash`` (Yellow Paper §4.3), so when a block is trusted,
its parent, grandparent and every earlier ancestor are fixed by it (keccak256 is collision
resistant). So trust enters only as an :class:`Anchor` -- a block (number, hash) vouched for
by one of:

* ``beacon`` -- the beacon light client proved it (sync-committee signatures over a beacon
  header whose execution payload is this block; altair ``light-client/sync-protocol.md``);
* ``ground`` -- m-of-n operators signed it (an EIP-712 ``Head``);
* ``quorum`` -- K of N independent upstreams agreed on its hash at its height;
* ``user`` -- the user gave it explicitly (a pinned checkpoint, ``--trusted``).

A header is *verified* only when it is an anchor or an ancestor of one, linked by
``parentHash`` walking backward from the anchor. Headers that link forward from an anchor
are "linked, not anchored": they may be kept (a newer anchor may reach them later) but are
never served as verified. :class:`~node.chain.header_store.HeaderStore` keeps anchors and
headers durably; :func:`link_backward` does the same walk over headers held in memory.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import Header

UINT64_MAX = 2**64 - 1


class AnchorSource(enum.StrEnum):
    """Where the trust in an anchor came from."""

    BEACON = "beacon"  # proven by the beacon light client
    GROUND = "ground"  # signed by m-of-n operators
    QUORUM = "quorum"  # K of N independent upstreams agreed
    USER = "user"  # given explicitly by the user


@dataclass(frozen=True)
class BlockId:
    """A block by number and hash (no claim of trust by itself)."""

    number: int
    hash: bytes


@dataclass(frozen=True)
class Anchor:
    """A trusted block and the source of that trust."""

    number: int
    """Block number (uint64)."""
    hash: bytes
    """The block's hash, keccak256(rlp(header)): what is trusted."""
    source: AnchorSource
    detail: str = ""
    """How the source vouched for it, for people (e.g. "finalized, beacon slot 123")."""
    state_root: bytes | None = None
    """The stateRoot the source vouched for too, when it did (the light client proves it):
    the anchor's header must carry it."""

    def __post_init__(self) -> None:
        if not 0 <= self.number <= UINT64_MAX:
            raise MalformedInputError(f"anchor block number {self.number} is not a uint64")
        if len(self.hash) != 32:
            raise MalformedInputError(f"anchor hash must be 32 bytes, got {len(self.hash)}")
        if self.state_root is not None and len(self.state_root) != 32:
            raise MalformedInputError("anchor stateRoot must be 32 bytes")
        object.__setattr__(self, "source", AnchorSource(self.source))

    @property
    def block(self) -> BlockId:
        return BlockId(self.number, self.hash)

    def describe(self) -> str:
        """One line for people: ``block 17 0xab.. (user: --trusted)``."""
        how = f"{self.source}: {self.detail}" if self.detail else str(self.source)
        return f"block {self.number} 0x{self.hash.hex()} ({how})"

    def check(self, header: Header) -> None:
        """Raise :class:`VerificationError` unless ``header`` is the anchored block."""
        if header.hash != self.hash:
            raise VerificationError("anchor.hash", header.hash, self.hash,
                                    reason=f"header 0x{header.hash.hex()} is not the anchored "
                                           f"{self.describe()}")
        if header.number != self.number:
            raise VerificationError("anchor.number", header.number, self.number,
                                    reason=f"the anchored hash is block {header.number}, "
                                           f"trusted as block {self.number}")
        if self.state_root is not None and header.state_root != self.state_root:
            raise VerificationError("anchor.stateRoot", header.state_root, self.state_root)


def parse_anchor(text: str, source: AnchorSource = AnchorSource.USER,
                 detail: str = "") -> Anchor:
    """``NUMBER:HASH`` (number decimal or 0x-hex, uint64; a 32-byte 0x-hash) as an anchor."""
    number_text, sep, hash_text = text.partition(":")
    try:
        if not sep:
            raise ValueError
        number = int(number_text, 0)
        raw = hash_text.removeprefix("0x").removeprefix("0X")
        if len(raw) != 64 or not hash_text.lower().startswith("0x"):
            raise ValueError
        block_hash = bytes.fromhex(raw)
    except ValueError:
        raise MalformedInputError(
            f"want NUMBER:HASH with a 32-byte 0x-hash, got {text!r}") from None
    if not 0 <= number <= UINT64_MAX:
        raise MalformedInputError(f"block number {number} in {text!r} is not a uint64")
    return Anchor(number, block_hash, source, detail)


def link_backward(anchors: Iterable[tuple[Anchor, Header]],
                  headers: Mapping[bytes, Header]) -> dict[bytes, Anchor]:
    """Walk backward from each anchor through ``headers`` (by hash) by ``parentHash``.

    Returns every header reached -- the anchors' own and their ancestors among ``headers``
    -- mapped to the anchor that reaches it (the first given, when several do). Each
    anchor's header is checked against the anchor first. Numbers must fall by one per
    link (YP §4.3.4); consensus rules between pairs are the caller's
    (:mod:`node.chain.header_rules`).
    """
    reached: dict[bytes, Anchor] = {}
    for anchor, header in anchors:
        anchor.check(header)
        while header.hash not in reached:
            reached[header.hash] = anchor
            parent = headers.get(header.parent_hash)
            if parent is None:
                break
            if parent.number != header.number - 1:
                raise VerificationError("number", parent.number, header.number - 1,
                                        reason=f"header {header.number} 0x{header.hash.hex()}"
                                               f" has parent numbered {parent.number}")
            header = parent
    return reached
