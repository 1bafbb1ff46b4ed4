"""The work behind ``orbital link`` (see :mod:`node.cli.link` for the
command line); imported only when such a subcommand runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from sim_link.clock import PlanClock
from sim_link.contacts import build_plan, format_summary, load_links, load_stations, summary
from sim_link.plan import ContactPlan, EclipseTable, PlanError, plan_from_json
from sim_link.plot import plot_timeline
from sim_link.proxy import LinkEmulator, parse_address
from sim_link.tle import load_tles


def _time(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PlanError(f"time {text!r}: want ISO 8601, e.g. 2026-11-23T12:00:00Z") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_plan(path: str) -> ContactPlan:
    try:
        return plan_from_json(Path(path).read_bytes())
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror}") from None


def _plan(args: argparse.Namespace) -> int:
    start = _time(args.start)
    plan = build_plan(load_tles(args.tle), load_stations(args.stations),
                      load_links(args.links), start, args.hours, isl=not args.no_isl)
    Path(args.out).write_text(plan.to_json() + "\n")
    if args.ion:
        Path(args.ion).write_text(plan.to_ion())
    if args.plot:
        plot_timeline(plan, args.plot)
    report = summary(plan, start, start + args.hours * 3600)
    print(json.dumps(report, default=str) if args.json else format_summary(report))
    return 0


def _next(args: argparse.Namespace) -> int:
    plan = _load_plan(args.plan)
    now = _time(args.at)
    table = plan.eclipses
    known = plan.nodes() | set(table.satellites if table is not None else ())
    if args.sat not in known:
        raise PlanError(f"{args.sat!r} is not in the plan (nodes: {', '.join(sorted(known))})")
    contact = plan.next_contact(args.sat, now)
    report: dict[str, object] = {"node": args.sat, "next": None}
    lines = [f"{args.sat}: no contact after {_iso(now)} in this plan"]
    if contact is not None:
        peer = contact.target if contact.source == args.sat else contact.source
        online = contact.start <= now
        report = {"node": args.sat, "peer": peer, "online": online,
                  "start": _iso(contact.start), "end": _iso(contact.end),
                  "in_seconds": max(0.0, contact.start - now),
                  "duration_s": contact.duration, "class": contact.link_class}
        lines = [f"{args.sat}: online now with {peer} until {_iso(contact.end)} "
                 f"({contact.end - now:.0f} s left, {contact.link_class})" if online else
                 f"{args.sat}: next online {_iso(contact.start)} with {peer}, in "
                 f"{contact.start - now:.0f} s, for {contact.duration:.0f} s "
                 f"({contact.link_class})"]
    if table is not None and args.sat in table.satellites:
        report["shadow"], line = _shadow(table, args.sat, now)
        lines.append(line)
    elif table is None and args.sat not in {c.target for c in plan.contacts
                                            if c.max_elevation_deg is not None}:
        lines.append(f"{args.sat}: this plan has no eclipses (plan version 1); make it "
                     f"again with 'orbital link plan' to see when it is in shadow")
    print(json.dumps(report) if args.json else "\n".join(lines))
    return 0


def _shadow(table: EclipseTable, sat: str, now: float) -> tuple[dict[str, object], str]:
    """When ``sat`` next enters or leaves the Earth's shadow (the Sun's centre hidden)."""
    if not table.start <= now <= table.end:
        return ({"known": False, "span": [_iso(table.start), _iso(table.end)]},
                f"{sat}: {_iso(now)} is outside the plan's eclipse span "
                f"{_iso(table.start)} .. {_iso(table.end)}")
    inside = table.in_shadow(sat, now)
    change = table.next_change(sat, now)
    state = "in shadow" if inside else "in sunlight"
    report: dict[str, object] = {"known": True, "in_shadow": inside, "next": None}
    if change is None:
        return report, f"{sat}: {state}, no change before {_iso(table.end)}"
    kind, at = change
    report.update({"next": kind, "at": _iso(at), "at_unix": at, "in_seconds": at - now})
    if kind == "enters":
        eclipse = next(e for e in table.of(sat) if e.start == at)
        report["duration_s"] = eclipse.duration
        return report, (f"{sat}: {state}, enters shadow {_iso(at)} (in {at - now:.0f} s, "
                        f"for {eclipse.duration:.0f} s)")
    return report, f"{sat}: {state}, leaves shadow {_iso(at)} (in {at - now:.0f} s)"


def _run(args: argparse.Namespace) -> int:
    plan = _load_plan(args.plan)
    clock = (PlanClock(_time(args.start), args.time_scale) if args.epoch is None
             else PlanClock.from_epoch(args.epoch if args.start is None else _time(args.start),
                                       args.time_scale, args.epoch))
    emulator = LinkEmulator(plan, args.link, parse_address(args.listen, "--listen"),
                            parse_address(args.upstream, "--upstream"), clock,
                            on_los=args.on_los, gate=args.gate,
                            status=parse_address(args.status, "--status") if args.status
                            else None)
    asyncio.run(_serve(emulator))
    return 0


async def _serve(emulator: LinkEmulator) -> None:
    """Run until SIGINT/SIGTERM, printing AOS/LOS and connection events."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    events = emulator.subscribe()  # before start: an open window's AOS is printed too
    async with emulator:
        print(f"emulating {emulator.link} on port {emulator.port}"
              + (f", status on port {emulator.status_port}" if emulator.status_port else ""),
              flush=True)
        waiter = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                event = getter.result()
                print(json.dumps(event.as_dict()), flush=True)
            else:
                getter.cancel()
