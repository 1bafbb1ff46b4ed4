"""Contact plans: when a link exists, how fast it is each way, how long bytes take.

A plan is a list of *contacts*. Each contact is one window during which ``source`` can
send to ``target`` (and ``target`` back, at its own rate): a ground-station pass or an
inter-satellite visibility window. Times are UNIX seconds (UTC). The one-way delay
(light time over the slant range) changes during a pass; it is sampled and interpolated
linearly. Loss is the probability that a segment is lost, which a reliable stream sees
as a retransmission stall (see :mod:`sim_link.proxy`).

Node names are ``[A-Za-z0-9_.]+`` (no hyphen), so a link is named ``SOURCE-TARGET``.

A plan may also hold each satellite's *eclipses* over a span (:class:`EclipseTable`,
computed by :mod:`sim_link.eclipses`): when the Earth hides the Sun's centre (``start`` ..
``end``), any part of its disc (``penumbra``) and all of it (``umbra``).

File format (JSON, ``"format": "orbital-contact-plan"``; the JSON Schema is
``plan.schema.json`` beside this module). ``"version": 1`` has contacts only;
``"version": 2`` adds the optional ``eclipses`` object. A plan without eclipses is written
as version 1, so older readers still read it; both versions are read::

    {"format": "orbital-contact-plan", "version": 2,
     "generated": "2026-11-23T00:00:00Z",
     "contacts": [
       {"source": "SAT1", "target": "SVALBARD", "class": "S-band",
        "start": 1763856000.0, "end": 1763856540.0,
        "rate_bps": {"forward": 2000000, "reverse": 64000},
        "delay_s": [[1763856000.0, 0.0071], [1763856270.0, 0.0021], ...],
        "loss": 0.0,
        "max_elevation_deg": 42.5}
     ],
     "eclipses": {
       "model": "conical", "start": 1763856000.0, "end": 1763942400.0,
       "satellites": {
         "SAT1": [{"start": 1763857210.25, "end": 1763859301.5,
                   "penumbra": [1763857206.1, 1763859305.6],
                   "umbra": [1763857214.4, 1763859297.4]}, ...]}}}

A satellite listed with an empty array is in sunlight throughout the span; ``umbra`` is
``null`` when the Sun is never wholly hidden. Intervals are clipped to the span.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim_link.errors import LinkError

FORMAT = "orbital-contact-plan"
VERSIONS = (1, 2)  # 2 is written when the plan has eclipses, 1 otherwise
ECLIPSE_MODEL = "conical"
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
class Eclipse:
    """One passage of ``satellite`` through the Earth's shadow (UNIX seconds, clipped to
    the span it was computed over). ``start`` .. ``end``: the Sun's centre is behind the
    Earth (skyfield's ``is_sunlit`` is false); ``penumbra``: any of the disc is hidden
    (contains ``start`` .. ``end``); ``umbra``: all of it is (``None`` if never)."""

    satellite: str
    start: float
    end: float
    penumbra_start: float
    penumbra_end: float
    umbra_start: float | None = None
    umbra_end: float | None = None

    def __post_init__(self) -> None:
        where = f"eclipse of {self.satellite}"
        if not _NAME.match(self.satellite):
            raise PlanError(f"{where}: node name: use letters, digits, '_' and '.'")
        if not self.penumbra_start <= self.start < self.end <= self.penumbra_end:
            raise PlanError(f"{where}: want penumbra start <= start < end <= penumbra end, "
                            f"got {self.penumbra_start}, {self.start}, {self.end}, "
                            f"{self.penumbra_end}")
        if (self.umbra_start is None) != (self.umbra_end is None):
            raise PlanError(f"{where}: umbra needs both start and end")
        if self.umbra_start is not None and self.umbra_end is not None and not (
                self.start <= self.umbra_start < self.umbra_end <= self.end):
            raise PlanError(f"{where}: umbra {self.umbra_start}..{self.umbra_end} must lie "
                            f"within {self.start}..{self.end}")

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class EclipseTable:
    """Every eclipse of ``satellites`` from ``start`` to ``end`` (a satellite without
    one is sunlit throughout). "In shadow" means the Sun's centre is hidden."""

    start: float
    end: float
    satellites: tuple[str, ...]
    eclipses: tuple[Eclipse, ...]
    model: str = ECLIPSE_MODEL

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)
                and self.end > self.start):
            raise PlanError(f"eclipses: end {self.end} must be after start {self.start}")
        if self.model != ECLIPSE_MODEL:
            raise PlanError(f"eclipses: model must be {ECLIPSE_MODEL!r}, got {self.model!r}")
        object.__setattr__(self, "satellites", tuple(sorted(set(self.satellites))))
        for name in self.satellites:
            if not isinstance(name, str) or not _NAME.match(name):
                raise PlanError(f"eclipses: node name {name!r}: use letters, digits, '_' "
                                f"and '.'")
        for e in self.eclipses:
            if e.satellite not in self.satellites:
                raise PlanError(f"eclipses: {e.satellite} is not listed")
            if e.penumbra_start < self.start or e.penumbra_end > self.end:
                raise PlanError(f"eclipses: an eclipse of {e.satellite} lies outside "
                                f"{self.start}..{self.end}")
        ordered = tuple(sorted(self.eclipses, key=lambda e: (e.start, e.satellite)))
        object.__setattr__(self, "eclipses", ordered)
        for sat in self.satellites:
            own = self.of(sat)
            if any(b.penumbra_start < a.penumbra_end for a, b in itertools.pairwise(own)):
                raise PlanError(f"eclipses: eclipses of {sat} overlap")

    def of(self, satellite: str) -> tuple[Eclipse, ...]:
        """The eclipses of ``satellite``, by start."""
        return tuple(e for e in self.eclipses if e.satellite == satellite)

    def sunlit(self, satellite: str) -> list[tuple[float, float]]:
        """The intervals in the span when the Sun's centre is visible from ``satellite``."""
        out, t = [], self.start
        for e in self.of(satellite):
            if e.start > t:
                out.append((t, e.start))
            t = e.end
        if t < self.end:
            out.append((t, self.end))
        return out

    def in_shadow(self, satellite: str, t: float) -> bool:
        """Whether the Sun's centre is hidden from ``satellite`` at ``t`` (start
        inclusive, end exclusive)."""
        return any(e.start <= t < e.end for e in self.of(satellite))

    def next_change(self, satellite: str, after: float) -> tuple[str, float] | None:
        """``("enters", t)`` or ``("leaves", t)``: the first shadow boundary of
        ``satellite`` after ``after`` within the span (a boundary that is only the
        span's edge is not a change), or ``None``."""
        for e in self.of(satellite):
            if e.start > after and e.start > self.start:
                return ("enters", e.start)
            if e.end > after and e.end < self.end:
                return ("leaves", e.end)
        return None


