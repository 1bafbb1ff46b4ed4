"""The outbox's durable store: one SQLite table of entries, each a raw transaction and its
state, written through :func:`wallet.sqlite.open_durable` (``synchronous=FULL``): every
method that changes state is one transaction, committed (fsynced) before it returns, so a
``kill -9`` at any point leaves either the old or the new state, and reopening resumes.

States::

    queued --mark_sent--> sent --mark_included--> included --mark_final--> final
      |                     |                        |
      +--- expire ----------+--> expired             +--mark_reorged--> sent
      +--- mark_dropped / drop / replaced -----------> dropped

``included`` means seen in an anchored block with its receipt verified (the node's
``receipts`` callable decides that, not an upstream's acknowledgement); ``final`` means its
block is at or below the finalized anchor. ``dropped`` carries a reason: "replaced by 0x..."
(a fee bump of at least 10 %, as geth's ``txpool.pricebump``), "nonce taken by 0x..." or
"dropped by operator". A dropped entry that had been sent may still be mined (an upstream
kept it): :meth:`Outbox.mark_included` accepts it, and it drops whatever else held its nonce.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from os import PathLike
from typing import Any, Literal

from node.outbox.checks import Admitted, OutboxError, OutboxRefused
from wallet.sqlite import open_durable, write_transaction

State = Literal["queued", "sent", "included", "final", "dropped", "expired"]
STATES: tuple[State, ...] = ("queued", "sent", "included", "final", "dropped", "expired")
ACTIVE: tuple[State, ...] = ("queued", "sent")
"""States of an entry still holding its sender's nonce in the outbox (to be broadcast)."""

PRICE_BUMP_PERCENT = 10
"""A replacement must raise both fee caps by at least this much (geth ``txpool.pricebump``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    sender BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    tx_type INTEGER NOT NULL,
    max_fee TEXT NOT NULL,
    max_tip TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    queued_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    block_number INTEGER,
    block_hash BLOB
);
CREATE INDEX IF NOT EXISTS entries_sender_nonce ON entries (sender, nonce);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state);
CREATE TABLE IF NOT EXISTS nonces (
    sender BLOB PRIMARY KEY,
    verified_nonce INTEGER NOT NULL
);
"""
_COLUMNS = ("hash, raw, sender, nonce, tx_type, max_fee, max_tip, kind, state, reason, "
            "queued_at, updated_at, sent_at, attempts, last_error, block_number, block_hash")


class UnknownEntry(OutboxError):
    """No outbox entry has this hash."""


class InvalidTransition(OutboxError):
    """The entry is not in a state this change applies to."""


@dataclass(frozen=True)
class Entry:
    """One transaction in the outbox."""

    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    tx_type: int
    max_fee: int  # maxFeePerGas, or gasPrice: compared on replacement
    max_tip: int  # maxPriorityFeePerGas, or gasPrice
    kind: str  # "transaction" | "certificate"
    state: State
    reason: str | None  # why dropped / expired
    queued_at: float
    updated_at: float
    sent_at: float | None  # last acknowledgement by an upstream
    attempts: int  # broadcasts acknowledged or answered
    last_error: str | None  # the last upstream refusal
    block_number: int | None  # when included / final
    block_hash: bytes | None

    def to_json(self) -> dict[str, Any]:
        """The entry as ``orbital_outbox`` lists it (hex quantities and data)."""
        def data(b: bytes | None) -> str | None:
            return None if b is None else "0x" + b.hex()
        return {
            "hash": data(self.hash), "from": data(self.sender), "nonce": hex(self.nonce),
            "type": hex(self.tx_type), "maxFeePerGas": hex(self.max_fee),
            "maxPriorityFeePerGas": hex(self.max_tip), "kind": self.kind,
            "state": self.state, "reason": self.reason, "queuedAt": self.queued_at,
            "updatedAt": self.updated_at, "sentAt": self.sent_at, "attempts": self.attempts,
            "lastError": self.last_error,
            "blockNumber": None if self.block_number is None else hex(self.block_number),
            "blockHash": data(self.block_hash), "raw": data(self.raw),
        }


def _entry(row: tuple[Any, ...]) -> Entry:
    values = list(row)
    values[5], values[6] = int(values[5]), int(values[6])  # u256 fees are stored as text
    return Entry(*values)


def bump_ok(old_fee: int, old_tip: int, new_fee: int, new_tip: int) -> bool:
    """Both caps raised by at least :data:`PRICE_BUMP_PERCENT` % (exact integer test)."""
    scale = 100 + PRICE_BUMP_PERCENT
    return new_fee * 100 >= old_fee * scale and new_tip * 100 >= old_tip * scale


