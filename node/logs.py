"""Structured logging for the node: text lines for people, or JSON lines for machines.

JSON: one object per line with ``ts`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``,
``msg`` (the formatted message), ``exc`` when an exception is logged, and every ``extra=``
field of the call (bytes as 0x-hex, anything else JSON cannot hold as its ``str``)::

    log.info("head %d verified", 17, extra={"upstream": "anvil", "age_s": 3.5})
    {"ts": "2026-11-23T00:00:00.000Z", "level": "info", "logger": "node.sync",
     "msg": "head 17 verified", "upstream": "anvil", "age_s": 3.5}

Text: ``TS LEVEL LOGGER: MSG key=value ...`` (extras appended, sorted by key).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                       "taskName"}


def _ts(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and
            not k.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _ts(record), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=_plain, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TS LEVEL LOGGER: MSG key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_ts(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in sorted(extras.items()))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in "\"=" for c in text) \
        else text


def setup_logging(format: str = "text", level: str = "info",
                  stream: TextIO | None = None, file: Path | None = None) -> logging.Handler:
    """Send the root logger's records at ``level`` and above to ``stream`` (default
    stderr) as ``format`` lines, and append them to ``file`` too when given, replacing
    handlers a previous call installed. Returns the stream's handler."""
    if format not in FORMATS:
        raise ValueError(f"log format {format!r}: want one of {', '.join(FORMATS)}")
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: want one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handlers: list[logging.Handler] = [handler]
    if file is not None:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_orbital", False)]:
        root.removeHandler(old)
        old.close()
    for each in handlers:
        each.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
        each._orbital = True  # type: ignore[attr-defined]
        root.addHandler(each)
    root.setLevel(LEVELS[level])
    return handler
