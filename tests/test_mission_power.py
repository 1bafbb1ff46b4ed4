"""The mission's battery (node.mission.power): a task waits in shadow until its energy fits,
runs in sunlight, and the battery survives a restart (the state is in the mission store, a
real SQLite file). Bad [power] settings are refused in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, PowerConfig, parse_node_config
from node.mission.power import OnboardPower, PowerError
from node.mission.store import MissionStore
from sim_link.plan import Contact, ContactPlan, Eclipse, EclipseTable

POWER = PowerConfig(capacity_wh=20, solar_w=20, idle_w=8, task_w=40, task_s=600,
                    reserve_wh=6, initial_wh=10)


class Clock:
    time_scale = 1.0

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def plan(shadow: tuple[float, float] = (1000.0, 3100.0)) -> ContactPlan:
    pass_ = Contact("SAT1", "GS", 0, 600, 2e6, 64e3, ((0, 0.01),), max_elevation_deg=30.0)
    table = EclipseTable(0, 86400, ("SAT1",), (Eclipse("SAT1", *shadow, shadow[0] - 5,
                                                          shadow[1] + 5),))
    return ContactPlan((pass_,), eclipses=table)


def test_a_task_in_shadow_waits_for_sunrise_and_the_battery_survives_a_restart(
        tmp_path: Path) -> None:
    clock = Clock(1200.0)  # in shadow, 10 Wh less 200 s of idle
    store = MissionStore(tmp_path / "mission.sqlite")
    try:
        power = OnboardPower(POWER, plan(), "SAT1", clock, store)  # type: ignore[arg-type]
        fits, why = power.try_start("0xaa")
        assert not fits and "waits for energy" in why and "in shadow" in why
        assert power.status()["waiting"]["0xaa"] is not None
        clock.t = 3100.0 + 1800  # half an hour of sunlight after sunrise
        fits, why = power.try_start("0xaa")
        assert fits and why.startswith("energy: 6.7 Wh for 600 s"), why
        after = power.status()
        assert after["runs"] == 1 and after["waiting"] == {}
        charge = power.battery.charge_wh
    finally:
        store.close()
    store = MissionStore(tmp_path / "mission.sqlite")  # restarted: not full again
    try:
        again = OnboardPower(POWER, plan(), "SAT1", clock, store)  # type: ignore[arg-type]
        assert again.battery.charge_wh == pytest.approx(charge)
        assert again.battery.runs == power.battery.runs
    finally:
        store.close()


def test_a_plan_without_this_satellites_eclipses_is_refused(tmp_path: Path) -> None:
    store = MissionStore(tmp_path / "m.sqlite")
    try:
        with pytest.raises(PowerError, match="eclipses of SAT1"):
            OnboardPower(POWER, ContactPlan(plan().contacts), "SAT1", Clock(0),  # type: ignore[arg-type]
                         store)
    finally:
        store.close()


BASE = {"node": {"chain_id": 31337, "data_dir": "data"},
        "upstreams": {"urls": ["a=http://127.0.0.1:1"]},
        "trust": {"mode": "quorum", "quorum": 1}}


def mission_doc(tmp_path: Path, power: dict[str, object]) -> dict[str, object]:
    """A whole node configuration with a mission, a link plan with eclipses and ``power``."""
    (tmp_path / "plan.json").write_text(plan().to_json())
    address = "0x" + "11" * 20
    return {**BASE, "link": {"plan": "plan.json", "node": "SAT1"},
            "wallet": {"backend": "keystore", "home": "wallet"}, "gossip": {},
            "tasks": {"attestations": address, "registry": "0x" + "22" * 20}, "power": power}


def test_a_good_power_section_is_read(tmp_path: Path) -> None:
    config = parse_node_config(mission_doc(tmp_path, dict(POWER.__dict__)), tmp_path)
    assert config.power == POWER


@pytest.mark.parametrize("power, says", [
    ({"capacity_wh": 20, "solar_w": 20, "idle_w": 8, "task_w": 40}, "power.task_s: missing"),
    ({**POWER.__dict__, "initial_wh": 30}, "power.initial_wh"),
    ({**POWER.__dict__, "solar_w": -1}, "power.solar_w"),
    ({**POWER.__dict__, "reserve_wh": 25}, "reserve_wh 25.0 must be below"),
    ({**POWER.__dict__, "task_s": 0}, "power.task_s"),
    ({**POWER.__dict__, "speed": 1}, "power.speed"),
])
def test_bad_power_settings_are_refused(tmp_path: Path, power: dict[str, object],
                                        says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_node_config(mission_doc(tmp_path, power), tmp_path)


def test_power_needs_tasks_and_a_link(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"power: needs \[tasks\]"):
        parse_node_config({**BASE, "power": dict(POWER.__dict__)}, tmp_path)
