"""Reads the verified cache cannot answer while no upstream is reachable (between passes).

A satellite is out of contact most of the time. A read whose proof the node already holds is
answered from its verified cache (with the head's age in every answer); a read it does not
hold cannot be answered at all -- never guessed, never forwarded. Such a read fails with an
error that names what is missing and the id under which it is queued here; at the next
contact (the next successful refresh) the node runs every queued read again, which fetches
and proves what it needs, and marks it ``ready``: the client retries the same request (or
watches ``orbital_pending``) and is answered from the cache.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MAX_PENDING = 1000


@dataclass
class PendingRead:
    id: int
    method: str
    params: list[Any]
    missing: str  # what the cache lacked, one line
    queued_at: float
    state: str = "queued"  # queued | ready | failed
    last_error: str | None = None
    attempts: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "params": self.params,
                "missing": self.missing, "queuedAt": self.queued_at, "state": self.state,
                "lastError": self.last_error, "attempts": self.attempts}


class PendingReads:
    """The queue of reads waiting for the next contact (bounded: the oldest go first)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 limit: int = MAX_PENDING) -> None:
        self.clock = clock
        self.limit = limit
        self._ids = itertools.count(1)
        self._reads: OrderedDict[int, PendingRead] = OrderedDict()

    def queue(self, method: str, params: list[Any], missing: str) -> PendingRead:
        """Queue a read (the same method and params already queued are not repeated)."""
        for read in self._reads.values():
            if read.method == method and read.params == params and read.state == "queued":
                return read
        read = PendingRead(next(self._ids), method, list(params), missing, self.clock())
        self._reads[read.id] = read
        while len(self._reads) > self.limit:
            self._reads.popitem(last=False)
        return read

    def listing(self) -> list[dict[str, Any]]:
        return [read.as_json() for read in self._reads.values()]

    async def retry(self, run: Callable[[str, list[Any]], Awaitable[Any]]) -> int:
        """Run every queued read again (at a contact); returns how many became ready."""
        ready = 0
        for read in [r for r in self._reads.values() if r.state == "queued"]:
            read.attempts += 1
            try:
                await run(read.method, read.params)
            except Exception as exc:  # still unanswerable: it stays queued, says why
                read.last_error = f"{type(exc).__name__}: {exc}"
                continue
            read.state, read.last_error = "ready", None
            ready += 1
        return ready
