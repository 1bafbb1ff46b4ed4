"""Argument types of the ``orbital`` command line: every number is bounded where it is
parsed, so NaN, the infinities and integers that overflow their field are a usage error
(exit 2, one line), never a traceback or a silently wrong value further in."""

from __future__ import annotations

import argparse
import datetime
import math
from collections.abc import Callable


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
