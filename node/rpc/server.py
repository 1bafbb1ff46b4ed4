"""The verified local JSON-RPC server (aiohttp, 127.0.0.1 by default).

Every method is declared in one table, :data:`METHODS`, as one of:

* ``verified`` -- answered from data proven against an anchored block (state from proofs,
  blocks and receipts against their roots, logs complete from blooms and receipts);
* ``local`` -- computed by the node itself from verified data or its own configuration
  (``eth_chainId``, ``eth_call`` on the local EVM, fee estimates from verified headers,
  ``orbital_status``);
* ``relayed`` -- ``eth_sendRawTransaction`` only: decoded and checked here, then handed to
  the upstream (the answer is the transaction hash the node computed itself);

and anything not in the table is refused (-32601) -- nothing is ever forwarded unverified.

Requests follow JSON-RPC 2.0 (batches, notifications, ``params`` absent or null); errors carry
a code and one-line message. Every HTTP response carries ``X-Orbital-Head`` (number and hash
of the anchored head) and ``X-Orbital-Head-Age`` (seconds since its timestamp).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from node.chain.errors import ChainError, MalformedInputError, VerificationError
from node.rpc.upstream_api import UpstreamError

log = logging.getLogger(__name__)

Kind = Literal["verified", "local", "relayed"]

MAX_BODY = 8 * 1024 * 1024
MAX_BATCH = 1000

# JSON-RPC error codes (EIP-1474)
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL = (
    -32700, -32600, -32601, -32602, -32603)
RESOURCE_UNAVAILABLE = -32002  # what the node cannot prove right now (not anchored, no answer)
VERIFICATION_FAILED = -32099  # the upstream's data did not verify
EXECUTION_REVERTED = 3  # eth_call / eth_estimateGas revert (geth, anvil: data = revert data)


class RpcError(Exception):
    """An error to answer with: a JSON-RPC code, a one-line message, optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(message)


Handler = Callable[[list[Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    kind: Kind
    handler: Handler


def declare(handlers: dict[str, tuple[Kind, Handler]]) -> dict[str, Method]:
    """The method table from ``name -> (kind, handler)``."""
    return {name: Method(kind, handler) for name, (kind, handler) in handlers.items()}


@dataclass
class RpcServer:
    """Serves ``methods``; ``head()`` gives (number, hash, timestamp) for the headers."""

    methods: dict[str, Method]
    head: Callable[[], tuple[int, bytes, int] | None]
    clock: Callable[[], float] = time.time
    observe: Callable[[str, Kind, int | None], None] | None = None
    """Told of every call's outcome: (method, its kind, None or the error code)."""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/", self._http)
        return app

    async def _http(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return self._json(_error(None, PARSE_ERROR, "parse error: the body is not JSON"))
        if isinstance(body, list):
            if not body:
                return self._json(_error(None, INVALID_REQUEST, "empty batch"))
            if len(body) > MAX_BATCH:
                return self._json(_error(None, INVALID_REQUEST,
                                         f"batch of {len(body)} calls, at most {MAX_BATCH}"))
            replies = [r for r in [await self.handle(call) for call in body] if r is not None]
            return self._json(replies) if replies else self._empty()
        reply = await self.handle(body)
        return self._json(reply) if reply is not None else self._empty()

    async def handle(self, call: Any) -> dict[str, Any] | None:
        """One JSON-RPC request object -> its response (None for a notification)."""
        if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(
                call.get("method"), str):
            return _error(call.get("id") if isinstance(call, dict) else None, INVALID_REQUEST,
                          "invalid request: want {\"jsonrpc\": \"2.0\", \"method\": ..}")
        call_id = call.get("id")
        notification = "id" not in call
        method = self.methods.get(call["method"])
        params = call.get("params")
        if method is None:
            reply = _error(call_id, METHOD_NOT_FOUND,
                           f"method {call['method']} is not served: this node answers only "
                           f"what it can verify (see orbital_status.methods)")
        elif params is not None and not isinstance(params, list):
            reply = _error(call_id, INVALID_PARAMS, "params must be an array")
        else:
            reply = await self._run(call_id, call["method"], method, params or [])
        return None if notification else reply

    async def _run(self, call_id: Any, name: str, method: Method, params: list[Any]
                   ) -> dict[str, Any]:
        reply = await self._answer(call_id, name, method, params)
        if self.observe is not None:
            error = reply.get("error")
            self.observe(name, method.kind, None if error is None else error["code"])
        return reply

    async def _answer(self, call_id: Any, name: str, method: Method, params: list[Any]
                      ) -> dict[str, Any]:
        try:
            return {"jsonrpc": "2.0", "id": call_id, "result": await method.handler(params)}
        except RpcError as exc:
            return _error(call_id, exc.code, exc.message, exc.data)
        except MalformedInputError as exc:
            return _error(call_id, INVALID_PARAMS, f"{name}: {exc}")
        except VerificationError as exc:
            return _error(call_id, VERIFICATION_FAILED,
                          f"{name}: the upstream's answer did not verify ({exc}); nothing served")
        except UpstreamError as exc:
            return _error(call_id, RESOURCE_UNAVAILABLE, f"{name}: {exc}")
        except ChainError as exc:
            return _error(call_id, RESOURCE_UNAVAILABLE, f"{name}: {exc}")
        except Exception:  # a bug: logged with its traceback, one line to the client
            log.exception("internal error in %s", name)
            return _error(call_id, INTERNAL, f"{name}: internal error (see the node's log)")

    def _headers(self) -> dict[str, str]:
        head = self.head()
        if head is None:
            return {"X-Orbital-Head": "none"}
        number, block_hash, timestamp = head
        return {"X-Orbital-Head": f"{number} 0x{block_hash.hex()}",
                "X-Orbital-Head-Age": f"{max(0.0, self.clock() - timestamp):.0f}"}

    def _json(self, value: Any) -> web.Response:
        return web.Response(text=json.dumps(value), content_type="application/json",
                            headers=self._headers())

    def _empty(self) -> web.Response:
        return web.Response(status=204, headers=self._headers())


def _error(call_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": call_id, "error": error}
