"""Reading a policy file: parsing and validating its TOML (:func:`parse_policy`), and
loading it only when its bytes match the pinned sha256 (:func:`load_policy`,
:func:`pin_policy`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from wallet.errors import MalformedRequestError, WalletError
from wallet.policy.erc20 import _TOKEN_SYMBOL, MAX_TOKEN_DECIMALS, parse_token_amount
from wallet.policy.evaluation import Policy
from wallet.policy.rules import (
    CoSign,
    Destination,
    FeeCaps,
    Limits,
    MessageRules,
    TimeLock,
    TokenLimits,
    TypedDataRule,
)
from wallet.policy.units import (
    _UNIT_DECIMALS,
    format_address,
    format_duration,
    parse_address,
    parse_amount,
    parse_duration,
    parse_selector,
)

POLICY_VERSION = 1
"""The ``version`` a policy file must declare."""


class PolicyPinError(WalletError):
    """The policy file's sha256 is not the pinned one: it changed since it was reviewed."""

    exit_code = 3


def policy_sha256(data: bytes) -> str:
    """Lower-case hex sha256 of a policy file's bytes: what the wallet config pins."""
    return hashlib.sha256(data).hexdigest()


class _Table:
    """A TOML table being read: typed getters, and unknown keys refused at :meth:`done`."""

    def __init__(self, data: Mapping[str, Any], where: str, source: str) -> None:
        self.data = data
        self.where = where
        self.source = source
        self.known: list[str] = []

    def fail(self, key: str | None, problem: str) -> NoReturn:
        place = self.where if key is None else (f"{self.where}.{key}" if self.where else key)
        raise MalformedRequestError(f"policy {self.source}: {place or 'top level'}: {problem}")

    def raw(self, key: str, required: bool) -> Any:
        self.known.append(key)
        if key not in self.data:
            if required:
                self.fail(key, "is required")
            return None
        return self.data[key]

    def parsed(self, key: str, parse: Any, required: bool = False) -> Any:
        value = self.raw(key, required)
        if value is None:
            return None
        try:
            return parse(value)
        except MalformedRequestError as exc:
            self.fail(key, str(exc))

    def typed(self, key: str, kind: type, required: bool = False, default: Any = None) -> Any:
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"must be {kind.__name__}, not {type(value).__name__} {value!r}")
        return value

    def strings(self, key: str, required: bool = False) -> list[str] | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, not {value!r}")
        return value

    def table(self, key: str, required: bool = False) -> _Table | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, not {value!r}")
        return _Table(value, f"{self.where}.{key}" if self.where else key, self.source)

    def tables(self, key: str) -> list[_Table]:
        value = self.raw(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, f"must be an array of tables ([[{self.where}.{key}]])")
        name = f"{self.where}.{key}" if self.where else key
        return [_Table(v, f"{name}[{i}]", self.source) for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - set(self.known))
        if unknown:
            self.fail(None, f"unknown key {unknown[0]!r} (known: {', '.join(self.known)})")


def _positive(table: _Table, key: str, value: int | None) -> int | None:
    if value is not None and value <= 0:
        table.fail(key, f"must be positive, not {value}")
    return value


