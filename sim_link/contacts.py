"""Contact plans from orbits: ground passes and inter-satellite windows become
:class:`~sim_link.plan.Contact` s with the rates, delay and loss of their link class.

Configuration (TOML, read strictly -- unknown keys, wrong types and dangling class names
are errors that name the file and the key):

* ``stations.toml``: ``[[station]]`` tables with ``name``, ``lat``, ``lon`` (degrees,
  WGS84), ``alt_m`` and ``min_elevation_deg``.
* ``links.toml``: ``[classes.NAME]`` tables, ``kind = "ground"`` with ``down_bps``
  (satellite to station) and ``up_bps``, or ``kind = "isl"`` with ``rate_bps`` (each way)
  and ``max_range_km`` (and optionally ``atmosphere_margin_km``, default 100); every class
  may set ``loss``. ``[assign]`` names the ``default_station_class``, optionally
  ``isl_class``, and ``[assign.stations]`` overrides the class per station.

A ground contact has the satellite as ``source`` and the station as ``target``, so
"forward" is the downlink. Node names are the TLE / station names with every character
outside ``[A-Za-z0-9_.]`` replaced by ``_``. The one-way delay is sampled every
``sample_s`` seconds within a pass (``isl_sample_s`` within an ISL window) and at both
ends. Each satellite's eclipses over the span (:mod:`sim_link.eclipses`) go into the plan
too, from the same ephemeris.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_link.eclipses import eclipses_on
from sim_link.errors import LinkError
from sim_link.frames import Station, look, teme_to_ecef
from sim_link.isl import isl_windows_on
from sim_link.passes import passes_on
from sim_link.plan import Contact, ContactPlan, delay_samples_from_ranges
from sim_link.propagation import DEFAULT_STEP_S, Ephemeris, Propagator, time_grid
from sim_link.tle import Tle


class ConfigError(LinkError):
    """A stations or links configuration is malformed; the message names file and key."""


@dataclass(frozen=True)
class LinkClass:
    """Rates (bit/s), loss and, for inter-satellite links, geometry limits."""

    name: str
    kind: str  # "ground" or "isl"
    forward_bps: float  # ground: satellite -> station (down); isl: a -> b
    reverse_bps: float  # ground: station -> satellite (up); isl: b -> a
    loss: float = 0.0
    max_range_km: float | None = None  # isl only
    atmosphere_margin_km: float = 100.0  # isl only


@dataclass(frozen=True)
class LinkConfig:
    """The link classes and which one each station (and the ISLs) uses."""

    classes: Mapping[str, LinkClass]
    default_station_class: str
    station_classes: Mapping[str, str] = field(default_factory=dict)
    isl_class: str | None = None

    def for_station(self, station: str) -> LinkClass:
        return self.classes[self.station_classes.get(station, self.default_station_class)]

    @property
    def isl(self) -> LinkClass | None:
        return None if self.isl_class is None else self.classes[self.isl_class]


_NODE_BAD = re.compile(r"[^A-Za-z0-9_.]")


def node_name(name: str) -> str:
    """A plan node name for a satellite or station name."""
    out = _NODE_BAD.sub("_", name.strip())
    if not out:
        raise ConfigError(f"name {name!r} gives an empty node name")
    return out


# -- configuration --------------------------------------------------------------------


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def _keys(obj: Any, where: str, required: set[str], optional: Iterable[str] = ()) -> None:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(obj) - required - set(optional)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    missing = required - set(obj)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(sorted(missing))}")


def _number(obj: Mapping[str, Any], key: str, where: str, low: float | None = None,
            high: float | None = None, positive: bool = False) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{where}.{key}: must be positive, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{where}.{key}: {value!r} is outside [{low}, {high}]")
    return float(value)


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_stations(text: str, source: str = "stations.toml") -> list[Station]:
    """Ground stations from ``stations.toml`` text."""
    doc = _toml(text, source)
    _keys(doc, source, {"station"})
    if not isinstance(doc["station"], list) or not doc["station"]:
        raise ConfigError(f"{source}: want one or more [[station]] tables")
    out: list[Station] = []
    for i, st in enumerate(doc["station"]):
        where = f"{source}: station[{i}]"
        _keys(st, where, {"name", "lat", "lon"}, {"alt_m", "min_elevation_deg"})
        name = _string(st, "name", where)
        if node_name(name) != name:
            raise ConfigError(f"{where}.name: {name!r} may hold only letters, digits, "
                              f"'_' and '.'")
        out.append(Station(
            name, _number(st, "lat", where, -90, 90), _number(st, "lon", where, -180, 180),
            _number(st, "alt_m", where, -500, 10_000) if "alt_m" in st else 0.0,
            _number(st, "min_elevation_deg", where, -5, 89)
            if "min_elevation_deg" in st else 10.0))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: duplicate station name(s) {', '.join(dup)}")
    return out


def load_stations(path: str) -> list[Station]:
    return parse_stations(_read(path), str(path))


def parse_links(text: str, source: str = "links.toml") -> LinkConfig:
    """Link classes and their assignment from ``links.toml`` text."""
    doc = _toml(text, source)
    _keys(doc, source, {"classes", "assign"})
    if not isinstance(doc["classes"], dict) or not doc["classes"]:
        raise ConfigError(f"{source}: want one or more [classes.NAME] tables")
    classes: dict[str, LinkClass] = {}
    for name, c in doc["classes"].items():
        where = f"{source}: classes.{name}"
        if not isinstance(c, dict) or c.get("kind") not in ("ground", "isl"):
            raise ConfigError(f"{where}.kind: want \"ground\" or \"isl\"")
        if c["kind"] == "ground":
            _keys(c, where, {"kind", "down_bps", "up_bps"}, {"loss"})
            fwd = _number(c, "down_bps", where, positive=True)
            rev = _number(c, "up_bps", where, positive=True)
            classes[name] = LinkClass(name, "ground", fwd, rev,
                                      _number(c, "loss", where, 0, 0.999)
                                      if "loss" in c else 0.0)
        else:
            _keys(c, where, {"kind", "rate_bps", "max_range_km"},
                  {"loss", "atmosphere_margin_km"})
            rate = _number(c, "rate_bps", where, positive=True)
            classes[name] = LinkClass(
                name, "isl", rate, rate,
                _number(c, "loss", where, 0, 0.999) if "loss" in c else 0.0,
                _number(c, "max_range_km", where, positive=True),
                _number(c, "atmosphere_margin_km", where, 0, 1000)
                if "atmosphere_margin_km" in c else 100.0)
    assign = doc["assign"]
    where = f"{source}: assign"
    _keys(assign, where, {"default_station_class"}, {"isl_class", "stations"})
    default = _string(assign, "default_station_class", where)
    stations = assign.get("stations", {})
    if not isinstance(stations, dict):
        raise ConfigError(f"{where}.stations: expected a table of STATION = \"class\"")
    isl = _string(assign, "isl_class", where) if "isl_class" in assign else None
    for key, cls in [("default_station_class", default),
                     *((f"stations.{k}", v) for k, v in stations.items())]:
        if not isinstance(cls, str) or cls not in classes:
            raise ConfigError(f"{where}.{key}: unknown link class {cls!r} (classes: "
                              f"{', '.join(classes)})")
        if classes[cls].kind != "ground":
            raise ConfigError(f"{where}.{key}: class {cls!r} is not a ground class")
    if isl is not None and (isl not in classes or classes[isl].kind != "isl"):
        raise ConfigError(f"{where}.isl_class: {isl!r} is not an isl class")
    return LinkConfig(classes, default, dict(stations), isl)


def load_links(path: str) -> LinkConfig:
    return parse_links(_read(path), str(path))


# -- building the plan ----------------------------------------------------------------


def _samples(starts: Sequence[float], ends: Sequence[float], every: float
             ) -> list[np.ndarray]:
    """Sample times of each window: the start, every ``every`` seconds, and the end (an
    inner sample closer than 1 ms to the end is dropped)."""
    start, end = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    inner = np.maximum(np.ceil((end - start - 1e-3) / every).astype(int) - 1, 0)
    counts = inner + 2
    owner = np.repeat(np.arange(len(start)), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(len(owner)) - first[owner]
    flat = start[owner] + k * every
    last = first + counts - 1
    flat[last] = end
    return np.split(flat, np.cumsum(counts)[:-1])


def build_plan(tles: Sequence[Tle], stations: Sequence[Station], links: LinkConfig,
               start: float, hours: float, isl: bool = True, step: float = DEFAULT_STEP_S,
               sample_s: float = 20.0, isl_sample_s: float = 60.0,
               generated: str | None = None, eclipses: bool = True) -> ContactPlan:
    """The contact plan of ``tles`` over ``stations`` (and between satellites when
    ``isl`` and the config names an ISL class) from ``start`` (UNIX s) for ``hours``,
    with every satellite's eclipses unless ``eclipses`` is false.
    Delay is sampled every ``sample_s`` during passes and every ``isl_sample_s`` during
    ISL windows (their range changes slowly and they can last hours), plus both ends."""
    if hours <= 0:
        raise ValueError(f"hours {hours} must be positive")
    prop = Propagator(tles)
    end = start + hours * 3600.0
    # One SGP4 run per satellite and grid time; passes, windows and delays all use it.
    eph = Ephemeris(prop, time_grid(start, end, step))
    index = {t.name: i for i, t in enumerate(prop.tles)}
    nodes = [node_name(t.name) for t in prop.tles] + [node_name(s.name) for s in stations]
    if len(index) != len(prop.tles) or len(set(nodes)) != len(nodes):
        raise ValueError("satellite and station names must be unique (after replacing "
                         "characters other than letters, digits, '_' and '.' by '_')")
    by_station = {s.name: s for s in stations}
    contacts: list[Contact] = []

    passes = passes_on(eph, stations)
    if passes:
        # Slant ranges for every delay sample of every pass in one evaluation.
        times = _samples([p.aos for p in passes], [p.los for p in passes], sample_s)
        counts = [len(t) for t in times]
        flat = np.concatenate(times)
        sats = np.repeat([index[p.satellite] for p in passes], counts)
        r = teme_to_ecef(eph.teme(sats, flat), flat)
        st_index = {name: i for i, name in enumerate(by_station)}
        which = np.repeat([st_index[p.station] for p in passes], counts)
        ranges_all = np.empty(len(flat))
        for i, station in enumerate(by_station.values()):
            sel = which == i
            if sel.any():
                ranges_all[sel] = look(station, r[sel])[1]
        ranges = np.split(ranges_all, np.cumsum(counts)[:-1])
        for p, t, rng in zip(passes, times, ranges, strict=True):
            cls = links.for_station(p.station)
            contacts.append(Contact(
                node_name(p.satellite), node_name(p.station), p.aos, p.los,
                cls.forward_bps, cls.reverse_bps,
                delay_samples_from_ranges(t, rng), cls.loss, cls.name,
                round(p.max_elevation_deg, 3)))

    isl_cls = links.isl
    if isl and isl_cls is not None and len(prop.tles) > 1:
        assert isl_cls.max_range_km is not None
        windows = isl_windows_on(eph, isl_cls.max_range_km, isl_cls.atmosphere_margin_km)
        if windows:
            times = _samples([w.start for w in windows], [w.end for w in windows],
                             isl_sample_s)
            a = np.concatenate([np.full(len(t), index[w.satellite_a])
                                for w, t in zip(windows, times, strict=True)])
            b = np.concatenate([np.full(len(t), index[w.satellite_b])
                                for w, t in zip(windows, times, strict=True)])
            flat = np.concatenate(times)
            rng_all = np.linalg.norm(eph.teme(b, flat) - eph.teme(a, flat), axis=-1)
            ranges = np.split(rng_all, np.cumsum([len(t) for t in times])[:-1])
            for w, t, rng in zip(windows, times, ranges, strict=True):
                contacts.append(Contact(
                    node_name(w.satellite_a), node_name(w.satellite_b), w.start, w.end,
                    isl_cls.forward_bps, isl_cls.reverse_bps,
                    delay_samples_from_ranges(t, rng), isl_cls.loss,
                    isl_cls.name))
    table = (eclipses_on(eph, [node_name(t.name) for t in prop.tles]) if eclipses
             else None)
    if generated is None:
        return ContactPlan(tuple(contacts), eclipses=table)
    return ContactPlan(tuple(contacts), generated, table)


# -- summary --------------------------------------------------------------------------


def summary(plan: ContactPlan, start: float | None = None, end: float | None = None
            ) -> dict[str, Any]:
    """Per station (ground contacts' ``target``): passes, passes per day, mean and max
    duration and total contact (seconds); per satellite: ground contact total, ISL
    windows and, when the plan has them, eclipses and the time in shadow. The span
    defaults to first start .. last end of the plan."""
    contacts = plan.contacts
    if start is None:
        start = min((c.start for c in contacts), default=0.0)
    if end is None:
        end = max((c.end for c in contacts), default=start)
    days = max(end - start, 1.0) / 86_400.0
    ground = [c for c in contacts if c.max_elevation_deg is not None]
    isl = [c for c in contacts if c.max_elevation_deg is None]
    stations: dict[str, dict[str, float]] = {}
    for name in sorted({c.target for c in ground}):
        d = [c.duration for c in ground if c.target == name]
        stations[name] = {"passes": len(d), "passes_per_day": len(d) / days,
                          "mean_duration_s": sum(d) / len(d), "max_duration_s": max(d),
                          "total_contact_s": sum(d)}
    satellites: dict[str, dict[str, float]] = {}
    table = plan.eclipses
    shadowed = set(table.satellites) if table is not None else set()
    for name in sorted({c.source for c in ground} | {n for c in isl
                                                      for n in (c.source, c.target)}
                       | shadowed):
        g = [c.duration for c in ground if c.source == name]
        i = [c.duration for c in isl if name in (c.source, c.target)]
        satellites[name] = {"ground_passes": len(g), "ground_contact_s": sum(g),
                            "isl_windows": len(i), "isl_contact_s": sum(i)}
        if table is not None and name in shadowed:
            own = table.of(name)
            satellites[name].update({"eclipses": len(own),
                                     "shadow_s": sum(e.duration for e in own)})
    return {"start": start, "end": end, "days": days, "contacts": len(contacts),
            "ground_contacts": len(ground), "isl_contacts": len(isl),
            "stations": stations, "satellites": satellites}


def format_summary(s: Mapping[str, Any]) -> str:
    """The station part of :func:`summary` as a plain-text table."""
    head = ("station", "passes", "per day", "mean min", "max min", "total min")
    rows = [(name, f"{v['passes']}", f"{v['passes_per_day']:.1f}",
             f"{v['mean_duration_s'] / 60:.1f}", f"{v['max_duration_s'] / 60:.1f}",
             f"{v['total_contact_s'] / 60:.1f}") for name, v in s["stations"].items()]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in (head, *rows)]
    lines.append(f"{s['ground_contacts']} ground contacts, {s['isl_contacts']} ISL windows "
                 f"over {s['days']:.2f} day(s)")
    shadow = [v["shadow_s"] for v in s["satellites"].values() if "shadow_s" in v]
    if shadow:
        span = s["days"] * 86_400.0
        eclipses = sum(v["eclipses"] for v in s["satellites"].values() if "eclipses" in v)
        lines.append(f"{eclipses} eclipses of {len(shadow)} satellite(s); in shadow "
                     f"{100 * min(shadow) / span:.1f}-{100 * max(shadow) / span:.1f} % of the "
                     f"time")
    return "\n".join(lines)
