"""A request to sign (:class:`SigningRequest`), checked well formed, and its identity
(:attr:`SigningRequest.request_id`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from wallet.errors import MalformedRequestError
from wallet.hashing import keccak256
from wallet.messages import personal_message_digest, typed_data_digest
from wallet.policy.erc20 import TokenCallError
from wallet.policy.rules import TypedDataDomain
from wallet.policy.units import MAX_UINT256, format_address, format_wei, parse_address

if TYPE_CHECKING:
    from wallet.policy.evaluation import Policy

RequestKind = Literal["transaction", "personal_message", "typed_data", "authorization"]

SUPPORTED_TX_TYPES: Mapping[int, str] = MappingProxyType({
    0: "legacy (EIP-155)", 1: "EIP-2930", 2: "EIP-1559", 4: "EIP-7702"})
"""EIP-2718 transaction types the policy can judge."""

_KNOWN_TX_TYPES = {**SUPPORTED_TX_TYPES, 3: "EIP-4844 blob"}
_GAS_PRICE_TYPES = frozenset({0, 1})  # priced by gas_price; 2, 3, 4 by the EIP-1559 fields


@dataclass(frozen=True)
class Authorization:
    """An EIP-7702 authorization tuple: delegate the authority's account to ``address``'s
    code, for ``chain_id`` (0: every chain), at the authority's ``nonce``."""

    chain_id: int
    address: bytes
    nonce: int


