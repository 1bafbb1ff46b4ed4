"""An emulated link for tests: the real :class:`sim_link.proxy.LinkEmulator` between a node
and its upstream, in a thread with its own event loop (so synchronous tests and node
processes can use it), controlled from the test.

Two ways to drive it:

* **forced** (:meth:`EmulatedLink.los`, :meth:`EmulatedLink.aos`): the link is up until the
  test cuts it; ``los()`` resets open connections and refuses new ones, ``aos()`` opens it
  again. The node in front of it has no plan and *probes* (every ``refresh`` seconds): it
  notices the LOS at its next refresh.
* **plan** (:func:`plan_link`): contact windows in plan seconds from the link's start,
  ``time_scale`` times faster than wall time; the emulator follows them and the node gets
  the same plan in its ``[link]`` section (:meth:`EmulatedLink.node_config`), so it knows
  its passes instead of probing. ``los()``/``aos()`` still override the plan;
  :meth:`EmulatedLink.follow_plan` gives the link back to it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan
from sim_link.proxy import LinkEmulator

T = TypeVar("T")

NODE, STATION = "SAT", "GS"
LINK = f"{NODE}-{STATION}"
FOREVER = 10 * 365 * 86400.0
"""The length of the one contact of a forced link (plan seconds): up until forced down."""
RATE_BPS = 100e6
"""The forced link's rate each way (bit/s): fast enough not to matter to a test."""
DELAY_S = 0.001


@dataclass(frozen=True)
class LinkPlan:
    """What ``@pytest.mark.orbital_link`` asks for: contact ``windows`` as ``(start, end)``
    plan seconds after the link starts, at ``time_scale``, with the plan's ``rate_bps``
    (node -> ground and back) and one-way ``delay_s``."""

    windows: tuple[tuple[float, float], ...]
    time_scale: float = 1.0
    rate_bps: tuple[float, float] = (2e6, 2e6)
    delay_s: float = 0.005

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("orbital_link: windows=[(start_s, end_s), ...] needs a window")
        for start, end in self.windows:
            if not 0 <= start < end:
                raise ValueError(f"orbital_link: window ({start}, {end}): want 0 <= start < end"
                                 " (plan seconds after the link starts)")
        if self.time_scale <= 0:
            raise ValueError(f"orbital_link: time_scale {self.time_scale}: want > 0")


@dataclass
class EmulatedLink:
    """A running emulated link; ``url`` is where the node dials (``http://127.0.0.1:PORT``).

    ``plan`` is None for a forced link. The plan's clock starts at ``start`` (UNIX time,
    also plan time 0 of the windows) ``time_scale`` times faster.
    """

    upstream: tuple[str, int]
    plan: LinkPlan | None
    directory: Path
    start: float = field(default_factory=time.time)
    url: str = ""
    emulator: LinkEmulator | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # -- life cycle -------------------------------------------------------------------

    def open(self) -> EmulatedLink:
        """Start the emulator's thread and loop; returns once it listens."""
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name=f"link {LINK}", daemon=True)
        self._thread.start()
        ready.wait(30)
        try:
            self.emulator = self._run(self._start())
        except BaseException:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{self.emulator.port}"
        return self

    def close(self) -> None:
        """Stop the emulator (open connections reset) and its thread."""
        if self._thread is None:
            return
        if self.emulator is not None:
            self._run(self.emulator.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> EmulatedLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> LinkEmulator:
        scale = self.plan.time_scale if self.plan is not None else 1.0
        clock = PlanClock.from_epoch(self.start, scale, self.start)
        emulator = LinkEmulator(self.contact_plan(), LINK, ("127.0.0.1", 0), self.upstream,
                                clock)
        await emulator.start()
        return emulator

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # -- the plan ---------------------------------------------------------------------

    def contact_plan(self) -> ContactPlan:
        """The link's contacts: the marker's windows, or one long contact (forced link)."""
        if self.plan is None:
            windows: Sequence[tuple[float, float]] = ((0.0, FOREVER),)
            rates, delay = (RATE_BPS, RATE_BPS), DELAY_S
        else:
            windows, rates, delay = self.plan.windows, self.plan.rate_bps, self.plan.delay_s
        contacts = tuple(
            Contact(NODE, STATION, self.start + a, self.start + b, rates[0], rates[1],
                    ((self.start + a, delay), (self.start + b, delay)), max_elevation_deg=45.0)
            for a, b in windows)
        return ContactPlan(contacts, "orbital pytest plugin")

    def node_config(self) -> str:
        """The ``[link]`` section a node behind this link needs to follow its plan (TOML
        text; empty for a forced link: the node probes). Writes the plan file beside."""
        if self.plan is None:
            return ""
        path = self.directory / "plan.json"
        path.write_text(self.contact_plan().to_json())
        start = datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"""
[link]
plan = {json.dumps(str(path))}
node = "{NODE}"
links = ["{LINK}"]
time_scale = {self.plan.time_scale!r}
start = {json.dumps(start)}
epoch = {self.start!r}
"""

    # -- control ----------------------------------------------------------------------

    @property
    def up(self) -> bool:
        assert self.emulator is not None
        return self.emulator.is_up

    def plan_time(self) -> float:
        """Plan seconds since the link started (the windows' time base)."""
        assert self.emulator is not None
        return self.emulator.clock.now() - self.start

    def state(self) -> dict[str, Any]:
        """The emulator's state (``up``, ``forced``, bytes each way, connections...)."""
        assert self.emulator is not None
        emulator = self.emulator

        async def state() -> dict[str, Any]:
            return emulator.state()

        return self._run(state())

    def los(self) -> None:
        """Loss of signal now: open connections are reset, new ones refused, until
        :meth:`aos` (or :meth:`follow_plan`)."""
        self._force(False)

    def aos(self) -> None:
        """Acquisition of signal now: connections are forwarded again, until :meth:`los`."""
        self._force(True)

    def follow_plan(self) -> None:
        """Back to the plan (forced link: its one long contact, i.e. up)."""
        self._force(None)

    def _force(self, up: bool | None) -> None:
        assert self.emulator is not None, "open() the link first"
        self._run(self.emulator.force(up))

    def wait_aos(self, timeout: float = 60.0) -> None:
        """Wait (polling) until the link is up."""
        self._wait(True, timeout)

    def wait_los(self, timeout: float = 60.0) -> None:
        """Wait (polling) until the link is down."""
        self._wait(False, timeout)

    def _wait(self, up: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.up != up:
            if time.monotonic() > deadline:
                raise AssertionError(f"the link did not go {'up' if up else 'down'} within "
                                     f"{timeout} s (plan time {self.plan_time():.1f} s)")
            time.sleep(0.05)


def plan_link(options: dict[str, Any]) -> LinkPlan:
    """The :class:`LinkPlan` of ``@pytest.mark.orbital_link(**options)``."""
    known = {"windows", "time_scale", "rate_bps", "delay_s"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"orbital_link: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    windows = tuple((float(a), float(b)) for a, b in options.get("windows", ()))
    rate = options.get("rate_bps", (2e6, 2e6))
    rates = (float(rate), float(rate)) if isinstance(rate, int | float) else \
        (float(rate[0]), float(rate[1]))
    return LinkPlan(windows, float(options.get("time_scale", 1.0)), rates,
                    float(options.get("delay_s", 0.005)))
