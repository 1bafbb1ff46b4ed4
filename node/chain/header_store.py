"""A durable store of verified headers, anchored at a trusted checkpoint.

Trust enters once, as a checkpoint (block number and hash) given by configuration.
From there a header is accepted only if it hash-links to a header already accepted:

* forward -- its ``parentHash`` is a stored header and its number is one more;
* backward -- its hash is the ``parentHash`` of a stored header (back-filling
  history below the checkpoint).

Every header of a chain that does this is, by induction, committed to by the
checkpoint or descends from it (Yellow Paper §4.3: the parent hash is part of the
hashed header). Competing children of one parent are kept as side branches. The
canonical chain follows the longest branch by default (head-trust strategies call
:meth:`HeaderStore.set_head` instead); switching branches is a *reorg*, returned to
the caller and recorded, never a silent overwrite. Nothing at or below the
*finalized* header (initially the checkpoint) can be reorganised away.

Storage is one SQLite file in WAL mode; each call commits before it returns. Headers
that extend the head in sequence (the common case: syncing forward) are written in
batches; anything else takes the general path, one header at a time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from node.chain.errors import HeaderStoreError
from node.chain.header import Header, header_from_rlp
from wallet.sqlite import write_transaction

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS headers (  -- rowid table: rows append in arrival order
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    number INTEGER NOT NULL,
    parent_hash BLOB NOT NULL,
    rlp BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS canonical (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reorgs (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    ancestor_number INTEGER NOT NULL,
    old_head BLOB NOT NULL,
    new_head BLOB NOT NULL,
    removed INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Checkpoint:
    """The trusted starting point: a block number and its hash (from configuration)."""

    number: int
    hash: bytes

    def __post_init__(self) -> None:
        if len(self.hash) != 32 or self.number < 0:
            raise HeaderStoreError("a checkpoint needs a block number >= 0 and a 32-byte hash")


@dataclass(frozen=True)
class Reorg:
    """The canonical chain switched branches above ``ancestor_number``."""

    ancestor_number: int
    old_head: bytes
    new_head: bytes
    removed: tuple[bytes, ...]  # hashes that left the canonical chain, lowest first
    added: tuple[bytes, ...]  # hashes that joined it, lowest first

    @property
    def depth(self) -> int:
        """How many canonical headers were replaced."""
        return len(self.removed)


@dataclass(frozen=True)
class Insertion:
    """What :meth:`HeaderStore.add` did with a header."""

    header: Header
    status: str  # "head" (new canonical head), "side" (side branch), "ancestor"
    # (back-filled below the lowest header), "known" (already stored)
    reorg: Reorg | None = None


class HeaderStore:
    """Verified headers in one SQLite file. Not shared between threads."""

    def __init__(self, path: str | Path, checkpoint: Checkpoint,
                 max_reorg_depth: int = 64) -> None:
        self.path = Path(path)
        self.max_reorg_depth = max_reorg_depth
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.executescript(_SCHEMA)
            self._check_checkpoint(checkpoint)
        except BaseException:
            self._db.close()
            raise
        self.checkpoint = checkpoint
        self._tip = self._load_tip()

    def _check_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Record the checkpoint in a new file; refuse a file anchored elsewhere."""
        with self._transaction():
            stored = self._meta("checkpoint")
            mine = checkpoint.number.to_bytes(8, "big") + checkpoint.hash
            if stored is None:
                self._set_meta("checkpoint", mine)
                self._set_meta("schema", SCHEMA_VERSION.to_bytes(2, "big"))
                self._set_meta("finalized", mine)
            elif stored != mine:
                raise HeaderStoreError(
                    f"{self.path} was anchored at checkpoint "
                    f"{int.from_bytes(stored[:8], 'big')} 0x{stored[8:].hex()}, not "
                    f"{checkpoint.number} 0x{checkpoint.hash.hex()}: use another file")

    # -- reading ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> HeaderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, block_hash: bytes) -> Header | None:
        """The stored header with this hash (canonical or not)."""
        row = self._db.execute("SELECT rlp FROM headers WHERE hash=?", (block_hash,)).fetchone()
        return None if row is None else header_from_rlp(row[0])

    def canonical_hash(self, number: int) -> bytes | None:
        """Hash of the canonical header at ``number``."""
        row = self._db.execute("SELECT hash FROM canonical WHERE number=?", (number,)).fetchone()
        return None if row is None else row[0]

    def by_number(self, number: int) -> Header | None:
        """The canonical header at ``number``."""
        block_hash = self.canonical_hash(number)
        return None if block_hash is None else self.get(block_hash)

    @property
    def head(self) -> Header | None:
        """The canonical head, or None before the checkpoint header arrives."""
        row = self._db.execute(
            "SELECT h.rlp FROM canonical c JOIN headers h ON h.hash=c.hash "
            "ORDER BY c.number DESC LIMIT 1").fetchone()
        return None if row is None else header_from_rlp(row[0])

    @property
    def finalized(self) -> Checkpoint:
        """The highest header that can no longer be reorganised away."""
        raw = self._meta("finalized")
        assert raw is not None
        return Checkpoint(int.from_bytes(raw[:8], "big"), raw[8:])

    def reorg_count(self) -> int:
        """How many reorgs this store has recorded."""
        return self._db.execute("SELECT count(*) FROM reorgs").fetchone()[0]

    # -- writing ------------------------------------------------------------------------

    def add(self, header: Header) -> Insertion:
        """Accept ``header`` if it links to a stored one (see the module docstring)."""
        with self._transaction():
            return self._add(header)

    def add_many(self, headers: Iterable[Header]) -> list[Insertion]:
        """Add headers in order, in one transaction: all are stored or none."""
        with self._transaction():
            out: list[Insertion] = []
            run: list[Header] = []  # consecutive headers extending the head
            for header in headers:
                number, block_hash = (run[-1].number, run[-1].hash) if run else self._tip
                if header.parent_hash == block_hash and header.number == number + 1:
                    run.append(header)
                    continue
                out += self._extend_head(run)
                run = []
                out.append(self._add(header))
            out += self._extend_head(run)
            return out

    def set_head(self, block_hash: bytes) -> Reorg | None:
        """Make the stored header ``block_hash`` the canonical head (head-trust decides).
        Returns the reorg when this switches branches or shortens the chain."""
        with self._transaction():
            header = self.get(block_hash)
            if header is None:
                raise HeaderStoreError(f"cannot set head: 0x{block_hash.hex()} is not stored")
            return self._make_canonical(header)

    def finalize(self, block_hash: bytes) -> None:
        """Mark a canonical header final: nothing at or below it can be reorganised."""
        with self._transaction():
            header = self.get(block_hash)
            if header is None or self.canonical_hash(header.number) != block_hash:
                raise HeaderStoreError(f"cannot finalize 0x{block_hash.hex()}: not canonical")
            if header.number < self.finalized.number:
                raise HeaderStoreError(
                    f"cannot finalize block {header.number}: block "
                    f"{self.finalized.number} is already final")
            self._set_meta("finalized", header.number.to_bytes(8, "big") + block_hash)

    # -- internals ----------------------------------------------------------------------

    def _add(self, header: Header) -> Insertion:
        block_hash = header.hash
        if self._db.execute("SELECT 1 FROM headers WHERE hash=?", (block_hash,)).fetchone():
            return Insertion(header, "known")
        if block_hash == self.checkpoint.hash:
            if header.number != self.checkpoint.number:
                raise HeaderStoreError(
                    f"checkpoint hash is block {header.number}, configured as "
                    f"{self.checkpoint.number}")
            self._store(header)
            self._db.execute("INSERT INTO canonical VALUES (?, ?)", (header.number, block_hash))
            self._tip = (header.number, block_hash)
            return Insertion(header, "head")  # nothing links before the checkpoint arrives
        parent = self._db.execute("SELECT number FROM headers WHERE hash=?",
                                  (header.parent_hash,)).fetchone()
        if parent is not None:
            if header.number != parent[0] + 1:
                raise HeaderStoreError(
                    f"header 0x{block_hash.hex()} claims number {header.number}, its parent "
                    f"is {parent[0]}")
            self._store(header)
            if header.number > self._tip[0]:
                reorg = self._make_canonical(header)
                return Insertion(header, "head", reorg)
            return Insertion(header, "side")
        # Only the lowest stored header can have an unknown parent, and it is canonical:
        # a back-filled ancestor is its parent, and joins the canonical chain.
        child = self._db.execute(
            "SELECT h.number, h.parent_hash FROM canonical c JOIN headers h ON h.hash=c.hash "
            "ORDER BY c.number LIMIT 1").fetchone()
        if child is not None and child[1] == block_hash:
            if header.number != child[0] - 1:
                raise HeaderStoreError(
                    f"header 0x{block_hash.hex()} claims number {header.number}, its child "
                    f"is {child[0]}")
            self._store(header)
            self._db.execute("INSERT INTO canonical VALUES (?, ?)", (header.number, block_hash))
            return Insertion(header, "ancestor")
        raise HeaderStoreError(
            f"header {header.number} 0x{block_hash.hex()} does not link to any verified "
            f"header (parent 0x{header.parent_hash.hex()} unknown)")

    def _extend_head(self, run: list[Header]) -> list[Insertion]:
        """Append ``run``, a chain whose first parent is the head, in two statements.
        A header already stored (after a rewind by set_head) sends the run down the
        general path instead."""
        if not run:
            return []
        self._db.execute("SAVEPOINT extend")
        try:
            self._db.executemany(
                "INSERT INTO headers (hash, number, parent_hash, rlp) VALUES (?, ?, ?, ?)",
                [(h.hash, h.number, h.parent_hash, h.rlp) for h in run])
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK TO extend")
            self._db.execute("RELEASE extend")
            return [self._add(h) for h in run]
        self._db.executemany("INSERT INTO canonical VALUES (?, ?)",
                             [(h.number, h.hash) for h in run])
        self._db.execute("RELEASE extend")
        self._tip = (run[-1].number, run[-1].hash)
        return [Insertion(h, "head") for h in run]

    def _store(self, header: Header) -> None:
        self._db.execute("INSERT INTO headers (hash, number, parent_hash, rlp) "
                         "VALUES (?, ?, ?, ?)",
                         (header.hash, header.number, header.parent_hash, header.rlp))

    def _load_tip(self) -> tuple[int, bytes]:
        """(number, hash) of the canonical head; (-1, b"") while the store is empty."""
        row = self._db.execute(
            "SELECT number, hash FROM canonical ORDER BY number DESC LIMIT 1").fetchone()
        return (-1, b"") if row is None else (row[0], row[1])

    def _make_canonical(self, header: Header) -> Reorg | None:
        """Point the canonical chain at ``header``: walk back through parents to the
        first canonical header (the common ancestor), then swap what lies above it."""
        old_head = self._tip[1]
        added: list[bytes] = []
        block_hash, number, parent = header.hash, header.number, header.parent_hash
        while self.canonical_hash(number) != block_hash:
            added.append(block_hash)
            row = self._db.execute("SELECT number, parent_hash FROM headers WHERE hash=?",
                                   (parent,)).fetchone()
            if row is None:
                raise HeaderStoreError(f"0x{header.hash.hex()} does not join the canonical chain")
            block_hash, number, parent = parent, row[0], row[1]
        ancestor = number
        added.reverse()
        removed = tuple(row[0] for row in self._db.execute(
            "SELECT hash FROM canonical WHERE number>? ORDER BY number", (ancestor,)))
        if removed:
            finalized = self.finalized.number
            if ancestor < finalized:
                raise HeaderStoreError(
                    f"refusing reorg to 0x{header.hash.hex()}: it replaces block "
                    f"{ancestor + 1}, at or below the finalized block {finalized}")
            if len(removed) > self.max_reorg_depth:
                raise HeaderStoreError(
                    f"refusing reorg of depth {len(removed)} (limit {self.max_reorg_depth}) "
                    f"to 0x{header.hash.hex()}")
            self._db.execute("DELETE FROM canonical WHERE number>?", (ancestor,))
        self._db.executemany("INSERT INTO canonical VALUES (?, ?)",
                             [(ancestor + 1 + i, h) for i, h in enumerate(added)])
        self._tip = (header.number, header.hash)
        if not removed:
            return None
        self._db.execute(
            "INSERT INTO reorgs (at, ancestor_number, old_head, new_head, removed) "
            "VALUES (?, ?, ?, ?, ?)", (time.time(), ancestor, old_head, header.hash, len(removed)))
        return Reorg(ancestor, old_head, header.hash, removed, tuple(added))

    def _meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction; on error it is rolled back and the cached tip reloaded."""
        try:
            with write_transaction(self._db):
                yield
        except BaseException:
            self._tip = self._load_tip()
            raise
