"""The policy's durable memory (:class:`PolicyLedger`): what was signed in the rolling
window, and time-locked requests.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from os import PathLike
from typing import Any

from wallet.errors import MalformedRequestError, PolicyDeniedError
from wallet.policy.erc20 import TokenCallError, decode_token_call
from wallet.policy.evaluation import Decision, PendingRequest
from wallet.policy.request import SigningRequest
from wallet.policy.units import format_time
from wallet.sqlite import open_durable, write_transaction

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    value TEXT NOT NULL,          -- wei (value + max fee), decimal: beyond 64-bit integers
    signed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spends_by_sender ON spends (sender, signed_at);
CREATE TABLE IF NOT EXISTS token_spends (
    id INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    token BLOB NOT NULL,          -- the ERC-20 contract called (the transaction's `to`)
    amount TEXT NOT NULL,         -- base units, decimal
    signed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS token_spends_by_sender ON token_spends (sender, token, signed_at);
CREATE TABLE IF NOT EXISTS pending (
    request_id BLOB PRIMARY KEY,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    cancel_until REAL NOT NULL,
    summary TEXT NOT NULL,
    cancelled_at REAL,
    cancel_reason TEXT NOT NULL DEFAULT '',
    signed_at REAL
);
"""


class PolicyLedger:
    """The durable memory of the policy (SQLite, WAL, ``synchronous=FULL``): values and fees
    signed per sender and token amounts signed per sender and token (for ``per_24h``), and
    time-locked requests. Implements :class:`PolicyHistory`. Thread-safe; several
    processes may share the file.

    The schema only ever grows by ``CREATE ... IF NOT EXISTS``: a file written before
    token amounts were counted (no ``token_spends`` table) opens and keeps its history;
    its past token transfers were not recorded and count as nothing.

    A spend dated after ``now`` (the clock was set back) still counts: a wrong clock can
    only make the rolling limit stricter.

    Evaluating, signing and :meth:`record_signed` are separate steps: two requests judged
    at once could both fit under ``per_24h`` and together exceed it. The signing path
    holds :attr:`signing_lock` from evaluation to ``record_signed`` (one process signs per
    ledger; the HSM session is serial anyway).
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = str(path)
        self.signing_lock = threading.RLock()
        """Held by the signing path across evaluate -> sign -> record_signed."""
        self._lock = threading.Lock()
        self._conn = open_durable(self.path)
        with self._transaction():
            for statement in _LEDGER_SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PolicyLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    # -- PolicyHistory

    def spent_since(self, sender: bytes, since: float, token: bytes | None = None) -> int:
        with self._lock:
            if token is None:
                rows = self._conn.execute(
                    "SELECT value FROM spends WHERE sender = ? AND signed_at > ?",
                    (sender, since)).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT amount FROM token_spends WHERE sender = ? AND token = ? "
                    "AND signed_at > ?", (sender, token, since)).fetchall()
        return sum(int(amount) for (amount,) in rows)

    def pending(self, request_id: bytes) -> PendingRequest | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending WHERE request_id = ?",
                (request_id,)).fetchone()
        return _pending_from_row(row) if row is not None else None

    # -- writes

    def queue(self, decision: Decision, summary: str = "") -> PendingRequest:
        """Record a ``delay`` decision's request as pending (at ``decision.decided_at``).
        Queueing a request that is already queued returns the existing entry unchanged:
        asking again never restarts or shortens a time-lock."""
        if decision.outcome != "delay" or decision.not_before is None \
                or decision.cancel_until is None:
            raise ValueError(f"only a delay decision can be queued, not {decision.outcome}")
        with self._transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO pending (request_id, created, not_before, cancel_until,"
                " summary) VALUES (?, ?, ?, ?, ?)",
                (decision.request_id, decision.decided_at, decision.not_before,
                 decision.cancel_until, summary or decision.reason))
        pending = self.pending(decision.request_id)
        assert pending is not None
        return pending

    def cancel(self, request_id: bytes, now: float, reason: str = "") -> PendingRequest:
        """Cancel a pending request; allowed while ``now < cancel_until``. Cancelling twice
        is harmless. Raises :class:`MalformedRequestError` for an unknown request and
        :class:`PolicyDeniedError` (rule ``timelock``) when the window has closed or the
        request was already signed."""
        with self._transaction():
            row = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending WHERE request_id = ?",
                (request_id,)).fetchone()
            if row is None:
                raise MalformedRequestError(f"no pending request 0x{request_id.hex()}")
            pending = _pending_from_row(row)
            if pending.cancelled_at is not None:
                return pending
            if pending.signed_at is not None:
                raise PolicyDeniedError(f"request 0x{request_id.hex()} was already signed at "
                                        f"{format_time(pending.signed_at)}", "timelock")
            if now >= pending.cancel_until:
                raise PolicyDeniedError(
                    f"the cancel window of request 0x{request_id.hex()} closed at "
                    f"{format_time(pending.cancel_until)}", "timelock")
            self._conn.execute(
                "UPDATE pending SET cancelled_at = ?, cancel_reason = ? WHERE request_id = ?",
                (now, reason, request_id))
        cancelled = self.pending(request_id)
        assert cancelled is not None
        return cancelled

    def record_signed(self, request: SigningRequest, now: float) -> None:
        """Record that ``request`` was signed at ``now``: its value and its fee (gas limit x
        max fee or gas price, :attr:`SigningRequest.ether_spent`) count towards the
        sender's rolling 24 h total, so does the amount of an ERC-20 call it makes (one
        of :data:`TOKEN_FUNCTIONS`, to any contract: the ledger needs no policy to know
        it) towards the sender's total of that token, and its time-lock entry (if any) is
        used up. Call it before the signature is released (a crash then over-counts,
        never under-counts)."""
        try:
            call = decode_token_call(request.data) if request.to is not None else None
        except TokenCallError:
            call = None  # not a token call any policy counts (it denies them at token
            # destinations): nothing to add up
        with self._transaction():
            if request.kind == "transaction":
                self._conn.execute(
                    "INSERT INTO spends (request_id, sender, value, signed_at) "
                    "VALUES (?, ?, ?, ?)",
                    (request.request_id, request.sender, str(request.ether_spent), now))
                if call is not None:
                    self._conn.execute(
                        "INSERT INTO token_spends (request_id, sender, token, amount, "
                        "signed_at) VALUES (?, ?, ?, ?, ?)",
                        (request.request_id, request.sender, request.to, str(call.amount),
                         now))
            self._conn.execute(
                "UPDATE pending SET signed_at = ? WHERE request_id = ? AND signed_at IS NULL",
                (now, request.request_id))

    def pending_requests(self, include_closed: bool = False) -> list[PendingRequest]:
        """Pending requests, oldest first (open ones only unless ``include_closed``)."""
        where = "" if include_closed else " WHERE cancelled_at IS NULL AND signed_at IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending{where} ORDER BY created").fetchall()
        return [_pending_from_row(row) for row in rows]


_PENDING_COLUMNS = ("request_id, created, not_before, cancel_until, summary, cancelled_at, "
                    "cancel_reason, signed_at")


def _pending_from_row(row: tuple[Any, ...]) -> PendingRequest:
    request_id, created, not_before, cancel_until, summary, cancelled, why, signed = row
    return PendingRequest(bytes(request_id), created, not_before, cancel_until, summary,
                          cancelled, why, signed)
