"""What the verified node asks of an untrusted upstream, as one small interface.

Everything the node serves is first fetched from an *upstream* -- an Ethereum JSON-RPC endpoint
it does not trust (over the emulated link, on board) -- and verified before use. The node's
parts (head trust, header sync, state proofs, the local EVM, blocks and logs) talk to the
upstream only through :class:`Upstream`, so which endpoint answered, retries, batching and
penalties live in one place (:mod:`node.rpc.upstream`), and a part that catches a lie says so
with :meth:`Upstream.penalize` naming the :class:`Answer` that lied.

:class:`DirectUpstream` is the plainest implementation (one URL, no retries): for tests of the
other parts and as the reference of the interface.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from node.chain.errors import ChainError


class UpstreamError(ChainError):
    """No upstream could answer (transport failure, timeout, every upstream excluded), or an
    upstream answered a call with a JSON-RPC error where a result was needed."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        self.code = code
        self.data = data
        super().__init__(message)


@dataclass(frozen=True)
class Answer:
    """One JSON-RPC answer and who gave it. Exactly one of ``result`` / ``error`` matters:
    ``error`` is the JSON-RPC error object when the upstream answered with one."""

    result: Any
    upstream: str  # the name of the upstream that answered (for penalties and logs)
    error: dict[str, Any] | None = None

    def value(self, method: str) -> Any:
        """``result``, or :class:`UpstreamError` when the answer is an error."""
        if self.error is not None:
            raise UpstreamError(
                f"{method}: upstream {self.upstream} answered JSON-RPC error "
                f"{self.error.get('code')}: {self.error.get('message')}",
                code=self.error.get("code"), data=self.error.get("data"))
        return self.result


class Upstream(Protocol):
    """An untrusted JSON-RPC source (one endpoint or a pool of them)."""

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        """One call. Raises :class:`UpstreamError` when no upstream answers at all."""
        ...

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        """Several calls, answered in order (by one upstream: a batch is not split)."""
        ...

    def penalize(self, answer: Answer, what: str) -> None:
        """The upstream that gave ``answer`` was caught lying about ``what``."""
        ...

    def reachable(self) -> bool:
        """False only when a call is known to fail now without trying (between the passes
        of a link plan: :class:`node.contact.PlannedUpstream`); True otherwise."""
        ...

    def state(self) -> list[dict[str, Any]]:
        """Each upstream's health as JSON-able dicts (``orbital_status``); may be empty."""
        ...


class AlwaysReachable:
    """:meth:`Upstream.reachable` and :meth:`Upstream.state` for an upstream with no link
    plan and no health of its own to report (wrappers, test doubles)."""

    def reachable(self) -> bool:
        return True

    def state(self) -> list[dict[str, Any]]:
        return []


class DirectUpstream(AlwaysReachable):
    """One JSON-RPC URL over aiohttp: no retries, no pool; penalties are only counted."""

    def __init__(self, url: str, name: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url
        self.name = name or url
        self.lies: list[str] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> DirectUpstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        if not calls:
            return []
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)]
        try:
            async with self._session.post(self.url, json=body) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"upstream {self.name}: {type(exc).__name__}: {exc}") from None
        try:
            replies = json.loads(raw)
        except ValueError:
            raise UpstreamError(f"upstream {self.name}: answer is not JSON") from None
        if not isinstance(replies, list):
            raise UpstreamError(f"upstream {self.name}: a batch answered with "
                                f"{type(replies).__name__}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out = []
        for call_id, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(call_id)
            if reply is None:
                raise UpstreamError(f"upstream {self.name}: no answer to {method}")
            error = reply.get("error")
            out.append(Answer(reply.get("result"), self.name,
                              error if isinstance(error, dict) else None))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        self.lies.append(what)
