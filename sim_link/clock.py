"""Plan time against wall time: a contact plan can run N times faster than real time.

Plan time is UNIX seconds (UTC), the time base of :mod:`sim_link.plan`. Wall time is the
process's monotonic clock (``time.monotonic``, which is also what the asyncio event loop's
``loop.time()`` reads on every platform CPython supports). The mapping is affine::

    plan_t = plan_start + (monotonic_now - wall_start) * time_scale

so one plan second lasts ``1 / time_scale`` wall seconds. Everything the plan states *per
second* is per **plan** second: a 9.6 kbit/s contact at ``time_scale=20`` moves 9.6 kbit per
plan second, i.e. 192 kbit per wall second, and a 50 ms one-way delay lasts 2.5 wall ms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class PlanClock:
    """Maps the monotonic wall clock onto plan time, ``time_scale`` times faster.

    ``plan_start`` is the plan time at ``wall_start`` (default: the real UNIX time now and
    the monotonic time now). ``monotonic`` must share the event loop's time base (keep the
    default outside unit tests of the clock itself) because the emulator arms asyncio
    timers at the wall times this clock returns.
    """

    def __init__(self, plan_start: float | None = None, time_scale: float = 1.0, *,
                 wall_start: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale)
                and time_scale > 0):
            raise ValueError(f"time scale {time_scale!r}: must be a positive number")
        self.time_scale = float(time_scale)
        self.plan_start = time.time() if plan_start is None else float(plan_start)
        self._monotonic = monotonic
        self.wall_start = monotonic() if wall_start is None else float(wall_start)

    @classmethod
    def from_epoch(cls, plan_start: float, time_scale: float, epoch: float) -> PlanClock:
        """A clock at which the plan is at ``plan_start`` at UNIX time ``epoch``: processes
        given the same three numbers agree on plan time (to how well their UNIX clocks
        agree), whenever each of them starts."""
        return cls(plan_start, time_scale,
                   wall_start=time.monotonic() - (time.time() - float(epoch)))

    def now(self) -> float:
        """The plan time now."""
        return self.plan_at(self._monotonic())

    def wall_now(self) -> float:
        """The monotonic wall time now."""
        return self._monotonic()

    def plan_at(self, wall: float) -> float:
        """The plan time at monotonic wall time ``wall``."""
        return self.plan_start + (wall - self.wall_start) * self.time_scale

    def wall_at(self, plan_t: float) -> float:
        """The monotonic wall time at which the plan reaches ``plan_t``."""
        return self.wall_start + (plan_t - self.plan_start) / self.time_scale

    def to_wall(self, plan_seconds: float) -> float:
        """A plan-time duration in wall seconds."""
        return plan_seconds / self.time_scale

    def to_plan(self, wall_seconds: float) -> float:
        """A wall-time duration in plan seconds."""
        return wall_seconds * self.time_scale

    def __repr__(self) -> str:
        return f"PlanClock(plan_start={self.plan_start!r}, time_scale={self.time_scale!r})"
