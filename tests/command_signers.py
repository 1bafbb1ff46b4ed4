"""A minimal in-memory :class:`~wallet.keys.signer.Signer` for the command-envelope tests:
coincurve signs, :func:`~wallet.keys.signer.finalize_signature` normalises and checks."""

from __future__ import annotations

import coincurve
from eth_utils import keccak

from wallet.keys.signer import Signature, address_of_public_key, finalize_signature


class CommandTestSigner:
    """A secp256k1 key held in memory (tests only), derived from a label."""

    def __init__(self, label: str) -> None:
        self.private_key = keccak(text=f"orbital command test key {label}")
        self._key = coincurve.PrivateKey(self.private_key)
        self._address = address_of_public_key(self._key.public_key.format(compressed=False))

    @property
    def address(self) -> bytes:
        return self._address

    def sign_digest(self, digest: bytes) -> Signature:
        raw = self._key.sign_recoverable(digest, hasher=None)  # r || s || recid
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
        return finalize_signature(digest, r, s, self._address)
