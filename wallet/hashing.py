"""Keccak-256 and EIP-55 checksummed addresses, on the C keccak of safe-pysha3.

eth-utils computes the same values but through eth-hash's pure-Python-wrapped backend,
about ten times slower per hash; the wallet's per-signature path (policy, recovery
check) uses these instead.
"""

from __future__ import annotations

import sha3


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the original padding, as Ethereum uses it)."""
    return sha3.keccak_256(data).digest()


def checksum_address(address: bytes) -> str:
    """``0x``-address with the EIP-55 mixed-case checksum."""
    digits = address.hex()
    mask = keccak256(digits.encode()).hex()[: len(digits)]
    return "0x" + "".join(c.upper() if int(m, 16) >= 8 else c
                          for c, m in zip(digits, mask, strict=True))
