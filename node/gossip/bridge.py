"""The one trio <-> asyncio bridge (DESIGN.md: py-libp2p is Trio-based, the node is asyncio).

A :class:`TrioBridge` runs a trio event loop in a thread of its own (one per gossip host) and
is driven from the asyncio loop that created it, through exactly two channels:

* asyncio -> trio: :meth:`TrioBridge.call` hands a coroutine function to the trio loop with
  ``TrioToken.run_sync_soon`` (non-blocking), which puts it on a trio memory channel; a trio
  task runs it and resolves an asyncio ``Future`` with ``loop.call_soon_threadsafe``.
* trio -> asyncio: :meth:`TrioBridge.notify` schedules a plain callback on the asyncio loop
  (``loop.call_soon_threadsafe``; dropped once that loop is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from node.gossip.config import GossipError

log = logging.getLogger(__name__)


class TrioBridge:
    """A trio loop in a thread, driven from the asyncio loop running when it is created."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cmd_send: trio.MemorySendChannel[Any] | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._pending: set[asyncio.Future[Any]] = set()  # asyncio side only
        self._closed = False

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

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await fn()`` on the trio loop; return its result here."""
        if self._closed or self._token is None or self._cmd_send is None:
            raise GossipError("gossip node is not running")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        send = self._cmd_send
        try:
            self._token.run_sync_soon(send.send_nowait, (fn, fut))
        except trio.RunFinishedError:
            raise GossipError("gossip node has stopped") from None
        return await fut

    async def close(self, join_timeout: float = 10.0) -> None:
        """Refuse new calls, cancel the trio loop and join its thread."""
        self._closed = True
        token, scope = self._token, self._cancel
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, join_timeout)
            if self._thread.is_alive():  # pragma: no cover - diagnostic
                raise GossipError(f"{self.name} did not stop")

    def _fail_pending(self) -> None:
        """On the asyncio loop once the trio loop has ended: no call can finish any more."""
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(GossipError("gossip node stopped"))

    # ---- trio side -------------------------------------------------------------------------

    def notify(self, fn: Callable[..., object], *args: Any) -> None:
        """From the trio thread (or a worker): run ``fn(*args)`` on the asyncio loop."""
        with contextlib.suppress(RuntimeError):  # the asyncio loop is already closed
            self._loop.call_soon_threadsafe(fn, *args)

    def set_ready(self) -> None:
        self._resolve(self._ready)

    def serve_commands(self, nursery: trio.Nursery) -> None:
        """Start taking :meth:`call` s; each runs as a task of ``nursery``."""
        cmd_send, cmd_recv = trio.open_memory_channel[Any](1024)
        nursery.start_soon(self._command_loop, cmd_recv, nursery)
        self._cmd_send = cmd_send

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
            self.notify(self._fail_pending)
            self._resolve(self._done)
            self._resolve(self._ready, exc=GossipError("gossip host stopped before ready"))

    async def _trio_main(self, main: Callable[[], Awaitable[None]]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            await main()

    async def _command_loop(self, cmd_recv: Any, nursery: trio.Nursery) -> None:
        async for fn, fut in cmd_recv:
            nursery.start_soon(self._run_command, fn, fut)

    async def _run_command(self, fn: Callable[[], Awaitable[Any]],
                           fut: asyncio.Future[Any]) -> None:
        try:
            result = await fn()
        except Exception as exc:
            self._resolve(fut, exc=exc)
        else:
            self._resolve(fut, result)
