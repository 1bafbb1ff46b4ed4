"""The demo's faults (``orbital demo --fault NAME``), each a thing that goes wrong in orbit.

* ``station-outage`` -- the first ground station is lost for a whole orbit (95 minutes)
  from the first task's posting: its links carry nothing then;
* ``kill`` -- the first satellite seen running a task is killed with SIGKILL before its
  certificate lands, and restarted 20 orbital minutes later;
* ``partition`` -- the inter-satellite links between SAT1 and the others are cut for two
  orbital hours from the first task's posting, then heal;
* ``liar`` -- SAT1's ground links lead to a lying upstream: half of its answers about logs,
  blocks and proofs are forged (seeded).

The satellites are not told: their plan is the real one, the link emulators run the
faulted one (:func:`faulted_plan`), a killed node learns it was killed when it restarts,
and a liar is found out only by verification. Each run must end with the same certified
results as the undisturbed run with the same seed, and nothing lost; the report says what
the fault cost.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from sim_link.plan import Contact, ContactPlan

FAULTS = ("station-outage", "kill", "partition", "liar")
ORBIT_S = 95 * 60.0
KILL_DOWN_S = 20 * 60.0
PARTITION_S = 2 * 3600.0
LIE_METHODS = ("eth_getLogs", "eth_getBlockByHash", "eth_getBlockByNumber", "eth_getProof",
               "eth_getBlockReceipts")


def cut(contacts: tuple[Contact, ...], hit: Callable[[Contact], bool], start: float,
        end: float) -> tuple[Contact, ...]:
    """``contacts`` with the part of every contact ``hit`` selects inside ``[start, end)``
    removed (a contact across an edge keeps what lies outside it)."""
    out = []
    for c in contacts:
        if not hit(c) or c.end <= start or c.start >= end:
            out.append(c)
            continue
        if c.start < start:
            out.append(dataclasses.replace(c, end=start))
        if c.end > end:
            out.append(dataclasses.replace(c, start=end))
    return tuple(out)


def faulted_plan(plan: ContactPlan, fault: str | None, at: float, *, station: str,
                 isolated: str) -> ContactPlan:
    """The plan the link emulators run under ``fault`` from plan time ``at``."""
    if fault == "station-outage":
        contacts = cut(plan.contacts, lambda c: station in (c.source, c.target), at,
                       at + ORBIT_S)
    elif fault == "partition":
        contacts = cut(plan.contacts, lambda c: c.max_elevation_deg is None
                       and isolated in (c.source, c.target), at, at + PARTITION_S)
    else:
        return plan
    return dataclasses.replace(plan, contacts=contacts)


def liar(seed: int) -> Callable[[str, list[Any], Any], Any]:
    """A lie for :class:`node.demo.liar.LyingUpstream`: half the answers about logs,
    blocks and proofs (seeded) come back with one byte changed somewhere that matters."""
    rng = random.Random(seed)

    def lie(method: str, params: list[Any], result: Any) -> Any:
        if method not in LIE_METHODS or result in (None, []) or rng.random() >= 0.5:
            return result
        return _tamper(result, rng)
    return lie


def _tamper(value: Any, rng: random.Random) -> Any:
    """``value`` with one hex string (a hash, a root, data, a quantity) changed."""
    if isinstance(value, str) and value.startswith("0x") and len(value) > 3:
        i = rng.randrange(2, len(value))
        digit = "0123456789abcdef"[(int(value[i], 16) + 1) % 16]
        return value[:i] + digit + value[i + 1:]
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return [*value[:i], _tamper(value[i], rng), *value[i + 1:]]
    if isinstance(value, dict) and value:
        keys = [k for k, v in value.items() if isinstance(v, str | list | dict) and v]
        if keys:
            key = rng.choice(sorted(keys))
            return {**value, key: _tamper(value[key], rng)}
    return value
