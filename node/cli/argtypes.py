"""Argument types of the ``orbital`` command line, and its parser class.

Every number is bounded where it is parsed, so NaN, the infinities and integers that
overflow their field are a usage error (exit 2, one line), never a traceback or a silently
wrong value further in. Amounts take units as ``cast`` does (``1ether``, ``20gwei``).
:class:`Parser` refuses abbreviated options and keeps possible secrets out of its error
messages."""

from __future__ import annotations

import argparse
import datetime
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn


def finite(text: str) -> float:
    """A finite number (NaN and the infinities refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"want a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0."""
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"want a number > 0, got {text!r}")
    return value


def uint(bits: int) -> Callable[[str], int]:
    """An unsigned integer of ``bits`` bits (decimal or 0x-hex)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"want an integer, got {text!r}") from None
        if not 0 <= value < 2**bits:
            raise argparse.ArgumentTypeError(f"{text} does not fit in uint{bits}")
        return value
    parse.__name__ = f"uint{bits}"
    return parse


def moment(text: str) -> float:
    """Unix seconds (finite, >= 0) or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not 0 <= value < 2**63:
            raise argparse.ArgumentTypeError(f"want finite unix seconds >= 0, got {text!r}")
        return value
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want unix seconds or ISO 8601, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def beacon_root(text: str) -> bytes:
    """A 32-byte 0x-hex root."""
    raw = text.removeprefix("0x")
    if len(raw) != 64:
        raise argparse.ArgumentTypeError(f"want a 32-byte 0x-hex root, got {text!r}")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a 32-byte 0x-hex root, got {text!r}") from None


# -- amounts, addresses, hex ----------------------------------------------------------------

_UNITS = {"wei": 0, "gwei": 9, "ether": 18}
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*(wei|gwei|ether)?", re.IGNORECASE)
_MAX_UINT256 = 2**256 - 1


def wei(text: str) -> int:
    """An amount of wei as ``cast`` takes it: plain wei (``21000``), ``0x``-hex wei, or a
    decimal with a unit: ``1ether``, ``1.5ether``, ``20gwei``, ``100wei`` (a space before
    the unit is allowed, case is not significant). Exact: a fraction that is not a whole
    number of wei, a sign, an exponent or a value above 2^256-1 is refused."""
    stripped = text.strip()
    if stripped[:2].lower() == "0x":
        try:
            value = int(stripped, 16)
        except ValueError:
            raise argparse.ArgumentTypeError(f"want an amount, got {shown(text)}") from None
    else:
        match = _AMOUNT.fullmatch(stripped)
        if match is None:
            raise argparse.ArgumentTypeError(
                f"want an amount like 21000 (wei), 20gwei, 1.5ether, got {shown(text)}")
        whole, fraction, unit = match.groups()
        decimals = _UNITS[(unit or "wei").lower()]
        fraction = (fraction or "").rstrip("0")
        if len(fraction) > decimals:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number of wei")
        value = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if not 0 <= value <= _MAX_UINT256:
        raise argparse.ArgumentTypeError(f"{shown(text)} is above 2^256-1 wei")
    return value


def address(text: str) -> bytes:
    """A 20-byte address, ``0x`` + 40 hex digits."""
    raw = text.strip()
    if raw[:2].lower() == "0x":
        raw = raw[2:]
    if len(raw) != 40:
        raise argparse.ArgumentTypeError(
            f"want an address (0x and 40 hex digits), got {shown(text)}")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want an address (0x and 40 hex digits), got {shown(text)}") from None


def hex_bytes(text: str) -> bytes:
    """Bytes as hex digits, with or without ``0x``, an even number of them."""
    raw = text.strip()
    if raw[:2].lower() == "0x":
        raw = raw[2:]
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want hex bytes (0x and an even number of hex digits), got {shown(text)}"
        ) from None


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL (a JSON-RPC endpoint)."""
    if not text.startswith(("http://", "https://")) or len(text) <= len("http://"):
        raise argparse.ArgumentTypeError(f"want an http:// or https:// URL, got {shown(text)}")
    return text


# -- never echo a secret -------------------------------------------------------------------

_LONG_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{64,}")
_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9_-]*")


def shown(text: str, limit: int = 48) -> str:
    """``text`` quoted for an error message, unless it may be a secret: 32 or more bytes of
    hex (a private key, a seed) or anything longer than ``limit`` characters is described
    by its length only. PINs and passwords never reach a message through here, because no
    option takes one (they come from files, the environment or a prompt)."""
    if _LONG_HEX.search(text) or len(text) > limit:
        return f"(a {len(text)}-character value, not shown)"
    return repr(text)


def redact_arguments(arguments: list[str]) -> str:
    """Unrecognised command-line words, for an error message: option names only. A value
    after an unknown option may be exactly the secret someone tried to pass on the command
    line (``--pin 1234``, ``--password=...``, ``--private-key 0x...``); it is never
    repeated, only counted."""
    names: list[str] = []
    hidden = 0
    for word in arguments:
        name = word.split("=", 1)[0]
        if _OPTION.fullmatch(name):
            names.append(name + ("=..." if "=" in word else ""))
            hidden += "=" in word
        else:
            hidden += 1
    if hidden:
        names.append(f"({hidden} value{'s' if hidden != 1 else ''} not shown)")
    return " ".join(names)


_INVALID_CHOICE = re.compile(r"invalid choice: ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


class Parser(argparse.ArgumentParser):
    """The ``orbital`` parser and every subparser (``add_subparsers`` makes subparsers of
    the parent's class): options are never abbreviated (``--pin`` must not silently mean
    ``--pin-file``), and usage errors never repeat a value that could be a secret."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + redact_arguments(extras))
        return parsed

    def error(self, message: str) -> NoReturn:
        def choice(match: re.Match[str]) -> str:
            value = match.group(1)[1:-1]
            return match.group(0) if _WORD.fullmatch(value) else "invalid choice (not shown)"
        message = _LONG_HEX.sub("(hex not shown)", _INVALID_CHOICE.sub(choice, message))
        super().error(message)


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subparser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from all_parsers(sub)
