"""The satellite's battery as the mission uses it: a task runs only when its energy fits
(issue #18 item 2).

:class:`OnboardPower` keeps a :class:`node.tasks.energy.Battery` on the plan's clock, with
the satellite's shadow intervals from its contact plan (``[link] plan``, version 2: the
eclipses), and ``[power]``'s budget. Before a task runs, :meth:`OnboardPower.try_start`
brings the battery to now and commits the run if the charge stays above the reserve until
the task ends; otherwise it says when the energy will fit (usually: after sunrise). The
battery's state is saved in the mission store after every run, so a restart (kill -9
included) neither forgets a run's cost nor starts full again.
"""

from __future__ import annotations

from typing import Any

from node.config import PowerConfig
from node.mission.store import MissionStore
from node.tasks.energy import Battery, PowerBudget, Shadow
from sim_link.clock import PlanClock
from sim_link.plan import ContactPlan

HORIZON_S = 6 * 3600.0
"""How far ahead (plan seconds) :meth:`OnboardPower.try_start` looks for when a task fits."""
_META = "battery"


class PowerError(ValueError):
    """The plan cannot power the mission (no eclipses for this satellite)."""


class OnboardPower:
    def __init__(self, config: PowerConfig, plan: ContactPlan, satellite: str,
                 clock: PlanClock, store: MissionStore) -> None:
        if plan.eclipses is None or satellite not in plan.eclipses.satellites:
            raise PowerError(f"[power] needs the eclipses of {satellite} in the contact plan "
                             "(a version 2 plan: orbital link plan computes them)")
        self.config = config
        self.clock = clock
        self.store = store
        budget = PowerBudget(config.capacity_wh, config.solar_w, config.idle_w,
                             config.task_w, config.reserve_wh)
        shadow = Shadow(tuple((e.start, e.end) for e in plan.eclipses.of(satellite)))
        self._eclipses = plan.eclipses
        self._satellite = satellite
        saved = store.get_meta(_META)
        now = clock.now()
        if isinstance(saved, dict):
            self.battery = Battery(budget, shadow, float(saved["time"]), float(saved["charge"]),
                                   [(float(a), float(b)) for a, b in saved["runs"]])
        else:
            initial = config.capacity_wh if config.initial_wh is None else config.initial_wh
            self.battery = Battery(budget, shadow, now, initial)
        self.battery.advance(max(now, self.battery.time))
        self.waiting: dict[str, float | None] = {}  # task -> when its energy fits (None: not
        # within HORIZON_S)

    def try_start(self, task: str) -> tuple[bool, str]:
        """Commit a run of ``task`` now if its energy fits; (whether it does, why)."""
        now = self.clock.now()
        battery = self.battery
        battery.advance(now)
        duration = self.config.task_s
        if battery.fits(now, duration):
            before = battery.charge_wh
            battery.commit(now, duration)
            self._save()
            self.waiting.pop(task, None)
            return True, (f"energy: {self.config.task_w * duration / 3600:.1f} Wh for "
                          f"{duration:.0f} s, battery {before:.1f} Wh")
        when = battery.earliest_start(now, duration, now + HORIZON_S, step=60.0)
        self.waiting[task] = when
        later = "not within 6 h" if when is None else f"fits in {when - now:.0f} s (plan)"
        return False, (f"waits for energy: battery {battery.charge_wh:.1f} Wh, reserve "
                       f"{self.config.reserve_wh:g} Wh, "
                       f"{'in shadow' if self.in_shadow() else 'sunlit'}; {later}")

    def in_shadow(self) -> bool:
        assert self._eclipses is not None
        return self._eclipses.in_shadow(self._satellite, self.clock.now())

    def _save(self) -> None:
        recent = [run for run in self.battery.runs if run[1] > self.battery.time - 86400]
        self.store.set_meta(_META, {"time": self.battery.time,
                                    "charge": self.battery.charge_wh,
                                    "runs": [list(run) for run in recent]})

    def status(self) -> dict[str, Any]:
        charge = self.battery.advance(max(self.clock.now(), self.battery.time))
        return {"chargeWh": round(charge, 3), "capacityWh": self.config.capacity_wh,
                "reserveWh": self.config.reserve_wh, "inShadow": self.in_shadow(),
                "runs": len(self.battery.runs), "waiting": dict(self.waiting)}
