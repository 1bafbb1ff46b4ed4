"""How fast the link emulator computes a contact plan from orbits.

Run from the repository root::

    python -m benchmarks.link_plan            # full run: 100 satellites x 10 stations x 24 h
    python -m benchmarks.link_plan --quick    # 12 satellites x 3 stations x 6 h (smoke test)
    python -m benchmarks.link_plan --check    # exit 1 if a target is missed
    python -m benchmarks.link_plan --json     # results as JSON instead of the table

What is measured, in one process pinned to one core, best of several runs:

* **Passes.** :func:`sim_link.passes.find_passes` for a Walker-delta 53: 100/10/1
  constellation at 550 km (generated with :func:`sim_link.tle.walker_delta`) over the
  ten stations of ``configs/stations.toml`` (their own elevation masks), 24 hours: the
  vectorised SGP4 grid, elevation of every satellite from every station, AOS/LOS refined
  to 1 ms and culmination. Baseline: the straightforward skyfield loop, one
  ``EarthSatellite.find_events`` per satellite and station (skyfield refines to 0.5 s).
  Target (the issue): >= 10x faster than the baseline, and under 10 s.
* **Ground plan.** :func:`sim_link.contacts.build_plan` without ISLs and eclipses: the
  passes plus the delay samples (slant range every 20 s) and link classes of
  ``configs/links.toml``, against the same baseline (which has no delays). The eclipses
  that ``orbital link plan`` adds by default are timed against their own baseline in
  :mod:`benchmarks.link_eclipses`.
* **ISL windows.** :func:`sim_link.isl.find_isl_windows` for all 4,950 pairs, optical
  class (5,000 km, 100 km atmosphere margin). No baseline (skyfield has no ISL search).

Before timing, the pass counts of ours and the baseline are compared (and must agree)
and the largest AOS/LOS difference is reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import (
    Row,
    Samples,
    Target,
    benchmark_parser,
    measured,
    pin_to_one_core,
    print_rows,
    timed,
)
from sim_link.contacts import build_plan, load_links, load_stations
from sim_link.examples import EXAMPLE_EPOCH
from sim_link.frames import Station
from sim_link.isl import find_isl_windows
from sim_link.passes import Pass, find_passes
from sim_link.tle import Tle
from sim_link.tle import walker_delta as make_walker

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Sizes:
    satellites: int = 100
    planes: int = 10
    stations: int = 10
    hours: float = 24.0
    repeats: int = 3
    baseline_repeats: int = 2
    baseline_pairs: int | None = None  # time the baseline on this many pairs and scale


QUICK = Sizes(satellites=12, planes=3, stations=3, hours=6.0, repeats=1)


def skyfield_passes(tles: list[Tle], stations: list[Station], start: float,
                    hours: float, limit: int | None = None) -> list[tuple[str, str, float, float]]:
    """The baseline: one find_events per satellite and station (``limit`` pairs at
    most). Returns (satellite, station, rise, set) of complete passes."""
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)
    t0 = ts.from_datetime(datetime.fromtimestamp(start, UTC))
    t1 = ts.from_datetime(datetime.fromtimestamp(start + hours * 3600.0, UTC))
    out = []
    pairs = [(tle, st) for tle in tles for st in stations][:limit]
    sats = {tle.name: EarthSatellite(tle.line1, tle.line2, tle.name, ts) for tle in tles}
    places = {st.name: wgs84.latlon(st.lat_deg, st.lon_deg, st.alt_m) for st in stations}
    for tle, st in pairs:
        t, events = sats[tle.name].find_events(places[st.name], t0, t1,
                                               altitude_degrees=st.min_elevation_deg)
        rise = None
        for ti, e in zip(t, events, strict=True):
            if e == 0:
                rise = ti.utc_datetime().timestamp()
            elif e == 2 and rise is not None:
                out.append((tle.name, st.name, rise, ti.utc_datetime().timestamp()))
                rise = None
    return out


def cross_check(ours: list[Pass], theirs: list[tuple[str, str, float, float]],
                start: float, end: float) -> float:
    """Largest AOS/LOS difference (s) between our complete passes and the baseline's;
    raises if the sets of passes differ."""
    mine = sorted((p.satellite, p.station, p.aos, p.los) for p in ours
                  if p.aos > start and p.los < end)
    theirs = sorted(theirs)
    if [(a, b) for a, b, _, _ in mine] != [(a, b) for a, b, _, _ in theirs]:
        raise SystemExit(f"pass sets differ: ours {len(mine)}, skyfield {len(theirs)}")
    return max((max(abs(m[2] - t[2]), abs(m[3] - t[3]))
                for m, t in zip(mine, theirs, strict=True)), default=0.0)


def run(sizes: Sizes, say: Callable[[str], None] | None = None) -> tuple[list[Row], list[str]]:
    stations = load_stations(str(CONFIGS / "stations.toml"))[:sizes.stations]
    links = load_links(str(CONFIGS / "links.toml"))
    tles = make_walker(sizes.satellites, sizes.planes, 1, 550.0, 53.0, EXAMPLE_EPOCH)
    start = EXAMPLE_EPOCH
    end = start + sizes.hours * 3600.0
    pairs = sizes.satellites * len(stations)
    label = f"{sizes.satellites} sat x {len(stations)} st x {sizes.hours:g} h"

    if say:
        say(f"cross-checking passes against skyfield ({label}) ...")
    ours_passes = find_passes(tles, stations, start, end)
    limit = sizes.baseline_pairs
    t_begin = time.perf_counter()
    theirs = skyfield_passes(tles, stations, start, sizes.hours, limit)
    first_baseline = time.perf_counter() - t_begin
    checked = ours_passes
    if limit is not None:
        names = {(tle.name, st.name) for tle, st in
                 [(tle, st) for tle in tles for st in stations][:limit]}
        checked = [p for p in ours_passes if (p.satellite, p.station) in names]
    worst = cross_check(checked, theirs, start, end)

    if say:
        say("timing ours ...")
    ours = timed(lambda: find_passes(tles, stations, start, end), sizes.repeats)
    plan_t = timed(lambda: build_plan(tles, stations, links, start, sizes.hours, isl=False,
                                      eclipses=False), sizes.repeats)
    if say:
        say("timing the skyfield loop ...")
    base = timed(lambda: skyfield_passes(tles, stations, start, sizes.hours, limit),
                 max(0, sizes.baseline_repeats - 1))
    base = Samples((first_baseline, *base.seconds))
    scale = 1.0 if limit is None else pairs / min(limit, pairs)
    base = Samples(tuple(s * scale for s in base.seconds))
    isl_cls = links.isl
    assert isl_cls is not None and isl_cls.max_range_km is not None
    isl_t = timed(lambda: find_isl_windows(tles, start, end, isl_cls.max_range_km,
                                           isl_cls.atmosphere_margin_km), sizes.repeats)
    n_isl = len(find_isl_windows(tles, start, end, isl_cls.max_range_km,
                                 isl_cls.atmosphere_margin_km))

    # The target is for the full size; a quick run only shows the table works.
    target = Target("ratio", 10) if sizes == Sizes() else None
    rows = [
        measured(f"passes, {label}", "ms/plan", 1, ours, base, target),
        measured(f"ground plan (passes+delays), {label}", "ms/plan", 1, plan_t, base,
                 target),
        measured(f"ISL windows, {sizes.satellites} sat all pairs x {sizes.hours:g} h",
                 "ms/plan", 1, isl_t),
    ]
    n_complete = sum(1 for p in ours_passes if p.aos > start and p.los < end)
    notes = [
        f"{len(ours_passes)} passes ({n_complete} complete ones cross-checked: same passes "
        f"as skyfield, largest AOS/LOS difference {worst:.3f} s); {n_isl} ISL windows.",
        f"baseline: skyfield EarthSatellite.find_events per satellite x station, best of "
        f"{max(1, sizes.baseline_repeats)} run(s)"
        + ("" if limit is None else
           f", timed on the first {limit} of {pairs} pairs and scaled x{scale:.1f}") + ".",
        f"target also: < 10 s for the full size (ours best: {ours.best:.2f} s passes, "
        f"{plan_t.best:.2f} s ground plan).",
    ]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.link_plan", __doc__)
    parser.add_argument("--baseline-pairs", type=int, default=None,
                        help="time the skyfield loop on this many satellite x station pairs "
                             "and scale (default: all)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.baseline_pairs is not None:
        sizes = Sizes(**{**asdict(sizes), "baseline_pairs": args.baseline_pairs})
    cpu = pin_to_one_core()
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    rows, notes = run(sizes, say)
    print_rows(args, rows, notes, sizes, cpu)
    failed = [row.capability for row in rows if row.passed is False]
    full_too_slow = not args.quick and rows[0].ours > 10_000
    return 1 if args.check and (failed or full_too_slow) else 0


if __name__ == "__main__":
    sys.exit(main())
