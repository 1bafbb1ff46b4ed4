"""A satellite's battery, to run a task only when its energy fits (issue #18 item 2).

Power in orbit is not constant: a LEO satellite spends up to about a third of each orbit in
Earth's shadow, where its panels give nothing. The model is the usual first-order energy
balance of spacecraft power budgets (Wertz & Larson, *Space Mission Analysis and Design*,
3rd ed., section 11.4: array output in sunlight, loads, battery depth of discharge):

* the battery holds between 0 and ``capacity_wh``; charge above full is wasted (the array
  is shunted), and it must never fall below ``reserve_wh`` (the safe-mode margin);
* in sunlight the array gives ``solar_w``; in shadow nothing;
* the bus always draws ``idle_w``; a running task draws ``task_w`` more.

So the charge is piecewise linear in time, with breakpoints at the shadow boundaries
(from the orbit: the plan's eclipse intervals) and where tasks start and stop.
:func:`simulate` integrates it exactly over those pieces. :meth:`Battery.fits` answers
"can a task of this length start now without the charge ever dropping below the
reserve, until it ends?", and :meth:`Battery.earliest_start` the first time it can
(checked at every shadow boundary and every ``step`` seconds between, so the answer is
late by less than ``step``, never early).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


class EnergyError(ValueError):
    """A power budget or interval that makes no physical sense."""


@dataclass(frozen=True)
class PowerBudget:
    """One satellite's power figures (from its config)."""

    capacity_wh: float
    solar_w: float
    idle_w: float
    task_w: float
    reserve_wh: float = 0.0

    def __post_init__(self) -> None:
        for name in ("capacity_wh", "solar_w", "idle_w", "task_w", "reserve_wh"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise EnergyError(f"power budget: {name} must be a finite number >= 0, "
                                  f"got {value!r}")
        if self.capacity_wh <= 0:
            raise EnergyError("power budget: capacity_wh must be > 0")
        if self.reserve_wh >= self.capacity_wh:
            raise EnergyError(f"power budget: reserve_wh {self.reserve_wh} must be below "
                              f"capacity_wh {self.capacity_wh}")


@dataclass(frozen=True)
class Shadow:
    """Sorted, disjoint intervals ``[start, end)`` (UNIX seconds) in Earth's shadow."""

    intervals: tuple[tuple[float, float], ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spans = tuple((float(a), float(b)) for a, b in self.intervals)
        for (a, b), nxt in zip(spans, (*spans[1:], None), strict=True):
            if not (math.isfinite(a) and math.isfinite(b) and b > a):
                raise EnergyError(f"shadow interval [{a}, {b}) is empty or not finite")
            if nxt is not None and nxt[0] < b:
                raise EnergyError("shadow intervals must be sorted and disjoint")
        object.__setattr__(self, "intervals", spans)
        object.__setattr__(self, "_starts", tuple(a for a, _ in spans))

    def in_shadow(self, t: float) -> bool:
        i = bisect.bisect_right(self._starts, t) - 1
        return i >= 0 and t < self.intervals[i][1]

    def boundaries(self, start: float, end: float) -> list[float]:
        """Shadow entries and exits strictly inside ``(start, end)``."""
        return [t for span in self.intervals for t in span if start < t < end]


def simulate(budget: PowerBudget, shadow: Shadow, start: float, charge_wh: float,
             end: float, runs: Iterable[tuple[float, float]] = ()
             ) -> tuple[float, float]:
    """The charge at ``end`` and the lowest charge over ``[start, end]``, starting from
    ``charge_wh`` at ``start``, with a task running in each of ``runs`` (``(from, to)``).
    Exact for the piecewise-linear model (module docstring)."""
    if end < start:
        raise EnergyError(f"simulate: end {end} is before start {start}")
    runs = [(a, b) for a, b in runs if b > start and a < end]
    cuts = sorted({start, end, *shadow.boundaries(start, end),
                   *(t for run in runs for t in run if start < t < end)})
    charge = lowest = min(charge_wh, budget.capacity_wh)
    for a, b in itertools.pairwise(cuts):
        middle = (a + b) / 2
        power = (0.0 if shadow.in_shadow(middle) else budget.solar_w) - budget.idle_w
        power -= budget.task_w * sum(r0 <= middle < r1 for r0, r1 in runs)  # each draws
        charge = min(budget.capacity_wh, charge + power * (b - a) / 3600)
        lowest = min(lowest, charge)  # linear on each piece: the lowest is at an end
    return charge, lowest


@dataclass
class Battery:
    """A satellite's battery along orbital time: its charge at ``time`` and the task runs
    it has committed to."""

    budget: PowerBudget
    shadow: Shadow
    time: float
    charge_wh: float
    runs: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.charge_wh <= self.budget.capacity_wh:
            raise EnergyError(f"battery: charge {self.charge_wh} Wh is outside 0.."
                              f"{self.budget.capacity_wh}")

    def advance(self, t: float) -> float:
        """Move to ``t`` (never back); returns the charge then."""
        if t > self.time:
            self.charge_wh, _ = simulate(self.budget, self.shadow, self.time, self.charge_wh,
                                         t, self.runs)
            self.time = t
        return self.charge_wh

    def fits(self, start: float, duration: float) -> bool:
        """Whether a task of ``duration`` seconds may start at ``start`` (>= now): from its
        start until it ends the charge stays at or above the reserve, with the runs already
        committed (a dip the bus alone causes before the start is not the task's)."""
        if start < self.time:
            raise EnergyError(f"battery: {start} is before its time {self.time}")
        if duration < 0:
            raise EnergyError(f"battery: duration {duration} must be >= 0")
        at_start, _ = simulate(self.budget, self.shadow, self.time, self.charge_wh, start,
                               self.runs)
        _, lowest = simulate(self.budget, self.shadow, start, at_start, start + duration,
                             [*self.runs, (start, start + duration)])
        return lowest >= self.budget.reserve_wh  # what the bus alone does before is not ours

    def earliest_start(self, after: float, duration: float, horizon: float,
                       step: float = 10.0) -> float | None:
        """The first time at or after ``after`` (and before ``horizon``) at which a task of
        ``duration`` fits; None if none does (module docstring: late by < ``step``)."""
        if step <= 0:
            raise EnergyError("battery: step must be > 0")
        candidates = sorted({after, *self.shadow.boundaries(after, horizon),
                             *(after + k * step for k in range(1, int((horizon - after)
                                                                      / step) + 1))})
        return next((t for t in candidates if t < horizon and self.fits(t, duration)), None)

    def commit(self, start: float, duration: float) -> None:
        """Record a task run (it draws ``task_w`` from ``start`` for ``duration``)."""
        if not self.fits(start, duration):
            raise EnergyError(f"battery: a {duration:.0f} s task at {start} does not fit")
        self.runs.append((start, start + duration))


def shadow_of(intervals: Sequence[Sequence[float]]) -> Shadow:
    """:class:`Shadow` from ``[[start, end], ...]`` as read from a plan file."""
    try:
        return Shadow(tuple((float(a), float(b)) for a, b in intervals))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, EnergyError):
            raise
        raise EnergyError(f"shadow intervals must be [[start, end], ...]: {exc}") from None
