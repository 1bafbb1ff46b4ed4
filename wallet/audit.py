"""The wallet's audit log: append-only, hash-chained and signed, in SQLite.

Every decision and every signature of the wallet is an entry, written (committed and
fsynced) *before* the signature it records is released. Entries are numbered
``seq = 1, 2, 3, ...`` without gaps; each holds the hash of the previous one and a
signature of its own hash by the log's key, whose address is fixed when the log is
created. So any edit, deletion, insertion or reordering of entries breaks either a hash,
a link or a signature, and :func:`verify` names the first entry where that happens.
Cutting entries off the end leaves a shorter, valid log: only a head seen earlier
(``known_head``, e.g. the last head the ground verified) can reveal that.

Entry hash (the digest that is signed)
--------------------------------------
::

    entry_hash = keccak256(0x19 || 0x00 || signer || rlp([
        b"orbital-audit/1",   # format tag
        log_id,               # 16 random bytes chosen when the log was created
        seq,                  # RLP integer (big-endian, no leading zeros)
        time_ms,              # UNIX time in milliseconds, RLP integer
        kind,                 # UTF-8 bytes, e.g. b"policy_decision"
        payload,              # canonical JSON bytes (below)
        prev_hash,            # 32 bytes; 32 zero bytes for seq 1
    ]))

The prefix is EIP-191 version 0x00 ("data with intended validator", validator = the
log's signer address): a digest that can never be a transaction's signing hash, an
EIP-191 personal message (0x45) or EIP-712 typed data (0x01), so a log signature cannot
be replayed as any of those, nor a signature of those passed off as a log entry.
``signature`` is ``r || s || v`` (65 bytes, v = 27 or 28, low-s per EIP-2).

The payload is canonical JSON: an object, keys sorted, no insignificant whitespace,
UTF-8 (non-ASCII kept as is), no NaN or infinity; ``bytes`` values are written as
``0x`` hex strings. Hashes cover the stored bytes, so a verifier never re-serialises.

Rotation
--------
A log whose head is damaged stops all signing (fail closed). :func:`rotate` is the way out,
and the only one: it verifies what it can of the old log, moves its files aside (nothing is
deleted: they are evidence), starts a new log and makes its first entry a ``log_rotated``
record naming the old file, the sha256 of its bytes, its verified head or the problem found,
and the operator's reason. An auditor thus follows the chain from one log into the next.

Downlink
--------
:func:`export` gives entries ``from_seq..`` as a JSON-compatible document whose anchor
is the hash of entry ``from_seq - 1``; :func:`verify_export` checks it on its own and,
given the ground's last verified head, that it continues exactly from there.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak

from wallet.errors import AuditError, MalformedRequestError, SigningError
from wallet.keys.signer import HALF_N, SECP256K1_N, Signature, Signer, recover_address
from wallet.sqlite import write_transaction

FORMAT_VERSION = 1
EXPORT_FORMAT = "orbital-audit-export/1"
GENESIS_HASH = bytes(32)
"""``prev_hash`` of entry 1."""

_TAG = b"orbital-audit/1"
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")

KIND_POLICY_DECISION = "policy_decision"
"""Payload: ``{"request": SigningRequest.to_payload(policy), "decision": Decision.to_payload()}``
(the request with its decoded ERC-20 call, if it makes one to a token destination)."""
KIND_SIGNED = "signed"
"""Payload: ``{"request_id", "digest", "signature"}``, appended before the release."""
KIND_COMMAND = "command"
"""Payload: an operator command envelope and what was done with it."""


class ClockBehindError(SigningError):
    """The clock reads earlier than the log's last entry: a clock set back (by accident or
    to re-open a rolling window, a time-lock or an expired command) stops all signing until
    it reads at least that time again."""


@dataclass(frozen=True)
class AuditHead:
    """The last entry of a log: its ``seq`` and ``entry_hash`` (``0`` and
    :data:`GENESIS_HASH` for an empty log). Written ``SEQ:0xHASH``."""

    seq: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.seq}:0x{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """Read ``SEQ:0xHASH`` (as printed by ``str``)."""
        match = re.fullmatch(r"(0|[1-9][0-9]*):(?:0x)?([0-9a-fA-F]{64})", text.strip())
        if match is None:
            raise MalformedRequestError(
                f"audit head {text!r} is not SEQ:0xHASH (a number and 32 bytes of hex)")
        return cls(int(match.group(1)), bytes.fromhex(match.group(2)))


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the log."""

    seq: int  # 1, 2, 3, ... without gaps
    time_ms: int  # UNIX time in milliseconds, from the log's clock
    kind: str  # what happened: "policy_decision", "signed", "command", ...
    payload: bytes  # canonical JSON object
    prev_hash: bytes  # entry_hash of entry seq-1; GENESIS_HASH for seq 1
    entry_hash: bytes  # see the module docstring
    signature: bytes  # 65 bytes r || s || v over entry_hash

    @property
    def head(self) -> AuditHead:
        return AuditHead(self.seq, self.entry_hash)

    def payload_json(self) -> dict[str, Any]:
        """The payload, decoded."""
        return json.loads(self.payload)

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible form (bytes as ``0x`` hex), as :func:`export` writes it."""
        return {"seq": self.seq, "time_ms": self.time_ms, "kind": self.kind,
                "payload": "0x" + self.payload.hex(), "prev_hash": "0x" + self.prev_hash.hex(),
                "entry_hash": "0x" + self.entry_hash.hex(),
                "signature": "0x" + self.signature.hex()}


class AuditChainError(AuditError):
    """The log (or an export) is damaged at entry ``seq``: ``problem`` says how."""

    def __init__(self, source: str, seq: int, problem: str) -> None:
        self.source = source
        self.seq = seq
        self.problem = problem
        super().__init__(f"audit log {source}: entry {seq}: {problem}")


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of a payload object (see the module docstring)."""
    if not isinstance(payload, Mapping):
        raise MalformedRequestError(f"audit payload must be an object, not {type(payload)}")

    def encode_bytes(value: object) -> str:
        if isinstance(value, bytes | bytearray | memoryview):
            return "0x" + bytes(value).hex()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, default=encode_bytes)
    except (TypeError, ValueError) as exc:
        raise MalformedRequestError(f"audit payload is not JSON: {exc}") from None
    return text.encode("utf-8")


