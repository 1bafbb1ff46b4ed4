"""Beacon API client for light-client data: untrusted bytes in, typed containers out.

A light client learns everything from a beacon node it does not trust (beacon-APIs
``apis/beacon/light_client/*.yaml``):

* ``GET /eth/v1/beacon/light_client/bootstrap/{block_root}`` -- the
  ``LightClientBootstrap`` of a trusted block;
* ``GET /eth/v1/beacon/light_client/updates?start_period=&count=`` -- the best
  ``LightClientUpdate`` of each sync-committee period in ``[start_period, start_period +
  count)``, consecutive by period, at most ``min(MAX_REQUEST_LIGHT_CLIENT_UPDATES, count)``;
* ``GET /eth/v1/beacon/light_client/finality_update`` and ``.../optimistic_update`` -- the
  latest ``LightClientFinalityUpdate`` / ``LightClientOptimisticUpdate``.

Each comes as JSON (``{"version": fork, "data": ...}``; the updates as a list of those) or as
SSZ (``Accept: application/octet-stream``; about half the bytes), the single objects with
the fork in the ``Eth-Consensus-Version`` header, the updates as a sequence of
``response_chunk``: a little-endian ``uint64`` length of the rest of the chunk, a 4-byte
``ForkDigest`` context, then the SSZ payload. The context is the digest at the *attested
header's* epoch (``compute_fork_digest`` of the fork in force there; from Fulu on with the
blob parameters, EIP-7892).

Nothing here is verified cryptographically -- that is the store's job
(:mod:`node.chain.beacon.store`) -- but nothing malformed gets through either. The client

* reads at most ``max_response_bytes`` of any response (refused from ``Content-Length`` or
  while streaming: never an unbounded read), with a timeout;
* decodes SSZ and JSON strictly (:mod:`node.chain.beacon.ssz`), with no trailing or missing
  chunk bytes;
* checks every fork claim against the network (:class:`~node.chain.beacon.config.NetworkConfig`):
  a digest or version the network does not have, a fork without light-client data, a fork
  named by the header or the digest that is not the fork of the object's own slot;
* checks the objects are the ones asked for: a bootstrap's header is the requested block,
  updates are consecutive periods inside the requested range and no more than ``count``.

Every failure is a one-line typed error: :class:`BeaconApiError` for transport and HTTP
(:class:`BeaconApiHttpError` with the status and the server's message,
:class:`BeaconApiTimeout`, :class:`BeaconApiConnectionError`,
:class:`ResponseTooLargeError`), and :class:`MalformedResponseError` -- also a
:class:`~node.chain.errors.MalformedInputError` -- for data that is not what it claims.

:func:`fetch_plan` says which update periods a store needs; :attr:`BeaconApiClient.transfers`
records the bytes each request downloaded. The decoders (:func:`decode_object`,
:func:`decode_updates`) are usable on their own, for files a ground station downlinked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp

from node.chain.beacon.config import NetworkConfig, UnknownForkDigestError
from node.chain.beacon.containers import (
    FORKS as LIGHT_CLIENT_FORKS,
)
from node.chain.beacon.containers import (
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    light_client_types,
)
from node.chain.beacon.ssz import Container, SszError
from node.chain.errors import ChainError, MalformedInputError

MAX_REQUEST_LIGHT_CLIENT_UPDATES = 128
"""Most updates one request may return (altair light-client ``p2p-interface.md``)."""

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""Default cap on one response body: a full 128-update range of mainnet updates is about
3.4 MB in SSZ and 7 MB in JSON; a single update about 26 KB (SSZ)."""

DEFAULT_TIMEOUT = 30.0
"""Default limit in seconds for one request, connection to last byte."""

SSZ_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"
CONSENSUS_VERSION = "Eth-Consensus-Version"

Encoding = Literal["ssz", "json"]
Kind = Literal["LightClientBootstrap", "LightClientUpdate", "LightClientFinalityUpdate",
               "LightClientOptimisticUpdate"]
C = TypeVar("C", bound=Container)

_ENDPOINTS = "/eth/v1/beacon/light_client"
_READ_CHUNK = 64 * 1024


# -- errors ---------------------------------------------------------------------------------


class BeaconApiError(ChainError):
    """A request to the beacon node failed or its answer was refused. ``endpoint`` is the
    API path asked (``light_client/updates``)."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


class BeaconApiHttpError(BeaconApiError):
    """The node answered with a non-2xx status; ``server_message`` is what it said."""

    def __init__(self, status: int, server_message: str, *, endpoint: str = "") -> None:
        self.status = status
        self.server_message = server_message
        said = f": {server_message}" if server_message else ""
        super().__init__(f"HTTP {status}{said}", endpoint=endpoint)


class BeaconApiTimeout(BeaconApiError):
    """The node did not answer completely within the timeout."""


class BeaconApiConnectionError(BeaconApiError):
    """The node could not be reached, or the connection broke mid-response."""


class ResponseTooLargeError(BeaconApiError):
    """The response is larger than the configured cap (nothing past the cap is read)."""


class MalformedResponseError(BeaconApiError, MalformedInputError):
    """The response is not a well-formed answer to the request (nothing was verified)."""


class InvalidPayloadError(MalformedResponseError):
    """The body (or a chunk of it) is not valid JSON or SSZ of the claimed type."""


class TruncatedResponseError(MalformedResponseError):
    """The chunked SSZ stream of an updates response ends inside a chunk."""


class ForkMismatchError(MalformedResponseError):
    """A fork digest or version that the network does not have, or that contradicts the
    fork of the object's own slot or another claim in the response."""


class UnsupportedForkError(MalformedResponseError):
    """A fork of the network that has no light-client data this client can read."""


class TooManyUpdatesError(MalformedResponseError):
    """More updates than requested (or than ``MAX_REQUEST_LIGHT_CLIENT_UPDATES``)."""


class UnexpectedObjectError(MalformedResponseError):
    """A well-formed object that is not the one requested (another block, another period)."""


# -- what to fetch ---------------------------------------------------------------------------


class PlanError(ChainError, ValueError):
    """:func:`fetch_plan` was given an impossible store state."""


@dataclass(frozen=True)
class UpdateRange:
    """Arguments of one ``light_client/updates`` request."""

    start_period: int
    count: int

    @property
    def periods(self) -> range:
        """The sync-committee periods the request covers."""
        return range(self.start_period, self.start_period + self.count)