class Outbox:
    """The durable store of raw transactions waiting for, or followed after, a contact."""

    def __init__(self, path: str | PathLike[str], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = open_durable(path, _SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def close(self) -> None:
        """Close the database (every change is already on disk)."""
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adding --------------------------------------------------------------------------

    def add(self, admitted: Admitted) -> Entry:
        """Make ``admitted`` durable as ``queued`` and return its entry; returns only once it
        is fsynced. The same hash again returns the existing entry (a dropped or expired one
        is queued again if its nonce is free). Another active entry with the same sender and
        nonce is replaced only if both fee caps rise by at least 10 % (it becomes dropped,
        "replaced by 0x..."); otherwise :class:`OutboxRefused` "replacement transaction
        underpriced". A nonce already included refuses "nonce too low"."""
        now = self._clock()
        a = admitted
        with write_transaction(self._db, self._lock) as db:
            self._note_nonce(db, a.sender, a.verified_nonce)
            existing = self._find(db, a.hash)
            if existing is not None and existing.state not in ("dropped", "expired"):
                return existing
            rivals = [_entry(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE sender=? AND nonce=? AND hash<>? "
                "AND state IN ('queued','sent','included','final')", (a.sender, a.nonce, a.hash))]
            for rival in rivals:
                if rival.state in ("included", "final"):
                    raise OutboxRefused(f"nonce too low: address 0x{a.sender.hex()}, tx: "
                                        f"{a.nonce} already included as 0x{rival.hash.hex()}")
                if not bump_ok(rival.max_fee, rival.max_tip, a.max_fee, a.max_tip):
                    raise OutboxRefused(
                        f"replacement transaction underpriced: 0x{rival.hash.hex()} holds nonce "
                        f"{a.nonce}; raise maxFeePerGas and maxPriorityFeePerGas by at least "
                        f"{PRICE_BUMP_PERCENT} %")
            for rival in rivals:
                db.execute("UPDATE entries SET state='dropped', reason=?, updated_at=? "
                           "WHERE hash=?", (f"replaced by 0x{a.hash.hex()}", now, rival.hash))
            if existing is not None:  # re-submitted after being dropped or expiring
                db.execute("UPDATE entries SET state='queued', reason=NULL, updated_at=?, "
                           "queued_at=? WHERE hash=?", (now, now, a.hash))
            else:
                db.execute(
                    "INSERT INTO entries (hash, raw, sender, nonce, tx_type, max_fee, max_tip, "
                    "kind, state, queued_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (a.hash, a.raw, a.sender, a.nonce, a.tx.tx_type, str(a.max_fee),
                     str(a.max_tip), a.kind, now, now))
            entry = self._find(db, a.hash)
        assert entry is not None
        return entry

    # -- reading -------------------------------------------------------------------------

    def get(self, tx_hash: bytes) -> Entry | None:
        """The entry of ``tx_hash``, or None."""
        with self._lock:
            return self._find(self._db, tx_hash)

    def entries(self, state: State | None = None) -> list[Entry]:
        """Every entry (or those in ``state``), oldest first."""
        if state is not None and state not in STATES:
            raise OutboxError(f"unknown outbox state {state!r} (want one of {STATES})")
        where, args = ("WHERE state=?", (state,)) if state else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries {where} ORDER BY seq",
                                    args).fetchall()
        return [_entry(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of entries by state (every state listed, for metrics)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM entries GROUP BY state")
            found = dict(rows.fetchall())
        return {s: found.get(s, 0) for s in STATES}

    def pending_nonce(self, sender: bytes, verified_nonce: int) -> int:
        """``verified_nonce`` plus the sender's contiguous queued/sent nonces from it: the
        nonce ``eth_getTransactionCount(sender, "pending")`` answers."""
        with self._lock:
            nonces = [n for (n,) in self._db.execute(
                "SELECT DISTINCT nonce FROM entries WHERE sender=? AND nonce>=? AND state IN "
                "('queued','sent') ORDER BY nonce", (sender, verified_nonce))]
        nonce = verified_nonce
        for n in nonces:
            if n != nonce:
                break
            nonce += 1
        return nonce

    def to_send(self) -> list[Entry]:
        """Active (queued or sent) entries to broadcast, per sender in nonce order, only the
        run contiguous from the sender's verified nonce (the highest one :meth:`add` or
        :meth:`note_nonce` saw); senders in order of their oldest entry."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE state IN ('queued','sent') "
                "ORDER BY sender, nonce").fetchall()
            known = dict(self._db.execute("SELECT sender, verified_nonce FROM nonces"))
        by_sender: dict[bytes, list[Entry]] = {}
        for row in rows:
            entry = _entry(row)
            by_sender.setdefault(entry.sender, []).append(entry)
        runs = []
        for sender, entries in by_sender.items():
            nonce, run = known.get(sender, 0), []
            for entry in entries:
                if entry.nonce < nonce:
                    continue  # below the verified nonce: mined or taken; settle() decides
                if entry.nonce != nonce:
                    break
                run.append(entry)
                nonce += 1
            if run:
                runs.append(run)
        runs.sort(key=lambda run: min(e.queued_at for e in run))
        return [entry for run in runs for entry in run]

    # -- state changes -------------------------------------------------------------------

    def note_nonce(self, sender: bytes, verified_nonce: int) -> None:
        """Record the sender's verified nonce (kept if higher than the last one seen)."""
        with write_transaction(self._db, self._lock) as db:
            self._note_nonce(db, sender, verified_nonce)

    def mark_sent(self, tx_hash: bytes, error: str | None = None) -> Entry:
        """An upstream acknowledged (or, with ``error``, answered) a broadcast: attempts + 1;
        a queued entry becomes sent only when acknowledged. Not inclusion."""
        return self.mark_sent_many([(tx_hash, error)])[0]

    def mark_sent_many(self, answers: Iterable[tuple[bytes, str | None]]) -> list[Entry]:
        """:meth:`mark_sent` for a batch of broadcasts, in one transaction (one fsync).

        An entry that left queued/sent while its broadcast was in flight (the operator
        dropped it from another process, ``orbital node outbox drop``; or it expired) keeps
        its state, but an acknowledgement is still recorded (``sent_at``): the upstream
        holds it, so it may yet be mined and its receipt is asked for."""
        now = self._clock()
        out = []
        with write_transaction(self._db, self._lock) as db:
            for tx_hash, error in answers:
                entry = self._require(db, tx_hash, ("queued", "sent", "dropped", "expired"),
                                      "mark sent")
                if entry.state not in ACTIVE:
                    db.execute("UPDATE entries SET sent_at=COALESCE(?, sent_at), "
                               "attempts=attempts+1, last_error=? WHERE hash=?",
                               (None if error else now, error, tx_hash))
                elif error is None:
                    db.execute("UPDATE entries SET state='sent', sent_at=?, updated_at=?, "
                               "attempts=attempts+1, last_error=NULL WHERE hash=?",
                               (now, now, tx_hash))
                else:
                    db.execute("UPDATE entries SET updated_at=?, attempts=attempts+1, "
                               "last_error=? WHERE hash=?", (now, error, tx_hash))
                out.append(self._find(db, tx_hash))
        return out  # type: ignore[return-value]

    def mark_included(self, tx_hash: bytes, block_number: int, block_hash: bytes) -> Entry:
        """Its verified receipt is in the anchored block ``block_number``/``block_hash``.
        Any other active entry with the same sender and nonce is dropped ("nonce taken")."""
        now = self._clock()
        with write_transaction(self._db, self._lock) as db:
            entry = self._require(db, tx_hash, ("queued", "sent", "dropped", "expired",
                                                "included"), "mark included")
            db.execute("UPDATE entries SET state='included', reason=NULL, block_number=?, "
                       "block_hash=?, updated_at=? WHERE hash=?",
                       (block_number, block_hash, now, tx_hash))
            db.execute("UPDATE entries SET state='dropped', reason=?, updated_at=? WHERE "
                       "sender=? AND nonce=? AND hash<>? AND state IN ('queued','sent')",
                       (f"nonce taken by 0x{tx_hash.hex()}", now, entry.sender, entry.nonce,
                        tx_hash))
            self._note_nonce(db, entry.sender, entry.nonce + 1)
            return self._find(db, tx_hash)  # type: ignore[return-value]

    def mark_reorged(self, tx_hash: bytes) -> Entry:
        """Its block left the canonical chain before finality: back to sent, and its
        sender's recorded nonce back to at most its nonce (so it is broadcast again)."""
        now = self._clock()
        with write_transaction(self._db, self._lock) as db:
            entry = self._require(db, tx_hash, ("included",), "mark reorged")
            db.execute("UPDATE entries SET state='sent', block_number=NULL, block_hash=NULL, "
                       "updated_at=? WHERE hash=?", (now, tx_hash))
            db.execute("UPDATE nonces SET verified_nonce=MIN(verified_nonce, ?) WHERE sender=?",
                       (entry.nonce, entry.sender))
            return self._find(db, tx_hash)  # type: ignore[return-value]

    def mark_final(self, finalized_number: int, finalized_hashes: Iterable[bytes] = ()
                   ) -> list[Entry]:
        """Every included entry whose block is at or below the finalized anchor
        ``finalized_number`` becomes final; returns them. ``finalized_hashes``, when given,
        are the canonical block hashes the caller verified: an entry whose block hash is not
        among them is left included (the caller reorgs it)."""
        now = self._clock()
        allowed = set(finalized_hashes)
        with write_transaction(self._db, self._lock) as db:
            rows = [_entry(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE state='included' AND block_number<=?",
                (finalized_number,))]
            done = [e for e in rows if not allowed or e.block_hash in allowed]
            for e in done:
                db.execute("UPDATE entries SET state='final', updated_at=? WHERE hash=?",
                           (now, e.hash))
            return [self._find(db, e.hash) for e in done]  # type: ignore[misc]

    def mark_dropped(self, tx_hash: bytes, reason: str) -> Entry:
        """The entry will never be mined (e.g. the verified nonce passed it without its
        inclusion: "nonce taken by another transaction")."""
        return self._drop(tx_hash, reason, ("queued", "sent"))

    def drop(self, tx_hash: bytes) -> Entry:
        """The operator removes an entry from the broadcast queue ("dropped by operator").
        One already sent may still be mined by an upstream that kept it."""
        return self._drop(tx_hash, "dropped by operator", ("queued", "sent"))

    def settle(self, sender: bytes, verified_nonce: int) -> list[Entry]:
        """The sender's verified nonce is ``verified_nonce``: active entries below it were not
        seen included, so another transaction took their nonce: dropped. Call it after
        receipts were checked. Returns the dropped entries. ``verified_nonce`` is proven at
        the anchored head, so it is recorded as it is, even if lower than the last one seen
        (a reorg took transactions out)."""
        now = self._clock()
        with write_transaction(self._db, self._lock) as db:
            db.execute("INSERT INTO nonces (sender, verified_nonce) VALUES (?, ?) ON CONFLICT "
                       "(sender) DO UPDATE SET verified_nonce=excluded.verified_nonce",
                       (sender, verified_nonce))
            rows = [_entry(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE sender=? AND nonce<? AND state IN "
                "('queued','sent')", (sender, verified_nonce))]
            for e in rows:
                db.execute("UPDATE entries SET state='dropped', reason=?, updated_at=? "
                           "WHERE hash=?", (f"nonce taken by another transaction (verified "
                                            f"nonce {verified_nonce})", now, e.hash))
            return [self._find(db, e.hash) for e in rows]  # type: ignore[misc]

    def expire(self, older_than: float) -> list[Entry]:
        """Queued entries (never acknowledged by an upstream) queued before ``older_than``
        become expired; sent ones may still be mined and are left to :meth:`settle`."""
        now = self._clock()
        with write_transaction(self._db, self._lock) as db:
            rows = [_entry(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE state='queued' AND queued_at<?",
                (older_than,))]
            for e in rows:
                db.execute("UPDATE entries SET state='expired', reason=?, updated_at=? "
                           "WHERE hash=?", (f"queued before {older_than}", now, e.hash))
            return [self._find(db, e.hash) for e in rows]  # type: ignore[misc]

    # -- internals -----------------------------------------------------------------------

    def _drop(self, tx_hash: bytes, reason: str, states: tuple[State, ...]) -> Entry:
        now = self._clock()
        with write_transaction(self._db, self._lock) as db:
            self._require(db, tx_hash, states, "drop")
            db.execute("UPDATE entries SET state='dropped', reason=?, updated_at=? WHERE hash=?",
                       (reason, now, tx_hash))
            return self._find(db, tx_hash)  # type: ignore[return-value]

    @staticmethod
    def _note_nonce(db: Any, sender: bytes, nonce: int) -> None:
        db.execute("INSERT INTO nonces (sender, verified_nonce) VALUES (?, ?) ON CONFLICT "
                   "(sender) DO UPDATE SET verified_nonce=MAX(verified_nonce, excluded."
                   "verified_nonce)", (sender, nonce))

    @staticmethod
    def _find(db: Any, tx_hash: bytes) -> Entry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE hash=?", (tx_hash,)).fetchone()
        return None if row is None else _entry(row)

    def _require(self, db: Any, tx_hash: bytes, states: tuple[State, ...], what: str) -> Entry:
        entry = self._find(db, tx_hash)
        if entry is None:
            raise UnknownEntry(f"no outbox entry 0x{tx_hash.hex()}")
        if entry.state not in states:
            raise InvalidTransition(f"cannot {what} 0x{tx_hash.hex()}: it is {entry.state}")
        return entry
