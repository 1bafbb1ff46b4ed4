"""Building and signing transactions with any :class:`~wallet.keys.signer.Signer`.

Supported envelopes: legacy with EIP-155 replay protection (and without, for
completeness), EIP-2930 access lists, EIP-1559 fee market and EIP-7702 set-code
transactions. The serialisation is eth-account's; this module computes the digest the
signer signs, assembles the signed envelope (``v = chainId * 2 + 35 + yParity`` for
EIP-155, ``yParity`` for typed envelopes, EIP-2718), and, before anything is released,
decodes the finished raw transaction again and checks that it recovers to the signer's
address.

Requests are read from JSON (for files, command payloads and the CLI): numbers as JSON
integers, ``0x`` hex strings or decimal strings -- never floats; amounts in wei.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import rlp
from eth_account import Account
from eth_account._utils.legacy_transactions import (
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_utils import keccak, to_checksum_address

from wallet.errors import MalformedRequestError, SigningError
from wallet.keys.signer import Signature, Signer

LEGACY, ACCESS_LIST, FEE_MARKET, SET_CODE = 0, 1, 2, 4
SET_CODE_MAGIC = b"\x05"
"""EIP-7702: an authorization signs keccak256(MAGIC || rlp([chain_id, address, nonce]))."""

_UINT64 = 2**64 - 1
_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class Authorization:
    """An EIP-7702 authorization tuple; unsigned until ``signature`` is set."""

    chain_id: int
    address: bytes  # the contract whose code the authority delegates to
    nonce: int
    signature: Signature | None = None

    def digest(self) -> bytes:
        """keccak256(0x05 || rlp([chain_id, address, nonce])) (EIP-7702)."""
        return keccak(SET_CODE_MAGIC + rlp.encode([self.chain_id, self.address, self.nonce]))


@dataclass(frozen=True)
class TransactionRequest:
    """An unsigned transaction, as an operator or an application asks for it."""

    tx_type: int
    chain_id: int | None  # None only for a legacy transaction without EIP-155
    nonce: int
    gas: int
    to: bytes | None  # None: contract creation (not for EIP-7702)
    value: int = 0
    data: bytes = b""
    gas_price: int | None = None  # legacy and EIP-2930
    max_fee_per_gas: int | None = None  # EIP-1559, EIP-7702
    max_priority_fee_per_gas: int | None = None
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()
    authorizations: tuple[Authorization, ...] = field(default=())

    @property
    def max_fee(self) -> int:
        """The most this transaction can cost in fees: gas x (max fee or gas price)."""
        price = self.gas_price if self.max_fee_per_gas is None else self.max_fee_per_gas
        return self.gas * (price or 0)

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (the inverse of :func:`request_from_json`)."""
        out: dict[str, Any] = {"type": self.tx_type, "nonce": self.nonce, "gas": self.gas,
                               "to": None if self.to is None else "0x" + self.to.hex(),
                               "value": str(self.value), "data": "0x" + self.data.hex()}
        if self.chain_id is not None:
            out["chainId"] = self.chain_id
        for key, value in (("gasPrice", self.gas_price), ("maxFeePerGas", self.max_fee_per_gas),
                           ("maxPriorityFeePerGas", self.max_priority_fee_per_gas)):
            if value is not None:
                out[key] = str(value)
        if self.tx_type in (ACCESS_LIST, FEE_MARKET, SET_CODE):
            out["accessList"] = [{"address": "0x" + a.hex(),
                                  "storageKeys": ["0x" + k.hex() for k in keys]}
                                 for a, keys in self.access_list]
        if self.tx_type == SET_CODE:
            out["authorizationList"] = [_authorization_json(a) for a in self.authorizations]
        return out


@dataclass(frozen=True)
class SignedTransaction:
    """A signed transaction, checked to recover to its signer."""

    request: TransactionRequest
    raw: bytes  # the EIP-2718 envelope, ready for eth_sendRawTransaction
    hash: bytes  # keccak256(raw)
    sender: bytes
    signature: Signature


# --- reading requests ------------------------------------------------------------------

