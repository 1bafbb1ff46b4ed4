"""sim_link.plan: the contact plan model, its strict file format and the ION export."""

from __future__ import annotations

import json

import pytest

from sim_link.plan import (
    SPEED_OF_LIGHT_KM_S,
    Contact,
    ContactPlan,
    PlanError,
    delay_samples_from_ranges,
    ion_time,
    plan_from_json,
)

T0 = 1_763_856_000.0  # 2025-11-23T00:00:00Z


def contact(start: float = T0, end: float = T0 + 600, **changes: object) -> Contact:
    values: dict[str, object] = {
        "source": "SAT1", "target": "SVALBARD", "start": start, "end": end,
        "rate_forward_bps": 2e6, "rate_reverse_bps": 64e3,
        "delay_samples": ((start, 0.008), ((start + end) / 2, 0.002), (end, 0.008)),
        "loss": 0.01, "link_class": "S-band", "max_elevation_deg": 63.2}
    values.update(changes)
    return Contact(**values)  # type: ignore[arg-type]


def test_plan_round_trips_through_its_file_format() -> None:
    plan = ContactPlan((contact(T0 + 5000, T0 + 5400), contact()), generated="x")
    again = plan_from_json(plan.to_json())
    assert again == plan
    assert [c.start for c in again.contacts] == [T0, T0 + 5000]  # sorted by start


def test_delay_is_interpolated_and_clamped() -> None:
    c = contact()
    assert c.delay_at(T0 + 150) == pytest.approx(0.005)
    assert c.delay_at(T0 - 10) == 0.008 and c.delay_at(T0 + 10_000) == 0.008
    assert delay_samples_from_ranges([0.0], [SPEED_OF_LIGHT_KM_S])[0] == (0.0, 1.0)


def test_next_contact_and_link_lookup() -> None:
    plan = ContactPlan((contact(), contact(T0 + 6000, T0 + 6500),
                        contact(T0 + 100, T0 + 200, target="KIRUNA")))
    assert plan.next_contact("SAT1", T0 + 300).target == "SVALBARD"  # in progress
    assert plan.next_contact("SAT1", T0 + 700).start == T0 + 6000
    assert plan.next_contact("SVALBARD", T0 + 7000) is None
    assert plan.contact_at("SVALBARD-SAT1", T0 + 6100).start == T0 + 6000  # either order
    assert plan.contact_at("SAT1-SVALBARD", T0 + 700) is None
    with pytest.raises(PlanError, match="SOURCE-TARGET"):
        plan.for_link("SAT1")


def test_ion_export_has_a_contact_and_a_range_per_direction() -> None:
    lines = ContactPlan((contact(),)).to_ion().splitlines()
    assert lines[0].startswith("# orbital contact plan; nodes: 1=SAT1, 2=SVALBARD")
    assert "a contact 2025/11/23-00:00:00 2025/11/23-00:10:00 1 2 250000" in lines
    assert "a contact 2025/11/23-00:00:00 2025/11/23-00:10:00 2 1 8000" in lines
    assert "a range 2025/11/23-00:00:00 2025/11/23-00:10:00 1 2 1" in lines


def test_ion_export_keeps_sub_second_times() -> None:
    """AOS/LOS at .250 and .9996 s: written to the millisecond, read back exactly."""
    c = contact()
    start, end = c.start + 0.25, c.start + 599.9996
    sub = Contact(c.source, c.target, start, end, c.rate_forward_bps, c.rate_reverse_bps,
                  ((start, 0.0021),))
    lines = ContactPlan((sub,)).to_ion().splitlines()
    assert "a contact 2025/11/23-00:00:00.250 2025/11/23-00:10:00 1 2 250000" in lines
    times = [(ion_time(line.split()[2]), ion_time(line.split()[3])) for line in lines
             if line.startswith("a ")]
    assert len(times) == 4
    for a, b in times:
        assert a == pytest.approx(start, abs=5e-4) and b == pytest.approx(end, abs=5e-4)
    assert ion_time("2025/11/23-00:00:00") == T0
    for bad in ("2025/11/23 00:00:00", "2025/11/23-00:00:00.x", "soon"):
        with pytest.raises(PlanError, match="ION time"):
            ion_time(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=3), "version"),
    (lambda d: d.update(eclipses={}), "unknown"),  # eclipses need version 2
    (lambda d: d.pop("contacts"), "missing"),
    (lambda d: d.update(extra=1), "unknown"),
    (lambda d: d["contacts"][0].update(end=T0 - 1), "after start"),
    (lambda d: d["contacts"][0].update(start="soon"), "finite number"),
    (lambda d: d["contacts"][0].update(loss=1.5), "loss"),
    (lambda d: d["contacts"][0].update(source="SAT-1"), "node name"),
    (lambda d: d["contacts"][0].update(rate_bps={"forward": 1}), "forward, reverse"),
    (lambda d: d["contacts"][0]["rate_bps"].update(forward=0), "positive"),
    (lambda d: d["contacts"][0].update(delay_s=[[T0]]), "delay_s"),
    (lambda d: d["contacts"][0].update(delay_s=[]), "delay sample"),
    (lambda d: d["contacts"][0].update(delay_s=[[T0 + 9, 0.1], [T0, 0.1]]), "time-ordered"),
    (lambda d: d["contacts"][0].pop("source"), "missing"),
])
def test_malformed_plan_is_refused_naming_the_field(edit: object, message: str) -> None:
    doc = json.loads(ContactPlan((contact(),)).to_json())
    edit(doc)  # type: ignore[operator]
    with pytest.raises(PlanError, match=message):
        plan_from_json(json.dumps(doc))


@pytest.mark.parametrize("text", ["", "[]", "{", "[" * 10_000])
def test_plan_that_is_not_a_json_object_is_refused(text: str) -> None:
    with pytest.raises(PlanError):
        plan_from_json(text)
