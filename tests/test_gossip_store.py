"""node/gossip/store.py: the durable, deduplicated, ordered message store behind gossip
delivery and catch-up (real SQLite files; a writer killed with SIGKILL loses nothing it
acknowledged)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.gossip.store import GossipStore

REPO = Path(__file__).resolve().parents[1]


def test_add_is_deduplicated_by_sha256_and_ordered(tmp_path: Path) -> None:
    with GossipStore(tmp_path / "g.sqlite") as store:
        assert store.add(b"one") and store.add(b"two")
        assert not store.add(b"one")
        assert store.contains(hashlib.sha256(b"two").digest())
        assert not store.contains(hashlib.sha256(b"three").digest())
        assert store.all() == [b"one", b"two"]
        assert len(store) == 2 and store.last_seq() == 2


def test_since_pages_in_sequence_order(tmp_path: Path) -> None:
    with GossipStore(tmp_path / "g.sqlite") as store:
        for i in range(10):
            store.add(f"m{i}".encode())
        first = store.since(0, 4)
        assert [seq for seq, _ in first] == [1, 2, 3, 4]
        rest = store.since(first[-1][0], 100)
        assert [d for _, d in first + rest] == [f"m{i}".encode() for i in range(10)]
        assert store.since(10, 5) == []


def test_oversized_message_is_refused(tmp_path: Path) -> None:
    with GossipStore(tmp_path / "g.sqlite", max_message_bytes=8) as store:
        with pytest.raises(ValueError, match="9 bytes exceeds the store's limit of 8"):
            store.add(b"123456789")
        assert len(store) == 0


def test_store_id_and_cursors_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    with GossipStore(path) as store:
        store_id = store.store_id
        assert len(store_id) == 16
        assert store.cursor("peerA") == (bytes(16), 0)
        store.set_cursor("peerA", b"\x01" * 16, 42)
        store.add(b"kept")
    with GossipStore(path) as again:
        assert again.store_id == store_id
        assert again.cursor("peerA") == (b"\x01" * 16, 42)
        assert again.all() == [b"kept"]
        assert not again.add(b"kept")
    with GossipStore(tmp_path / "other.sqlite") as other:
        assert other.store_id != store_id


def test_in_memory_store_works_the_same() -> None:
    with GossipStore() as store:
        assert store.add(b"x") and not store.add(b"x")
        assert store.since(0, 10) == [(1, b"x")]


WRITER = """
import sys
from node.gossip.store import GossipStore
store = GossipStore(sys.argv[1])
i = 0
while True:
    store.add(b"message %d" % i)
    print(i, flush=True)      # acknowledged only after add() returned (after COMMIT)
    i += 1
"""


def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 200:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with GossipStore(path) as store:
        have = store.all()
    assert len(have) >= acked + 1
    assert have[: acked + 1] == [b"message %d" % i for i in range(acked + 1)]


def test_retention_keeps_the_newest_messages(tmp_path: Path) -> None:
    with GossipStore(tmp_path / "g.sqlite", max_messages=1500) as store:
        for i in range(2500):  # pruned when the count crosses 1000 and 2000
            store.add(b"m%d" % i)
        kept = store.all()
        assert kept == [b"m%d" % i for i in range(2500 - len(kept), 2500)]
        assert 1500 <= len(kept) < 1500 + 1000
        assert store.last_seq() == 2500  # sequence numbers go on: peers' cursors stay valid
        assert store.since(10, 1)[0][0] > 10
        assert store.prune(100) == len(kept) - 100
        assert store.all() == [b"m%d" % i for i in range(2400, 2500)]


def test_without_a_limit_nothing_is_pruned() -> None:
    with GossipStore() as store:
        store.add_many([b"x%d" % i for i in range(2100)])
        assert len(store) == 2100
