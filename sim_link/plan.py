"""Contact plans: when a link exists, how fast it is each way, how long bytes take.

A plan is a list of *contacts*. Each contact is one window during which ``source`` can
send to ``target`` (and ``target`` back, at its own rate): a ground-station pass or an
inter-satellite visibility window. Times are UNIX seconds (UTC). The one-way delay
(light time over the slant range) changes during a pass; it is sampled and interpolated
linearly. Loss is the probability that a segment is lost, which a reliable stream sees
as a retransmission stall (see :mod:`sim_link.proxy`).

Node names are ``[A-Za-z0-9_.]+`` (no hyphen), so a link is named ``SOURCE-TARGET``.

File format (JSON, ``"format": "orbital-contact-plan"``, ``"version": 1``; the JSON
Schema is ``plan.schema.json`` beside this module)::

    {"format": "orbital-contact-plan", "version": 1,
     "generated": "2026-11-23T00:00:00Z",
     "contacts": [
       {"source": "SAT1", "target": "SVALBARD", "class": "S-band",
        "start": 1763856000.0, "end": 1763856540.0,
        "rate_bps": {"forward": 2000000, "reverse": 64000},
        "delay_s": [[1763856000.0, 0.0071], [1763856270.0, 0.0021], ...],
        "loss": 0.0,
        "max_elevation_deg": 42.5}
     ]}
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim_link.errors import LinkError

FORMAT = "orbital-contact-plan"
VERSION = 1
SPEED_OF_LIGHT_KM_S = 299_792.458
_NAME = re.compile(r"[A-Za-z0-9_.]+\Z")


class PlanError(LinkError):
    """A plan file or contact is malformed; the message names the field."""


@dataclass(frozen=True)
class Contact:
    """One window during which ``source`` and ``target`` can talk."""

    source: str
    target: str
    start: float  # UNIX seconds, UTC
    end: float
    rate_forward_bps: float  # source -> target
    rate_reverse_bps: float  # target -> source
    delay_samples: tuple[tuple[float, float], ...]  # (time, one-way delay in s), sorted
    loss: float = 0.0  # probability a segment is lost (0 <= loss < 1)
    link_class: str = ""
    max_elevation_deg: float | None = None  # ground passes only

    def __post_init__(self) -> None:
        for name in (self.source, self.target):
            if not _NAME.match(name):
                raise PlanError(f"node name {name!r}: use letters, digits, '_' and '.'")
        if not (math.isfinite(self.start) and math.isfinite(self.end)
                and self.end > self.start):
            raise PlanError(f"contact {self.link}: end {self.end} must be after start "
                            f"{self.start}")
        if self.rate_forward_bps <= 0 or self.rate_reverse_bps <= 0:
            raise PlanError(f"contact {self.link}: rates must be positive")
        if not 0 <= self.loss < 1:
            raise PlanError(f"contact {self.link}: loss {self.loss} must be in [0, 1)")
        if not self.delay_samples:
            raise PlanError(f"contact {self.link}: needs at least one delay sample")
        times = [t for t, _ in self.delay_samples]
        if times != sorted(times) or any(d < 0 for _, d in self.delay_samples):
            raise PlanError(f"contact {self.link}: delay samples must be time-ordered and >= 0")

    @property
    def link(self) -> str:
        """``SOURCE-TARGET``."""
        return f"{self.source}-{self.target}"

    @property
    def duration(self) -> float:
        return self.end - self.start

    def contains(self, t: float) -> bool:
        """Whether the link exists at ``t`` (start inclusive, end exclusive)."""
        return self.start <= t < self.end

    def delay_at(self, t: float) -> float:
        """One-way delay at ``t``, linearly interpolated between samples (clamped)."""
        samples = self.delay_samples
        times = [s[0] for s in samples]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return samples[0][1]
        if i == len(samples):
            return samples[-1][1]
        (t0, d0), (t1, d1) = samples[i - 1], samples[i]
        return d0 + (d1 - d0) * (t - t0) / (t1 - t0) if t1 > t0 else d1

    def rate_bps(self, direction: str) -> float:
        """Rate ``"forward"`` (source to target) or ``"reverse"``."""
        return self.rate_forward_bps if direction == "forward" else self.rate_reverse_bps


@dataclass(frozen=True)
class ContactPlan:
    """Contacts sorted by start time."""

    contacts: tuple[Contact, ...]
    generated: str = field(default_factory=lambda: _iso(datetime.now(UTC).timestamp()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "contacts",
                           tuple(sorted(self.contacts, key=lambda c: (c.start, c.link))))

    def for_link(self, link: str) -> tuple[Contact, ...]:
        """The contacts of ``SOURCE-TARGET`` (either direction of the pair), by start."""
        a, sep, b = link.partition("-")
        if not sep or not _NAME.match(a) or not _NAME.match(b):
            raise PlanError(f"link {link!r}: want SOURCE-TARGET")
        return tuple(c for c in self.contacts if {c.source, c.target} == {a, b})

    def contact_at(self, link: str, t: float) -> Contact | None:
        """The contact of ``link`` in progress at ``t``, if any."""
        return next((c for c in self.for_link(link) if c.contains(t)), None)

    def next_contact(self, node: str, after: float) -> Contact | None:
        """The first contact involving ``node`` that is in progress or starts at/after
        ``after`` ("when is it next online")."""
        return next((c for c in self.contacts
                     if node in (c.source, c.target) and c.end > after), None)

    def nodes(self) -> set[str]:
        return {n for c in self.contacts for n in (c.source, c.target)}

    # -- file format ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The plan file (see the module docstring)."""
        return json.dumps({"format": FORMAT, "version": VERSION, "generated": self.generated,
                           "contacts": [_contact_json(c) for c in self.contacts]}, indent=1)

    def to_ion(self) -> str:
        """NASA ION ``ionrc`` contact-plan lines (absolute UTC times)::

            a contact <start> <end> <from node> <to node> <rate in bytes/s>
            a range <start> <end> <from node> <to node> <OWLT in whole seconds>

        ION names nodes by number: nodes are numbered 1.. in sorted name order, and a
        comment line maps names to numbers."""
        numbers = {name: i + 1 for i, name in enumerate(sorted(self.nodes()))}
        lines = ["# orbital contact plan; nodes: " +
                 ", ".join(f"{n}={name}" for name, n in numbers.items())]
        for c in self.contacts:
            start, end = _ion_time(c.start), _ion_time(c.end)
            owlt = max(1, math.ceil(max(d for _, d in c.delay_samples)))
            for a, b, rate in ((c.source, c.target, c.rate_forward_bps),
                               (c.target, c.source, c.rate_reverse_bps)):
                lines.append(f"a contact {start} {end} {numbers[a]} {numbers[b]} "
                             f"{int(rate // 8)}")
                lines.append(f"a range {start} {end} {numbers[a]} {numbers[b]} {owlt}")
        return "\n".join(lines) + "\n"


