"""What each satellite did, read back from its node's JSON log after the run.

A node logs one JSON object per line (``[log] format = "json"``: ``ts`` in UTC ISO 8601,
``logger``, ``msg``). The mission's messages name the task; this module is the one place
that knows their wording (:data:`PATTERNS`), and maps each event's wall time to plan time
with the run's clock (``plan = start + (unix - epoch) * time_scale``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PATTERNS = {
    "run": re.compile(r"^task (0x[0-9a-f]{64}) run: output"),
    "energy_wait": re.compile(r"^task (0x[0-9a-f]{64}) waits for energy"),
    "certificate": re.compile(r"^task (0x[0-9a-f]{64}): certificate formed"),
    "routed": re.compile(r"^task (0x[0-9a-f]{64}): certificate routed: (\S+) submits first "
                         r"\((?:.* -> )?(\S+), down at \+(\d+) s\)"),
    "submitted": re.compile(r"^task (0x[0-9a-f]{64}): submitting its certificate"),
    "seen_certified": re.compile(r"^task (0x[0-9a-f]{64}) certified on chain"),
}
"""Mission log messages (:mod:`node.mission.mission`) -> event kind; group 1 is the task."""


@dataclass(frozen=True)
class NodeEvent:
    satellite: str
    kind: str
    task: str
    t: float  # plan time
    detail: tuple[str, ...] = ()  # "routed": (submitter, station, seconds until down)


def read_events(satellite: str, log: Path, start: float, epoch: float,
                time_scale: float) -> list[NodeEvent]:
    """The mission events in ``log`` (lines that are not JSON, or not these messages, are
    skipped: the log also holds whatever else the node said)."""
    out = []
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
            message, stamp = record["msg"], record["ts"]
        except (ValueError, KeyError, TypeError):
            continue
        for kind, pattern in PATTERNS.items():
            match = pattern.match(message) if isinstance(message, str) else None
            if match is None:
                continue
            unix = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            out.append(NodeEvent(satellite, kind, match.group(1),
                                 start + (unix - epoch) * time_scale, match.groups()[1:]))
            break
    return out
