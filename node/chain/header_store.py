"""A durable store of execution headers whose trust comes only from anchors.

Trust enters as :class:`~node.chain.anchor.Anchor`\\ s (see :mod:`node.chain.anchor`): a
block vouched for by the beacon light client, m-of-n operators, a quorum of upstreams or the
user. A header is *anchored* -- verified -- when it is an anchor or the parent of an anchored
header (the parent hash is part of the hashed header, Yellow Paper §4.3, so an anchor fixes
every ancestor). Headers may also arrive that link *forward* from stored ones; they are kept
as *linked, not anchored* (a later anchor may reach them) and are never returned as verified.
A header that links to nothing stored is refused.

Every parent/child pair the store sees, anchored or not, must obey the consensus validity
rules (:func:`node.chain.header_rules.validate_header`) for the store's chain configuration.

The canonical chain is the anchored ancestry of the *head*: the newest anchor that is not
already on it. Only a new anchor moves the head; switching branches is a *reorg*, returned
and recorded, and refused when it would replace a finalized header or go deeper than
``max_reorg_depth``. Back-filling ancestors below an anchor extends the canonical chain
downward (and is a reorg too, should it replace canonical headers an older anchor left).
While a gap below the head is not yet back-filled, the canonical entries under the gap are
the ancestors of the older anchor that put them there.

Storage is one SQLite file in WAL mode; each call commits before it returns, all or
nothing (synchronous=NORMAL: a kill -9 loses nothing committed, a power cut may lose the
last commits -- headers are refetchable and the store acknowledges nothing to anyone).
Back-filling runs of ancestors (the node's common case: an anchor, then its ancestors in
batches, newest first) are written in a few statements.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from node.chain.anchor import Anchor, AnchorSource, BlockId
from node.chain.errors import HeaderStoreError, NotAnchoredError
from node.chain.forks import ChainConfig
from node.chain.header import Header, header_from_rlp
from node.chain.header_rules import validate_header
from wallet.sqlite import open_durable, write_transaction

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS headers (  -- rowid table: rows append in arrival order
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    number INTEGER NOT NULL,
    parent_hash BLOB NOT NULL,
    rlp BLOB NOT NULL,
    anchored INTEGER NOT NULL  -- 1: an anchor or an ancestor of one; 0: linked only
);
-- headers stored while their parent is not: the only ones a new header can be parent of
CREATE TABLE IF NOT EXISTS orphans (parent_hash BLOB NOT NULL, hash BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    number INTEGER NOT NULL,
    hash BLOB NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL
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

DEFAULT_MAX_LINKED = 100_000


@dataclass(frozen=True)
class Reorg:
    """The canonical chain switched branches above ``ancestor_number``.

    For a reorg made by a new anchor, ``old_head``/``new_head`` are the heads before and
    after. For one found while back-filling below the head (an older anchor's ancestors
    replaced), they are the highest replaced header and its replacement."""

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
    """What the store did with a header."""

    header: Header
    status: str  # "anchored" (verified), "linked" (stored, not anchored), "known"
    reorg: Reorg | None = None

    @property
    def anchored(self) -> bool:
        return self.status == "anchored"


@dataclass
class _Batch:
    """State of one write call: orphans by parent hash (loaded once), rules not checked."""

    orphans: dict[bytes, list[bytes]]
    reorgs: list[Reorg] = field(default_factory=list)


class HeaderStore:
    """Anchored headers in one SQLite file. Not shared between threads."""

    def __init__(self, path: str | Path, config: ChainConfig | None = None, *,
                 max_reorg_depth: int = 64, max_linked: int = DEFAULT_MAX_LINKED) -> None:
        self.path = Path(path)
        self.config = config
        self.max_reorg_depth = max_reorg_depth
        self.max_linked = max_linked
        self.not_checked: dict[str, str] = {}
        """Consensus rules that could not be checked for some pair seen, with the reason."""
        self._db = open_durable(self.path)
        try:
            # Headers are a cache of what anchors prove, refetchable and acknowledged to no
            # one: WAL keeps every commit atomic across a crash or kill -9; an fsync per
            # commit (synchronous=FULL) would only guard the last batches against power loss.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA wal_autocheckpoint=20000")  # fewer, larger checkpoints
            self._check_format()
            self._db.executescript(_SCHEMA)
            with self._transaction():
                if self._meta("schema") is None:
                    self._set_meta("schema", SCHEMA_VERSION.to_bytes(2, "big"))
            self._linked = self._db.execute(
                "SELECT count(*) FROM headers WHERE anchored=0").fetchone()[0]
        except BaseException:
            self._db.close()
            raise

    def _check_format(self) -> None:
        """Refuse files of another format (format 1 trusted headers linked forward from a
        checkpoint, which proves nothing after the Merge)."""
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            return
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        version = int.from_bytes(row[0], "big") if row else 1
        if version != SCHEMA_VERSION:
            raise HeaderStoreError(
                f"{self.path} is a header store of format {version} (this orbital reads "
                f"{SCHEMA_VERSION}; format 1 trusted headers linked forward from a "
                f"checkpoint): start a new file")

    # -- reading ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> HeaderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, block_hash: bytes) -> Header | None:
        """The *anchored* header with this hash (canonical or not); None otherwise."""
        row = self._db.execute("SELECT rlp FROM headers WHERE hash=? AND anchored=1",
                               (block_hash,)).fetchone()
        return None if row is None else self._header(row[0], block_hash)

    def status(self, block_hash: bytes) -> str | None:
        """"anchored", "linked" (stored, not anchored) or None (not stored)."""
        row = self._db.execute("SELECT anchored FROM headers WHERE hash=?",
                               (block_hash,)).fetchone()
        return None if row is None else ("anchored" if row[0] else "linked")

    def linked(self, block_hash: bytes) -> Header | None:
        """A stored header *whether or not anchored* -- never to be served as verified."""
        row = self._db.execute("SELECT rlp FROM headers WHERE hash=?", (block_hash,)).fetchone()
        return None if row is None else self._header(row[0], block_hash)

    def require_anchored(self, block_hash: bytes) -> Header:
        """The anchored header ``block_hash``, or :class:`NotAnchoredError` saying why not."""
        header = self.get(block_hash)
        if header is not None:
            return header
        linked = self.linked(block_hash)
        if linked is None:
            raise NotAnchoredError(-1, block_hash, "no such header is stored")
        raise NotAnchoredError(linked.number, block_hash, self.why_not_anchored(linked))

    def why_not_anchored(self, header: Header) -> str:
        """Why a stored, linked header is not anchored (for messages)."""
        below = header
        while True:
            row = self._db.execute("SELECT rlp, anchored FROM headers WHERE hash=?",
                                   (below.parent_hash,)).fetchone()
            if row is None:
                return "it links to no anchored header, and no anchor leads back to it"
            below = self._header(row[0], below.parent_hash)
            if row[1]:
                return (f"it links forward from anchored block {below.number} 0x"
                        f"{below.hash.hex()[:12]}.., which proves nothing after the Merge; "
                        f"no anchor leads back to it")

    def canonical_hash(self, number: int) -> bytes | None:
        """Hash of the canonical (anchored) header at ``number``."""
        row = self._db.execute("SELECT hash FROM canonical WHERE number=?", (number,)).fetchone()
        return None if row is None else row[0]

    def highest_canonical_below(self, number: int) -> int | None:
        """The highest height below ``number`` with a canonical (anchored) header."""
        row = self._db.execute("SELECT MAX(number) FROM canonical WHERE number < ?",
                               (number,)).fetchone()
        return row[0]

    def by_number(self, number: int) -> Header | None:
        """The canonical (anchored) header at ``number``."""
        block_hash = self.canonical_hash(number)
        return None if block_hash is None else self.get(block_hash)

    @property
    def head(self) -> Header | None:
        """The canonical head (an anchor's header), or None before any anchor."""
        row = self._db.execute(
            "SELECT h.rlp, h.hash FROM canonical c JOIN headers h ON h.hash=c.hash "
            "ORDER BY c.number DESC LIMIT 1").fetchone()
        return None if row is None else self._header(row[0], row[1])

    def gap_below(self, top: int, floor: int = 0) -> Header | None:
        """The highest canonical header in ``(floor, top]`` whose parent is not the canonical
        header below it (not stored yet, or an older anchor's branch): where back-filling
        must continue. None when the canonical chain links all the way down to ``floor``."""
        row = self._db.execute(
            "SELECT h.rlp, h.hash FROM canonical c JOIN headers h ON h.hash = c.hash "
            "LEFT JOIN canonical p ON p.number = c.number - 1 "
            "WHERE c.number <= ? AND c.number > ? AND (p.hash IS NULL OR p.hash != "
            "h.parent_hash) ORDER BY c.number DESC LIMIT 1", (top, floor)).fetchone()
        return None if row is None else self._header(row[0], row[1])

    def anchors(self) -> list[Anchor]:
        """Every anchor recorded, oldest first."""
        return [Anchor(n, h, AnchorSource(s), d) for n, h, s, d in self._db.execute(
            "SELECT number, hash, source, detail FROM anchors ORDER BY id")]

    def anchor_of(self, block_hash: bytes) -> Anchor | None:
        """The newest anchor recorded for ``block_hash``, if it is one."""
        row = self._db.execute("SELECT number, source, detail FROM anchors WHERE hash=? "
                               "ORDER BY id DESC LIMIT 1", (block_hash,)).fetchone()
        return None if row is None else Anchor(row[0], block_hash, AnchorSource(row[1]), row[2])

    @property
    def finalized(self) -> BlockId | None:
        """The highest header that can no longer be reorganised away, if any."""
        raw = self._meta("finalized")
        return None if raw is None else BlockId(int.from_bytes(raw[:8], "big"), raw[8:])

    def reorg_count(self) -> int:
        """How many reorgs this store has recorded."""
        return self._db.execute("SELECT count(*) FROM reorgs").fetchone()[0]

    def linked_count(self) -> int:
        """How many stored headers are linked but not anchored."""
        return self._linked

    # -- writing ------------------------------------------------------------------------

    def add_anchor(self, anchor: Anchor, header: Header, *, final: bool = False) -> Insertion:
        """Trust ``header`` as ``anchor`` says: store it (checking the rules against stored
        neighbours), anchor it and every stored ancestor, and make it the head unless it
        already is on the canonical chain (a reorg when it is not an extension). With
        ``final``, nothing at or below it can be reorganised away afterwards."""
        anchor.check(header)
        with self._transaction():
            batch = self._batch()
            known = self._exists(header.hash)
            if not known:
                self._store(header, batch, anchored=True)
            self._db.execute(
                "INSERT INTO anchors (at, number, hash, source, detail) VALUES (?, ?, ?, ?, ?)",
                (time.time(), anchor.number, anchor.hash, str(anchor.source), anchor.detail))
            self._anchor_down(header.hash)
            reorg = None
            if self.canonical_hash(header.number) != header.hash:
                reorg = self._make_head(header)
            if final:
                self._finalize(header)
            return Insertion(header, "anchored", reorg)

    def add(self, header: Header) -> Insertion:
        """Store ``header`` if it links to a stored one (see the module docstring)."""
        return self.add_many([header])[0]

    def add_many(self, headers: Iterable[Header]) -> list[Insertion]:
        """Add headers in order, in one transaction: all are stored or none. Ancestors
        below an anchored header, newest first, take the fast path."""
        headers = list(headers)
        with self._transaction():
            batch = self._batch()
            out: list[Insertion] = []
            i = 0
            while i < len(headers):
                run = self._backfill_run(headers, i, batch)
                if len(run) > 1:
                    out += self._backfill(run, batch)
                    i += len(run)
                else:
                    out.append(self._add(headers[i], batch))
                    i += 1
            return out

    def finalize(self, block_hash: bytes) -> None:
        """Mark a canonical header final: nothing at or below it can be reorganised."""
        with self._transaction():
            header = self.get(block_hash)
            if header is None or self.canonical_hash(header.number) != block_hash:
                raise HeaderStoreError(f"cannot finalize 0x{block_hash.hex()}: not canonical")
            self._finalize(header)

    # -- internals ----------------------------------------------------------------------

    def _finalize(self, header: Header) -> None:
        final = self.finalized
        if final is not None and header.number < final.number:
            raise HeaderStoreError(
                f"cannot finalize block {header.number}: block {final.number} is already "
                f"final")
        self._set_meta("finalized", header.number.to_bytes(8, "big") + header.hash)

    def _batch(self) -> _Batch:
        orphans: dict[bytes, list[bytes]] = {}
        for parent, child in self._db.execute("SELECT parent_hash, hash FROM orphans"):
            orphans.setdefault(parent, []).append(child)
        return _Batch(orphans)

    def _exists(self, block_hash: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM headers WHERE hash=?",
                                (block_hash,)).fetchone() is not None

    def _row(self, block_hash: bytes) -> tuple[Header, bool] | None:
        row = self._db.execute("SELECT rlp, anchored FROM headers WHERE hash=?",
                               (block_hash,)).fetchone()
        return None if row is None else (self._header(row[0], block_hash), bool(row[1]))

    def _header(self, encoded: bytes, block_hash: bytes) -> Header:
        """The header stored under ``block_hash``, checked to hash to it (Yellow Paper §4.3:
        a block's hash is keccak256 of its RLP header): a changed byte in the file -- a disk
        fault, or an edit of a state root -- fails loudly instead of being served."""
        header = header_from_rlp(encoded)
        if header.hash != block_hash:
            raise HeaderStoreError(
                f"{self.path}: the header stored as block 0x{block_hash.hex()} hashes to "
                f"0x{header.hash.hex()}: the file is corrupt or was edited (start a new one)")
        return header

    def _check(self, child: Header, parent: Header) -> None:
        """The consensus rules between a parent and its child (raises on the first broken)."""
        report = validate_header(child, parent, self.config)
        for rule, why in report.not_checked:
            self.not_checked.setdefault(rule, why)

    def _store(self, header: Header, batch: _Batch, *, anchored: bool) -> None:
        """Insert ``header`` after checking the rules against its stored parent and any
        stored children (orphans waiting for it)."""
        parent = self._row(header.parent_hash)
        if parent is not None:
            self._check(header, parent[0])
        for child_hash in batch.orphans.get(header.hash, ()):
            child = self._row(child_hash)
            assert child is not None
            self._check(child[0], header)
        if not anchored:
            if self._linked >= self.max_linked:
                raise HeaderStoreError(
                    f"refusing header {header.number}: {self._linked} headers are stored "
                    f"linked but not anchored (limit {self.max_linked}); add an anchor")
            self._linked += 1
        self._db.execute("INSERT INTO headers (hash, number, parent_hash, rlp, anchored) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (header.hash, header.number, header.parent_hash, header.rlp,
                          int(anchored)))
        if parent is None:
            self._db.execute("INSERT INTO orphans VALUES (?, ?)",
                             (header.parent_hash, header.hash))
            batch.orphans.setdefault(header.parent_hash, []).append(header.hash)
        if batch.orphans.pop(header.hash, None) is not None:
            self._db.execute("DELETE FROM orphans WHERE parent_hash=?", (header.hash,))

    def _add(self, header: Header, batch: _Batch) -> Insertion:
        if self._exists(header.hash):
            return Insertion(header, "known")
        children = [row for h in batch.orphans.get(header.hash, ())
                    if (row := self._row(h)) is not None]
        if not children and not self._exists(header.parent_hash):
            raise HeaderStoreError(
                f"header {header.number} 0x{header.hash.hex()} does not link to any stored "
                f"header (parent 0x{header.parent_hash.hex()} unknown) and is no anchor")
        anchored = any(is_anchored for _, is_anchored in children)
        self._store(header, batch, anchored=anchored)
        if not anchored:
            return Insertion(header, "linked")
        self._anchor_down(header.parent_hash)
        reorg = None
        if any(self.canonical_hash(c.number) == c.hash for c, _ in children):
            reorg = self._extend_down(header)
        return Insertion(header, "anchored", reorg)

    def _backfill_run(self, headers: Sequence[Header], start: int,
                      batch: _Batch) -> list[Header]:
        """The longest run from ``start`` of new ancestors of an anchored header, newest
        first, each the parent of the one before, none with another waiting child."""
        first = headers[start]
        waiting = batch.orphans.get(first.hash)
        if waiting is None or len(waiting) != 1:
            return []
        run = [first]
        for header in headers[start + 1:]:
            if header.hash != run[-1].parent_hash or header.hash in batch.orphans:
                break
            run.append(header)
        return run

    def _backfill(self, run: list[Header], batch: _Batch) -> list[Insertion]:
        """Store ``run`` (see :meth:`_backfill_run`) in a few statements when its child is
        anchored and nothing in it is stored; otherwise header by header."""
        child_row = self._row(batch.orphans[run[0].hash][0])
        assert child_row is not None
        child, child_anchored = child_row
        if not child_anchored or any(self._exists(h.hash) for h in (run[0], run[-1])):
            return [self._add(h, batch) for h in run]
        self._check(child, run[0])
        for later, earlier in pairwise(run):
            self._check(later, earlier)
        bottom = run[-1]
        parent = self._row(bottom.parent_hash)
        if parent is not None:
            self._check(bottom, parent[0])
        first_id = self._db.execute("SELECT max(id) FROM headers").fetchone()[0] or 0
        self._db.execute("SAVEPOINT backfill")
        try:
            self._db.executemany("INSERT INTO headers (hash, number, parent_hash, rlp, anchored) "
                                 "VALUES (?, ?, ?, ?, 1)",
                                 [(h.hash, h.number, h.parent_hash, h.rlp) for h in run])
        except Exception:
            self._db.execute("ROLLBACK TO backfill")
            self._db.execute("RELEASE backfill")
            return [self._add(h, batch) for h in run]
        self._db.execute("RELEASE backfill")
        self._db.execute("DELETE FROM orphans WHERE parent_hash=?", (run[0].hash,))
        del batch.orphans[run[0].hash]
        if parent is None:
            self._db.execute("INSERT INTO orphans VALUES (?, ?)",
                             (bottom.parent_hash, bottom.hash))
            batch.orphans.setdefault(bottom.parent_hash, []).append(bottom.hash)
        else:
            self._anchor_down(bottom.parent_hash)
        reorg = None
        if self.canonical_hash(child.number) == child.hash:
            taken = self._db.execute("SELECT count(*) FROM canonical WHERE number BETWEEN ? "
                                     "AND ?", (bottom.number, run[0].number)).fetchone()[0]
            if taken == 0 and parent is None:  # the rows just appended, copied in SQL
                self._db.execute("INSERT INTO canonical SELECT number, hash FROM headers "
                                 "WHERE id > ?", (first_id,))
            else:
                reorg = self._extend_down(run[0])
        out = [Insertion(h, "anchored") for h in run]
        if reorg is not None:
            out[-1] = Insertion(bottom, "anchored", reorg)
        return out

    def _anchor_down(self, block_hash: bytes) -> None:
        """Mark ``block_hash`` (if stored) and its stored ancestors anchored, down to the
        first that already is."""
        first = True
        while True:
            row = self._db.execute("SELECT parent_hash, anchored FROM headers WHERE hash=?",
                                   (block_hash,)).fetchone()
            if row is None or (row[1] and not first):
                return
            if not row[1]:
                self._db.execute("UPDATE headers SET anchored=1 WHERE hash=?", (block_hash,))
                self._linked -= 1
            first = False
            block_hash = row[0]

    def _canonicalize_down(self, header: Header
                           ) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """Make ``header`` and its stored ancestors canonical, down to where the canonical
        chain already agrees (or the ancestry is not stored). Returns the replaced entries
        as (old hash, new hash) and every hash that joined the canonical chain, both lowest
        first."""
        replaced: list[tuple[bytes, bytes]] = []
        added: list[bytes] = []
        block_hash, number = header.hash, header.number
        while True:
            current = self.canonical_hash(number)
            if current == block_hash:
                break
            if current is not None:
                replaced.append((current, block_hash))
            added.append(block_hash)
            self._db.execute("INSERT OR REPLACE INTO canonical VALUES (?, ?)",
                             (number, block_hash))
            parent_hash = self._db.execute("SELECT parent_hash FROM headers WHERE hash=?",
                                           (block_hash,)).fetchone()[0]
            parent = self._db.execute("SELECT number FROM headers WHERE hash=?",
                                      (parent_hash,)).fetchone()
            if parent is None:
                break
            block_hash, number = parent_hash, parent[0]
        return replaced[::-1], added[::-1]

    def _extend_down(self, header: Header) -> Reorg | None:
        """The canonical chain reached ``header`` from above: extend it downward (a reorg
        when that replaces headers an older anchor made canonical)."""
        replaced, added = self._canonicalize_down(header)
        if not replaced:
            return None
        return self._record(header.number - len(added), replaced[-1][0], replaced[-1][1],
                            tuple(old for old, _ in replaced), tuple(new for _, new in replaced))

    def _make_head(self, header: Header) -> Reorg | None:
        """Point the canonical chain at ``header``: drop what lies above it, then walk back
        through its ancestors to where the canonical chain agrees."""
        old = self.head
        above = [row[0] for row in self._db.execute(
            "SELECT hash FROM canonical WHERE number>? ORDER BY number", (header.number,))]
        self._db.execute("DELETE FROM canonical WHERE number>?", (header.number,))
        replaced, added = self._canonicalize_down(header)
        if not above and not replaced:
            return None
        assert old is not None
        return self._record(header.number - len(added), old.hash, header.hash,
                            (*(old_hash for old_hash, _ in replaced), *above), tuple(added))

    def _record(self, ancestor: int, old_head: bytes, new_head: bytes,
                removed: tuple[bytes, ...], added: tuple[bytes, ...]) -> Reorg:
        """Check a reorg against finality and the depth limit, then record it."""
        final = self.finalized
        if final is not None and ancestor < final.number:
            raise HeaderStoreError(
                f"refusing reorg to 0x{new_head.hex()}: it replaces block {ancestor + 1}, at "
                f"or below the finalized block {final.number}")
        if len(removed) > self.max_reorg_depth:
            raise HeaderStoreError(
                f"refusing reorg of depth {len(removed)} (limit {self.max_reorg_depth}) to "
                f"0x{new_head.hex()}")
        self._db.execute(
            "INSERT INTO reorgs (at, ancestor_number, old_head, new_head, removed) "
            "VALUES (?, ?, ?, ?, ?)", (time.time(), ancestor, old_head, new_head, len(removed)))
        return Reorg(ancestor, old_head, new_head, removed, added)

    def _meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction; on error it is rolled back and the cached count reloaded."""
        try:
            with write_transaction(self._db):
                yield
        except BaseException:
            self._linked = self._db.execute(
                "SELECT count(*) FROM headers WHERE anchored=0").fetchone()[0]
            raise