def entry_digest(signer: bytes, log_id: bytes, seq: int, time_ms: int, kind: bytes,
                 payload: bytes, prev_hash: bytes) -> bytes:
    """``entry_hash`` of an entry (encoding in the module docstring)."""
    body = rlp.encode([_TAG, log_id, seq, time_ms, kind, payload, prev_hash])
    return keccak(b"\x19\x00" + signer + body)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload BLOB NOT NULL,
        prev_hash BLOB NOT NULL,
        entry_hash BLOB NOT NULL,
        signature BLOB NOT NULL
    )""",
)
_ENTRY_COLUMNS = ("seq, time_ms, CAST(kind AS BLOB), payload, prev_hash, entry_hash, "
                  "signature")


class AuditLog:
    """An audit log file opened for appending, signed by ``signer``.

    Creating a log records the signer's address and a random log id; reopening it with
    another key raises :class:`AuditError`. The head entry is checked on opening and the
    head this object last wrote is checked again before every append, so a log cut or
    rewritten under a running wallet stops it. Thread-safe; several processes may append
    to one file (each append holds SQLite's write lock while it signs).
    """

    def __init__(self, path: str | PathLike[str], signer: Signer, *,
                 clock: Callable[[], float] = time.time, anchor: Any = None) -> None:
        """``anchor`` (:func:`wallet.anchor.head_anchor`: the token's record or the signed
        head file, or None): where the head is also kept, outside the file; the log must
        still hold that head on opening and before every append, and every append moves
        it."""
        self.path = str(path)
        self._signer = signer
        self._anchor = anchor
        self._clock = clock
        self._lock = threading.Lock()
        self._address = bytes(signer.address)
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.text_factory = bytes  # edited TEXT need not be UTF-8 (see _entry_from_row)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._log_id = self._initialise()
            self._last = self._check_head()
            with self._lock:
                self._check_anchor(self._last)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise AuditError(f"audit log {self.path} is unreadable or not an audit log: "
                             f"{exc}") from None
        except BaseException:
            self._conn.close()
            raise

    def _initialise(self) -> bytes:
        with write_transaction(self._conn, self._lock):
            for statement in _SCHEMA:
                self._conn.execute(statement)
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
            if not meta:
                log_id = os.urandom(16)
                self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("format", str(FORMAT_VERSION)), ("signer", self._address),
                    ("log_id", log_id), ("created_ms", str(int(self._clock() * 1000)))])
                meta = {"format": str(FORMAT_VERSION), "signer": self._address,
                        "log_id": log_id}
        signer, log_id = _check_meta(meta, self.path)
        if signer != self._address:
            raise AuditError(
                f"audit log {self.path} belongs to 0x{signer.hex()}, not to this signer "
                f"0x{self._address.hex()}: open it with that key or start a new log file")
        return log_id

    def _check_head(self) -> AuditHead:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return AuditHead(0, GENESIS_HASH)
        entry = _entry_from_row(row, self.path)
        problem = _entry_problem(entry, self._address, self._log_id)
        if problem is not None:
            raise AuditChainError(self.path, entry.seq, problem + "; the log's head is "
                                  "damaged: verify it, downlink it and start a new log")
        return entry.head

    def _check_anchor(self, head: AuditHead) -> None:
        """The anchored head must still be in the log (caller holds ``_lock``)."""
        if self._anchor is None:
            return
        anchored = self._anchor.read(self._log_id)
        if anchored is None:
            if head.seq > 0:
                raise AuditChainError(
                    self.path, head.seq, f"the log has entries but its anchored head "
                    f"({self._anchor.path}) is missing: deleted, or the log was replaced; "
                    "verify it with the ground's known head and rotate it")
            return
        seq, entry_hash = anchored
        if seq > head.seq:
            raise AuditChainError(
                self.path, seq, f"the log ends at entry {head.seq} but entry {seq} was "
                f"written (anchored head {AuditHead(seq, entry_hash)}): the log was truncated;"
                " signing stops until it is rotated")
        if seq > 0:
            row = self._conn.execute("SELECT entry_hash FROM entries WHERE seq = ?",
                                     (seq,)).fetchone()
            if row is None or bytes(row[0]) != entry_hash:
                raise AuditChainError(
                    self.path, seq, f"does not hold the anchored head's hash "
                    f"{AuditHead(seq, entry_hash)}: the log was rewritten")

    @property
    def anchored_head(self) -> AuditHead | None:
        """The head kept outside the file (None without an anchor or before entry 1)."""
        if self._anchor is None:
            return None
        anchored = self._anchor.read(self._log_id)
        return None if anchored is None else AuditHead(*anchored)

    @property
    def signer_address(self) -> bytes:
        return self._address

    @property
    def log_id(self) -> bytes:
        return self._log_id

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, kind: str, payload: Mapping[str, Any], *,
               now: float | None = None) -> AuditEntry:
        """Sign and append an entry dated ``now`` (default: the log's clock); returns only
        once it is committed and fsynced (WAL, ``synchronous=FULL``), so a signature
        recorded here may be released.

        Raises :class:`MalformedRequestError` for a bad kind or payload,
        :class:`AuditError` if the head this log last wrote has changed,
        :class:`ClockBehindError` if ``now`` is earlier than the last entry's time (entries
        never go back in time), and whatever the signer raises (nothing is written then).
        """
        if not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
            raise MalformedRequestError(
                f"audit kind {kind!r} must be lower-case letters, digits, '_' or '.'")
        body = canonical_json(payload)
        kind_bytes = kind.encode()
        with self._lock:
            with write_transaction(self._conn):
                self._check_anchor(self.head_locked())
                entry = self._append_locked(kind, kind_bytes, body, now)
            self._last = entry.head  # only once the entry is committed
            if self._anchor is not None:
                self._anchor.write(self._log_id, entry.seq, entry.entry_hash)
        return entry

    def head_locked(self) -> AuditHead:
        row = self._conn.execute(
            "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(row[0], bytes(row[1])) if row is not None else AuditHead(0,
                                                                                 GENESIS_HASH)

    def _append_locked(self, kind: str, kind_bytes: bytes, body: bytes,
                       now: float | None) -> AuditEntry:
        row = self._conn.execute(
            "SELECT seq, entry_hash, time_ms FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], bytes(row[1])) if row is not None else (0, GENESIS_HASH)
        time_ms = int((self._clock() if now is None else now) * 1000)
        if row is not None and time_ms < int(row[2]):
            raise ClockBehindError(_clock_behind(time_ms, int(row[2]), seq))
        last = self._last
        if last.seq > 0:
            mine = self._conn.execute("SELECT entry_hash FROM entries WHERE seq = ?",
                                      (last.seq,)).fetchone()
            if mine is None or bytes(mine[0]) != last.hash:
                raise AuditChainError(
                    self.path, last.seq, "no longer holds the hash this wallet wrote "
                    f"(0x{last.hash.hex()}): the log was cut or rewritten; nothing appended")
        seq += 1
        digest = entry_digest(self._address, self._log_id, seq, time_ms, kind_bytes, body,
                              prev)
        signature = self._signer.sign_digest(digest)
        if recover_address(digest, signature) != self._address:
            raise SigningError("audit entry signature does not recover to the log's signer")
        entry = AuditEntry(seq, time_ms, kind, body, prev, digest, signature.to_bytes())
        self._conn.execute(
            "INSERT INTO entries (seq, time_ms, kind, payload, prev_hash, entry_hash, "
            "signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, time_ms, kind, body, prev, digest, entry.signature))
        return entry

    def last_time_ms(self) -> int | None:
        """The time of the last stored entry (UNIX ms), None for an empty log."""
        with self._lock:
            row = self._conn.execute(
                "SELECT time_ms FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def check_clock(self, now: float) -> None:
        """Raise :class:`ClockBehindError` if ``now`` (UNIX seconds) is earlier than the last
        stored entry's time."""
        last = self.last_time_ms()
        if last is not None and int(now * 1000) < last:
            raise ClockBehindError(_clock_behind(int(now * 1000), last, self.head().seq))

    def head(self) -> AuditHead:
        """The current head, as stored (not verified: see :func:`verify`)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(row[0], bytes(row[1])) if row is not None else AuditHead(0,
                                                                                 GENESIS_HASH)

    def payloads_of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The decoded payloads of the stored entries of ``kind``, oldest first (the log as
        stored: its head is checked on opening and against the anchor before appends)."""
        with self._lock:
            rows = self._conn.execute("SELECT payload FROM entries WHERE kind = ? ORDER BY seq",
                                      (kind,)).fetchall()
        return [json.loads(bytes(payload)) for (payload,) in rows]

    def authenticated_entries(self) -> list[AuditEntry]:
        """Every stored entry, authenticated: each entry's hash recomputed and linked to the
        one before it from entry 1 (no gap, no insertion, no edit), the last entry's
        signature checked (it covers the whole chain) and, with an anchor, the anchored head
        still in the chain. What the spending state is derived from
        (:mod:`wallet.policy.audited`): an edited, deleted or inserted entry raises
        :class:`AuditChainError` instead of being believed. Costs one keccak per entry and
        one signature recovery."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY seq, rowid").fetchall()
            anchored = self._anchor.read(self._log_id) if self._anchor is not None else None
        head = AuditHead(0, GENESIS_HASH)
        entries = []
        for row in rows:
            entry = _entry_from_row(row, self.path)
            if entry.seq != head.seq + 1 or entry.prev_hash != head.hash:
                raise AuditChainError(self.path, head.seq + 1, "is missing, repeated or not "
                                      "linked to the entry before it: entries were deleted, "
                                      "inserted or replaced")
            digest = entry_digest(self._address, self._log_id, entry.seq, entry.time_ms,
                                  entry.kind.encode("utf-8", "surrogateescape"),
                                  entry.payload, entry.prev_hash)
            if digest != entry.entry_hash or (entries and entry.time_ms < entries[-1].time_ms):
                raise AuditChainError(self.path, entry.seq, "its timestamp, kind, payload or "
                                      "seq do not match its hash: the entry was edited")
            entries.append(entry)
            head = entry.head
        if entries:
            problem = _entry_problem(entries[-1], self._address, self._log_id)
            if problem is not None:
                raise AuditChainError(self.path, head.seq, problem)
        if anchored is not None:
            seq, entry_hash = anchored
            if seq > head.seq or (seq > 0 and entries[seq - 1].entry_hash != entry_hash):
                raise AuditChainError(self.path, seq, "does not hold the anchored head "
                                      f"{AuditHead(seq, entry_hash)}: the log was cut or "
                                      "rewritten")
        elif self._anchor is not None and entries:
            raise AuditChainError(self.path, head.seq, "the log has entries but its anchored "
                                  "head is missing")
        return entries

    def entries(self, from_seq: int = 1) -> list[AuditEntry]:
        """Stored entries from ``from_seq`` on (not verified)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE seq >= ? ORDER BY seq",
                (from_seq,)).fetchall()
        return [_entry_from_row(row, self.path) for row in rows]


