"""The audit log's head, kept where an edit of the log file cannot roll it back.

Cutting entries off the end of the audit log leaves a shorter log that verifies (every
remaining entry is still linked and signed). So after every append the signer also records
the new head ``(seq, entry_hash)`` outside the log, and on opening, before every append and
in ``orbital wallet audit verify`` the log must still hold that head: a log that ends before
it, or holds another hash there, was truncated or rewritten and stops all signing
(:class:`~wallet.audit.AuditChainError`) until it is rotated (``audit rotate``, which
records what it found in the new log).

:class:`SignedHeadFile` is the anchor of a keystore wallet: ``HOME/audit.head``, the head
signed by the wallet's signing key over::

    keccak256(0x19 || 0x00 || signer || rlp([b"orbital-audit-head/1", log_id, seq, hash]))

(EIP-191 version 0x00, like the log's entries, with its own tag: never a transaction, a
message, typed data or a log entry). Nobody without the key can forge a newer or another
head, and a deleted head file with a non-empty log is refused. What a file cannot stop is
its own replay: someone who copied ``audit.head`` at entry N can later cut the log back to
N and put the copy back, or delete the log, the head and the seal together so the wallet
looks new. A keystore wallet catches that only with the ground's copy of the head (``audit
verify --known-head SEQ:HASH``: the head is printed with every signing result and carried
by every downlinked export).

:class:`TokenHead` is the anchor of a PKCS#11 wallet (issue #16 item 5): the head is kept
*inside the token*, as a private data object of the signing key
(:meth:`wallet.keys.pkcs11.Pkcs11Signer.write_record`, ``rlp([tag, log_id, seq, hash])``),
written after every append. Files cannot roll it back: a log cut back to an older head, a
log replaced by another (or by a new, empty one: deleting the log, its head file and the
seal no longer makes a wallet look new) are refused while the token remembers the newer
head. Only :func:`wallet.audit.rotate` moves it to a new log, recording the old head in
the new log's first entry. The signed head file is still written beside it, so the log
can be checked without the PIN (``audit verify`` of a copy), and it is what an older wallet
is migrated from: the first open with a token that holds no head takes the file's.
"""

from __future__ import annotations

import json
import time
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

    def retire(self) -> str | None:
        """Set the head aside before :func:`wallet.audit.rotate` starts a new log: the file
        is renamed (kept as evidence); returns its text (None if there was none)."""
        if not self.path.exists():
            return None
        text = self.path.read_text(errors="replace")[:1000]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path.rename(self.path.with_name(f"{self.path.name}-retired-{stamp}"))
        return text


_RETIRED = b""
"""The log id a :class:`TokenHead` holds between :meth:`TokenHead.retire` and the new log's
first entry."""


class TokenHead:
    """The audit head kept in the PKCS#11 token (module docstring), with ``file`` (the
    signed head file) written beside it and read only to migrate a wallet whose token
    holds no head yet."""

    RECORD = "audit-head"

    def __init__(self, signer: Any, file: SignedHeadFile) -> None:
        """``signer``: a :class:`wallet.keys.pkcs11.Pkcs11Signer` (``read_record`` and
        ``write_record``)."""
        self._signer = signer
        self.file = file
        self.path = Path(f"token {signer.token_label!r} record "
                         f"orbital:{self.RECORD}:0x{bytes(signer.address).hex()}")

    def _stored(self) -> tuple[bytes, int, bytes] | None:
        raw = self._signer.read_record(self.RECORD)
        if raw is None:
            return None
        try:
            tag, log_id, seq, entry_hash = rlp.decode(raw)
            parsed = (bytes(log_id), int.from_bytes(seq, "big"), bytes(entry_hash))
        except (rlp.DecodingError, ValueError, TypeError):
            raise AuditError(f"{self.path} is not an audit head") from None
        if tag != _TAG or (parsed[0] != _RETIRED and len(parsed[2]) != 32):
            raise AuditError(f"{self.path} is not an audit head")
        return parsed

    def read(self, log_id: bytes) -> tuple[int, bytes] | None:
        """The head the token holds for log ``log_id``; None when it holds none (a new
        wallet, just after a rotation, or -- migration -- the signed file's head when the
        token never held one). Raises :class:`AuditError` when the token's head belongs to
        another log: this log file replaced the one the signer wrote."""
        stored = self._stored()
        if stored is None:
            return self.file.read(log_id)
        its_log, seq, entry_hash = stored
        if its_log == _RETIRED:
            return None
        if its_log != log_id:
            raise AuditError(
                f"the audit head in the token ({self.path}) is entry {seq} of log "
                f"0x{its_log.hex()}, not of this log 0x{log_id.hex()}: the log file was "
                "replaced or deleted; verify it with the ground's known head and rotate it")
        return seq, entry_hash

    def write(self, log_id: bytes, seq: int, entry_hash: bytes) -> None:
        """Keep ``(seq, entry_hash)`` as log ``log_id``'s head in the token, then in the
        file. Never moves the token's head of the same log back."""
        stored = self._stored()
        if stored is None or stored[0] != log_id or stored[1] < seq:
            self._signer.write_record(self.RECORD, rlp.encode([_TAG, log_id, seq, entry_hash]))
        self.file.write(log_id, seq, entry_hash)

    def retire(self) -> str | None:
        """Set the token's head aside before a rotation (the next log's first entry records
        the returned description, then moves the head to the new log)."""
        stored = self._stored()
        self._signer.write_record(self.RECORD, rlp.encode([_TAG, _RETIRED, 0, b""]))
        file_text = self.file.retire()
        if stored is None:
            return file_text
        return (f"token head: log 0x{stored[0].hex()} entry {stored[1]} "
                f"0x{stored[2].hex()}; file: {file_text}")


def head_anchor(signer: Any, file: str | Path) -> SignedHeadFile | TokenHead:
    """The audit-head anchor for ``signer``: in its token when it has one (PKCS#11), else
    the signed head file at ``file``."""
    signed = SignedHeadFile(file, signer)
    return TokenHead(signer, signed) if hasattr(signer, "write_record") else signed
