"""The SQLite plumbing every durable store in orbital shares: :func:`open_durable` (how a
store's database is opened) and :func:`write_transaction` (how it is written: audit log,
policy ledger, command nonces, signed-tx queue, equivocation evidence, header store, gossip
store, light-client store)."""

from __future__ import annotations

import sqlite3
import threading
import time
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
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    try:
        if str(path) != ":memory:":
            _wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        if schema:
            conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


BUSY_TIMEOUT_S = 30.0


def _wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the database: the
    switch needs an exclusive lock and SQLite answers "database is locked" at once, without
    its busy handler, when two processes open a new database together (two signers' first
    open of one ledger)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
