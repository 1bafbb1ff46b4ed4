"""Header sync (node/rpc/sync.py) against an upstream that serves a chain of hive headers:
what it asks for, not only what it ends with -- after a short outage only the gap is fetched,
and a reorg below the old head still links whole."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.chain.anchor import Anchor, AnchorSource
from node.chain.header import Header, header_to_rpc
from node.chain.header_store import HeaderStore
from node.rpc.sync import sync_anchor
from node.rpc.upstream_api import AlwaysReachable, Answer

from vectors import hive_chain_config, hive_header


class ChainUpstream(AlwaysReachable):
    """Serves ``chain`` (headers by number and by hash) and records every request."""

    def __init__(self, chain: Sequence[Header]) -> None:
        self.by_number = {h.number: h for h in chain}
        self.by_hash = {h.hash: h for h in chain}
        self.requests: list[list[tuple[str, Any]]] = []

    def _answer(self, method: str, params: Sequence[Any]) -> Answer:
        key = params[0]
        header = (self.by_hash.get(bytes.fromhex(key[2:])) if method == "eth_getBlockByHash"
                  else self.by_number.get(int(key, 16)))
        return Answer(None if header is None else header_to_rpc(header), "chain")

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        self.requests.append([(method, params[0])])
        return self._answer(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        self.requests.append([(m, p[0]) for m, p in calls])
        return [self._answer(m, p) for m, p in calls]

    def penalize(self, answer: Answer, what: str) -> None:
        raise AssertionError(f"an honest chain was penalized for {what}")


def anchor(header: Header) -> Anchor:
    return Anchor(header.number, header.hash, AnchorSource.USER, "test")


def synced_store(path: Path, top: int, bottom: int) -> HeaderStore:
    store = HeaderStore(path, hive_chain_config())
    store.add_anchor(anchor(hive_header(top)), hive_header(top))
    store.add_many(hive_header(n) for n in range(top - 1, bottom - 1, -1))
    return store


def test_after_ten_missed_blocks_only_the_gap_is_asked_for(tmp_path: Path) -> None:
    upstream = ChainUpstream([hive_header(n) for n in range(0, 55)])
    with synced_store(tmp_path / "h.sqlite", 40, 30) as store:
        done = asyncio.run(sync_anchor(anchor(hive_header(50)), upstream, store, floor=30))
        assert store.head == hive_header(50)
        assert [store.canonical_hash(n) for n in range(30, 51)] == \
            [hive_header(n).hash for n in range(30, 51)]
    header_request, gap = upstream.requests
    assert header_request == [("eth_getBlockByHash", "0x" + hive_header(50).hash.hex())]
    assert [int(n, 16) for _, n in gap] == list(range(49, 40, -1))  # 49..41, nothing more
    assert (done.linked, done.requests) == (9, 2)


def test_a_reorg_below_the_old_head_links_the_new_branch_down_to_the_fork(tmp_path: Path
                                                                          ) -> None:
    fork: list[Header] = []
    parent = hive_header(42)
    for number in range(43, 51):  # the upstream's chain leaves ours after 42
        parent = dataclasses.replace(hive_header(number), parent_hash=parent.hash,
                                     extra_data=b"fork")
        fork.append(parent)
    upstream = ChainUpstream([hive_header(n) for n in range(0, 43)] + fork)
    with synced_store(tmp_path / "h.sqlite", 45, 30) as store:
        done = asyncio.run(sync_anchor(anchor(fork[-1]), upstream, store, floor=30))
        assert [store.canonical_hash(n) for n in range(43, 51)] == [h.hash for h in fork]
        assert store.canonical_hash(42) == hive_header(42).hash
    assert done.reorg_depth == 3  # 43..45 replaced
    first_batch = [int(n, 16) for _, n in upstream.requests[1]]
    assert first_batch == [49, 48, 47, 46]  # the gap down to our old head first
