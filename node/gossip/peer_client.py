"""Spawn and drive :mod:`node.gossip.peer_process` gossip nodes from asyncio.

:class:`PeerProcess` starts ``python -m node.gossip.peer_process`` as a child process, waits for
its ``ready`` line, and then speaks its JSON-lines protocol: requests carry a ``req`` number and
their replies resolve the matching future; ``delivered`` reports fill :attr:`PeerProcess.delivered`
(message id hex -> ``time.monotonic_ns()`` in the child). Anything waiting on the child's state
uses :meth:`PeerProcess.wait_for`, which re-checks a predicate after every line the child
writes -- no sleeping.

The child's stderr is kept (last lines) for error messages; its stdout carries nothing but the
protocol. A child whose stdin closes stops by itself, so children do not outlive a parent that
crashed.

Used by the process tests and ``benchmarks/gossip.py``; the node service can drive its
neighbours' processes the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_STDERR_LINES = 200


class PeerProcessError(Exception):
    """The peer process failed to start, exited, timed out or answered an op with an error."""


class PeerProcess:
    """One gossip node in a child process. Create with :meth:`spawn`."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.peer_id = ""
        self.addr = ""
        self.delivered: dict[str, int] = {}
        """Message id (hex) -> ``t_ns`` of its delivery in the child."""
        self.events: list[dict[str, Any]] = []
        """Reports other than replies and deliveries (``ready``, ``stopped``, errors)."""
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reqs = itertools.count(1)
        self._tick = asyncio.Event()
        self._exited = False
        self._readers = [asyncio.create_task(self._read_stdout()),
                         asyncio.create_task(self._read_stderr())]

    # ---- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def spawn(cls, seed: str, *, port: int = 0, signers: Iterable[bytes] = (),
                    models: Iterable[bytes] = (), chain_id: int | None = None,
                    contract: bytes | None = None, registry: str | os.PathLike[str] | None = None,
                    accept_all: bool = False, publish_rate: float | None = None,
                    publish_burst: int | None = None, store: str | os.PathLike[str] | None = None,
                    config: Mapping[str, object] | None = None,
                    bundle_window: float | None = None, bundle_max: int | None = None,
                    name: str | None = None, ready_timeout: float = 60.0,
                    log_level: str = "WARNING") -> PeerProcess:
        """Start a peer process and wait for it to listen (``ready``).

        ``signers`` / ``models`` / ``chain_id`` / ``contract`` / ``registry`` become the
        validator's registry (see :mod:`node.gossip.peer_process`); ``store`` is the node's
        SQLite store file (default in memory); ``config`` sets any other
        :class:`~node.gossip.config.GossipConfig` field by name."""
        argv = [sys.executable, "-m", "node.gossip.peer_process", "--seed", seed,
                "--port", str(port), "--log-level", log_level]
        argv += [a for s in signers for a in ("--signer", "0x" + bytes(s).hex())]
        argv += [a for m in models for a in ("--model", "0x" + bytes(m).hex())]
        if chain_id is not None:
            argv += ["--chain-id", str(chain_id)]
        if contract is not None:
            argv += ["--contract", "0x" + bytes(contract).hex()]
        if registry is not None:
            argv += ["--registry", str(registry)]
        if accept_all:
            argv.append("--accept-all")
        if publish_rate is not None:
            argv += ["--publish-rate", str(publish_rate)]
        if publish_burst is not None:
            argv += ["--publish-burst", str(publish_burst)]
        if store is not None:
            argv += ["--store", str(store)]
        if bundle_window is not None:
            argv += ["--bundle-window", str(bundle_window)]
        if bundle_max is not None:
            argv += ["--bundle-max", str(bundle_max)]
        for key, value in (config or {}).items():
            argv += ["--gossip-config", f"{key}={value}"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO, limit=1 << 20)
        peer = cls(proc, name or seed)
        try:
            await peer.wait_for(lambda p: bool(p.peer_id), "ready", ready_timeout)
        except BaseException:
            await peer.kill()
            raise
        return peer

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def stop(self, timeout: float = 15.0) -> int:
        """Ask the process to quit; SIGTERM, then SIGKILL, if it has not exited within
        ``timeout`` seconds each. Returns its exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(PeerProcessError):
                self._send({"op": "quit"})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
        return await self.kill()

    async def kill(self) -> int:
        """SIGKILL the process (no clean shutdown: peers see the connection drop) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        code = await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def __aenter__(self) -> PeerProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- operations ----------------------------------------------------------------------

    def request_nowait(self, op: str, **fields: Any) -> asyncio.Future[dict[str, Any]]:
        """Send ``op`` now; the future gets its reply (or :class:`PeerProcessError`)."""
        req = next(self._reqs)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        try:
            self._send({"op": op, "req": req, **fields})
        except PeerProcessError:
            del self._pending[req]
            raise
        return fut

    async def request(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send ``op`` and wait for its reply."""
        fut = self.request_nowait(op, **fields)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise PeerProcessError(f"{self.name}: no reply to {op} within {timeout} s"
                                   f"{self._tail()}") from None

    async def connect(self, addr: str, *, sync: bool = True,
                      timeout: float = 30.0) -> dict[str, Any]:
        """Dial ``addr`` (and catch up from it when ``sync``)."""
        return await self.request("connect", timeout, addr=addr, sync=sync)

    def publish_nowait(self, data: bytes, *,
                       bundle: bool = False) -> asyncio.Future[dict[str, Any]]:
        """Hand ``data`` to the node to publish now (``bundle``: in its next bundle); the
        future gets the ``published`` reply."""
        return self.request_nowait("publish", hex=bytes(data).hex(), bundle=bundle)

    async def publish(self, data: bytes, timeout: float = 30.0, *,
                      bundle: bool = False) -> dict[str, Any]:
        return await self.request("publish", timeout, hex=bytes(data).hex(), bundle=bundle)

    async def stats(self, timeout: float = 30.0) -> dict[str, Any]:
        return await self.request("stats", timeout)

    async def wait_for(self, predicate: Callable[[PeerProcess], object], what: str,
                       timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after every line from the child."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    if self._exited:
                        raise PeerProcessError(f"{self.name} exited (code "
                                               f"{self.proc.returncode}) while waiting for "
                                               f"{what}{self._tail()}")
                    await self._tick.wait()
        except TimeoutError:
            raise PeerProcessError(f"{self.name}: timed out after {timeout} s waiting for "
                                   f"{what}{self._tail()}") from None

    async def wait_delivered(self, ids: Iterable[str], timeout: float) -> None:
        """Wait until every message id (hex) in ``ids`` was delivered here."""
        wanted = set(ids)
        await self.wait_for(lambda p: wanted.issubset(p.delivered),
                            f"{len(wanted)} deliveries", timeout)

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # ---- the pipes -----------------------------------------------------------------------

    def _send(self, command: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if self._exited or stdin is None or stdin.is_closing():
            raise PeerProcessError(f"{self.name} is not running{self._tail()}")
        stdin.write((json.dumps(command, separators=(",", ":")) + "\n").encode())

    def _tail(self) -> str:
        lines = list(self._stderr)[-15:]
        return "; stderr:\n" + "\n".join(lines) if lines else ""

    def _pulse(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    event = json.loads(line)
                except ValueError:
                    self._stderr.append(f"(stdout, not JSON) {line.decode(errors='replace')}")
                    continue
                self._on_event(event)
                self._pulse()
        finally:
            self._exited = True
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(PeerProcessError(f"{self.name} exited before replying"
                                                       f"{self._tail()}"))
            self._pending.clear()
            self._pulse()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "delivered":
            self.delivered.setdefault(event["id"], event["t_ns"])
            return
        req = event.get("req")
        fut = self._pending.pop(req, None) if req is not None else None
        if fut is not None:
            if fut.done():
                return
            if kind == "error":
                fut.set_exception(PeerProcessError(f"{self.name}: {event.get('op')} failed: "
                                                   f"{event.get('error')}"))
            else:
                fut.set_result(event)
            return
        if kind == "ready":
            self.peer_id, self.addr = event["peer_id"], event["addr"]
        self.events.append(event)
