"""Keccak-256, the hash of the execution layer (Yellow Paper, appendix B; FIPS-202
Keccak with the original 0x01 padding, *not* SHA3-256). The function itself is the
wallet's (:func:`wallet.hashing.keccak256`, safe-pysha3's C Keccak): one implementation
for the whole project (node may import wallet, not the other way round)."""

from __future__ import annotations

from wallet.hashing import keccak256

__all__ = ["EMPTY_KECCAK", "keccak256"]

EMPTY_KECCAK = keccak256(b"")
"""keccak256(b"") = 0xc5d246...a470: the codeHash of an account without code."""
assert EMPTY_KECCAK.hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
