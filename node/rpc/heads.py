"""Head trust: where the node's anchors come from, one strategy per mode.

After the Merge nothing in a header proves it is the chain's head (EIP-3675): a node that
believed its upstream's ``latest`` would believe anything. Each strategy here produces
:class:`~node.chain.anchor.Anchor`\\ s from a source the node does trust; everything else is
linked backward from them (:mod:`node.rpc.sync`).

* ``checkpoint`` -- one fixed trusted block (pinned deployments and tests);
* ``quorum`` -- K of N independent upstreams agree on the block hash at one height;
* ``ground`` -- a head signed by m-of-n of the wallet's operators (EIP-712 ``Head``, made
  with ``orbital ground head``), see :mod:`node.rpc.ground_heads`;
* ``beacon`` -- the persistent beacon light client: its optimistic execution block is
  ``latest``, its finalized one ``finalized``/``safe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from node.chain.anchor import Anchor, AnchorSource
from node.chain.errors import ChainError
from node.rpc.sync import header_from_answer
from node.rpc.upstream_api import Upstream, UpstreamError
from wallet.errors import WalletError
from wallet.files import write_atomic

if TYPE_CHECKING:
    from node.chain.beacon.api import BeaconApiClient
    from node.chain.beacon.store import LightClient


log = logging.getLogger(__name__)
T = TypeVar("T")


class HeadTrustError(ChainError):
    """The trust strategy has no head to offer (no quorum, no valid signed head, ...)."""


@dataclass(frozen=True)
class TrustedHeads:
    """The anchors a strategy vouches for now."""

    latest: Anchor
    finalized: Anchor | None = None  # None: this mode knows no finality


class HeadTrust(Protocol):
    """A source of anchors."""

    mode: str

    async def heads(self) -> TrustedHeads:
        """The newest anchors; raises :class:`HeadTrustError` when there is none."""
        ...


@dataclass
class CheckpointTrust:
    """One fixed block, trusted by configuration; it is also final."""

    anchor: Anchor
    mode: str = "checkpoint"

    async def heads(self) -> TrustedHeads:
        return TrustedHeads(self.anchor, self.anchor)


@dataclass
class QuorumTrust:
    """K of N independent upstreams must report the same hash at one height.

    The height is the highest one that at least K upstreams have reached (the K-th highest
    ``latest``); each upstream is then asked for its block at that height, and a hash that
    K of them give is the anchor. Upstreams that answer another hash are not penalized: they
    may be behind on a reorg -- but a block that does not hash to what it claims is a lie."""

    upstreams: Sequence[tuple[str, Upstream]]  # (name, upstream), independent sources
    k: int
    mode: str = "quorum"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= len(self.upstreams):
            raise ValueError(f"quorum needs 1 <= k <= {len(self.upstreams)} upstreams, "
                             f"got k={self.k}")

    async def heads(self) -> TrustedHeads:
        async def height(upstream: Upstream) -> int | None:
            try:
                answer = await upstream.call("eth_blockNumber", [])
                return int(answer.value("eth_blockNumber"), 16)
            except (UpstreamError, ValueError, TypeError):
                return None

        heights_of = await _each(height, [u for _, u in self.upstreams])
        reported = [(h, name, upstream) for h, (name, upstream) in
                    zip(heights_of, self.upstreams, strict=True) if h is not None]
        if len(reported) < self.k:
            raise HeadTrustError(f"quorum: only {len(reported)} of {len(self.upstreams)} "
                                 f"upstreams answered, {self.k} needed")
        # Highest height first: an upstream that claims a head no one else has (behind, or
        # inflating) costs a round, never the answer.
        heights = sorted({height for height, _, _ in reported}, reverse=True)
        seen = ""
        for height in heights:
            voters = [(n, u) for h, n, u in reported if h >= height]
            if len(voters) < self.k:
                continue
            votes = await self._votes(height, voters)
            if votes and max(len(v) for v in votes.values()) >= self.k:
                block_hash, names = max(votes.items(), key=lambda item: len(item[1]))
                detail = f"{len(names)} of {len(self.upstreams)} upstreams: {', '.join(names)}"
                return TrustedHeads(Anchor(height, block_hash, AnchorSource.QUORUM, detail))
            seen = ", ".join(f"0x{h.hex()[:12]}..: {len(n)}" for h, n in votes.items())
        raise HeadTrustError(f"quorum: no {self.k} upstreams agree on a block at heights "
                             f"{heights[0]}..{heights[-1]} ({seen or 'no answers'})")

    async def _votes(self, height: int, voters: Sequence[tuple[str, Upstream]]
                     ) -> dict[bytes, list[str]]:
        """Block hash -> the upstreams that answered it at ``height`` (a block that does not
        hash, or is another height, is a lie: penalized, no vote)."""
        async def vote(upstream: Upstream) -> bytes | None:
            try:
                answer = await upstream.call("eth_getBlockByNumber", [hex(height), False])
                header = header_from_answer(answer, upstream, "eth_getBlockByNumber")
            except (UpstreamError, ChainError):
                return None
            if header.number != height:
                upstream.penalize(answer, f"eth_getBlockByNumber({height}) answered block "
                                          f"{header.number}")
                return None
            return header.hash

        votes: dict[bytes, list[str]] = {}
        hashes = await _each(vote, [u for _, u in voters])
        for (name, _), block_hash in zip(voters, hashes, strict=True):
            if block_hash is not None:
                votes.setdefault(block_hash, []).append(name)
        return votes


async def _each(ask: Callable[[Upstream], Awaitable[T]], upstreams: Sequence[Upstream]
                ) -> list[T]:
    """``ask`` every upstream at once (independent sources: one round trip, not N)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(ask(upstream)) for upstream in upstreams]
    return [task.result() for task in tasks]


