"""Equivocation: one signer attesting two different outputs for one task. The first
attestation per (domain, signer, task) is remembered; a later one with another output becomes
:class:`Evidence` (both signed attestations), stored and reportable on chain with
``TaskAttestations.reportEquivocation``.

Storage is SQLite (WAL, ``synchronous=FULL``) and every write is committed before
:meth:`EquivocationDetector.observe` returns: anything the node accepts is durable before it
is acknowledged (DESIGN.md). Attestations are stored in the gossip encoding
(:mod:`node.attest.codec`). Only signatures that recover to their claimed signer are
recorded, so a forged attestation can neither plant a "first" nor make evidence.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from os import PathLike
from typing import Any

from node.attest import codec
from node.attest.attestation import SignedAttestation, check_signature
from wallet.sqlite import open_durable, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS first_seen (
    contract BLOB NOT NULL, chain_id INTEGER NOT NULL, signer BLOB NOT NULL,
    task_id BLOB NOT NULL, attestation BLOB NOT NULL,
    PRIMARY KEY (contract, chain_id, signer, task_id));
CREATE TABLE IF NOT EXISTS evidence (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contract BLOB NOT NULL, chain_id INTEGER NOT NULL, signer BLOB NOT NULL,
    task_id BLOB NOT NULL, first BLOB NOT NULL, second BLOB NOT NULL,
    UNIQUE (contract, chain_id, signer, task_id))
"""


@dataclass(frozen=True)
class Evidence:
    """``a`` and ``b``: the same signer, the same task, different outputs (``a`` seen first)."""

    a: SignedAttestation
    b: SignedAttestation

    def __post_init__(self) -> None:
        if (self.a.signer != self.b.signer or self.a.result.task_id != self.b.result.task_id
                or self.a.result.output_hash == self.b.result.output_hash
                or self.a.chain_id != self.b.chain_id or self.a.contract != self.b.contract):
            raise ValueError("not equivocation: need one signer, one task, one domain, "
                             "two outputs")

    @property
    def signer(self) -> bytes:
        return self.a.signer

    @property
    def task_id(self) -> bytes:
        return self.a.result.task_id

    def to_contract_args(self) -> tuple[tuple[Any, ...], bytes, tuple[Any, ...], bytes]:
        """``(a, sigA, b, sigB)`` for ``TaskAttestations.reportEquivocation``."""
        return (self.a.result.as_tuple(), self.a.signature,
                self.b.result.as_tuple(), self.b.signature)


def to_contract_args(evidence: Evidence) -> tuple[tuple[Any, ...], bytes, tuple[Any, ...], bytes]:
    """``evidence.to_contract_args()``."""
    return evidence.to_contract_args()


class EquivocationDetector:
    """Remembers the first attestation per (signer, task) in SQLite at ``path``; thread-safe."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = open_durable(self.path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EquivocationDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def observe(self, att: SignedAttestation) -> Evidence | None:
        """Record ``att``; return new :class:`Evidence` if its signer already attested another
        output for the task (once per signer and task, like the contract's
        ``AlreadyReported``), else None. Raises
        :class:`~node.attest.attestation.AttestationError` if the signature is not the
        claimed signer's."""
        check_signature(att)
        key = (att.contract, att.chain_id, att.signer, att.result.task_id)
        with write_transaction(self._conn, self._lock):
            row = self._conn.execute(
                "SELECT attestation FROM first_seen WHERE contract=? AND chain_id=? AND "
                "signer=? AND task_id=?", key).fetchone()
            if row is None:
                self._conn.execute("INSERT INTO first_seen VALUES (?, ?, ?, ?, ?)",
                                   (*key, codec.encode(att)))
                found = None
            else:
                first = codec.decode(bytes(row[0]))
                found = None
                if first.result.output_hash != att.result.output_hash:
                    cursor = self._conn.execute(
                        "INSERT OR IGNORE INTO evidence (contract, chain_id, signer, "
                        "task_id, first, second) VALUES (?, ?, ?, ?, ?, ?)",
                        (*key, codec.encode(first), codec.encode(att)))
                    if cursor.rowcount:
                        found = Evidence(first, att)
        return found

    def evidence(self) -> list[Evidence]:
        """Every piece of evidence stored, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT first, second FROM evidence ORDER BY seq").fetchall()
        return [Evidence(codec.decode(bytes(a)), codec.decode(bytes(b))) for a, b in rows]
