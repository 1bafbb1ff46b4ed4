"""The link emulator: an asyncio TCP proxy gated and shaped by a contact plan.

One :class:`LinkEmulator` emulates one link ``A-B`` of a :class:`~sim_link.plan.ContactPlan`.
It listens on a local address; a client that connects there is on the **A side** of the link
(for ``SAT-GS``: the satellite), and every accepted connection is forwarded to the
``upstream`` address, the **B side** (the ground station's service)::

    client (A) --listen--> [ emulator: gate, rate, delay, loss ] --upstream--> server (B)

**Direction.** Bytes client -> upstream travel A -> B: they use the contact's *forward*
rate when the contact's ``source`` is A and its *reverse* rate when the contact is stated
the other way round (``source`` is B). Bytes upstream -> client use the other rate. Delay
and loss are the same both ways.

**Time.** Plan time runs ``time_scale`` times faster than wall time (see
:mod:`sim_link.clock`). Rates are bits per *plan* second, delays and the jitter are plan
seconds: at ``time_scale=N`` a link moves N times more bytes per wall second and a delay
lasts 1/N of its wall time. ``state()`` and events report plan times.

**Gate.** Inside a window (``contact.start <= t < contact.end``) connections are accepted
and forwarded. Outside, what a dialler meets depends on ``gate``:

* ``gate="reset"`` (default): the kernel still completes the TCP handshake on the
  listening socket, but the emulator aborts the connection at once with ``SO_LINGER`` 0:
  the client sees its connection *reset* (``ConnectionResetError`` on its first read or
  write; an immediate EOF on some platforms) and nothing reaches upstream. Quick to
  notice, but not what a radio link does.
* ``gate="silent"``: nothing answers, as over a real link outside contact, which gives no
  RST: the listening socket drops every packet it receives (a socket filter,
  :mod:`sim_link.silence`; Linux only), so the client's SYN gets no answer, its kernel
  retransmits it and its connect times out. A SYN retransmitted after AOS is answered (a
  dial that starts shortly before a window connects in it, at the client's next SYN
  retransmission). The emulator never sees those SYNs: no ``refuse`` event, no count.
  A client whose handshake ended in the instant the link went down is accepted and held,
  unread and unanswered, until the next AOS, then forwarded.

A connection the upstream refuses is reset in both modes. Back-to-back contacts of the link
(one ends when the next starts) are a hand-over: the new contact applies, nothing is cut.

**LOS.** At the end of a window, open connections are either

* ``on_los="reset"``: reset on both sides (RST), bytes still in flight are dropped; or
* ``on_los="stall"``: frozen -- the emulator stops reading and releasing bytes until the
  link's next AOS, then carries on with the new contact's rate and delay; nothing is lost,
  duplicated or reordered (a TCP connection over a link that goes silent and comes back;
  the natural partner of ``gate="silent"``). Bytes that were in flight at LOS are delivered
  right at AOS. With no later contact, the connection stays frozen until a side closes it
  or the emulator stops.

**Shaping.** The rate belongs to the link, one per direction, shared by all the link's
connections; delay, jitter and loss apply to each connection's bytes. Each direction of a
connection has a pump (reads the sending socket, chunk by chunk) and a writer (releases
the chunks into the receiving socket at their release times); each direction of the link
has one serialiser that every pump of that direction takes turns on.

* *Rate.* The serialiser sends chunks one after another: a chunk stamped at wall time
  ``now`` finishes at ``done = max(now, previous done) + size / rate``, ``done`` being the
  link direction's, whichever connection sent the previous chunk. So all connections of a
  direction together never move more than the rate, and the two directions never take from
  each other. Pumps take turns in the order they asked (one chunk per turn: round robin
  between the connections that have bytes to send), so a bulk transfer cannot starve
  another connection. A pump reads one chunk of ``BURST_S`` (plan 10 ms, at least 5 wall
  ms) of the rate before asking for its turn, and a turn waits until the link is at most
  ``READ_AHEAD_WALL_S`` (20 wall ms) ahead: a faster sender is held back by TCP flow
  control, with at most one chunk per connection read and waiting, never buffered without
  bound.
* *Delay.* The chunk leaves the link at ``done + delay(t)``, where ``delay(t)`` is the
  contact's one-way delay interpolated at the plan time the chunk was stamped, plus
  ``uniform(0, jitter_s)`` when jitter is set. A connection's release times never
  decrease, so jitter never reorders its bytes. Bytes are never released early; they are
  released late by the event loop's timer granularity (epoll waits whole milliseconds,
  rounded up, plus the kernel's timer slack; ``benchmarks.link_emulator`` measures it).
* *Loss* is seen by a reliable stream as a retransmission stall: each chunk of ``n``
  segments (``MSS`` bytes) is hit with probability ``1 - (1 - loss)**n``; a hit holds that
  connection for one retransmission timeout, ``max(200 ms, 2 * RTT)`` plan time, from the
  time the chunk would have started on the link; then the chunk takes a new turn. Its
  later chunks wait behind it; the other connections use the link meanwhile. Bytes are
  never dropped.

**Forcing.** :meth:`LinkEmulator.force` holds a link up or down whatever the plan says
(a test's LOS and AOS on demand: the pytest plugin's ``link.los()``/``link.aos()``), and
``force(None)`` gives it back to the plan; a forced LOS is an LOS like the plan's.

**Many links.** :class:`Emulator` runs several link emulators (one per link, each with its
own listening port and upstream) behind one event queue and one status endpoint.

**Events and state.** :meth:`LinkEmulator.subscribe` returns an :class:`asyncio.Queue` that
receives a :class:`LinkEvent` for every AOS, LOS, accepted connection, refused connection
and connection cut. :meth:`LinkEmulator.state` is a JSON-ready dict; with ``status=(host,
port)`` the same dict is served as ``GET /status`` over HTTP/1.1 on that local address
(stdlib asyncio, one response per connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sim_link import silence
from sim_link.clock import PlanClock
from sim_link.errors import LinkError
from sim_link.plan import Contact, ContactPlan, PlanError

__all__ = ["BURST_S", "MSS", "Emulator", "EmulatorError", "LinkEmulator", "LinkEvent",
           "PlanClock", "parse_address"]

MSS = 1460  # bytes per TCP segment on the emulated link (loss is per segment)
BURST_S = 0.010  # chunk size: about this much plan time of the link's rate ...
MIN_BURST_WALL_S = 0.005  # ... but at least this much wall time: well above the event
#                          loop's timer granularity (~1 ms)
READ_AHEAD_WALL_S = 0.020  # how far (wall) the pump may read ahead of the link: slack for
#                           late wake-ups on a busy machine, so the link never idles
MIN_RTO_S = 0.200  # the smallest retransmission timeout, plan seconds (RFC 6298 floor: 1 s;
#                   Linux uses 200 ms)
MIN_CHUNK = 16
MAX_CHUNK = 256 * 1024
MIN_QUEUE_BYTES = 256 * 1024  # in-flight bytes held per direction: at least this, or 2x BDP

OnLos = Literal["reset", "stall"]
Gate = Literal["reset", "silent"]
EventKind = Literal["aos", "los", "connect", "refuse", "cut"]


class EmulatorError(LinkError):
    """The emulator was configured wrongly (option values, addresses); the message says
    which option and what it accepts."""


@dataclass(frozen=True)
class LinkEvent:
    """Something that happened on a link, at plan time ``plan_time``.

    ``kind``: ``"aos"`` (window opens; ``contact`` is the new one), ``"los"`` (window
    closes; ``contact`` is the one that ended), ``"connect"`` (a client was forwarded),
    ``"refuse"`` (a client was reset: outside a window, or upstream unreachable),
    ``"cut"`` (an open connection was reset at LOS). ``detail`` says more in words
    (peer address, reason)."""

    kind: EventKind
    plan_time: float
    link: str
    contact: Contact | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "plan_time": self.plan_time, "link": self.link,
                "contact": None if self.contact is None else _contact_dict(self.contact),
                "detail": self.detail}


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[v6]:PORT"``) as ``(host, port)``; raises :class:`EmulatorError`."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EmulatorError(f"{what} {text!r}: want HOST:PORT, e.g. 127.0.0.1:8545")
    return host, int(port)


def _contact_dict(c: Contact) -> dict[str, Any]:
    return {"link": c.link, "start": c.start, "end": c.end,
            "rate_bps": {"forward": c.rate_forward_bps, "reverse": c.rate_reverse_bps},
            "loss": c.loss, "class": c.link_class}


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: ``SO_LINGER`` on with a zero timeout, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _consume(task: asyncio.Task[None]) -> None:
    """Mark a pump's exception (a reset socket) as seen."""
    if not task.cancelled():
        task.exception()