def request_from_json(obj: Any) -> TransactionRequest:
    """Read a :class:`TransactionRequest` from JSON; every field checked."""
    if not isinstance(obj, Mapping):
        raise MalformedRequestError("transaction request must be a JSON object")
    known = {"type", "chainId", "nonce", "gas", "to", "value", "data", "input", "gasPrice",
             "maxFeePerGas", "maxPriorityFeePerGas", "accessList", "authorizationList"}
    unknown = set(obj) - known
    if unknown:
        raise MalformedRequestError(f"unknown transaction field(s): {', '.join(sorted(unknown))}")
    if "type" in obj:
        tx_type = _uint(obj["type"], "type", 8)
    elif "authorizationList" in obj:
        tx_type = SET_CODE
    elif "maxFeePerGas" in obj:
        tx_type = FEE_MARKET
    elif "accessList" in obj:
        tx_type = ACCESS_LIST
    else:
        tx_type = LEGACY
    if tx_type not in (LEGACY, ACCESS_LIST, FEE_MARKET, SET_CODE):
        raise MalformedRequestError(f"transaction type {tx_type} is not supported "
                                    "(0 legacy, 1 EIP-2930, 2 EIP-1559, 4 EIP-7702)")
    fee_market = tx_type in (FEE_MARKET, SET_CODE)
    needed = {"nonce", "gas", "chainId"} if tx_type != LEGACY else {"nonce", "gas"}
    needed |= {"maxFeePerGas", "maxPriorityFeePerGas"} if fee_market else {"gasPrice"}
    if tx_type == SET_CODE:
        needed |= {"to", "authorizationList"}
    missing = needed - set(obj)
    if missing:
        raise MalformedRequestError(f"missing transaction field(s): {', '.join(sorted(missing))}")
    for key in ("gasPrice",) if fee_market else ("maxFeePerGas", "maxPriorityFeePerGas"):
        if key in obj:
            raise MalformedRequestError(f"{key} does not belong in a type {tx_type} transaction")
    if tx_type == LEGACY and ("accessList" in obj or "authorizationList" in obj):
        raise MalformedRequestError("a legacy transaction has no accessList/authorizationList")
    if "data" in obj and "input" in obj:
        raise MalformedRequestError("give data or input, not both")
    to = None if obj.get("to") in (None, "", "0x") else _address(obj["to"], "to")
    if to is None and tx_type == SET_CODE:
        raise MalformedRequestError("an EIP-7702 transaction needs a destination (to)")
    request = TransactionRequest(
        tx_type=tx_type,
        chain_id=None if obj.get("chainId") is None else _uint(obj["chainId"], "chainId", 64),
        nonce=_uint(obj["nonce"], "nonce", 64),
        gas=_uint(obj["gas"], "gas", 64),
        to=to,
        value=_uint(obj.get("value", 0), "value"),
        data=_hex(obj.get("data", obj.get("input", "0x")), "data"),
        gas_price=None if fee_market else _uint(obj["gasPrice"], "gasPrice"),
        max_fee_per_gas=_uint(obj["maxFeePerGas"], "maxFeePerGas") if fee_market else None,
        max_priority_fee_per_gas=(_uint(obj["maxPriorityFeePerGas"], "maxPriorityFeePerGas")
                                  if fee_market else None),
        access_list=_access_list(obj.get("accessList", [])),
        authorizations=tuple(_authorization(a, i) for i, a in
                             enumerate(_list(obj.get("authorizationList", []),
                                             "authorizationList"))),
    )
    if fee_market and request.max_priority_fee_per_gas > request.max_fee_per_gas:  # type: ignore[operator]
        raise MalformedRequestError("maxPriorityFeePerGas exceeds maxFeePerGas (EIP-1559)")
    if tx_type == SET_CODE and not request.authorizations:
        raise MalformedRequestError("an EIP-7702 transaction needs at least one authorization")
    return request


