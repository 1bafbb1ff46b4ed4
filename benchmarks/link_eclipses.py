"""How fast and how exactly the link emulator computes eclipses (the issue's "eclipse check
against skyfield" in ``benchmarks/link.py``).

Run from the repository root::

    python -m benchmarks.link_eclipses            # full run: 100 satellites x 24 h
    python -m benchmarks.link_eclipses --quick    # 12 satellites x 6 h (smoke test)
    python -m benchmarks.link_eclipses --check    # exit 1 if a target is missed
    python -m benchmarks.link_eclipses --json     # results as JSON instead of the table

What is measured, in one process pinned to one core, best of several runs:

* **Eclipse intervals.** :func:`sim_link.eclipses.find_eclipses` for a Walker-delta 53:
  100/10/1 constellation at 550 km over 24 hours: penumbra, shadow and umbra of every
  satellite, boundaries root-found to 0.1 ms. Baseline: skyfield's ``is_sunlit`` (DE421
  from the skyfield-data package) sampled every second for every satellite, a boundary
  being the midpoint of the two samples around a change (so within 0.5 s).
* **Boundary error.** The largest difference of each method's shadow entries and exits
  to skyfield's ``is_sunlit`` searched to 1 ms (``find_discrete``) for the first
  satellites (10 in a full run, 3 in a quick one). Target (the issue): within 1 s.
  The ratio column is how many times smaller our error is than the 1 s sampling's.
"""

from __future__ import annotations

import importlib.resources
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from benchmarks.common import (
    Row,
    Target,
    benchmark_parser,
    measured,
    pin_to_one_core,
    print_rows,
    timed,
)
from sim_link.eclipses import find_eclipses, shadow_fraction
from sim_link.examples import EXAMPLE_EPOCH
from sim_link.tle import Tle, walker_delta


@dataclass(frozen=True)
class Sizes:
    satellites: int = 100
    planes: int = 10
    hours: float = 24.0
    repeats: int = 3
    baseline_repeats: int = 1
    checked: int = 10  # satellites whose boundaries are checked to 1 ms
    sample_s: float = 1.0  # the baseline's sampling step


QUICK = Sizes(satellites=12, planes=3, hours=6.0, repeats=1, checked=3)


def _skyfield():
    from skyfield.api import Loader

    load = Loader(str(importlib.resources.files("skyfield_data") / "data"))
    return load("de421.bsp"), load.timescale(builtin=True)


def sampled_boundaries(tles: list[Tle], start: float, end: float, step: float
                       ) -> dict[str, list[tuple[float, bool]]]:
    """The baseline: skyfield's ``is_sunlit`` every ``step`` seconds; each change of
    value becomes (midpoint, sunlit afterwards)."""
    from skyfield.api import EarthSatellite

    eph, ts = _skyfield()
    grid = np.arange(start, end + step / 2, step)
    t0 = datetime.fromtimestamp(start, UTC)
    times = ts.utc(t0.year, t0.month, t0.day, t0.hour, t0.minute, t0.second + grid - start)
    out = {}
    for tle in tles:
        lit = EarthSatellite(tle.line1, tle.line2, tle.name, ts).at(times).is_sunlit(eph)
        k = np.nonzero(np.diff(lit.astype(np.int8)))[0]
        out[tle.name] = [(float((grid[i] + grid[i + 1]) / 2), bool(lit[i + 1])) for i in k]
    return out


def searched_boundaries(tles: list[Tle], start: float, end: float
                        ) -> dict[str, list[tuple[float, bool]]]:
    """The reference: skyfield's ``is_sunlit`` changes found by ``find_discrete``
    (20 s steps, then refined to its 1 ms tolerance)."""
    from skyfield.api import EarthSatellite
    from skyfield.searchlib import find_discrete

    eph, ts = _skyfield()
    t0 = ts.from_datetime(datetime.fromtimestamp(start, UTC))
    t1 = ts.from_datetime(datetime.fromtimestamp(end, UTC))
    out = {}
    for tle in tles:
        sat = EarthSatellite(tle.line1, tle.line2, tle.name, ts)

        def sunlit(t, sat=sat):
            return sat.at(t).is_sunlit(eph)

        sunlit.step_days = 20.0 / 86_400.0
        times, values = find_discrete(t0, t1, sunlit)
        out[tle.name] = [(t.utc_datetime().timestamp(), bool(v))
                         for t, v in zip(times, values, strict=True)]
    return out


def worst_difference(found: dict[str, list[tuple[float, bool]]],
                     reference: dict[str, list[tuple[float, bool]]]) -> float:
    """Largest boundary difference (s); raises if a boundary is missing or invented."""
    worst = 0.0
    for name, ref in reference.items():
        got = found[name]
        if [s for _, s in got] != [s for _, s in ref]:
            raise SystemExit(f"{name}: {len(got)} boundaries, skyfield {len(ref)}")
        worst = max([worst, *(abs(a - b) for (a, _), (b, _) in zip(got, ref, strict=True))])
    return worst


def run(sizes: Sizes, say: Callable[[str], None] | None = None) -> tuple[list[Row], list[str]]:
    tles = walker_delta(sizes.satellites, sizes.planes, 1, 550.0, 53.0, EXAMPLE_EPOCH)
    start = EXAMPLE_EPOCH
    end = start + sizes.hours * 3600.0
    label = f"{sizes.satellites} sat x {sizes.hours:g} h"

    if say:
        say(f"checking boundaries against skyfield is_sunlit ({sizes.checked} satellites) ...")
    table = find_eclipses(tles, start, end)
    ours = {t.name: sorted([(e.start, False) for e in table.of(t.name) if e.start > start]
                           + [(e.end, True) for e in table.of(t.name) if e.end < end])
            for t in tles[:sizes.checked]}
    reference = searched_boundaries(tles[:sizes.checked], start, end)
    ours_error = worst_difference(ours, reference)
    sampled = sampled_boundaries(tles[:sizes.checked], start, end, sizes.sample_s)
    sampled_error = worst_difference(sampled, reference)

    if say:
        say("timing ours ...")
    ours_t = timed(lambda: find_eclipses(tles, start, end), sizes.repeats)
    if say:
        say(f"timing skyfield is_sunlit sampled every {sizes.sample_s:g} s ...")
    base_t = timed(lambda: sampled_boundaries(tles, start, end, sizes.sample_s),
                   sizes.baseline_repeats)

    rows = [
        measured(f"eclipse intervals, {label}", "ms/plan", 1, ours_t, base_t),
        Row(f"largest shadow boundary error vs is_sunlit, {sizes.checked} sat",
            "ms/boundary", 1000 * ours_error, 1000 * sampled_error, Target("ours", 1000.0)),
    ]
    fractions = [shadow_fraction(table, t.name) for t in tles]
    boundaries = sum(len(v) for v in reference.values())
    notes = [
        f"{len(table.eclipses)} eclipses; in shadow {100 * min(fractions):.1f}-"
        f"{100 * max(fractions):.1f} % of the span.",
        f"baseline: skyfield EarthSatellite.at(t).is_sunlit(DE421) every "
        f"{sizes.sample_s:g} s for every satellite, best of {sizes.baseline_repeats} run(s).",
        f"boundary error: {boundaries} entries and exits of {sizes.checked} satellites "
        f"against is_sunlit searched to 1 ms by skyfield's find_discrete (same boundaries, "
        f"none missed or invented); the target is the issue's 1 s.",
    ]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.link_eclipses", __doc__)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    cpu = pin_to_one_core()
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    rows, notes = run(sizes, say)
    print_rows(args, rows, notes, sizes, cpu)
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
