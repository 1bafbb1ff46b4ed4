"""A pool of untrusted JSON-RPC upstreams: one place for choosing, retrying and penalising.

:class:`UpstreamPool` implements :class:`~node.rpc.upstream_api.Upstream` over several named
endpoints (:class:`Endpoint`) with one aiohttp session:

* **Transport.** ``call`` sends one JSON-RPC request object, ``batch`` one JSON-RPC batch (an
  array; one HTTP request; answered by one upstream, never split), both answered by id
  (JSON-RPC 2.0 §6: a batch may be answered in any order). Requests ask ``Accept-Encoding:
  gzip`` and gzip answers are inflated here, chunk by chunk, so that ``max_answer_bytes``
  caps the *decoded* answer as well as the bytes on the wire (a gzip bomb stops at the cap;
  nothing past it is read). Each attempt runs under ``asyncio.timeout(timeout)``.
* **Retries.** A transport error, a timeout, HTTP 5xx or 429, any other HTTP status without
  a JSON-RPC answer, or an answer that is not well-formed JSON-RPC is a *failure*: the request
  is sent again to the next upstream (ones not yet tried first), at most ``attempts`` times
  in all, after an exponential backoff with jitter (``backoff * 2**(n-1)``, capped at
  ``max_backoff``, less up to ``jitter`` of it at random). A JSON-RPC error object *is* an
  answer (:attr:`Answer.error`): it is returned, not retried. An oversized answer is refused
  (:class:`AnswerTooLargeError`) and counted, not retried: every honest upstream would send
  the same bytes again over the link; ask for less.
* **Capabilities.** :meth:`UpstreamPool.probe` asks every upstream, in one cheap batch, for
  ``eth_chainId`` and calls ``eth_getProof``, ``eth_createAccessList`` and
  ``eth_getBlockReceipts`` (:data:`PROBED_METHODS`); a "method not found" answer (-32601,
  EIP-1474's -32004, or such words) means *not served*, any other answer means served. With
  ``need=method``, ``call``/``batch`` choose only among upstreams known to serve it (probing
  the ones not probed yet). A configured ``chain_id`` excludes for good an upstream on
  another chain.
* **Penalties.** A part that catches a lie calls :meth:`UpstreamPool.penalize`: the answering
  upstream's score rises by ``Penalties.lie``, a warning is logged and the lie is counted by
  kind (the text of ``what`` before its first ``:``). Failures add ``Penalties.failure``,
  which halves every ``failure_half_life`` seconds. Choice prefers the lowest score, then the
  lower latency, then round robin. A lie that brings the score to ``Penalties.threshold``
  excludes the upstream -- for ``exclude_for`` seconds, after which it is back on probation
  one lie below the threshold, or for good (``exclude_for=None``). Failures alone never
  exclude: an outage is not a lie.

:meth:`UpstreamPool.state` reports each upstream as a JSON-able dict (``orbital_status``),
with URLs stripped of credentials (:func:`public_url`). The pool starts no background task;
``async with UpstreamPool(...)`` closes its session.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import re
import time
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from node.rpc.upstream_api import Answer, UpstreamError

log = logging.getLogger(__name__)

PROBED_METHODS: tuple[str, ...] = ("eth_getProof", "eth_createAccessList",
                                   "eth_getBlockReceipts")
"""Methods not every upstream serves, and that :meth:`UpstreamPool.probe` asks about."""

_ZERO_ADDRESS = "0x" + "00" * 20
_PROBE_CALLS: tuple[tuple[str, list[Any]], ...] = (
    ("eth_chainId", []),
    ("eth_getProof", [_ZERO_ADDRESS, [], "latest"]),  # one account proof, no slots
    ("eth_createAccessList", [{"from": _ZERO_ADDRESS, "to": _ZERO_ADDRESS, "data": "0x"},
                              "latest"]),
    ("eth_getBlockReceipts", ["0x0"]),  # genesis: no transactions, no receipts
)

DEFAULT_TIMEOUT = 30.0
"""Seconds one attempt (connection to last byte) may take."""
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""Cap on one decoded answer (a batch of ~1,000 mainnet proofs fits)."""