def _uint(value: Any, name: str, bits: int = 256) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MalformedRequestError(f"{name}: expected an integer, hex or decimal string, "
                                    f"got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text[2:], 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise MalformedRequestError(f"{name}: not a number: {value!r}") from None
        if not text or "_" in text or text.startswith(("+", "-")):
            raise MalformedRequestError(f"{name}: not a number: {value!r}")
    else:
        number = value
    if number < 0 or number.bit_length() > bits:
        raise MalformedRequestError(f"{name}: {value} is out of range for uint{bits}")
    return number


def _hex(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedRequestError(f"{name}: expected 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedRequestError(f"{name}: bad hex {value[:24]!r}") from None
    if 2 * len(raw) != len(value) - 2:
        raise MalformedRequestError(f"{name}: bad hex {value[:24]!r}")
    if size is not None and len(raw) != size:
        raise MalformedRequestError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def _address(value: Any, name: str) -> bytes:
    return _hex(value, name, 20)


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedRequestError(f"{name}: expected a JSON array")
    return value


def _access_list(value: Any) -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    entries = []
    for i, entry in enumerate(_list(value, "accessList")):
        if not isinstance(entry, Mapping) or set(entry) != {"address", "storageKeys"}:
            raise MalformedRequestError(f"accessList[{i}]: want {{address, storageKeys}}")
        keys = tuple(_hex(k, f"accessList[{i}].storageKeys[{j}]", 32)
                     for j, k in enumerate(_list(entry["storageKeys"], "storageKeys")))
        entries.append((_address(entry["address"], f"accessList[{i}].address"), keys))
    return tuple(entries)


def _authorization(entry: Any, index: int) -> Authorization:
    where = f"authorizationList[{index}]"
    if not isinstance(entry, Mapping):
        raise MalformedRequestError(f"{where}: expected an object")
    unknown = set(entry) - {"chainId", "address", "nonce", "yParity", "r", "s"}
    if unknown or not {"chainId", "address", "nonce"} <= set(entry):
        raise MalformedRequestError(f"{where}: want chainId, address, nonce "
                                    "(and yParity, r, s when already signed)")
    signature = None
    if {"yParity", "r", "s"} & set(entry):
        if not {"yParity", "r", "s"} <= set(entry):
            raise MalformedRequestError(f"{where}: a signature needs yParity, r and s")
        signature = Signature(_uint(entry["r"], f"{where}.r"), _uint(entry["s"], f"{where}.s"),
                              _uint(entry["yParity"], f"{where}.yParity", 1))
    return Authorization(_uint(entry["chainId"], f"{where}.chainId"),
                         _address(entry["address"], f"{where}.address"),
                         _uint(entry["nonce"], f"{where}.nonce", 64), signature)


def _authorization_json(auth: Authorization) -> dict[str, Any]:
    out: dict[str, Any] = {"chainId": auth.chain_id, "address": "0x" + auth.address.hex(),
                           "nonce": auth.nonce}
    if auth.signature is not None:
        out.update(yParity=auth.signature.y_parity, r=hex(auth.signature.r),
                   s=hex(auth.signature.s))
    return out


# --- signing -----------------------------------------------------------------------------

def sign_authorization(auth: Authorization, signer: Signer) -> Authorization:
    """Sign an EIP-7702 authorization with ``signer`` (the authority)."""
    return Authorization(auth.chain_id, auth.address, auth.nonce,
                         signer.sign_digest(auth.digest()))


def _eth_account_dict(request: TransactionRequest,
                      authorizations: tuple[Authorization, ...]) -> dict[str, Any]:
    tx: dict[str, Any] = {"nonce": request.nonce, "gas": request.gas, "value": request.value,
                          "data": request.data,
                          "to": b"" if request.to is None else to_checksum_address(request.to)}
    if request.chain_id is not None:
        tx["chainId"] = request.chain_id
    if request.tx_type == LEGACY:
        tx["gasPrice"] = request.gas_price
        return tx
    tx["type"] = request.tx_type
    tx["accessList"] = [{"address": to_checksum_address(a), "storageKeys": ["0x" + k.hex()
                                                                           for k in keys]}
                        for a, keys in request.access_list]
    if request.tx_type == ACCESS_LIST:
        tx["gasPrice"] = request.gas_price
        return tx
    tx["maxFeePerGas"] = request.max_fee_per_gas
    tx["maxPriorityFeePerGas"] = request.max_priority_fee_per_gas
    if request.tx_type == SET_CODE:
        tx["authorizationList"] = [
            {"chainId": a.chain_id, "address": to_checksum_address(a.address), "nonce": a.nonce,
             "yParity": a.signature.y_parity, "r": a.signature.r, "s": a.signature.s}
            for a in authorizations if a.signature is not None]
    return tx


def signing_digest(request: TransactionRequest) -> bytes:
    """The digest the sender signs: keccak256 of the unsigned payload (EIP-155 for
    legacy, ``type || rlp(payload)`` for typed envelopes, EIP-2718). EIP-7702
    authorizations must already be signed: their signatures are part of the payload."""
    return bytes(_unsigned(request).hash())


JUDGEMENT_TAG = b"orbital-7702-judgement/1\x00"
"""Domain tag of :func:`judgement_digest` for a transaction with unsigned authorizations:
the result is never a digest any transaction, message or authorization is signed over."""


def judgement_digest(request: TransactionRequest) -> bytes:
    """The digest that names ``request`` to the policy *before anything is signed*.

    EIP-7702: the digest a type-4 transaction is signed over covers its authorizations'
    signatures, so it exists only after they were made. The whole transaction must be
    judged before any of them is (an authorization signed for a transaction the policy then
    refuses is a delegation anyone can submit). For such a request this is keccak256(
    :data:`JUDGEMENT_TAG` || keccak256(``0x04`` || rlp(payload)) with every authorization
    still to be signed carried with yParity, r and s zero): it binds every field -- the
    access list and each authorization tuple included -- and is the same every time the
    same request is asked for (a time-lock or operator approvals bind to it, though an
    HSM's ECDSA signatures differ each time). Otherwise it is :func:`signing_digest`."""
    if all(a.signature is not None for a in request.authorizations):
        return signing_digest(request)
    placeholder = Signature(0, 0, 0)
    authorizations = tuple(a if a.signature is not None else replace(a, signature=placeholder)
                           for a in request.authorizations)
    unsigned = serializable_unsigned_transaction_from_dict(
        _eth_account_dict(request, authorizations))
    return keccak(JUDGEMENT_TAG + bytes(unsigned.hash()))


def _unsigned(request: TransactionRequest) -> Any:
    if any(a.signature is None for a in request.authorizations):
        raise SigningError("sign the EIP-7702 authorizations before the transaction")
    return serializable_unsigned_transaction_from_dict(
        _eth_account_dict(request, request.authorizations))


def sign_authorizations(request: TransactionRequest, signer: Signer) -> TransactionRequest:
    """``request`` with its unsigned EIP-7702 authorizations signed by ``signer``."""
    auths = tuple(a if a.signature is not None else sign_authorization(a, signer)
                  for a in request.authorizations)
    return replace(request, authorizations=auths)


def assemble(request: TransactionRequest, signature: Signature,
             signer_address: bytes) -> SignedTransaction:
    """Put ``signature`` into ``request``'s envelope (``v = chainId * 2 + 35 + yParity``
    for EIP-155, ``yParity`` for typed envelopes), then decode the raw transaction again
    and check it recovers to ``signer_address``; refuse to release it otherwise."""
    if request.tx_type != LEGACY:
        v = signature.y_parity
    elif request.chain_id is None:
        v = 27 + signature.y_parity
    else:
        v = request.chain_id * 2 + 35 + signature.y_parity  # EIP-155
    raw = bytes(encode_transaction(_unsigned(request), vrs=(v, signature.r, signature.s)))
    try:
        sender = bytes.fromhex(Account.recover_transaction(raw)[2:])
    except Exception as exc:
        raise SigningError(f"the signed transaction does not decode: {exc}") from None
    if sender != signer_address:
        raise SigningError(f"the signed transaction recovers to 0x{sender.hex()}, not the "
                           f"signer 0x{signer_address.hex()}; nothing was released")
    return SignedTransaction(request, raw, keccak(raw), sender, signature)


def sign_transaction(request: TransactionRequest, signer: Signer) -> SignedTransaction:
    """Sign ``request`` without any policy (the ground CLI's offline signing; on board,
    :class:`wallet.onboard.OnboardSigner` adds the policy and the audit log). Unsigned
    EIP-7702 authorizations are signed by ``signer`` first."""
    request = sign_authorizations(request, signer)
    return assemble(request, signer.sign_digest(signing_digest(request)), signer.address)
