"""Digests of signed messages: EIP-191 personal messages and EIP-712 typed data.

The encodings themselves are eth-account's (one implementation, widely checked); this
module is the single place the wallet turns a message into the 32-byte digest a
:class:`~wallet.keys.signer.Signer` signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account.messages import _hash_eip191_message, encode_defunct, encode_typed_data

from wallet.errors import MalformedRequestError


def personal_message_digest(message: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message) (EIP-191,
    version 0x45)."""
    return bytes(_hash_eip191_message(encode_defunct(primitive=message)))


def typed_data_digest(typed_data: Mapping[str, Any]) -> bytes:
    """keccak256(0x19 0x01 || domainSeparator || hashStruct(message)) (EIP-712) of a full
    typed-data document ``{types, primaryType, domain, message}``."""
    try:
        signable = encode_typed_data(full_message=dict(typed_data))
    except Exception as exc:  # eth-account raises several types for bad documents
        raise MalformedRequestError(f"invalid EIP-712 typed data: {exc}") from None
    return bytes(_hash_eip191_message(signable))