def parse_policy(data: bytes, source: str = "<memory>") -> Policy:
    """Parse and validate a policy file's bytes (no pin check: see :func:`load_policy`).

    Raises :class:`MalformedRequestError` naming the file, the key and the problem for
    invalid TOML, an unknown key, a wrong type, a bad amount, address or duration, or an
    inconsistent rule.
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MalformedRequestError(f"policy {source}: not valid TOML: {exc}") from None
    top = _Table(document, "", source)
    version = top.typed("version", int, required=True)
    if version != POLICY_VERSION:
        top.fail("version", f"is {version}; this wallet reads version {POLICY_VERSION}")
    chain_id = _positive(top, "chain_id", top.typed("chain_id", int, required=True))
    assert chain_id is not None

    destinations: dict[bytes, Destination] = {}
    token_tables: list[tuple[_Table, Destination]] = []
    allow_create = False
    section = top.table("destinations")
    if section is not None:
        allow_create = section.typed("allow_create", bool, default=False)
        for entry in section.tables("allow"):
            dest, token_table = _parse_destination(entry)
            if dest.address in destinations:
                entry.fail("address", f"{format_address(dest.address)} is listed twice")
            destinations[dest.address] = dest
            if token_table is not None:
                token_tables.append((token_table, dest))
        section.done()

    section = top.table("limits", required=True)
    assert section is not None
    limits = Limits(per_transaction=section.parsed("per_transaction", parse_amount, True),
                    per_24h=section.parsed("per_24h", parse_amount, True))
    section.done()

    section = top.table("fees", required=True)
    assert section is not None
    fees = FeeCaps(
        max_total_fee=section.parsed("max_total_fee", parse_amount, True),
        max_gas=_positive(section, "max_gas", section.typed("max_gas", int)),
        max_fee_per_gas=section.parsed("max_fee_per_gas", parse_amount),
        max_priority_fee_per_gas=section.parsed("max_priority_fee_per_gas", parse_amount),
        max_gas_price=section.parsed("max_gas_price", parse_amount))
    section.done()

    timelock = None
    section = top.table("timelock")
    if section is not None:
        threshold = section.parsed("threshold", parse_amount, True)
        delay = _positive(section, "delay", section.parsed("delay", parse_duration, True))
        window = section.parsed("cancel_window", parse_duration)
        window = delay if window is None else window
        assert delay is not None
        if window > delay:
            section.fail("cancel_window", f"{format_duration(window)} is longer than the "
                         f"delay {format_duration(delay)}: a request would be signable while "
                         "still cancellable")
        timelock = TimeLock(threshold=threshold, delay=delay, cancel_window=window)
        section.done()

    cosign = None
    section = top.table("cosign")
    if section is not None:
        threshold = section.parsed("threshold", parse_amount, True)
        required = _positive(section, "required", section.typed("required", int, True))
        operators = _addresses(section, "operators", required=True)
        assert required is not None
        if not operators:
            section.fail("operators", "lists no operator")
        if required > len(operators):
            section.fail("required", f"is {required} but only {len(operators)} operators "
                         "are listed")
        cosign = CoSign(threshold=threshold, required=required, operators=frozenset(operators))
        section.done()

    for table, dest in token_tables:  # the token gates borrow [timelock] and [cosign]
        assert dest.token is not None
        if dest.token.timelock_threshold is not None and timelock is None:
            table.fail("timelock_threshold", "needs a [timelock] section (its delay)")
        if dest.token.cosign_threshold is not None and cosign is None:
            table.fail("cosign_threshold", "needs a [cosign] section (its operators)")

    delegates: frozenset[bytes] = frozenset()
    section = top.table("delegation")
    if section is not None:
        delegates = frozenset(_addresses(section, "allow_delegates", required=True))
        section.done()

    messages = MessageRules()
    section = top.table("messages")
    if section is not None:
        allow_personal = section.typed("allow_personal", bool, default=False)
        rules = tuple(_parse_typed_data_rule(entry) for entry in section.tables("typed_data"))
        messages = MessageRules(allow_personal=allow_personal, typed_data=rules)
        section.done()
    top.done()

    return Policy(chain_id=chain_id, limits=limits, fees=fees,
                  destinations=MappingProxyType(destinations), allow_create=allow_create,
                  delegates=delegates, timelock=timelock, cosign=cosign, messages=messages,
                  sha256=policy_sha256(data), source=source)


def _addresses(table: _Table, key: str, required: bool = False) -> list[bytes]:
    values = table.strings(key, required) or []
    addresses: list[bytes] = []
    for value in values:
        try:
            address = parse_address(value)
        except MalformedRequestError as exc:
            table.fail(key, str(exc))
        if address in addresses:
            table.fail(key, f"{format_address(address)} is listed twice")
        addresses.append(address)
    return addresses


def _parse_destination(entry: _Table) -> tuple[Destination, _Table | None]:
    address = entry.parsed("address", parse_address, True)
    label = entry.typed("label", str, default="")
    selectors: dict[bytes, str] = {}
    for value in entry.strings("selectors") or []:
        try:
            selector, shown = parse_selector(value)
        except MalformedRequestError as exc:
            entry.fail("selectors", str(exc))
        if selector in selectors:
            entry.fail("selectors", f"{shown} is listed twice (as {selectors[selector]})")
        selectors[selector] = shown
    plain = entry.typed("plain_transfers", bool, default=not selectors)
    token_table = entry.table("token")
    token = _parse_token(token_table) if token_table is not None else None
    entry.done()
    return Destination(address=address, label=label, selectors=MappingProxyType(selectors),
                       plain_transfers=plain, token=token), token_table


def _parse_token(table: _Table) -> TokenLimits:
    symbol = table.typed("symbol", str, required=True)
    if _TOKEN_SYMBOL.fullmatch(symbol) is None or symbol.lower() in _UNIT_DECIMALS:
        table.fail("symbol", f"{symbol!r} is not a token symbol (a letter, then up to 15 "
                   "letters or digits; not wei, gwei or ether)")
    decimals = table.typed("decimals", int, required=True)
    if not 0 <= decimals <= MAX_TOKEN_DECIMALS:
        table.fail("decimals", f"is {decimals}, not in 0..{MAX_TOKEN_DECIMALS} "
                   "(EIP-20 decimals() is a uint8)")

    def amount(value: object) -> int:
        return parse_token_amount(value, symbol, decimals)

    token = TokenLimits(symbol=symbol, decimals=decimals,
                        per_transaction=table.parsed("per_transaction", amount, True),
                        per_24h=table.parsed("per_24h", amount, True),
                        timelock_threshold=table.parsed("timelock_threshold", amount),
                        cosign_threshold=table.parsed("cosign_threshold", amount))
    table.done()
    return token


def _parse_typed_data_rule(entry: _Table) -> TypedDataRule:
    name = entry.typed("name", str, required=True)
    chain_id = _positive(entry, "chain_id", entry.typed("chain_id", int, required=True))
    contract = entry.parsed("verifying_contract", parse_address, True)
    version = entry.typed("version", str)
    primary = entry.strings("primary_types")
    if primary is not None and not primary:
        entry.fail("primary_types", "is empty: leave it out to allow every primary type")
    entry.done()
    assert chain_id is not None
    return TypedDataRule(name=name, chain_id=chain_id, verifying_contract=contract,
                         version=version,
                         primary_types=frozenset(primary) if primary is not None else None)


def _normalise_pin(pinned_sha256: str) -> str:
    pin = pinned_sha256.strip().lower()
    pin = pin.removeprefix("sha256:").removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{64}", pin) is None:
        raise MalformedRequestError(f"policy pin {pinned_sha256!r} is not a sha256 "
                                    "(64 hex digits)")
    return pin


def _read(path: str | PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MalformedRequestError(f"cannot read policy file {path}: {exc.strerror}") from None


def load_policy(path: str | PathLike[str], pinned_sha256: str) -> Policy:
    """Read the policy at ``path``, check its sha256 against the pin (hex, optionally
    prefixed ``sha256:`` or ``0x``), then parse it.

    Raises :class:`PolicyPinError` if the file changed since it was pinned, and
    :class:`MalformedRequestError` if it cannot be read or parsed.
    """
    pin = _normalise_pin(pinned_sha256)
    data = _read(path)
    actual = policy_sha256(data)
    if actual != pin:
        raise PolicyPinError(
            f"policy file {path} changed (sha256 {actual}, pinned {pin}): review it and "
            "re-pin with `orbital wallet policy pin`")
    return parse_policy(data, str(path))


def pin_policy(path: str | PathLike[str]) -> str:
    """The sha256 to pin for the policy at ``path``; the file must parse (a policy that
    cannot be loaded is never pinned)."""
    data = _read(path)
    parse_policy(data, str(path))
    return policy_sha256(data)
