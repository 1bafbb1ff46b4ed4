"""How deep a JSON document nests, measured before it is parsed.

Python's C JSON parser recurses once per bracket; with the recursion limit raised (some
libraries raise it on import) a hostile document can overflow the C stack and kill the
process. Every reader of untrusted JSON in orbital (the wallet's files, ``orbital
verify``) checks the depth with :func:`json_nesting_exceeds` first. The scan is one
regular-expression pass: strings are skipped whole (escapes included; an unterminated
one runs to the end, which keeps the scan linear), brackets are counted.
"""

from __future__ import annotations

import re

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]')


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings in ``text`` nest more than ``limit`` deep."""
    if text.count("[") + text.count("{") <= limit:
        return False  # too few brackets to nest that deep
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token.group()[0]
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        elif bracket in "]}":
            depth -= 1
    return False
