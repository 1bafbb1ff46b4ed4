"""Compact binary encoding of a :class:`~node.attest.attestation.SignedAttestation` for gossip.

Version 1 is fixed length, 250 bytes, big-endian, no padding::

    offset  size  field
         0     1  version (1)
         1    32  taskId
        33    32  modelHash
        65    32  inputHash
        97    32  outputHash
       129     8  epoch (uint64)
       137    20  signer
       157    65  signature r || s || v
       222     8  chain id (uint64)
       230    20  contract (TaskAttestations)
       250        end  (= LENGTH)

:func:`decode` is strict: another length (short, or trailing bytes) or another version
raise :class:`DecodeError`; a decoded attestation re-encodes to the same bytes. Signatures
are *not* checked here (that is :func:`~node.attest.attestation.verify_attestation`'s job).
:func:`message_id` is the gossip message id, ``sha256(data)``, the same on every node
(DESIGN.md).
"""

from __future__ import annotations

import hashlib
import struct

from contracts import eip712
from node.attest.attestation import SignedAttestation

VERSION = 1
_LAYOUT = struct.Struct(">B32s32s32s32sQ20s65sQ20s")
LENGTH = _LAYOUT.size


class DecodeError(ValueError):
    """Bytes that are not a version-1 encoded attestation."""


def encode(att: SignedAttestation) -> bytes:
    """The 250-byte wire form of ``att``."""
    r = att.result
    return _LAYOUT.pack(VERSION, r.task_id, r.model_hash, r.input_hash, r.output_hash, r.epoch,
                        att.signer, att.signature, att.chain_id, att.contract)


def decode(data: bytes) -> SignedAttestation:
    """Parse :func:`encode`'s output; anything else raises :class:`DecodeError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DecodeError("empty message")
    if data[0] != VERSION:
        raise DecodeError(f"unknown attestation encoding version {data[0]}")
    if len(data) != LENGTH:
        raise DecodeError(f"attestation is {len(data)} bytes, version {VERSION} is {LENGTH}")
    (_, task_id, model_hash, input_hash, output_hash, epoch, signer, signature, chain_id,
     contract) = _LAYOUT.unpack(data)
    try:
        result = eip712.TaskResult(task_id, model_hash, input_hash, output_hash, epoch)
        return SignedAttestation(result, signer, signature, chain_id, contract)
    except (TypeError, ValueError) as exc:  # pragma: no cover - the layout fixes every size
        raise DecodeError(f"bad attestation field: {exc}") from None


def message_id(data: bytes) -> bytes:
    """The gossip message id of ``data``: sha256 of the bytes as received."""
    return hashlib.sha256(data).digest()