# --------------------------------------------------------------------------- checking

def _clock_behind(now_ms: int, last_ms: int, seq: int) -> str:
    def iso(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
    return (f"the clock ({iso(now_ms)}) is behind the audit log's last entry {seq} "
            f"({iso(last_ms)}, {(last_ms - now_ms) / 1000:.3f} s later): refusing to sign "
            "until the clock is right")


def _check_meta(meta: Mapping[Any, Any], source: str) -> tuple[bytes, bytes]:
    meta = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
            for k, v in meta.items()}
    fmt, signer, log_id = meta.get("format"), meta.get("signer"), meta.get("log_id")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt is None and signer is None:
        raise AuditError(f"{source} is not an orbital audit log (no meta table entries)")
    if str(fmt) != str(FORMAT_VERSION):
        raise AuditError(f"audit log {source} has format {fmt!r}; this wallet reads "
                         f"{FORMAT_VERSION}")
    if not isinstance(signer, bytes) or len(signer) != 20:
        raise AuditError(f"audit log {source}: the signer address in its meta table is "
                         "damaged")
    if not isinstance(log_id, bytes) or len(log_id) != 16:
        raise AuditError(f"audit log {source}: the log id in its meta table is damaged")
    return signer, log_id


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def _entry_from_row(row: tuple[Any, ...], source: str) -> AuditEntry:
    """An entry from a stored row, refusing rows whose columns have the wrong types."""
    seq, time_ms, kind, payload, prev_hash, entry_hash, signature = row
    if not isinstance(seq, int) or not isinstance(time_ms, int):
        raise AuditChainError(source, seq if isinstance(seq, int) else -1,
                              "seq or timestamp is not an integer: the row was edited")
    fields = [_as_bytes(v) for v in (kind, payload, prev_hash, entry_hash, signature)]
    if any(v is None for v in fields):
        raise AuditChainError(source, seq, "a column is empty or of the wrong type: the row "
                              "was edited")
    kind_b, payload_b, prev_b, hash_b, sig_b = (v for v in fields if v is not None)
    return AuditEntry(seq, time_ms, kind_b.decode("utf-8", "surrogateescape"), payload_b,
                      prev_b, hash_b, sig_b)


