"""Reading the JSON files operators give to ``orbital verify``.

A file may hold a bare JSON-RPC ``result`` or a whole response
(``{"jsonrpc": "2.0", "id": .., "result": ..}``); ``-`` reads standard input. Anything
else -- a missing file, invalid JSON, a JSON-RPC error, a null result, a file larger
than :data:`MAX_FILE_BYTES` -- is a :class:`MalformedInputError` naming the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from node.chain.errors import MalformedInputError
from wallet.jsondepth import json_nesting_exceeds

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest file accepted (a full mainnet block with receipts is a few MB)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting accepted; JSON-RPC results nest about five levels. Checked before
parsing, so a hostile file cannot exhaust the parser's stack (whose limit other
libraries in the process may have raised)."""

def load_result(path: str) -> Any:
    """The JSON-RPC result held by ``path`` (or standard input for ``-``)."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MalformedInputError(f"cannot read: {exc.strerror}", where=name) from None
    if len(raw) > MAX_FILE_BYTES:
        raise MalformedInputError(f"larger than {MAX_FILE_BYTES} bytes", where=name)
    if json_nesting_exceeds(raw.decode("utf-8", "replace"), MAX_JSON_DEPTH):
        raise MalformedInputError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                                  where=name)
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedInputError(f"not JSON ({exc})", where=name) from None
    if isinstance(value, dict) and "jsonrpc" in value:
        if value.get("error") is not None:
            raise MalformedInputError(f"holds a JSON-RPC error: {value['error']}", where=name)
        if "result" not in value:
            raise MalformedInputError("JSON-RPC response without a result", where=name)
        value = value["result"]
    if value is None:
        raise MalformedInputError("result is null (not found by the RPC?)", where=name)
    return value