@dataclass
class _Chunk:
    release: float  # monotonic wall time the chunk leaves the link
    data: bytes  # b"" marks end of stream (half-close)


class _Serialiser:
    """One direction of the link, shared by all its connections: the wall time ``done``
    at which it finishes sending what it was given, and the line of pumps waiting for
    their turn (first come, first served; one chunk per turn)."""

    def __init__(self, emu: LinkEmulator, a_to_b: bool) -> None:
        self.emu, self.a_to_b = emu, a_to_b
        self.done = 0.0
        self._line: deque[asyncio.Future[None]] = deque()
        self._busy = False  # a pump holds the turn

    def rate_Bps_wall(self, contact: Contact) -> float:
        """Bytes per wall second for this direction under ``contact``."""
        forward = (contact.source == self.emu.side_a) == self.a_to_b
        bps = contact.rate_forward_bps if forward else contact.rate_reverse_bps
        return bps / 8 * self.emu.clock.time_scale

    def burst_wall_s(self) -> float:
        """Wall seconds of link time one chunk holds."""
        return max(self.emu.clock.to_wall(BURST_S), MIN_BURST_WALL_S)

    def chunk_size(self, contact: Contact) -> int:
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self.rate_Bps_wall(contact)
                                                 * self.burst_wall_s())))

    async def take_turn(self) -> None:
        """Hold the link direction: wait for the pumps ahead in line, then until the link
        is at most ``READ_AHEAD_WALL_S`` (or one burst) ahead of now. The caller must
        :meth:`end_turn` (in a ``finally``)."""
        loop = asyncio.get_running_loop()
        if self._busy:
            granted: asyncio.Future[None] = loop.create_future()
            self._line.append(granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._hand_on()  # the turn came just as this pump was cancelled
                else:
                    self._line.remove(granted)
                raise
        self._busy = True
        try:
            allowed = max(self.burst_wall_s(), READ_AHEAD_WALL_S)
            while (ahead := self.done - loop.time()) > allowed:
                await asyncio.sleep(ahead - allowed)  # the link is busy: TCP holds the sender
        except BaseException:
            self._hand_on()
            raise

    def end_turn(self) -> None:
        self._hand_on()

    def _hand_on(self) -> None:
        while self._line:
            granted = self._line.popleft()
            if not granted.done():
                granted.set_result(None)  # still busy: the turn passes straight on
                return
        self._busy = False


class _Direction:
    """One direction of one connection: pump (read, take a turn on the link's serialiser,
    stamp) and writer (release)."""

    def __init__(self, emu: LinkEmulator, link: _Serialiser, name: str,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.emu, self.link, self.name = emu, link, name
        self.reader, self.writer = reader, writer
        self.queue: deque[_Chunk] = deque()
        self.queued_bytes = 0
        self.last_release = 0.0
        self.bytes = 0  # delivered to the receiving socket
        self.done = False
        self._item = asyncio.Event()  # queue became non-empty
        self._room = asyncio.Event()  # queue has room
        self._room.set()

    async def pump(self) -> None:
        emu, loop = self.emu, asyncio.get_running_loop()
        while True:
            await emu.wait_up()
            contact = emu.contact
            assert contact is not None
            while self.queued_bytes > self.queue_limit(contact):
                self._room.clear()
                await self._room.wait()
            data = await self.reader.read(self.link.chunk_size(contact))
            if not data:
                self._push(_Chunk(max(loop.time(), self.last_release), b""))
                return
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        """Take a turn on the link and stamp ``data``; after a loss hit, wait out the
        retransmission timeout off the link and take another turn."""
        emu, loop = self.emu, asyncio.get_running_loop()
        retransmit_at: float | None = None
        while True:
            await self.link.take_turn()
            try:
                if not emu.is_up:
                    await emu.wait_up()  # stall mode: bytes read just before LOS wait for AOS
                contact = emu.contact
                assert contact is not None
                now = loop.time()
                start = max(now, self.link.done)
                if retransmit_at is None and emu.lost(data, contact):
                    rto = max(MIN_RTO_S, 4 * contact.delay_at(emu.clock.plan_at(now)))
                    retransmit_at = start + emu.clock.to_wall(rto)  # RTO = 2 x RTT
                    emu.stalls += 1
                else:
                    self._push(self._stamp(data, contact, now, start))
                    return
            finally:
                self.link.end_turn()
            await asyncio.sleep(retransmit_at - loop.time())

    def queue_limit(self, contact: Contact) -> float:
        delay = self.emu.clock.to_wall(max(d for _, d in contact.delay_samples) + self.emu.jitter_s)
        return max(MIN_QUEUE_BYTES, 2 * self.link.rate_Bps_wall(contact) * delay)

    def _stamp(self, data: bytes, contact: Contact, now: float, start: float) -> _Chunk:
        emu = self.emu
        self.link.done = start + len(data) / self.link.rate_Bps_wall(contact)
        delay = contact.delay_at(emu.clock.plan_at(now))
        extra = emu.rng.uniform(0, emu.jitter_s) if emu.jitter_s else 0.0
        release = max(self.last_release, self.link.done + emu.clock.to_wall(delay + extra))
        self.last_release = release
        return _Chunk(release, data)

    def _push(self, chunk: _Chunk) -> None:
        self.queue.append(chunk)
        self.queued_bytes += len(chunk.data)
        self._item.set()

    async def release(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self._item.clear()
                await self._item.wait()
            chunk = self.queue[0]
            while (wait := chunk.release - loop.time()) > 0:  # never early, not even by a hair
                await asyncio.sleep(wait)
            await self.emu.wait_up()
            self.queue.popleft()
            self.queued_bytes -= len(chunk.data)
            self._room.set()
            if not chunk.data:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                self.done = True
                return
            self.writer.write(chunk.data)
            self.bytes += len(chunk.data)
            self.emu.bytes[self.name] += len(chunk.data)
            await self.writer.drain()


@dataclass(eq=False)
class _Connection:
    ident: int
    peer: str
    opened: float  # plan time
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    directions: list[_Direction] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client)
        _reset(self.upstream)

    def as_dict(self) -> dict[str, Any]:
        up, down = self.directions
        return {"id": self.ident, "peer": self.peer, "opened": self.opened,
                "bytes_up": up.bytes, "bytes_down": down.bytes,
                "queued_up": up.queued_bytes, "queued_down": down.queued_bytes}


class LinkEmulator:
    """Emulates link ``link`` (``"A-B"``) of ``plan``; see the module docstring.

    ``listen`` and ``upstream`` are ``(host, port)``; listen on port 0 and read
    :attr:`port` after :meth:`start`. ``clock`` maps wall to plan time (default: real
    time, scale 1). ``gate`` says what a dialler meets outside a window (``"reset"`` or
    ``"silent"``), ``on_los`` what happens to open connections at LOS (``"reset"`` or
    ``"stall"``). ``jitter_s`` (plan seconds) adds ``uniform(0, jitter_s)`` to each
    chunk's delay; ``seed`` seeds jitter and loss. ``status=(host, port)`` serves
    ``GET /status``.
    """

    def __init__(self, plan: ContactPlan, link: str, listen: tuple[str, int],
                 upstream: tuple[str, int], clock: PlanClock | None = None, *,
                 on_los: OnLos = "reset", gate: Gate = "reset", jitter_s: float = 0.0,
                 seed: int | None = None, status: tuple[str, int] | None = None) -> None:
        contacts = plan.for_link(link)  # raises PlanError for a malformed link name
        if not contacts:
            known = sorted({f"{c.source}-{c.target}" for c in plan.contacts})
            raise PlanError(f"link {link!r}: the plan has no contact between "
                            f"{' and '.join(link.split('-', 1))}; links in the plan: "
                            f"{', '.join(known) or 'none'}")
        if on_los not in ("reset", "stall"):
            raise EmulatorError(f"on_los {on_los!r}: want 'reset' or 'stall'")
        if gate not in ("reset", "silent"):
            raise EmulatorError(f"gate {gate!r}: want 'reset' or 'silent'")
        if gate == "silent" and not silence.SUPPORTED:
            raise EmulatorError("gate 'silent' needs Linux socket filters; use 'reset'")
        if not (math.isfinite(jitter_s) and jitter_s >= 0):
            raise EmulatorError(f"jitter {jitter_s!r}: want seconds >= 0")
        self.plan, self.link = plan, link
        self.side_a, self.side_b = link.split("-", 1)
        self.contacts = contacts
        self.listen, self.upstream, self.status_address = listen, upstream, status
        self.clock = clock if clock is not None else PlanClock()
        self.on_los: OnLos = on_los
        self.gate: Gate = gate
        self.jitter_s = float(jitter_s)
        self.rng = random.Random(seed)
        self.contact: Contact | None = None
        self.bytes = {"up": 0, "down": 0}  # up: client (A) -> upstream (B)
        self.stalls = 0
        self.serialisers = {"up": _Serialiser(self, True), "down": _Serialiser(self, False)}
        self.counts = {"accepted": 0, "refused": 0, "cut": 0}
        self._up = asyncio.Event()
        self._subscribers: list[asyncio.Queue[LinkEvent]] = []
        self._connections: dict[int, _Connection] = {}
        self._next_id = 0
        self._server: asyncio.Server | None = None
        self._status_server: asyncio.Server | None = None
        self._schedule: asyncio.Task[None] | None = None
        self._forced: bool | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening (and status) sockets and start following the plan.

        Raises :class:`EmulatorError` when an address cannot be bound (in use, not local)."""
        self._server = await _bind(self._on_client, self.listen, "listen")
        self._update(self.clock.now())  # before any client is handled: no await in between
        if self.status_address is not None:
            try:
                self._status_server = await _bind(_status_handler(self.state),
                                                  self.status_address, "status")
            except EmulatorError:
                self._server.close()
                raise
        self._schedule = asyncio.create_task(self._follow_plan(), name=f"plan {self.link}")

    async def stop(self) -> None:
        """Stop listening and reset every open connection."""
        for server in (self._server, self._status_server):
            if server is not None:
                server.close()
        if self._schedule is not None:
            self._schedule.cancel()
        for conn in list(self._connections.values()):
            conn.reset()
        self._connections.clear()
        for task in list(self._handlers):
            task.cancel()
        tasks = [t for t in (self._schedule, *self._handlers) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in (self._server, self._status_server):
            if server is not None:
                await server.wait_closed()

    async def __aenter__(self) -> LinkEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (for the CLI), then stop."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def port(self) -> int:
        """The bound listening port."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def status_port(self) -> int | None:
        if self._status_server is None:
            return None
        return int(self._status_server.sockets[0].getsockname()[1])

    # -- events and state -----------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[LinkEvent]:
        """A queue that receives every later :class:`LinkEvent` of this link. Subscribe
        before :meth:`start` to see the AOS of a window already open at start."""
        queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LinkEvent]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def _publish(self, kind: EventKind, contact: Contact | None, detail: str = "",
                 plan_time: float | None = None) -> None:
        event = LinkEvent(kind, self.clock.now() if plan_time is None else plan_time,
                          self.link, contact, detail)
        for queue in self._subscribers:
            queue.put_nowait(event)

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    async def wait_up(self) -> None:
        await self._up.wait()

    def contact_at(self, t: float) -> Contact | None:
        """The link's contact in progress at plan time ``t`` (None: out of contact)."""
        return next((c for c in self.contacts if c.contains(t)), None)

    def next_aos(self, after: float | None = None) -> Contact | None:
        """The first contact of the link starting after ``after`` (default: now)."""
        t = self.clock.now() if after is None else after
        return next((c for c in self.contacts if c.start > t), None)

    def rates_bps(self, contact: Contact) -> dict[str, float]:
        """Plan rates (bit/s) of ``contact`` as ``{"up": A->B, "down": B->A}``."""
        a_is_source = contact.source == self.side_a
        fwd, rev = contact.rate_forward_bps, contact.rate_reverse_bps
        return {"up": fwd if a_is_source else rev, "down": rev if a_is_source else fwd}

    def lost(self, data: bytes, contact: Contact) -> bool:
        """Whether a segment of ``data`` is lost on ``contact`` (then TCP stalls for an RTO)."""
        if contact.loss <= 0:
            return False
        segments = -(-len(data) // MSS)
        return self.rng.random() < 1 - (1 - contact.loss) ** segments

    def state(self) -> dict[str, Any]:
        """Where the link stands (JSON-ready; plan times in UNIX seconds)."""
        now = self.clock.now()
        contact = self.contact if self.is_up else None
        following = self.next_aos(now)
        return {
            "link": self.link, "side_a": self.side_a, "side_b": self.side_b,
            "plan_time": now, "time_scale": self.clock.time_scale,
            "up": self.is_up, "forced": self._forced, "gate": self.gate,
            "on_los": self.on_los,
            "contact": None if contact is None else _contact_dict(contact),
            "next_aos": None if following is None else following.start,
            "next_los": None if contact is None else contact.end,
            "delay_s": None if contact is None else contact.delay_at(now),
            "rate_bps": None if contact is None else self.rates_bps(contact),
            "loss": None if contact is None else contact.loss,
            "jitter_s": self.jitter_s,
            "listen": f"{self.listen[0]}:{self._server.sockets[0].getsockname()[1]}"
                      if self._server and self._server.sockets else None,  # None once stopped
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "connections": [c.as_dict() for c in self._connections.values()],
            "bytes": dict(self.bytes), "retransmission_stalls": self.stalls,
            **self.counts,
        }

    # -- the plan -------------------------------------------------------------------------

    def _update(self, now: float) -> float | None:
        """Bring the link to the state the plan says for ``now``; return the plan time of
        the next change (``None``: none left)."""
        current = self.contact_at(now)
        self._gate_listener(up=current is not None)
        if current is not None:
            self._go_up(current, now)
            return current.end
        self._go_down(now)
        following = self.next_aos(now)
        return None if following is None else following.start

    def _go_up(self, contact: Contact, now: float, detail: str = "") -> None:
        """AOS under ``contact`` (a hand-over if the link is up under another one)."""
        if not self.is_up:
            self.contact = contact
            self._up.set()
            self._publish("aos", contact, detail, plan_time=now)
        elif contact is not self.contact:  # hand-over between back-to-back contacts
            self.contact = contact
            self._publish("aos", contact, detail or "hand-over", plan_time=now)

    def _go_down(self, now: float, detail: str = "") -> None:
        """LOS, if the link is up: open connections reset (``on_los="reset"``) or frozen."""
        if self.is_up:
            ended = self.contact
            self._up.clear()
            self._publish("los", ended, detail, plan_time=now)
            if self.on_los == "reset":
                for conn in list(self._connections.values()):
                    self._cut(conn, "reset at LOS")

    # -- forcing the link (tests) ---------------------------------------------------------

    @property
    def forced(self) -> bool | None:
        """``True``/``False``: held up/down by :meth:`force`; ``None``: following the plan."""
        return self._forced

    async def force(self, up: bool | None) -> None:
        """Hold the link up (``True``) or down (``False``) whatever the plan says, or give
        it back to the plan (``None``). Down is an LOS as the plan makes one (``on_los``
        and ``gate`` apply); up is an AOS under the contact in progress, else the last one
        the link had, else the link's first (its rate and delay apply). The plan's task is
        stopped while the link is forced and restarted by ``force(None)``. Events carry
        the detail ``"forced"``. Call it on the emulator's event loop, after
        :meth:`start`."""
        if self._server is None:
            raise EmulatorError("force(): start() the emulator first")
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
            self._schedule = None
        self._forced = up
        now = self.clock.now()
        if up is None:
            self._update(now)
            self._schedule = asyncio.create_task(self._follow_plan(),
                                                 name=f"plan {self.link}")
            return
        self._gate_listener(up=up)
        if up:
            current = self.contact_at(now)
            self._go_up(current or self.contact or self.contacts[0], now, "forced")
        else:
            self._go_down(now, "forced")

    def _gate_listener(self, up: bool) -> None:
        """Silent gate: the listening sockets drop every packet while the link is down."""
        if self.gate != "silent" or self._server is None:
            return
        for sock in self._server.sockets:
            if up:
                silence.unsilence(sock)
            else:
                silence.silence(sock)

    async def _follow_plan(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            change = self._update(self.clock.now())
            if change is None:
                await asyncio.Event().wait()  # the plan is over: down for good
                return
            wait = self.clock.wall_at(change) - loop.time()
            # wake at the boundary; a timer that fires a hair early just loops once more
            await asyncio.sleep(max(wait, 0.0))
            while self.clock.now() < change:
                await asyncio.sleep(max(self.clock.wall_at(change) - loop.time(), 1e-4))

    def _cut(self, conn: _Connection, why: str) -> None:
        self._connections.pop(conn.ident, None)
        conn.reset()
        self.counts["cut"] += 1
        self._publish("cut", self.contact, f"connection {conn.ident} ({conn.peer}): {why}")

    # -- connections ----------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            # only stop() cancels a handler; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error
            _reset(writer)
        finally:
            self._handlers.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]  # noqa: UP031
        if self.gate == "silent":
            silence.unsilence_quietly(writer.get_extra_info("socket"))
            await self.wait_up()  # handshake ended as the link went down: hold, unanswered
        if not self.is_up:
            self.counts["refused"] += 1
            _reset(writer)
            following = self.next_aos()
            self._publish("refuse", None, f"{peer}: link down (next AOS "
                          f"{'none' if following is None else following.start})")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            self.counts["refused"] += 1
            _reset(writer)
            self._publish("refuse", self.contact, f"{peer}: upstream {self.upstream}: {exc}")
            return
        if not self.is_up:  # LOS while connecting upstream
            self.counts["refused"] += 1
            _reset(writer)
            _reset(up_writer)
            self._publish("refuse", None, f"{peer}: link went down while connecting")
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next_id += 1
        conn = _Connection(self._next_id, peer, self.clock.now(), writer, up_writer)
        conn.directions = [_Direction(self, self.serialisers["up"], "up", reader, up_writer),
                           _Direction(self, self.serialisers["down"], "down", up_reader,
                                      writer)]
        self._connections[conn.ident] = conn
        self.counts["accepted"] += 1
        self._publish("connect", self.contact, f"connection {conn.ident} from {peer}")
        for d in conn.directions:
            conn.tasks.append(asyncio.create_task(d.pump(), name=f"{self.link} {d.name} pump"))
            conn.tasks.append(asyncio.create_task(d.release(),
                                                  name=f"{self.link} {d.name} release"))
        for task in conn.tasks:  # a socket error ends the connection; it is not a bug
            task.add_done_callback(_consume)
        try:
            await self._supervise(conn)
        finally:
            if self._connections.pop(conn.ident, None) is not None:
                conn.reset()

    async def _supervise(self, conn: _Connection) -> None:
        """Wait until both directions have delivered their end of stream, or any side
        fails (then reset both sides, like a middlebox that loses its state)."""
        pending = set(conn.tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.cancelled() or t.exception() is not None for t in done):
                for other in pending:
                    other.cancel()
                return
        for w in (conn.client, conn.upstream):
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()


async def _bind(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                  Awaitable[None]],
                address: tuple[str, int], what: str) -> asyncio.Server:
    try:
        return await asyncio.start_server(handler, *address)
    except OSError as exc:
        raise EmulatorError(f"{what} {address[0]}:{address[1]}: cannot listen there: "
                            f"{exc.strerror or exc}") from None


def _status_handler(state: Callable[[], dict[str, Any]]
                    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """An HTTP/1.1 handler answering ``GET /status`` with ``state()`` as JSON, then closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method != "GET":
                code, body = "405 Method Not Allowed", {"error": "use GET"}
            elif target.split("?", 1)[0] == "/status":
                code, body = "200 OK", state()
            else:
                code, body = "404 Not Found", {"error": "see GET /status"}
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ValueError, OSError):
            writer.close()
            return
        data = json.dumps(body, indent=1).encode()
        writer.write(f"HTTP/1.1 {code}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                     + data)
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    return handle


class Emulator:
    """Several links at once: one :class:`LinkEmulator` per link, one event stream, one
    status endpoint (``GET /status`` answers ``{"links": {name: state}}``)."""

    def __init__(self, links: Sequence[LinkEmulator],
                 status: tuple[str, int] | None = None) -> None:
        names = [link.link for link in links]
        if len(set(names)) != len(names):
            raise EmulatorError(f"links {names}: each link may be emulated once")
        self.links = {link.link: link for link in links}
        self.status_address = status
        self._status_server: asyncio.Server | None = None

    def subscribe(self) -> asyncio.Queue[LinkEvent]:
        """A queue that receives the events of every link (``event.link`` says which)."""
        queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        for link in self.links.values():
            link._subscribers.append(queue)
        return queue

    def state(self) -> dict[str, Any]:
        return {"links": {name: link.state() for name, link in self.links.items()}}

    @property
    def status_port(self) -> int | None:
        if self._status_server is None:
            return None
        return int(self._status_server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        started: list[LinkEmulator] = []
        try:
            for link in self.links.values():
                await link.start()
                started.append(link)
            if self.status_address is not None:
                self._status_server = await _bind(_status_handler(self.state),
                                                  self.status_address, "status")
        except BaseException:
            for link in started:
                await link.stop()
            raise

    async def stop(self) -> None:
        if self._status_server is not None:
            self._status_server.close()
        for link in self.links.values():
            await link.stop()
        if self._status_server is not None:
            await self._status_server.wait_closed()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
