"""The node's Prometheus metrics (``prometheus_client``) and the endpoint that serves them.

One :class:`NodeMetrics` per node, each with its own registry (so several nodes, or tests,
can live in one process). The node calls its ``record_*`` methods; the head's age is
computed at scrape time from the injected clock. :func:`serve_metrics` serves
``GET /metrics`` in the Prometheus text format from an aiohttp runner on the asyncio loop
(the node's ``TaskGroup`` owns it; close it with ``await runner.cleanup()``).

Metrics (all prefixed ``orbital_``)::

    head_number                      verified head block number
    head_timestamp_seconds           its timestamp
    head_age_seconds                 now - its timestamp (at scrape time)
    verifications_total{kind}        answers proven (kind: header, account, storage, ...)
    refusals_total{kind}             answers refused (kind: what failed)
    upstream_lies_total{upstream,kind}  provably false answers by upstream
    outbox_entries{state}            outbox depth by state (queued, sent, included, ...)
    link_bytes_total{direction}      bytes over the link (up: to the ground, down: from it)
    contacts_total                   contacts (AOS) seen
    in_contact                       1 during a contact, else 0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

OUTBOX_STATES = ("queued", "sent", "included", "final", "dropped", "expired")
DIRECTIONS = ("up", "down")


class NodeMetrics:
    """The node's metrics; ``clock`` gives UNIX seconds (injected in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._head_timestamp: float | None = None
        r = self.registry
        self.head_number = Gauge("orbital_head_number", "Verified head block number",
                                 registry=r)
        self.head_timestamp = Gauge("orbital_head_timestamp_seconds",
                                    "Verified head block timestamp (UNIX seconds)", registry=r)
        self.head_age = Gauge("orbital_head_age_seconds",
                              "Seconds since the verified head's timestamp (NaN before one)",
                              registry=r)
        self.head_age.set_function(self._head_age)
        self.verifications = Counter("orbital_verifications", "Answers proven, by kind",
                                     ["kind"], registry=r)
        self.refusals = Counter("orbital_refusals", "Answers refused, by kind", ["kind"],
                                registry=r)
        self.lies = Counter("orbital_upstream_lies", "Provably false upstream answers",
                            ["upstream", "kind"], registry=r)
        self.outbox = Gauge("orbital_outbox_entries", "Outbox entries by state", ["state"],
                            registry=r)
        self.link_bytes = Counter("orbital_link_bytes", "Bytes over the link (up: to the "
                                  "ground, down: from it)", ["direction"], registry=r)
        self.contacts = Counter("orbital_contacts", "Contacts (AOS) seen", registry=r)
        self.in_contact = Gauge("orbital_in_contact", "1 during a contact, else 0",
                                registry=r)
        for state in OUTBOX_STATES:
            self.outbox.labels(state).set(0)
        for direction in DIRECTIONS:
            self.link_bytes.labels(direction)

    def _head_age(self) -> float:
        if self._head_timestamp is None:
            return float("nan")
        return max(0.0, self._clock() - self._head_timestamp)

    def record_head(self, number: int, timestamp: float) -> None:
        """A new verified head."""
        self.head_number.set(number)
        self.head_timestamp.set(timestamp)
        self._head_timestamp = float(timestamp)

    def record_verification(self, kind: str) -> None:
        self.verifications.labels(kind).inc()

    def record_refusal(self, kind: str) -> None:
        self.refusals.labels(kind).inc()

    def record_lie(self, upstream: str, kind: str) -> None:
        """``upstream`` (its name, never its URL) was caught in a lie of ``kind``."""
        self.lies.labels(upstream, kind).inc()

    def record_outbox(self, depths: Mapping[str, int]) -> None:
        """The outbox's entry count per state (states not given count 0)."""
        for state in {*OUTBOX_STATES, *depths}:
            self.outbox.labels(state).set(depths.get(state, 0))

    def record_bytes(self, up: int = 0, down: int = 0) -> None:
        """Bytes sent to the ground (``up``) and received from it (``down``)."""
        if up < 0 or down < 0:
            raise ValueError(f"byte counts must be >= 0, got up={up} down={down}")
        self.link_bytes.labels("up").inc(up)
        self.link_bytes.labels("down").inc(down)

    def record_contact(self, active: bool) -> None:
        """AOS (``True``: counts a contact) or LOS (``False``)."""
        if active:
            self.contacts.inc()
        self.in_contact.set(1 if active else 0)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def metrics_app(metrics: NodeMetrics) -> web.Application:
    """An aiohttp app serving ``GET /metrics``."""
    async def handle(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app


async def serve_metrics(metrics: NodeMetrics, host: str, port: int
                        ) -> tuple[web.AppRunner, str]:
    """Start serving ``/metrics`` on ``host:port`` (0: any free port); returns the runner
    (``await runner.cleanup()`` stops it) and the URL of the endpoint."""
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}/metrics"
