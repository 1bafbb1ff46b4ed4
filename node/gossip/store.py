"""The gossip message store: every message a node delivered, durable, in arrival order.

One SQLite file per node (WAL, ``synchronous=FULL``). A message is committed here *before* it
reaches the application (:meth:`GossipStore.add` returns only after COMMIT), so a node killed
with ``kill -9`` after delivering an attestation still has it when it restarts, and the same
bytes are never delivered twice, across restarts too (the message id ``sha256(data)`` is the
primary key).

Catch-up reads the store by sequence number: ``seq`` grows by one per new message, so a peer
that remembers the highest ``seq`` it fetched from us asks only for what came after
(:meth:`GossipStore.since`). ``store_id`` is 16 random bytes chosen when the file is created;
a peer that sees a different ``store_id`` than last time knows our sequence numbers started
over (new disk) and asks from zero. The cursors a node keeps for *its* peers live here too
(:meth:`GossipStore.cursor` / :meth:`GossipStore.set_cursor`), so they survive restarts.

Retention: with ``max_messages`` set, the oldest messages beyond that many are deleted as new
ones arrive (checked every :data:`PRUNE_EVERY` additions). A pruned message is no longer
served to peers catching up, and arriving again it would be delivered again (the
application's own checks -- one signature per signer and task -- make that harmless).

``path=":memory:"`` gives the same store in memory (tests; nothing survives the process).
"""

from __future__ import annotations

import hashlib
import os
import threading
from os import PathLike

from wallet.sqlite import open_durable, write_transaction

PRUNE_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,          -- sha256(data), the gossip message id
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_cursors (
    peer_id TEXT PRIMARY KEY,
    store_id BLOB NOT NULL,           -- the peer's store_id the cursor belongs to
    seq INTEGER NOT NULL              -- highest seq fetched from that store
);
"""


class GossipStore:
    """Durable, deduplicated, ordered message store; thread-safe (one connection + lock)."""

    def __init__(self, path: str | PathLike[str] = ":memory:", *,
                 max_message_bytes: int = 4096, max_messages: int | None = None) -> None:
        self.path = str(path)
        self.max_message_bytes = max_message_bytes
        self.max_messages = max_messages
        self._added = 0
        self._lock = threading.Lock()
        self._conn = open_durable(self.path, _SCHEMA)
        try:
            with write_transaction(self._conn):
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)",
                                   (os.urandom(16),))
            self.store_id: bytes = bytes(self._conn.execute(
                "SELECT value FROM meta WHERE key='store_id'").fetchone()[0])
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> GossipStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, data: bytes) -> bool:
        """Store ``data`` durably; True if it was new, False if already stored (same
        ``sha256``). Raises ValueError for a message larger than ``max_message_bytes``."""
        return self.add_many([data])[0]

    def add_many(self, messages: list[bytes]) -> list[bool]:
        """Store ``messages`` in one transaction (one fsync: a group commit); for each, True
        if it was new. Nothing is stored if one is larger than ``max_message_bytes``."""
        batch = [bytes(m) for m in messages]
        for data in batch:
            if len(data) > self.max_message_bytes:
                raise ValueError(f"message of {len(data)} bytes exceeds the store's limit of "
                                 f"{self.max_message_bytes}")
        with write_transaction(self._conn, self._lock):
            added = [self._conn.execute(
                "INSERT OR IGNORE INTO messages (id, data) VALUES (?, ?)",
                (hashlib.sha256(data).digest(), data)).rowcount == 1 for data in batch]
        before, self._added = self._added, self._added + sum(added)
        if self.max_messages is not None and before // PRUNE_EVERY != self._added // PRUNE_EVERY:
            self.prune(self.max_messages)
        return added

    def prune(self, keep: int) -> int:
        """Delete all but the newest ``keep`` messages; return how many were deleted."""
        with write_transaction(self._conn, self._lock):
            return self._conn.execute(
                "DELETE FROM messages WHERE seq <= (SELECT MAX(seq) FROM messages) - ?",
                (keep,)).rowcount

    def contains(self, message_id: bytes) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM messages WHERE id=?",
                                      (bytes(message_id),)).fetchone() is not None

    def since(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` ``(seq, data)`` pairs with sequence number above ``seq``, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, data FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit)).fetchall()
        return [(s, bytes(d)) for s, d in rows]

    def all(self) -> list[bytes]:
        """Every stored message, oldest first."""
        return [data for _, data in self.since(0, -1)]

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM messages").fetchone()
        return int(row[0] or 0)

    def cursor(self, peer_id: str) -> tuple[bytes, int]:
        """``(store_id, seq)``: the highest seq fetched so far from ``peer_id`` and the store it
        belongs to (16 zero bytes and 0 for a peer never synced from)."""
        with self._lock:
            row = self._conn.execute("SELECT store_id, seq FROM peer_cursors WHERE peer_id=?",
                                     (peer_id,)).fetchone()
        return (bytes(16), 0) if row is None else (bytes(row[0]), int(row[1]))

    def set_cursor(self, peer_id: str, store_id: bytes, seq: int) -> None:
        with write_transaction(self._conn, self._lock):
            self._conn.execute("INSERT OR REPLACE INTO peer_cursors VALUES (?, ?, ?)",
                               (peer_id, bytes(store_id), seq))
