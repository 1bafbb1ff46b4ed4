"""What a person watching ``orbital demo`` sees: a live status block, then the report.

On a terminal the block is redrawn in place (ANSI cursor-up) at most :data:`REDRAW_S` apart;
otherwise (a log, CI) one line is printed every :data:`LINE_EVERY_S` wall seconds. The
final summary (:func:`summary`) is plain text built from the JSON report.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from node.demo.run import Flight

REDRAW_S = 0.5
LINE_EVERY_S = 10.0


class Progress:
    """Call with the flight after every round of the ground's duties."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._lines = 0

    def __call__(self, flight: Flight) -> None:
        now = time.monotonic()
        if now - self._last < (REDRAW_S if self.tty else LINE_EVERY_S):
            return
        self._last = now
        lines = status_lines(flight)
        if self.tty:
            if self._lines:
                self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self.stream.write("\n".join(lines) + "\n")
            self._lines = len(lines)
        else:
            self.stream.write(lines[0] + "  " + lines[1].strip() + "\n")
        self.stream.flush()


def status_lines(flight: Flight) -> list[str]:
    """Orbital time, who is in contact or in shadow, and the tasks by state."""
    now = flight.clock.now()
    elapsed = (now - flight.scenario.start) / 3600.0
    posted = len(flight.tasks)
    run = certified = submitted = 0
    for status in flight.status.values():
        tasks = (status.get("mission") or {}).get("tasks") or {}
        run = max(run, tasks.get("run", 0))
        certified = max(certified, tasks.get("certified", 0))
        submitted += tasks.get("submitted", 0)
    landed = sum(r.landed_at is not None for r in flight.tasks)
    head = [f"orbital time +{elapsed:5.2f} h of {flight.options.hours:g} h  "
            f"(x{flight.clock.time_scale:g})",
            f"  tasks: {posted}/{flight.options.tasks} posted, {run} run, {certified} "
            f"certified, {submitted} submitted, {landed} landed"]
    eclipses = flight.plan.eclipses
    for sat in flight.satellites:
        station = flight.in_contact(sat, now)
        dark = eclipses is not None and eclipses.in_shadow(sat.name, now)
        mission = (flight.status.get(sat.name) or {}).get("mission") or {}
        node_head = (flight.status.get(sat.name) or {}).get("head") or {}
        energy = mission.get("energy") or {}
        charge = energy.get("chargeWh")
        waiting = len(energy.get("waiting") or {})
        head.append(f"  {sat.name:<6} {'contact ' + station if station else 'no contact':<20}"
                    f" {'shadow' if dark else 'sunlit':<7} head {node_head.get('number', '-')!s:>5}"
                    f"  peers {len((mission.get('peers') or {}).get('connected', []))}"
                    f"  battery {'-' if charge is None else f'{charge:5.1f} Wh'}"
                    f"{f', {waiting} task(s) waiting for energy' if waiting else ''}")
    return head


def summary(report: dict[str, Any]) -> str:
    """The final report in plain text."""
    out = [f"orbital demo: {len(report['satellites'])} satellites ({report['wallets']} "
           f"wallets, {report['plane']} plane), "
           f"{len(report['stations'])} stations, {report['options']['hours']:g} orbital "
           f"hours at x{report['clock']['timeScale']:g}",
           f"tasks: {report['posted']} posted, {report['landed']} landed on chain"]
    for task in report["tasks"]:
        landed = "not landed" if task["landedAt"] is None else \
            f"landed at +{task['landedAt'] / 3600:.2f} h"
        out.append(f"  {task['task'][:18]}..  posted +{task['postedAt'] / 3600:.2f} h, run by "
                   f"{','.join(task['ranBy']) or '-'}, submitted by "
                   f"{','.join(task['submittedBy']) or '-'}, {landed}")
    out.append("nodes (verified answers / refusals / link bytes up,down):")
    for name, node in sorted(report["nodes"].items()):
        counters = node.get("counters") or {}
        verified = sum((counters.get("verifications") or {}).values())
        refused = ", ".join(f"{k} {v}" for k, v in sorted(
            (counters.get("refusals") or {}).items())) or "none"
        link = counters.get("linkBytes") or {}
        out.append(f"  {name:<6} {verified:>6} verified; refused: {refused}; "
                   f"{link.get('up', 0):,} / {link.get('down', 0):,} bytes; "
                   f"{counters.get('contacts', 0)} contacts")
    if report.get("energy"):
        out.append("energy (battery Wh: lowest / highest / at the end):")
        for name, energy in sorted(report["energy"].items()):
            out.append(f"  {name:<6} {energy['minWh']:.1f} / {energy['maxWh']:.1f} / "
                       f"{energy['lastWh']:.1f}")
    out.append("links (bytes up / down):")
    for name, link in sorted(report["links"].items()):
        if link["bytes"]["up"] or link["bytes"]["down"]:
            out.append(f"  {name:<18} {link['bytes']['up']:>10,} / {link['bytes']['down']:,}")
    fault = report.get("fault")
    if fault is not None:
        happened = "; ".join(f"{e['what']} {e.get('satellite', '')} at +{e['t'] / 3600:.2f} h"
                             for e in fault["log"]) or "in the links (see the timeline)"
        out.append(f"fault {fault['name']}: {happened}")
        for name in sorted(fault["refusals"]):
            refused, lies = fault["refusals"][name] or {}, fault["lies"][name] or {}
            if refused or lies:
                out.append(f"  {name}: refused {refused or '-'}, lies caught {lies or '-'}")
    out.append("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["stages"].items()))
    return "\n".join(out)
