"""The node's use of an intermittent link: when the ground is reachable and what each pass
does.

With a contact plan (``[link]`` in the config, a :mod:`sim_link.plan` file) the node knows
its passes: it sleeps until the next acquisition of signal (AOS), works the pass, and stops
at loss of signal (LOS) -- ``asyncio.timeout_at`` the window's end cancels whatever is in
flight at an ``await``, and every store the node writes commits whole between awaits
(SQLite transactions), so nothing is left half-written. Without a plan it probes: it tries
every ``refresh`` seconds and calls the first success after a failure an AOS.

One pass (:func:`work_pass`), in order of what is worth most if the pass is short:

1. ``VerifiedNode.refresh``: the head advanced by the trust mode, its ancestors linked
   back in batches, reads queued while out of contact fetched, the outbox flushed in nonce
   order and the receipts of what it sent verified;
2. the watch list prefetched at the new head (:func:`prefetch`): account proofs and code
   of the watched accounts and the state each watched ``eth_call`` touches, so they are
   answered from the verified cache, with their age, until the next pass.

Refreshes repeat every ``refresh`` wall seconds while the window lasts; a failed one (the
link is a little late, an upstream lied) is retried sooner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from node.rpc.server import RpcError
from node.rpc.upstream_api import Answer, Upstream, UpstreamError
from node.rpc.verified_node import VerifiedNode
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan, plan_from_json

if TYPE_CHECKING:
    from node.config import LinkConfig, WatchConfig

log = logging.getLogger(__name__)

RETRY_FIRST = 0.25
"""Wall seconds before a failed refresh inside a window is tried again (doubling up to
``refresh``): the plans of the node and of the link agree only as well as their clocks."""


@dataclass(frozen=True)
class Hooks:
    """What the link task tells the rest of the node."""

    after: Callable[[bool], None]  # after each refresh attempt (True: it succeeded)
    contact: Callable[[bool], None]  # AOS (True) or LOS (False)
    prefetch: Callable[[], Awaitable[object]]  # prove the watch list at the new head


@dataclass(frozen=True)
class Window:
    """A span of plan time during which at least one of the node's ground links is up."""

    start: float
    end: float
    links: tuple[str, ...]

    def describe(self) -> str:
        return (f"{_iso(self.start)} .. {_iso(self.end)} ({self.end - self.start:.0f} s plan, "
                f"{', '.join(self.links)})")


@dataclass(frozen=True)
class ContactSchedule:
    """The windows of a node's ground links, on a plan clock shared with the emulator."""

    node: str
    windows: tuple[Window, ...]
    clock: PlanClock

    @classmethod
    def from_config(cls, link: LinkConfig, now: Callable[[], float] = time.time
                    ) -> ContactSchedule:
        plan = plan_from_json(link.plan.read_bytes())
        contacts = ground_contacts(plan, link.node, link.links)
        return cls(link.node, merge_windows(contacts), plan_clock(link, now))

    def in_contact(self) -> bool:
        """Whether a window is in progress now."""
        window = self.current_or_next()
        return window is not None and window.start <= self.clock.now()

    def current_or_next(self) -> Window | None:
        """The window in progress, else the next one; None when the plan has no more."""
        now = self.clock.now()
        return next((w for w in self.windows if w.end > now), None)

    def wall_at(self, plan_t: float) -> float:
        """The event loop's time (monotonic) at which the plan reaches ``plan_t``."""
        return self.clock.wall_at(plan_t)

    def status(self) -> dict[str, object]:
        """For ``orbital_status``: plan time, the window in progress or next, and when."""
        now = self.clock.now()
        window = self.current_or_next()
        out: dict[str, object] = {"node": self.node, "planTime": _iso(now),
                                  "timeScale": self.clock.time_scale, "window": None}
        if window is not None:
            out["window"] = {"start": _iso(window.start), "end": _iso(window.end),
                             "links": list(window.links), "inProgress": window.start <= now,
                             "wallSecondsToStart": round(max(0.0, self.clock.to_wall(
                                 window.start - now)), 3),
                             "wallSecondsToEnd": round(self.clock.to_wall(window.end - now), 3)}
        return out