@dataclass(frozen=True)
class ContactPlan:
    """Contacts sorted by start time, and optionally the satellites' eclipses."""

    contacts: tuple[Contact, ...]
    generated: str = field(default_factory=lambda: _iso(datetime.now(UTC).timestamp()))
    eclipses: EclipseTable | None = None

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
        """The plan file (see the module docstring): version 2 with eclipses, else 1."""
        doc: dict[str, Any] = {"format": FORMAT, "version": 1, "generated": self.generated,
                               "contacts": [_contact_json(c) for c in self.contacts]}
        if self.eclipses is not None:
            doc["version"] = 2
            doc["eclipses"] = _eclipses_json(self.eclipses)
        return json.dumps(doc, indent=1)

    def to_ion(self) -> str:
        """NASA ION ``ionrc`` contact-plan lines (absolute UTC times)::

            a contact <start> <end> <from node> <to node> <rate in bytes/s>
            a range <start> <end> <from node> <to node> <OWLT in whole seconds>

        ION names nodes by number: nodes are numbered 1.. in sorted name order, and a
        comment line maps names to numbers. Times keep their milliseconds
        (``2026/11/23-00:05:01.250``; whole seconds are written without a fraction):
        ION's own parser (``readTimestampUTC``: ``sscanf`` of six integer fields) reads
        the whole second and ignores the fraction, a reader that honours it loses
        nothing (:func:`ion_time` is the inverse)."""
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
    if doc.get("format") != FORMAT:
        raise PlanError(f"plan: format must be {FORMAT!r}, got {doc.get('format')!r}")
    version = doc.get("version")
    if isinstance(version, bool) or version not in VERSIONS:
        raise PlanError(f"plan: version {version!r} is not supported (want one of "
                        f"{', '.join(map(str, VERSIONS))})")
    allowed = {"format", "version", "generated", "contacts"}
    _keys(doc, "plan", allowed | ({"eclipses"} if version >= 2 else set()),
          {"format", "version", "contacts"})
    if not isinstance(doc["contacts"], list):
        raise PlanError("plan: contacts must be an array")
    contacts = [_contact_from(c, f"contacts[{i}]") for i, c in enumerate(doc["contacts"])]
    generated = doc.get("generated", "")
    eclipses = _eclipses_from(doc["eclipses"]) if "eclipses" in doc else None
    return ContactPlan(tuple(contacts), str(generated), eclipses)


