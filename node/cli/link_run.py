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
from sim_link.plan import ContactPlan, PlanError, plan_from_json
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
    contact = plan.next_contact(args.sat, now)
    if contact is None:
        nodes = ", ".join(sorted(plan.nodes()))
        if args.sat not in plan.nodes():
            raise PlanError(f"{args.sat!r} is not in the plan (nodes: {nodes})")
        print(json.dumps({"node": args.sat, "next": None}) if args.json else
              f"{args.sat}: no contact after {_iso(now)} in this plan")
        return 0
    peer = contact.target if contact.source == args.sat else contact.source
    online = contact.start <= now
    report = {"node": args.sat, "peer": peer, "online": online, "start": _iso(contact.start),
              "end": _iso(contact.end), "in_seconds": max(0.0, contact.start - now),
              "duration_s": contact.duration, "class": contact.link_class}
    if args.json:
        print(json.dumps(report))
    elif online:
        print(f"{args.sat}: online now with {peer} until {_iso(contact.end)} "
              f"({contact.end - now:.0f} s left, {contact.link_class})")
    else:
        print(f"{args.sat}: next online {_iso(contact.start)} with {peer}, in "
              f"{contact.start - now:.0f} s, for {contact.duration:.0f} s "
              f"({contact.link_class})")
    return 0


def _run(args: argparse.Namespace) -> int:
    plan = _load_plan(args.plan)
    clock = (PlanClock(_time(args.start), args.time_scale) if args.epoch is None
             else PlanClock.from_epoch(args.epoch if args.start is None else _time(args.start),
                                       args.time_scale, args.epoch))
    emulator = LinkEmulator(plan, args.link, parse_address(args.listen, "--listen"),
                            parse_address(args.upstream, "--upstream"), clock,
                            on_los=args.on_los,
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