def _signature_problem(digest: bytes, raw: bytes, signer: bytes) -> str | None:
    if len(raw) != 65:
        return f"signature is {len(raw)} bytes, not 65: it was edited"
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v not in (27, 28) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        return "signature is malformed (r, s or v out of range): it was edited"
    if s > HALF_N:
        return "signature has a high s (EIP-2), which this log never writes: it was edited"
    try:
        recovered = recover_address(digest, Signature(r, s, v - 27))
    except Exception:  # coincurve raises a bare Exception when no key recovers
        return "signature recovers no key: it was edited or forged"
    if recovered != signer:
        return (f"signature is by 0x{recovered.hex()}, not the log's signer "
                f"0x{signer.hex()}: the entry was forged or its signature edited")
    return None


def _entry_problem(entry: AuditEntry, signer: bytes, log_id: bytes) -> str | None:
    """What is wrong with one entry on its own (hash, signature), or None."""
    if len(entry.prev_hash) != 32 or entry.time_ms < 0 or entry.seq < 1:
        return "seq, timestamp or prev_hash is malformed: the entry was edited"
    digest = entry_digest(signer, log_id, entry.seq, entry.time_ms,
                          entry.kind.encode("utf-8", "surrogateescape"), entry.payload,
                          entry.prev_hash)
    if digest != entry.entry_hash:
        return ("its timestamp, kind, payload or seq do not match its hash: the entry was "
                "edited or renumbered")
    return _signature_problem(digest, entry.signature, signer)


