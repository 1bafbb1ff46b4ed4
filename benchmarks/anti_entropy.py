"""What gossip anti-entropy costs (``node/gossip/catchup.py``): one round, with nothing new,
beside the same sync without a per-peer cursor.

Run from the repository root::

    python -m benchmarks.anti_entropy            # 5,000 stored attestations
    python -m benchmarks.anti_entropy --quick    # 300 (smoke test)
    python -m benchmarks.anti_entropy --json     # results as JSON instead of the table

Two real py-libp2p hosts in this process (``GossipNode``, SQLite stores in a temporary
directory). A publishes ``stored`` valid attestations and B delivers them all. Then B syncs
from A, as an anti-entropy round does every ``anti_entropy_interval`` seconds:

* **ours**: B's cursor for A is where the last sync left it, so the round asks for what A
  stored after it and gets an empty page: one request, one answer;
* **baseline**: the same sync with B's cursor for A put back to 0 before each run (a sync
  without per-peer cursors, as a naive anti-entropy would do): every stored message is
  fetched, validated (already stored: no signature check) and offered to the store again.

Both are timed in turns (best of ``repeats``); frames fetched per round are counted by the
node (``sync_fetched``). No target: the figure says what a round costs per connected peer.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.common import (
    Row,
    Samples,
    benchmark_parser,
    measured,
    pin_to_one_core,
    print_rows,
)
from benchmarks.gossip import CHAIN_ID, CONTRACT, MODEL, make_attestations, make_signers
from node.attest import StaticRegistry
from node.gossip import GossipConfig, GossipNode
from node.gossip.validator import AttestationValidator


@dataclass(frozen=True)
class Sizes:
    stored: int = 5_000
    repeats: int = 7


QUICK = Sizes(stored=300, repeats=3)


async def measure(sizes: Sizes, directory: Path) -> tuple[Samples, Samples, dict[str, int]]:
    signers = make_signers(directory)
    validator = AttestationValidator(StaticRegistry([s.address for s in signers]), [MODEL],
                                     CHAIN_ID, CONTRACT)
    # no background rounds of its own while measured; fast publishing to fill A quickly
    config = GossipConfig(anti_entropy_interval=0, publish_rate=1000.0, publish_burst=16)
    nodes: list[GossipNode] = []
    try:
        for name in ("A", "B"):
            nodes.append(await GossipNode.start(
                key_seed=f"anti-entropy bench {name}", validator=validator,
                config=replace(config, store_path=str(directory / f"{name}.sqlite"))))
        a, b = nodes
        await b.connect(f"{a.listen_addr}/p2p/{a.peer_id}")
        for data in make_attestations(signers, sizes.stored, first_epoch=1):
            await a.publish(data)
        async with asyncio.timeout(120):
            while b.delivered_count < sizes.stored:
                await asyncio.sleep(0.05)
        await b.sync_from(a.peer_id)  # B's cursor for A at A's newest message
        store_id, newest = b.store.cursor(a.peer_id)

        async def round_trip(rewind: bool) -> tuple[float, int]:
            if rewind:
                b.store.set_cursor(a.peer_id, store_id, 0)
            fetched = b.sync_fetched
            loop = asyncio.get_running_loop()
            began = loop.time()
            new = await b.sync_from(a.peer_id)
            assert new == 0, f"a sync brought {new} new messages"
            return loop.time() - began, b.sync_fetched - fetched

        ours: list[float] = []
        naive: list[float] = []
        frames = {"ours": 0, "baseline": 0}
        for _ in range(sizes.repeats):  # in turns, so load on the machine hits both
            seconds, frames["ours"] = await round_trip(rewind=False)
            ours.append(seconds)
            seconds, frames["baseline"] = await round_trip(rewind=True)
            naive.append(seconds)
        assert b.store.cursor(a.peer_id) == (store_id, newest)
        return Samples(tuple(ours)), Samples(tuple(naive)), frames
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


def run(sizes: Sizes) -> tuple[list[Row], list[str]]:
    with tempfile.TemporaryDirectory(prefix="orbital-anti-entropy-") as tmp:
        ours, naive, frames = asyncio.run(measure(sizes, Path(tmp)))
    rows = [measured(f"anti-entropy round, nothing new ({sizes.stored:,} stored)",
                     "ms/round", 1, ours, naive)]
    notes = [f"frames fetched per round: ours {frames['ours']}, baseline "
             f"{frames['baseline']:,} (best of {sizes.repeats}, in turns)",
             "baseline: the same sync with B's per-peer cursor reset to 0 before each run "
             "(anti-entropy without cursors re-fetches everything)"]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    args = benchmark_parser("benchmarks.anti_entropy", __doc__).parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    cpu = pin_to_one_core()
    rows, notes = run(sizes)
    print_rows(args, rows, notes, sizes, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
