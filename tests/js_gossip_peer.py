"""Drive the js-libp2p gossipsub peer (``tools/gossip/peer.mjs``) from asyncio tests.

The peer is a real js-libp2p 3.x node (TCP + Noise + yamux + gossipsub, pinned in
``tools/package.json`` and installed by ``scripts/setup.sh --test``) run by Node.js as a
subprocess on 127.0.0.1. It takes JSON-line commands on stdin and reports JSON-line events on
stdout (see the header of ``peer.mjs``). :class:`JsPeer` sends the commands, matches their answers
by ``id`` and keeps every ``message`` event it reports in :attr:`JsPeer.messages`.

A missing Node.js or a ``tools/node_modules`` that does not hold the pinned js-libp2p raises
:class:`JsPeerMissingError`: an interop test must fail, never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS = REPO_ROOT / "tools"
PEER_JS = TOOLS / "gossip" / "peer.mjs"
NODE_ENV = "ORBITAL_NODE"
"""Environment variable naming a Node.js binary; overrides ``node`` on PATH."""
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_JS_PACKAGES = ("libp2p", "@libp2p/gossipsub", "@chainsafe/libp2p-noise",
                "@chainsafe/libp2p-yamux", "@libp2p/tcp", "@libp2p/identify",
                "@multiformats/multiaddr")


class JsPeerMissingError(RuntimeError):
    """Node.js or the pinned js-libp2p packages are not installed."""


class JsPeerError(RuntimeError):
    """The JS peer answered a command with an error, or died."""


def find_node() -> str:
    """The Node.js binary (``$ORBITAL_NODE``, else ``node`` on PATH), after checking that
    tools/node_modules holds exactly the js-libp2p versions tools/package.json pins."""
    override = os.environ.get(NODE_ENV)
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise JsPeerMissingError(f"{NODE_ENV}={override} is not an executable file")
        node = override
    else:
        found = shutil.which("node")
        if found is None:
            raise JsPeerMissingError("node (Node.js >= 18) not found on PATH: run "
                                     f"`scripts/setup.sh --test`, or set {NODE_ENV}")
        node = found
    pinned = json.loads((TOOLS / "package.json").read_text())["dependencies"]
    for package in _JS_PACKAGES:
        manifest = TOOLS / "node_modules" / package / "package.json"
        try:
            have = json.loads(manifest.read_text())["version"]
        except (OSError, ValueError, KeyError):
            have = None
        if have != pinned.get(package):
            raise JsPeerMissingError(
                f"{package} {pinned.get(package)} is not installed in tools/node_modules "
                f"(found {have}): run `scripts/setup.sh --test` from the repository root")
    return node


class JsPeer:
    """A running ``peer.mjs``. Create with :meth:`start`; :meth:`stop` (idempotent) ends it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.peer_id = ""
        self.addrs: list[str] = []
        self.node_version = ""
        self.messages: list[dict[str, Any]] = []
        """Every ``message`` event, in arrival order (``hex``, ``from``, ``msgId``,
        ``propagationSource``)."""
        self.errors: list[str] = []
        """``error`` events not tied to a command (e.g. unhandled rejections inside libp2p)."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._stderr = bytearray()
        self._tasks = [asyncio.create_task(self._read_stdout()),
                       asyncio.create_task(self._read_stderr())]

    @classmethod
    async def start(cls, *args: str) -> JsPeer:
        """Start ``node peer.mjs ARGS`` and wait for its ``ready`` event."""
        node = find_node()
        proc = await asyncio.create_subprocess_exec(
            node, str(PEER_JS), *args, cwd=TOOLS, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        peer = cls(proc)
        try:
            ready = await asyncio.wait_for(asyncio.shield(peer._ready), START_TIMEOUT)
        except BaseException:
            await peer.stop()
            raise
        peer.peer_id = ready["peerId"]
        peer.addrs = ready["addrs"]
        peer.node_version = ready.get("node", "")
        return peer

    @property
    def listen_addr(self) -> str:
        """The peer's TCP multiaddr with ``/p2p/<peer id>``."""
        return self.addrs[0]

    @property
    def stderr_tail(self) -> str:
        return self._stderr[-4000:].decode(errors="replace")

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"op": op, ...fields}``; return the answering event, or raise
        :class:`JsPeerError` if the peer answers with an ``error`` event."""
        if self.proc.stdin is None or self.proc.returncode is not None:
            raise JsPeerError(f"JS peer is not running; stderr: {self.stderr_tail}")
        cid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            self.proc.stdin.write(json.dumps({"op": op, "id": cid, **fields}).encode() + b"\n")
            await self.proc.stdin.drain()
            answer = await asyncio.wait_for(fut, COMMAND_TIMEOUT)
        finally:
            self._pending.pop(cid, None)
        if answer["event"] == "error":
            raise JsPeerError(f"{op}: {answer.get('message')}")
        return answer

    async def dial(self, addr: str) -> str:
        return str((await self.command("dial", addr=addr))["peerId"])

    async def publish(self, data: bytes) -> dict[str, Any]:
        return await self.command("publish", hex=data.hex())

    async def peers(self) -> dict[str, list[str]]:
        answer = await self.command("peers")
        return {k: answer[k] for k in ("connected", "subscribers", "mesh")}

    def received(self) -> list[bytes]:
        """The data of every message received so far, in arrival order."""
        return [bytes.fromhex(m["hex"]) for m in self.messages]

    async def stop(self) -> None:
        """Ask the peer to quit (closing its connections), kill it if it does not."""
        proc = self.proc
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    proc.stdin.write(b'{"op":"quit"}\n')
                    await proc.stdin.drain()
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    self.errors.append(f"not JSON on stdout: {line!r}")
                    continue
                kind = event.get("event")
                fut = self._pending.get(event.get("id")) if event.get("id") else None
                if fut is not None and not fut.done():
                    fut.set_result(event)
                elif kind == "ready" and not self._ready.done():
                    self._ready.set_result(event)
                elif kind == "message":
                    self.messages.append(event)
                elif kind == "error":
                    self.errors.append(str(event.get("message")))
        finally:
            await self.proc.wait()
            # process gone: nothing pending can be answered any more
            died = JsPeerError(f"JS peer exited ({self.proc.returncode}); "
                               f"stderr: {self.stderr_tail}")
            for fut in [self._ready, *self._pending.values()]:
                if not fut.done():
                    fut.set_exception(died)
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()  # mark retrieved

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-65536]