def _check_chain(entries: Iterable[AuditEntry], *, signer: bytes, log_id: bytes,
                 anchor: AuditHead, source: str) -> AuditHead:
    """Check that ``entries`` continue ``anchor`` link by link; return the last head.
    Raises :class:`AuditChainError` at the first entry that is wrong."""
    head = anchor
    for entry in entries:
        expected = head.seq + 1
        if entry.seq > expected:
            missing = (f"entry {expected} is" if entry.seq == expected + 1
                       else f"entries {expected}..{entry.seq - 1} are")
            raise AuditChainError(source, expected, f"{missing} missing (the next stored "
                                  f"entry is {entry.seq}): entries were deleted")
        if entry.seq < expected:
            raise AuditChainError(source, entry.seq, f"appears again after entry "
                                  f"{head.seq}: an entry was inserted or the entries "
                                  "reordered")
        if entry.prev_hash != head.hash:
            raise AuditChainError(
                source, entry.seq, f"prev_hash 0x{entry.prev_hash.hex()[:16]}... is not "
                f"entry {head.seq}'s hash 0x{head.hash.hex()[:16]}...: an entry before it "
                "was deleted, inserted or replaced, or the entries reordered")
        problem = _entry_problem(entry, signer, log_id)
        if problem is not None:
            raise AuditChainError(source, entry.seq, problem)
        head = entry.head
    return head


