"""The SQLite plumbing every durable store in orbital shares: :func:`open_durable` (how a
store's database is opened) and :func:`write_transaction` (how it is written: audit log,
policy ledger, command nonces, signed-tx queue, equivocation evidence, header store, gossip
store, light-client store)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from os import PathLike


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


def open_durable(path: str | PathLike[str], schema: str = "") -> sqlite3.Connection:
    """A connection for a store whose commits must survive a crash or ``kill -9``: autocommit
    mode (transactions through :func:`write_transaction`), WAL (except in memory),
    ``synchronous=FULL`` (fsync at every commit), usable from several threads (callers hold a
    lock), ``schema`` (``CREATE ... IF NOT EXISTS`` statements) applied. Closed again if any of
    that fails."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    try:
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        if schema:
            conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn
