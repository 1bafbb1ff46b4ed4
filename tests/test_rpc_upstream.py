"""The upstream pool (node.rpc.upstream) against real aiohttp servers on 127.0.0.1, and anvil.

Each :class:`FakeRpc` answers a few JSON-RPC methods honestly (batches in reverse order, to pin
answering by id) unless told to stall, fail with an HTTP status, send a fixed body, gzip, or
lie. Time is an injected clock; backoff sleeps are recorded, never slept. The only real waits
are the 0.2 s timeouts of a stalled server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.chain.errors import ChainError
from node.devnet import Anvil
from node.rpc.upstream import (
    PROBED_METHODS,
    AllUpstreamsExcludedError,
    AnswerTooLargeError,
    Endpoint,
    MethodNotServedError,
    Penalties,
    RetriesExhaustedError,
    UpstreamPool,
    public_url,
)
from node.rpc.upstream_api import Answer, Upstream, UpstreamError

GETH_NOT_FOUND = {"code": -32601,
                  "message": "the method eth_getProof does not exist/is not available"}
RECEIPTS = [{"transactionHash": "0x" + f"{i:064x}", "status": "0x1", "logs": [],
             "cumulativeGasUsed": hex(21000 * (i + 1))} for i in range(300)]


class FakeRpc:
    """A JSON-RPC endpoint: honest by default, told otherwise through its attributes."""

    def __init__(self, *, chain_id: int = 1, block: str = "0x10", gzip: bool = False) -> None:
        self.results: dict[str, Any] = {
            "eth_chainId": hex(chain_id), "eth_blockNumber": block, "eth_getBalance": "0x1",
            "eth_getProof": {"address": "0x" + "00" * 20, "accountProof": []},
            "eth_createAccessList": {"accessList": [], "gasUsed": "0x5208"},
            "eth_getBlockReceipts": RECEIPTS}
        self.errors: dict[str, dict[str, Any]] = {}  # method -> the JSON-RPC error it answers
        self.gzip = gzip
        self.statuses: list[int] = []  # HTTP statuses for the next requests, in turn
        self.status = 200  # the HTTP status of answers
        self.raw: bytes | None = None  # a fixed body for every answer
        self.raw_headers: dict[str, str] = {}
        self.chunked = False  # stream the answer without Content-Length
        self.hang = False
        self.release = asyncio.Event()
        self.bodies: list[Any] = []  # each request's JSON body
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []

    def methods(self) -> list[str]:
        """The methods asked, in order (batches flattened)."""
        out = []
        for body in self.bodies:
            out += [c["method"] for c in body] if isinstance(body, list) else [body["method"]]
        return out

    def reply(self, call: dict[str, Any]) -> dict[str, Any]:
        method = call["method"]
        if method in self.errors:
            return {"jsonrpc": "2.0", "id": call["id"], "error": self.errors[method]}
        if method not in self.results:
            return {"jsonrpc": "2.0", "id": call["id"],
                    "error": {"code": -32601, "message": "Method not found"}}
        return {"jsonrpc": "2.0", "id": call["id"], "result": self.results[method]}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.paths.append(request.path_qs)
        if self.hang:
            await self.release.wait()
        if self.statuses:
            return web.Response(status=self.statuses.pop(0), text="busy, try later")
        headers = dict(self.raw_headers)
        if self.raw is not None:
            payload = self.raw
        else:
            reply: Any = ([self.reply(c) for c in body][::-1] if isinstance(body, list)
                          else self.reply(body))
            payload = json.dumps(reply).encode()
            if self.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
                payload = gzip.compress(payload)
                headers["Content-Encoding"] = "gzip"
        if not self.chunked:
            return web.Response(status=self.status, body=payload, headers=headers,
                                content_type="application/json")
        response = web.StreamResponse(status=self.status, headers=headers)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        for at in range(0, len(payload), 4096):
            await response.write(payload[at:at + 4096])
        await response.write_eof()
        return response


Serve = Callable[[FakeRpc], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[tuple[FakeRpc, web.AppRunner]] = []

    async def start(node: FakeRpc) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", node.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        started.append((node, runner))
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for node, runner in started:
        node.release.set()
        await runner.cleanup()


class Clock:
    """The injected clock; :meth:`sleep` records a backoff and moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class HalfRng(random.Random):
    """Jitter that always takes half of its range."""

    def random(self) -> float:
        return 0.5


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def make_pool(serve: Serve, clock: Clock, *nodes: FakeRpc, **options: Any) -> UpstreamPool:
    names = "abcdefgh"
    endpoints = [Endpoint(names[i], await serve(node)) for i, node in enumerate(nodes)]
    options.setdefault("rng", HalfRng())
    return UpstreamPool(endpoints, clock=clock, sleep=clock.sleep, **options)


def by_name(pool: UpstreamPool) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in pool.state()}


# -- transport --------------------------------------------------------------------------------


async def test_pool_is_an_upstream() -> None:
    async with UpstreamPool(["a=http://127.0.0.1:9"]) as pool:
        upstream: Upstream = pool
        assert upstream is pool
        assert await pool.batch([]) == []
    assert issubclass(AllUpstreamsExcludedError, UpstreamError)
    assert issubclass(UpstreamError, ChainError)


async def test_batch_is_one_http_request_answered_by_id(serve: Serve, clock: Clock) -> None:
    node = FakeRpc(block="0x2a")
    async with await make_pool(serve, clock, node) as pool:
        answers = await pool.batch([("eth_blockNumber", []), ("eth_getBalance", ["0x01", "latest"]),
                                    ("eth_nope", []), ("eth_chainId", [])])
    assert len(node.bodies) == 1 and isinstance(node.bodies[0], list)
    assert node.methods() == ["eth_blockNumber", "eth_getBalance", "eth_nope", "eth_chainId"]
    assert [a.result for a in answers] == ["0x2a", "0x1", None, "0x1"]
    assert answers[2].error == {"code": -32601, "message": "Method not found"}
    assert {a.upstream for a in answers} == {"a"}
    sent = node.headers[0]
    assert sent["Accept-Encoding"] == "gzip" and sent["Content-Type"] == "application/json"


async def test_call_is_one_request_object(serve: Serve, clock: Clock) -> None:
    node = FakeRpc()
    async with await make_pool(serve, clock, node) as pool:
        answer = await pool.call("eth_getBalance", ("0x01", "latest"))
    assert answer == Answer("0x1", "a", None)
    (body,) = node.bodies
    assert body["method"] == "eth_getBalance" and body["params"] == ["0x01", "latest"]
    assert body["jsonrpc"] == "2.0" and isinstance(body["id"], int)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_gzip_answer_is_inflated_and_wire_bytes_counted(serve: Serve, clock: Clock,
                                                              chunked: bool) -> None:
    node = FakeRpc(gzip=True)
    node.chunked = chunked
    async with await make_pool(serve, clock, node) as pool:
        answer = await pool.call("eth_getBlockReceipts", ["0x5"])
        received = pool.state()[0]["bytes_received"]
    assert answer.result == RECEIPTS
    plain = len(json.dumps({"jsonrpc": "2.0", "id": 1, "result": RECEIPTS}))
    assert 0 < received < plain / 5  # the wire bytes, not the inflated ones


async def test_whole_batch_error_is_the_answer_of_every_call(serve: Serve, clock: Clock) -> None:
    node = FakeRpc()
    node.raw = json.dumps({"jsonrpc": "2.0", "id": None,
                           "error": {"code": -32600, "message": "batch too large"}}).encode()
    async with await make_pool(serve, clock, node, FakeRpc()) as pool:
        answers = await pool.batch([("eth_blockNumber", []), ("eth_chainId", [])])
    assert [a.error for a in answers] == [{"code": -32600, "message": "batch too large"}] * 2
    assert [a.upstream for a in answers] == ["a", "a"] and clock.sleeps == []


# -- retries ----------------------------------------------------------------------------------


async def test_stalled_upstream_times_out_and_another_answers(serve: Serve,
                                                              clock: Clock) -> None:
    stalled, honest = FakeRpc(), FakeRpc(block="0x7")
    stalled.hang = True
    async with await make_pool(serve, clock, stalled, honest, timeout=0.2) as pool:
        answer = await pool.call("eth_blockNumber", [])
        state = by_name(pool)
    assert answer == Answer("0x7", "b", None)
    assert state["a"]["failures"] == {"timeout": 1} and state["a"]["requests"] == 1
    assert state["b"]["failures"] == {} and state["b"]["requests"] == 1
    assert clock.sleeps == [0.25 * 0.75]  # one backoff: the first step, less half its jitter


async def test_retries_are_bounded_with_exponential_backoff(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.statuses = b.statuses = [503] * 10
    async with await make_pool(serve, clock, a, b, attempts=5, backoff=0.5, max_backoff=3.0,
                               jitter=0.5) as pool:
        with pytest.raises(RetriesExhaustedError) as caught:
            await pool.call("eth_blockNumber", [])
        state = by_name(pool)
    # 0.5, 1, 2, 4 -> capped at 3; each less half of its jitter (0.5 * 0.5, HalfRng)
    assert clock.sleeps == [0.375, 0.75, 1.5, 2.25]
    assert len(a.bodies) + len(b.bodies) == 5 and abs(len(a.bodies) - len(b.bodies)) == 1
    assert state["a"]["failures"]["http_5xx"] + state["b"]["failures"]["http_5xx"] == 5
    message = str(caught.value)
    assert "no upstream answered eth_blockNumber in 5 attempts" in message
    assert "HTTP 503" in message and "\n" not in message


async def test_jitter_stays_within_its_range(serve: Serve, clock: Clock) -> None:
    node = FakeRpc()
    node.statuses = [500] * 8
    async with await make_pool(serve, clock, node, attempts=8, backoff=0.1, max_backoff=100.0,
                               jitter=0.5, rng=random.Random(7)) as pool:
        with pytest.raises(RetriesExhaustedError):
            await pool.call("eth_blockNumber", [])
    assert len(clock.sleeps) == 7
    for n, slept in enumerate(clock.sleeps):
        assert 0.1 * 2 ** n * 0.5 <= slept <= 0.1 * 2 ** n
    assert len(set(clock.sleeps)) == 7


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_5xx_and_429_are_retried(serve: Serve, clock: Clock, status: int) -> None:
    only = FakeRpc(block="0x9")
    only.statuses = [status, status]
    async with await make_pool(serve, clock, only) as pool:
        answer = await pool.call("eth_blockNumber", [])
        failures = pool.state()[0]["failures"]
    assert answer.result == "0x9" and len(only.bodies) == 3 and len(clock.sleeps) == 2
    assert failures == {"http_429" if status == 429 else "http_5xx": 2}


async def test_other_http_status_without_an_answer_moves_on(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc(block="0x3")
    a.statuses = [404]
    async with await make_pool(serve, clock, a, b) as pool:
        answer = await pool.call("eth_blockNumber", [])
        assert by_name(pool)["a"]["failures"] == {"http_status": 1}
    assert answer.upstream == "b"


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b'{"jsonrpc":"2.0","id":999,"result":1}',
                                 b'[{"jsonrpc":"2.0","id":1,"result":1}]',
                                 b'{"jsonrpc":"2.0","id":1}', b'{"jsonrpc":"2.0","error":7}'],
                         ids=["not-json", "wrong-id", "list-for-a-call", "no-result", "bad-error"])
async def test_malformed_answer_moves_on(serve: Serve, clock: Clock, raw: bytes) -> None:
    a, b = FakeRpc(), FakeRpc(block="0x3")
    a.raw = raw
    async with await make_pool(serve, clock, a, b) as pool:
        answer = await pool.call("eth_blockNumber", [])
        assert by_name(pool)["a"]["failures"] == {"malformed": 1}
    assert answer == Answer("0x3", "b", None)