def _check_known_head(head: AuditHead, known: AuditHead, hash_at: Callable[[int], bytes | None],
                      source: str, what: str = "the log") -> None:
    if known.seq > head.seq:
        raise AuditChainError(source, known.seq, f"{what} ends at entry {head.seq} but entry "
                              f"{known.seq} was verified before (known head {known}): the "
                              "log was truncated, or the range stops short of that head")
    stored = hash_at(known.seq)
    if stored != known.hash:
        raise AuditChainError(source, known.seq, f"hash differs from the known head {known}:"
                              " the log was rewritten since that head was verified")


def _open_read_only(path: str | PathLike[str]) -> sqlite3.Connection:
    file = Path(path)
    if not file.is_file():
        raise MalformedRequestError(f"no audit log at {path}")
    try:
        conn = sqlite3.connect(file.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open audit log {path}: {exc}") from None
    conn.text_factory = bytes  # an edited TEXT column need not be UTF-8: hash its bytes
    return conn


def _read_log(conn: sqlite3.Connection, source: str) -> tuple[bytes, bytes]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {source} is unreadable or not an audit log: {exc}") \
            from None
    return _check_meta(meta, source)


def _iter_entries(conn: sqlite3.Connection, source: str, from_seq: int,
                  to_seq: int | None = None) -> Iterator[AuditEntry]:
    query = f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE seq >= ?"
    params: tuple[int, ...] = (from_seq,)
    if to_seq is not None:
        query += " AND seq <= ?"
        params += (to_seq,)
    try:
        for row in conn.execute(query + " ORDER BY seq, rowid", params):
            yield _entry_from_row(row, source)
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {source} is unreadable (damaged file?): {exc}") from None


def log_identity(path: str | PathLike[str]) -> tuple[bytes, bytes]:
    """``(signer address, log_id)`` of the log at ``path``, as its meta table says."""
    conn = _open_read_only(path)
    try:
        return _read_log(conn, str(path))
    finally:
        conn.close()


def verify(path: str | PathLike[str], expected_signer: bytes | None = None,
           known_head: AuditHead | None = None) -> AuditHead:
    """Verify the whole log at ``path`` and return its head.

    Checks every entry's seq (1, 2, 3, ... no gaps, no repeats), its link to the previous
    entry, its hash and its signature by the log's signer. ``expected_signer`` also pins
    that signer (without it, someone who rewrote the meta table and re-signed every entry
    with their own key would pass). ``known_head``, a head verified earlier, must still be
    in the log with the same hash: the only way to notice entries cut off the end.

    Raises :class:`AuditChainError` (an :class:`AuditError`) naming the first bad entry
    and what is wrong with it.
    """
    source = str(path)
    conn = _open_read_only(path)
    try:
        signer, log_id = _read_log(conn, source)
        if expected_signer is not None and signer != expected_signer:
            raise AuditError(f"audit log {source} is signed by 0x{signer.hex()}, not by the "
                             f"expected 0x{expected_signer.hex()}")
        head = _check_chain(_iter_entries(conn, source, 1), signer=signer, log_id=log_id,
                            anchor=AuditHead(0, GENESIS_HASH), source=source)
        if known_head is not None:
            def hash_at(seq: int) -> bytes | None:
                if seq == 0:
                    return GENESIS_HASH
                row = conn.execute("SELECT entry_hash FROM entries WHERE seq = ?",
                                   (seq,)).fetchone()
                return bytes(row[0]) if row is not None else None
            _check_known_head(head, known_head, hash_at, source)
        return head
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {source} is unreadable (damaged file?): {exc}") from None
    finally:
        conn.close()


# --------------------------------------------------------------------------- export

def export(path: str | PathLike[str], from_seq: int = 1,
           to_seq: int | None = None) -> dict[str, Any]:
    """Entries ``from_seq..to_seq`` (default: to the head) of the log at ``path``, as a
    JSON-compatible document for the downlink::

        {"format": "orbital-audit-export/1", "signer": "0x..", "log_id": "0x..",
         "anchor": {"seq": from_seq - 1, "hash": "0x.."},
         "head": {"seq": .., "hash": "0x.."},
         "entries": [AuditEntry.to_json(), ...]}

    ``anchor`` is the stored hash of entry ``from_seq - 1`` (zero hash for 1). The
    entries are copied as stored, not verified here: :func:`verify_export` checks them.
    ``from_seq = head + 1`` gives an empty export that anchors at the head.
    """
    source = str(path)
    if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 1:
        raise MalformedRequestError(f"export --from must be a positive entry number, not "
                                    f"{from_seq!r}")
    if to_seq is not None and to_seq < from_seq - 1:
        raise MalformedRequestError(f"export range {from_seq}..{to_seq} is empty or reversed")
    conn = _open_read_only(path)
    try:
        signer, log_id = _read_log(conn, source)
        return _export(conn, source, signer, log_id, from_seq, to_seq)
    except sqlite3.Error as exc:
        raise AuditError(f"audit log {source} is unreadable (damaged file?): {exc}") from None
    finally:
        conn.close()


def _export(conn: sqlite3.Connection, source: str, signer: bytes, log_id: bytes,
            from_seq: int, to_seq: int | None) -> dict[str, Any]:
    last = conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0] or 0
    if from_seq > last + 1:
        raise MalformedRequestError(f"audit log {source} ends at entry {last}; export "
                                    f"--from {from_seq} is beyond its head")
    if from_seq == 1:
        anchor = AuditHead(0, GENESIS_HASH)
    else:
        row = conn.execute("SELECT entry_hash FROM entries WHERE seq = ?",
                           (from_seq - 1,)).fetchone()
        if row is None:
            raise AuditChainError(source, from_seq - 1, "is missing: the export has no "
                                  "anchor (the log was damaged; run verify)")
        anchor = AuditHead(from_seq - 1, bytes(_as_bytes(row[0]) or b""))
    entries = list(_iter_entries(conn, source, from_seq, to_seq))
    head = entries[-1].head if entries else anchor
    return {"format": EXPORT_FORMAT, "signer": "0x" + signer.hex(),
            "log_id": "0x" + log_id.hex(),
            "anchor": {"seq": anchor.seq, "hash": "0x" + anchor.hash.hex()},
            "head": {"seq": head.seq, "hash": "0x" + head.hash.hex()},
            "entries": [entry.to_json() for entry in entries]}