_READ_CHUNK = 64 * 1024
_LATENCY_RESOLUTION = 0.01  # latencies within the same 10 ms tie (then round robin)
_MAX_KINDS = 64  # distinct lie kinds counted per upstream; more go to "other"
_NOT_FOUND_CODES = frozenset({-32601, -32004})  # JSON-RPC 2.0 §5.1; EIP-1474 "not supported"
_NOT_FOUND_WORDS = re.compile(
    r"method\b.{0,60}\b(not (found|supported|available|exist|implemented|allowed|enabled)"
    r"|does not exist|is not available|unsupported|unavailable)"
    r"|unsupported method|unknown method|no such method",
    re.IGNORECASE)
_SECRETISH = re.compile(r"[A-Za-z0-9_\-]{16,}")  # a path segment that looks like an API key


# -- errors -----------------------------------------------------------------------------------


class AllUpstreamsExcludedError(UpstreamError):
    """Every upstream (that could serve the request) is excluded for its lies."""


class MethodNotServedError(UpstreamError):
    """No upstream is known to serve the method named by ``need=``."""


class RetriesExhaustedError(UpstreamError):
    """Every attempt failed (transport, timeout, HTTP status or malformed answer)."""


class AnswerTooLargeError(UpstreamError):
    """An answer passed ``max_answer_bytes`` (nothing past the cap was read)."""


class _Failure(Exception):
    """One attempt failed; ``kind`` is the counter it goes to."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


# -- configuration ----------------------------------------------------------------------------


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment, and with path segments that look like
    API keys (16+ token characters, e.g. ``/v3/<key>``) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    path = "/".join("***" if _SECRETISH.fullmatch(seg) else seg for seg in parts.path.split("/"))
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass(frozen=True)
class Endpoint:
    """One upstream: the name it goes by in answers, logs and status, and its URL (which may
    hold credentials; they never leave this object except in the request itself)."""

    name: str
    url: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"upstream name must be non-empty without spaces: {self.name!r}")
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https") or \
                not urllib.parse.urlsplit(self.url).hostname:
            raise ValueError(f"upstream {self.name}: URL must be http(s)://host..., got "
                             f"{public_url(self.url)!r}")

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``name=url``, or a bare ``url`` (named by its host and port)."""
        if text.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(text)
            name = parts.hostname or ""
            if parts.port is not None:
                name = f"{name}:{parts.port}"
            return cls(name, text)
        name, sep, url = text.partition("=")
        if not sep:
            raise ValueError("upstream must be 'name=http(s)://...' or a URL")
        return cls(name.strip(), url.strip())


@dataclass(frozen=True)
class Penalties:
    """How lies and failures cost (see the module docstring)."""

    lie: float = 10.0
    """Score added by one lie (:meth:`UpstreamPool.penalize`)."""
    failure: float = 1.0
    """Score added by one failed attempt (transport, timeout, HTTP status, malformed)."""
    failure_half_life: float = 60.0
    """Seconds after which a failure's cost has halved."""
    threshold: float = 30.0
    """A lie that brings the score to this excludes the upstream."""
    exclude_for: float | None = 3600.0
    """Seconds an upstream stays excluded; ``None``: for good."""

    def __post_init__(self) -> None:
        if self.lie <= 0 or self.failure < 0 or self.failure_half_life <= 0 \
                or self.threshold <= 0:
            raise ValueError("penalties: lie, failure_half_life and threshold must be "
                             "positive, failure non-negative")
        if self.exclude_for is not None and self.exclude_for <= 0:
            raise ValueError("penalties: exclude_for must be positive or None (for good)")


@dataclass(frozen=True)
class ProbeResult:
    """What :meth:`UpstreamPool.probe` learnt about one upstream: ``capabilities`` maps each
    of :data:`PROBED_METHODS` to whether it is served; ``error`` says why the probe failed
    (then nothing was learnt)."""

    upstream: str
    chain_id: int | None
    capabilities: dict[str, bool]
    error: str | None = None


