"""The demo's faults as plans and lies (node.demo.faults): what the link emulators run under
each fault, and the liar's forgeries (seeded, always a real change)."""

from __future__ import annotations

import pytest

from node.demo.faults import ORBIT_S, PARTITION_S, cut, faulted_plan, liar
from sim_link.plan import Contact, ContactPlan


def contact(source: str, target: str, start: float, end: float, *,
            station: bool = False) -> Contact:
    return Contact(source, target, start, end, 2e6, 64e3, ((start, 0.01),),
                   max_elevation_deg=30.0 if station else None)


PLAN = ContactPlan((
    contact("SAT1", "SVALBARD", 1000, 1600, station=True),
    contact("SAT1", "SVALBARD", 7000, 7600, station=True),
    contact("SAT2", "KIRUNA", 1200, 1800, station=True),
    contact("SAT1", "SAT2", 0, 20000),
    contact("SAT2", "SAT3", 0, 20000),
))


def test_a_station_outage_removes_its_passes_for_an_orbit_only() -> None:
    plan = faulted_plan(PLAN, "station-outage", 900, station="SVALBARD", isolated="SAT1")
    svalbard = [(c.start, c.end) for c in plan.contacts if c.target == "SVALBARD"]
    assert svalbard == [(7000, 7600)]  # the 1000 s pass is inside 900 .. 900 + 95 min
    assert 900 + ORBIT_S < 7000
    assert len(plan.contacts) == len(PLAN.contacts) - 1
    assert plan.eclipses == PLAN.eclipses


def test_a_partition_cuts_only_the_isolated_satellites_isls_and_heals() -> None:
    plan = faulted_plan(PLAN, "partition", 5000, station="SVALBARD", isolated="SAT1")
    isl = sorted((c.link, c.start, c.end) for c in plan.contacts if c.max_elevation_deg is None)
    assert isl == [("SAT1-SAT2", 0, 5000), ("SAT1-SAT2", 5000 + PARTITION_S, 20000),
                   ("SAT2-SAT3", 0, 20000)]
    assert faulted_plan(PLAN, "kill", 0, station="X", isolated="Y") is PLAN
    assert faulted_plan(PLAN, None, 0, station="X", isolated="Y") is PLAN


def test_cut_keeps_what_lies_outside_the_window() -> None:
    (before, after) = cut((contact("A", "B", 0, 100),), lambda c: True, 40, 60)
    assert (before.start, before.end, after.start, after.end) == (0, 40, 60, 100)
    assert cut((contact("A", "B", 0, 100),), lambda c: True, 0, 100) == ()
    assert cut((contact("A", "B", 0, 100),), lambda c: False, 0, 100) != ()


def test_the_liar_forges_half_of_what_matters_and_nothing_else() -> None:
    block = {"hash": "0x" + "ab" * 32, "number": "0x10", "transactions": ["0x" + "cd" * 32]}
    lie = liar(3)
    answers = [lie("eth_getBlockByHash", [], block) for _ in range(200)]
    forged = [a for a in answers if a != block]
    assert 60 < len(forged) < 140  # about half, seeded
    assert all(a.keys() == block.keys() for a in forged)
    assert [lie("eth_getBlockByHash", [], block) for _ in range(20)] != \
        [liar(4)("eth_getBlockByHash", [], block) for _ in range(20)]
    assert lie("eth_chainId", [], "0x7a69") == "0x7a69"  # not a lie target
    assert lie("eth_getLogs", [], []) == []
    again = liar(3)
    assert [again("eth_getBlockByHash", [], block) for _ in range(200)] == answers


@pytest.mark.parametrize("value", ["0x1", "0x" + "00" * 32])
def test_a_forged_hex_string_is_always_a_different_value(value: str) -> None:
    lie = liar(1)
    for _ in range(50):
        out = lie("eth_getProof", [], value)
        assert out == value or (len(out) == len(value) and int(out, 16) != int(value, 16))
