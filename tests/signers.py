"""A software :class:`~wallet.keys.signer.Signer` for tests that need a key but are not
about key storage: a coincurve key in memory whose raw ``(r, s)`` goes through
:func:`~wallet.keys.signer.finalize_signature`, like every real backend's."""

from __future__ import annotations

import threading

import coincurve
from eth_utils import keccak

from wallet.keys.signer import SECP256K1_N, Signature, address_of_public_key, finalize_signature


class SoftwareSigner:
    """Signs digests with a private key derived from ``seed`` (deterministic per seed), or
    with ``private_key`` when given.

    ``high_s=True`` hands ``finalize_signature`` the high-s twin of every signature, as a
    PKCS#11 token does about half of the time. ``signed`` lists every digest signed.
    """

    def __init__(self, seed: str = "orbital test key", *, high_s: bool = False,
                 private_key: bytes | None = None) -> None:
        self.private_key = keccak(text=seed) if private_key is None else private_key
        self._key = coincurve.PrivateKey(self.private_key)
        self._high_s = high_s
        self._address = address_of_public_key(self._key.public_key.format(compressed=False))
        self._lock = threading.Lock()
        self.signed: list[bytes] = []

    @property
    def address(self) -> bytes:
        return self._address

    def sign_digest(self, digest: bytes) -> Signature:
        raw = self._key.sign_recoverable(digest, hasher=None)
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
        if self._high_s:
            s = SECP256K1_N - s
        with self._lock:
            self.signed.append(digest)
        return finalize_signature(digest, r, s, self._address)


def software_signer(hex_key: str) -> SoftwareSigner:
    """A signer for the 32-byte private key ``0x...``."""
    return SoftwareSigner(private_key=bytes.fromhex(hex_key.removeprefix("0x")))


def labelled_signer(label: str) -> SoftwareSigner:
    """A deterministic signer named by ``label``."""
    return SoftwareSigner(f"orbital test key {label}")