def _eclipses_json(table: EclipseTable) -> dict[str, Any]:
    sats: dict[str, list[dict[str, Any]]] = {s: [] for s in table.satellites}
    for e in table.eclipses:
        sats[e.satellite].append({
            "start": e.start, "end": e.end, "penumbra": [e.penumbra_start, e.penumbra_end],
            "umbra": None if e.umbra_start is None else [e.umbra_start, e.umbra_end]})
    return {"model": table.model, "start": table.start, "end": table.end,
            "satellites": sats}


def _eclipses_from(obj: Any) -> EclipseTable:
    where = "eclipses"
    if not isinstance(obj, Mapping):
        raise PlanError(f"{where}: expected an object")
    _keys(obj, where, {"model", "start", "end", "satellites"},
          {"model", "start", "end", "satellites"})
    sats = obj["satellites"]
    if not isinstance(sats, Mapping):
        raise PlanError(f"{where}.satellites: expected an object of NAME: [eclipse, ...]")
    out: list[Eclipse] = []
    for name, items in sats.items():
        if not isinstance(items, list):
            raise PlanError(f"{where}.satellites.{name}: expected an array")
        for i, item in enumerate(items):
            at = f"{where}.satellites.{name}[{i}]"
            if not isinstance(item, Mapping):
                raise PlanError(f"{at}: expected an object")
            _keys(item, at, {"start", "end", "penumbra", "umbra"},
                  {"start", "end", "penumbra", "umbra"})
            pen = _pair(item["penumbra"], f"{at}.penumbra")
            umbra = None if item["umbra"] is None else _pair(item["umbra"], f"{at}.umbra")
            try:
                out.append(Eclipse(name, _num(item["start"], f"{at}.start"),
                                   _num(item["end"], f"{at}.end"), pen[0], pen[1],
                                   *(umbra or (None, None))))
            except PlanError as exc:
                raise PlanError(f"{at}: {exc}") from None
    try:
        return EclipseTable(_num(obj["start"], f"{where}.start"),
                            _num(obj["end"], f"{where}.end"), tuple(sats), tuple(out),
                            _str(obj["model"], f"{where}.model"))
    except PlanError as exc:
        raise PlanError(f"plan: {exc}") from None


def _pair(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise PlanError(f"{where}: want [start, end]")
    return _num(value[0], where), _num(value[1], where)


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
    """``yyyy/mm/dd-hh:mm:ss`` (ION's absolute UTC time) with ``.mmm`` when the time is
    not a whole second (rounded to the millisecond)."""
    seconds, millis = divmod(round(t * 1000), 1000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y/%m/%d-%H:%M:%S")
    return f"{text}.{millis:03d}" if millis else text


def ion_time(text: str) -> float:
    """UNIX seconds of an ION absolute time as :meth:`ContactPlan.to_ion` writes it."""
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y/%m/%d-%H:%M:%S").replace(tzinfo=UTC)
        if fraction and not (fraction.isdigit() and len(fraction) <= 6):
            raise ValueError(fraction)
    except ValueError:
        raise PlanError(f"ION time {text!r}: want yyyy/mm/dd-hh:mm:ss[.fff]") from None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def merge(plans: Iterable[ContactPlan]) -> ContactPlan:
    """One plan holding every contact of ``plans`` (which must not hold eclipses: those
    are computed for one span over the whole constellation, see :mod:`sim_link.eclipses`)."""
    plans = list(plans)
    if any(p.eclipses is not None for p in plans):
        raise PlanError("merge: plans with eclipses cannot be merged; compute one plan")
    return ContactPlan(tuple(c for p in plans for c in p.contacts))


def delay_samples_from_ranges(times: Sequence[float], ranges_km: Sequence[float]
                              ) -> tuple[tuple[float, float], ...]:
    """Delay samples (one-way light time, range / c) from slant ranges in km at ``times``
    (lists or numpy arrays; a day of 100 satellites holds some 70,000 samples)."""
    times_list = times.tolist() if hasattr(times, "tolist") else [float(t) for t in times]
    ranges = ranges_km.tolist() if hasattr(ranges_km, "tolist") else list(ranges_km)
    return tuple(zip(times_list, [r / SPEED_OF_LIGHT_KM_S for r in ranges], strict=True))