async def test_batch_answer_missing_a_call_moves_on(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    async with await make_pool(serve, clock, a, b) as pool:
        a.raw = json.dumps([{"jsonrpc": "2.0", "id": 1, "result": "0x1"}]).encode()
        answers = await pool.batch([("eth_blockNumber", []), ("eth_chainId", [])])
        assert by_name(pool)["a"]["failures"] == {"malformed": 1}
    assert [a.upstream for a in answers] == ["b", "b"]
    assert b.bodies == a.bodies  # the same batch, whole


async def test_json_rpc_error_is_returned_not_retried(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    reverted = {"code": 3, "message": "execution reverted", "data": "0x08c379a0"}
    a.errors["eth_call"] = reverted
    async with await make_pool(serve, clock, a, b) as pool:
        answer = await pool.call("eth_call", [{"to": "0x" + "11" * 20}, "latest"])
        assert by_name(pool)["a"]["failures"] == {}
    assert answer == Answer(None, "a", reverted)
    assert b.bodies == [] and clock.sleeps == []
    with pytest.raises(UpstreamError, match="eth_call: upstream a answered JSON-RPC error 3") \
            as caught:
        answer.value("eth_call")
    assert caught.value.code == 3 and caught.value.data == "0x08c379a0"


async def test_json_rpc_error_with_http_400_is_an_answer(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.status = 400  # some providers send errors with a 4xx status
    a.errors["eth_getBalance"] = {"code": -32602, "message": "invalid argument"}
    async with await make_pool(serve, clock, a, b) as pool:
        answer = await pool.call("eth_getBalance", ["nope"])
    assert answer == Answer(None, "a", {"code": -32602, "message": "invalid argument"})
    assert b.bodies == [] and clock.sleeps == []


# -- the answer size cap ----------------------------------------------------------------------


def _big(size: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x" + "ab" * size}).encode()


@pytest.mark.parametrize("shape", ["content-length", "chunked", "gzip-bomb"])
async def test_oversized_answer_is_refused_and_counted(serve: Serve, clock: Clock,
                                                       shape: str) -> None:
    cap = 64 * 1024
    a, b = FakeRpc(), FakeRpc()
    if shape == "gzip-bomb":
        a.raw = gzip.compress(_big(4 * 1024 * 1024), compresslevel=9)  # 8 MB in ~8 kB of gzip
        a.raw_headers = {"Content-Encoding": "gzip"}
        a.chunked = True
    else:
        a.raw = _big(1024 * 1024)
        a.chunked = shape == "chunked"
    async with await make_pool(serve, clock, a, b, max_answer_bytes=cap) as pool:
        with pytest.raises(AnswerTooLargeError, match=f"{cap}-byte cap") as caught:
            await pool.call("eth_getCode", ["0x" + "11" * 20, "latest"])
        state = by_name(pool)
    assert "upstream a" in str(caught.value)
    assert state["a"]["failures"] == {"oversized": 1}
    assert b.bodies == []  # refused, not fetched again from another upstream
    if shape == "content-length":
        assert state["a"]["bytes_received"] == 0  # refused from the header alone
    else:
        assert state["a"]["bytes_received"] <= cap + 64 * 1024  # stopped reading at the cap
    assert isinstance(caught.value, UpstreamError)


async def test_answer_just_under_the_cap_is_read(serve: Serve, clock: Clock) -> None:
    node = FakeRpc(gzip=True)
    node.results["eth_getCode"] = "0x" + "ab" * 1000
    size = len(json.dumps({"jsonrpc": "2.0", "id": 1, "result": node.results["eth_getCode"]}))
    async with await make_pool(serve, clock, node, max_answer_bytes=size) as pool:
        answer = await pool.call("eth_getCode", ["0x" + "11" * 20, "latest"])
    assert answer.result == node.results["eth_getCode"]


# -- capabilities -----------------------------------------------------------------------------


async def test_probe_finds_what_each_upstream_serves(serve: Serve, clock: Clock) -> None:
    geth_like, no_receipts, no_access_lists, all_ = (FakeRpc(), FakeRpc(chain_id=5),
                                                     FakeRpc(), FakeRpc())
    geth_like.errors["eth_getProof"] = GETH_NOT_FOUND
    no_receipts.errors["eth_getBlockReceipts"] = {"code": -32000,
                                                  "message": "Method not supported"}
    no_access_lists.errors["eth_createAccessList"] = {"code": -32004, "message": "nope"}
    all_.errors["eth_getProof"] = {"code": -32000, "message": "missing trie node abc"}
    async with await make_pool(serve, clock, geth_like, no_receipts, no_access_lists,
                               all_) as pool:
        assert pool.capable("eth_getProof") == []  # nothing known before the probe
        assert sorted(pool.capable("eth_blockNumber")) == ["a", "b", "c", "d"]
        results = await pool.probe()
        assert {name: r.capabilities for name, r in results.items()} == {
            "a": {"eth_getProof": False, "eth_createAccessList": True,
                  "eth_getBlockReceipts": True},
            "b": {"eth_getProof": True, "eth_createAccessList": True,
                  "eth_getBlockReceipts": False},
            "c": {"eth_getProof": True, "eth_createAccessList": False,
                  "eth_getBlockReceipts": True},
            "d": dict.fromkeys(PROBED_METHODS, True),  # an error that is not "not found"
        }
        assert {name: r.chain_id for name, r in results.items()} == {"a": 1, "b": 5, "c": 1,
                                                                    "d": 1}
        assert all(r.error is None for r in results.values())
        assert sorted(pool.capable("eth_getProof")) == ["b", "c", "d"]
        assert sorted(pool.capable("eth_getBlockReceipts")) == ["a", "c", "d"]
        for node in (geth_like, no_receipts, no_access_lists, all_):
            assert len(node.bodies) == 1 and len(node.bodies[0]) == 4  # one batch each
        for _ in range(6):
            answer = await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"],
                                     need="eth_getProof")
            assert answer.upstream in {"b", "c", "d"}
        answers = await pool.batch([("eth_getBlockReceipts", ["0x1"])] * 2,
                                   need="eth_getBlockReceipts")
        assert {a.upstream for a in answers} <= {"a", "c", "d"}
        assert len({a.upstream for a in answers}) == 1
        assert by_name(pool)["b"]["capabilities"]["eth_getBlockReceipts"] is False
        assert by_name(pool)["b"]["chain_id"] == 5
    assert "eth_getProof" not in geth_like.methods()[4:]


async def test_need_probes_unprobed_upstreams_first(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.errors["eth_getProof"] = {"code": -32601, "message": "Method not found"}
    async with await make_pool(serve, clock, a, b) as pool:
        for _ in range(3):
            answer = await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"],
                                     need="eth_getProof")
            assert answer.upstream == "b"
    assert a.methods() == ["eth_chainId", *PROBED_METHODS]  # probed once, never asked
    assert b.methods() == ["eth_chainId", *PROBED_METHODS] + ["eth_getProof"] * 3


async def test_no_upstream_serves_the_need(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.errors["eth_getProof"] = b.errors["eth_getProof"] = GETH_NOT_FOUND
    async with await make_pool(serve, clock, a, b) as pool:
        with pytest.raises(MethodNotServedError,
                           match="no upstream serves eth_getProof \\(a: not served, "
                                 "b: not served\\)"):
            await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"],
                            need="eth_getProof")


async def test_failed_probe_is_retried_later_not_at_every_call(serve: Serve,
                                                               clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.statuses = [503]
    async with await make_pool(serve, clock, a, b, probe_retry=60.0) as pool:
        results = await pool.probe()
        assert results["a"].error == "HTTP 503" and results["a"].capabilities == {}
        assert by_name(pool)["a"]["capabilities"] is None
        await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"], need="eth_getProof")
        assert len(a.bodies) == 1  # not probed again yet
        clock.now += 60
        await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"], need="eth_getProof")
        assert a.methods()[4:] == ["eth_chainId", *PROBED_METHODS]  # the failed one, again
        assert sorted(pool.capable("eth_getProof")) == ["a", "b"]


async def test_not_served_is_learnt_from_an_answer(serve: Serve, clock: Clock) -> None:
    a = FakeRpc()
    async with await make_pool(serve, clock, a) as pool:
        await pool.probe()
        a.errors["eth_getProof"] = GETH_NOT_FOUND  # e.g. a load balancer's other backend
        answer = await pool.call("eth_getProof", ["0x" + "00" * 20, [], "latest"],
                                 need="eth_getProof")
        assert answer.error == GETH_NOT_FOUND
        assert pool.capable("eth_getProof") == []


async def test_upstream_on_another_chain_is_excluded_for_good(serve: Serve,
                                                              clock: Clock) -> None:
    mainnet, sepolia = FakeRpc(chain_id=1), FakeRpc(chain_id=11155111)
    async with await make_pool(serve, clock, mainnet, sepolia, chain_id=1) as pool:
        await pool.probe()
        clock.now += 1e9
        for _ in range(4):
            assert (await pool.call("eth_blockNumber", [])).upstream == "a"
        state = by_name(pool)["b"]
    assert state["excluded"] and state["excluded_for_good"]
    assert state["exclusion_reason"] == "chain id 11155111, expected 1"


# -- penalties --------------------------------------------------------------------------------


async def test_liar_is_used_less_then_excluded(serve: Serve, clock: Clock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    honest, liar = FakeRpc(block="0x10"), FakeRpc(block="0x99")
    caplog.set_level(logging.WARNING, logger="node.rpc.upstream")
    async with await make_pool(serve, clock, honest, liar) as pool:

        async def verified_block() -> Answer:
            answer = await pool.call("eth_blockNumber", [])
            if answer.result != "0x10":  # what the verifier would find out
                pool.penalize(answer, f"eth_blockNumber: claimed {answer.result}, "
                                      "no such anchored header")
            return answer

        first = [(await verified_block()).upstream for _ in range(2)]
        assert sorted(first) == ["a", "b"]  # round robin while both are clean
        assert by_name(pool)["b"]["score"] == 10.0
        used = [(await verified_block()).upstream for _ in range(10)]
        assert used == ["a"] * 10  # the liar is no longer chosen while the honest one answers
        for _ in range(2):  # the honest one fails once: the liar is the fallback, and lies
            honest.statuses = [503]
            assert (await verified_block()).upstream == "b"
        state = by_name(pool)["b"]
        assert state["excluded"] and state["lies"] == {"eth_blockNumber": 3}
        assert state["exclusion_reason"].startswith("3 lies, score 30")
        honest.statuses = [503]  # now a failure of the honest one is retried on itself
        assert (await verified_block()).upstream == "a"
        assert [(await verified_block()).result for _ in range(5)] == ["0x10"] * 5
        assert len(liar.bodies) == 3
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [f"upstream b lied: eth_blockNumber: claimed 0x99, no such anchored header "
                     f"(score {score} of 30{tail})"
                     for score, tail in ((10, ""), (20, ""), (30, "; excluded for 3600 s"))]


async def test_exclusion_ends_on_probation(serve: Serve, clock: Clock) -> None:
    async with await make_pool(serve, clock, FakeRpc(), FakeRpc(),
                               penalties=Penalties(exclude_for=100.0)) as pool:
        lie = Answer("0x99", "b")
        for _ in range(3):
            pool.penalize(lie, "eth_getProof: account proof does not reach the stateRoot")
        assert pool.capable("eth_blockNumber") == ["a"]
        assert by_name(pool)["b"]["excluded_seconds_left"] == 100.0
        clock.now += 100
        state = by_name(pool)["b"]
        assert not state["excluded"] and state["score"] == 20.0  # one lie from the threshold
        assert state["lies"] == {"eth_getProof": 3}  # the history stays
        pool.penalize(lie, "eth_getProof: again")
        assert by_name(pool)["b"]["excluded"]


async def test_exclusion_for_good(serve: Serve, clock: Clock) -> None:
    async with await make_pool(serve, clock, FakeRpc(), FakeRpc(),
                               penalties=Penalties(exclude_for=None, threshold=10.0)) as pool:
        pool.penalize(Answer("0x99", "b"), "eth_getLogs: a log that is not in the receipts")
        clock.now += 1e9
        state = by_name(pool)["b"]
        assert state["excluded"] and state["excluded_for_good"]
        assert state["excluded_seconds_left"] is None


async def test_every_upstream_excluded_is_named(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    async with await make_pool(serve, clock, a, b,
                               penalties=Penalties(threshold=10.0, exclude_for=60.0)) as pool:
        pool.penalize(Answer("0x1", "a"), "eth_getBalance: wrong balance")
        pool.penalize(Answer("0x1", "b"), "eth_getBalance: wrong balance")
        with pytest.raises(AllUpstreamsExcludedError) as caught:
            await pool.call("eth_blockNumber", [])
    assert str(caught.value) == ("every upstream is excluded: a (1 lie, score 10, 60 s left); "
                                 "b (1 lie, score 10, 60 s left)")
    assert a.bodies == b.bodies == []


async def test_failures_cost_less_decay_and_never_exclude(serve: Serve, clock: Clock) -> None:
    penalties = Penalties(threshold=2.0, failure=1.0, failure_half_life=60.0)
    flaky = FakeRpc()
    flaky.statuses = [503] * 4
    async with await make_pool(serve, clock, flaky, penalties=penalties, attempts=1) as pool:
        for _ in range(4):
            with pytest.raises(RetriesExhaustedError):
                await pool.call("eth_blockNumber", [])
        state = pool.state()[0]
        assert state["failures"] == {"http_5xx": 4} and state["score"] == 4.0
        assert not state["excluded"]  # past the threshold, but failures never exclude
        assert (await pool.call("eth_blockNumber", [])).upstream == "a"
        clock.now += 60
        assert pool.state()[0]["score"] == 2.0  # halved after a half-life
        clock.now += 60 * 20
        assert pool.state()[0]["score"] == 0.0


async def test_a_failing_upstream_is_chosen_last_until_it_recovers(serve: Serve,
                                                                    clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    a.statuses = [503]
    async with await make_pool(serve, clock, a, b) as pool:
        assert (await pool.call("eth_blockNumber", [])).upstream == "b"  # a failed, b answered
        assert by_name(pool)["a"]["score"] == pytest.approx(1.0, abs=0.01)  # a tenth of a lie
        used = [(await pool.call("eth_blockNumber", [])).upstream for _ in range(4)]
        assert used == ["b"] * 4
        clock.now += 60 * 20
        again = [(await pool.call("eth_blockNumber", [])).upstream for _ in range(4)]
        assert sorted(again) == ["a", "a", "b", "b"]  # round robin again


async def test_penalize_an_unknown_upstream(serve: Serve, clock: Clock) -> None:
    async with await make_pool(serve, clock, FakeRpc()) as pool:
        with pytest.raises(ValueError, match="no upstream named 'zz'"):
            pool.penalize(Answer("0x1", "zz"), "eth_getBalance: wrong")


async def test_lie_kinds_are_counted_and_bounded(serve: Serve, clock: Clock) -> None:
    async with await make_pool(serve, clock, FakeRpc(),
                               penalties=Penalties(threshold=1e9)) as pool:
        for i in range(70):
            pool.penalize(Answer("0x1", "a"), f"kind{i}: what")
        pool.penalize(Answer("0x1", "a"), "no colon here\nsecond line")
        lies = pool.state()[0]["lies"]
    assert len(lies) == 65 and lies["other"] == 7 and lies["kind0"] == 1


# -- status, credentials, lifetime ------------------------------------------------------------


async def test_state_is_json_and_leaks_no_credentials(serve: Serve, clock: Clock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    node = FakeRpc(chain_id=1)
    base = await serve(node)
    secret_url = base.replace("http://", "http://alice:s3cr3tpw@") + \
        "/v3/0123456789abcdef0123456789abcdef?apikey=topsecretkey"
    dead = "http://bob:deadpw@127.0.0.1:9/rpc/abcdefabcdefabcdefabcdef?token=deadtoken"
    caplog.set_level(logging.DEBUG, logger="node.rpc.upstream")
    async with UpstreamPool([Endpoint("infura", secret_url), Endpoint("dead", dead)],
                            clock=clock, sleep=clock.sleep, attempts=1) as pool:
        await pool.probe()
        answers = [await pool.call("eth_blockNumber", []) for _ in range(3)]
        assert {a.upstream for a in answers} == {"infura"}
        pool.penalize(answers[0], "eth_blockNumber: steer the next call to the dead one")
        with pytest.raises(RetriesExhaustedError) as caught:
            await pool.call("eth_blockNumber", [])
        state = pool.state()
    text = json.dumps(state) + str(caught.value) + caplog.text + repr(pool.names) + \
        repr(Endpoint("x", secret_url))
    for secret in ("alice", "s3cr3tpw", "0123456789abcdef0123456789abcdef", "topsecretkey",
                   "bob", "deadpw", "abcdefabcdefabcdefabcdef", "deadtoken"):
        assert secret not in text
    assert node.paths[0] == "/v3/0123456789abcdef0123456789abcdef?apikey=topsecretkey"
    assert node.headers[0]["Authorization"].startswith("Basic ")  # still sent, to the server
    infura, gone = state
    assert infura["url"] == base + "/v3/***" and gone["url"] == "http://127.0.0.1:9/rpc/***"
    assert set(infura) == {"name", "url", "chain_id", "capabilities", "score", "lies",
                           "failures", "excluded", "excluded_for_good", "excluded_seconds_left",
                           "exclusion_reason", "requests", "answers", "bytes_received",
                           "bytes_sent", "latency"}
    assert infura["chain_id"] == 1 and infura["requests"] == 4 and infura["answers"] == 7
    assert infura["capabilities"] == dict.fromkeys(PROBED_METHODS, True)
    assert infura["bytes_received"] > 0 and infura["latency"] == 0.0  # the injected clock
    assert infura["bytes_sent"] > 0
    assert gone["failures"] == {"connection": 2} and gone["capabilities"] is None
    assert "dead: ClientConnectorError" in str(caught.value)


def test_public_url() -> None:
    assert public_url("https://u:p@eth.example:8545/v2/abcdefghijklmnopqrstuvwxyz?k=1#f") == \
        "https://eth.example:8545/v2/***"
    assert public_url("http://[::1]:8545/") == "http://[::1]:8545/"
    assert public_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


def test_endpoints_and_options_are_checked() -> None:
    assert Endpoint.parse("ground=http://10.0.0.1:8545") == Endpoint("ground",
                                                                   "http://10.0.0.1:8545")
    assert Endpoint.parse("http://10.0.0.1:8545/x").name == "10.0.0.1:8545"
    assert "secret" not in repr(Endpoint("a", "http://h/?k=secret"))
    for bad in ("ground", "a=ftp://x", "a=http://", "=http://x"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)
    with pytest.raises(ValueError, match="unique"):
        UpstreamPool(["a=http://x", "a=http://y"])
    with pytest.raises(ValueError, match="at least one"):
        UpstreamPool([])
    with pytest.raises(ValueError):
        UpstreamPool(["a=http://x"], attempts=0)
    with pytest.raises(ValueError):
        Penalties(exclude_for=0)


async def test_pool_closes_its_session_and_leaves_no_task(serve: Serve, clock: Clock) -> None:
    async with await make_pool(serve, clock, FakeRpc(), FakeRpc()) as pool:
        await pool.probe()
        await pool.call("eth_blockNumber", [])
        session = pool._session
        assert session is not None and not session.closed
    assert session.closed
    others = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()
              and t.get_coro().__qualname__ != "RequestHandler.start"}  # the test's servers
    assert others == set()


async def test_a_given_session_is_left_open(serve: Serve, clock: Clock) -> None:
    url = await serve(FakeRpc())
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with UpstreamPool([Endpoint("a", url)], session=session) as pool:
            assert (await pool.call("eth_chainId", [])).result == "0x1"
        assert not session.closed


async def test_concurrent_calls_share_the_pool(serve: Serve, clock: Clock) -> None:
    a, b = FakeRpc(), FakeRpc()
    async with await make_pool(serve, clock, a, b) as pool:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(pool.call("eth_blockNumber", [])) for _ in range(20)]
        assert {t.result().result for t in tasks} == {"0x10"}
        state = by_name(pool)
    # all choose before any answers (equal scores, no latency yet): strict round robin
    assert state["a"]["requests"] == state["b"]["requests"] == 10


# -- a real devnet ----------------------------------------------------------------------------


@pytest.mark.devnet
async def test_anvil_serves_everything_a_stub_does_not(anvil: Anvil, serve: Serve) -> None:
    stub = FakeRpc(chain_id=31337)
    stub.errors["eth_getProof"] = GETH_NOT_FOUND
    stub_url = await serve(stub)
    async with UpstreamPool([Endpoint("anvil", anvil.url), Endpoint("stub", stub_url)],
                            chain_id=31337) as pool:
        results = await pool.probe()
        assert results["anvil"].capabilities == dict.fromkeys(PROBED_METHODS, True)
        assert results["anvil"].chain_id == 31337 and results["anvil"].error is None
        assert results["stub"].capabilities["eth_getProof"] is False
        assert pool.capable("eth_getProof") == ["anvil"]
        account = "0xf39Fd6e51aad88F6F4ce6aB8827279cfFFb92266"  # dev account 0
        for _ in range(3):
            proof = await pool.call("eth_getProof", [account, [], "latest"], need="eth_getProof")
            assert proof.upstream == "anvil"
            assert int(proof.value("eth_getProof")["balance"], 16) > 0
        answers = await pool.batch([("eth_chainId", []), ("eth_getBlockByNumber", ["0x0", False]),
                                    ("eth_getBlockReceipts", ["0x0"]), ("eth_nope", [])],
                                   need="eth_getBlockReceipts")
        assert [a.upstream for a in answers] == ["anvil"] * 4
        assert answers[0].result == "0x7a69" and answers[1].result["number"] == "0x0"
        assert answers[2].result == [] and answers[3].error["code"] == -32601
        state = {s["name"]: s for s in pool.state()}
    assert state["anvil"]["url"] == anvil.url and state["anvil"]["failures"] == {}
    assert "eth_getProof" not in stub.methods()[4:]
