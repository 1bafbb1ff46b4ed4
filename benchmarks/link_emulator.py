"""What the link emulator costs, and how closely it keeps to the plan.

Run from the repository root::

    python -m benchmarks.link_emulator            # full run (about a minute)
    python -m benchmarks.link_emulator --quick    # small sizes, for the smoke test
    python -m benchmarks.link_emulator --check    # exit 1 if a target is missed
    python -m benchmarks.link_emulator --json     # results as JSON instead of the tables

Everything runs in one process on one asyncio loop over 127.0.0.1 (client, emulator and
upstream alike, so the baseline pays the same client/server costs), pinned to one core.

* **Overhead** (baseline: a direct loopback connection, same client and sink code).
  *Unshaped throughput*: a bulk transfer through a :class:`~sim_link.proxy.LinkEmulator`
  whose contact has a rate far above what loopback moves (1 Tbit/s) and no delay, against
  the same transfer straight to the sink. *Round trip*: a small ping-pong through the
  emulator to an echo server against the same ping-pong direct; the table shows the
  added microseconds.
* **Accuracy** (baseline: the configured figure). Rates from 9.6 kbit/s to 100 Mbit/s,
  measured as bytes over the time from the first write to the last byte at the sink,
  in plan time (slow rates run at a time scale so each transfer takes about a second of
  wall time). Delays as half the median round trip of small messages through an echo
  server on a contact with ample rate. Targets, from the issue: rate within 5 %, delay
  within 2 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.common import (
    Row,
    Samples,
    as_json,
    benchmark_parser,
    environment,
    pin_to_one_core,
    render,
)
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan
from sim_link.proxy import LinkEmulator

T0 = 1_000.0
LOCAL = ("127.0.0.1", 0)
UNSHAPED_BPS = 1e12


@dataclass(frozen=True)
class Sizes:
    bulk_bytes: int  # unshaped transfer
    repeats: int
    pings: int
    shaped_wall_s: float  # wall duration of each rate measurement
    rates: tuple[tuple[float, float], ...]  # (bit/s, time scale)
    delays: tuple[float, ...]  # one-way, seconds


FULL = Sizes(200_000_000, 5, 500, 2.0,
             ((9_600, 20), (64_000, 4), (256_000, 1), (1e6, 1), (10e6, 1), (50e6, 1),
              (100e6, 1)),
             (0.001, 0.005, 0.020, 0.100, 0.250))
QUICK = Sizes(20_000_000, 2, 100, 0.5, ((9_600, 20), (1e6, 1), (100e6, 1)), (0.005, 0.050))


@dataclass(frozen=True)
class Accuracy:
    quantity: str  # "rate" or "delay"
    configured: float  # bit/s or seconds
    measured: float
    time_scale: float
    tolerance: float  # relative for rate, absolute seconds for delay

    @property
    def error(self) -> float:
        """Relative error for a rate; absolute error (seconds) for a delay."""
        if self.quantity == "rate":
            return self.measured / self.configured - 1
        return self.measured - self.configured

    @property
    def passed(self) -> bool:
        return abs(self.error) <= self.tolerance


def _plan(rate_bps: float, delay: float) -> ContactPlan:
    return ContactPlan((Contact("SAT", "GS", T0, T0 + 1e9, rate_bps, rate_bps,
                                ((T0, delay),)),), "benchmark")


class _Sink:
    def __init__(self) -> None:
        self.expect = 0
        self.count = 0
        self.done = asyncio.Event()
        self.done_at = 0.0

    def arm(self, expect: int) -> None:
        self.expect, self.count = expect, 0
        self.done.clear()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 18):
                self.count += len(data)
                if self.count >= self.expect:
                    self.done_at = time.perf_counter()
                    self.done.set()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _transfer(port: int, sink: _Sink, payload: bytes, total: int) -> float:
    """Seconds from the first write until the sink holds ``total`` bytes."""
    sink.arm(total)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        piece = payload[: total - sent]
        writer.write(piece)
        sent += len(piece)
        await writer.drain()
    await asyncio.wait_for(sink.done.wait(), 600)
    writer.close()
    return sink.done_at - start


async def _round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        writer.write(b"ping")
        await asyncio.wait_for(reader.readexactly(4), 30)
        times.append(time.perf_counter() - start)
    writer.close()
    return times


async def _started(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def _overhead(sizes: Sizes, say: Callable[[str], None]) -> list[Row]:
    sink = _Sink()
    sink_srv = await asyncio.start_server(sink.handle, *LOCAL)
    echo_srv = await asyncio.start_server(_echo, *LOCAL)
    sink_at = ("127.0.0.1", await _started(sink_srv))
    echo_at = ("127.0.0.1", await _started(echo_srv))
    bulk = LinkEmulator(_plan(UNSHAPED_BPS, 0.0), "SAT-GS", LOCAL, sink_at, PlanClock(T0))
    ping = LinkEmulator(_plan(UNSHAPED_BPS, 0.0), "SAT-GS", LOCAL, echo_at, PlanClock(T0))
    await bulk.start()
    await ping.start()
    payload = os.urandom(1 << 20)
    say(f"unshaped: {sizes.bulk_bytes / 1e6:.0f} MB x {sizes.repeats}, "
        f"{sizes.pings} round trips")
    direct_s, proxy_s, direct_rtt, proxy_rtt = [], [], [], []
    try:
        for _ in range(sizes.repeats):  # take turns, so load on the machine hits both
            direct_s.append(await _transfer(sink_at[1], sink, payload, sizes.bulk_bytes))
            proxy_s.append(await _transfer(bulk.port, sink, payload, sizes.bulk_bytes))
            direct_rtt += await _round_trips(echo_at[1], sizes.pings // sizes.repeats)
            proxy_rtt += await _round_trips(ping.port, sizes.pings // sizes.repeats)
    finally:
        await bulk.stop()
        await ping.stop()
        sink_srv.close()
        echo_srv.close()
    mb = sizes.bulk_bytes / 1e6
    ours, base = Samples(tuple(proxy_s)), Samples(tuple(direct_s))
    return [
        Row("unshaped throughput (1 TB/s contact, no delay)", "MB/s", mb / ours.best,
            mb / base.best, None, mb / ours.median, mb / base.median),
        Row("round trip, 4-byte ping-pong", "us/round trip",
            1e6 * statistics.median(proxy_rtt), 1e6 * statistics.median(direct_rtt),
            None, None, None),
    ]


async def _rate(rate_bps: float, scale: float, wall_s: float) -> Accuracy:
    sink = _Sink()
    sink_srv = await asyncio.start_server(sink.handle, *LOCAL)
    emu = LinkEmulator(_plan(rate_bps, 0.0), "SAT-GS", LOCAL,
                       ("127.0.0.1", await _started(sink_srv)), PlanClock(T0, scale))
    await emu.start()
    try:
        total = int(rate_bps / 8 * scale * wall_s)
        seconds = await _transfer(emu.port, sink, os.urandom(min(total, 1 << 20)), total)
    finally:
        await emu.stop()
        sink_srv.close()
    return Accuracy("rate", rate_bps, total * 8 / (seconds * scale), scale, 0.05)


async def _delay(delay: float, pings: int) -> Accuracy:
    echo_srv = await asyncio.start_server(_echo, *LOCAL)
    emu = LinkEmulator(_plan(1e9, delay), "SAT-GS", LOCAL,
                       ("127.0.0.1", await _started(echo_srv)), PlanClock(T0))
    await emu.start()
    try:
        rtts = await _round_trips(emu.port, pings)
    finally:
        await emu.stop()
        echo_srv.close()
    return Accuracy("delay", delay, statistics.median(rtts) / 2, 1.0, 0.002)


def _kbit(bps: float) -> str:
    return f"{bps / 1e6:,.3f} Mbit/s" if bps >= 1e6 else f"{bps / 1e3:,.2f} kbit/s"


def render_accuracy(rows: Sequence[Accuracy]) -> str:
    header = ("quantity", "configured", "measured", "error", "tolerance", "time scale",
              "pass/FAIL")
    body = []
    for a in rows:
        if a.quantity == "rate":
            cells = ("rate", _kbit(a.configured), _kbit(a.measured), f"{100 * a.error:+.2f} %",
                     f"{100 * a.tolerance:.0f} %")
        else:
            cells = ("one-way delay", f"{1e3 * a.configured:.3f} ms",
                     f"{1e3 * a.measured:.3f} ms", f"{1e3 * a.error:+.3f} ms",
                     f"{1e3 * a.tolerance:.0f} ms")
        body.append((*cells, f"{a.time_scale:g}", "pass" if a.passed else "FAIL"))
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), "-+-".join("-" * w for w in widths),
                      *(line(b) for b in body)])


async def run(sizes: Sizes, say: Callable[[str], None]) -> tuple[list[Row], list[Accuracy]]:
    rows = await _overhead(sizes, say)
    accuracy = []
    for rate_bps, scale in sizes.rates:
        say(f"rate {_kbit(rate_bps)} at time scale {scale:g}")
        accuracy.append(await _rate(rate_bps, scale, sizes.shaped_wall_s))
    for delay in sizes.delays:
        say(f"delay {1e3 * delay:g} ms")
        accuracy.append(await _delay(delay, max(20, sizes.pings // 10)))
    return rows, accuracy


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.link_emulator", __doc__)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    cpu = pin_to_one_core()
    say = (lambda text: None) if args.json else (
        lambda text: print(text, file=sys.stderr, flush=True))
    rows, accuracy = asyncio.run(run(sizes, say))
    added_us = rows[1].ours - (rows[1].baseline or 0.0)
    notes = [f"the emulator adds {added_us:.0f} us per round trip (two passes through it, "
             "one per direction)",
             "rates are bits per plan second; slow rates run at a time scale (see the "
             "accuracy table) so each transfer lasts about "
             f"{sizes.shaped_wall_s:g} s of wall time"]
    if args.json:
        doc: dict[str, Any] = as_json(rows, sizes=asdict(sizes), environment=environment(cpu),
                                      notes=notes)
        doc["accuracy"] = [{**asdict(a), "error": a.error, "passed": a.passed}
                           for a in accuracy]
        print(json.dumps(doc, indent=1))
    else:
        print(render(rows, notes))
        print()
        print(render_accuracy(accuracy))
    return 1 if args.check and not all(a.passed for a in accuracy) else 0


if __name__ == "__main__":
    raise SystemExit(main())
