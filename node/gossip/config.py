"""Gossip settings: every py-libp2p default we depend on, restated (DESIGN.md, "facts learnt
the hard way").

py-libp2p's defaults are unsafe or lossy for us: heartbeat 120 s (we use 1 s), spam
protection at 10 msg/s per sender per topic, own publishes included (we raise it to 500), an
outgoing per-peer queue of 32 RPCs that drops silently (hence ``publish_rate`` /
``publish_burst`` / ``queue_high_water``, see :mod:`node.gossip.host`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from libp2p.custom_types import TProtocol

from node.gossip.scoring import ScoringConfig

TOPIC = "orbital/attestations/1"
GOSSIPSUB_PROTOCOLS = (TProtocol("/meshsub/1.2.0"), TProtocol("/meshsub/1.1.0"),
                       TProtocol("/meshsub/1.0.0"))
MAX_MESSAGE_BYTES = 4096
"""Largest message a node stores, delivers or serves over sync."""


class GossipError(Exception):
    """The gossip host failed to start, is stopped, or an operation on it failed."""


class UndecidedError(GossipError):
    """Our own validator cannot decide on a message now (e.g. the registry is unreachable)."""


@dataclass(frozen=True)
class GossipConfig:
    """Explicit gossipsub parameters (every py-libp2p default we depend on is restated)."""

    topic: str = TOPIC
    host: str = "127.0.0.1"           # never 0.0.0.0
    degree: int = 6                   # D
    degree_low: int = 4               # D_lo
    degree_high: int = 12             # D_hi
    heartbeat_interval: int = 1       # seconds (py-libp2p default: 120)
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl: int = 120               # seconds py-libp2p remembers a message id
    spam_limit_per_second: float = 500.0  # per sender per topic (default 10, own publishes too)
    min_mesh_diversity_ips: int = 1   # all peers share 127.0.0.1 in tests
    publish_rate: float = 50.0        # messages/s admitted by publish() (see host.py)
    publish_burst: int = 16           # token bucket size (< 32, the silent per-peer queue)
    queue_high_water: int = 16        # publish() waits while a peer's outgoing queue is this full
    backpressure_timeout: float = 5.0  # ...for at most this long (a stuck peer), then sends
    store_path: str = ":memory:"      # the node's GossipStore (SQLite file; see store.py)
    store_max_messages: int | None = 1_000_000  # retention (~0.4 GB of attestations)
    start_timeout: float = 15.0
    max_connections: int = 64
    sync_page: int = 1024             # most messages per catch-up answer (asked again if more)
    sync_max_pages: int = 64          # pages per sync before the rest goes to the background
    sync_timeout: float = 30.0        # seconds for one sync request and its answer
    anti_entropy_interval: float = 30.0  # s between syncs from every connected peer that is
    # not graylisted (0: never): what gossip did not deliver to a connected peer (catchup.py)
    delivery_queue: int = 16_384      # accepted messages awaiting the store (see delivery.py)
    max_bridge_calls: int = 256       # asyncio -> trio calls in flight; more wait (bridge.py)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)  # node/gossip/scoring.py
