"""The one trio <-> asyncio bridge (DESIGN.md: py-libp2p is Trio-based, the node is asyncio).

A :class:`TrioBridge` runs a trio event loop in a thread of its own (one per gossip host) and
is driven from the asyncio loop that created it, through exactly two channels:

* asyncio -> trio: :meth:`TrioBridge.call` hands a coroutine function to the trio loop with
  ``TrioToken.run_sync_soon`` (non-blocking), which puts it on a trio memory channel; a trio
  task runs it and resolves an asyncio ``Future`` with ``loop.call_soon_threadsafe``.
* trio -> asyncio: :meth:`TrioBridge.notify` schedules a plain callback on the asyncio loop
  (``loop.call_soon_threadsafe``; dropped once that loop is closed).

Soundness (issue #17 item 4):

* bounded, with backpressure: at most ``max_calls`` calls are on the trio side at once (an
  asyncio semaphore, released when the trio side has finished, not when the caller stopped
  waiting); the channel holds that many, so handing a call over never fails. 5,000 concurrent
  calls used to overflow the channel inside a ``run_sync_soon`` callback, which kills trio
  (``TrioInternalError``);
* cancellation crosses: each call runs in its own trio cancel scope; cancelling the asyncio
  task awaiting it cancels that scope (a call cancelled before it started never starts);
* no orphaned futures: when the trio loop ends, every call not finished fails with
  :class:`~node.gossip.config.GossipError` before :meth:`TrioBridge.close` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from node.gossip.config import GossipError

log = logging.getLogger(__name__)

MAX_CALLS = 256
"""Default bound on calls in flight on the trio side."""


@dataclass(eq=False)
class _Call:
    """One call crossing the bridge. ``scope`` and ``cancelled`` belong to the trio thread."""

    fn: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]
    scope: trio.CancelScope | None = None
    cancelled: bool = False
    finished: bool = field(default=False)  # asyncio side: the trio side is done with it

    def cancel(self) -> None:
        """On the trio loop: the asyncio caller gave up."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class TrioBridge:
    """A trio loop in a thread, driven from the asyncio loop running when it is created."""

    def __init__(self, name: str, max_calls: int = MAX_CALLS) -> None:
        self.name = name
        self.max_calls = max_calls
        self._slots = asyncio.Semaphore(max_calls)
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cmd_send: trio.MemorySendChannel[Any] | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._pending: set[_Call] = set()  # handed over, trio side not finished; asyncio only
        self._closed = False
        self.most_in_flight = 0

    # ---- asyncio side ----------------------------------------------------------------------

    def start(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run ``await main()`` under ``trio.run`` in a new thread. ``main`` calls
        :meth:`serve_commands` and then :meth:`set_ready` once it can take calls."""
        self._thread = threading.Thread(target=self._thread_main, args=(main,),
                                        name=self.name, daemon=True)
        self._thread.start()

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._ready), timeout)

    @property
    def running(self) -> bool:
        """The trio loop is up and has not ended."""
        return self._token is not None and not self._done.done()

    @property
    def in_flight(self) -> int:
        """Calls handed to the trio side and not finished there."""
        return len(self._pending)

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await fn()`` on the trio loop; return its result here. Waits while
        ``max_calls`` calls are in flight; cancelling the caller cancels ``fn`` on trio."""
        await self._slots.acquire()
        try:
            self._check_open()
            call = _Call(fn, self._loop.create_future())
            self._token.run_sync_soon(self._enqueue, call)  # type: ignore[union-attr]
        except trio.RunFinishedError:
            self._slots.release()
            raise GossipError("gossip node has stopped") from None
        except BaseException:
            self._slots.release()
            raise
        self._pending.add(call)  # from here the trio side releases the slot (_finished)
        self.most_in_flight = max(self.most_in_flight, len(self._pending))
        try:
            return await call.future
        except asyncio.CancelledError:
            if not call.finished:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(call.cancel)  # type: ignore[union-attr]
            raise

    def _check_open(self) -> None:
        if self._closed or self._token is None or self._cmd_send is None:
            raise GossipError("gossip node is not running")

    def _finished(self, call: _Call) -> None:
        """On the asyncio loop: the trio side is done with ``call`` (its result, if any, was
        set before: callbacks cross in order). A call the trio loop dropped while shutting
        down fails here."""
        if call in self._pending:
            self._pending.discard(call)
            call.finished = True
            self._slots.release()
            if not call.future.done():
                call.future.set_exception(GossipError("gossip node stopped"))

    async def close(self, join_timeout: float = 10.0) -> None:
        """Refuse new calls, cancel the trio loop and join its thread; every call not finished
        then fails with :class:`GossipError`."""
        self._closed = True
        token, scope = self._token, self._cancel
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, join_timeout)
            if self._thread.is_alive():  # pragma: no cover - diagnostic
                raise GossipError(f"{self.name} did not stop")
        self._fail_pending()

    def _fail_pending(self) -> None:
        """On the asyncio loop once the trio loop has ended: no call can finish any more."""
        for call in list(self._pending):
            self._finished(call)

    # ---- trio side -------------------------------------------------------------------------

    def notify(self, fn: Callable[..., object], *args: Any) -> None:
        """From the trio thread (or a worker): run ``fn(*args)`` on the asyncio loop."""
        with contextlib.suppress(RuntimeError):  # the asyncio loop is already closed
            self._loop.call_soon_threadsafe(fn, *args)

    def set_ready(self) -> None:
        self._resolve(self._ready)

    def serve_commands(self, nursery: trio.Nursery) -> None:
        """Start taking :meth:`call` s; each runs as a task of ``nursery``."""
        cmd_send, cmd_recv = trio.open_memory_channel[_Call](self.max_calls)
        nursery.start_soon(self._command_loop, cmd_recv, nursery)
        self._cmd_send = cmd_send

    def _enqueue(self, call: _Call) -> None:
        """On the trio loop (``run_sync_soon``): never raises -- an exception here would kill
        trio. The semaphore keeps the channel from filling; a closed channel fails the call."""
        try:
            self._cmd_send.send_nowait(call)  # type: ignore[union-attr]
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            self._resolve(call.future, exc=GossipError(f"gossip node cannot take calls: "
                                                       f"{exc!r}"))
            self.notify(self._finished, call)

    def _resolve(self, fut: asyncio.Future[Any], result: Any = None,
                 exc: BaseException | None = None) -> None:
        def apply() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        self.notify(apply)

    def _thread_main(self, main: Callable[[], Awaitable[None]]) -> None:
        try:
            trio.run(self._trio_main, main)
        except BaseException as exc:
            log.exception("%s crashed", self.name)
            self._resolve(self._ready, exc=GossipError(f"gossip host failed: {exc!r}"))
        finally:
            self._resolve(self._done)
            self._resolve(self._ready, exc=GossipError("gossip host stopped before ready"))

    async def _trio_main(self, main: Callable[[], Awaitable[None]]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            await main()

    async def _command_loop(self, cmd_recv: Any, nursery: trio.Nursery) -> None:
        async for call in cmd_recv:
            nursery.start_soon(self._run_command, call)

    async def _run_command(self, call: _Call) -> None:
        try:
            with trio.CancelScope() as scope:
                call.scope = scope
                if call.cancelled:
                    scope.cancel()
                result = await call.fn()
                self._resolve(call.future, result)
            if scope.cancelled_caught:
                self._resolve(call.future, exc=GossipError("call cancelled"))
        except Exception as exc:
            self._resolve(call.future, exc=exc)
        finally:
            self.notify(self._finished, call)