def plan_from_json(text: str | bytes) -> ContactPlan:
    """Read a plan file strictly; any problem raises :class:`PlanError` naming the field."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlanError(f"plan: not JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise PlanError("plan: expected a JSON object")
    _keys(doc, "plan", {"format", "version", "generated", "contacts"}, {"format", "version",
                                                                         "contacts"})
    if doc["format"] != FORMAT:
        raise PlanError(f"plan: format must be {FORMAT!r}, got {doc['format']!r}")
    if doc["version"] != VERSION:
        raise PlanError(f"plan: version {doc['version']!r} is not supported (want {VERSION})")
    if not isinstance(doc["contacts"], list):
        raise PlanError("plan: contacts must be an array")
    contacts = [_contact_from(c, f"contacts[{i}]") for i, c in enumerate(doc["contacts"])]
    generated = doc.get("generated", "")
    return ContactPlan(tuple(contacts), str(generated))


def _contact_json(c: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": c.source, "target": c.target, "class": c.link_class,
        "start": c.start, "end": c.end,
        "rate_bps": {"forward": c.rate_forward_bps, "reverse": c.rate_reverse_bps},
        "delay_s": [[t, d] for t, d in c.delay_samples], "loss": c.loss}
    if c.max_elevation_deg is not None:
        out["max_elevation_deg"] = c.max_elevation_deg
    return out


def _contact_from(obj: Any, where: str) -> Contact:
    if not isinstance(obj, Mapping):
        raise PlanError(f"{where}: expected an object")
    _keys(obj, where, {"source", "target", "class", "start", "end", "rate_bps", "delay_s",
                       "loss", "max_elevation_deg"},
          {"source", "target", "start", "end", "rate_bps", "delay_s"})
    rates = obj["rate_bps"]
    if not isinstance(rates, Mapping) or set(rates) != {"forward", "reverse"}:
        raise PlanError(f"{where}.rate_bps: want {{forward, reverse}}")
    samples = obj["delay_s"]
    if not isinstance(samples, list) or not all(
            isinstance(s, list) and len(s) == 2 for s in samples):
        raise PlanError(f"{where}.delay_s: want [[time, seconds], ...]")
    return Contact(
        source=_str(obj["source"], f"{where}.source"),
        target=_str(obj["target"], f"{where}.target"),
        start=_num(obj["start"], f"{where}.start"), end=_num(obj["end"], f"{where}.end"),
        rate_forward_bps=_num(rates["forward"], f"{where}.rate_bps.forward"),
        rate_reverse_bps=_num(rates["reverse"], f"{where}.rate_bps.reverse"),
        delay_samples=tuple((_num(t, f"{where}.delay_s"), _num(d, f"{where}.delay_s"))
                            for t, d in samples),
        loss=_num(obj.get("loss", 0.0), f"{where}.loss"),
        link_class=_str(obj.get("class", ""), f"{where}.class"),
        max_elevation_deg=(None if obj.get("max_elevation_deg") is None else
                           _num(obj["max_elevation_deg"], f"{where}.max_elevation_deg")))


def _keys(obj: Mapping[str, Any], where: str, allowed: set[str], required: set[str]) -> None:
    unknown = set(obj) - allowed
    if unknown:
        raise PlanError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = required - set(obj)
    if missing:
        raise PlanError(f"{where}: missing field(s) {', '.join(sorted(missing))}")


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise PlanError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PlanError(f"{where}: expected a string")
    return value


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ion_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y/%m/%d-%H:%M:%S")


def merge(plans: Iterable[ContactPlan]) -> ContactPlan:
    """One plan holding every contact of ``plans``."""
    return ContactPlan(tuple(c for p in plans for c in p.contacts))


def delay_samples_from_ranges(times: Sequence[float], ranges_km: Sequence[float]
                              ) -> tuple[tuple[float, float], ...]:
    """Delay samples (one-way light time, range / c) from slant ranges in km at ``times``
    (lists or numpy arrays; a day of 100 satellites holds some 70,000 samples)."""
    times_list = times.tolist() if hasattr(times, "tolist") else [float(t) for t in times]
    ranges = ranges_km.tolist() if hasattr(ranges_km, "tolist") else list(ranges_km)
    return tuple(zip(times_list, [r / SPEED_OF_LIGHT_KM_S for r in ranges], strict=True))