def fetch_plan(finalized_period: int, next_sync_committee_known: bool, current_period: int,
               *, max_count: int = MAX_REQUEST_LIGHT_CLIENT_UPDATES) -> UpdateRange | None:
    """Which ``LightClientUpdate`` periods a store needs to reach ``current_period``, or
    ``None`` when it needs none (a finality/optimistic update suffices).

    A store knows the committee of its finalized period, and of the next one once an update
    gave it ``next_sync_committee``. It needs one update per period from the first period
    whose committee it lacks -- ``finalized_period``, or ``finalized_period + 1`` when the
    next committee is known -- through the current period (altair light-client
    ``light-client.md`` "Light client sync process"): ``count = current_period - start +
    1``, capped at ``max_count`` (``MAX_REQUEST_LIGHT_CLIENT_UPDATES``); after applying
    them, ask again.
    """
    for name, value in (("finalized_period", finalized_period),
                        ("current_period", current_period), ("max_count", max_count)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PlanError(f"{name} must be a non-negative integer, got {value!r}")
    if not 1 <= max_count <= MAX_REQUEST_LIGHT_CLIENT_UPDATES:
        raise PlanError(f"max_count must be 1..{MAX_REQUEST_LIGHT_CLIENT_UPDATES}, "
                        f"got {max_count}")
    if current_period < finalized_period:
        raise PlanError(f"current period {current_period} is before the finalized period "
                        f"{finalized_period}: the clock is behind the store")
    start = finalized_period + 1 if next_sync_committee_known else finalized_period
    if start > current_period:
        return None
    return UpdateRange(start, min(current_period - start + 1, max_count))


# -- decoding (pure: bytes and a network in, containers out) --------------------------------


def _slot_of(obj: Container) -> int:
    """The slot that decides an object's fork: the attested header's, or a bootstrap's
    header's (beacon-APIs: context/version "based on" that slot)."""
    if hasattr(obj, "attested_header"):
        return obj.attested_header.beacon.slot
    return obj.header.beacon.slot  # type: ignore[attr-defined]


def _light_client_fork(config: NetworkConfig, name: Any, *, what: str, endpoint: str) -> str:
    """Check that ``name`` is a fork of ``config`` with light-client data."""
    if not isinstance(name, str) or name not in {fork.name for fork in config.forks}:
        raise ForkMismatchError(f"{what} names fork {name!r}, which {config.name} does not "
                                f"have", endpoint=endpoint)
    if name not in LIGHT_CLIENT_FORKS:
        raise UnsupportedForkError(f"{what} names fork {name!r}, which has no light-client "
                                   f"data this client reads ({', '.join(LIGHT_CLIENT_FORKS)})",
                                   endpoint=endpoint)
    return name


def _check_slot_fork(config: NetworkConfig, obj: Container, fork: str, *, what: str,
                     endpoint: str) -> None:
    slot = _slot_of(obj)
    actual = config.fork_at_slot(slot).name
    if actual != fork:
        raise ForkMismatchError(f"{what} says {fork}, but slot {slot} is in {actual} on "
                                f"{config.name}", endpoint=endpoint)


def _container(config: NetworkConfig, fork: str, kind: Kind) -> type[Container]:
    return light_client_types(fork, config.preset).container(kind)


def _decode_ssz(cls: type[C], data: bytes, *, what: str, endpoint: str) -> C:
    try:
        return cls.decode(data)
    except SszError as exc:
        raise InvalidPayloadError(f"{what} is not a valid {cls.__qualname__}: {exc}",
                                  endpoint=endpoint) from None


def _decode_json_value(cls: type[C], data: Any, *, what: str, endpoint: str) -> C:
    try:
        return cls.from_json(data)
    except SszError as exc:
        raise InvalidPayloadError(f"{what} is not a valid {cls.__qualname__}: {exc}",
                                  endpoint=endpoint) from None


def _parse_json(body: bytes, *, endpoint: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayloadError(f"body is not JSON: {exc}", endpoint=endpoint) from None


def _envelope(item: Any, *, what: str, endpoint: str) -> tuple[Any, Any]:
    if not isinstance(item, dict) or set(item) - {"version", "data"} or "data" not in item:
        keys = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise InvalidPayloadError(f"{what} must be an object {{version, data}}, got {keys}",
                                  endpoint=endpoint)
    if "version" not in item:
        raise InvalidPayloadError(f"{what} has no version", endpoint=endpoint)
    return item["version"], item["data"]


def decode_object(config: NetworkConfig, kind: Kind, body: bytes, *, encoding: Encoding,
                  fork: str | None = None, endpoint: str = "") -> Container:
    """Decode a single light-client object (bootstrap, finality or optimistic update).

    SSZ needs ``fork`` (the ``Eth-Consensus-Version`` header); JSON names it in
    ``version`` and, if ``fork`` is also given, must agree with it. Either way the fork
    must be the network's fork at the object's slot.
    """
    if encoding == "ssz":
        if fork is None:
            raise ForkMismatchError(f"SSZ response without an {CONSENSUS_VERSION} header",
                                    endpoint=endpoint)
        name = _light_client_fork(config, fork, what=CONSENSUS_VERSION, endpoint=endpoint)
        obj = _decode_ssz(_container(config, name, kind), body, what="body", endpoint=endpoint)
        _check_slot_fork(config, obj, name, what=CONSENSUS_VERSION, endpoint=endpoint)
        return obj
    version, data = _envelope(_parse_json(body, endpoint=endpoint), what="body",
                              endpoint=endpoint)
    name = _light_client_fork(config, version, what="version", endpoint=endpoint)
    if fork is not None and fork != name:
        raise ForkMismatchError(f"{CONSENSUS_VERSION} {fork!r} contradicts version {name!r}",
                                endpoint=endpoint)
    obj = _decode_json_value(_container(config, name, kind), data, what="data",
                             endpoint=endpoint)
    _check_slot_fork(config, obj, name, what="version", endpoint=endpoint)
    return obj


def _chunks(body: bytes, *, limit: int, endpoint: str) -> list[tuple[bytes, bytes]]:
    """Split an updates SSZ body into (context, payload) chunks (beacon-APIs
    ``updates.yaml``: ``response_chunk_len`` u64 LE, then context and payload)."""
    chunks: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(body):
        index = len(chunks)
        if len(body) - pos < 8:
            raise TruncatedResponseError(f"chunk {index}: {len(body) - pos} trailing byte(s), "
                                         f"not a uint64 length", endpoint=endpoint)
        length = int.from_bytes(body[pos:pos + 8], "little")
        pos += 8
        if length < 4:
            raise InvalidPayloadError(f"chunk {index}: length {length} leaves no room for the "
                                      f"4-byte fork digest", endpoint=endpoint)
        if length > len(body) - pos:
            raise TruncatedResponseError(f"chunk {index}: length {length} but only "
                                         f"{len(body) - pos} byte(s) left", endpoint=endpoint)
        if index == limit:
            raise TooManyUpdatesError(f"more than the {limit} update(s) requested",
                                      endpoint=endpoint)
        chunks.append((body[pos:pos + 4], body[pos + 4:pos + length]))
        pos += length
    return chunks


def _decode_ssz_update(config: NetworkConfig, index: int, context: bytes, payload: bytes, *,
                       endpoint: str) -> LightClientUpdate:
    what = f"chunk {index}"
    try:
        fork = config.fork_by_digest(context)
    except UnknownForkDigestError as exc:
        raise ForkMismatchError(f"{what}: {exc}", endpoint=endpoint) from None
    name = _light_client_fork(config, fork.name, what=f"{what} fork digest 0x{context.hex()}",
                              endpoint=endpoint)
    update = _decode_ssz(_container(config, name, "LightClientUpdate"), payload,
                         what=f"{what} ({name} by its fork digest)", endpoint=endpoint)
    slot = _slot_of(update)
    expected = config.fork_digest_at_epoch(config.epoch_at_slot(slot))
    if context != expected:
        raise ForkMismatchError(f"{what}: fork digest 0x{context.hex()} ({name}), but the "
                                f"attested slot {slot} has 0x{expected.hex()} "
                                f"({config.fork_at_slot(slot).name})", endpoint=endpoint)
    return update  # type: ignore[return-value]


def decode_updates(config: NetworkConfig, body: bytes, *, encoding: Encoding,
                   max_count: int = MAX_REQUEST_LIGHT_CLIENT_UPDATES,
                   endpoint: str = "") -> list[LightClientUpdate]:
    """Decode an updates-by-range response: SSZ ``response_chunk`` s or a JSON list of
    ``{version, data}``, at most ``max_count`` of them, each of the fork its digest or
    version names, which must be the fork of its attested slot."""
    updates: list[LightClientUpdate] = []
    if encoding == "ssz":
        for index, (context, payload) in enumerate(_chunks(body, limit=max_count,
                                                           endpoint=endpoint)):
            updates.append(_decode_ssz_update(config, index, context, payload,
                                              endpoint=endpoint))
        return updates
    items = _parse_json(body, endpoint=endpoint)
    if not isinstance(items, list):
        raise InvalidPayloadError(f"body must be a JSON list, got {type(items).__name__}",
                                  endpoint=endpoint)
    if len(items) > max_count:
        raise TooManyUpdatesError(f"{len(items)} updates, more than the {max_count} requested",
                                  endpoint=endpoint)
    for index, item in enumerate(items):
        what = f"update {index}"
        version, data = _envelope(item, what=what, endpoint=endpoint)
        name = _light_client_fork(config, version, what=f"{what} version", endpoint=endpoint)
        update = _decode_json_value(_container(config, name, "LightClientUpdate"), data,
                                    what=f"{what} data", endpoint=endpoint)
        _check_slot_fork(config, update, name, what=f"{what} version", endpoint=endpoint)
        updates.append(update)  # type: ignore[arg-type]
    return updates


def check_update_periods(config: NetworkConfig, updates: Sequence[LightClientUpdate],
                         request: UpdateRange, *, endpoint: str = "") -> None:
    """The updates answer ``request``: their attested periods are consecutive, ascending
    and inside ``request.periods`` (beacon-APIs ``updates.yaml``)."""
    previous: int | None = None
    for index, update in enumerate(updates):
        period = config.sync_committee_period_at_slot(update.attested_header.beacon.slot)
        if period not in request.periods:
            raise UnexpectedObjectError(
                f"update {index} is for period {period}, outside the requested "
                f"{request.start_period}..{request.periods.stop - 1}", endpoint=endpoint)
        if previous is not None and period != previous + 1:
            raise UnexpectedObjectError(f"update {index} is for period {period} after period "
                                        f"{previous}: not consecutive", endpoint=endpoint)
        previous = period


def encode_updates_ssz(config: NetworkConfig, updates: Sequence[LightClientUpdate]) -> bytes:
    """The SSZ updates-by-range body for ``updates``: each as a ``response_chunk`` with the
    fork digest at its attested slot (what a beacon node serves; for tests and tools)."""
    out = bytearray()
    for update in updates:
        digest = config.fork_digest_at_epoch(config.epoch_at_slot(_slot_of(update)))
        payload = update.encode()
        out += (len(payload) + 4).to_bytes(8, "little") + digest + payload
    return bytes(out)


# -- the client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """What one request cost: ``body_bytes`` as received (``Accept-Encoding: identity``, so
    on the wire) and ``header_bytes`` of the status line and headers (HTTP/1.1 framing,
    excluding chunked-encoding overhead)."""

    endpoint: str
    status: int
    encoding: str  # "ssz", "json" or "" (error bodies)
    header_bytes: int
    body_bytes: int

    @property
    def total_bytes(self) -> int:
        """Bytes downloaded for this request."""
        return self.header_bytes + self.body_bytes


@dataclass
class _Response:
    status: int
    content_type: str
    consensus_version: str | None  # the Eth-Consensus-Version header
    body: bytes = field(repr=False)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _server_message(body: bytes) -> str:
    """The ``message`` of a beacon-APIs ``ErrorMessage`` body, or the body's text."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _one_line(body.decode("utf-8", errors="replace"))
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return _one_line(parsed["message"])
    return _one_line(json.dumps(parsed))


class BeaconApiClient:
    """An aiohttp client for a beacon node's light-client endpoints (see the module
    docstring). ``encoding="ssz"`` asks for SSZ and accepts JSON (falling back to it on
    HTTP 406); ``"json"`` asks for JSON only.

    Use as ``async with BeaconApiClient(url, config) as api: ...`` or call :meth:`close`.
    A ``session`` passed in is used and left open.
    """

    def __init__(self, base_url: str, config: NetworkConfig, *, encoding: Encoding = "ssz",
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 timeout: float = DEFAULT_TIMEOUT,
                 session: aiohttp.ClientSession | None = None) -> None:
        if encoding not in ("ssz", "json"):
            raise ValueError(f"encoding must be 'ssz' or 'json', not {encoding!r}")
        if max_response_bytes <= 0 or timeout <= 0:
            raise ValueError("max_response_bytes and timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.encoding: Encoding = encoding
        self.max_response_bytes = max_response_bytes
        self.timeout = timeout
        self.transfers: list[Transfer] = []
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> BeaconApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def bytes_received(self) -> int:
        """Bytes downloaded by all requests so far (headers and bodies)."""
        return sum(transfer.total_bytes for transfer in self.transfers)

    # -- endpoints -------------------------------------------------------------------------

    async def bootstrap(self, block_root: bytes) -> LightClientBootstrap:
        """``GET .../bootstrap/{block_root}``; the header must be that block."""
        if not isinstance(block_root, bytes) or len(block_root) != 32:
            raise MalformedInputError(f"block_root must be 32 bytes, got {block_root!r}")
        endpoint = "light_client/bootstrap"
        bootstrap = await self._single(endpoint, f"/bootstrap/0x{block_root.hex()}",
                                       "LightClientBootstrap")
        got = bootstrap.header.beacon.hash_tree_root()  # type: ignore[attr-defined]
        if got != block_root:
            raise UnexpectedObjectError(f"bootstrap is for block 0x{got.hex()}, not the "
                                        f"requested 0x{block_root.hex()}", endpoint=endpoint)
        return bootstrap  # type: ignore[return-value]

    async def updates(self, start_period: int, count: int) -> list[LightClientUpdate]:
        """``GET .../updates?start_period=&count=``: one update per period, consecutive, in
        ``[start_period, start_period + count)`` (see :func:`fetch_plan`)."""
        if not 1 <= count <= MAX_REQUEST_LIGHT_CLIENT_UPDATES or start_period < 0:
            raise MalformedInputError(f"need start_period >= 0 and 1 <= count <= "
                                      f"{MAX_REQUEST_LIGHT_CLIENT_UPDATES}, got "
                                      f"{start_period}, {count}")
        endpoint = "light_client/updates"
        response = await self._get(endpoint, "/updates",
                                   {"start_period": str(start_period), "count": str(count)})
        updates = decode_updates(self.config, response.body,
                                 encoding=self._encoding_of(response, endpoint),
                                 max_count=count, endpoint=endpoint)
        named = response.consensus_version
        forks = {self.config.fork_at_slot(_slot_of(update)).name for update in updates}
        if named is not None and updates and named not in forks:
            raise ForkMismatchError(f"{CONSENSUS_VERSION} {named!r} contradicts the updates' "
                                    f"fork digests ({', '.join(sorted(forks))})",
                                    endpoint=endpoint)
        check_update_periods(self.config, updates, UpdateRange(start_period, count),
                             endpoint=endpoint)
        return updates

    async def fetch(self, plan: UpdateRange | None) -> list[LightClientUpdate]:
        """The updates of a :func:`fetch_plan` result (none for ``None``)."""
        if plan is None:
            return []
        return await self.updates(plan.start_period, plan.count)

    async def finality_update(self) -> LightClientFinalityUpdate:
        """``GET .../finality_update``: the latest finalized header, signed."""
        return await self._single("light_client/finality_update", "/finality_update",
                                  "LightClientFinalityUpdate")  # type: ignore[return-value]

    async def optimistic_update(self) -> LightClientOptimisticUpdate:
        """``GET .../optimistic_update``: the latest attested header, signed."""
        return await self._single("light_client/optimistic_update", "/optimistic_update",
                                  "LightClientOptimisticUpdate")  # type: ignore[return-value]

    # -- transport -------------------------------------------------------------------------

    async def _single(self, endpoint: str, path: str, kind: Kind) -> Container:
        response = await self._get(endpoint, path)
        return decode_object(self.config, kind, response.body,
                             encoding=self._encoding_of(response, endpoint),
                             fork=response.consensus_version, endpoint=endpoint)

    def _encoding_of(self, response: _Response, endpoint: str) -> Encoding:
        if response.content_type == SSZ_TYPE and self.encoding == "ssz":
            return "ssz"
        if response.content_type == JSON_TYPE:
            return "json"
        raise InvalidPayloadError(f"unexpected Content-Type {response.content_type!r} "
                                  f"(asked for {self._accept(self.encoding)})",
                                  endpoint=endpoint)

    @staticmethod
    def _accept(encoding: Encoding) -> str:
        if encoding == "ssz":
            return f"{SSZ_TYPE};q=1.0,{JSON_TYPE};q=0.9"
        return JSON_TYPE

    async def _get(self, endpoint: str, path: str,
                   params: dict[str, str] | None = None) -> _Response:
        response = await self._request(endpoint, path, params, self.encoding)
        if response.status == 406 and self.encoding == "ssz":  # SSZ not offered: ask JSON
            response = await self._request(endpoint, path, params, "json")
        if not 200 <= response.status < 300:
            raise BeaconApiHttpError(response.status, _server_message(response.body),
                                     endpoint=endpoint)
        return response

    def _session_for_request(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _request(self, endpoint: str, path: str, params: dict[str, str] | None,
                       encoding: Encoding) -> _Response:
        headers = {"Accept": self._accept(encoding), "Accept-Encoding": "identity"}
        url = f"{self.base_url}{_ENDPOINTS}{path}"
        try:
            async with self._session_for_request().get(
                    url, params=params, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                return await self._read(endpoint, resp)
        except TimeoutError:
            raise BeaconApiTimeout(f"no complete answer within {self.timeout:g} s",
                                   endpoint=endpoint) from None
        except aiohttp.ClientPayloadError as exc:
            raise BeaconApiConnectionError(f"response cut off: {_one_line(str(exc))}",
                                           endpoint=endpoint) from None
        except aiohttp.ClientError as exc:
            raise BeaconApiConnectionError(f"cannot reach {self.base_url}: "
                                           f"{_one_line(str(exc) or type(exc).__name__)}",
                                           endpoint=endpoint) from None

    async def _read(self, endpoint: str, resp: aiohttp.ClientResponse) -> _Response:
        header_bytes = len(f"HTTP/1.1 {resp.status} {resp.reason or ''}\r\n") + 2 + sum(
            len(name) + len(value) + 4 for name, value in resp.raw_headers)
        content_type = resp.content_type if 200 <= resp.status < 300 else ""
        encoding = {SSZ_TYPE: "ssz", JSON_TYPE: "json"}.get(content_type, "")

        def record(body_bytes: int) -> None:
            self.transfers.append(Transfer(endpoint, resp.status, encoding, header_bytes,
                                           body_bytes))

        cap = self.max_response_bytes
        if resp.content_length is not None and resp.content_length > cap:
            record(0)
            raise ResponseTooLargeError(f"Content-Length {resp.content_length} exceeds the "
                                        f"{cap}-byte cap", endpoint=endpoint)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > cap:
                record(len(body))
                raise ResponseTooLargeError(f"body exceeds the {cap}-byte cap (stopped "
                                            f"reading at {len(body)})", endpoint=endpoint)
        record(len(body))
        return _Response(resp.status, resp.content_type, resp.headers.get(CONSENSUS_VERSION),
                         bytes(body))

