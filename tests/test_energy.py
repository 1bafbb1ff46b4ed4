"""The battery model (node.tasks.energy): exact charge over sunlight and shadow, when a
task fits, when it must wait for the Sun, and bad input refused."""

from __future__ import annotations

import pytest

from node.tasks.energy import (
    Battery,
    EnergyError,
    PowerBudget,
    Shadow,
    shadow_of,
    simulate,
)

BUDGET = PowerBudget(capacity_wh=100, solar_w=100, idle_w=20, task_w=60, reserve_wh=20)
ORBIT = 95 * 60.0  # a 550 km LEO orbit: about 95 minutes, 35 of them in shadow
SHADOW = Shadow(tuple((k * ORBIT + 60 * 60, k * ORBIT + 95 * 60) for k in range(16)))


def test_charge_is_integrated_exactly_and_clamped_at_full() -> None:
    # sunlight: +80 W net; 30 min from 50 Wh -> 90 Wh; an hour -> full (clamped at 100)
    assert simulate(BUDGET, SHADOW, 0, 50, 1800) == pytest.approx((90, 50))
    assert simulate(BUDGET, SHADOW, 0, 50, 3600)[0] == pytest.approx(100)
    # shadow: -20 W idle for the 35 minutes from full
    end, low = simulate(BUDGET, SHADOW, 3600, 100, 95 * 60)
    assert end == pytest.approx(100 - 20 * 35 / 60) and low == pytest.approx(end)
    # a task in the shadow draws 80 W in all; the lowest point is at its end
    end, low = simulate(BUDGET, SHADOW, 3600, 100, 95 * 60, [(3600, 3600 + 900)])
    assert low == pytest.approx(100 - 20 * 35 / 60 - 60 * 15 / 60) == end


def test_a_task_runs_in_sunlight_and_waits_in_shadow_until_its_energy_fits() -> None:
    battery = Battery(BUDGET, SHADOW, time=3600, charge_wh=45)  # just entering shadow
    # 30 min at 80 W in shadow = 40 Wh: 45 -> 5, below the 20 Wh reserve
    assert not battery.fits(3600, 1800)
    start = battery.earliest_start(3600, 1800, horizon=3 * ORBIT)
    # exact: starting at s it draws 20 W until s, 80 W until sunrise at 5700, then the
    # array (100 W) covers it: 45 - (20 (s - 3600) + 80 (5700 - s)) / 3600 >= 20 <=> s >= 4900
    assert start == pytest.approx(4900)
    assert not battery.fits(4890, 1800) and battery.fits(start, 1800)
    battery.commit(start, 1800)
    assert battery.advance(start + 1800) > 0
    with pytest.raises(EnergyError, match="does not fit"):
        Battery(BUDGET, SHADOW, time=3600, charge_wh=45).commit(3600, 1800)


def test_committed_runs_count_against_later_ones() -> None:
    battery = Battery(BUDGET, SHADOW, time=3600, charge_wh=100)
    assert battery.fits(3600, 2100)  # the whole shadow at 80 W: 100 -> 53.3
    battery.commit(3600, 2100)
    assert not battery.fits(3600, 2100)  # a second one beside it: 53.3 -> 6.7
    fresh = Battery(BUDGET, SHADOW, time=3600, charge_wh=100)
    assert fresh.fits(3600, 2100)
    start = battery.earliest_start(3600, 2100, horizon=2 * ORBIT)
    assert start is not None and battery.fits(start, 2100)


def test_a_budget_that_cannot_cover_its_idle_load_never_fits() -> None:
    weak = PowerBudget(capacity_wh=50, solar_w=10, idle_w=20, task_w=10, reserve_wh=10)
    battery = Battery(weak, SHADOW, time=0, charge_wh=11)  # -20 W even in sunlight
    assert battery.earliest_start(0, 600, horizon=4 * ORBIT) is None


@pytest.mark.parametrize("bad, says", [
    (dict(capacity_wh=0), "capacity_wh must be > 0"),
    (dict(solar_w=-1), "solar_w must be a finite number"),
    (dict(idle_w=float("nan")), "idle_w must be a finite number"),
    (dict(task_w="60"), "task_w must be a finite number"),
    (dict(reserve_wh=100), "must be below capacity_wh"),
])
def test_bad_budgets_are_refused(bad: dict[str, object], says: str) -> None:
    fields: dict[str, object] = dict(capacity_wh=100, solar_w=100, idle_w=20, task_w=60,
                                     reserve_wh=20) | bad
    with pytest.raises(EnergyError, match=says):
        PowerBudget(**fields)  # type: ignore[arg-type]


def test_bad_shadows_and_times_are_refused() -> None:
    with pytest.raises(EnergyError, match="sorted and disjoint"):
        Shadow(((0, 100), (50, 150)))
    with pytest.raises(EnergyError, match="empty or not finite"):
        Shadow(((10, 10),))
    with pytest.raises(EnergyError, match=r"\[\[start, end\]"):
        shadow_of([[0, 1, 2]])
    with pytest.raises(EnergyError, match="outside"):
        Battery(BUDGET, SHADOW, time=0, charge_wh=101)
    battery = Battery(BUDGET, SHADOW, time=100, charge_wh=50)
    with pytest.raises(EnergyError, match="before its time"):
        battery.fits(50, 10)
    with pytest.raises(EnergyError, match="duration"):
        battery.fits(100, -1)
    with pytest.raises(EnergyError, match="before start"):
        simulate(BUDGET, SHADOW, 10, 50, 5)
    assert shadow_of([[1, 2], [3, 4]]).in_shadow(3.5)
    assert not shadow_of([[1, 2], [3, 4]]).in_shadow(2)