@dataclass
class BeaconTrust:
    """The persistent beacon light client, caught up from a Beacon API server it does not
    trust (:func:`node.chain.beacon.follow.catch_up`): its optimistic execution block is
    ``latest``, its finalized one ``finalized``."""

    client: LightClient
    api: BeaconApiClient
    mode: str = "beacon"

    async def heads(self) -> TrustedHeads:
        from node.chain.beacon.follow import catch_up  # BLS and SSZ: only in beacon mode

        done = await catch_up(self.client, self.api)
        if done.optimistic is None:
            raise HeadTrustError("beacon: the light client has no execution payload yet "
                                 "(pre-Capella headers)")
        finalized = None if done.finalized is None else done.finalized.anchor("finalized")
        return TrustedHeads(done.optimistic.anchor("optimistic"), finalized)


@dataclass
class GroundTrust:
    """Heads signed by ``threshold`` of ``operators`` (EIP-712 ``Head``, :mod:`wallet.heads`),
    uplinked as files into ``directory`` (or through ``orbital_submitHead``). The newest head
    that passes every check (signatures, threshold, chain, freshness) is ``latest``; refused
    files are logged and left for the operators to see. Without a fresh head the strategy
    offers nothing, and the node keeps serving what it already anchored (saying how old)."""

    directory: Path
    operators: tuple[bytes, ...]
    threshold: int
    chain_id: int
    max_age: float = 3600.0
    clock: Callable[[], float] = time.time
    mode: str = "ground"

    async def heads(self) -> TrustedHeads:
        best: Anchor | None = None
        refused: list[str] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                anchor = self._check(path.read_bytes())
            except (OSError, WalletError) as exc:
                refused.append(f"{path.name}: {exc}")
                continue
            if best is None or anchor.number > best.number:
                best = anchor
        for line in refused:
            log.warning("ground head refused: %s", line)
        if best is None:
            raise HeadTrustError(f"ground: no fresh head signed by {self.threshold} of the "
                                 f"{len(self.operators)} operators in {self.directory}"
                                 + (f" ({refused[-1]})" if refused else ""))
        return TrustedHeads(best)

    def submit(self, text: str) -> Anchor:
        """Check a signed head (JSON) and keep it in ``directory`` (atomically, durable before
        this returns) if it passes."""
        anchor = self._check(text.encode())
        write_atomic(self.directory / f"head-{anchor.number}-{anchor.hash.hex()[:16]}.json",
                     text.encode())
        return anchor

    def _check(self, data: bytes) -> Anchor:
        from node.rpc.ground_heads import anchor_from_signed_head
        from wallet.heads import signed_head_from_json

        return anchor_from_signed_head(signed_head_from_json(data), self.operators,
                                       self.threshold, self.chain_id, now=self.clock(),
                                       max_age=self.max_age)
