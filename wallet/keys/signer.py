"""The one signing interface of the wallet, and what every backend's raw ECDSA output
goes through before it may leave the wallet.

A backend only produces ``(r, s)`` over a 32-byte digest (PKCS#11 ``CKM_ECDSA`` gives
raw ``r || s``; about half of those have a high ``s``). :func:`finalize_signature` then

1. normalises ``s`` to the lower half of the curve order (EIP-2; a high-s signature is
   invalid for Ethereum transactions since Homestead),
2. finds the recovery id (``y_parity``) by recovering the public key for both
   candidates and keeping the one whose address is the key's (SEC 1 v2 §4.1.6),
3. refuses to return anything if neither recovers the key's address.

So every :class:`Signature` a :class:`Signer` returns is low-s and recovers to
``signer.address``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import coincurve
from eth_utils import to_checksum_address

from wallet.errors import SigningError
from wallet.hashing import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2


@dataclass(frozen=True)
class Signature:
    """A secp256k1 signature over a digest, low-s, with its recovery id."""

    r: int
    s: int
    y_parity: int  # 0 or 1: the recovery id

    @property
    def v(self) -> int:
        """``27 + y_parity``, as EIP-191 / EIP-712 signatures carry it."""
        return 27 + self.y_parity

    def to_bytes(self) -> bytes:
        """65 bytes ``r || s || v`` (v = 27 or 28), the usual wire form."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.v])


@runtime_checkable
class Signer(Protocol):
    """Signs 32-byte digests with one key. Thread-safe; the key never leaves the backend."""

    @property
    def address(self) -> bytes:
        """The key's 20-byte Ethereum address."""
        ...

    def sign_digest(self, digest: bytes) -> Signature:
        """Sign ``digest``: low-s, with recovery id, checked to recover :attr:`address`."""
        ...


def address_of_public_key(public_key: bytes) -> bytes:
    """Address of an uncompressed (65-byte, 0x04-prefixed) or compressed public key:
    the last 20 bytes of keccak256 of the 64-byte point (Yellow Paper, appendix F)."""
    point = coincurve.PublicKey(public_key).format(compressed=False)
    return keccak256(point[1:])[12:]


def recover_address(digest: bytes, signature: Signature) -> bytes:
    """Address whose key made ``signature`` over ``digest``."""
    raw = (signature.r.to_bytes(32, "big") + signature.s.to_bytes(32, "big")
           + bytes([signature.y_parity]))
    public = coincurve.PublicKey.from_signature_and_message(raw, digest, hasher=None)
    return keccak256(public.format(compressed=False)[1:])[12:]


def recover_claimed_signer(digest: bytes, claimed: bytes, signature: bytes, *, where: str,
                           subject: str, error: type[Exception]) -> bytes:
    """The address a 65-byte ``r || s || v`` operator ``signature`` over ``digest`` recovers
    to, which must be ``claimed``: v 27/28, r and s in range, s low (EIP-2). Otherwise
    ``error`` with ``where`` (which signature) and, for a wrong key, "the ``subject`` was
    changed after signing". One check for every operator-signed file (commands, heads)."""
    r, s, v = (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"),
               signature[64])
    if v not in (27, 28):
        raise error(f"{where} has v = {v}; only 27 or 28 is accepted")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise error(f"{where} has r or s out of range")
    if s > HALF_N:
        raise error(f"{where} is high-s; only low-s signatures (EIP-2) are accepted")
    try:
        recovered = recover_address(digest, Signature(r, s, v - 27))
    except Exception:  # coincurve raises a bare Exception when no key recovers
        raise error(f"{where} recovers to no key") from None
    if recovered != claimed:
        raise error(f"{where} recovers to {to_checksum_address(recovered)}: the {subject} "
                    f"was changed after signing, or the signature is forged")
    return recovered


def finalize_signature(digest: bytes, r: int, s: int, address: bytes) -> Signature:
    """Normalise ``(r, s)`` to low-s and attach the recovery id that gives ``address``;
    raise :class:`SigningError` if the signature does not belong to that key."""
    if len(digest) != 32:
        raise SigningError(f"refusing to sign a digest of {len(digest)} bytes (want 32)")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise SigningError("backend returned a signature with r or s out of range")
    if s > HALF_N:
        s = SECP256K1_N - s  # (r, n - s) is the same signature with the other parity
    for parity in (0, 1):
        candidate = Signature(r, s, parity)
        try:
            if recover_address(digest, candidate) == address:
                return candidate
        except Exception:  # coincurve raises a bare Exception when recovery fails
            continue
    raise SigningError(
        f"signature does not recover to 0x{address.hex()}: wrong key or a faulty backend; "
        "nothing was released")
