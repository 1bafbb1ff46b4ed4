"""Signed transactions waiting for a ground contact: a durable FIFO in SQLite.

An operator command "sign this transaction and queue it" ends here: the signed raw
transaction is committed (``synchronous=FULL``) before the command is acknowledged, so
it survives a kill -9 or a power loss, and leaves the queue only when a broadcast was
acknowledged by an RPC (``mark_sent``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from wallet.sqlite import open_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queued (
    id INTEGER PRIMARY KEY,
    tx_hash BLOB NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    queued_at REAL NOT NULL,
    origin TEXT NOT NULL,
    sent_at REAL
);
"""


@dataclass(frozen=True)
class QueuedTransaction:
    """One signed transaction in the queue."""

    id: int
    tx_hash: bytes
    raw: bytes
    queued_at: float
    origin: str  # what asked for it, e.g. "command nonce 7"
    sent_at: float | None


class SignedQueue:
    """A durable queue of signed raw transactions."""

    def __init__(self, path: str | Path) -> None:
        self._db = open_durable(Path(path), _SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def put(self, tx_hash: bytes, raw: bytes, origin: str) -> QueuedTransaction:
        """Queue a signed transaction; returns once it is on disk. Idempotent by hash."""
        self._db.execute("INSERT OR IGNORE INTO queued (tx_hash, raw, queued_at, origin) "
                         "VALUES (?, ?, ?, ?)", (tx_hash, raw, time.time(), origin))
        return self._row("tx_hash=?", tx_hash)

    def pending(self) -> list[QueuedTransaction]:
        """Transactions not yet acknowledged by an RPC, oldest first."""
        rows = self._db.execute("SELECT * FROM queued WHERE sent_at IS NULL ORDER BY id")
        return [QueuedTransaction(*row) for row in rows]

    def mark_sent(self, tx_hash: bytes) -> None:
        """Record that an RPC accepted the transaction."""
        self._db.execute("UPDATE queued SET sent_at=? WHERE tx_hash=? AND sent_at IS NULL",
                         (time.time(), tx_hash))

    def _row(self, where: str, *args: object) -> QueuedTransaction:
        row = self._db.execute(f"SELECT * FROM queued WHERE {where}", args).fetchone()
        return QueuedTransaction(*row)