def _check_uint(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT256:
        raise MalformedRequestError(f"signing request: {name} must be an integer in 0..2^256-1,"
                                    f" not {value!r}")


def _check_bytes(name: str, value: object, size: int | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        want = f"{size} bytes" if size is not None else "bytes"
        raise MalformedRequestError(f"signing request: {name} must be {want}, not {value!r}")


@dataclass(frozen=True)
class SigningRequest:
    """What the signer is asked to sign, as the policy sees it.

    Build one with :meth:`transaction`, :meth:`personal_message`, :meth:`typed_data` or
    :meth:`authorization`; the constructor checks every field and raises
    :class:`MalformedRequestError` for a request that is not well formed (a policy
    decision is only ever about a well-formed request).
    """

    kind: RequestKind
    sender: bytes  # 20-byte address of the key asked to sign
    chain_id: int | None = None  # EIP-155 chain id; None only for a pre-EIP-155 legacy tx
    to: bytes | None = None  # 20-byte destination; None: contract creation
    value: int = 0  # wei
    data: bytes = b""  # calldata (or initcode when creating a contract)
    gas: int = 0  # gas limit
    tx_type: int = 2  # EIP-2718 type
    nonce: int | None = None  # the sender's account nonce (binds request_id to one tx)
    max_fee_per_gas: int | None = None  # EIP-1559 (types 2, 3, 4)
    max_priority_fee_per_gas: int | None = None  # EIP-1559 (types 2, 3, 4)
    gas_price: int | None = None  # types 0 and 1
    authorization_list: tuple[Authorization, ...] = ()  # EIP-7702 (type 4)
    domain: TypedDataDomain | None = None  # EIP-712 (typed_data)
    primary_type: str | None = None  # EIP-712 (typed_data)
    digest: bytes | None = None
    """The 32 bytes that will be signed, when known (tx signing hash, EIP-191 or EIP-712
    digest): part of :attr:`request_id`, so approvals and a time-lock bind to them. An
    EIP-7702 transaction whose authorizations are still to be signed is judged whole
    before any of them is, so its signing hash does not exist yet: it carries
    ``wallet.transactions.judgement_digest`` instead."""

    def __post_init__(self) -> None:
        kinds = ("transaction", "personal_message", "typed_data", "authorization")
        if self.kind not in kinds:
            raise MalformedRequestError(f"signing request: unknown kind {self.kind!r}")
        _check_bytes("sender", self.sender, 20)
        _check_bytes("digest", self.digest, 32, optional=True)
        _check_uint("chain_id", self.chain_id, optional=True)
        if self.kind == "transaction":
            self._check_transaction()
        elif self.kind == "authorization":
            if len(self.authorization_list) != 1:
                raise MalformedRequestError(
                    "signing request: an authorization request carries exactly one "
                    "authorization")
            self._check_authorizations()
        elif self.kind == "typed_data" and not isinstance(self.domain, TypedDataDomain):
            raise MalformedRequestError("signing request: typed data needs its EIP-712 domain")

    def _check_transaction(self) -> None:
        _check_bytes("to", self.to, 20, optional=True)
        _check_bytes("data", self.data, None)
        for name in ("value", "gas", "tx_type"):
            _check_uint(name, getattr(self, name))
        for name in ("nonce", "max_fee_per_gas", "max_priority_fee_per_gas", "gas_price"):
            _check_uint(name, getattr(self, name), optional=True)
        if self.tx_type not in _KNOWN_TX_TYPES:
            return  # well formed enough: the tx_type rule denies it by name
        if self.tx_type in _GAS_PRICE_TYPES:
            if self.gas_price is None or self.max_fee_per_gas is not None \
                    or self.max_priority_fee_per_gas is not None:
                raise MalformedRequestError(
                    f"signing request: a type {self.tx_type} transaction is priced by "
                    "gas_price alone")
        elif (self.gas_price is not None or self.max_fee_per_gas is None
              or self.max_priority_fee_per_gas is None):
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction needs max_fee_per_gas "
                "and max_priority_fee_per_gas and no gas_price (EIP-1559)")
        if self.chain_id is None and self.tx_type != 0:
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction must carry a chain id")
        if self.tx_type in (3, 4) and self.to is None:
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction cannot create a contract")
        if self.tx_type == 4:
            if not self.authorization_list:
                raise MalformedRequestError(
                    "signing request: an EIP-7702 transaction needs a non-empty "
                    "authorization list")
            self._check_authorizations()
        elif self.authorization_list:
            raise MalformedRequestError(
                "signing request: only an EIP-7702 (type 4) transaction carries authorizations")

    def _check_authorizations(self) -> None:
        if not isinstance(self.authorization_list, tuple):
            raise MalformedRequestError("signing request: authorization_list must be a tuple")
        for i, auth in enumerate(self.authorization_list):
            if not isinstance(auth, Authorization):
                raise MalformedRequestError(f"signing request: authorization {i} is {auth!r}")
            _check_uint(f"authorization {i} chain_id", auth.chain_id)
            _check_bytes(f"authorization {i} address", auth.address, 20)
            _check_uint(f"authorization {i} nonce", auth.nonce)

    # -- constructors

    @classmethod
    def transaction(cls, *, sender: bytes, chain_id: int | None, to: bytes | None,
                    value: int = 0, data: bytes = b"", gas: int, tx_type: int = 2,
                    nonce: int | None = None, max_fee_per_gas: int | None = None,
                    max_priority_fee_per_gas: int | None = None, gas_price: int | None = None,
                    authorization_list: Iterable[Authorization] = (),
                    digest: bytes | None = None) -> SigningRequest:
        """A transaction of EIP-2718 type ``tx_type``."""
        return cls("transaction", sender, chain_id=chain_id, to=to, value=value, data=data,
                   gas=gas, tx_type=tx_type, nonce=nonce, max_fee_per_gas=max_fee_per_gas,
                   max_priority_fee_per_gas=max_priority_fee_per_gas, gas_price=gas_price,
                   authorization_list=tuple(authorization_list), digest=digest)

    @classmethod
    def personal_message(cls, *, sender: bytes, message: bytes) -> SigningRequest:
        """An EIP-191 personal message (version 0x45); the digest is computed here."""
        _check_bytes("message", message, None)
        return cls("personal_message", sender, digest=personal_message_digest(message))

    @classmethod
    def typed_data(cls, *, sender: bytes, document: Mapping[str, Any]) -> SigningRequest:
        """A full EIP-712 document ``{types, primaryType, domain, message}``; its domain and
        primary type are read here and its digest computed (invalid documents raise
        :class:`MalformedRequestError`)."""
        digest = typed_data_digest(document)
        raw = document.get("domain", {})
        if not isinstance(raw, Mapping):
            raise MalformedRequestError("EIP-712 document: domain is not an object")
        chain_id = raw.get("chainId")
        if isinstance(chain_id, str):
            try:
                chain_id = int(chain_id, 0)
            except ValueError:
                raise MalformedRequestError(
                    f"EIP-712 domain: chainId {chain_id!r} is not a number") from None
        contract = raw.get("verifyingContract")
        domain = TypedDataDomain(
            name=raw.get("name"), version=raw.get("version"), chain_id=chain_id,
            verifying_contract=_domain_contract(contract))
        primary = document.get("primaryType")
        return cls("typed_data", sender, chain_id=chain_id, domain=domain,
                   primary_type=primary if isinstance(primary, str) else None, digest=digest)

    @classmethod
    def authorization(cls, *, sender: bytes, authorization: Authorization,
                      digest: bytes | None = None) -> SigningRequest:
        """An EIP-7702 authorization tuple signed by ``sender``: it delegates the sender's
        own account, so it passes the same ``delegation`` rule as a type-4 transaction."""
        return cls("authorization", sender, chain_id=authorization.chain_id,
                   authorization_list=(authorization,), digest=digest)

    # -- fees

    @property
    def max_price(self) -> int:
        """The most one unit of gas may cost: ``max_fee_per_gas`` (EIP-1559 types), else
        ``gas_price`` (types 0 and 1); 0 for a request that is not a transaction."""
        if self.kind != "transaction":
            return 0
        price = self.gas_price if self.max_fee_per_gas is None else self.max_fee_per_gas
        return price or 0

    @property
    def max_fee(self) -> int:
        """The most this transaction can pay in fees, in wei: gas limit x
        :attr:`max_price`. It leaves the account like the value, so it counts toward the
        ether limits (rules ``per_transaction`` and ``per_24h``)."""
        return self.gas * self.max_price if self.kind == "transaction" else 0

    @property
    def ether_spent(self) -> int:
        """What the ether limits count for this request: value + :attr:`max_fee`."""
        return self.value + self.max_fee if self.kind == "transaction" else 0

    # -- identity

    def to_payload(self, policy: Policy | None = None) -> dict[str, Any]:
        """The request as JSON-compatible values (bytes as ``0x`` hex, amounts as decimal
        strings): what :attr:`request_id` hashes. With ``policy`` (what the audit log
        records), a call to one of its token destinations also carries ``token_call``: the
        decoded ERC-20 call with its ``symbol`` and ``decimals``, or ``{"error": ...}`` for
        calldata that does not decode."""
        def hx(value: bytes | None) -> str | None:
            return None if value is None else "0x" + value.hex()

        payload: dict[str, Any] = {"kind": self.kind, "sender": hx(self.sender),
                                   "chain_id": self.chain_id, "digest": hx(self.digest)}
        if self.kind == "transaction":
            payload.update({
                "tx_type": self.tx_type, "nonce": self.nonce, "to": hx(self.to),
                "value": str(self.value), "data": hx(self.data), "gas": self.gas,
                "max_fee_per_gas": _str_or_none(self.max_fee_per_gas),
                "max_priority_fee_per_gas": _str_or_none(self.max_priority_fee_per_gas),
                "gas_price": _str_or_none(self.gas_price)})
        if self.authorization_list:
            payload["authorization_list"] = [
                {"chain_id": a.chain_id, "address": hx(a.address), "nonce": a.nonce}
                for a in self.authorization_list]
        if self.domain is not None:
            payload["domain"] = {
                "name": self.domain.name, "version": self.domain.version,
                "chain_id": self.domain.chain_id,
                "verifying_contract": hx(self.domain.verifying_contract)}
            payload["primary_type"] = self.primary_type
        try:
            found = policy.token_call(self) if policy is not None else None
        except TokenCallError as exc:
            payload["token_call"] = {"error": str(exc)}
        else:
            if found is not None:
                token, call = found
                payload["token_call"] = {**call.to_payload(), "symbol": token.symbol,
                                         "decimals": token.decimals}
        return payload

    @cached_property
    def request_id(self) -> bytes:
        """keccak256(``b"orbital-policy-request/1\\x00"`` || canonical JSON of
        :meth:`to_payload`): names this exact request in the time-lock table, in operator
        approvals and in the audit log."""
        body = json.dumps(self.to_payload(), sort_keys=True, separators=(",", ":"))
        return keccak256(b"orbital-policy-request/1\x00" + body.encode())

    def describe(self, policy: Policy | None = None) -> str:
        """A short human description ("transfer of 1 ether to 0x... (treasury)")."""
        if self.kind == "personal_message":
            return "personal message"
        if self.kind == "typed_data":
            assert self.domain is not None
            return f"typed data {self.primary_type!r} ({self.domain.describe()})"
        if self.kind == "authorization":
            auth = self.authorization_list[0]
            return (f"EIP-7702 authorization delegating to {format_address(auth.address)} "
                    f"on chain {auth.chain_id}")
        value = format_wei(self.value)
        if self.to is None:
            return f"contract creation with value {value}"
        dest = policy.destinations.get(self.to) if policy is not None else None
        target = dest.describe() if dest is not None else format_address(self.to)
        if not self.data:
            return f"transfer of {value} to {target}"
        try:
            found = policy.token_call(self) if policy is not None else None
        except TokenCallError:
            found = None  # described by its selector below; the calldata rule denies it
        if found is not None:
            token, call = found
            return (f"{call.describe(token.symbol, token.decimals)} on {target} with value "
                    f"{value}")
        selector = self.data[:4]
        shown = dest.selectors.get(selector) if dest is not None else None
        return f"call {shown or '0x' + selector.hex()} on {target} with value {value}"


def _domain_contract(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes) and len(value) == 20:
        return value
    if isinstance(value, str):
        return parse_address(value.lower())  # requesters' checksums are not ours to judge
    raise MalformedRequestError(f"EIP-712 domain: verifyingContract {value!r} is not an address")


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)
