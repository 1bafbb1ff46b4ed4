"""The audit log's head, kept where an edit of the log file cannot roll it back.

Cutting entries off the end of the audit log leaves a shorter log that verifies (every
remaining entry is still linked and signed). So after every append the signer also records
the new head ``(seq, entry_hash)`` outside the log, and on opening, before every append and
in ``orbital wallet audit verify`` the log must still hold that head: a log that ends before
it, or holds another hash there, was truncated or rewritten and stops all signing
(:class:`~wallet.audit.AuditChainError`) until it is rotated (``audit rotate``, which
records what it found in the new log).

:class:`SignedHeadFile` is the anchor both backends have today: ``HOME/audit.head``, the
head signed by the wallet's signing key over::

    keccak256(0x19 || 0x00 || signer || rlp([b"orbital-audit-head/1", log_id, seq, hash]))

(EIP-191 version 0x00, like the log's entries, with its own tag: never a transaction, a
message, typed data or a log entry). Nobody without the key can forge a newer or another
head, and a deleted head file with a non-empty log is refused. What a file cannot stop is
its own replay: someone who copied ``audit.head`` at entry N can later cut the log back to
N and put the copy back. That is caught only by a head kept beyond the attacker's reach:
the ground's copy (``audit verify --known-head SEQ:HASH``, the head printed with every
signing result and carried by every downlinked export), or, for the HSM backend, a counter
or data object inside the token (not yet done: see the README's wallet section).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak

from wallet.errors import AuditError, SigningError
from wallet.files import write_atomic
from wallet.keys.signer import Signer, recover_address, recover_claimed_signer

_TAG = b"orbital-audit-head/1"
HEAD_FILE = "audit.head"


def tagged_digest(signer: bytes, tag: bytes, *items: Any) -> bytes:
    """``keccak256(0x19 || 0x00 || signer || rlp([tag, *items]))``: EIP-191 version 0x00
    with validator ``signer`` and a ``tag`` naming what is signed, so a signature over it is
    never a transaction, a message, typed data, a log entry or another tag's document."""
    return keccak(b"\x19\x00" + signer + rlp.encode([tag, *items]))


def sign_tagged(signer: Signer, tag: bytes, *items: Any) -> bytes:
    """``signer``'s 65-byte signature of :func:`tagged_digest`, checked to recover to it."""
    digest = tagged_digest(bytes(signer.address), tag, *items)
    signature = signer.sign_digest(digest)
    if recover_address(digest, signature) != bytes(signer.address):
        raise SigningError(f"{tag.decode()} signature does not recover to the signer")
    return signature.to_bytes()


def check_tagged(address: bytes, signature: bytes, tag: bytes, *items: Any, subject: str,
                 where: str) -> None:
    """Raise :class:`AuditError` unless ``signature`` is ``address``'s over
    :func:`tagged_digest` of ``tag`` and ``items``."""
    if len(signature) != 65:
        raise AuditError(f"{where}: not signed")
    recover_claimed_signer(tagged_digest(address, tag, *items), address, signature,
                           subject=subject, error=AuditError, where=where)


def head_digest(signer: bytes, log_id: bytes, seq: int, entry_hash: bytes) -> bytes:
    """The digest a head file's signature covers (module docstring)."""
    return tagged_digest(signer, _TAG, log_id, seq, entry_hash)


class SignedHeadFile:
    """``path`` holding the log's last head, signed by ``signer`` (module docstring)."""

    def __init__(self, path: str | Path, signer: Signer | bytes) -> None:
        """``signer``: the log's key (an address is enough to :meth:`read`)."""
        self.path = Path(path)
        self._signer = signer if not isinstance(signer, bytes) else None
        self._address = bytes(signer if isinstance(signer, bytes) else signer.address)

    def read(self, log_id: bytes) -> tuple[int, bytes] | None:
        """The anchored ``(seq, hash)`` of the log ``log_id``; None when there is no head
        file. Raises :class:`AuditError` for a file that is not a head signed by this key
        for this log."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"audit head {self.path}: cannot read: {exc.strerror}") from None
        try:
            doc = json.loads(text)
            seq, entry_hash = int(doc["seq"]), bytes.fromhex(doc["hash"].removeprefix("0x"))
            its_log = bytes.fromhex(doc["log_id"].removeprefix("0x"))
            signature = bytes.fromhex(doc["signature"].removeprefix("0x"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuditError(f"audit head {self.path} is not a signed head") from None
        if its_log != log_id:
            raise AuditError(f"audit head {self.path} belongs to log 0x{its_log.hex()}, not "
                             f"to this log 0x{log_id.hex()}: the log file was replaced")
        if len(signature) != 65 or len(entry_hash) != 32 or seq < 0:
            raise AuditError(f"audit head {self.path} is not a signed head")
        check_tagged(self._address, signature, _TAG, log_id, seq, entry_hash,
                     subject="audit head", where=f"audit head {self.path}")
        return seq, entry_hash

    def write(self, log_id: bytes, seq: int, entry_hash: bytes) -> None:
        """Sign and store ``(seq, entry_hash)`` as the head of log ``log_id`` (atomic,
        durable). A head older than the one stored is not written (two processes appending
        at once never move the anchor back)."""
        if self._signer is None:
            raise SigningError("audit head: opened with an address only, cannot sign")
        stored = self.read(log_id) if self.path.exists() else None
        if stored is not None and stored[0] >= seq:
            return
        signature = sign_tagged(self._signer, _TAG, log_id, seq, entry_hash)
        doc = {"log_id": "0x" + log_id.hex(), "seq": seq, "hash": "0x" + entry_hash.hex(),
               "signature": "0x" + signature.hex()}
        write_atomic(self.path, (json.dumps(doc) + "\n").encode(), mode=0o600)
