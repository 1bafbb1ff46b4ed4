"""Who may attest, read from SatelliteRegistry on chain, as a snapshot that never blocks.

:class:`ChainRegistry` is a :class:`~node.attest.attestation.RegistryView` read by the gossip
validator on the libp2p (trio) thread and by the node on its asyncio loop. Neither may block
on web3 nor share a mutable cache unlocked, so the view is an immutable snapshot -- the block
number and the frozen set of ``activeSigners()`` at that block -- held in one attribute:
:meth:`ChainRegistry.is_active` reads it without a lock (replacing an attribute is atomic), and
one refresher replaces it whole: :meth:`ChainRegistry.run` on asyncio (the web3 call in a
worker thread) or :meth:`ChainRegistry.refresh` from synchronous code.

Until the first refresh, and when the snapshot is older than ``max_age`` seconds (the chain
has been unreachable that long), :meth:`~ChainRegistry.is_active` raises
:class:`RegistryUnavailable`: the gossip validator then cannot decide now
(:attr:`node.gossip.validator.Verdict.IGNORE`), which is not a rejection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class RegistryUnavailable(Exception):
    """The registry view cannot answer now (never read, or its snapshot is too old)."""


@dataclass(frozen=True)
class RegistryState:
    """SatelliteRegistry's active signers at ``block``, read at ``read_at`` (monotonic s)."""

    block: int
    active: frozenset[bytes]
    read_at: float


class ChainRegistry:
    """SatelliteRegistry's active signers as a refreshed snapshot (see the module docstring).

    ``registry`` is a web3 contract bound to the registry (``contracts.deploy.contract(w3,
    REGISTRY, address)``). ``block`` chooses the block to read at (default: ``latest``).
    """

    def __init__(self, registry: Any, block: Callable[[], int] | None = None, *,
                 max_age: float | None = None) -> None:
        self.registry = registry
        self.max_age = max_age
        self._block = block or (lambda: int(registry.w3.eth.block_number))
        self._snapshot: RegistryState | None = None
        self.calls = 0
        """How many activeSigners calls reached the chain (for tests and metrics)."""
        self.refresh_failures = 0

    @property
    def snapshot(self) -> RegistryState | None:
        return self._snapshot

    def is_active(self, address: bytes) -> bool:
        """Lock-free, never blocks; :class:`RegistryUnavailable` if there is no usable
        snapshot."""
        snap = self._snapshot
        if snap is None:
            raise RegistryUnavailable("the registry has not been read yet")
        if self.max_age is not None and time.monotonic() - snap.read_at > self.max_age:
            raise RegistryUnavailable(f"the registry snapshot (block {snap.block}) is older "
                                      f"than {self.max_age} s")
        return bytes(address) in snap.active

    def refresh(self) -> bool:
        """Read the registry at the current block (blocking: web3) unless the snapshot is of
        that block already; True if the active set changed."""
        block = self._block()
        old = self._snapshot
        now = time.monotonic()
        if old is not None and block <= old.block:
            self._snapshot = RegistryState(old.block, old.active, now)  # still current
            return False
        self.calls += 1
        signers = self.registry.functions.activeSigners().call(block_identifier=block)
        active = frozenset(bytes.fromhex(a[2:]) for a in signers)
        self._snapshot = RegistryState(block, active, now)
        return old is None or old.active != active

    async def run(self, interval: float = 2.0) -> None:
        """Refresh every ``interval`` seconds until cancelled (the web3 calls in a worker
        thread); a failed refresh keeps the last snapshot and is counted."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                self.refresh_failures += 1
                log.warning("registry refresh failed: %r", exc)
            await asyncio.sleep(interval)
