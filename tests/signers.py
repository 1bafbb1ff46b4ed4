"""A software Signer for tests that need a key but are not about key storage: a
coincurve private key held in memory, its raw (r, s) put through the same
``finalize_signature`` every backend uses."""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from eth_utils import keccak

from wallet.keys.signer import Signature, address_of_public_key, finalize_signature


@dataclass(frozen=True)
class SoftwareSigner:
    """Implements :class:`wallet.keys.signer.Signer` with a key in memory."""

    key: coincurve.PrivateKey

    @property
    def private_key(self) -> bytes:
        """The 32-byte secret (tests compare against eth-account with it)."""
        return self.key.secret

    @property
    def address(self) -> bytes:
        return address_of_public_key(self.key.public_key.format(compressed=False))

    def sign_digest(self, digest: bytes) -> Signature:
        raw = self.key.sign_recoverable(digest, hasher=None)
        return finalize_signature(digest, int.from_bytes(raw[:32], "big"),
                                  int.from_bytes(raw[32:64], "big"), self.address)


def software_signer(hex_key: str) -> SoftwareSigner:
    """A signer for the 32-byte private key ``0x...``."""
    return SoftwareSigner(coincurve.PrivateKey(bytes.fromhex(hex_key.removeprefix("0x"))))


def labelled_signer(label: str) -> SoftwareSigner:
    """A deterministic signer named by ``label`` (key = keccak256 of a fixed phrase)."""
    return SoftwareSigner(coincurve.PrivateKey(keccak(text=f"orbital test key {label}")))
