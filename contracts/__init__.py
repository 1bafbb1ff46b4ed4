"""Solidity sources, pinned compiler, artifacts and the single EIP-712 definitions."""
