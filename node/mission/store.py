"""The mission's durable state (``DATA_DIR/mission.sqlite``): what a restarted node must not
forget or do twice.

* ``tasks``: every task learnt from a verified ``TaskPosted`` log (id, model, input, quorum,
  and the block it was posted in, which is the ``epoch`` every node signs, so that nodes
  running a task independently sign the very same ``TaskResult``); ``certified`` is the output
  a verified ``TaskCertified`` log (or a verified ``certifiedOutput`` read) showed; ``ran`` is
  set once this node ran the task itself.
* ``submissions``: at most one live submission per task: the signed raw transaction, written
  (fsync) *before* it is handed to ``eth_sendRawTransaction``. After a ``kill -9`` between the
  two, the restarted node finds the row without an outbox entry and hands over the same bytes
  again (same hash, same nonce: it can be mined once at most). A submission whose outbox entry
  ended dropped or expired may be replaced by a new one (:meth:`MissionStore.replace_submission`).
* ``meta``: the log-scan cursor (last block scanned) and the last registry snapshot (so a
  restarted node validates gossip before its first contact).

Every change is one SQLite transaction (:func:`wallet.sqlite.write_transaction`,
``synchronous=FULL``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from os import PathLike

from wallet.sqlite import open_durable, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id BLOB PRIMARY KEY,
    model_hash BLOB NOT NULL,
    input_hash BLOB NOT NULL,
    quorum INTEGER NOT NULL,
    epoch INTEGER NOT NULL,           -- the block TaskPosted was emitted in
    certified BLOB,                   -- output hash certified on chain (verified), or NULL
    ran INTEGER NOT NULL DEFAULT 0    -- 1: this node ran the task itself
);
CREATE TABLE IF NOT EXISTS submissions (
    task_id BLOB PRIMARY KEY,
    tx_hash BLOB NOT NULL,
    raw BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    signed_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class PostedTask:
    """A task as its verified ``TaskPosted`` log gave it."""

    task_id: bytes
    model_hash: bytes
    input_hash: bytes
    quorum: int
    epoch: int
    certified: bytes | None = None
    ran: bool = False


@dataclass(frozen=True)
class Submission:
    task_id: bytes
    tx_hash: bytes
    raw: bytes
    nonce: int
    signed_at: float


class MissionStore:
    """See the module docstring; thread-safe (one connection and a lock)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self._lock = threading.Lock()
        self._db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta --------------------------------------------------------------------------

    def get_meta(self, key: str) -> object | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: object) -> None:
        with write_transaction(self._db, self._lock) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- tasks -------------------------------------------------------------------------

    def learn(self, posted: list[PostedTask], certified: dict[bytes, bytes],
              scanned_to: int) -> None:
        """Record the tasks and certifications of one log scan and move the cursor to
        ``scanned_to``, in one transaction (a scan cut off is simply done again)."""
        with write_transaction(self._db, self._lock) as db:
            for t in posted:
                db.execute("INSERT OR IGNORE INTO tasks (task_id, model_hash, input_hash, "
                           "quorum, epoch) VALUES (?, ?, ?, ?, ?)",
                           (t.task_id, t.model_hash, t.input_hash, t.quorum, t.epoch))
            for task_id, output in certified.items():
                db.execute("UPDATE tasks SET certified=? WHERE task_id=?", (output, task_id))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('scanned_to', ?)",
                       (json.dumps(scanned_to),))

    def mark_certified(self, task_id: bytes, output: bytes) -> None:
        with write_transaction(self._db, self._lock) as db:
            db.execute("UPDATE tasks SET certified=? WHERE task_id=?", (output, task_id))

    def mark_ran(self, task_id: bytes) -> None:
        with write_transaction(self._db, self._lock) as db:
            db.execute("UPDATE tasks SET ran=1 WHERE task_id=?", (task_id,))

    def tasks(self, *, open_only: bool = False) -> list[PostedTask]:
        query = ("SELECT task_id, model_hash, input_hash, quorum, epoch, certified, ran "
                 "FROM tasks" + (" WHERE certified IS NULL" if open_only else "")
                 + " ORDER BY epoch, task_id")
        with self._lock:
            rows = self._db.execute(query).fetchall()
        return [PostedTask(bytes(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4],
                           None if r[5] is None else bytes(r[5]), bool(r[6])) for r in rows]

    # -- submissions -------------------------------------------------------------------

    def submission(self, task_id: bytes) -> Submission | None:
        with self._lock:
            row = self._db.execute("SELECT task_id, tx_hash, raw, nonce, signed_at FROM "
                                   "submissions WHERE task_id=?", (task_id,)).fetchone()
        return None if row is None else Submission(bytes(row[0]), bytes(row[1]),
                                                   bytes(row[2]), row[3], row[4])

    def submissions(self) -> list[Submission]:
        with self._lock:
            rows = self._db.execute("SELECT task_id, tx_hash, raw, nonce, signed_at FROM "
                                    "submissions ORDER BY signed_at").fetchall()
        return [Submission(bytes(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4]) for r in rows]

    def record_submission(self, task_id: bytes, tx_hash: bytes, raw: bytes, nonce: int) -> bool:
        """Remember the signed submission of ``task_id`` (fsync); False if one is already
        recorded (it is kept: one submission per task)."""
        with write_transaction(self._db, self._lock) as db:
            return db.execute("INSERT OR IGNORE INTO submissions VALUES (?, ?, ?, ?, ?)",
                              (task_id, tx_hash, raw, nonce, time.time())).rowcount == 1

    def replace_submission(self, task_id: bytes, old_hash: bytes, tx_hash: bytes, raw: bytes,
                           nonce: int) -> bool:
        """Replace the submission ``old_hash`` of ``task_id`` (whose outbox entry was dropped
        or expired) with a new one; False if the recorded one is not ``old_hash``."""
        with write_transaction(self._db, self._lock) as db:
            return db.execute("UPDATE submissions SET tx_hash=?, raw=?, nonce=?, signed_at=? "
                              "WHERE task_id=? AND tx_hash=?",
                              (tx_hash, raw, nonce, time.time(), task_id, old_hash)
                              ).rowcount == 1
