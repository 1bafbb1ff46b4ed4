"""Beacon API client (node.chain.beacon.api) against a real aiohttp server on 127.0.0.1.

The server serves the minimal-preset ``light_client/sync`` vectors (bootstrap, one update
per period, finality and optimistic updates derived from the latest update as
``create_light_client_finality_update`` does) in SSZ and JSON. Honest, every object comes
back equal to the vector (same type, same hash_tree_root). Lying -- another object, cut or
padded SSZ, a foreign or contradicting fork digest or version, an oversized body, too many
updates, HTTP errors, a stalled answer -- each ends in its typed, one-line error.
``fetch_plan`` is pinned as a pure function.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml
from aiohttp import web

from node.chain.beacon.api import (
    MAX_REQUEST_LIGHT_CLIENT_UPDATES,
    BeaconApiClient,
    BeaconApiConnectionError,
    BeaconApiError,
    BeaconApiHttpError,
    BeaconApiTimeout,
    ForkMismatchError,
    InvalidPayloadError,
    MalformedResponseError,
    PlanError,
    ResponseTooLargeError,
    TooManyUpdatesError,
    TruncatedResponseError,
    UnexpectedObjectError,
    UnsupportedForkError,
    UpdateRange,
    decode_object,
    decode_updates,
    encode_updates_ssz,
    fetch_plan,
)
from node.chain.beacon.config import MAINNET, NetworkConfig
from node.chain.beacon.containers import MINIMAL, light_client_types
from node.chain.beacon.ssz import Container
from node.chain.errors import ChainError, MalformedInputError

from vectors import vector_path

VECTORS = vector_path("consensus-light-client")
CASES = sorted(VECTORS.glob("minimal/*/sync/pyspec_tests/*"))
PREFIX = "/eth/v1/beacon/light_client"


def _case_id(case: Path) -> str:
    return f"{case.parts[-4]}/{case.name}"


def _case(fork: str, name: str) -> Path:
    return VECTORS / "minimal" / fork / "sync" / "pyspec_tests" / name


# -- the vectors, as a beacon node would hold them --------------------------------------------


@dataclass(frozen=True)
class Vector:
    config: NetworkConfig
    trusted_root: bytes
    bootstrap: Container
    by_period: dict[int, Container]  # the latest update of each attested period
    finality: Container
    optimistic: Container

    def fork_of(self, obj: Container) -> str:
        slot = (obj.attested_header if hasattr(obj, "attested_header") else obj.header).beacon.slot
        return self.config.fork_at_slot(slot).name


def _read_ssz(path: Path) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(path.read_bytes()))


@cache
def load(case: Path) -> Vector:
    meta = yaml.safe_load((case / "meta.yaml").read_text())
    config = NetworkConfig.from_yaml((case / "config.yaml").read_text(),
                                     genesis_validators_root=bytes.fromhex(
                                         meta["genesis_validators_root"][2:]))
    fork = config.fork_by_digest(bytes.fromhex(meta["bootstrap_fork_digest"][2:])).name
    bootstrap = light_client_types(fork, MINIMAL).LightClientBootstrap.decode(
        _read_ssz(case / "bootstrap.ssz_snappy"))
    by_period: dict[int, Container] = {}
    latest: tuple[str, Container] | None = None
    for step in yaml.safe_load((case / "steps.yaml").read_text()):
        if "process_update" not in step:
            continue
        info = step["process_update"]
        name = config.fork_by_digest(bytes.fromhex(info["update_fork_digest"][2:])).name
        update = light_client_types(name, MINIMAL).LightClientUpdate.decode(
            _read_ssz(case / f"{info['update']}.ssz_snappy"))
        by_period[config.sync_committee_period_at_slot(update.attested_header.beacon.slot)] = \
            update
        latest = (name, update)
    assert latest is not None
    name, update = latest
    types = light_client_types(name, MINIMAL)
    finality = types.LightClientFinalityUpdate(
        attested_header=update.attested_header, finalized_header=update.finalized_header,
        finality_branch=update.finality_branch, sync_aggregate=update.sync_aggregate,
        signature_slot=update.signature_slot)
    optimistic = types.LightClientOptimisticUpdate(
        attested_header=update.attested_header, sync_aggregate=update.sync_aggregate,
        signature_slot=update.signature_slot)
    return Vector(config, bytes.fromhex(meta["trusted_block_root"][2:]), bootstrap, by_period,
                  finality, optimistic)


# -- a beacon node that serves them (honestly, unless told otherwise) ------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # stream without Content-Length


Tamper = Callable[[str, Reply], Reply]


class FakeNode:
    """Serves a :class:`Vector` by the beacon-APIs light-client endpoints."""

    def __init__(self, vector: Vector, *, ssz: str = "yes") -> None:
        self.vector = vector
        self.ssz = ssz  # "yes", "ignore" (always JSON), "reject" (406 if SSZ is acceptable)
        self.tamper: Tamper | None = None
        self.hang = False
        self.release = asyncio.Event()
        self.seen: list[tuple[str, str]] = []  # (path with query, Accept)

    def _reply_object(self, obj: Container, want_ssz: bool) -> Reply:
        fork = self.vector.fork_of(obj)
        if want_ssz:
            return Reply(body=obj.encode(), content_type="application/octet-stream",
                         headers={"Eth-Consensus-Version": fork})
        return Reply(body=json.dumps({"version": fork, "data": obj.to_json()}).encode(),
                     headers={"Eth-Consensus-Version": fork})

    def honest(self, what: str, request: web.Request, want_ssz: bool) -> Reply:
        vec = self.vector
        if what == "bootstrap":
            root = bytes.fromhex(request.match_info["root"].removeprefix("0x"))
            if root != vec.trusted_root:
                return Reply(404, b'{"code":404,"message":"LC bootstrap unavailable"}')
            return self._reply_object(vec.bootstrap, want_ssz)
        if what == "finality_update":
            return self._reply_object(vec.finality, want_ssz)
        if what == "optimistic_update":
            return self._reply_object(vec.optimistic, want_ssz)
        start, count = int(request.query["start_period"]), int(request.query["count"])
        updates = []
        for period in range(start, start + min(count, MAX_REQUEST_LIGHT_CLIENT_UPDATES)):
            if period not in vec.by_period:
                break
            updates.append(vec.by_period[period])
        if want_ssz:
            return Reply(body=encode_updates_ssz(vec.config, updates),
                         content_type="application/octet-stream")
        return Reply(body=json.dumps([{"version": vec.fork_of(u), "data": u.to_json()}
                                      for u in updates]).encode())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        self.seen.append((request.path_qs, accept))
        if self.hang:
            await self.release.wait()
        what = request.match_info.get("what", "bootstrap")
        if self.ssz == "reject" and "application/octet-stream" in accept:
            reply = Reply(406, b'{"code":406,"message":"Accepted media type not supported"}')
        else:
            reply = self.honest(what, request, self.ssz == "yes"
                                and "application/octet-stream" in accept)
        if self.tamper is not None:
            reply = self.tamper(what, reply)
        if not reply.chunked:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers,
                                content_type=reply.content_type)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = reply.content_type
        response.enable_chunked_encoding()
        await response.prepare(request)
        for at in range(0, len(reply.body), 4096):
            await response.write(reply.body[at:at + 4096])
        await response.write_eof()
        return response


Serve = Callable[[FakeNode], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[tuple[FakeNode, web.AppRunner]] = []

    async def start(node: FakeNode) -> str:
        app = web.Application()
        app.router.add_get(PREFIX + "/bootstrap/{root}", node.handle)
        app.router.add_get(PREFIX + "/{what}", node.handle)
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


def _root(obj: Container) -> bytes:
    return obj.hash_tree_root()


# -- honest servers: round trips --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["ssz", "json"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
async def test_round_trip_of_every_sync_case(case: Path, encoding: str, serve: Serve) -> None:
    vec = load(case)
    node = FakeNode(vec)
    url = await serve(node)
    periods = sorted(vec.by_period)
    start, count = periods[0], periods[-1] - periods[0] + 1
    expected = []
    for period in range(start, start + count):
        if period not in vec.by_period:
            break
        expected.append(vec.by_period[period])
    async with BeaconApiClient(url, vec.config, encoding=encoding) as api:  # type: ignore[arg-type]
        bootstrap = await api.bootstrap(vec.trusted_root)
        updates = await api.updates(start, count)
        finality = await api.finality_update()
        optimistic = await api.optimistic_update()
    assert type(bootstrap) is type(vec.bootstrap) and _root(bootstrap) == _root(vec.bootstrap)
    assert [type(u) for u in updates] == [type(u) for u in expected]
    assert [_root(u) for u in updates] == [_root(u) for u in expected]
    assert _root(finality) == _root(vec.finality) and type(finality) is type(vec.finality)
    assert _root(optimistic) == _root(vec.optimistic)
    assert [t.encoding for t in api.transfers] == [encoding] * 4
    assert [t.status for t in api.transfers] == [200] * 4
    if encoding == "ssz":
        assert api.transfers[0].body_bytes == len(vec.bootstrap.encode())
        assert api.transfers[1].body_bytes == len(encode_updates_ssz(vec.config, expected))
    assert api.bytes_received == sum(t.header_bytes + t.body_bytes for t in api.transfers)
    assert node.seen[1][0] == f"{PREFIX}/updates?start_period={start}&count={count}"


async def test_ssz_costs_fewer_bytes_than_json(serve: Serve) -> None:
    vec = load(_case("deneb", "light_client_sync"))
    url = await serve(FakeNode(vec))
    sizes = {}
    for encoding in ("ssz", "json"):
        async with BeaconApiClient(url, vec.config, encoding=encoding) as api:  # type: ignore[arg-type]
            await api.bootstrap(vec.trusted_root)
            await api.updates(0, 5)
            await api.finality_update()
            sizes[encoding] = api.bytes_received
    assert sizes["ssz"] * 1.6 < sizes["json"], sizes


async def test_json_when_the_server_ignores_ssz(serve: Serve) -> None:
    vec = load(_case("capella", "light_client_sync"))
    node = FakeNode(vec, ssz="ignore")
    async with BeaconApiClient(await serve(node), vec.config) as api:
        assert _root(await api.bootstrap(vec.trusted_root)) == _root(vec.bootstrap)
    assert node.seen[0][1].startswith("application/octet-stream")
    assert api.transfers[0].encoding == "json"


async def test_json_fallback_after_406(serve: Serve) -> None:
    vec = load(_case("capella", "light_client_sync"))
    node = FakeNode(vec, ssz="reject")
    async with BeaconApiClient(await serve(node), vec.config) as api:
        updates = await api.updates(1, 2)
    assert [_root(u) for u in updates] == [_root(vec.by_period[1]), _root(vec.by_period[2])]
    assert [accept for _, accept in node.seen] == [
        "application/octet-stream;q=1.0,application/json;q=0.9", "application/json"]
    assert [t.status for t in api.transfers] == [406, 200]


async def test_json_only_client_refuses_ssz(serve: Serve) -> None:
    vec = load(_case("capella", "light_client_sync"))
    node = FakeNode(vec)
    node.tamper = lambda what, reply: replace(
        reply, body=vec.bootstrap.encode(), content_type="application/octet-stream")
    async with BeaconApiClient(await serve(node), vec.config, encoding="json") as api:
        with pytest.raises(InvalidPayloadError, match="unexpected Content-Type"):
            await api.bootstrap(vec.trusted_root)
    assert node.seen[0][1] == "application/json"


async def test_empty_range_is_no_updates(serve: Serve) -> None:
    vec = load(_case("deneb", "light_client_sync"))
    async with BeaconApiClient(await serve(FakeNode(vec)), vec.config) as api:
        assert await api.updates(7, 3) == []
        assert await api.fetch(None) == []
        assert len(await api.fetch(UpdateRange(3, 2))) == 2


def test_updates_of_several_forks_in_one_ssz_body() -> None:
    """A body across a fork: each chunk decodes as the fork its digest names."""
    case = _case("bellatrix", "capella_fork")
    vec = load(case)
    steps = yaml.safe_load((case / "steps.yaml").read_text())
    first = next(s["process_update"]["update"] for s in steps if "process_update" in s)
    bellatrix = light_client_types("bellatrix", MINIMAL).LightClientUpdate.decode(
        _read_ssz(case / f"{first}.ssz_snappy"))
    mixed = [bellatrix, vec.by_period[0]]  # the latest update is Capella's
    decoded = decode_updates(vec.config, encode_updates_ssz(vec.config, mixed), encoding="ssz")
    assert [type(u).__qualname__ for u in decoded] == [
        "LightClientUpdate[altair, minimal]", "LightClientUpdate[capella, minimal]"]
    assert [_root(u) for u in decoded] == [_root(u) for u in mixed]


# -- lying servers ---------------------------------------------------------------------------


def _lie(node: FakeNode, endpoint: str, change: Callable[[Reply], Reply]) -> None:
    node.tamper = lambda what, reply: change(reply) if what == endpoint else reply


async def _client_error(serve: Serve, vec: Vector, node: FakeNode, call: str,
                        *args: Any, encoding: str = "ssz", **options: Any) -> BeaconApiError:
    async with BeaconApiClient(await serve(node), vec.config, encoding=encoding,  # type: ignore[arg-type]
                               **options) as api:
        with pytest.raises(BeaconApiError) as err:
            await getattr(api, call)(*args)
    message = str(err.value)
    assert "\n" not in message and message.startswith("light_client/"), message
    return err.value


CAPELLA = _case("capella", "light_client_sync")
BELLATRIX = _case("bellatrix", "light_client_sync")


async def test_bootstrap_of_another_block(serve: Serve) -> None:
    vec = load(CAPELLA)
    other = load(_case("capella", "supply_sync_committee_from_past_update"))
    node = FakeNode(vec)
    _lie(node, "bootstrap", lambda reply: replace(reply, body=other.bootstrap.encode()))
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root)
    assert isinstance(err, UnexpectedObjectError)
    assert f"not the requested 0x{vec.trusted_root.hex()}" in str(err)


async def test_update_of_another_period(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    body = encode_updates_ssz(vec.config, [vec.by_period[3]])
    _lie(node, "updates", lambda reply: replace(reply, body=body))
    err = await _client_error(serve, vec, node, "updates", 1, 2)
    assert isinstance(err, UnexpectedObjectError) and "period 3, outside" in str(err)


async def test_updates_with_a_gap(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    body = encode_updates_ssz(vec.config, [vec.by_period[1], vec.by_period[3]])
    _lie(node, "updates", lambda reply: replace(reply, body=body))
    err = await _client_error(serve, vec, node, "updates", 1, 3)
    assert isinstance(err, UnexpectedObjectError) and "not consecutive" in str(err)


@pytest.mark.parametrize("endpoint", ["bootstrap", "finality_update", "optimistic_update"])
async def test_truncated_ssz_object(serve: Serve, endpoint: str) -> None:
    vec = load(BELLATRIX)  # fixed-size objects: any cut is malformed
    node = FakeNode(vec)
    _lie(node, endpoint, lambda reply: replace(reply, body=reply.body[:-1]))
    args = (vec.trusted_root,) if endpoint == "bootstrap" else ()
    err = await _client_error(serve, vec, node, endpoint, *args)
    assert isinstance(err, InvalidPayloadError) and isinstance(err, MalformedInputError)
    assert "is not a valid" in str(err)


async def test_trailing_bytes_after_ssz_object(serve: Serve) -> None:
    # Altair-shaped objects are fixed-size, so an extra byte is trailing data. (From Capella
    # on, a byte appended to an object lands in the last header's execution extra_data: a
    # canonical encoding of another object, which the store's execution branch check refuses.)
    vec = load(BELLATRIX)
    node = FakeNode(vec)
    _lie(node, "bootstrap", lambda reply: replace(reply, body=reply.body + b"\x00"))
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root)
    assert isinstance(err, InvalidPayloadError)


@pytest.mark.parametrize(("cut", "message"), [
    (-1, "but only"),  # last chunk's payload one byte short
    (8 + 4, "chunk 1: length"),  # ends right after the second chunk's context
])
async def test_truncated_update_chunks(serve: Serve, cut: int, message: str) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    body = encode_updates_ssz(vec.config, [vec.by_period[1], vec.by_period[2]])
    first = 8 + int.from_bytes(body[:8], "little")
    cut_body = body[:cut] if cut < 0 else body[:first + cut]
    _lie(node, "updates", lambda reply: replace(reply, body=cut_body))
    err = await _client_error(serve, vec, node, "updates", 1, 2)
    assert isinstance(err, TruncatedResponseError) and message in str(err)


@pytest.mark.parametrize(("extra", "error", "message"), [
    (b"\x01\x02\x03", TruncatedResponseError, "3 trailing byte(s)"),
    ((2).to_bytes(8, "little") + b"\x00\x00", InvalidPayloadError, "no room"),
])
async def test_trailing_chunk_data(serve: Serve, extra: bytes, error: type, message: str) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "updates", lambda reply: replace(reply, body=reply.body + extra))
    err = await _client_error(serve, vec, node, "updates", 1, 3)
    assert isinstance(err, error) and message in str(err)


async def test_trailing_bytes_inside_a_chunk(serve: Serve) -> None:
    vec = load(BELLATRIX)
    node = FakeNode(vec)
    update = vec.by_period[1]
    digest = vec.config.fork_digest("bellatrix")
    payload = update.encode() + b"\x00"
    body = (len(payload) + 4).to_bytes(8, "little") + digest + payload
    _lie(node, "updates", lambda reply: replace(reply, body=body))
    err = await _client_error(serve, vec, node, "updates", 1, 1)
    assert isinstance(err, InvalidPayloadError) and "chunk 0 (bellatrix" in str(err)


async def test_fork_digest_of_another_network(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    body = bytearray(encode_updates_ssz(vec.config, [vec.by_period[1]]))
    body[8:12] = MAINNET.fork_digest("capella")
    _lie(node, "updates", lambda reply: replace(reply, body=bytes(body)))
    err = await _client_error(serve, vec, node, "updates", 1, 1)
    assert isinstance(err, ForkMismatchError)
    assert "chunk 0: fork digest 0xbba4da96 is not one of" in str(err)


async def test_fork_digest_of_another_fork_with_the_same_shape(serve: Serve) -> None:
    """Altair and Bellatrix updates have one shape: only the slot check catches it."""
    vec = load(BELLATRIX)
    node = FakeNode(vec)
    body = bytearray(encode_updates_ssz(vec.config, [vec.by_period[1]]))
    body[8:12] = vec.config.fork_digest("altair")
    _lie(node, "updates", lambda reply: replace(reply, body=bytes(body)))
    err = await _client_error(serve, vec, node, "updates", 1, 1)
    assert isinstance(err, ForkMismatchError) and "(bellatrix)" in str(err)


async def test_phase0_fork_digest_has_no_light_client_data(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    body = bytearray(encode_updates_ssz(vec.config, [vec.by_period[1]]))
    body[8:12] = vec.config.fork_digest("phase0")
    _lie(node, "updates", lambda reply: replace(reply, body=bytes(body)))
    err = await _client_error(serve, vec, node, "updates", 1, 1)
    assert isinstance(err, UnsupportedForkError) and "'phase0'" in str(err)


@pytest.mark.parametrize(("version", "error", "message"), [
    ("altair", ForkMismatchError, "says altair, but slot"),  # same shape as bellatrix
    ("phase0", UnsupportedForkError, "no light-client data"),
    ("capella", ForkMismatchError, "which custom does not have"),
    ("Bellatrix", ForkMismatchError, "does not have"),
    (None, ForkMismatchError, "without an Eth-Consensus-Version header"),
])
async def test_wrong_version_header_on_ssz(serve: Serve, version: str | None,
                                           error: type, message: str) -> None:
    vec = load(BELLATRIX)
    node = FakeNode(vec)

    def change(reply: Reply) -> Reply:
        headers = {} if version is None else {"Eth-Consensus-Version": version}
        return replace(reply, headers=headers)

    _lie(node, "bootstrap", change)
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root)
    assert isinstance(err, error) and message in str(err)


async def test_version_header_naming_another_shape(serve: Serve) -> None:
    vec = load(_case("capella", "deneb_fork"))  # a Capella bootstrap, Deneb scheduled
    node = FakeNode(vec)
    _lie(node, "bootstrap",
         lambda reply: replace(reply, headers={"Eth-Consensus-Version": "deneb"}))
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root)
    assert isinstance(err, InvalidPayloadError)
    assert "not a valid LightClientBootstrap[deneb, minimal]" in str(err)


async def test_version_header_contradicting_json_version(serve: Serve) -> None:
    vec = load(BELLATRIX)
    node = FakeNode(vec)
    _lie(node, "finality_update",
         lambda reply: replace(reply, headers={"Eth-Consensus-Version": "altair"}))
    err = await _client_error(serve, vec, node, "finality_update", encoding="json")
    assert isinstance(err, ForkMismatchError) and "contradicts version 'bellatrix'" in str(err)


async def test_version_header_contradicting_update_digests(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "updates", lambda reply: replace(reply, headers={"Eth-Consensus-Version": "deneb"}))
    err = await _client_error(serve, vec, node, "updates", 1, 2)
    assert isinstance(err, ForkMismatchError) and "'deneb' contradicts" in str(err)


async def test_wrong_json_version_in_updates(serve: Serve) -> None:
    vec = load(BELLATRIX)
    node = FakeNode(vec)

    def change(reply: Reply) -> Reply:
        items = json.loads(reply.body)
        items[1]["version"] = "altair"
        return replace(reply, body=json.dumps(items).encode())

    _lie(node, "updates", change)
    err = await _client_error(serve, vec, node, "updates", 1, 2, encoding="json")
    assert isinstance(err, ForkMismatchError) and "update 1 version says altair" in str(err)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not JSON"),
    (b'{"data": {}}', "has no version"),
    (b'{"version": "capella", "data": {}, "extra": 1}', "must be an object"),
    (b'{"version": "capella", "data": {"header": {}}}', "missing field"),
])
async def test_malformed_json_object(serve: Serve, body: bytes, message: str) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "optimistic_update", lambda reply: replace(reply, body=body, headers={}))
    err = await _client_error(serve, vec, node, "optimistic_update", encoding="json")
    assert isinstance(err, InvalidPayloadError) and message in str(err)


async def test_json_updates_must_be_a_list(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "updates", lambda reply: replace(reply, body=b'{"data": []}'))
    err = await _client_error(serve, vec, node, "updates", 1, 2, encoding="json")
    assert isinstance(err, InvalidPayloadError) and "must be a JSON list" in str(err)


@pytest.mark.parametrize("encoding", ["ssz", "json"])
async def test_too_many_updates(serve: Serve, encoding: str) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)

    def change(reply: Reply) -> Reply:
        served = [vec.by_period[1], vec.by_period[2]]
        if encoding == "ssz":
            return replace(reply, body=encode_updates_ssz(vec.config, served))
        return replace(reply, body=json.dumps(
            [{"version": "capella", "data": u.to_json()} for u in served]).encode())

    _lie(node, "updates", change)
    err = await _client_error(serve, vec, node, "updates", 1, 1, encoding=encoding)
    assert isinstance(err, TooManyUpdatesError)


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body(serve: Serve, chunked: bool) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "bootstrap", lambda reply: replace(reply, chunked=chunked))
    cap = len(vec.bootstrap.encode()) - 1
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root,
                              max_response_bytes=cap)
    assert isinstance(err, ResponseTooLargeError)
    assert ("Content-Length" in str(err)) is not chunked


async def test_huge_streamed_body_is_not_read_to_the_end(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    _lie(node, "updates", lambda reply: replace(reply, body=bytes(4 * 1024 * 1024),
                                                chunked=True))
    async with BeaconApiClient(await serve(node), vec.config,
                               max_response_bytes=100_000) as api:
        with pytest.raises(ResponseTooLargeError, match="stopped reading"):
            await api.updates(1, 1)
    assert api.transfers[0].body_bytes < 100_000 + 64 * 1024


@pytest.mark.parametrize(("status", "body", "message"), [
    (500, b'{"code":500,"message":"Internal server error"}', "HTTP 500: Internal server error"),
    (404, b'{"code":404,"message":"LC bootstrap unavailable"}', "HTTP 404: LC bootstrap"),
    (503, b"<html>\n<body>Service\n Unavailable</body>\n</html>",
     "HTTP 503: <html> <body>Service Unavailable</body> </html>"),
    (400, b"", "HTTP 400"),
])
async def test_http_errors(serve: Serve, status: int, body: bytes, message: str) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    node.tamper = lambda what, reply: Reply(status, body, "text/html")
    err = await _client_error(serve, vec, node, "bootstrap", vec.trusted_root)
    assert isinstance(err, BeaconApiHttpError) and not isinstance(err, MalformedInputError)
    assert err.status == status and message in str(err)


async def test_unknown_block_is_a_404(serve: Serve) -> None:
    vec = load(CAPELLA)
    err = await _client_error(serve, vec, FakeNode(vec), "bootstrap", b"\x07" * 32)
    assert isinstance(err, BeaconApiHttpError) and err.status == 404


async def test_stalled_server_times_out(serve: Serve) -> None:
    vec = load(CAPELLA)
    node = FakeNode(vec)
    node.hang = True
    err = await _client_error(serve, vec, node, "finality_update", timeout=0.2)
    assert isinstance(err, BeaconApiTimeout) and "0.2 s" in str(err)


async def test_unreachable_server() -> None:
    vec = load(CAPELLA)
    async with BeaconApiClient("http://127.0.0.1:9", vec.config, timeout=5) as api:
        with pytest.raises(BeaconApiConnectionError, match="cannot reach"):
            await api.optimistic_update()


async def test_every_error_is_a_chain_error(serve: Serve) -> None:
    assert issubclass(BeaconApiError, ChainError)
    assert issubclass(MalformedResponseError, MalformedInputError)
    for cls in (InvalidPayloadError, TruncatedResponseError, ForkMismatchError,
                UnsupportedForkError, TooManyUpdatesError, UnexpectedObjectError):
        assert issubclass(cls, MalformedResponseError)


async def test_bad_request_arguments_are_refused_before_sending() -> None:
    vec = load(CAPELLA)
    async with BeaconApiClient("http://127.0.0.1:9", vec.config) as api:
        with pytest.raises(MalformedInputError, match="32 bytes"):
            await api.bootstrap(b"\x00" * 31)
        with pytest.raises(MalformedInputError, match="count"):
            await api.updates(0, 0)
        with pytest.raises(MalformedInputError, match="count"):
            await api.updates(0, MAX_REQUEST_LIGHT_CLIENT_UPDATES + 1)
    assert api.transfers == []


def test_decode_object_works_offline() -> None:
    vec = load(CAPELLA)
    body = json.dumps({"version": "capella", "data": vec.finality.to_json()}).encode()
    obj = decode_object(vec.config, "LightClientFinalityUpdate", body, encoding="json")
    assert _root(obj) == _root(vec.finality)
    ssz = decode_object(vec.config, "LightClientFinalityUpdate", vec.finality.encode(),
                        encoding="ssz", fork="capella")
    assert ssz == obj


# -- fetch_plan ------------------------------------------------------------------------------


@pytest.mark.parametrize(("finalized", "known", "current", "plan"), [
    (10, False, 10, UpdateRange(10, 1)),  # need this period's next committee
    (10, True, 10, None),  # have it: only finality/optimistic updates
    (10, True, 11, UpdateRange(11, 1)),
    (10, False, 11, UpdateRange(10, 2)),
    (10, True, 17, UpdateRange(11, 7)),  # a week offline: seven periods
    (0, False, 500, UpdateRange(0, MAX_REQUEST_LIGHT_CLIENT_UPDATES)),  # capped
    (5, True, 5 + 1 + 200, UpdateRange(6, 128)),
])
def test_fetch_plan(finalized: int, known: bool, current: int, plan: UpdateRange | None) -> None:
    assert fetch_plan(finalized, known, current) == plan


def test_fetch_plan_custom_cap_and_periods() -> None:
    plan = fetch_plan(3, False, 20, max_count=4)
    assert plan == UpdateRange(3, 4) and list(plan.periods) == [3, 4, 5, 6]


@pytest.mark.parametrize(("args", "message"), [
    ((5, False, 4), "before the finalized period"),
    ((-1, False, 4), "finalized_period"),
    ((1, False, 4.5), "current_period"),
    ((1, False, True), "current_period"),
])
def test_fetch_plan_refuses_impossible_states(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        fetch_plan(*args)
    with pytest.raises(PlanError, match="max_count"):
        fetch_plan(1, False, 4, max_count=MAX_REQUEST_LIGHT_CLIENT_UPDATES + 1)