# -- one upstream's book-keeping --------------------------------------------------------------


@dataclass
class _Upstream:
    endpoint: Endpoint
    index: int
    public_url: str
    capabilities: dict[str, bool] | None = None  # None: not probed (or the probe failed)
    probed_at: float | None = None
    chain_id: int | None = None
    lie_score: float = 0.0
    failure_score: float = 0.0
    failure_at: float = 0.0
    excluded_until: float | None = None  # clock time; math.inf: for good
    exclusion_reason: str = ""
    lies: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    answers: int = 0
    bytes_received: int = 0  # on the wire (compressed), HTTP bodies only
    bytes_sent: int = 0  # request bodies
    latency: float | None = None  # last, seconds
    latency_avg: float | None = None  # exponentially weighted

    @property
    def name(self) -> str:
        return self.endpoint.name

    def failure_now(self, now: float, half_life: float) -> float:
        return self.failure_score * 0.5 ** (max(0.0, now - self.failure_at) / half_life)


class UpstreamPool:
    """Several untrusted JSON-RPC upstreams behind the :class:`Upstream` interface (see the
    module docstring).

    ``clock`` (seconds, monotonic), ``sleep`` and ``rng`` are injectable for tests; ``session``,
    when given, is used (it must not decompress: ``auto_decompress=False``) and left open.
    """

    def __init__(self, endpoints: Sequence[Endpoint | str], *,
                 timeout: float = DEFAULT_TIMEOUT,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
                 attempts: int = 4, backoff: float = 0.25, max_backoff: float = 8.0,
                 jitter: float = 0.5, penalties: Penalties | None = None,
                 chain_id: int | None = None, probe_retry: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        parsed = [e if isinstance(e, Endpoint) else Endpoint.parse(e) for e in endpoints]
        if not parsed:
            raise ValueError("an upstream pool needs at least one upstream")
        names = [e.name for e in parsed]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique: {', '.join(names)}")
        if timeout <= 0 or max_answer_bytes <= 0 or attempts < 1:
            raise ValueError("timeout and max_answer_bytes must be positive, attempts >= 1")
        if backoff < 0 or max_backoff < 0 or not 0 <= jitter <= 1 or probe_retry < 0:
            raise ValueError("backoff, max_backoff and probe_retry must be >= 0, jitter 0..1")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.penalties = penalties or Penalties()
        self.chain_id = chain_id
        self.probe_retry = probe_retry
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = session
        self._own_session = session is None
        self._ups = [_Upstream(e, i, public_url(e.url)) for i, e in enumerate(parsed)]
        self._by_name = {u.name: u for u in self._ups}
        self._ids = itertools.count(1)
        self._turn = itertools.count()
        self._probe_lock = asyncio.Lock()

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this pool opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def names(self) -> list[str]:
        """The upstreams' names, in configured order."""
        return [u.name for u in self._ups]

    # -- the Upstream interface ----------------------------------------------------------------

    async def call(self, method: str, params: Sequence[Any], *,
                   need: str | None = None) -> Answer:
        """One JSON-RPC call (one request object). ``need``: only upstreams serving that
        method may answer. Raises :class:`UpstreamError` when none can."""
        call_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": list(params)}
        up, reply = await self._send(body, method, need)
        return self._answer(up, reply, method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *,
                    need: str | None = None) -> list[Answer]:
        """Several calls in one JSON-RPC batch (one HTTP request, one upstream), answered in
        order. ``need`` as for :meth:`call`."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)]
        what = f"batch of {len(calls)} ({calls[0][0]}, ...)" if len(calls) > 1 else calls[0][0]
        up, replies = await self._send(body, what, need)
        if isinstance(replies, dict):  # one error object for the whole batch: it answered
            return [self._answer(up, replies, method) for method, _ in calls]
        by_id = {r.get("id"): r for r in replies}
        return [self._answer(up, by_id[i], m) for i, (m, _) in zip(ids, calls, strict=True)]

    def penalize(self, answer: Answer, what: str) -> None:
        """The upstream that gave ``answer`` lied about ``what``: add ``Penalties.lie`` to its
        score, count it (kind: ``what`` before its first ``:``), log one warning, and exclude
        it if its score reaches the threshold."""
        up = self._by_name.get(answer.upstream)
        if up is None:
            raise ValueError(f"penalize: no upstream named {answer.upstream!r} in this pool")
        what = " ".join(str(what).split()) or "unspecified"
        kind = what.split(":", 1)[0].strip() or "unspecified"
        if kind not in up.lies and len(up.lies) >= _MAX_KINDS:
            kind = "other"
        up.lies[kind] = up.lies.get(kind, 0) + 1
        now = self._clock()
        self._readmit_if_due(up, now)
        up.lie_score += self.penalties.lie
        score = self._score(up, now)
        excluded = ""
        if up.excluded_until is None and score >= self.penalties.threshold:
            for_ = self.penalties.exclude_for
            up.excluded_until = math.inf if for_ is None else now + for_
            lies = sum(up.lies.values())
            up.exclusion_reason = f"{lies} lie{'' if lies == 1 else 's'}, score {score:g}"
            excluded = "; excluded for good" if for_ is None else f"; excluded for {for_:g} s"
        log.warning("upstream %s lied: %s (score %g of %g%s)", up.name, what, score,
                    self.penalties.threshold, excluded)

    # -- capabilities ---------------------------------------------------------------------------

    async def probe(self, names: Iterable[str] | None = None) -> dict[str, ProbeResult]:
        """Ask each upstream (all, or those ``names``), concurrently, for its chain id and
        whether it serves :data:`PROBED_METHODS`. A failed probe leaves what was known."""
        ups = self._ups if names is None else [self._upstream(n) for n in names]
        async with self._probe_lock:
            return await self._probe(ups)

    def capable(self, method: str) -> list[str]:
        """Names of the upstreams that may be asked ``method`` now, preferred first: not
        excluded and, for :data:`PROBED_METHODS`, known (probed) to serve it."""
        now = self._clock()
        return [u.name for u in self._ordered(now) if self._serves(u, method)
                and not self._excluded(u, now)]

    # -- status ---------------------------------------------------------------------------------

    def reachable(self) -> bool:
        """Always tried: a pool learns that an upstream is down by calling it."""
        return True

    def state(self) -> list[dict[str, Any]]:
        """Each upstream as a JSON-able dict, in configured order (for ``orbital_status``)."""
        now = self._clock()
        out = []
        for u in self._ups:
            excluded = self._excluded(u, now)
            until = u.excluded_until
            out.append({
                "name": u.name,
                "url": u.public_url,
                "chain_id": u.chain_id,
                "capabilities": dict(u.capabilities) if u.capabilities is not None else None,
                "score": round(self._score(u, now), 3),
                "lies": dict(u.lies),
                "failures": dict(u.failures),
                "excluded": excluded,
                "excluded_for_good": excluded and until == math.inf,
                "excluded_seconds_left": (round(until - now, 3) if excluded and until is not None
                                          and until != math.inf else None),
                "exclusion_reason": u.exclusion_reason if excluded else None,
                "requests": u.requests,
                "answers": u.answers,
                "bytes_received": u.bytes_received,
                "bytes_sent": u.bytes_sent,
                "latency": u.latency,
            })
        return out

    # -- choosing -------------------------------------------------------------------------------

    def _upstream(self, name: str) -> _Upstream:
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"no upstream named {name!r} in this pool") from None

    def _score(self, up: _Upstream, now: float) -> float:
        return up.lie_score + up.failure_now(now, self.penalties.failure_half_life)

    def _readmit_if_due(self, up: _Upstream, now: float) -> None:
        """An exclusion that has run out ends on probation, one lie below the threshold."""
        if up.excluded_until is not None and now >= up.excluded_until:
            up.excluded_until = None
            up.exclusion_reason = ""
            up.lie_score = min(up.lie_score,
                               max(0.0, self.penalties.threshold - self.penalties.lie))
            log.info("upstream %s readmitted on probation", up.name)

    def _excluded(self, up: _Upstream, now: float) -> bool:
        self._readmit_if_due(up, now)
        return up.excluded_until is not None

    @staticmethod
    def _serves(up: _Upstream, method: str | None) -> bool:
        if method is None or method not in PROBED_METHODS:
            return True
        return up.capabilities is not None and up.capabilities.get(method, False)

    def _ordered(self, now: float, tried: dict[str, int] | None = None) -> list[_Upstream]:
        """Upstreams by preference: fewest tries in this request, lowest score (to 0.01),
        lowest latency (to 10 ms), then round robin."""
        turn = next(self._turn)
        n = len(self._ups)

        def key(u: _Upstream) -> tuple[int, float, float, int]:
            latency = u.latency_avg or 0.0
            return ((tried or {}).get(u.name, 0), round(self._score(u, now), 2),
                    math.floor(latency / _LATENCY_RESOLUTION), (u.index - turn) % n)

        return sorted(self._ups, key=key)

    async def _candidates(self, need: str | None) -> list[_Upstream]:
        if need in PROBED_METHODS:
            now = self._clock()
            due = [u for u in self._ups if u.capabilities is None and not self._excluded(u, now)
                   and (u.probed_at is None or now - u.probed_at >= self.probe_retry)]
            if due:
                async with self._probe_lock:
                    due = [u for u in due if u.capabilities is None]
                    if due:
                        await self._probe(due)
        now = self._clock()
        serving = [u for u in self._ups if self._serves(u, need)]
        if not serving:
            said = ", ".join(f"{u.name}: " + ("not probed" if u.capabilities is None
                                              else "not served") for u in self._ups)
            raise MethodNotServedError(f"no upstream serves {need} ({said})")
        usable = [u for u in serving if not self._excluded(u, now)]
        if not usable:
            raise AllUpstreamsExcludedError(
                f"every upstream{' serving ' + need if need else ''} is excluded: "
                + "; ".join(f"{u.name} ({u.exclusion_reason}, "
                            + ("for good" if u.excluded_until == math.inf
                               else f"{u.excluded_until - now:.0f} s left") + ")"
                            for u in serving))
        return usable

    def _delay(self, retry: int) -> float:
        """Backoff before retry number ``retry`` (1, 2, ...), with jitter."""
        base = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return base * (1.0 - self.jitter * self._rng.random())

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, body: Any, what: str, need: str | None) -> tuple[_Upstream, Any]:
        """Send ``body`` until an upstream answers it well-formed, or raise."""
        tried: dict[str, int] = {}
        errors: list[str] = []
        for attempt in range(1, self.attempts + 1):
            usable = {u.name for u in await self._candidates(need)}
            up = next(u for u in self._ordered(self._clock(), tried) if u.name in usable)
            tried[up.name] = tried.get(up.name, 0) + 1
            try:
                return up, await self._exchange(up, body)
            except _Failure as failure:
                self._fail(up, failure)
                errors.append(f"{up.name}: {failure}")
                log.debug("upstream %s failed %s (attempt %d of %d): %s", up.name, what,
                          attempt, self.attempts, failure)
                if failure.kind == "oversized":
                    raise AnswerTooLargeError(f"{what}: upstream {up.name}: {failure}") from None
            if attempt < self.attempts:
                await self._sleep(self._delay(attempt))
        raise RetriesExhaustedError(f"no upstream answered {what} in {self.attempts} attempts: "
                                    + "; ".join(errors[-4:]))

    def _fail(self, up: _Upstream, failure: _Failure) -> None:
        now = self._clock()
        up.failures[failure.kind] = up.failures.get(failure.kind, 0) + 1
        up.failure_score = up.failure_now(now, self.penalties.failure_half_life) \
            + self.penalties.failure
        up.failure_at = now

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def _exchange(self, up: _Upstream, body: Any) -> Any:
        """One HTTP request to ``up``: the decoded, well-formed JSON-RPC reply (a dict, or a
        list of dicts matching a batch's ids), or :class:`_Failure`."""
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Accept-Encoding": "gzip"}
        data = json.dumps(body, separators=(",", ":")).encode()
        up.requests += 1
        up.bytes_sent += len(data)
        started = self._clock()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session_now().post(up.endpoint.url, data=data,
                                                    headers=headers,
                                                    allow_redirects=False) as resp:
                    status = resp.status
                    if status == 429 or status >= 500:
                        raise _Failure("http_429" if status == 429 else "http_5xx",
                                       f"HTTP {status}")
                    raw = await self._read(up, resp)
        except TimeoutError:
            raise _Failure("timeout", f"no complete answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            text = self._redact(up, str(exc) or type(exc).__name__)
            raise _Failure("connection", f"{type(exc).__name__}: {text}") from None
        try:
            reply = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            kind = "malformed" if 200 <= status < 300 else "http_status"
            raise _Failure(kind, f"HTTP {status}, answer is not JSON") from None
        try:
            _check_reply(body, reply)
        except _Failure as failure:
            if not 200 <= status < 300:
                raise _Failure("http_status",
                               f"HTTP {status} without a JSON-RPC answer") from None
            raise failure from None
        latency = self._clock() - started
        up.latency = latency
        up.latency_avg = latency if up.latency_avg is None else \
            0.7 * up.latency_avg + 0.3 * latency
        return reply

    async def _read(self, up: _Upstream, resp: aiohttp.ClientResponse) -> bytes:
        """The body, inflated if gzip, never more than ``max_answer_bytes`` of either."""
        cap = self.max_answer_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise _Failure("oversized", f"Content-Length {resp.content_length} exceeds the "
                                        f"{cap}-byte cap")
        coding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip"):
            inflate: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding in ("", "identity"):
            inflate = None
        else:
            raise _Failure("malformed", f"Content-Encoding {coding!r} was not asked for")
        out = bytearray()
        wire = 0
        try:
            async for chunk in resp.content.iter_chunked(_READ_CHUNK):
                wire += len(chunk)
                up.bytes_received += len(chunk)
                if inflate is None:
                    out += chunk
                else:
                    out += inflate.decompress(chunk, cap + 1 - len(out))
                    if inflate.unconsumed_tail:
                        out += b"\0"  # more output is waiting: past the cap
                if len(out) > cap or wire > cap:
                    raise _Failure("oversized", f"answer exceeds the {cap}-byte cap (stopped "
                                                f"after {wire} bytes received)")
            if inflate is not None:
                out += inflate.flush()
                if not inflate.eof:
                    raise _Failure("malformed", "gzip answer cut off")
        except zlib.error as exc:
            raise _Failure("malformed", f"gzip answer does not inflate: {exc}") from None
        if len(out) > cap:
            raise _Failure("oversized", f"answer exceeds the {cap}-byte cap")
        return bytes(out)

    def _redact(self, up: _Upstream, text: str) -> str:
        """``text`` with the URL and its secrets replaced by the public URL, on one line."""
        url = up.endpoint.url
        parts = urllib.parse.urlsplit(url)
        secrets = [url, url.rstrip("/"), parts.query, parts.password or "", parts.username or "",
                   *(seg for seg in parts.path.split("/") if _SECRETISH.fullmatch(seg))]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, up.public_url if secret.startswith("http") else "***")
        return " ".join(text.split())

    # -- answers --------------------------------------------------------------------------------

    def _answer(self, up: _Upstream, reply: dict[str, Any], method: str) -> Answer:
        up.answers += 1
        error = reply.get("error")
        if error is not None:
            if method in PROBED_METHODS and _not_served(error) and up.capabilities is not None:
                up.capabilities[method] = False  # learnt from a real answer
            return Answer(None, up.name, error)
        return Answer(reply.get("result"), up.name, None)

    async def _probe(self, ups: Sequence[_Upstream]) -> dict[str, ProbeResult]:
        results: dict[str, ProbeResult] = {}

        async def one(up: _Upstream) -> None:
            results[up.name] = await self._probe_one(up)

        async with asyncio.TaskGroup() as group:
            for up in ups:
                group.create_task(one(up))
        return {u.name: results[u.name] for u in ups}

    async def _probe_one(self, up: _Upstream) -> ProbeResult:
        up.probed_at = self._clock()
        ids = [next(self._ids) for _ in _PROBE_CALLS]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in zip(ids, _PROBE_CALLS, strict=True)]
        try:
            replies = await self._exchange(up, body)
        except _Failure as failure:
            self._fail(up, failure)
            log.info("upstream %s: probe failed: %s", up.name, failure)
            return ProbeResult(up.name, up.chain_id, dict(up.capabilities or {}), str(failure))
        if isinstance(replies, dict):
            message = f"answered the probe batch with error {replies['error'].get('code')}"
            self._fail(up, _Failure("malformed", message))
            return ProbeResult(up.name, up.chain_id, dict(up.capabilities or {}), message)
        by_id = {r.get("id"): r for r in replies}
        up.answers += len(ids)
        chain_reply = by_id[ids[0]]
        chain_id = _quantity(chain_reply.get("result"))
        capabilities = {method: not _not_served(by_id[i].get("error"))
                        for i, (method, _) in zip(ids[1:], _PROBE_CALLS[1:], strict=True)}
        up.capabilities = capabilities
        up.chain_id = chain_id
        if self.chain_id is not None and chain_id != self.chain_id:
            up.excluded_until = math.inf
            up.exclusion_reason = (f"chain id {'unknown' if chain_id is None else chain_id}, "
                                   f"expected {self.chain_id}")
            log.warning("upstream %s excluded for good: %s", up.name, up.exclusion_reason)
        return ProbeResult(up.name, chain_id, dict(capabilities))


# -- helpers ----------------------------------------------------------------------------------


def _check_reply(body: Any, reply: Any) -> None:
    """``reply`` is well-formed JSON-RPC 2.0 for ``body`` (§5, §6), or :class:`_Failure`."""
    if isinstance(body, dict):
        if not isinstance(reply, dict):
            raise _Failure("malformed", f"a call answered with {type(reply).__name__}")
        _check_one(reply, {body["id"], None})
        return
    if isinstance(reply, dict):  # one error for the whole batch (id null), e.g. too large
        _check_one(reply, {None})
        if reply.get("error") is None:
            raise _Failure("malformed", "a batch answered with one result")
        return
    if not isinstance(reply, list):
        raise _Failure("malformed", f"a batch answered with {type(reply).__name__}")
    wanted = [call["id"] for call in body]
    got = []
    for item in reply:
        if not isinstance(item, dict):
            raise _Failure("malformed", f"a batch answer holds {type(item).__name__}")
        _check_one(item, set(wanted))
        got.append(item.get("id"))
    if sorted(got) != sorted(wanted):
        raise _Failure("malformed", f"a batch of {len(wanted)} answered with ids "
                                    f"that do not match ({len(got)} answers)")


def _check_one(reply: dict[str, Any], ids: set[Any]) -> None:
    call_id = reply.get("id")
    if call_id not in ids:
        raise _Failure("malformed", f"answer id {str(call_id)[:40]!r} was not asked")
    if "result" not in reply and "error" not in reply:
        raise _Failure("malformed", "answer has neither result nor error")
    error = reply.get("error")
    if error is not None and not (isinstance(error, dict) and "code" in error):
        raise _Failure("malformed", "answer error is not a JSON-RPC error object")
    if error is None and "result" not in reply:
        raise _Failure("malformed", "answer has neither result nor error")
    if call_id is None and error is None:
        raise _Failure("malformed", "a result with id null")


def _not_served(error: Any) -> bool:
    """A JSON-RPC error saying the method is not served ("method not found" and kin)."""
    if not isinstance(error, dict):
        return False
    if error.get("code") in _NOT_FOUND_CODES:
        return True
    return bool(_NOT_FOUND_WORDS.search(str(error.get("message", ""))))


def _quantity(value: Any) -> int | None:
    """A JSON-RPC quantity (``0x``-hex) as an int, or ``None``."""
    if isinstance(value, str) and value.startswith("0x") and len(value) > 2:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None
