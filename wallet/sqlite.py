"""The write transaction every durable store in orbital uses (audit log, policy ledger,
command nonces, equivocation evidence, header store)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext


@contextmanager
def write_transaction(conn: sqlite3.Connection,
                      lock: threading.Lock | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the database's write lock, taken before anything is read) ...
    ``COMMIT``; ``ROLLBACK`` on any error. ``lock``, when given, is held for the whole
    transaction (a connection shared between threads). ``conn`` must be in autocommit
    mode (``isolation_level=None``)."""
    with lock if lock is not None else nullcontext():
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