def _hex_field(where: Mapping[str, Any], key: str, size: int | None, context: str) -> bytes:
    value = where.get(key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedRequestError(f"audit export: {context}{key} is not 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedRequestError(f"audit export: {context}{key} is not hex") from None
    if size is not None and len(raw) != size:
        raise MalformedRequestError(f"audit export: {context}{key} is {len(raw)} bytes, not "
                                    f"{size}")
    return raw


def _int_field(where: Mapping[str, Any], key: str, context: str) -> int:
    value = where.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedRequestError(f"audit export: {context}{key} is not a non-negative "
                                    "integer")
    return value


def _head_field(doc: Mapping[str, Any], key: str) -> AuditHead:
    value = doc.get(key)
    if not isinstance(value, Mapping):
        raise MalformedRequestError(f"audit export: {key} is missing")
    return AuditHead(_int_field(value, "seq", f"{key}."),
                     _hex_field(value, "hash", 32, f"{key}."))


def _export_entries(doc: Mapping[str, Any]) -> list[AuditEntry]:
    raw = doc.get("entries")
    if not isinstance(raw, list):
        raise MalformedRequestError("audit export: entries is not a list")
    entries = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise MalformedRequestError(f"audit export: entries[{i}] is not an object")
        context = f"entries[{i}]."
        kind = item.get("kind")
        if not isinstance(kind, str):
            raise MalformedRequestError(f"audit export: {context}kind is not a string")
        entries.append(AuditEntry(
            seq=_int_field(item, "seq", context), time_ms=_int_field(item, "time_ms", context),
            kind=kind, payload=_hex_field(item, "payload", None, context),
            prev_hash=_hex_field(item, "prev_hash", None, context),
            entry_hash=_hex_field(item, "entry_hash", None, context),
            signature=_hex_field(item, "signature", None, context)))
    return entries


def verify_export(doc: Mapping[str, Any], known_head: AuditHead | None = None,
                  expected_signer: bytes | None = None) -> AuditHead:
    """Verify an :func:`export` document on its own and return its head.

    The entries must chain from the anchor (seq, links, hashes, signatures, exactly as
    :func:`verify`). Anchored at 0 the export is the whole log from its start. With
    ``known_head`` (the last head the ground verified) the export must continue it: start
    right after it with ``anchor == known_head``, or contain the known head's entry with
    the same hash; an export that starts later leaves a gap and is refused.
    ``expected_signer`` should always be given on the ground (it pins the key; without
    it the document's own ``signer`` is trusted).

    Raises :class:`MalformedRequestError` for a document of the wrong shape and
    :class:`AuditError` (:class:`AuditChainError` for an entry) for one that does not
    verify.
    """
    source = "export"
    if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
        raise MalformedRequestError(f"not an audit export (format must be {EXPORT_FORMAT!r})")
    signer = _hex_field(doc, "signer", 20, "")
    log_id = _hex_field(doc, "log_id", 16, "")
    anchor = _head_field(doc, "anchor")
    claimed = _head_field(doc, "head")
    entries = _export_entries(doc)
    if expected_signer is not None and signer != expected_signer:
        raise AuditError(f"audit export is signed by 0x{signer.hex()}, not by the expected "
                         f"0x{expected_signer.hex()}")
    if anchor.seq == 0 and anchor.hash != GENESIS_HASH:
        raise AuditChainError(source, 0, "an export from entry 1 must anchor at the zero hash")
    if known_head is not None and known_head.seq < anchor.seq:
        raise AuditChainError(
            source, known_head.seq + 1, f"the export starts at entry {anchor.seq + 1} but the "
            f"last verified head is {known_head}: entries {known_head.seq + 1}..{anchor.seq} "
            f"would be skipped; export --from {known_head.seq + 1}")
    head = _check_chain(entries, signer=signer, log_id=log_id, anchor=anchor, source=source)
    if head != claimed:
        raise AuditChainError(source, claimed.seq, f"the export claims head {claimed} but its "
                              f"entries end at {head}: the document was edited")
    if known_head is not None:
        by_seq = {anchor.seq: anchor.hash} | {e.seq: e.entry_hash for e in entries}
        _check_known_head(head, known_head, by_seq.get, source, "the export")
    return head


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate` did."""

    archived: tuple[Path, ...]
    """The old log's files, renamed (database first, then its -wal/-shm if present)."""
    previous_head: AuditHead | None
    """The old log's verified head, or None if it did not verify."""
    problem: str | None
    """Why the old log did not verify (None if it did)."""
    first: AuditEntry
    """The new log's first entry (kind ``log_rotated``)."""


def rotate(path: str | PathLike[str], signer: Signer, reason: str, *,
           clock: Callable[[], float] = time.time, anchor: Any = None) -> Rotation:
    """Retire the audit log at ``path`` and start a new one there (see "Rotation" above).
    ``reason`` (required, one line) is recorded in the new log's first entry."""
    if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
        raise MalformedRequestError("a rotation needs a one-line reason")
    path = Path(path)
    if not path.exists():
        raise AuditError(f"no audit log at {path} to rotate")
    try:
        head: AuditHead | None = verify(path)
        problem = None
    except AuditError as exc:
        head, problem = None, str(exc)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    digest = keccak(b"".join(p.read_bytes() for p in _log_files(path)  # the data, not -shm
                             if not p.name.endswith("-shm")))
    archived = []
    for source in _log_files(path):
        target = source.with_name(source.name.replace(path.name, f"{path.stem}-retired-{stamp}"
                                                      f"{path.suffix}", 1))
        if target.exists():
            raise AuditError(f"{target} exists already: rotate again in a second")
        source.rename(target)
        archived.append(target)
    # the old log's anchored head, set aside and kept as evidence in the new log
    previous_anchor = anchor.retire() if anchor is not None else None
    with AuditLog(path, signer, clock=clock, anchor=anchor) as log:
        first = log.append("log_rotated", {
            "reason": reason.strip(),
            "previous_file": archived[0].name,
            "previous_keccak256": digest,  # of the database and its WAL, as archived
            "previous_head": str(head) if head is not None else None,
            "previous_problem": problem,
            "previous_anchored_head": previous_anchor,
        })
    return Rotation(tuple(archived), head, problem, first)


def _log_files(path: Path) -> list[Path]:
    """The database file and, if present, its WAL and shared-memory files."""
    return [p for p in (path, path.with_name(path.name + "-wal"),
                        path.with_name(path.name + "-shm")) if p.exists()]