@dataclass(frozen=True)
class PlannedUpstream:
    """The node's upstream behind a planned link: out of contact it fails at once, naming
    the next AOS, instead of spending timeouts and retries on a link that is not there
    (a read then queues at once, a submission is made durable and waits). In contact it is
    ``inner`` unchanged."""

    inner: Upstream
    schedule: ContactSchedule

    def _check(self) -> None:
        if not self.schedule.in_contact():
            window = self.schedule.current_or_next()
            when = "none left in the plan" if window is None else f"next AOS {_iso(window.start)}"
            raise UpstreamError(f"out of contact by the contact plan ({when})")

    def reachable(self) -> bool:
        return self.schedule.in_contact()

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        self._check()
        return await self.inner.call(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        self._check()
        return await self.inner.batch(calls)

    def penalize(self, answer: Answer, what: str) -> None:
        self.inner.penalize(answer, what)

    def state(self) -> list[dict[str, Any]]:
        return self.inner.state()


def plan_clock(link: LinkConfig, now: Callable[[], float] = time.time) -> PlanClock:
    """The plan's clock of ``[link]``: real time, or ``start`` at ``epoch`` (default: now)
    ``time_scale`` times faster -- the clock ``orbital link run --epoch`` keeps too."""
    if link.start is None:
        return PlanClock()
    epoch = now() if link.epoch is None else link.epoch
    return PlanClock.from_epoch(link.start, link.time_scale, epoch)


def ground_contacts(plan: ContactPlan, node: str, links: Iterable[str] = ()
                    ) -> list[Contact]:
    """The contacts of ``links`` (each ``NODE-PEER``); with none given, every ground pass of
    ``node`` (contacts with an elevation: a station, not another satellite)."""
    links = tuple(links)
    if links:
        return [c for link in links for c in plan.for_link(link)]
    return [c for c in plan.contacts
            if node in (c.source, c.target) and c.max_elevation_deg is not None]


def merge_windows(contacts: Iterable[Contact]) -> tuple[Window, ...]:
    """Overlapping or touching contacts as one window each (two stations in view at once
    are one stretch of contact for the node)."""
    out: list[Window] = []
    for c in sorted(contacts, key=lambda c: c.start):
        if out and c.start <= out[-1].end:
            last = out[-1]
            links = last.links if c.link in last.links else (*last.links, c.link)
            out[-1] = Window(last.start, max(last.end, c.end), links)
        else:
            out.append(Window(c.start, c.end, (c.link,)))
    return tuple(out)


async def prefetch(node: VerifiedNode, watch: WatchConfig | None,
                   extra: Iterable[bytes] = ()) -> int:
    """Prove at the head what ``watch`` names (and the ``extra`` accounts, e.g. the
    wallet's): each account's proof and code, and the state each call reads. Returns how
    many items were proven; one that fails is logged and skipped (a revert is an answer:
    its state is proven all the same)."""
    accounts = (*(watch.accounts if watch else ()), *extra)
    calls = watch.calls if watch else ()
    if node.store.head is None or not (accounts or calls):
        return 0
    state = node.state_at("latest")
    done = 0
    for address in dict.fromkeys(accounts):
        try:
            await state.account(address)
            await state.code(address)
            done += 1
        except (UpstreamError, RpcError, ValueError) as exc:
            log.warning("prefetch of 0x%s failed: %s", address.hex(), exc)
    call = node.methods()["eth_call"].handler
    for to, data in calls:
        request = {"to": "0x" + to.hex(), "data": "0x" + data.hex()}
        try:
            await call([request, hex(state.header.number)])
            done += 1
        except RpcError as exc:
            if exc.code != 3:  # 3: reverted -- the state it read is proven and cached
                log.warning("prefetch of call to 0x%s failed: %s", to.hex(), exc)
                continue
            done += 1
        except (UpstreamError, ValueError) as exc:
            log.warning("prefetch of call to 0x%s failed: %s", to.hex(), exc)
    return done


async def work_pass(node: VerifiedNode, every: float, hooks: Hooks) -> None:
    """Refresh (and prefetch) every ``every`` wall seconds until cancelled (at LOS)."""
    delay = RETRY_FIRST
    while True:
        ok = await refresh_once(node, hooks, "refresh in contact failed")
        delay = every if ok else min(every, delay * 2)  # the link may come a little late
        await asyncio.sleep(delay)


async def follow_plan(schedule: ContactSchedule, node: VerifiedNode, every: float,
                      hooks: Hooks) -> None:
    """Work every window of ``schedule``: sleep until AOS, :func:`work_pass` until LOS.
    When the plan runs out, probe (:func:`probe`)."""
    while (window := schedule.current_or_next()) is not None:
        aos = schedule.wall_at(window.start)
        loop = asyncio.get_running_loop()
        if aos > loop.time():
            log.info("out of contact: next AOS %s, in %.1f s", window.describe(),
                     aos - loop.time())
            await asyncio.sleep(aos - loop.time())
        log.info("AOS %s", window.describe())
        set_contact(node, hooks, True)
        try:
            async with asyncio.timeout_at(schedule.wall_at(window.end)):
                await work_pass(node, every, hooks)
        except TimeoutError:
            pass
        finally:
            set_contact(node, hooks, False)
        log.info("LOS %s: serving from the verified cache until the next pass",
                 "-".join(window.links))
    log.warning("the contact plan has no more windows for %s: probing the link",
                schedule.node)
    await probe(node, every, hooks)


async def probe(node: VerifiedNode, every: float, hooks: Hooks, up: bool | None = None
                ) -> None:
    """No plan: try every ``every`` seconds; the first success after a failure is an AOS,
    the first failure after a success an LOS (``up``: what the last try found)."""
    while True:
        await asyncio.sleep(every)
        ok = await refresh_once(node, hooks, "refresh failed")
        if ok != up:
            log.info("AOS (probed)" if ok else "LOS (probed): serving from the verified cache")
            set_contact(node, hooks, ok)
            up = ok


async def refresh_once(node: VerifiedNode, hooks: Hooks, failed: str) -> bool:
    """One refresh and prefetch; whether it worked (a failure is logged)."""
    try:
        await node.refresh()
        await hooks.prefetch()
        ok = True
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        log.warning("%s: %s", failed, exc)
        ok = False
    hooks.after(ok)
    return ok


def set_contact(node: VerifiedNode, hooks: Hooks, up: bool) -> None:
    """AOS (``up``) or LOS: entries sent since an AOS are not broadcast again in the same
    contact (:attr:`VerifiedNode.contact_since`)."""
    node.contact_since = node.clock() if up else None
    hooks.contact(up)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
