"""A JSON-RPC proxy in front of a real upstream that lies on request: the tests' liar, and
the demo's lying-upstream fault.

``LyingUpstream(target, lie, delay=0)`` serves on 127.0.0.1 (a port of its own, in a thread with its
own event loop, so synchronous tests and node processes can use it); every call is forwarded
to ``target`` and its result passed through ``lie(method, params, result)``, whose return
value is what the client gets. ``lie`` may mutate and return the result, return another, or
return :data:`DROP` to answer with a JSON-RPC error instead.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

DROP = object()
Lie = Callable[[str, list[Any], Any], Any]


class LyingUpstream:
    def __init__(self, target: str, lie: Lie, *, delay: float = 0.0) -> None:
        self.target = target
        self.lie = lie
        self.delay = delay  # seconds added to every answer (a slower upstream)
        self.down = False  # True: every request is refused (HTTP 503), as out of contact
        self.calls: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> LyingUpstream:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if self.down:
            raise web.HTTPServiceUnavailable(text="out of contact")
        body = json.loads(await request.read())
        if self.delay:
            await asyncio.sleep(self.delay)
        calls = body if isinstance(body, list) else [body]
        async with self._session.post(self.target, json=calls) as response:
            answers = await response.json(content_type=None)
        by_id = {a.get("id"): a for a in answers}
        out = []
        for call in calls:
            answer = dict(by_id[call.get("id")])
            self.calls.append(call["method"])
            if "result" in answer:
                result = self.lie(call["method"], call.get("params") or [], answer["result"])
                if result is DROP:
                    answer.pop("result")
                    answer["error"] = {"code": -32000, "message": "dropped by the liar"}
                else:
                    answer["result"] = result
            out.append(answer)
        return web.json_response(out if isinstance(body, list) else out[0])
